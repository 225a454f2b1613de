// The few libc calls the integration tests need that the product's Native layer does not import.
using System.Runtime.InteropServices;

namespace Virtnet.Tests.Integration;

internal static unsafe partial class TestLibc
{
    // signal.h
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);

    // sys/socket.h
    public const int MSG_DONTWAIT = 0x40;

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recvmsg(int fd, MsgHdr* msg, int flags);

    public const int AF_UNIX = 1;
    public const int SOCK_SEQPACKET = 5;

    /// <summary>A connected pair; SOCK_SEQPACKET keeps message boundaries, as a TAP keeps frames.</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int socketpair(int domain, int type, int protocol, int* sv);

    // sys/syscall.h (x86_64 321, arm64 280)
    public static nint BpfSyscallNumber => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 280 : 321;
}

// sys/socket.h: struct msghdr (56 bytes on 64-bit).
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public Native.IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

// sys/socket.h: struct cmsghdr; the data follows at CMSG_ALIGN(sizeof(cmsghdr)) = 16.
[StructLayout(LayoutKind.Sequential)]
internal struct CmsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;
}

// linux/if_packet.h: struct tpacket_auxdata.
[StructLayout(LayoutKind.Sequential)]
internal struct TpacketAuxdata
{
    public const uint TP_STATUS_VLAN_VALID = 0x10;
    public const uint TP_STATUS_VLAN_TPID_VALID = 0x40;

    public uint Status;
    public uint Length;
    public uint SnapLength;
    public ushort Mac;
    public ushort Net;
    public ushort VlanTci;
    public ushort VlanTpid;
}
