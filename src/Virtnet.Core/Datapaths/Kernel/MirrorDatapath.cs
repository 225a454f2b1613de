// A mirror binding on the kernel datapath: copies of the real device's frames, nothing taken. The seed's other
// way to see a device's traffic (a protocol handler and dev_forward_skb) done with tcx and bpf_clone_redirect:
//
//   wire -> real --[tcx ingress, first: (filter) count, clone -> virt]--> (on to the next program, the stack)
//   stack/bindings -> real transmit --[tcx egress, first: (filter) count, clone -> virt]--> wire
//   virt transmit --[tcx: count, drop]            (a mirror is receive-only)
//
// A copy into a device in another namespace goes out of the near end of its veth pair (no redirect_peer for a
// clone); the pair's far end receives it as any veth frame, classified by eth_type_trans.
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Datapaths.Kernel;

internal sealed class MirrorDatapath : IDatapath
{
    public const string MirrorProgramName = "virtnet_mir";
    public const string ReceiveOnlyProgramName = "virtnet_ronly";

    // Counter slots: copies of received frames, copies of sent frames, copies that failed, frames the device sent.
    private const int InKey = 0;
    private const int OutKey = 1;
    private const int FailedKey = 2;
    private const int SentKey = 3;

    private readonly Cleanup _owned;
    private readonly CounterMap _counters;
    private readonly MirrorDirections _directions;
    private readonly DeviceCounter _refused;
    private readonly Func<ulong?> _readRxDropped;

    private MirrorDatapath(Cleanup owned, CounterMap counters, MirrorDirections directions, Func<ulong?> readRxDropped)
    {
        _owned = owned;
        _counters = counters;
        _directions = directions;
        _readRxDropped = readRxDropped;
        _refused = new DeviceCounter(readRxDropped());
    }

    public DatapathKind Kind => DatapathKind.Kernel;

    public string? Details => $"mirror of {Mirrors.Describe(_directions)}";

    public string? Fault => null;

    public static MirrorDatapath Create(DatapathSetup setup)
    {
        var (real, virt) = (setup.Real, setup.Virtual);
        var owned = new Cleanup();
        try
        {
            var counters = owned.Add(CounterMap.Create("virtnet_mcnt", 4));
            var (target, flags) = virt.Peer is { } p ? (p.Index, 0ul) : (virt.Index, Libc.BPF_F_INGRESS);

            // Receive-only first: whatever the device sends from the moment it is up is dropped, and counted.
            var dropProgram = owned.Add(BpfProgram.LoadSchedCls(ReceiveOnlyProgramName, Programs.CountAndDrop(counters, SentKey), virt.Name));
            owned.Add(virt.Peer is { } peer
                ? TcxLink.Attach(dropProgram, peer.Index, peer.Name, TcxDirection.Ingress)
                : TcxLink.Attach(dropProgram, virt.Index, virt.Name, TcxDirection.Egress));

            // First on each hook, so a binding that takes frames later in the chain does not hide them.
            foreach (var (direction, key, hook) in new[] { (MirrorDirections.Ingress, InKey, TcxDirection.Ingress), (MirrorDirections.Egress, OutKey, TcxDirection.Egress) })
            {
                if (!setup.Mirror.HasFlag(direction))
                {
                    continue;
                }

                var program = owned.Add(BpfProgram.LoadSchedCls(MirrorProgramName, Programs.Mirror(counters, key, FailedKey, target, flags, skipLoopback: hook == TcxDirection.Ingress, setup.TcTest), real.Name));
                owned.Add(TcxLink.Attach(program, real.Index, real.Name, hook, first: true));
            }

            var rtnl = setup.Rtnl;
            return new MirrorDatapath(owned, counters, setup.Mirror, () => virt.ReadStats(rtnl)?.RxDropped);
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    public DatapathCounters ReadCounters()
    {
        var (inFrames, inBytes) = _counters.Read(InKey);
        var (outFrames, outBytes) = _counters.Read(OutKey);
        ulong failed = _counters.Read(FailedKey).Frames;
        ulong sent = _counters.Read(SentKey).Frames;
        ulong refused = _refused.Update(_readRxDropped());
        return DatapathCounters.WithCauses(
            new DirectionCounters(inFrames + outFrames, inBytes + outBytes, 0),
            default,
            (Direction.Ingress, DropCause.CopyFailed, failed),
            (Direction.Ingress, DropCause.Refused, refused),
            (Direction.Egress, DropCause.MirrorReceiveOnly, sent));
    }

    public void OnMtuChanged(int mtu)
    {
    }

    public string? OnLinkChanged(Netlink.LinkInfo link) => null;

    public void OnVirtualMacChanged(byte[] mac)
    {
    }

    public void Publish()
    {
    }

    public void SetTargetDown(bool down)
    {
    }

    public void Dispose() => _owned.Dispose();
}
