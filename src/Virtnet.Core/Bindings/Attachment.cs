// A binding (an "attachment"): one real device and its ports, the virtual devices its frames appear on, with the
// datapath that moves frames between them, following the real device's MTU and carrier. Today a binding has one
// port; the shape (ports by index, port 0 the real side) is the one several virtual devices per real device need.
//
// Create either returns a working binding or throws having undone every step; Dispose gives the real device back
// first, then removes the rest. Nothing is pinned, so a SIGKILL gives the real device back as Dispose does once
// the kernel closes our fds. The one exception is the veth pair of the kernel datapath with the virtual device in
// another namespace: it stays behind, inert, and the next binding to the same real device removes it.
using System.Security.Cryptography;
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Datapaths.Kernel;
using Virtnet.Devices;
using Virtnet.Namespaces;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet;

/// <summary>One virtual device of a binding.</summary>
/// <param name="Name">Its name, in its namespace.</param>
/// <param name="Index">Its ifindex, in its namespace.</param>
/// <param name="Mac">Its MAC address.</param>
/// <param name="Namespace">The namespace it lives in (as given), or null for the real device's.</param>
/// <param name="Peer">With the kernel datapath in another namespace: the veth end that stays with the real device.</param>
public sealed record PortInfo(string Name, int Index, byte[] Mac, string? Namespace, string? Peer);

/// <summary>
/// A real device bound to its virtual device: the userspace equivalent of a kernel driver's rx_handler plus
/// ndo_start_xmit pair. Made by <see cref="Create"/>, followed by <see cref="Run(CancellationToken, Action{string}?)"/>, undone by <see cref="Dispose"/>.
/// </summary>
public sealed class Attachment : IDisposable
{
    /// <summary>Every virtnet-made device carries an alias starting with this, so we never attach to our own.</summary>
    internal const string AliasPrefix = "virtnet";

    /// <summary>Names of virtnet's private devices (the user datapath's pump, the kernel datapath's veth peer).</summary>
    private static readonly string[] s_reservedPrefixes = ["vnpeer", "vnpump", "vnring"];

    private readonly RtNetlink _rtnl;
    private readonly RealDevice _real;
    private readonly VirtualDevice _virtual;

    // Every virtual device of the binding, the first one first: what follows the real device applies to each.
    private readonly VirtualDevice[] _devices;
    private readonly IDatapath _datapath;
    private readonly FileDescriptor? _membership;
    private readonly FileDescriptor? _guard;
    private readonly bool _followMac;
    private SwitchPort? _port;
    private FileDescriptor? _slotLock;
    private long _lastSweep;
    private SlotWatch? _watch;
    private bool _targetDown;
    private int _mtu;
    private bool _clampSaid;
    private bool _carrier;
    private int _disposed;

    private Attachment(RtNetlink rtnl, RealDevice real, VirtualDevice[] devices, IDatapath datapath, FileDescriptor? membership, FileDescriptor? guard, bool followMac)
    {
        var virt = devices[0];
        _devices = devices;
        _followMac = followMac;
        _rtnl = rtnl;
        _real = real;
        _virtual = virt;
        _datapath = datapath;
        _membership = membership;
        _guard = guard;
        RealIndex = real.Index;
        _mtu = virt.MtuFor(real.Mtu);
        _carrier = real.Carrier;
        Ports = [.. devices.Select(d => new PortInfo(d.Name, d.Index, d.Mac, d.Namespace?.Path, d.Peer?.Name))];
    }

    /// <summary>The real device's name (as it is now: a rename is followed).</summary>
    public string RealName => _real.Name;

    /// <summary>The real device's ifindex.</summary>
    public int RealIndex { get; }

    /// <summary>The binding's virtual devices: the first, then its further ones (<see cref="AttachOptions.ExtraDevices"/>).</summary>
    public IReadOnlyList<PortInfo> Ports { get; private set; }

    /// <summary>The first virtual device's name.</summary>
    public string VirtualName => Ports[0].Name;

    /// <summary>The first virtual device's ifindex, in its namespace.</summary>
    public int VirtualIndex => Ports[0].Index;

    /// <summary>The first virtual device's MAC.</summary>
    public byte[] VirtualMac => Ports[0].Mac;

    /// <summary>The namespace the virtual device lives in (as given), or null for the real device's.</summary>
    public string? Namespace => Ports[0].Namespace;

    /// <summary>With the kernel datapath in another namespace: the veth end that stays with the real device.</summary>
    public string? PeerName => Ports[0].Peer;

    /// <summary>Which datapath moves the frames.</summary>
    public DatapathKind Datapath => _datapath.Kind;

    /// <summary>What the datapath adds to a description of the binding (the user datapath's pump and write path), or null.</summary>
    public string? DatapathDetails => _datapath.Details;

    /// <summary>
    /// Sends the frames this binding drops in managed code (its handlers' drops) to a capture's Unix datagram socket
    /// at <paramref name="socketPath"/> (null: stop). False when its datapath drops nothing in managed code.
    /// </summary>
    public bool SendDropsTo(string? socketPath) => _datapath.SendDropsTo(socketPath);

    /// <summary>The devices in this process's namespace that carry only this binding's frames: a veth peer, a pump, a ring device.</summary>
    public IReadOnlyList<string> PrivateDevices => PeerName is { } peer ? [peer, .. _datapath.PrivateDevices] : _datapath.PrivateDevices;

    /// <summary>The virtual device's MTU, which follows the real device's.</summary>
    public int Mtu => _mtu;

    /// <summary>The virtual device's carrier, which follows the real device's.</summary>
    public bool Carrier => _carrier;

    /// <summary>The name of the veth end a virtual device in another namespace is paired with (kernel datapath).</summary>
    internal static string PeerNameFor(int realIndex) => $"vnpeer{realIndex}";

    /// <summary>The same for the binding in switch slot <paramref name="slot"/> of a shared real device.</summary>
    internal static string PeerNameFor(int realIndex, int slot) => $"vnpeer{realIndex}s{slot}";

    /// <summary>How the binding shares its real device.</summary>
    public BindingMode Mode { get; private init; }

    /// <summary>The VLAN it takes, or 0.</summary>
    public int Vlan { get; private init; }

    /// <summary>The filter the binding takes (or mirrors) frames by, as given; null: every frame.</summary>
    public string? Filter { get; private init; }

    /// <summary>Not None: a mirror of these directions.</summary>
    public MirrorDirections Mirror { get; private init; }

    /// <summary>Binds <see cref="AttachOptions.RealDevice"/>, in the network namespace of the calling thread.</summary>
    public static Attachment Create(AttachOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var deviceName in options.ExtraDevices.Prepend(options.Name))
        {
            DeviceName.Validate(deviceName);
            if (s_reservedPrefixes.Any(p => deviceName.StartsWith(p, StringComparison.Ordinal)))
            {
                throw new VirtnetException(FailureKind.ReservedName, "attach", deviceName, $"{deviceName}: names starting with vnpeer, vnpump or vnring are virtnet's own", Errno.EINVAL);
            }
        }

        if (options.Vlan is < 0 or > 4094)
        {
            throw new VirtnetException(FailureKind.Unsuitable, "attach", options.Name, $"VLAN {options.Vlan}: a VLAN id is 1 to 4094", Errno.EINVAL);
        }

        bool mirror = options.Mirror != MirrorDirections.None;
        CheckCombinations(options);

        // Every mode but the whole-device passthru shares the real device through its switch.
        bool shared = options.Mode != BindingMode.Passthru || options.Vlan != 0;
        // A mirror's device is a monitor port, not a second host: by default it does not answer for the real device's MAC.
        var macMode = options.MacMode ?? (options.Mode == BindingMode.Passthru && !mirror ? MacMode.Inherit : MacMode.Random);
        CheckPrivileges();
        using var cleanup = new Cleanup();
        var rtnl = cleanup.Add(RtNetlink.Open());
        // A binding that leaves frames to the real device's stack (a filter, a mirror) may run on a bridge or bond port.
        var real = RealDevice.Open(rtnl, options.RealDevice, AliasPrefix, allowPort: mirror || options.Filter is not null);
        if (!Tcx.IsSupported())
        {
            throw new VirtnetException(FailureKind.Unsupported, "tcx probe", real.Name, $"this kernel ({Environment.OSVersion.Version}) has no tcx hooks; virtnet needs Linux 6.6 or newer", Errno.EOPNOTSUPP);
        }

        // First the guard (no two attaches to one device can both get past it), then the programs on the hook
        // (an attach by some other tool or an older virtnet).
        // Mirrors take nothing: they need no guard, and coexist with any binding and with each other.
        string owner = options.Netns is { } ns ? $"{options.Name} in {ns}" : options.Name;
        var guard = mirror ? null : cleanup.Add(AttachGuard.Take(real.Index, real.Name, shared, owner, () => LiveSharers(real.Index)));
        if (!mirror && Tcx.QueryProgramNames(real.Index, TcxDirection.Ingress).Any(n => n.StartsWith(AliasPrefix, StringComparison.Ordinal) && n != MirrorDatapath.MirrorProgramName && (!shared || n != SwitchPrograms.DispatchName)))
        {
            throw new VirtnetException(FailureKind.AlreadyAttached, "attach", real.Name, $"{real.Name}: already attached by another virtnet; stop that one first", Errno.EBUSY);
        }

        // The namespace is held only while the devices are made: afterwards the binding reaches it by path (checked
        // to be the same namespace), so that when its last process exits it dies, taking the virtual device with
        // it, and the binding ends instead of sending the real device's frames into a dead namespace.
        var netns = options.Netns is { } nsPath ? cleanup.Add(OpenNamespace(nsPath)) : null;
        if (netns is not null && NamespaceByPath.Identity(netns) == NamespaceByPath.Current())
        {
            // Our own namespace under another name (e.g. /proc/self/ns/net): the ordinary mode.
            netns.Dispose();
            netns = null;
        }

        // On a shared device, the registry lock is held while this binding takes its slot and key. First what dead
        // bindings left: their entries in the switch and their veth pairs (whose far ends may hold the name wanted).
        // On failure the cleanup runs before the lock is let go (its first item, so undone last).
        FileDescriptor? registry = shared ? SwitchRegistry.Lock(real.Index, real.Name) : null;
        cleanup.Add(() => registry?.Dispose());
        RealSwitch? sw = null;
        if (shared)
        {
            sw = cleanup.Add(RealSwitch.Open(real.Index, real.Name));
            SwitchRegistry.Sweep(sw, dead => RemoveStalePeer(rtnl, PeerNameFor(real.Index, dead)));
            RemoveDeadPeers(rtnl, real.Index);
        }
        else
        {
            // A kernel-datapath pair in another namespace that a killed attach to this device left behind.
            RemoveStalePeer(rtnl, PeerNameFor(real.Index));
        }

        foreach (var deviceName in options.ExtraDevices.Prepend(options.Name))
        {
            CheckNameFree(rtnl, netns, deviceName);
        }
        var mac = macMode switch
        {
            MacMode.Inherit => real.Mac,
            MacMode.Random => RandomMac(),
            _ => options.Mac ?? throw new ArgumentException("MacMode.Explicit needs Mac", nameof(options)),
        };

        SwitchPort? port = null;
        FileDescriptor? slotLock = null;
        string peerName = PeerNameFor(real.Index);
        if (sw is not null)
        {
            CheckKey(sw, real, options.Mode, options.Vlan, mac);
            // A slot whose private devices are still there (a killed binding's TAPs on their way out) is skipped.
            (slotLock, int slot) = SwitchRegistry.Claim(real.Index, real.Name, owner, s => DatapathFactory.SlotDeviceNames(real.Index, s).Any(n => rtnl.TryGetLink(n) is not null));
            cleanup.Add(slotLock);
            peerName = PeerNameFor(real.Index, slot);
            sw.ResetCounters(slot);
            sw.Put(new SwitchKey(real.Mac, 0), HostEntry(real.Index));
            port = new SwitchPort(sw, slot, options.Vlan, ToSwitchMode(options.Mode), mac);
        }

        var shape = DatapathFactory.ShapeFor(options.Datapath, otherNamespace: netns is not null);
        var spec = new VirtualDeviceSpec(options.Name, mac, real.Link, $"{AliasPrefix}: bound to {real.Name}", netns, options.Netns);
        var virt = cleanup.Add(VirtualDevice.Create(rtnl, shape, spec, peerName));
        // Further devices: TAPs like the first, each with an address of its own (ports 2, 3, ...).
        VirtualDevice[] extra = [.. options.ExtraDevices.Select((n, i) => cleanup.Add(VirtualDevice.Create(rtnl, shape, spec with
        {
            Name = n,
            Mac = RandomMac(),
            Alias = $"{AliasPrefix}: port {i + 2} of {options.Name}, bound to {real.Name}",
        }, peerName)))];

        // A MAC the real device does not own must still get through its receive filter.
        var membership = mirror || mac.AsSpan().SequenceEqual(real.Mac) ? null : cleanup.Add(PacketMembership.AddUnicast(real.Index, real.Name, mac));

        var setup = new DatapathSetup(rtnl, real.Link, virt, options.Handlers, options.BusyPoll ?? AttachOptions.DefaultBusyPoll, port)
        {
            Filter = options.Filter,
            Mirror = options.Mirror,
            Extra = extra,
        };
        var datapath = cleanup.Add(DatapathFactory.Create(options.Datapath, setup));

        // Up only now: whatever the virtual device's stack sends first (DAD, MLD) already has its way out. Then,
        // on a shared device, the switch starts sending the binding its frames.
        VirtualDevice[] devices = [virt, .. extra];
        foreach (var device in devices)
        {
            device.BringUp(rtnl, real.Carrier);
        }

        datapath.Publish();
        cleanup.Commit();
        registry?.Dispose();
        netns?.Dispose();
        var attachment = new Attachment(rtnl, real, devices, datapath, membership, guard, followMac: macMode == MacMode.Inherit)
        {
            _port = port,
            _slotLock = slotLock,
            Mode = options.Mode,
            Vlan = options.Vlan,
            Filter = options.Filter?.Expression,
            Mirror = options.Mirror,
        };
        VirtnetMeter.Register(attachment);
        return attachment;
    }

    /// <summary>Refuses the combinations of options that cannot work (handlers on the kernel datapath) or are not built (yet).</summary>
    private static void CheckCombinations(AttachOptions options)
    {
        // The kernel datapath never hands a frame to managed code: handlers given with it would never run.
        if (options.Handlers.Count > 0 && options.Datapath == DatapathKind.Kernel)
        {
            string names = string.Join(", ", options.Handlers.Select(h => h.GetType().Name));
            throw new VirtnetException(FailureKind.Unsuitable, "attach", options.Name, $"{options.Name}: handlers ({names}) run on the user datapath only, and this binding's is the kernel one; set Datapath = DatapathKind.User (--datapath user), or leave the handlers out", Errno.EINVAL);
        }

        if (options.ExtraDevices.Count > 0)
        {
            if (options.Datapath == DatapathKind.Kernel)
            {
                throw new VirtnetException(FailureKind.Unsuitable, "attach", options.ExtraDevices[0], $"{options.ExtraDevices[0]}: further virtual devices get frames from handlers, which run on the user datapath only; set Datapath = DatapathKind.User (--datapath user, or give a --handler)", Errno.EINVAL);
            }

            if (options.ExtraDevices.Prepend(options.Name).GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
            {
                throw new VirtnetException(FailureKind.NameInUse, "attach", twice.Key, $"{twice.Key}: named twice among the binding's devices; give each device a name of its own", Errno.EEXIST);
            }
        }

        if (options.Mirror != MirrorDirections.None)
        {
            if (options.Mode != BindingMode.Passthru)
            {
                throw new VirtnetException(FailureKind.Unsuitable, "attach", options.Name, $"{options.Name}: a mirror gets copies of every frame and has no mode; leave out --mode", Errno.EINVAL);
            }

            if (options.Vlan != 0)
            {
                throw new VirtnetException(FailureKind.Unsuitable, "attach", options.Name, $"{options.Name}: a mirror copies frames as they are; for one VLAN's frames use --filter 'vlan {options.Vlan}' instead of --vlan", Errno.EINVAL);
            }

        }
    }

    private static SwitchMode ToSwitchMode(BindingMode mode) => mode switch
    {
        BindingMode.Bridge => SwitchMode.Bridge,
        BindingMode.Private => SwitchMode.Private,
        BindingMode.Vepa => SwitchMode.Vepa,
        _ => SwitchMode.Passthru,
    };

    private static SwitchEntry HostEntry(int realIndex) => new(realIndex, SwitchPrograms.FlagIngress, 0, SwitchMode.Host, 0xff);

    /// <summary>The living bindings that share the device, for a sentence.</summary>
    private static List<string> LiveSharers(int realIndex)
    {
        var names = new List<string>();
        for (int slot = 0; slot < SwitchPrograms.MaxPorts; slot++)
        {
            if (SwitchRegistry.IsAlive(realIndex, slot))
            {
                names.Add(SwitchRegistry.Owner(realIndex, slot));
            }
        }

        return names;
    }

    /// <summary>Refuses a key that clashes with a living binding's, naming it; the running ones are untouched.</summary>
    private static void CheckKey(RealSwitch sw, RealDevice real, BindingMode mode, int vlan, byte[] mac)
    {
        string onVlan = vlan == 0 ? "untagged" : $"on VLAN {vlan}";
        if (mode != BindingMode.Passthru && vlan == 0 && mac.AsSpan().SequenceEqual(real.Mac))
        {
            throw new VirtnetException(FailureKind.KeyInUse, "attach", real.Name, $"{real.Name}: {FormatMac(mac)} is {real.Name}'s own address, which stays with its stack; choose another MAC", Errno.EADDRINUSE);
        }

        foreach (var (key, entry) in sw.Entries())
        {
            if (entry.Mode == SwitchMode.Host || key.Vlan != vlan)
            {
                continue;
            }

            string holder = SwitchRegistry.Owner(sw.RealIndex, entry.Slot);
            if (mode == BindingMode.Passthru)
            {
                throw new VirtnetException(FailureKind.KeyInUse, "attach", real.Name, $"{real.Name}: {(vlan == 0 ? "its untagged frames are" : $"VLAN {vlan} is")} already shared with {holder}, and passthru takes them all; stop it first, or choose another VLAN", Errno.EADDRINUSE);
            }

            if (key.IsPassthru)
            {
                throw new VirtnetException(FailureKind.KeyInUse, "attach", real.Name, $"{real.Name}: VLAN {vlan} is taken whole by the passthru binding {holder}; stop it first, or choose another VLAN", Errno.EADDRINUSE);
            }

            if (key.Mac.AsSpan().SequenceEqual(mac))
            {
                throw new VirtnetException(FailureKind.KeyInUse, "attach", real.Name, $"{real.Name}: {FormatMac(mac)} {onVlan} is already served by {holder}; choose another MAC or VLAN", Errno.EADDRINUSE);
            }
        }
    }

    private static NetNamespace OpenNamespace(string path)
    {
        try
        {
            return NetNamespace.Open(path);
        }
        catch (VirtnetException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
        {
            throw new VirtnetException(FailureKind.NoNamespace, "attach", path, $"no network namespace {path}; create it first (ip netns add NAME)", e.Errno);
        }
    }

    private static void CheckNameFree(RtNetlink rtnl, NetNamespace? netns, string name)
    {
        bool taken = netns is null
            ? rtnl.TryGetLink(name) is not null
            : InNamespace(netns, there => there.TryGetLink(name) is not null);
        if (taken)
        {
            string where = netns is null ? "" : $" in {netns.Description}";
            throw new VirtnetException(FailureKind.NameInUse, "attach", name, $"{name}: name already in use{where}", Errno.EEXIST);
        }
    }

    private static bool InNamespace(NetNamespace netns, Func<RtNetlink, bool> ask)
    {
        using var there = RtNetlink.OpenIn(netns);
        return ask(there);
    }

    /// <summary>The veth pairs of dead bindings in any slot of a shared device (call with the registry lock held).</summary>
    private static void RemoveDeadPeers(RtNetlink rtnl, int realIndex)
    {
        string prefix = PeerNameFor(realIndex, 0)[..^1];
        foreach (var link in rtnl.GetLinks())
        {
            if (link.Name.StartsWith(prefix, StringComparison.Ordinal)
                && int.TryParse(link.Name.AsSpan(prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int slot)
                && !SwitchRegistry.IsAlive(realIndex, slot))
            {
                RemoveStalePeer(rtnl, link.Name);
            }
        }
    }

    /// <summary>A peer a killed attach left behind is ours to remove; any other device of that name is in the way.</summary>
    private static void RemoveStalePeer(RtNetlink rtnl, string peerName)
    {
        if (rtnl.TryGetLink(peerName) is not { } stale)
        {
            return;
        }

        if (stale.Kind != "veth" || stale.Alias?.StartsWith(VethPairDevice.PeerAliasPrefix, StringComparison.Ordinal) != true)
        {
            throw new VirtnetException(FailureKind.NameInUse, "attach", peerName, $"{peerName}: name already in use by a device virtnet did not make", Errno.EEXIST);
        }

        // A live attach has its egress program on the peer; only a dead one's pair has none.
        if (Tcx.QueryProgramNames(stale.Index, TcxDirection.Ingress).Any(n => n == KernelDatapath.EgressProgramName))
        {
            throw new VirtnetException(FailureKind.AlreadyAttached, "attach", peerName, $"{peerName}: in use by another virtnet; stop that one first", Errno.EBUSY);
        }

        rtnl.DeleteLink(stale.Index);
    }

    /// <summary>The virtual device's MTU changed, following the real device's: its new MTU. Raised on the thread that runs <see cref="Run(CancellationToken, Action{string}?)"/>.</summary>
    public event Action<int>? MtuChanged;

    /// <summary>The real device's carrier changed, and the virtual device's with it: on (true) or off.</summary>
    public event Action<bool>? CarrierChanged;

    /// <summary>The virtual device's MAC changed, following the real device's (passthru with an inherited MAC): the new one.</summary>
    public event Action<byte[]>? MacChanged;

    /// <summary>The real device was renamed: its new name (the binding follows it).</summary>
    public event Action<string>? RealDeviceRenamed;

    /// <summary>The real device was removed: the binding ends (<see cref="Run(CancellationToken, Action{string}?)"/> returns why).</summary>
    public event Action? RealDeviceRemoved;

    /// <summary>
    /// Follows the real device (MTU, carrier, removal) until <paramref name="cancellation"/> fires. Returns null
    /// on a requested stop, or a sentence saying why the binding cannot go on.
    /// </summary>
    public string? Run(CancellationToken cancellation, Action<string>? log = null) => Run(LinkMonitor.Open(), cancellation, log);

    /// <summary>
    /// <see cref="Run(CancellationToken, Action{string}?)"/> on a thread of its own (it blocks on the kernel's link
    /// notifications): completes with null when <paramref name="cancellation"/> stopped it, or with why the binding
    /// could not go on. The events are raised on that thread.
    /// </summary>
    public Task<string?> RunAsync(CancellationToken cancellation, Action<string>? log = null)
    {
        var subscription = LinkMonitor.Open();
        return Task.Factory.StartNew(() => Run(subscription, cancellation, log), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>
    /// <see cref="Run(CancellationToken, Action{string}?)"/> with a subscription opened earlier (before the ready
    /// line, so that no change made right after it is missed); disposes it.
    /// </summary>
    internal string? Run(LinkMonitor subscription, CancellationToken cancellation, Action<string>? log = null)
    {
        using var monitor = subscription;
        using var registration = cancellation.Register(monitor.Wake);

        // Catch up with anything that changed before the subscription.
        if (Follow(_rtnl.TryGetLink(RealIndex), log) is { } gone)
        {
            return gone;
        }

        if (!_virtual.Exists(_rtnl))
        {
            return $"{VirtualName} was deleted";
        }

        while (!cancellation.IsCancellationRequested)
        {
            if (_datapath.Fault is { } fault)
            {
                return fault;
            }

            foreach (var line in _datapath.TakeHandlerReports())
            {
                log?.Invoke(line);
            }

            var link = monitor.Read(TimeSpan.FromMilliseconds(SweepIntervalMs));
            SweepIfDue();

            // The virtual device's namespace, held by a socket of ours: once its path is gone, so is the binding.
            if (_virtual.Namespace is { } ns && !ns.StillThere())
            {
                return $"{ns.Path} is gone, and {VirtualName} with it";
            }

            if (link is null)
            {
                continue;
            }

            if (Array.Find(_devices, d => d.IsDeletedBy(link)) is { } deleted)
            {
                return $"{deleted.Name} was deleted";
            }

            if (Follow(link, log) is { } ended)
            {
                return ended;
            }
        }

        return null;
    }

    /// <summary>Applies what <paramref name="link"/> says of the real device to the ports; a sentence if it is gone.</summary>
    private string? Follow(LinkInfo? link, Action<string>? log)
    {
        if (link is not null && link.Index != RealIndex)
        {
            FollowTarget(link, log);

            // Not the real device: one of our private devices may need setting up again.
            if ((_datapath.OnLinkChanged(link) ?? _virtual.OnLinkChanged(_rtnl, link, _real.Carrier)) is { } said)
            {
                log?.Invoke($"{VirtualName}: {said}");
            }

            return null;
        }

        string oldName = RealName;
        var change = _real.Update(link);
        if ((change & RealDeviceChange.Gone) != 0)
        {
            RealDeviceRemoved?.Invoke();
            return $"{RealName} disappeared";
        }

        if ((change & RealDeviceChange.Name) != 0)
        {
            _virtual.SetAlias(_rtnl, $"{AliasPrefix}: bound to {RealName}");
            log?.Invoke($"{VirtualName}: {oldName} is now called {RealName} (following it)");
            RealDeviceRenamed?.Invoke(RealName);
        }

        int mtu = _virtual.MtuFor(_real.Mtu);
        if (mtu < _real.Mtu && !_clampSaid)
        {
            _clampSaid = true;
            log?.Invoke($"{VirtualName}: mtu {mtu}, the most its driver takes, below {RealName}'s {_real.Mtu}; larger frames from the wire are dropped");
        }

        if (mtu != _mtu)
        {
            // Growing: the pump first so nothing larger than it can take arrives; shrinking: the same order is harmless.
            _datapath.OnMtuChanged(_real.Mtu);
            foreach (var device in _devices)
            {
                device.SetMtu(_rtnl, device.MtuFor(_real.Mtu), _mtu);
            }

            log?.Invoke($"{VirtualName}: mtu {_mtu} -> {mtu} (following {RealName})");
            _mtu = mtu;
            MtuChanged?.Invoke(mtu);
        }

        bool carrier = _real.Carrier;
        if (carrier != _carrier)
        {
            foreach (var device in _devices)
            {
                device.SetCarrier(_rtnl, carrier);
            }

            log?.Invoke($"{VirtualName}: carrier {(carrier ? "on" : "off")} (following {RealName})");
            _carrier = carrier;
            CarrierChanged?.Invoke(carrier);
        }

        if ((change & RealDeviceChange.Mac) != 0 && _port is not null)
        {
            // The host's own address moved: the switch's Host entry moves with it.
            using var registry = SwitchRegistry.Lock(RealIndex, RealName);
            foreach (var (key, entry) in _port.Switch.Entries())
            {
                if (entry.Mode == SwitchMode.Host && key.Vlan == 0)
                {
                    _port.Switch.Remove(key);
                }
            }

            _port.Switch.Put(new SwitchKey(_real.Mac, 0), HostEntry(RealIndex));
        }

        if ((change & RealDeviceChange.Mac) != 0 && _followMac)
        {
            // --mac inherit is macvlan passthru's: the virtual device keeps the real device's address.
            // Programs that match on the MAC first (the classify program of --netns): once the device answers
            // with its new address, frames for it are already seen as its own.
            var mac = _real.Mac;
            _datapath.OnVirtualMacChanged(mac);
            _virtual.SetMac(_rtnl, mac);
            if (_port is not null)
            {
                using var registry = SwitchRegistry.Lock(RealIndex, RealName);
                _port.ChangeMac(mac);
            }

            Ports = [Ports[0] with { Mac = mac }, .. Ports.Skip(1)];
            log?.Invoke($"{VirtualName}: mac {FormatMac(mac)} (following {RealName})");
            MacChanged?.Invoke((byte[])mac.Clone());
        }

        return null;
    }

    /// <summary>
    /// Kernel datapath: while the device the wire's frames are delivered to is down (a TAP set down, or the far end
    /// of a veth pair, whose near end then has no carrier), they are dropped and counted under that cause; the
    /// kernel would drop them anyway, and for a veth peer without counting them.
    /// </summary>
    private void FollowTarget(LinkInfo link, Action<string>? log)
    {
        if (Datapath != DatapathKind.Kernel || link.Deleted || !_real.Carrier)
        {
            // Without carrier nothing arrives: a veth peer set down to pass that on is not "the device is down".
            return;
        }

        bool down;
        if (_virtual.Peer is { } peer && link.Index == peer.Index)
        {
            down = !link.Carrier;
        }
        else if (_virtual.Peer is null && _virtual.Namespace is null && link.Index == _virtual.Index)
        {
            down = !link.IsUp;
        }
        else
        {
            return;
        }

        if (down == _targetDown)
        {
            return;
        }

        using (_port is null ? null : SwitchRegistry.Lock(RealIndex, RealName))
        {
            _datapath.SetTargetDown(down);
        }

        _targetDown = down;
        log?.Invoke(down ? $"{VirtualName}: down; its frames are dropped and counted until it is up" : $"{VirtualName}: up again; its frames flow");
    }

    /// <summary>How often a binding on a shared device looks for dead siblings (whose frames must stop within 1 s).</summary>
    private const int SweepIntervalMs = 250;

    /// <summary>On a shared device: removes a killed sibling's entries from the switch, and its veth pair.</summary>
    private void SweepIfDue()
    {
        if (_port is null || Environment.TickCount64 - _lastSweep < SweepIntervalMs)
        {
            return;
        }

        _lastSweep = Environment.TickCount64;
        _watch ??= new SlotWatch(RealIndex, _port.Slot);
        if (!_watch.AnyDied())
        {
            return;
        }

        using var registry = SwitchRegistry.Lock(RealIndex, RealName);
        SwitchRegistry.Sweep(_port.Switch, dead =>
        {
            try
            {
                RemoveStalePeer(_rtnl, PeerNameFor(RealIndex, dead));
            }
            catch (VirtnetException)
            {
                // Not ours to remove after all (a device of that name virtnet did not make): leave it.
            }
        });
    }

    private static string FormatMac(byte[] mac) => string.Join(':', mac.Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>What crossed the binding so far, per direction.</summary>
    public DatapathCounters ReadCounters() => _datapath.ReadCounters();

    /// <summary>Gives the real device back, then removes the virtual device and everything else the binding made.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        VirtnetMeter.Unregister(this);

        // On a shared device the switch's tables change under the registry lock.
        using (var registry = _port is null ? null : SwitchRegistry.Lock(RealIndex, RealName))
        {
            _datapath.Dispose();
        }

        _membership?.Dispose();
        foreach (var device in _devices)
        {
            device.Dispose();
        }

        _port?.Switch.Dispose();
        _watch?.Dispose();
        _slotLock?.Dispose();
        _rtnl.Dispose();
        _guard?.Dispose();
    }

    private static void CheckPrivileges()
    {
        // CAP_SYS_ADMIN grants BPF too. CAP_NET_RAW: packet sockets (the user datapath's rings, the kernel
        // datapath's slow path, a MAC of the virtual device's own on the real device's filter).
        var missing = new List<string>();
        if (!Capabilities.HasEffective(Capabilities.CAP_NET_ADMIN))
        {
            missing.Add("CAP_NET_ADMIN");
        }

        if (!Capabilities.HasEffective(Capabilities.CAP_BPF) && !Capabilities.HasEffective(Capabilities.CAP_SYS_ADMIN))
        {
            missing.Add("CAP_BPF");
        }

        if (!Capabilities.HasEffective(Capabilities.CAP_NET_RAW))
        {
            missing.Add("CAP_NET_RAW");
        }

        if (missing.Count > 0)
        {
            string list = missing.Count == 1 ? missing[0] : $"{string.Join(", ", missing[..^1])} and {missing[^1]}";
            throw new VirtnetException(FailureKind.NotPermitted, "attach", null, $"attach needs {list}; run it as root (sudo)", Errno.EPERM);
        }
    }

    /// <summary>A random locally administered unicast address (02:xx:...).</summary>
    internal static byte[] RandomMac()
    {
        var mac = new byte[6];
        RandomNumberGenerator.Fill(mac);
        mac[0] = (byte)((mac[0] & 0xFE) | 0x02);
        return mac;
    }
}
