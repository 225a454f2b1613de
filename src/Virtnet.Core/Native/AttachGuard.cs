// One attach per real device, without a race: an AF_UNIX socket bound to the abstract name
// "virtnet/attach/<ifindex>". Abstract names belong to the network namespace, as ifindexes do; the kernel frees
// the name when the socket closes, so a killed attach releases it with its other fds. Two attaches started at the
// same moment cannot both pass: bind(2) lets exactly one have the name.
namespace Virtnet.Native;

internal static unsafe class AttachGuard
{
    private const ushort AF_UNIX = 1;

    /// <summary>Takes the device's name, or throws "already attached" (EBUSY) when another attach holds it.</summary>
    public static FileDescriptor Take(int ifindex, string device)
    {
        var fd = FileDescriptor.FromResult(Libc.socket(AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0), "socket(AF_UNIX)", device);
        try
        {
            // struct sockaddr_un: family, then sun_path whose first byte 0 makes the name abstract (not a file).
            byte* addr = stackalloc byte[110];
            new Span<byte>(addr, 110).Clear();
            *(ushort*)addr = AF_UNIX;
            int n = System.Text.Encoding.ASCII.GetBytes($"virtnet/attach/{ifindex}", new Span<byte>(addr + 3, 100));
            if (Libc.bind(fd.Fd, addr, 2 + 1 + n) < 0)
            {
                var errno = LastError.Get();
                if (errno == Errno.EADDRINUSE)
                {
                    throw new VirtnetException(FailureKind.AlreadyAttached, "attach", device, $"{device}: already attached by another virtnet; stop that one first", Errno.EBUSY);
                }

                throw new VirtnetException("bind(AF_UNIX)", device, errno);
            }

            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
