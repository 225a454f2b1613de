// A TAP device owned by this process: created with TUNSETIFF on /dev/net/tun, destroyed by the kernel when
// the last fd closes (never TUNSETPERSIST), which is what keeps virtnet crash-safe. linux/if_tun.h.
using System.Runtime.CompilerServices;
using System.Text;
using Virtnet.Native;

namespace Virtnet.Devices;

internal sealed unsafe class TapDevice : IDisposable
{
    /// <summary>The offloads we ask for: checksum, TSO v4/v6 (+ECN), USO v4/v6 (USO needs Linux 6.2).</summary>
    public const uint WantedOffloads = Tun.TUN_F_CSUM | Tun.TUN_F_TSO4 | Tun.TUN_F_TSO6 | Tun.TUN_F_TSO_ECN | Tun.TUN_F_USO4 | Tun.TUN_F_USO6;

    private readonly FileDescriptor _fd;
    private readonly FileDescriptor[] _queues;

    private TapDevice(string name, FileDescriptor[] queues)
    {
        Name = name;
        _queues = queues;
        _fd = queues[0];
    }

    public string Name { get; private set; }

    /// <summary>Records a rename done elsewhere (netlink): the device is known by <paramref name="name"/> from now on.</summary>
    internal void Renamed(string name) => Name = name;

    /// <summary>The first queue's fd; device-wide ioctls (offloads, carrier, steering) go through it.</summary>
    public FileDescriptor Handle => _fd;

    /// <summary>One fd per queue (IFF_MULTI_QUEUE); a single-queue TAP has one.</summary>
    public IReadOnlyList<FileDescriptor> Queues => _queues;

    /// <summary>The TUN_F_* offload flags the kernel accepted (see <see cref="EnableOffloads"/>).</summary>
    public uint Offloads { get; private set; }

    /// <summary>
    /// Creates a TAP named <paramref name="name"/> with a 10-byte virtio_net_hdr before every frame, failing
    /// with EBUSY if the name exists (IFF_TUN_EXCL). The fd is O_CLOEXEC and, when asked, O_NONBLOCK.
    /// The device lives in the network namespace of the calling thread.
    /// </summary>
    public static TapDevice Create(string name, bool nonBlocking = true, int queues = 1)
    {
        DeviceName.Validate(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(queues);
        var fds = new FileDescriptor[queues];
        try
        {
            // The first TUNSETIFF creates the device (IFF_TUN_EXCL: never an existing one); with IFF_MULTI_QUEUE,
            // each further TUNSETIFF of the same name attaches one more queue.
            for (int q = 0; q < queues; q++)
            {
                fds[q] = OpenQueue(name, nonBlocking, multiQueue: queues > 1, create: q == 0);
            }

            return new TapDevice(name, fds);
        }
        catch
        {
            foreach (var fd in fds)
            {
                fd?.Dispose();
            }

            throw;
        }
    }

    private static FileDescriptor OpenQueue(string name, bool nonBlocking, bool multiQueue, bool create)
    {
        int flags = Libc.O_RDWR | Libc.O_CLOEXEC | (nonBlocking ? Libc.O_NONBLOCK : 0);
        var fd = FileDescriptor.FromResult(Libc.open("/dev/net/tun", flags), "open /dev/net/tun", name);
        try
        {
            IfReqFlags req = default;
            DeviceName.CopyTo(name, new Span<byte>(req.Name, Tun.IFNAMSIZ));
            req.Flags = (short)(Tun.IFF_TAP | Tun.IFF_NO_PI | Tun.IFF_VNET_HDR | (create ? Tun.IFF_TUN_EXCL : 0) | (multiQueue ? Tun.IFF_MULTI_QUEUE : 0));
            if (Libc.ioctl(fd.Fd, Tun.TUNSETIFF, &req) < 0)
            {
                var errno = LastError.Get();
                throw create && (errno == Errno.EBUSY || errno == Errno.EEXIST || errno == Errno.EINVAL)
                    ? new VirtnetException(FailureKind.NameInUse, "TUNSETIFF", name, $"{name}: name already in use", errno)
                    : new VirtnetException("TUNSETIFF", name, errno);
            }

            int hdr = VirtioNetHdr.Size;
            if (Libc.ioctl(fd.Fd, Tun.TUNSETVNETHDRSZ, &hdr) < 0)
            {
                VirtnetException.ThrowLastError("TUNSETVNETHDRSZ", name);
            }

            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Lets a BPF_PROG_TYPE_SOCKET_FILTER program choose the queue of every frame transmitted to this TAP
    /// (TUNSETSTEERINGEBPF, Linux 4.16): the program's return value modulo the number of queues.
    /// </summary>
    public void SetSteeringProgram(FileDescriptor program)
    {
        int fd = program.Fd;
        if (Libc.ioctl(_fd.Fd, Tun.TUNSETSTEERINGEBPF, &fd) < 0)
        {
            VirtnetException.ThrowLastError("TUNSETSTEERINGEBPF", Name);
        }
    }

    /// <summary>
    /// Asks for <paramref name="wanted"/> offloads, dropping the ones an older kernel refuses (USO first), as
    /// wireguard-go does: the result records what worked. With offloads on, reads may return 64 KB GSO frames.
    /// </summary>
    public uint EnableOffloads(uint wanted = WantedOffloads)
    {
        foreach (var attempt in new[] { wanted, wanted & ~(Tun.TUN_F_USO4 | Tun.TUN_F_USO6), wanted & (Tun.TUN_F_CSUM | Tun.TUN_F_TSO4 | Tun.TUN_F_TSO6), wanted & Tun.TUN_F_CSUM, 0u })
        {
            if (Libc.ioctl(_fd.Fd, Tun.TUNSETOFFLOAD, (nint)attempt) == 0)
            {
                Offloads = attempt;
                return attempt;
            }
        }

        VirtnetException.ThrowLastError("TUNSETOFFLOAD", Name);
        return 0;
    }

    /// <summary>Carrier on or off (TUNSETCARRIER, Linux 5.0+): the stack shows NO-CARRIER while off.</summary>
    public void SetCarrier(bool on)
    {
        int value = on ? 1 : 0;
        if (Libc.ioctl(_fd.Fd, Tun.TUNSETCARRIER, &value) < 0)
        {
            VirtnetException.ThrowLastError("TUNSETCARRIER", Name);
        }
    }

    /// <summary>
    /// Reads one frame (virtio_net_hdr + Ethernet frame) into <paramref name="buffer"/>: OK with its length in
    /// <paramref name="count"/>, or the errno (EAGAIN: nothing to read). Never throws.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Errno Read(int fd, byte* buffer, int length, out int count)
    {
        nint n = Libc.read(fd, buffer, length);
        count = (int)n;
        return n >= 0 ? Errno.OK : LastError.Get();
    }

    /// <summary>Writes one frame (virtio_net_hdr + Ethernet frame): OK, or the errno (EIO: the device is down). Never throws.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Errno Write(int fd, byte* buffer, int length)
        => Libc.write(fd, buffer, length) >= 0 ? Errno.OK : LastError.Get();

    public void Dispose()
    {
        foreach (var fd in _queues)
        {
            fd.Dispose();
        }
    }
}

/// <summary>Linux interface names: 1 to 15 bytes (IFNAMSIZ 16 with the NUL), no '/', ':' or white space.</summary>
internal static class DeviceName
{
    public const int MaxLength = Tun.IFNAMSIZ - 1;

    /// <summary>What dev_valid_name refuses besides "." and "..": '/', ':' and white space.</summary>
    private static readonly System.Buffers.SearchValues<char> s_forbidden = System.Buffers.SearchValues.Create("/: \t\n\v\f\r");

    public static void Validate(string name)
    {
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes == 0)
        {
            throw new VirtnetException(FailureKind.InvalidName, "validate name", name, "the device name is empty", Errno.EINVAL);
        }

        if (bytes > MaxLength)
        {
            throw new VirtnetException(FailureKind.InvalidName, "validate name", name, $"{name}: name is {bytes} bytes long, the limit is {MaxLength}", Errno.ENAMETOOLONG);
        }

        if (name is "." or ".." || name.AsSpan().IndexOfAny(s_forbidden) >= 0)
        {
            throw new VirtnetException(FailureKind.InvalidName, "validate name", name, $"{name}: not a valid interface name (no '/', ':' or spaces)", Errno.EINVAL);
        }

        if (name.Contains('%', StringComparison.Ordinal))
        {
            // The kernel reads "vn%d" as a template and picks a free number: the device would get another name.
            throw new VirtnetException(FailureKind.InvalidName, "validate name", name, $"{name}: '%' makes a name template for the kernel, not a name", Errno.EINVAL);
        }
    }

    internal static void CopyTo(string name, Span<byte> destination)
    {
        destination.Clear();
        Encoding.UTF8.GetBytes(name, destination[..MaxLength]);
    }
}
