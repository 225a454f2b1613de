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

    [SkippableFact]
    public void KernelDatapath_WithHandlers_RefusedInOneSentence_NothingMade()
    {
        Root.Require();
        using var a = new TestNetns("hdka");
        using var b = new TestNetns("hdkb");
        TestNetns.AddVeth(a, "va", b, "vb");
        using var ns = NetNamespace.Open(a.Path);
        var e = Assert.Throws<VirtnetException>(() => ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Handlers = [new DropIncomingEcho()] })));
        Assert.Equal(FailureKind.Unsuitable, e.Kind);
        Assert.Equal("virtnet0: handlers (DropIncomingEcho) run on the user datapath only, and this binding's is the kernel one; set Datapath = DatapathKind.User (--datapath user), or leave the handlers out", e.Message);
        Assert.DoesNotContain("virtnet0", a.Exec("ip", "-br", "link"));
    }

    /// <summary>Throws on ICMPv4 echo requests from the wire, passes the rest; StopOnFault as asked.</summary>
    private sealed class ThrowOnEcho(bool stop) : IFrameHandler
    {
        public bool StopOnFault => stop;

        public Verdict OnFrame(ref Frame frame)
            => IsIncomingEchoRequest(ref frame) ? throw new FormatException("cannot parse this echo") : Verdict.Pass;
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void HandlerThrows_FrameDroppedAsHandlerFault_LoggedOnce_OrTheBindingStops(bool stopOnFault)
    {
        Root.Require();
        string tag = stopOnFault ? "hdfs" : "hdfd";
        using var a = new TestNetns(tag + "a");
        using var b = new TestNetns(tag + "b");
        TestNetns.AddVeth(a, "va", b, "vb");
        a.Exec("ip", "link", "set", "va", "up");
        b.Exec("ip", "link", "set", "vb", "up");
        b.Exec("ip", "addr", "add", "10.200.68.2/24", "dev", "vb");
        using var ns = NetNamespace.Open(a.Path);
        using var attachment = ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Datapath = DatapathKind.User, Handlers = [new ThrowOnEcho(stopOnFault)] }));
        a.Exec("ip", "addr", "add", "10.200.68.1/24", "dev", "virtnet0");
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        string? ended = null;
        var runner = new Thread(() => ended = attachment.Run(stop.Token, lines.Enqueue)) { IsBackground = true };
        runner.Start();

        Assert.Equal(0, a.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.68.2").ExitCode);
        Assert.NotEqual(0, b.Try("ping", "-c", "3", "-i", "0.2", "-W", "1", "10.200.68.1").ExitCode);
        if (stopOnFault)
        {
            Assert.True(runner.Join(TimeSpan.FromSeconds(10)), "the binding did not stop");
            Assert.Equal("handler ThrowOnEcho threw FormatException: cannot parse this echo (it is marked StopOnFault, so the binding stops)", ended);
            return;
        }

        Thread.Sleep(1500); // the loop reports about twice a second
        stop.Cancel();
        Assert.True(runner.Join(TimeSpan.FromSeconds(10)));
        Assert.Null(ended);
        var faults = lines.Where(l => l.StartsWith("handler ThrowOnEcho threw FormatException: cannot parse this echo", StringComparison.Ordinal)).ToList();
        Assert.True(faults.Count == 1, string.Join("\n", lines));
        Assert.EndsWith("each such frame is dropped as 'handler fault' and forwarding goes on", faults[0], StringComparison.Ordinal);
        var counters = attachment.ReadCounters();
        Assert.Contains(counters.DropCauses, d => d.Cause == DropCause.HandlerFault && d.Direction == Direction.Ingress && d.Frames >= 3);
    }
}
