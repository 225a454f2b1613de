// How the user datapath writes ring frames into the TAPs: batched through io_uring where the kernel allows it,
// one write() per frame otherwise (or with VIRTNET_IO_URING=0). Both must carry traffic; the ready line says which.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class WritePathTests(ITestOutputHelper output)
{
    private const int X = 22;

    [SkippableFact]
    public void UserDatapath_WhereTheKernelAllows_WritesThroughIoUring()
    {
        Root.Require();
        string disabled = File.Exists("/proc/sys/kernel/io_uring_disabled") ? File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() : "0";
        using var lab = Lab.Create("wpu", X, output);
        var virtnet = lab.Up("user");

        Assert.Contains(disabled == "0" ? ", io_uring" : ", write() per frame", virtnet.ReadyLine, StringComparison.Ordinal);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 5);
    }

    [SkippableFact]
    public void UserDatapath_WithIoUringTurnedOff_WritesFrameByFrameAndCarriesTraffic()
    {
        Root.Require();
        using var lab = Lab.Create("wpw", X, output);
        using var virtnet = VirtnetProcess.StartWrapped(lab.A, ["env", "VIRTNET_IO_URING=0"], ["attach", Lab.Real, "--datapath", "user"]);
        string ready = virtnet.WaitForReady();
        output.WriteLine(ready);
        Assert.EndsWith(", write() per frame", ready, StringComparison.Ordinal);
        lab.AddressVirtual();

        // ICMP crosses the receive rings (the road the write path serves), in both sizes and both directions.
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 5);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 5);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3, size: 1400);
        var took = Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));
        output.WriteLine($"first IPv6 answer after {took.TotalMilliseconds:F0} ms");
        Net.AssertPing(lab.B, lab.B6, lab.A6, count: 3);
    }
}
