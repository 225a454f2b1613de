// An attachment owns one real device's takeover: the virtual device, the datapath and the following of the real
// device's MTU and carrier. Create either returns a working attachment or throws having undone every step;
// Dispose gives the real device back first, then removes the rest. Nothing is pinned, so a SIGKILL gives the real
// device back as Dispose does once the kernel closes our fds. The virtual device is a TAP we own (it goes with
// the process), except for the kernel datapath with the virtual device in another namespace: there it is a veth
// whose other end stays with the real device, and a SIGKILL leaves that pair behind (the next attach to the same
// real device removes it).
using System.Security.Cryptography;
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Devices;
using Virtnet.Lab;
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
    /// <summary>
    /// The network namespace the virtual device is made in, by path (/run/netns/NAME, /proc/PID/ns/net), like
    /// <c>ip link add ... netns NS</c>; null: the real device's (the caller's) namespace.
    /// </summary>
    public string? Netns { get; init; }
}

public sealed class Attachment : IDisposable
{
    /// <summary>Every virtnet-made device carries an alias starting with this, so we never attach to our own.</summary>
    public const string AliasPrefix = "virtnet";
    private const ushort ArphrdEther = 1;

    private readonly RtNetlink _rtnl;
    private readonly VirtualNamespace? _virtNs;
    private readonly TapDevice? _tap;
    private readonly LinkInfo? _peer;
    private readonly FileDescriptor? _membership;
    private readonly FileDescriptor _guard;
    private int _mtu;
    private bool _carrier;
    private int _disposed;

    private Attachment(RtNetlink rtnl, VirtualNamespace? virtNs, LinkInfo real, TapDevice? tap, LinkInfo? peer, LinkInfo virt, IDatapath datapath, FileDescriptor? membership, FileDescriptor guard)
    {
        _guard = guard;
        _rtnl = rtnl;
        _virtNs = virtNs;
        _tap = tap;
        _peer = peer;
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

    /// <summary>The namespace the virtual device lives in (as given), or null for the real device's.</summary>
    public string? Namespace => _virtNs?.Path;

    /// <summary>With the kernel datapath in another namespace: the veth end that stays with the real device.</summary>
    public string? PeerName => _peer?.Name;

    /// <summary>The name of the veth end a virtual device in another namespace is paired with (kernel datapath).</summary>
    public static string PeerNameFor(int realIndex) => $"vnpeer{realIndex}";

    /// <summary>Equivalent of a kernel driver's rx_handler + ndo_start_xmit pair, in the namespace of the calling thread.</summary>
    public static Attachment Create(AttachOptions options)
    {
        DeviceName.Validate(options.Name);
        if (options.Name.StartsWith("vnpeer", StringComparison.Ordinal) || options.Name.StartsWith("vnpump", StringComparison.Ordinal))
        {
            throw new VirtnetException("attach", options.Name, $"{options.Name}: names starting with vnpeer or vnpump are virtnet's own; choose another with --name", Errno.EINVAL);
        }

        CheckPrivileges();

        using var cleanup = new Cleanup();
        var rtnl = cleanup.Add(RtNetlink.Open());
        var real = rtnl.GetLink(options.RealDevice);
        CheckRealDevice(real);
        if (!Tcx.IsSupported())
        {
            throw new VirtnetException("tcx probe", real.Name, $"this kernel ({Environment.OSVersion.Version}) has no tcx hooks; virtnet needs Linux 6.6 or newer", Errno.EOPNOTSUPP);
        }

        // First the guard (no two attaches to one device can both get past it), then the programs on the hook
        // (an attach by some other tool or an older virtnet).
        var guard = cleanup.Add(AttachGuard.Take(real.Index, real.Name));
        var owners = Tcx.QueryProgramNames(real.Index, TcxDirection.Ingress);
        if (owners.Any(n => n.StartsWith(AliasPrefix, StringComparison.Ordinal)))
        {
            throw new VirtnetException("attach", real.Name, $"{real.Name}: already attached by another virtnet; stop that one first", Errno.EBUSY);
        }

        // A kernel-datapath pair in another namespace that a killed attach to this device left behind.
        RemoveStalePeer(rtnl, PeerNameFor(real.Index));

        // The namespace is held only while the devices are made: afterwards the attach reaches it by path (checked
        // to be the same namespace), so that when its last process exits it dies, taking the virtual device with
        // it, and the attach ends instead of sending the real device's frames into a dead namespace.
        NetNamespace? netns = null;
        VirtualNamespace? virtNs = null;
        var virtRtnl = rtnl;
        if (options.Netns is { } nsPath)
        {
            netns = cleanup.Add(OpenNamespace(nsPath));
            string identity = VirtualNamespace.Identity(netns.Handle);
            if (identity == VirtualNamespace.Current())
            {
                // Our own namespace under another name (e.g. /proc/self/ns/net): the ordinary mode.
                netns.Dispose();
                netns = null;
            }
            else
            {
                virtNs = new VirtualNamespace(nsPath, identity);
                virtRtnl = cleanup.Add(netns.Run(RtNetlink.Open));
            }
        }

        string where = netns is null ? "" : $" in {netns.Description}";
        if (virtRtnl.TryGetLink(options.Name) is not null)
        {
            throw new VirtnetException("attach", options.Name, $"{options.Name}: name already in use{where}; choose another with --name", Errno.EEXIST);
        }

        var mac = options.MacMode switch
        {
            MacMode.Inherit => real.Mac,
            MacMode.Random => RandomMac(),
            _ => options.Mac ?? throw new ArgumentException("MacMode.Explicit needs Mac", nameof(options)),
        };

        bool peerMode = netns is not null && options.Datapath == DatapathKind.Kernel;
        bool ownMac = !mac.AsSpan().SequenceEqual(real.Mac);

        TapDevice? tap = null;
        LinkInfo? peer = null;
        LinkInfo virt;
        if (peerMode)
        {
            // A veth pair: the virtual device is born in its namespace, its peer stays here, where tcx can reach it.
            string peerName = PeerNameFor(real.Index);
            rtnl.AddVeth(peerName, null, options.Name, netns!.Handle.Fd);
            cleanup.Add(() =>
            {
                if (rtnl.TryGetLink(peerName) is { } made)
                {
                    rtnl.DeleteLink(made.Index);
                }
            });
            peer = rtnl.GetLink(peerName);
            rtnl.SetAlias(peer.Index, $"{PeerAliasPrefix}{options.Name} for {real.Name}");
            // The peer only carries frames; it must not speak (IPv6 would send ND and MLD into the namespace).
            UserDatapath.DisableIpv6(peerName);
            rtnl.SetMtu(peer.Index, real.Mtu);
            virt = virtRtnl.GetLink(options.Name);
        }
        else
        {
            // The user datapath runs one forwarder per CPU, each on its own queue of both TAPs. For another
            // namespace the TAP is made here under a passing name and moved there under its own in one request:
            // its fds then belong to this namespace and do not keep the other alive.
            string firstName = netns is null ? options.Name : $"vnt{Random.Shared.Next():x7}";
            tap = cleanup.Add(TapDevice.Create(firstName, queues: options.Datapath == DatapathKind.User ? UserDatapath.QueuesFor() : 1));
            tap.EnableOffloads();
            virt = rtnl.GetLink(tap.Name);
            if (netns is not null)
            {
                // A TAP keeps working through its fd wherever its device lives.
                rtnl.MoveToNamespace(virt.Index, netns.Handle.Fd, options.Name);
                tap.Renamed(options.Name);
                virt = virtRtnl.GetLink(options.Name);
            }

            tap.SetCarrier(real.Carrier);
        }

        virtRtnl.SetAlias(virt.Index, $"{AliasPrefix}: bound to {real.Name}");
        virtRtnl.SetMac(virt.Index, mac);
        virtRtnl.SetMtu(virt.Index, real.Mtu);

        // A MAC the real device does not own must still get through its receive filter.
        FileDescriptor? membership = null;
        if (ownMac)
        {
            membership = cleanup.Add(PacketMembership.AddUnicast(real.Index, real.Name, mac));
        }

        int virtIndex = virt.Index;
        IDatapath datapath = peerMode
            ? KernelDatapath.CreateWithPeer(real.Index, real.Name, peer!.Index, peer.Name, netns!, virt.Index, virt.Name, mac)
            : options.Datapath == DatapathKind.Kernel
                ? KernelDatapath.Create(real.Index, real.Name, virt.Index, virt.Name)
                : UserDatapath.Create(rtnl, real, tap!, virt.Index, options.Handlers, options.BusyPoll ?? UserDatapath.DefaultBusyPoll,
                    virtNs is null ? null : () => virtNs.Query(r => r.TryGetLink(virtIndex)?.Stats?.TxDropped) ?? 0);
        cleanup.Add(datapath);

        // Up only now: whatever the virtual device's stack sends first (DAD, MLD) already has its way out. A veth
        // has carrier while both ends are up: the peer's state is how it follows the real device's carrier.
        if (peer is not null)
        {
            rtnl.SetUp(peer.Index, real.Carrier);
        }

        virtRtnl.SetUp(virt.Index, true);
        virt = virtRtnl.GetLink(virt.Index);
        cleanup.Commit();
        if (netns is not null)
        {
            virtRtnl.Dispose();
            netns.Dispose();
        }

        return new Attachment(rtnl, virtNs, real, tap, peer, virt, datapath, membership, guard);
    }

    private static NetNamespace OpenNamespace(string path)
    {
        try
        {
            return NetNamespace.Open(path);
        }
        catch (VirtnetException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
        {
            throw new VirtnetException("attach", path, $"no network namespace {path}; create it first (ip netns add NAME)", e.Errno);
        }
    }

    /// <summary>The alias of a kernel-datapath peer: what marks a left pair as ours.</summary>
    private const string PeerAliasPrefix = AliasPrefix + ": peer of ";

    /// <summary>A peer a killed attach left behind is ours to remove; any other device of that name is in the way.</summary>
    private static void RemoveStalePeer(RtNetlink rtnl, string peerName)
    {
        if (rtnl.TryGetLink(peerName) is not { } stale)
        {
            return;
        }

        if (stale.Kind != "veth" || stale.Alias?.StartsWith(PeerAliasPrefix, StringComparison.Ordinal) != true)
        {
            throw new VirtnetException("attach", peerName, $"{peerName}: name already in use by a device virtnet did not make; delete or rename it", Errno.EEXIST);
        }

        // A live attach has its egress program on the peer; only a dead one's pair has none.
        if (Tcx.QueryProgramNames(stale.Index, TcxDirection.Ingress).Any(n => n == KernelDatapath.EgressProgramName))
        {
            throw new VirtnetException("attach", peerName, $"{peerName}: in use by another virtnet; stop that one first", Errno.EBUSY);
        }

        rtnl.DeleteLink(stale.Index);
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

        if (_peer is { } p && _rtnl.TryGetLink(p.Index) is null)
        {
            return $"{VirtualName} was deleted";
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
            else if (link.Deleted && (_peer is { } pair ? link.Index == pair.Index : _virtNs is null && link.Index == VirtualIndex))
            {
                // A veth goes as a pair: deleting the virtual device (in its namespace) deletes the peer here.
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
            if (_peer is { } peer && real.Mtu > _mtu)
            {
                // The veth end that frames cross last must take them first: growing, the peer before the virtual device.
                _rtnl.SetMtu(peer.Index, real.Mtu);
                SetVirtualMtu(real.Mtu);
            }
            else
            {
                SetVirtualMtu(real.Mtu);
                if (_peer is { } shrinking)
                {
                    _rtnl.SetMtu(shrinking.Index, real.Mtu);
                }
            }

            log?.Invoke($"{VirtualName}: mtu {_mtu} -> {real.Mtu} (following {RealName})");
            _mtu = real.Mtu;
        }

        if (real.Carrier != _carrier)
        {
            if (_tap is not null)
            {
                _tap.SetCarrier(real.Carrier);
            }
            else if (_peer is { } peer)
            {
                _rtnl.SetUp(peer.Index, real.Carrier);
            }

            log?.Invoke($"{VirtualName}: carrier {(real.Carrier ? "on" : "off")} (following {RealName})");
            _carrier = real.Carrier;
        }
    }

    public DatapathCounters ReadCounters() => Datapath.ReadCounters();

    private void SetVirtualMtu(int mtu)
    {
        if (_virtNs is null)
        {
            _rtnl.SetMtu(VirtualIndex, mtu);
        }
        else
        {
            // Gone namespace or device: nothing to follow; the peer's deletion or the forwarders end the attach.
            _virtNs.Query<object>(r =>
            {
                r.SetMtu(VirtualIndex, mtu);
                return null;
            });
        }
    }

    /// <summary>
    /// The virtual device's namespace, reached by path without being held: each use opens the path and checks
    /// that it is still the namespace the device was made in (its nsfs inode), then runs on a short-lived thread
    /// inside it with a netlink socket of its own.
    /// </summary>
    private sealed class VirtualNamespace(string path, string identity)
    {
        public string Path => path;

        /// <summary>"net:[inode]" of a namespace fd.</summary>
        public static string Identity(FileDescriptor fd) => new FileInfo($"/proc/self/fd/{fd.Fd}").LinkTarget ?? "";

        /// <summary>"net:[inode]" of the calling thread's namespace.</summary>
        public static string Current() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? "";

        /// <summary>Runs <paramref name="query"/> inside the namespace; null if it is gone or no longer the same one.</summary>
        public T? Query<T>(Func<RtNetlink, T?> query)
        {
            try
            {
                using var ns = NetNamespace.Open(path);
                if (Identity(ns.Handle) != identity)
                {
                    return default;
                }

                return ns.Run(() =>
                {
                    using var rtnl = RtNetlink.Open();
                    return query(rtnl);
                });
            }
            catch (VirtnetException)
            {
                return default;
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Datapath.Dispose();
        _membership?.Dispose();
        if (_peer is { } peer)
        {
            try
            {
                _rtnl.DeleteLink(peer.Index);
            }
            catch (VirtnetException)
            {
                // Already gone: someone deleted the pair from either end.
            }
        }

        _tap?.Dispose();
        _rtnl.Dispose();
        _guard.Dispose();
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
