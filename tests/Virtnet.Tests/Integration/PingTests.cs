// Basic reachability through virtnet0 for both datapaths: IPv4, IPv6, ARP and broadcast.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class PingTests(ITestOutputHelper output)
{
    private const int X = 1;

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Ping_Ipv4BothWays_EveryEchoAnsweredOnce(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"p4{datapath[0]}", X, output);
        lab.Up(datapath);

        Net.AssertPing(lab.A, lab.A4, lab.B4);
        Net.AssertPing(lab.B, lab.B4, lab.A4);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Ping_Ipv6BothWays_EveryEchoAnsweredOnce(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"p6{datapath[0]}", X, output);
        lab.Up(datapath);

        // Neighbour discovery may need a moment; after the first answer every echo must come back.
        var took = Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));
        output.WriteLine($"first IPv6 answer after {took.TotalMilliseconds:F0} ms");
        Net.AssertPing(lab.A, lab.A6, lab.B6);
        Net.AssertPing(lab.B, lab.B6, lab.A6);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Arp_AfterTraffic_EachSideLearnsTheOthersMac(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"arp{datapath[0]}", X, output);
        lab.Up(datapath);
        string virtMac = Net.Mac(lab.A, Lab.Virtual);
        string peerMac = Net.Mac(lab.B, Lab.Peer);

        // The ARP requests are broadcasts: resolving at all means a broadcast crossed each way.
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);

        string inB = Net.Ip(lab.B, "neigh", "show", "dev", Lab.Peer);
        string inA = Net.Ip(lab.A, "neigh", "show", "dev", Lab.Virtual);
        output.WriteLine($"B: {inB}\nA: {inA}");
        Assert.Contains($"{lab.A4} lladdr {virtMac}", inB, StringComparison.Ordinal);
        Assert.Contains($"{lab.B4} lladdr {peerMac}", inA, StringComparison.Ordinal);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void UdpBroadcast_BothWays_Delivered(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"bc{datapath[0]}", X, output);
        lab.Up(datapath);

        Traffic.AssertUdpBroadcast(lab.A, lab.A4, lab.B, lab.Broadcast4);
        Traffic.AssertUdpBroadcast(lab.B, lab.B4, lab.A, lab.Broadcast4);
    }
}
