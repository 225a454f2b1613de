// One message and a few file descriptors over a Unix socket (sendmsg/recvmsg with SCM_RIGHTS): how the privilege
// broker hands back what it made. The socket is SOCK_SEQPACKET, so a message is read whole or not at all.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>struct msghdr (64-bit layout).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

internal static unsafe class FdPassing
{
    /// <summary>The most descriptors one message carries.</summary>
    public const int MaxFds = 4;

    // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then the data, aligned to size_t.
    private const int HeaderSize = 16;
    private const int ControlSize = HeaderSize + (MaxFds * sizeof(int) + 7) / 8 * 8;

    /// <summary>Sends <paramref name="message"/> with <paramref name="fds"/> (at most <see cref="MaxFds"/>). Returns OK or the errno.</summary>
    public static Errno Send(int socket, ReadOnlySpan<byte> message, ReadOnlySpan<int> fds)
    {
        if (fds.Length > MaxFds)
        {
            throw new ArgumentException($"at most {MaxFds} descriptors", nameof(fds));
        }

        byte* control = stackalloc byte[ControlSize];
        new Span<byte>(control, ControlSize).Clear();
        fixed (byte* data = message)
        {
            var iov = new IoVec { Base = data, Length = (nuint)message.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1 };
            if (fds.Length > 0)
            {
                *(nuint*)control = (nuint)(HeaderSize + fds.Length * sizeof(int));
                *(int*)(control + 8) = Libc.SOL_SOCKET;
                *(int*)(control + 12) = Libc.SCM_RIGHTS;
                fds.CopyTo(new Span<int>(control + HeaderSize, fds.Length));
                msg.Control = control;
                msg.ControlLength = (nuint)(HeaderSize + (fds.Length * sizeof(int) + 7) / 8 * 8);
            }

            while (true)
            {
                nint n = Libc.sendmsg(socket, &msg, Libc.MSG_NOSIGNAL);
                if (n >= 0)
                {
                    return Errno.OK;
                }

                var errno = LastError.Get();
                if (errno != Errno.EINTR)
                {
                    return errno;
                }
            }
        }
    }

    /// <summary>
    /// Receives one message into <paramref name="buffer"/> and the descriptors that came with it (close-on-exec).
    /// Returns its length, 0 when the other end closed, or -errno.
    /// </summary>
    public static int Receive(int socket, Span<byte> buffer, List<FileDescriptor> fds)
    {
        byte* control = stackalloc byte[ControlSize];
        fixed (byte* data = buffer)
        {
            var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSize };
            nint n;
            while (true)
            {
                n = Libc.recvmsg(socket, &msg, Libc.MSG_CMSG_CLOEXEC);
                if (n >= 0)
                {
                    break;
                }

                var errno = LastError.Get();
                if (errno != Errno.EINTR)
                {
                    return -(int)errno;
                }
            }

            if (msg.ControlLength >= HeaderSize
                && *(int*)(control + 8) == Libc.SOL_SOCKET && *(int*)(control + 12) == Libc.SCM_RIGHTS)
            {
                int count = (int)((*(nuint*)control - HeaderSize) / sizeof(int));
                for (int i = 0; i < count; i++)
                {
                    fds.Add(new FileDescriptor(((int*)(control + HeaderSize))[i]));
                }
            }

            return (int)n;
        }
    }
}
