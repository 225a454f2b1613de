// Design: a NETLINK_ROUTE datagram socket made with P/Invoke (.NET has no AF_NETLINK). Every receive first
// peeks with MSG_PEEK|MSG_TRUNC to learn the datagram's size and grows the buffer, as iproute2's rtnl_recvmsg
// does: a dump part or a notification larger than the buffer would otherwise be silently cut (MSG_TRUNC).
// Datagrams whose sender is not the kernel (nl_pid != 0) are dropped.
using Virtnet.Native;

namespace Virtnet.Netlink;

internal sealed unsafe class NetlinkSocket : IDisposable
{
    private const int InitialReceiveBuffer = 32 * 1024;
    private byte[] _rx = new byte[InitialReceiveBuffer];
    private int _received;

    private NetlinkSocket(FileDescriptor fd)
    {
        Handle = fd;
    }

    public FileDescriptor Handle { get; }

    /// <summary>The datagram of the last successful <see cref="Receive"/>.</summary>
    public ReadOnlySpan<byte> Received => _rx.AsSpan(0, _received);

    /// <summary>socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE), NETLINK_EXT_ACK on, bound to the multicast <paramref name="groups"/> mask.</summary>
    public static NetlinkSocket Open(uint groups, bool nonBlocking)
    {
        int type = Libc.SOCK_RAW | Libc.SOCK_CLOEXEC | (nonBlocking ? Libc.SOCK_NONBLOCK : 0);
        return Adopt(FileDescriptor.FromResult(Libc.socket(Nl.AF_NETLINK, type, Nl.NETLINK_ROUTE), "socket(AF_NETLINK)"), groups);
    }

    /// <summary>An rtnetlink socket made elsewhere (in another namespace), set up as <see cref="Open"/> does; owns it.</summary>
    public static NetlinkSocket Adopt(FileDescriptor fd, uint groups)
    {
        try
        {
            int on = 1;

            // Extended ack: the kernel's text ("mtu greater than device maximum") rides on NLMSG_ERROR.
            // Linux >= 4.12; older kernels reject the option and we simply lose the text.
            Libc.setsockopt(fd.Fd, Nl.SOL_NETLINK, Nl.NETLINK_EXT_ACK, &on, sizeof(int));

            if (groups != 0)
            {
                // Notifications arrive in bursts (a veth pair add is several); a deeper queue makes ENOBUFS rarer.
                int size = 1 << 20;
                if (Libc.setsockopt(fd.Fd, Libc.SOL_SOCKET, Libc.SO_RCVBUFFORCE, &size, sizeof(int)) != 0)
                {
                    Libc.setsockopt(fd.Fd, Libc.SOL_SOCKET, Libc.SO_RCVBUF, &size, sizeof(int));
                }
            }

            var addr = new SockAddrNl { Family = Nl.AF_NETLINK, Groups = groups };
            if (Libc.bind(fd.Fd, &addr, SockAddrNl.Size) != 0)
            {
                VirtnetException.ThrowLastError("bind(AF_NETLINK)");
            }

            return new NetlinkSocket(fd);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Sends one request to the kernel. Returns OK or the errno.</summary>
    public Errno Send(ReadOnlySpan<byte> message)
    {
        var kernel = new SockAddrNl { Family = Nl.AF_NETLINK };
        fixed (byte* p = message)
        {
            while (true)
            {
                nint n = Libc.sendto(Handle.Fd, p, message.Length, 0, &kernel, SockAddrNl.Size);
                if (n >= 0)
                {
                    return n == message.Length ? Errno.OK : Errno.EMSGSIZE;
                }

                Errno e = LastError.Get();
                if (e != Errno.EINTR)
                {
                    return e;
                }
            }
        }
    }

    /// <summary>
    /// Waits up to <paramref name="timeoutMs"/> (-1 forever) for the socket, or for <paramref name="wakeFd"/>
    /// when it is not -1. Returns 1 for the socket, 2 for the wake fd (it is not drained), 0 on timeout.
    /// </summary>
    public int Wait(int timeoutMs, int wakeFd = -1)
    {
        PollFd* fds = stackalloc PollFd[2];
        fds[0] = new PollFd { Fd = Handle.Fd, Events = Libc.POLLIN };
        fds[1] = new PollFd { Fd = wakeFd, Events = Libc.POLLIN };
        long deadline = timeoutMs < 0 ? long.MaxValue : Environment.TickCount64 + timeoutMs;
        while (true)
        {
            int wait = timeoutMs < 0 ? -1 : (int)Math.Max(0, deadline - Environment.TickCount64);
            int n = Libc.poll(fds, wakeFd >= 0 ? 2u : 1u, wait);
            if (n < 0)
            {
                if (LastError.Get() == Errno.EINTR)
                {
                    continue;
                }

                VirtnetException.ThrowLastError("poll(AF_NETLINK)");
            }

            if (n == 0)
            {
                return 0;
            }

            if (wakeFd >= 0 && fds[1].REvents != 0)
            {
                return 2;
            }

            if (fds[0].REvents != 0)
            {
                return 1;
            }
        }
    }

    /// <summary>
    /// Receives one datagram from the kernel into <see cref="Received"/>. Returns OK, or the errno
    /// (EAGAIN when nothing is queued on a non-blocking socket, ENOBUFS after a multicast overrun).
    /// Datagrams from other senders are dropped and reported as EAGAIN.
    /// </summary>
    public Errno Receive()
    {
        _received = 0;
        while (true)
        {
            nint size = Libc.recvfrom(Handle.Fd, null, 0, Libc.MSG_PEEK | Libc.MSG_TRUNC, null, null);
            if (size < 0)
            {
                Errno e = LastError.Get();
                if (e == Errno.EINTR)
                {
                    continue;
                }

                return e;
            }

            if (size > _rx.Length)
            {
                _rx = new byte[Math.Max((int)size, _rx.Length * 2)];
            }

            var from = new SockAddrNl();
            int fromLength = SockAddrNl.Size;
            nint n;
            fixed (byte* p = _rx)
            {
                n = Libc.recvfrom(Handle.Fd, p, _rx.Length, Libc.MSG_DONTWAIT, &from, &fromLength);
            }

            if (n < 0)
            {
                Errno e = LastError.Get();
                if (e == Errno.EINTR)
                {
                    continue;
                }

                return e;
            }

            if (from.Pid != 0)
            {
                return Errno.EAGAIN;
            }

            _received = (int)n;
            return Errno.OK;
        }
    }

    public void Dispose() => Handle.Dispose();
}
