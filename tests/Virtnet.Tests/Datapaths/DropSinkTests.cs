// The managed half of the drop point: a binding whose handler drops echo requests sends each such frame, with the
// handler's reason, to a capture's socket while one listens (Attachment.SendDropsTo), and nothing once told to stop
// or once the capture's socket is gone; forwarding goes on throughout; every such drop is counted under the
// handler's reason. HandlerReasons on its own: distinct reasons apart, by value too, the rest together.
using System.Text;
using Virtnet.Capture;
using Virtnet.Cli.Service;
using Virtnet.Datapaths;
using Virtnet.Namespaces;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Datapaths;

public class DropSinkTests
{
    private static List<(string Comment, int Length)> Read(DropSocket socket)
    {
        var got = new List<(string, int)>();
        socket.Drain(ref got, static (ref List<(string, int)> list, in TappedFrame f) =>
        {
            list.Add((f.Drop!.ToString(), f.Length));
            return true;
        });
        return got;
    }

    [SkippableFact]
    public void HandlerDrops_ReachTheCaptureWithTheirReason_UntilStopped()
    {
        Root.Require();
        using var pair = TestNetns.Pair("ds", "10.200.68.2/24");
        var (a, b) = pair;
        string dir = Directory.CreateTempSubdirectory("virtnet-drops-").FullName;
        using var ns = NetNamespace.Open(a.Path);
        var attachment = ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Name = "vdsink0", Datapath = DatapathKind.User, Handlers = [new MeterTests.DropEchoRequests("no pings here")] }));
        try
        {
            a.Exec("ip", "addr", "add", "10.200.68.1/24", "dev", "vdsink0");
            Assert.Equal(0, a.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.68.2").ExitCode); // out: passes

            using (var socket = DropSocket.Bind(dir, "va", "vdsink0"))
            {
                Assert.True(attachment.SendDropsTo(socket.Path));
                Assert.NotEqual(0, b.Try("ping", "-c", "3", "-i", "0.2", "-W", "1", "10.200.68.1").ExitCode);
                var got = Read(socket);
                Assert.Equal(3, got.Count);
                Assert.All(got, g => Assert.Equal(("drop: handler (no pings here) on va in virtnet's user datapath", 98), g));
                Assert.Equal(0UL, socket.Lost);

                Assert.True(attachment.SendDropsTo(null));
                Assert.NotEqual(0, b.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.68.1").ExitCode);
                Assert.Empty(Read(socket));

                Assert.True(attachment.SendDropsTo(socket.Path));
            }

            // The capture went away without a word: the next drop finds its socket gone, and forwarding goes on.
            Assert.NotEqual(0, b.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.68.1").ExitCode);
            Assert.Equal(0, a.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.68.2").ExitCode);

            // Every one of those drops is counted under the handler's own reason too (stats' handler_reasons).
            var counters = attachment.ReadCounters();
            var handler = counters.DropCauses.Single(c => c.Direction == Direction.Ingress && c.Cause == DropCause.Handler).Frames;
            Assert.Equal(7UL, handler);
            Assert.Equal([new HandlerReasonCount(Direction.Ingress, "no pings here", 7)], counters.HandlerReasons);
        }
        finally
        {
            attachment.Dispose();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void HandlerReasons_FirstSixteenApart_ByValueToo_TheRestTogether()
    {
        var reasons = new HandlerReasons();
        reasons.Count("a");
        reasons.Count(new string('a', 1)); // the same reason, another string object
        for (int i = 0; i < 20; i++)
        {
            reasons.Count($"r{i}");
        }

        var totals = new Dictionary<string, ulong>();
        reasons.AddTo(totals);
        Assert.Equal(2UL, totals["a"]);
        Assert.Equal(16, totals.Count - 1); // "a", r0..r14, and the others
        Assert.Equal(5UL, totals[HandlerReasons.Others]);
        Assert.Equal(22UL, totals.Values.Aggregate(0UL, (x, y) => x + y));
    }
}
