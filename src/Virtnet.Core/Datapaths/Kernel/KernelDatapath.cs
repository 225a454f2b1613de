// The kernel datapath: two BPF programs on tcx hooks, the userspace image of an rx_handler that returns
// RX_HANDLER_ANOTHER and an ndo_start_xmit that calls dev_queue_xmit. No copy, no process on the path.
//
//   wire -> real --[tcx ingress: count, bpf_redirect(virt, BPF_F_INGRESS)]--> virt receive -> stack
//   (frames the real device's own stack loops back to itself, PACKET_LOOPBACK, stay on the real device)
//   stack -> virt transmit --[tcx egress: count, bpf_redirect(real, 0)]--> real transmit -> wire
//
// The links are never pinned: when this process dies, the kernel closes the fds and detaches both programs.
using Virtnet.Bpf;
using Virtnet.Devices;
using Virtnet.Namespaces;

namespace Virtnet.Datapaths.Kernel;

internal sealed class KernelDatapath : IDatapath
{
    public const string IngressProgramName = "virtnet_in";
    public const string EgressProgramName = "virtnet_out";
    public const string ClassifyProgramName = "virtnet_cls";
    public const string FilterProgramName = "virtnet_flt";

    /// <summary>Passthru counter slots: 0 ingress, 1 egress (Direction), 2 ingress frames dropped while the target was down.</summary>
    private const int DownKey = 2;

    private readonly CounterMap? _counters;
    private FlagMap? _down;
    private SwitchPort? _port;
    private (int Ifindex, int Flags) _target;
    private readonly BpfProgram? _ingressProgram;
    private readonly BpfProgram _egressProgram;
    private readonly TcxLink _egressLink;
    private readonly TcxLink? _ingressLink;
    private readonly BpfProgram? _classifyProgram;
    private readonly TcxLink? _classifyLink;
    private BpfMap? _classifyMac;
    private SlowPath? _slowPath;
    private VirtualDevice? _virtual;
    private DropCounters? _drops;

    private KernelDatapath(CounterMap? counters, BpfProgram? ingressProgram, BpfProgram egressProgram, TcxLink egressLink, TcxLink? ingressLink, BpfProgram? classifyProgram = null, TcxLink? classifyLink = null)
    {
        _classifyProgram = classifyProgram;
        _classifyLink = classifyLink;
        _counters = counters;
        _ingressProgram = ingressProgram;
        _egressProgram = egressProgram;
        _egressLink = egressLink;
        _ingressLink = ingressLink;
    }

    public DatapathKind Kind => DatapathKind.Kernel;

    public string? Fault => _slowPath?.Fault;

    public string? Details => null;

    /// <summary>The programs for the virtual device <paramref name="setup"/> carries: a TAP beside the real device, or a veth pair's far end.</summary>
    public static KernelDatapath Create(DatapathSetup setup)
    {
        var (real, virt) = (setup.Real, setup.Virtual);
        var drops = new DropCounters(setup.Rtnl, real, virt, shared: setup.Port is not null);
        if (setup.Port is { } port)
        {
            return CreateOnSwitch(setup, port, drops);
        }

        if (virt.Peer is { } peer)
        {
            // A veth's transmit is its peer's receive, where the egress program sits: nothing gets past it.
            var paired = CreateWithPeer(real.Index, real.Name, peer.Index, peer.Name, virt.SetupNamespace!, virt.Index, virt.Name, virt.Mac, setup.TcTest);
            paired._virtual = virt;
            paired._drops = drops;
            return paired;
        }

        var datapath = Create(real.Index, real.Name, virt.Index, virt.Name, setup.TcTest);
        try
        {
            datapath._drops = drops;
            datapath._slowPath = SlowPath.Start(virt.Tap!.Queues[0], real.Index, real.Name);
            return datapath;
        }
        catch
        {
            datapath.Dispose();
            throw;
        }
    }

    /// <summary>
    /// On a shared real device: the switch's dispatcher (already there) brings the binding's frames; this binding's
    /// own program takes what its device sends (to a sibling, the host, or the wire). With the device in another
    /// namespace, its veth peer's ingress carries that program, and the classify program sits on the device.
    /// </summary>
    private static KernelDatapath CreateOnSwitch(DatapathSetup setup, SwitchPort port, DropCounters drops)
    {
        var (real, virt) = (setup.Real, setup.Virtual);
        var sw = port.Switch;
        using var cleanup = new Cleanup();
        KernelDatapath datapath;
        if (virt.Peer is { } peer)
        {
            var netns = virt.SetupNamespace!;
            var classifyMac = cleanup.Add(Programs.CreateClassifyMac(virt.Mac));
            var classifyProgram = cleanup.Add(BpfProgram.LoadSchedCls(ClassifyProgramName, Programs.ClassifyFrames(classifyMac), virt.Name));
            var classifyLink = cleanup.Add(TcxLink.AttachIn(netns, classifyProgram, virt.Index, virt.Name, TcxDirection.Ingress));
            if (setup.TcTest is { } test)
            {
                // Where every frame for the binding arrives: from the wire, the host, a sibling.
                var filterProgram = cleanup.Add(BpfProgram.LoadSchedCls(FilterProgramName, SwitchPrograms.FilterAtTarget(sw.Counts.Handle.Fd, port.Slot, test, socket: false), virt.Name));
                cleanup.Add(TcxLink.AttachIn(netns, filterProgram, virt.Index, virt.Name, TcxDirection.Ingress, first: true));
            }

            var outProgram = cleanup.Add(BpfProgram.LoadSchedCls(SwitchPrograms.OutName, SwitchPrograms.Out(sw.PortsFd, sw.GroupFd, sw.Counts.Handle.Fd, real.Index, port.Vlan, port.Mode, port.Slot, atIngressHook: true), peer.Name));
            var outLink = cleanup.Add(TcxLink.Attach(outProgram, peer.Index, peer.Name, TcxDirection.Ingress));
            datapath = new KernelDatapath(null, null, outProgram, outLink, null, classifyProgram, classifyLink) { _target = (peer.Index, SwitchPrograms.FlagPeer), _classifyMac = classifyMac };
        }
        else
        {
            if (setup.TcTest is { } test)
            {
                var filterProgram = cleanup.Add(BpfProgram.LoadSchedCls(FilterProgramName, SwitchPrograms.FilterAtTarget(sw.Counts.Handle.Fd, port.Slot, test, socket: false), virt.Name));
                cleanup.Add(TcxLink.Attach(filterProgram, virt.Index, virt.Name, TcxDirection.Ingress));
            }

            var outProgram = cleanup.Add(BpfProgram.LoadSchedCls(SwitchPrograms.OutName, SwitchPrograms.Out(sw.PortsFd, sw.GroupFd, sw.Counts.Handle.Fd, real.Index, port.Vlan, port.Mode, port.Slot, atIngressHook: false), virt.Name));
            var outLink = cleanup.Add(TcxLink.Attach(outProgram, virt.Index, virt.Name, TcxDirection.Egress));
            datapath = new KernelDatapath(null, null, outProgram, outLink, null) { _target = (virt.Index, SwitchPrograms.FlagIngress) };
            cleanup.Add(datapath);
            datapath._slowPath = SlowPath.Start(virt.Tap!.Queues[0], real.Index, real.Name, port.Vlan);
        }

        datapath._port = port;
        datapath._virtual = virt;
        datapath._drops = drops;
        cleanup.Commit();
        return datapath;
    }

    public void Publish() => _port?.Publish(_target.Ifindex, _target.Flags);

    /// <summary>Loads both programs and attaches them: the virtual side's egress first, so that the moment the
    /// real device's ingress is taken over, frames have a way back out.</summary>
    private static KernelDatapath Create(int realIndex, string realName, int virtIndex, string virtName, BpfTest? filter)
    {
        using var cleanup = new Cleanup();
        var counters = cleanup.Add(CounterMap.Create("virtnet_cnt", 3));
        var down = cleanup.Add(FlagMap.Create("virtnet_down"));
        var ingressProgram = cleanup.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.TakeIngress(counters, (int)Direction.Ingress, virtIndex, 1, peer: false, down, DownKey, filter), realName));
        var egressProgram = cleanup.Add(BpfProgram.LoadSchedCls(EgressProgramName, Programs.CountAndRedirect(counters, (int)Direction.Egress, realIndex, 0), virtName));
        var egressLink = cleanup.Add(TcxLink.Attach(egressProgram, virtIndex, virtName, TcxDirection.Egress));
        var ingressLink = cleanup.Add(TcxLink.Attach(ingressProgram, realIndex, realName, TcxDirection.Ingress));
        cleanup.Commit();
        return new KernelDatapath(counters, ingressProgram, egressProgram, egressLink, ingressLink) { _down = down };
    }

    /// <summary>
    /// The kernel datapath for a virtual device in another namespace: the virtual device is one end of a veth
    /// pair whose other end, <paramref name="peerIndex"/>, stays here with the real device.
    /// <code>
    ///   wire -> real --[tcx ingress: count, bpf_redirect_peer(peer)]--> virtual device (other namespace) -> stack
    ///   stack -> virtual device -> veth -> peer --[tcx ingress: count, bpf_redirect(real, 0)]--> real transmit
    /// </code>
    /// Ingress needs no backlog pass (the namespace switch happens inside the receive loop); egress crosses the
    /// veth as any container's traffic does. The redirect marks every frame PACKET_HOST, so a third program, on
    /// the virtual device's own tcx ingress (attached from inside <paramref name="netns"/>), classifies frames
    /// against <paramref name="virtMac"/> again.
    /// </summary>
    private static KernelDatapath CreateWithPeer(int realIndex, string realName, int peerIndex, string peerName, NetNamespace netns, int virtIndex, string virtName, byte[] virtMac, BpfTest? filter)
    {
        ArgumentNullException.ThrowIfNull(netns);
        using var cleanup = new Cleanup();
        var counters = cleanup.Add(CounterMap.Create("virtnet_cnt", 3));
        var down = cleanup.Add(FlagMap.Create("virtnet_down"));
        var classifyMac = cleanup.Add(Programs.CreateClassifyMac(virtMac));
        var classifyProgram = cleanup.Add(BpfProgram.LoadSchedCls(ClassifyProgramName, Programs.ClassifyFrames(classifyMac), virtName));
        var classifyLink = cleanup.Add(TcxLink.AttachIn(netns, classifyProgram, virtIndex, virtName, TcxDirection.Ingress));
        var ingressProgram = cleanup.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.TakeIngress(counters, (int)Direction.Ingress, peerIndex, 0, peer: true, down, DownKey, filter), realName));
        var egressProgram = cleanup.Add(BpfProgram.LoadSchedCls(EgressProgramName, Programs.CountAndRedirect(counters, (int)Direction.Egress, realIndex, 0), peerName));
        var egressLink = cleanup.Add(TcxLink.Attach(egressProgram, peerIndex, peerName, TcxDirection.Ingress));
        var ingressLink = cleanup.Add(TcxLink.Attach(ingressProgram, realIndex, realName, TcxDirection.Ingress));
        cleanup.Commit();
        return new KernelDatapath(counters, ingressProgram, egressProgram, egressLink, ingressLink, classifyProgram, classifyLink) { _down = down, _classifyMac = classifyMac };
    }

    public DatapathCounters ReadCounters()
    {
        var slow = _slowPath?.Read() ?? default;
        var (refusedIn, refusedOut) = _drops?.Read() ?? (0, 0);
        DirectionCounters ingress, egress;
        ulong down, @private = 0, copyFailed = 0, filtered = 0;
        if (_port is { } port)
        {
            var (inFrames, inBytes) = port.Switch.Read(port.Slot, SwitchCount.In);
            var (outFrames, outBytes) = port.Switch.Read(port.Slot, SwitchCount.Out);
            // What the filter refused where it arrived was counted in on its way there.
            (filtered, ulong filteredBytes) = port.Switch.Read(port.Slot, SwitchCount.InDropFilter);
            ingress = new DirectionCounters(inFrames - Math.Min(inFrames, filtered), inBytes - Math.Min(inBytes, filteredBytes), 0);
            egress = new DirectionCounters(outFrames, outBytes, 0);
            down = port.Switch.Read(port.Slot, SwitchCount.InDropDown).Frames;
            @private = port.Switch.Read(port.Slot, SwitchCount.InDropPrivate).Frames;
            copyFailed = port.Switch.Read(port.Slot, SwitchCount.InDropFailed).Frames;
        }
        else
        {
            var (inFrames, inBytes) = _counters!.Read((int)Direction.Ingress);
            var (outFrames, outBytes) = _counters.Read((int)Direction.Egress);
            ingress = new DirectionCounters(inFrames, inBytes, 0);
            egress = new DirectionCounters(outFrames, outBytes, 0);
            down = _counters.Read(DownKey).Frames;
        }

        // The programs count a frame when they redirect it; the device it is handed to may still refuse it (its
        // rx_dropped, tx_dropped): such a frame entered the binding but did not leave it, so it is a drop and not
        // a frame (SoakAccountingTests: frames + drops = what entered, per direction).
        ingress = ingress with { Frames = ingress.Frames - Math.Min(ingress.Frames, refusedIn) };
        egress = egress with { Frames = egress.Frames - Math.Min(egress.Frames, refusedOut) };
        return DatapathCounters.WithCauses(
            ingress,
            egress + slow,
            (Direction.Ingress, DropCause.DeviceDown, down),
            (Direction.Ingress, DropCause.Private, @private),
            (Direction.Ingress, DropCause.CopyFailed, copyFailed),
            (Direction.Ingress, DropCause.Filter, filtered),
            (Direction.Ingress, DropCause.Refused, refusedIn),
            (Direction.Egress, DropCause.Refused, refusedOut),
            (Direction.Egress, DropCause.SendFailed, slow.Drops)) with { EgressSlowPath = slow.Frames };
    }

    public void SetTargetDown(bool down)
    {
        if (_port is not null)
        {
            _port.SetDown(down);
        }
        else
        {
            _down?.Set(down ? 1u : 0u);
        }
    }

    public void OnMtuChanged(int mtu)
    {
    }

    public string? OnLinkChanged(Netlink.LinkInfo link) => null;

    /// <summary>
    /// With the virtual device in another namespace, the program on its ingress classifies frames against its MAC,
    /// which it reads from a map: a new MAC is one map update, seen by the next frame.
    /// </summary>
    public void OnVirtualMacChanged(byte[] mac)
    {
        if (_classifyMac is { } map)
        {
            Programs.SetClassifyMac(map, mac);
        }
    }

    public void Dispose()
    {
        // Give the real device back first (on a switch: no frame comes for the binding any more).
        _port?.Withdraw();
        _ingressLink?.Dispose();
        _egressLink.Dispose();
        _slowPath?.Dispose();
        _classifyLink?.Dispose();
        _ingressProgram?.Dispose();
        _egressProgram.Dispose();
        _classifyProgram?.Dispose();
        _classifyMac?.Dispose();
        _counters?.Dispose();
        _down?.Dispose();
    }

    /// <summary>
    /// What the kernel dropped after our programs let a frame go: a redirect into a virtual device that is down
    /// (or cannot take the frame) counts in its rx_dropped (____dev_forward_skb), a transmit on a real device that
    /// is down in the real device's tx_dropped (__dev_queue_xmit). Read as the growth since the binding was made,
    /// and never lower than the last value reported (a device's counters go with the device).
    /// </summary>
    /// <remarks>
    /// The real device's tx_dropped also counts what its own stack could not send while the binding ran. With the
    /// virtual device in another namespace a redirect to it while it is down is freed without any counter
    /// (skb_do_redirect's peer path): those frames are not in these numbers.
    /// </remarks>
    /// <remarks>On a shared real device its tx_dropped belongs to every binding and to its stack: it is not counted.</remarks>
    private sealed class DropCounters(Netlink.RtNetlink rtnl, Netlink.LinkInfo real, VirtualDevice virt, bool shared)
    {
        private readonly DeviceCounter _ingress = new(virt.ReadStats(rtnl)?.RxDropped);
        private readonly DeviceCounter _egress = new(shared ? 0 : rtnl.TryGetLink(real.Index)?.Stats?.TxDropped);

        public (ulong Ingress, ulong Egress) Read()
            => (_ingress.Update(virt.ReadStats(rtnl)?.RxDropped), shared ? 0 : _egress.Update(rtnl.TryGetLink(real.Index)?.Stats?.TxDropped));
    }
}
