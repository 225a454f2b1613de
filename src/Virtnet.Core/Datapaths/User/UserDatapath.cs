// The user datapath's setup: every kernel object it needs, made in an order that never delivers a frame twice,
// and owned by fds so a dead process leaves nothing. The frame loop is Forwarder.cs (ring road:
// Forwarder.Ring.cs), the load-spreading policy SpreadPolicy.cs; why this shape: docs/design.md.
//
// Ingress takes one of two roads, chosen per frame by the same BPF test on both sides so that one flow always
// takes one road: TCP, and anything longer than a ring slot, goes through a private TAP ("pump", vnpump<ifindex>)
// whose reads carry 64 KB GSO super-frames; everything else is copied by the kernel into TPACKET_V2 receive rings
// (one per CPU) and dropped by tcx before the real device's stack sees it.
//
//   wire -> real -+-[packet rings, ring filter: non-TCP]--> per-CPU ring ------------+
//                 +-[tcx ingress: TCP -> bpf_redirect(pump, 0); rest -> drop]--> pump fd -+- forwarders -> virt fd -> stack
//   stack -> virt fd -> forwarders -> pump fd --[tcx ingress on pump: bpf_redirect(real, 0)]--> real -> wire
//
// On a shared real device (a mode other than the whole-device passthru) the switch makes the same split for the
// binding's frames alone: small non-TCP ones are received by a private device, vnring<ifindex>s<slot>, whose rings
// the forwarders drain (its tcx ingress drops each frame once the rings have their copy); the rest go into the
// pump, vnpump<ifindex>s<slot>, whose tcx ingress runs the binding's switch program for what the process writes.
using Virtnet.Bpf;
using Virtnet.Devices;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet.Datapaths.User;

internal sealed class UserDatapath : IDatapath
{
    public const string IngressProgramName = "virtnet_uin";
    public const string PumpProgramName = "virtnet_uout";
    public const string SteeringProgramName = "virtnet_steer";
    public const string RingFilterName = "virtnet_ring";
    public const string FilterProgramName = "virtnet_flt";

    /// <summary>Slots per receive ring (2 KB each: 8 MB a ring, mapped whole, so it counts in RSS).</summary>
    public const int RingSlots = 4096;

    /// <summary>
    /// Slots per ring of a binding on a shared device (2 MB a ring): it carries one binding's small frames, and a
    /// device carries up to 64 bindings, each with a ring per CPU.
    /// </summary>
    public const int SharedRingSlots = 1024;

    private readonly RtNetlink _rtnl;
    private readonly TapDevice _pump;
    private readonly int _pumpIndex;
    private readonly int _pumpMaxMtu;
    private readonly DeviceCounter _pumpDropped = new(0);
    private readonly DeviceCounter _virtualDropped = new(0);
    private readonly DeviceCounter _ringDeviceDropped = new(0);
    private readonly HashSet<int> _upSaid = [];
    private readonly VirtualDevice _virtual;
    private readonly Cleanup _owned;
    private readonly Forwarder[] _forwarders;
    private readonly Lock _ringDropsGate = new();
    private ulong _ringDrops;
    private int _disposed;

    private UserDatapath(RtNetlink rtnl, TapDevice pump, LinkInfo pumpLink, VirtualDevice virt, Cleanup owned, Forwarder[] forwarders, bool batched)
    {
        _rtnl = rtnl;
        _pump = pump;
        _pumpIndex = pumpLink.Index;
        _pumpMaxMtu = pumpLink.MaxMtu;
        _virtual = virt;
        _owned = owned;
        _forwarders = forwarders;
        BatchedWrites = batched;
    }

    public DatapathKind Kind => DatapathKind.User;

    public string? Fault => _ringDeleted ? $"{_ringName} was deleted"
        : _forwarders.Select(f => f.Fault ?? f.Faults.Stop).FirstOrDefault(f => f is not null);

    /// <summary>How often a handler's exceptions are logged at most.</summary>
    private static readonly long ReportEvery = 10 * System.Diagnostics.Stopwatch.Frequency;

    private long[]? _reportedAt;

    /// <summary>Each handler's OnStart, once, before any frame: an exception fails the setup with its sentence.</summary>
    private static void StartHandlers(DatapathSetup setup, IFrameHandler[] handlers, int forwarders, System.Collections.Concurrent.ConcurrentQueue<string> said)
    {
        if (handlers.Length == 0)
        {
            return;
        }

        HandlerPort[] ports = [new(0, setup.Real.Name, setup.Real.Mac.ToArray()), new(1, setup.Virtual.Name, setup.Virtual.Mac.ToArray()), .. setup.Extra.Select((d, i) => new HandlerPort(i + 2, d.Name, d.Mac.ToArray()))];
        foreach (var handler in handlers)
        {
            string name = handler.GetType().Name;
            var context = new HandlerContext(ports, setup.Real.Mtu, forwarders, line => said.Enqueue($"{setup.Virtual.Name}: handler {name}: {line}"));
            try
            {
                handler.OnStart(context);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new VirtnetException(FailureKind.Unsuitable, "handler start", setup.Virtual.Name, $"{setup.Virtual.Name}: handler {name} failed to start: {e.GetType().Name}: {e.Message.TrimEnd('.')}", Errno.EINVAL);
            }
        }
    }

    public IReadOnlyList<string> TakeHandlerReports()
    {
        if (_forwarders.Length == 0 || _forwarders[0].Faults.Handlers.Length == 0)
        {
            return [];
        }

        List<string>? said = null;
        while (_forwarders[0].HandlerLog.TryDequeue(out var line))
        {
            (said ??= []).Add(line);
        }

        var handlers = _forwarders[0].Faults.Handlers;
        _reportedAt ??= Enumerable.Repeat(long.MinValue / 2, handlers.Length).ToArray();
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        List<string>? lines = null;
        for (int i = 0; i < handlers.Length; i++)
        {
            if (now - _reportedAt[i] < ReportEvery)
            {
                continue;
            }

            Exception? first = null;
            long count = 0;
            foreach (var f in _forwarders)
            {
                var (e, n) = f.Faults.Take(i);
                first ??= e;
                count += n;
            }

            if (first is null)
            {
                continue;
            }

            _reportedAt[i] = now;
            string more = count > 1 ? $", and {count - 1} more times since" : "";
            (lines ??= []).Add($"handler {handlers[i].GetType().Name} threw {first.GetType().Name}: {first.Message}{more}; each such frame is dropped as 'handler fault' and forwarding goes on");
        }

        if (said is not null)
        {
            said.AddRange(lines ?? []);
            return said;
        }

        return lines ?? (IReadOnlyList<string>)[];
    }

    private volatile bool _ringDeleted;

    public string Details => _mirrorSent is not null
        ? $"mirror of {Mirrors.Describe(_mirror)}, sink {_pump.Name}, {(BatchedWrites ? "io_uring" : "write() per frame")}"
        : $"pump {_pump.Name}{(_ringName is null ? "" : $", rings on {_ringName}")}, {(BatchedWrites ? "io_uring" : "write() per frame")}";

    /// <summary>
    /// Whether the forwarders write ring frames into the TAPs in batches through io_uring (one io_uring_enter per
    /// batch) rather than one write() per frame: where the kernel allows it and VIRTNET_IO_URING is not 0.
    /// </summary>
    public bool BatchedWrites { get; }

    /// <summary>The name of the private TAP that carries the real device's frames to and from this process.</summary>
    public static string PumpNameFor(int realIndex) => $"vnpump{realIndex}";

    /// <summary>The same for the binding in switch slot <paramref name="slot"/> of a shared real device.</summary>
    public static string PumpNameFor(int realIndex, int slot) => $"vnpump{realIndex}s{slot}";

    /// <summary>The private device whose rings carry a shared binding's small frames (vnring&lt;ifindex&gt;s&lt;slot&gt;).</summary>
    public static string RingNameFor(int realIndex, int slot) => $"vnring{realIndex}s{slot}";

    public const string RingDropName = "virtnet_rdrop";

    private SwitchPort? _port;
    private int _ringIndex;
    private string? _ringName;

    public IReadOnlyList<string> PrivateDevices => _ringName is null ? [_pump.Name] : [_pump.Name, _ringName];

    private DropSink? _dropSink;

    public bool SendDropsTo(string? socketPath)
    {
        var sink = socketPath is null ? null : DropSink.Connect(socketPath);
        var old = Interlocked.Exchange(ref _dropSink, sink);
        foreach (var f in _forwarders)
        {
            f.DropSink = sink;
        }

        // A forwarder may be in the middle of an offer to the old sink: it closes a moment later.
        if (old is not null)
        {
            _ = Task.Delay(TimeSpan.FromSeconds(1)).ContinueWith(_ => old.Dispose(), TaskScheduler.Default);
        }

        return true;
    }

    /// <summary>The queue count the virtual TAP must be created with for this datapath: one per CPU.</summary>
    public static int QueuesFor() => Math.Clamp(Environment.ProcessorCount, 1, 64);

    /// <remarks>
    /// On a shared real device (<see cref="DatapathSetup.Port"/>) the rings are on the binding's ring device, not on
    /// the real device, where they would copy every frame of every binding and of the host (see the file's header).
    /// </remarks>
    public static UserDatapath Create(DatapathSetup setup)
    {
        var (rtnl, real, virt) = (setup.Rtnl, setup.Real, setup.Virtual);
        var port = setup.Port;
        var tap = virt.Tap ?? throw new ArgumentException("the user datapath needs a TAP as its virtual device", nameof(setup));
        var owned = new Cleanup();
        try
        {
            int queues = tap.Queues.Count;
            var pump = owned.Add(TapDevice.Create(port is null ? PumpNameFor(real.Index) : PumpNameFor(real.Index, port.Slot), queues: queues));
            pump.EnableOffloads(tap.Offloads == 0 ? TapDevice.WantedOffloads : tap.Offloads);
            var pumpLink = SetUpPrivate(rtnl, pump.Name, $"virtnet pump for {real.Name}", real.Mtu);

            // The ring device of a shared binding: a TAP nobody reads, which frames reach by being received.
            var ringTap = port is null ? null : owned.Add(TapDevice.Create(RingNameFor(real.Index, port.Slot), queues: 1));
            var ringLink = ringTap is null ? null : SetUpPrivate(rtnl, ringTap.Name, $"virtnet rings for {real.Name}", real.Mtu);
            var (ringIndex, ringName) = ringLink is { } rl ? (rl.Index, rl.Name) : (real.Index, real.Name);

            var (rings, steer, spread) = OpenRings(owned, setup, pump, ringIndex, ringName, port is null ? RingSlots : SharedRingSlots, outgoing: false);

            if (port is null)
            {
                // On the real device the rings take only what the tcx split leaves them; the ring device gets nothing else.
                var ringFilter = owned.Add(BpfProgram.LoadSocketFilter(RingFilterName, Programs.RingFilter(PacketRing.MaxFrame, setup.SocketTest), real.Name));
                foreach (var ring in rings)
                {
                    ring.AttachFilter(ringFilter.Handle, real.Name);
                }
            }

            var (stop, forwarders, batched) = MakeForwarders(owned, setup, rings, pump, spread, outgoing: false);

            if (port is not null && ringLink is not null)
            {
                // On a shared device: the switch brings the frames (once published); the pump's program takes them out.
                var sw = port.Switch;
                var outProgram = owned.Add(BpfProgram.LoadSchedCls(SwitchPrograms.OutName, SwitchPrograms.Out(sw.PortsFd, sw.GroupFd, sw.Counts.Handle.Fd, real.Index, port.Vlan, port.Mode, port.Slot, atIngressHook: true), pump.Name));
                owned.Add(TcxLink.Attach(outProgram, pumpLink.Index, pump.Name, TcxDirection.Ingress));
                var ringDrop = owned.Add(BpfProgram.LoadSchedCls(RingDropName, Programs.DropConsumed(), ringLink.Name));
                owned.Add(TcxLink.Attach(ringDrop, ringLink.Index, ringLink.Name, TcxDirection.Ingress));
                if (setup.TcTest is { } tcTest && setup.SocketTest is { } socketTest)
                {
                    // The filter where the binding's frames arrive: the pump's transmit and the ring device's sockets.
                    var pumpFilter = owned.Add(BpfProgram.LoadSchedCls(FilterProgramName, SwitchPrograms.FilterAtTarget(sw.Counts.Handle.Fd, port.Slot, tcTest, socket: false), pump.Name));
                    owned.Add(TcxLink.Attach(pumpFilter, pumpLink.Index, pump.Name, TcxDirection.Egress));
                    var ringFilter = owned.Add(BpfProgram.LoadSocketFilter(FilterProgramName, SwitchPrograms.FilterAtTarget(sw.Counts.Handle.Fd, port.Slot, socketTest, socket: true), ringLink.Name));
                    foreach (var ring in rings)
                    {
                        ring.AttachFilter(ringFilter.Handle, ringLink.Name);
                    }
                }

                BindRings(rings, ringLink.Name, steer);
                foreach (var f in forwarders)
                {
                    f.Start();
                }

                owned.Add(() => StopForwarders(stop, forwarders));
                owned.Add(port.Withdraw);
                return new UserDatapath(rtnl, pump, pumpLink, virt, owned, forwarders, batched) { _port = port, _ringIndex = ringLink.Index, _ringName = ringLink.Name };
            }

            var pumpProgram = owned.Add(BpfProgram.LoadSchedCls(PumpProgramName, Programs.Redirect(real.Index, 0), pump.Name));
            var ingressProgram = owned.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.SplitIngress(pumpLink.Index, PacketRing.MaxFrame, setup.TcTest), real.Name));

            // The way out first; then the real device's frames stop reaching its stack (tcx drop) and only then
            // the rings start copying them, so nothing is delivered twice (a frame arriving in between is lost);
            // then the forwarders. Teardown (Cleanup runs in reverse) stops the forwarders before the real device
            // gets its frames back, for the same reason.
            owned.Add(TcxLink.Attach(pumpProgram, pumpLink.Index, pump.Name, TcxDirection.Ingress));
            owned.Add(TcxLink.Attach(ingressProgram, real.Index, real.Name, TcxDirection.Ingress));
            BindRings(rings, real.Name, steer);
            foreach (var f in forwarders)
            {
                f.Start();
            }

            owned.Add(() => StopForwarders(stop, forwarders));
            return new UserDatapath(rtnl, pump, pumpLink, virt, owned, forwarders, batched);
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    private static int s_mirrors;

    /// <summary>
    /// A mirror on the user datapath: receive rings on the real device take copies of what it receives and/or sends
    /// (the ring filter decides, with the binding's filter; no tcx program on the real device at all), and the
    /// forwarders deliver them to the virtual device through the handlers. What the virtual device sends goes to a
    /// private TAP whose tcx ingress counts and drops it: a mirror is receive-only.
    /// </summary>
    public static UserDatapath CreateMirror(DatapathSetup setup)
    {
        var (rtnl, real, virt) = (setup.Rtnl, setup.Real, setup.Virtual);
        var tap = virt.Tap ?? throw new ArgumentException("the user datapath needs a TAP as its virtual device", nameof(setup));
        bool ingress = setup.Mirror.HasFlag(MirrorDirections.Ingress);
        bool egress = setup.Mirror.HasFlag(MirrorDirections.Egress);
        var owned = new Cleanup();
        try
        {
            string sinkName = $"vnpump{Environment.ProcessId % 100000}m{Interlocked.Increment(ref s_mirrors) % 100}";
            var pump = owned.Add(TapDevice.Create(sinkName, queues: tap.Queues.Count));
            pump.EnableOffloads(tap.Offloads == 0 ? TapDevice.WantedOffloads : tap.Offloads);
            var pumpLink = SetUpPrivate(rtnl, pump.Name, $"virtnet mirror sink for {virt.Name}", real.Mtu);
            var sent = owned.Add(CounterMap.Create("virtnet_mcnt", 1));
            var sink = owned.Add(BpfProgram.LoadSchedCls(MirrorSinkName, Programs.CountAndDrop(sent, 0), pump.Name));
            owned.Add(TcxLink.Attach(sink, pumpLink.Index, pump.Name, TcxDirection.Ingress));

            var (rings, steer, spread) = OpenRings(owned, setup, pump, real.Index, real.Name, RingSlots, outgoing: egress);

            var ringFilter = owned.Add(BpfProgram.LoadSocketFilter(RingFilterName, Programs.MirrorRingFilter(ingress, egress, setup.SocketTest), real.Name));
            foreach (var ring in rings)
            {
                ring.AttachFilter(ringFilter.Handle, real.Name);
            }

            var (stop, forwarders, batched) = MakeForwarders(owned, setup, rings, pump, spread, outgoing: egress);

            BindRings(rings, real.Name, steer, outgoing: egress);
            foreach (var f in forwarders)
            {
                f.Start();
            }

            owned.Add(() => StopForwarders(stop, forwarders));
            return new UserDatapath(rtnl, pump, pumpLink, virt, owned, forwarders, batched) { _mirrorSent = sent, _mirror = setup.Mirror };
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    public const string MirrorSinkName = "virtnet_ronly";

    private CounterMap? _mirrorSent;
    private MirrorDirections _mirror;

    /// <summary>
    /// One receive ring per forwarder on <paramref name="device"/>, not yet bound. The virtual TAP's queues and the
    /// rings' fanout pick with the same program: the forwarder of the CPU the frame is on, or of the next CPU while
    /// the forwarders are busy (SpreadPolicy).
    /// </summary>
    private static (PacketRing[] Rings, BpfProgram? Steer, FlagMap Spread) OpenRings(Cleanup owned, DatapathSetup setup, TapDevice pump, int ifindex, string device, int slots, bool outgoing)
    {
        var taps = Taps(setup);
        int queues = taps[0].Queues.Count;
        var spread = owned.Add(FlagMap.Create("virtnet_spread"));
        var rings = new PacketRing[queues];
        for (int q = 0; q < rings.Length; q++)
        {
            rings[q] = owned.Add(PacketRing.Open(ifindex, device, slots, outgoing));
        }

        BpfProgram? steer = queues > 1
            ? owned.Add(BpfProgram.LoadSocketFilter(SteeringProgramName, Programs.SteerByCpu(spread, queues), setup.Real.Name))
            : null;
        if (steer is not null)
        {
            pump.SetSteeringProgram(steer.Handle);
            foreach (var tap in taps)
            {
                tap.SetSteeringProgram(steer.Handle);
            }
        }

        return (rings, steer, spread);
    }

    /// <summary>The virtual devices' TAPs, port 1 on: the first device, then the further ones.</summary>
    private static TapDevice[] Taps(DatapathSetup setup)
        => [.. new[] { setup.Virtual }.Concat(setup.Extra).Select(d => d.Tap ?? throw new ArgumentException($"the user datapath needs a TAP as {d.Name}", nameof(setup)))];

    /// <summary>One forwarder per ring, between the pump (port 0) and the virtual TAPs (1, 2, ...); not started.</summary>
    private static (FileDescriptor Stop, Forwarder[] Forwarders, bool Batched) MakeForwarders(Cleanup owned, DatapathSetup setup, PacketRing[] rings, TapDevice pump, FlagMap spread, bool outgoing)
    {
        var taps = Taps(setup);
        var stop = owned.Add(FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd"));
        var load = new SpreadPolicy(rings.Length, on => spread.Set(on ? 1u : 0u));
        bool batched = IoUring.IsAvailable();
        var handlers = setup.Handlers.ToArray();
        string[] names = [pump.Name, .. taps.Select(t => t.Name)];
        var forwarders = new Forwarder[rings.Length];
        for (int q = 0; q < rings.Length; q++)
        {
            forwarders[q] = new Forwarder(q, rings[q], [pump.Queues[q], .. taps.Select(t => t.Queues[q])], names, stop, handlers, setup.BusyPoll, load, batched, outgoing: outgoing);
        }

        StartHandlers(setup, handlers, rings.Length, forwarders[0].HandlerLog);
        return (stop, forwarders, batched);
    }

    /// <summary>Binds the rings to their device and, with several, into one fanout group steered by CPU.</summary>
    private static void BindRings(PacketRing[] rings, string device, BpfProgram? steer, bool outgoing = false)
    {
        foreach (var ring in rings)
        {
            ring.Bind(device);
        }

        if (steer is not null)
        {
            ushort group = (ushort)Random.Shared.Next(1, 0xFFFF);
            foreach (var ring in rings)
            {
                ring.JoinFanout(group, Packet.PACKET_FANOUT_EBPF, device, outgoing);
            }

            rings[0].SetFanoutProgram(steer.Handle, device);
        }
    }

    /// <summary>
    /// One of the datapath's private TAPs, ready: an alias, no IPv6 (no addresses, autoconfiguration or ND/MLD of
    /// its own that would leak out through the real device), the real device's MTU, no qdisc (a redirect reaches the
    /// TAP's queue directly), up.
    /// </summary>
    private static LinkInfo SetUpPrivate(RtNetlink rtnl, string name, string alias, int mtu)
    {
        var link = rtnl.GetLink(name);
        rtnl.SetAlias(link.Index, alias);
        Sysctl.DisableIpv6(name);
        rtnl.SetMtu(link.Index, Clamp(mtu, link.MaxMtu));
        rtnl.SetRootQdisc(link.Index, "noqueue");
        rtnl.SetUp(link.Index, true);
        return link;
    }

    /// <summary>
    /// What the forwarders moved, plus what the kernel dropped before they could: a full receive ring
    /// (PACKET_STATISTICS tp_drops) or pump ring (the pump's tx_dropped) counts against ingress, a full
    /// virtual-device ring (its tx_dropped) against egress.
    /// </summary>
    public DatapathCounters ReadCounters()
    {
        DirectionCounters ingress = default, egress = default;
        ulong handlerIn = 0, handlerOut = 0, faultIn = 0, faultOut = 0;
        foreach (var f in _forwarders)
        {
            ingress += f.Read(Direction.Ingress);
            egress += f.Read(Direction.Egress);
            handlerIn += f.ReadHandlerDrops(Direction.Ingress);
            handlerOut += f.ReadHandlerDrops(Direction.Egress);
            faultIn += f.ReadHandlerFaults(Direction.Ingress);
            faultOut += f.ReadHandlerFaults(Direction.Egress);
        }

        // A device's counter is gone with the device (the namespace of a virtual device may die first): the
        // highest value seen is kept, so that no counter virtnet reports ever goes down.
        ulong pumpDropped = _pumpDropped.Update(_rtnl.TryGetLink(_pumpIndex)?.Stats?.TxDropped);
        ulong virtDropped = _virtualDropped.Update(_virtual.ReadStats(_rtnl)?.TxDropped);
        // A shared binding's ring device drops what its receive backlog cannot hold (netdev_max_backlog).
        ulong ringDeviceDropped = _ringIndex == 0 ? 0 : _ringDeviceDropped.Update(_rtnl.TryGetLink(_ringIndex)?.Stats?.RxDropped);
        ulong ringDropped;
        lock (_ringDropsGate)
        {
            // PACKET_STATISTICS resets on every read, so the totals are kept here.
            foreach (var f in _forwarders)
            {
                _ringDrops += f.Ring?.TakeStatistics().Drops ?? 0;
            }

            ringDropped = _ringDrops;
        }

        var port = _port;
        // A mirror's device is receive-only: what it sent went to the sink, counted there.
        ulong mirrorSent = _mirrorSent?.Read(0).Frames ?? 0;
        if (_mirrorSent is not null)
        {
            egress = default;
        }

        var reasonsIn = new Dictionary<string, ulong>(StringComparer.Ordinal);
        var reasonsOut = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var f in _forwarders)
        {
            f.Reasons(Direction.Ingress).AddTo(reasonsIn);
            f.Reasons(Direction.Egress).AddTo(reasonsOut);
        }

        var handlerReasons = reasonsIn.Select(r => new HandlerReasonCount(Direction.Ingress, r.Key, r.Value))
            .Concat(reasonsOut.Select(r => new HandlerReasonCount(Direction.Egress, r.Key, r.Value)))
            .ToArray();
        return DatapathCounters.WithCauses(
            ingress,
            egress,
            (Direction.Egress, DropCause.MirrorReceiveOnly, mirrorSent),
            (Direction.Ingress, DropCause.RingFull, ringDropped),
            (Direction.Ingress, DropCause.QueueFull, pumpDropped + ringDeviceDropped),
            (Direction.Ingress, DropCause.Handler, handlerIn),
            (Direction.Ingress, DropCause.HandlerFault, faultIn),
            (Direction.Ingress, DropCause.SendFailed, ingress.Drops - handlerIn - faultIn),
            (Direction.Ingress, DropCause.DeviceDown, port?.Switch.Read(port.Slot, SwitchCount.InDropDown).Frames ?? 0),
            (Direction.Ingress, DropCause.Private, port?.Switch.Read(port.Slot, SwitchCount.InDropPrivate).Frames ?? 0),
            (Direction.Ingress, DropCause.CopyFailed, port?.Switch.Read(port.Slot, SwitchCount.InDropFailed).Frames ?? 0),
            (Direction.Ingress, DropCause.Filter, port?.Switch.Read(port.Slot, SwitchCount.InDropFilter).Frames ?? 0),
            (Direction.Egress, DropCause.QueueFull, virtDropped),
            (Direction.Egress, DropCause.Handler, handlerOut),
            (Direction.Egress, DropCause.HandlerFault, faultOut),
            (Direction.Egress, DropCause.SendFailed, egress.Drops - handlerOut - faultOut)) with
            {
                HandlerReasons = handlerReasons,
                HandlerEmitted = _forwarders.Aggregate(0UL, (sum, f) => sum + f.ReadEmitted().Emitted),
                HandlerEmitFailed = _forwarders.Aggregate(0UL, (sum, f) => sum + f.ReadEmitted().Failed),
            };
    }

    public void OnMtuChanged(int mtu)
    {
        _rtnl.SetMtu(_pumpIndex, Clamp(mtu, _pumpMaxMtu));
        if (_ringIndex != 0)
        {
            // A TAP, like the pump: the same maximum.
            _rtnl.SetMtu(_ringIndex, Clamp(mtu, _pumpMaxMtu));
        }
    }

    /// <summary>The pump carries every frame both ways: set down (by a network manager touching unknown devices, say), it goes up again.</summary>
    public string? OnLinkChanged(LinkInfo link)
    {
        bool ours = link.Index == _pumpIndex || (_ringIndex != 0 && link.Index == _ringIndex);
        if (!ours)
        {
            return null;
        }

        if (link.Deleted)
        {
            // The pump's deletion shows in the forwarders' reads; the ring device's would not (its rings go quiet).
            if (link.Index == _ringIndex)
            {
                _ringDeleted = true;
            }

            return null;
        }

        if (link.IsUp)
        {
            return null;
        }

        try
        {
            _rtnl.SetUp(link.Index, true);
        }
        catch (VirtnetException e) when (e.Errno == Errno.ENODEV)
        {
            // Going down on its way out: the forwarders see the deletion (EBADFD) and end the binding.
            return null;
        }

        return _upSaid.Add(link.Index)
            ? $"{link.Name} was set down; it is virtnet's private device and must stay up, so it was set up again (this is said once)"
            : null;
    }

    public void OnVirtualMacChanged(byte[] mac)
    {
    }

    public void Publish() => _port?.Publish(_pumpIndex, SwitchPrograms.FlagSplit, _ringIndex);

    /// <summary>The pump is the switch's target, and it stays up; a down virtual device shows as failed writes.</summary>
    public void SetTargetDown(bool down)
    {
    }

    private static int Clamp(int mtu, int max) => max > 0 ? Math.Min(mtu, max) : mtu;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _owned.Dispose();
        Interlocked.Exchange(ref _dropSink, null)?.Dispose();
    }

    private static unsafe void StopForwarders(FileDescriptor stop, Forwarder[] forwarders)
    {
        foreach (var f in forwarders)
        {
            f.RequestStop();
        }

        // The eventfd stays readable once written (nobody reads it), so every forwarder's poll() returns.
        ulong one = 1;
        _ = Libc.write(stop.Fd, (byte*)&one, sizeof(ulong));
        foreach (var f in forwarders)
        {
            f.Join();
        }
    }
}
