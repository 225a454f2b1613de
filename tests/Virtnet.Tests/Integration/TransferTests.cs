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
}
