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

    private readonly CounterMap _counters;
    private readonly BpfProgram _ingressProgram;
    private readonly BpfProgram _egressProgram;
    private readonly TcxLink _egressLink;
    private readonly TcxLink _ingressLink;
    private readonly BpfProgram? _classifyProgram;
    private readonly TcxLink? _classifyLink;

    private KernelDatapath(CounterMap counters, BpfProgram ingressProgram, BpfProgram egressProgram, TcxLink egressLink, TcxLink ingressLink, BpfProgram? classifyProgram = null, TcxLink? classifyLink = null)
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

    public string? Fault => null;

    public string? Details => null;

    /// <summary>The programs for the virtual device <paramref name="setup"/> carries: a TAP beside the real device, or a veth pair's far end.</summary>
    public static KernelDatapath Create(DatapathSetup setup)
    {
        var (real, virt) = (setup.Real, setup.Virtual);
        return virt.Peer is { } peer
            ? CreateWithPeer(real.Index, real.Name, peer.Index, peer.Name, virt.SetupNamespace!, virt.Index, virt.Name, virt.Mac)
            : Create(real.Index, real.Name, virt.Index, virt.Name);
    }

    /// <summary>Loads both programs and attaches them: the virtual side's egress first, so that the moment the
    /// real device's ingress is taken over, frames have a way back out.</summary>
    private static KernelDatapath Create(int realIndex, string realName, int virtIndex, string virtName)
    {
        using var cleanup = new Cleanup();
        var counters = cleanup.Add(CounterMap.Create("virtnet_cnt", 2));
        var ingressProgram = cleanup.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.TakeIngress(counters, (int)Direction.Ingress, virtIndex, 1), realName));
        var egressProgram = cleanup.Add(BpfProgram.LoadSchedCls(EgressProgramName, Programs.CountAndRedirect(counters, (int)Direction.Egress, realIndex, 0), virtName));
        var egressLink = cleanup.Add(TcxLink.Attach(egressProgram, virtIndex, virtName, TcxDirection.Egress));
        var ingressLink = cleanup.Add(TcxLink.Attach(ingressProgram, realIndex, realName, TcxDirection.Ingress));
        cleanup.Commit();
        return new KernelDatapath(counters, ingressProgram, egressProgram, egressLink, ingressLink);
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
    private static KernelDatapath CreateWithPeer(int realIndex, string realName, int peerIndex, string peerName, NetNamespace netns, int virtIndex, string virtName, byte[] virtMac)
    {
        ArgumentNullException.ThrowIfNull(netns);
        using var cleanup = new Cleanup();
        var counters = cleanup.Add(CounterMap.Create("virtnet_cnt", 2));
        var classifyProgram = cleanup.Add(BpfProgram.LoadSchedCls(ClassifyProgramName, Programs.ClassifyFrames(virtMac), virtName));
        var classifyLink = cleanup.Add(netns.Run(() => TcxLink.Attach(classifyProgram, virtIndex, virtName, TcxDirection.Ingress)));
        var ingressProgram = cleanup.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.TakeIngress(counters, (int)Direction.Ingress, peerIndex, 0, peer: true), realName));
        var egressProgram = cleanup.Add(BpfProgram.LoadSchedCls(EgressProgramName, Programs.CountAndRedirect(counters, (int)Direction.Egress, realIndex, 0), peerName));
        var egressLink = cleanup.Add(TcxLink.Attach(egressProgram, peerIndex, peerName, TcxDirection.Ingress));
        var ingressLink = cleanup.Add(TcxLink.Attach(ingressProgram, realIndex, realName, TcxDirection.Ingress));
        cleanup.Commit();
        return new KernelDatapath(counters, ingressProgram, egressProgram, egressLink, ingressLink, classifyProgram, classifyLink);
    }

    public DatapathCounters ReadCounters()
    {
        var (inFrames, inBytes) = _counters.Read((int)Direction.Ingress);
        var (outFrames, outBytes) = _counters.Read((int)Direction.Egress);
        return new DatapathCounters(new DirectionCounters(inFrames, inBytes, 0), new DirectionCounters(outFrames, outBytes, 0));
    }

    public void OnMtuChanged(int mtu)
    {
    }

    public void Dispose()
    {
        // Give the real device back first.
        _ingressLink.Dispose();
        _egressLink.Dispose();
        _classifyLink?.Dispose();
        _ingressProgram.Dispose();
        _egressProgram.Dispose();
        _classifyProgram?.Dispose();
        _counters.Dispose();
    }
}
