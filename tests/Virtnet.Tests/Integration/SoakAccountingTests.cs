// The accounting identity, per direction, on both datapaths: every frame that enters a binding is either delivered
// or counted as dropped under a reason. A soak pushes 100 000 frames each way, with the far device down for a
// stretch in the middle so that drops happen, and then, once the counters are still:
//   ingress: what vb handed to va (vb's tx packets)        = the binding's ingress frames + its ingress drops
//   egress:  what a packet socket sent from the virtual one = the binding's egress frames + its egress drops
// and the drops of each direction add up to the sum of their reasons.
using System.Text.Json;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class SoakAccountingTests(ITestOutputHelper output)
{
    private const int X = 66;
    private const int Frames = 100_000;

    private sealed record Side(ulong Frames, ulong Drops, ulong ReasonSum, string Json);

    private static (Side Ingress, Side Egress) Counters(Lab lab)
    {
        var r = ServiceTests.Cli("stats", "-j", $"{lab.A.Name}/{Lab.Virtual}");
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        Side Read(string direction)
        {
            var d = doc.RootElement.GetProperty(direction);
            ulong sum = 0;
            foreach (var reason in d.GetProperty("drop_reasons").EnumerateObject())
            {
                sum += reason.Value.GetUInt64();
            }

            return new Side(d.GetProperty("frames").GetUInt64(), d.GetProperty("drops").GetUInt64(), sum, d.ToString());
        }

        return (Read("ingress"), Read("egress"));
    }

    /// <summary>The counters once two reads 300 ms apart agree: nothing is in flight any more.</summary>
    private static (Side Ingress, Side Egress) Still(Lab lab)
    {
        var last = Counters(lab);
        for (int i = 0; i < 50; i++)
        {
            Thread.Sleep(300);
            var now = Counters(lab);
            if (now.Ingress.Frames == last.Ingress.Frames && now.Ingress.Drops == last.Ingress.Drops
                && now.Egress.Frames == last.Egress.Frames && now.Egress.Drops == last.Egress.Drops)
            {
                return now;
            }

            last = now;
        }

        throw new Xunit.Sdk.XunitException($"the counters never settled: {last}");
    }

    private static ulong TxPackets(TestNetns ns, string device) => Net.RequireLinkStats(ns, device).GetProperty("tx").GetProperty("packets").GetUInt64();

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void EveryFrame_DeliveredOrDroppedWithAReason_PerDirection(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"sk{datapath[0]}", X, output);
        lab.Attach(datapath);

        // No address and no IPv6 on the virtual device, no IPv6 on vb: what either sends is the soak's frames and
        // nothing else (vb's neighbour discovery, sent between two reads, once made the sides differ by two).
        Run.Checked("ip", "netns", "exec", lab.A.Name, "sysctl", "-qw", $"net.ipv6.conf.{Lab.Virtual}.disable_ipv6=1");
        Run.Checked("ip", "netns", "exec", lab.B.Name, "sysctl", "-qw", $"net.ipv6.conf.{Lab.Peer}.disable_ipv6=1");
        Net.Ip(lab.A, "link", "set", Lab.Virtual, "up");
        byte[] virtualMac = Net.MacBytes(lab.A, Lab.Virtual);
        byte[] peerMac = Net.MacBytes(lab.B, Lab.Peer);
        Thread.Sleep(500);
        ulong vbTx0 = TxPackets(lab.B, Lab.Peer);
        var (in0, out0) = Still(lab);

        // Ingress: 100 000 frames into va, a fifth of them while the virtual device is down.
        PacketSocket.Burst(lab.B, Lab.Peer, virtualMac, Frames * 2 / 5);
        Net.Ip(lab.A, "link", "set", Lab.Virtual, "down");
        Thread.Sleep(200);
        PacketSocket.Burst(lab.B, Lab.Peer, virtualMac, Frames / 5);
        Net.Ip(lab.A, "link", "set", Lab.Virtual, "up");
        Thread.Sleep(200);
        PacketSocket.Burst(lab.B, Lab.Peer, virtualMac, Frames * 2 / 5);

        // Egress: 100 000 frames out of the virtual device, a fifth of them while the real one is down.
        int sent = 0;
        using (var sender = PacketSocket.Open(lab.A, Lab.Virtual))
        {
            var frame = new byte[60];
            peerMac.CopyTo(frame, 0);
            virtualMac.CopyTo(frame, 6);
            frame[12] = 0x88;
            frame[13] = 0xB5;
            for (int i = 0; i < Frames; i++)
            {
                if (i == Frames * 2 / 5)
                {
                    Net.Ip(lab.A, "link", "set", Lab.Real, "down");
                }
                else if (i == Frames * 3 / 5)
                {
                    Net.Ip(lab.A, "link", "set", Lab.Real, "up");
                }

                sender.Send(frame);
                sent++;
            }
        }

        var (in1, out1) = Still(lab);
        ulong handed = TxPackets(lab.B, Lab.Peer) - vbTx0;
        output.WriteLine($"ingress: vb handed {handed}; {in1.Json}\negress: sent {sent}; {out1.Json}");

        Assert.Equal(handed, (in1.Frames - in0.Frames) + (in1.Drops - in0.Drops));
        Assert.Equal((ulong)sent, (out1.Frames - out0.Frames) + (out1.Drops - out0.Drops));
        Assert.True(in1.Drops - in0.Drops > 0, $"no ingress drop while the virtual device was down: {in1.Json}");
        Assert.True(out1.Drops - out0.Drops > 0, $"no egress drop while the real device was down: {out1.Json}");
        Assert.Equal(in1.Drops, in1.ReasonSum);
        Assert.Equal(out1.Drops, out1.ReasonSum);
    }
}
