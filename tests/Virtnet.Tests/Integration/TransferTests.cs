// Bulk TCP through virtnet0, bytes verified, at the default MTU and at 9000. Kept in one class (run one at a
// time): these are the CPU-heavy tests, and the machine has two cores.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class TransferTests(ITestOutputHelper output)
{
    private const int X = 2;
    private const long SixtyFourMiB = 64L * 1024 * 1024;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(60);

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Tcp_64MiBEachWay_BytesArriveIntact(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"tcp{datapath[0]}", X, output);
        lab.Up(datapath);

        var out4 = Traffic.TcpTransfer(lab.A, lab.A4, lab.B, lab.B4, SixtyFourMiB, TransferTimeout);
        output.WriteLine($"A -> B: {out4}");
        var in4 = Traffic.TcpTransfer(lab.B, lab.B4, lab.A, lab.A4, SixtyFourMiB, TransferTimeout);
        output.WriteLine($"B -> A: {in4}");

        // The counters on the stopped line saw at least the payload each way.
        var virtnet = lab.Virtnet!;
        virtnet.Signal(TestLibc.SIGTERM);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running 10 s after SIGTERM: {virtnet.Describe()}");
        output.WriteLine(virtnet.Stdout);
        var m = System.Text.RegularExpressions.Regex.Match(virtnet.Stdout, @"stopped: ingress (\d+) frames (\d+) bytes (\d+) dropped, egress (\d+) frames (\d+) bytes (\d+) dropped");
        Assert.True(m.Success, $"no stopped line with counters: {virtnet.Stdout}");
        Assert.True(long.Parse(m.Groups[2].Value) >= SixtyFourMiB, $"ingress counted {m.Groups[2].Value} bytes, 64 MiB crossed: {m.Value}");
        Assert.True(long.Parse(m.Groups[5].Value) >= SixtyFourMiB, $"egress counted {m.Groups[5].Value} bytes, 64 MiB crossed: {m.Value}");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Jumbo_Mtu9000_VirtualFollowsAndLargeFramesCross(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"mtu{datapath[0]}", X, output, mtu: 9000);
        var virtnet = lab.Up(datapath);

        Assert.Equal(9000, Net.Mtu(lab.A, Lab.Virtual));
        Assert.Contains("mtu 9000", virtnet.ReadyLine, StringComparison.Ordinal);
        Assert.Contains("mtu 9000 ", Net.TryIp(lab.A, "link", "show", Lab.Virtual).Stdout, StringComparison.Ordinal);

        // 8000 bytes of ICMP payload in one unfragmented frame, each way.
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3, size: 8000, dontFragment: true);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3, size: 8000, dontFragment: true);

        var out4 = Traffic.TcpTransfer(lab.A, lab.A4, lab.B, lab.B4, 16L * 1024 * 1024, TransferTimeout);
        output.WriteLine($"A -> B at mtu 9000: {out4}");
        var in4 = Traffic.TcpTransfer(lab.B, lab.B4, lab.A, lab.A4, 16L * 1024 * 1024, TransferTimeout);
        output.WriteLine($"B -> A at mtu 9000: {in4}");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Tcp_Ipv6_16MiBEachWay_BytesArriveIntact(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"tcp6{datapath[0]}", X, output);
        lab.Up(datapath);
        Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));

        output.WriteLine($"A -> B over IPv6: {Traffic.TcpTransfer(lab.A, lab.A6, lab.B, lab.B6, 16L * 1024 * 1024, TransferTimeout)}");
        output.WriteLine($"B -> A over IPv6: {Traffic.TcpTransfer(lab.B, lab.B6, lab.A, lab.A6, 16L * 1024 * 1024, TransferTimeout)}");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Sigterm_DuringBulkTransfer_ExitsZeroAndGivesRealDeviceBack(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"load{datapath[0]}", X, output);
        var before = Net.LinkNames(lab.A);
        int promiscBefore = Net.Promiscuity(lab.A, Lab.Real);
        var virtnet = lab.Up(datapath);

        using (var inbound = new Traffic.Blast(lab.B, lab.B4, lab.A, lab.A4))
        using (var outbound = new Traffic.Blast(lab.A, lab.A4, lab.B, lab.B4))
        {
            Net.WaitUntil(() => inbound.Received > 4 << 20 && outbound.Received > 4 << 20, TimeSpan.FromSeconds(10),
                () => $"the streams did not get going: in {inbound.Received} out {outbound.Received} bytes");
            virtnet.Signal(TestLibc.SIGTERM);
            Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running 10 s after SIGTERM under load: {virtnet.Describe()}");
            output.WriteLine($"stopped under load after in {inbound.Received >> 20} MiB, out {outbound.Received >> 20} MiB\n{virtnet.Stdout}");
        }

        Assert.True(virtnet.ExitCode == 0, $"exit code {virtnet.ExitCode}: {virtnet.Describe()}");
        Assert.Contains($"{Lab.Virtual} stopped: ingress ", virtnet.Stdout, StringComparison.Ordinal);
        CleanupTests.AssertGivenBack(lab, before, promiscBefore);
        CleanupTests.AssertRealWorksDirectly(lab);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void TwoAttachments_DifferentRealDevices_BothCarryTrafficIndependently(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"two{datapath[0]}", X, output);
        // A second "real" device vc in A, its wire vd in B, its own subnet.
        TestNetns.AddVeth(lab.A, "vc", lab.B, "vd");
        Net.Ip(lab.A, "link", "set", "vc", "up");
        Net.Ip(lab.B, "link", "set", "vd", "up");
        Net.Ip(lab.B, "addr", "add", $"10.202.{X}.2/24", "dev", "vd");
        var first = lab.Up(datapath);
        var second = lab.AttachTo("vc", datapath, "--name", "virtnet1");
        Net.Ip(lab.A, "addr", "add", $"10.202.{X}.1/24", "dev", "virtnet1");

        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3);
        Net.AssertPing(lab.A, $"10.202.{X}.1", $"10.202.{X}.2", count: 3);
        Net.AssertPing(lab.B, $"10.202.{X}.2", $"10.202.{X}.1", count: 3);
        output.WriteLine($"A -> B on the second: {Traffic.TcpTransfer(lab.A, $"10.202.{X}.1", lab.B, $"10.202.{X}.2", 16L * 1024 * 1024, TransferTimeout)}");

        // Stopping one leaves the other untouched.
        second.Signal(TestLibc.SIGTERM);
        Assert.True(second.WaitForExit(TimeSpan.FromSeconds(10)), $"second still running: {second.Describe()}");
        Assert.Equal(0, second.ExitCode);
        Assert.False(Net.Exists(lab.A, "virtnet1"));
        Assert.True(Net.HooksEmpty(lab.A, "vc"), Net.DescribeHooks(lab.A, "vc"));
        Assert.False(first.HasExited, $"the first stopped with the second: {first.Describe()}");
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3);
    }
}
