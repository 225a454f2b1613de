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
        var virtnet = lab.Up(datapath);

        // Ready means: up, the real device's MTU, and the line says what was made.
        Assert.Contains("UP", Net.Flags(lab.A, Lab.Virtual));
        Assert.Equal(Net.Mtu(lab.A, Lab.Real), Net.Mtu(lab.A, Lab.Virtual));
        Assert.Contains($"{Lab.Real} <-> {Lab.Virtual}, {datapath} datapath, mtu 1500, mac {Net.Mac(lab.A, Lab.Virtual)}", virtnet.ReadyLine, StringComparison.Ordinal);

        Net.AssertPing(lab.A, lab.A4, lab.B4);
        Net.AssertPing(lab.B, lab.B4, lab.A4);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Stats_WhileTrafficFlows_PrintsCountersAndRates(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"st{datapath[0]}", X, output);
        var virtnet = lab.Up(datapath, "--stats", "0.2");
        Net.AssertPing(lab.A, lab.A4, lab.B4);
        var deadline = DateTime.UtcNow.AddSeconds(3);
        string? line = null;
        while (DateTime.UtcNow < deadline)
        {
            line = virtnet.Stdout.Split('\n').LastOrDefault(l => l.StartsWith("virtnet0 stats: ", StringComparison.Ordinal));
            if (line is not null && !line.Contains("ingress 0 frames", StringComparison.Ordinal) && !line.Contains("egress 0 frames", StringComparison.Ordinal))
            {
                break;
            }

            Thread.Sleep(100);
        }

        Assert.True(line is not null, $"no stats line: {virtnet.Describe()}");
        Assert.Matches(@"^virtnet0 stats: ingress [1-9]\d* frames \d+ bytes \d+ dropped, egress [1-9]\d* frames \d+ bytes \d+ dropped; now ingress \d+ fps [\d.]+ Mbit/s, egress \d+ fps [\d.]+ Mbit/s$", line);
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

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void RealDevice_WhileAttached_ItsOwnStackGetsNoFrames(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"own{datapath[0]}", X, output);
        // arp_ignore=1: A answers ARP only on the device that holds the address asked for. va gets an address of
        // its own, so an answer for it can only come from va's own stack, which must no longer see any frame.
        InNetns.Run(lab.A.Name, () =>
        {
            File.WriteAllText("/proc/sys/net/ipv4/conf/all/arp_ignore", "1");
            return 0;
        });
        string realOwn = $"10.201.{X}.1", peerOwn = $"10.201.{X}.2";
        Net.Ip(lab.B, "addr", "add", $"{peerOwn}/24", "dev", Lab.Peer);
        var virtnet = lab.Up(datapath);
        Net.Ip(lab.A, "addr", "add", $"{realOwn}/24", "dev", Lab.Real);
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);

        var r = Net.Ping(lab.B, peerOwn, realOwn, count: 3);
        output.WriteLine(r.All);
        Assert.True(r.ExitCode != 0 && r.Stdout.Contains(" 0 received", StringComparison.Ordinal), $"{Lab.Real}'s own address answered while attached: its stack still sees frames\n{r.All}");

        // Control: the same ping is answered once virtnet has stopped, so the silence above was virtnet's doing.
        virtnet.Signal(TestLibc.SIGTERM);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running 10 s after SIGTERM: {virtnet.Describe()}");
        // The unanswered ARP of the ping above may still be in progress (3 probes, 1 s apart) and would fail the
        // packets of this one when it gives up ("Destination Host Unreachable" within 0.4 s, seen in CI).
        Net.Ip(lab.B, "neigh", "flush", "dev", Lab.Peer);
        Net.AssertPing(lab.B, peerOwn, realOwn, count: 3);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Ping_NameOf15Bytes_WorksUnderThatName(string datapath)
    {
        Root.Require();
        const string name = "virtnet-15bytes";
        Assert.Equal(15, name.Length);
        using var lab = Lab.Create($"name{datapath[0]}", X, output);
        var virtnet = lab.Attach(datapath, "--name", name);
        Assert.StartsWith($"{name} ready: {Lab.Real} <-> {name}", virtnet.ReadyLine, StringComparison.Ordinal);
        Assert.False(Net.Exists(lab.A, Lab.Virtual), $"{Lab.Virtual} exists although --name {name} was given");
        lab.AddressVirtual(name);

        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3);

        virtnet.Signal(TestLibc.SIGTERM);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running 10 s after SIGTERM: {virtnet.Describe()}");
        Assert.Equal(0, virtnet.ExitCode);
        Assert.Contains($"{name} stopped: ingress ", virtnet.Stdout, StringComparison.Ordinal);
        Assert.False(Net.Exists(lab.A, name), $"{name} left behind");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Ping_FragmentedEchoBothWays_EveryEchoAnsweredOnce(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"frag{datapath[0]}", X, output);
        lab.Up(datapath);

        // 20000 bytes: 14 IPv4 fragments per echo, reassembled on each side.
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3, size: 20000);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3, size: 20000);
        Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));
        Net.AssertPing(lab.A, lab.A6, lab.B6, count: 3, size: 20000);
        Net.AssertPing(lab.B, lab.B6, lab.A6, count: 3, size: 20000);
    }
}
