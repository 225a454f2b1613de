using Virtnet.Datapaths;
using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Unit;

public class FrameTests
{
    private static byte[] TaggedFrame(ushort vid, ushort inner)
    {
        var b = new byte[VirtioNetHdr.Size + 64];
        var f = b.AsSpan(VirtioNetHdr.Size);
        f[..6].Fill(0xff);
        f[6..12].Fill(0x02);
        f[12] = 0x81;
        f[13] = 0x00;
        f[14] = (byte)(vid >> 8);
        f[15] = (byte)vid;
        f[16] = (byte)(inner >> 8);
        f[17] = (byte)inner;
        return b;
    }

    [Fact]
    public void EthernetView_Tagged_ReadsVidAndInnerType()
    {
        var b = TaggedFrame(42, 0x0800);
        var frame = new Frame(b, Direction.Ingress);
        var eth = frame.Ethernet;
        Assert.True(eth.HasVlanTag);
        Assert.Equal(42, eth.VlanId);
        Assert.Equal(0x8100, eth.EtherType);
        Assert.Equal(0x0800, eth.InnerEtherType);
        Assert.True(eth.IsBroadcast);
        Assert.True(eth.IsMulticast);
    }

    [Fact]
    public void EthernetView_Untagged_NoVid()
    {
        var b = TaggedFrame(0, 0);
        b[VirtioNetHdr.Size + 12] = 0x86;
        b[VirtioNetHdr.Size + 13] = 0xdd;
        b[VirtioNetHdr.Size] = 0x02;
        var eth = new Frame(b, Direction.Egress).Ethernet;
        Assert.False(eth.HasVlanTag);
        Assert.Equal(-1, eth.VlanId);
        Assert.Equal(EthernetView.EtherTypeIPv6, eth.InnerEtherType);
        Assert.False(eth.IsBroadcast);
        Assert.False(eth.IsMulticast);
    }

    [Fact]
    public void Frame_VirtioHeader_IsTheFirstTenBytes()
    {
        var b = new byte[VirtioNetHdr.Size + 14];
        b[0] = VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM;
        b[1] = VirtioNetHdr.VIRTIO_NET_HDR_GSO_TCPV4;
        b[4] = 0xa8; // gso_size 1448, little-endian
        b[5] = 0x05;
        var frame = new Frame(b, Direction.Ingress);
        Assert.Equal(VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM, frame.VirtioHeader.Flags);
        Assert.Equal(VirtioNetHdr.VIRTIO_NET_HDR_GSO_TCPV4, frame.VirtioHeader.GsoType);
        Assert.Equal(1448, frame.VirtioHeader.GsoSize);
        Assert.Equal(14, frame.Data.Length);
    }
}

public class PipelineTests
{
    private sealed class Fixed(Verdict verdict, int target = -1, string? reason = null) : IFrameHandler
    {
        public int Calls;

        public Verdict OnFrame(ref Frame frame)
        {
            Calls++;
            frame.Target = target;
            frame.DropReason = reason;
            return verdict;
        }
    }

    private const int Ports = 2;

    private static int Decide(IFrameHandler[] handlers, out long drops)
    {
        var b = new byte[64];
        var frame = new Frame(b, Direction.Ingress);
        drops = 0;
        return Pipeline.Decide(handlers, ref frame, 7, Ports, ref drops);
    }

    private sealed class Throws(bool stop = false) : IFrameHandler
    {
        public bool StopOnFault => stop;

        public Verdict OnFrame(ref Frame frame) => throw new InvalidOperationException("bad frame");
    }

    [Fact]
    public void Decide_HandlerThrows_FrameDroppedAsAFault_LaterHandlersNotRun_FirstExceptionKept()
    {
        var after = new Fixed(Verdict.Pass);
        IFrameHandler[] handlers = [new Fixed(Verdict.Pass), new Throws(), after];
        var faults = new HandlerFaults(handlers);
        var frame = new Frame(new byte[64], Direction.Ingress);
        long drops = 0, faulted = 0;
        Assert.Equal(Pipeline.Faulted, Pipeline.Decide(handlers, ref frame, 7, Ports, ref drops, faults, ref faulted));
        Assert.Equal(Pipeline.Faulted, Pipeline.Decide(handlers, ref frame, 7, Ports, ref drops, faults, ref faulted));
        Assert.Equal((0L, 2L), (drops, faulted));
        Assert.Equal(0, after.Calls);
        Assert.Null(faults.Stop);
        var (first, count) = faults.Take(1);
        Assert.Equal("bad frame", first?.Message);
        Assert.Equal(2, count);
        Assert.Equal((null, 0L), faults.Take(1));
    }

    [Fact]
    public void Decide_StopOnFaultHandlerThrows_TheBindingIsToldToStop()
    {
        IFrameHandler[] handlers = [new Throws(stop: true)];
        var faults = new HandlerFaults(handlers);
        var frame = new Frame(new byte[64], Direction.Egress);
        long drops = 0, faulted = 0;
        Assert.Equal(Pipeline.Faulted, Pipeline.Decide(handlers, ref frame, 7, Ports, ref drops, faults, ref faulted));
        Assert.Equal("handler Throws threw InvalidOperationException: bad frame (it is marked StopOnFault, so the binding stops)", faults.Stop);
    }

    [Fact]
    public void Decide_NoHandlers_DefaultPath()
    {
        Assert.Equal(7, Decide([], out var drops));
        Assert.Equal(0, drops);
    }

    [Fact]
    public void Decide_AllPass_DefaultPathAndEveryHandlerRuns()
    {
        var a = new Fixed(Verdict.Pass);
        var b = new Fixed(Verdict.Pass);
        Assert.Equal(7, Decide([a, b], out _));
        Assert.Equal(1, a.Calls);
        Assert.Equal(1, b.Calls);
    }

    [Fact]
    public void Decide_ConsumedWithReason_DropCountedAndLaterHandlersSkipped()
    {
        var later = new Fixed(Verdict.Pass);
        Assert.Equal(Pipeline.Dropped, Decide([new Fixed(Verdict.Consumed, reason: "filtered"), later], out var drops));
        Assert.Equal(1, drops);
        Assert.Equal(0, later.Calls);
    }

    [Fact]
    public void Decide_ConsumedWithoutReason_TakenNotDropped()
    {
        Assert.Equal(Pipeline.Consumed, Decide([new Fixed(Verdict.Consumed)], out var drops));
        Assert.Equal(0, drops);
    }

    [Fact]
    public void Decide_Another_GoesToTargetPort()
    {
        Assert.Equal(1, Decide([new Fixed(Verdict.Another, target: 1)], out _));
        Assert.Equal(0, Decide([new Fixed(Verdict.Another, target: 0)], out _));
    }

    [Fact]
    public void Decide_AnotherWithBadTarget_Dropped()
    {
        Assert.Equal(Pipeline.Dropped, Decide([new Fixed(Verdict.Another, target: 5)], out var drops));
        Assert.Equal(1, drops);
    }
}

public class CleanupTests
{
    [Fact]
    public void Dispose_WithoutCommit_UndoesInReverseOrder()
    {
        var order = new List<int>();
        using (var c = new Cleanup())
        {
            c.Add(() => order.Add(1));
            c.Add(() => order.Add(2));
        }

        Assert.Equal([2, 1], order);
    }

    [Fact]
    public void Dispose_AfterCommit_KeepsEverything()
    {
        var order = new List<int>();
        using (var c = new Cleanup())
        {
            c.Add(() => order.Add(1));
            c.Commit();
        }

        Assert.Empty(order);
    }

    [Fact]
    public void Dispose_UndoThrows_OthersStillRun()
    {
        var order = new List<int>();
        using (var c = new Cleanup())
        {
            c.Add(() => order.Add(1));
            c.Add(() => throw new InvalidOperationException());
        }

        Assert.Equal([1], order);
    }
}
