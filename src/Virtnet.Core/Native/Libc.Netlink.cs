// sys/socket.h: the pieces of the socket API that netlink needs beyond Libc.cs.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static unsafe partial class Libc
{
    public const int SOL_SOCKET = 1;
    public const int SO_SNDBUF = 7;
    public const int SO_RCVBUF = 8;
    public const int SO_RCVBUFFORCE = 33;

    public const int MSG_PEEK = 0x2;
    public const int MSG_TRUNC = 0x20;
    public const int MSG_DONTWAIT = 0x40;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint recvfrom(int fd, void* buf, nint len, int flags, void* addr, int* addrlen);
}
