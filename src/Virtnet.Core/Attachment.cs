// An attachment owns one real device's takeover: the virtual TAP, the datapath and the following of the real
// device's MTU and carrier. Create either returns a working attachment or throws having undone every step;
// Dispose gives the real device back first, then removes the rest. Nothing is pinned or persisted, so a
// SIGKILL has the same effect as Dispose once the kernel closes our fds.
using System.Security.Cryptography;
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Devices;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet;

public enum MacMode
{
    /// <summary>The real device's MAC, like macvlan passthru.</summary>
    Inherit,
    Random,
    Explicit,
}

public sealed record AttachOptions
{
    public required string RealDevice { get; init; }
    public string Name { get; init; } = "virtnet0";
    public DatapathKind Datapath { get; init; } = DatapathKind.Kernel;
    public MacMode MacMode { get; init; } = MacMode.Inherit;
    /// <summary>With <see cref="MacMode.Explicit"/>: the 6-byte address.</summary>
    public byte[]? Mac { get; init; }
    /// <summary>User datapath only: the handlers every frame passes through, in order, before the default path.</summary>
    public IReadOnlyList<IFrameHandler> Handlers { get; init; } = [];
    /// <summary>User datapath only: how long the forwarder polls without sleeping after a frame (0: sleep at once).</summary>
    public TimeSpan? BusyPoll { get; init; }
}

public sealed class Attachment : IDisposable
{
    /// <summary>Every virtnet-made device carries an alias starting with this, so we never attach to our own.</summary>
    public const string AliasPrefix = "virtnet";
    private const ushort ArphrdEther = 1;

    private readonly RtNetlink _rtnl;
    private readonly TapDevice _tap;
    private readonly FileDescriptor? _membership;
    private int _mtu;
    private bool _carrier;
    private int _disposed;

    private Attachment(RtNetlink rtnl, LinkInfo real, TapDevice tap, LinkInfo virt, IDatapath datapath, FileDescriptor? membership)
    {
        _rtnl = rtnl;
        _tap = tap;
        _membership = membership;
        RealName = real.Name;
        RealIndex = real.Index;
        VirtualName = virt.Name;
        VirtualIndex = virt.Index;
        VirtualMac = virt.Mac;
        Datapath = datapath;
        _mtu = real.Mtu;
        _carrier = real.Carrier;
    }

    public string RealName { get; }
    public int RealIndex { get; }
    public string VirtualName { get; }
    public int VirtualIndex { get; }
    public byte[] VirtualMac { get; }
    public IDatapath Datapath { get; }
    public int Mtu => _mtu;
    public bool Carrier => _carrier;

    /// <summary>Equivalent of a kernel driver's rx_handler + ndo_start_xmit pair, in the namespace of the calling thread.</summary>
    public static Attachment Create(AttachOptions options)
    {
        DeviceName.Validate(options.Name);
        CheckPrivileges();

        using var cleanup = new Cleanup();
        var rtnl = cleanup.Add(RtNetlink.Open());
        var real = rtnl.GetLink(options.RealDevice);
        CheckRealDevice(real);
        if (!Tcx.IsSupported())
        {
            throw new VirtnetException("tcx probe", real.Name, $"this kernel ({Environment.OSVersion.Version}) has no tcx hooks; virtnet needs Linux 6.6 or newer", Errno.EOPNOTSUPP);
        }

        var owners = Tcx.QueryProgramNames(real.Index, TcxDirection.Ingress);
        if (owners.Any(n => n.StartsWith(AliasPrefix, StringComparison.Ordinal)))
        {
            throw new VirtnetException("attach", real.Name, $"{real.Name}: already attached by another virtnet; stop that one first", Errno.EBUSY);
        }

        if (rtnl.TryGetLink(options.Name) is not null)
        {
            throw new VirtnetException("attach", options.Name, $"{options.Name}: name already in use; choose another with --name", Errno.EEXIST);
        }

        var mac = options.MacMode switch
        {
            MacMode.Inherit => real.Mac,
            MacMode.Random => RandomMac(),
            _ => options.Mac ?? throw new ArgumentException("MacMode.Explicit needs Mac", nameof(options)),
        };

        // The user datapath runs one forwarder per CPU, each on its own queue of both TAPs.
        var tap = cleanup.Add(TapDevice.Create(options.Name, queues: options.Datapath == DatapathKind.User ? UserDatapath.QueuesFor() : 1));
        tap.EnableOffloads();
        var virt = rtnl.GetLink(tap.Name);
        rtnl.SetAlias(virt.Index, $"{AliasPrefix}: bound to {real.Name}");
        rtnl.SetMac(virt.Index, mac);
        rtnl.SetMtu(virt.Index, real.Mtu);
        tap.SetCarrier(real.Carrier);

        // A MAC the real device does not own must still get through its receive filter.
        FileDescriptor? membership = null;
        if (!mac.AsSpan().SequenceEqual(real.Mac))
        {
            membership = cleanup.Add(PacketMembership.AddUnicast(real.Index, real.Name, mac));
        }

        IDatapath datapath = options.Datapath == DatapathKind.Kernel
            ? KernelDatapath.Create(real.Index, real.Name, virt.Index, virt.Name)
            : UserDatapath.Create(rtnl, real, tap, virt.Index, options.Handlers, options.BusyPoll ?? UserDatapath.DefaultBusyPoll);
        cleanup.Add(datapath);

        // Up only now: whatever the virtual device's stack sends first (DAD, MLD) already has its way out.
        rtnl.SetUp(virt.Index, true);
        virt = rtnl.GetLink(virt.Index);
        cleanup.Commit();
        return new Attachment(rtnl, real, tap, virt, datapath, membership);
    }

    /// <summary>
    /// Follows the real device (MTU, carrier, removal) until <paramref name="cancellation"/> fires. Returns null
    /// on a requested stop, or a sentence saying why the attachment cannot go on.
    /// </summary>
    public string? Run(CancellationToken cancellation, Action<string>? log = null)
    {
        using var monitor = LinkMonitor.Open();
        using var registration = cancellation.Register(monitor.Wake);

        // Catch up with anything that changed before the subscription.
        var now = _rtnl.TryGetLink(RealIndex);
        if (now is null)
        {
            return $"{RealName} disappeared";
        }

        Apply(now, log);
        while (!cancellation.IsCancellationRequested)
        {
            if (Datapath.Fault is { } fault)
            {
                return fault;
            }

            var link = monitor.Read(TimeSpan.FromMilliseconds(500));
            if (link is null)
            {
                continue;
            }

            if (link.Index == RealIndex)
            {
                if (link.Deleted)
                {
                    return $"{RealName} disappeared";
                }

                Apply(link, log);
            }
            else if (link.Index == VirtualIndex && link.Deleted)
            {
                return $"{VirtualName} was deleted";
            }
        }

        return null;
    }

    private void Apply(LinkInfo real, Action<string>? log)
    {
        if (real.Mtu != _mtu)
        {
            // Growing: the pump first so nothing larger than it can take arrives; shrinking: the same order is harmless.
            Datapath.OnMtuChanged(real.Mtu);
            _rtnl.SetMtu(VirtualIndex, real.Mtu);
            log?.Invoke($"{VirtualName}: mtu {_mtu} -> {real.Mtu} (following {RealName})");
            _mtu = real.Mtu;
        }

        if (real.Carrier != _carrier)
        {
            _tap.SetCarrier(real.Carrier);
            log?.Invoke($"{VirtualName}: carrier {(real.Carrier ? "on" : "off")} (following {RealName})");
            _carrier = real.Carrier;
        }
    }

    public DatapathCounters ReadCounters() => Datapath.ReadCounters();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Datapath.Dispose();
        _membership?.Dispose();
        _tap.Dispose();
        _rtnl.Dispose();
    }

    private static void CheckPrivileges()
    {
        bool netAdmin = Capabilities.HasEffective(Capabilities.CAP_NET_ADMIN);
        bool bpf = Capabilities.HasEffective(Capabilities.CAP_BPF) || Capabilities.HasEffective(Capabilities.CAP_SYS_ADMIN);
        if (!netAdmin || !bpf)
        {
            string missing = !netAdmin && !bpf ? "CAP_NET_ADMIN and CAP_BPF" : !netAdmin ? "CAP_NET_ADMIN" : "CAP_BPF";
            throw new VirtnetException("attach", null, $"attach needs {missing}; run it as root (sudo)", Errno.EPERM);
        }
    }

    private static void CheckRealDevice(LinkInfo real)
    {
        if (real.IsLoopback)
        {
            throw new VirtnetException("attach", real.Name, $"{real.Name}: is the loopback device; attach to an Ethernet device", Errno.EINVAL);
        }

        if (real.Alias?.StartsWith(AliasPrefix, StringComparison.Ordinal) == true)
        {
            throw new VirtnetException("attach", real.Name, $"{real.Name}: is a virtnet device; attach to the real device instead", Errno.EINVAL);
        }

        if (real.Type != ArphrdEther)
        {
            throw new VirtnetException("attach", real.Name, $"{real.Name}: is not an Ethernet device; virtnet attaches to Ethernet devices", Errno.EINVAL);
        }
    }

    /// <summary>A random locally administered unicast address (02:xx:...).</summary>
    public static byte[] RandomMac()
    {
        var mac = new byte[6];
        RandomNumberGenerator.Fill(mac);
        mac[0] = (byte)((mac[0] & 0xFE) | 0x02);
        return mac;
    }
}
