// C# handlers on the user datapath, in process, end to end: a handler sees every frame and its verdict decides.
using Virtnet.Datapaths;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Virtnet.Namespaces;

namespace Virtnet.Tests.Datapaths;

public class HandlerTests
{
    /// <summary>Drops ICMPv4 echo requests arriving from the wire, counts every frame it sees, passes the rest.</summary>
    private sealed class DropIncomingEcho : IFrameHandler
    {
        public long Seen;
        public long Dropped;

        public Verdict OnFrame(ref Frame frame)
        {
            Interlocked.Increment(ref Seen);
            if (IsIncomingEchoRequest(ref frame))
            {
                Interlocked.Increment(ref Dropped);
                frame.DropReason = "icmp echo request";
                return Verdict.Consumed;
            }

            return Verdict.Pass;
        }
    }

    /// <summary>An ICMPv4 echo request arriving from the wire.</summary>
    internal static bool IsIncomingEchoRequest(ref Frame frame)
    {
        var data = frame.Data;
        return frame.Direction == Direction.Ingress && frame.Ethernet.EtherType == EthernetView.EtherTypeIPv4
            && data.Length > 34 && data[23] == 1 && data[14 + ((data[14] & 0xF) * 4)] == 8;
    }

    [SkippableFact]
    public void UserDatapath_HandlerDropsEchoRequests_PingFailsOtherTrafficFlows()
    {
        Root.Require();
        using var a = new TestNetns("hdla");
        using var b = new TestNetns("hdlb");
        TestNetns.AddVeth(a, "va", b, "vb");
        a.Exec("ip", "link", "set", "va", "up");
        b.Exec("ip", "link", "set", "vb", "up");
        b.Exec("ip", "addr", "add", "10.200.61.2/24", "dev", "vb");
        using var ns = NetNamespace.Open(a.Path);
        var handler = new DropIncomingEcho();
        using var attachment = ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Datapath = DatapathKind.User, Handlers = [handler] }));
        a.Exec("ip", "addr", "add", "10.200.61.1/24", "dev", "virtnet0");

        // Our own pings out get their replies (echo replies pass); pings in are dropped by the handler.
        Assert.Equal(0, a.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.61.2").ExitCode);
        Assert.NotEqual(0, b.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.61.1").ExitCode);

        Assert.True(handler.Dropped >= 2, $"dropped {handler.Dropped}");
        Assert.True(handler.Seen > handler.Dropped);
        var counters = attachment.ReadCounters();
        Assert.True(counters.Ingress.Drops >= (ulong)handler.Dropped, $"ingress drops {counters.Ingress.Drops} < {handler.Dropped}");
    }
}
