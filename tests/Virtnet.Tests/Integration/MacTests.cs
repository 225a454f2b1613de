// --mac random / --mac <address>: virtnet0 carries that MAC and the real device still receives frames for it;
// whatever the real device needed for that (a unicast filter entry, promiscuity) is released on exit.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class MacTests(ITestOutputHelper output)
{
    private const int X = 7;

    [SkippableTheory]
    [InlineData("kernel", "random")]
    [InlineData("user", "random")]
    [InlineData("kernel", "02:00:00:00:00:42")]
    [InlineData("user", "02:00:00:00:00:42")]
    public void Mac_RandomOrExplicit_VirtualHasItAndTrafficFlows(string datapath, string mac)
    {
        Root.Require();
        using var lab = Lab.Create($"mac{datapath[0]}{(mac == "random" ? "r" : "e")}", X, output);
        var before = Net.LinkNames(lab.A);
        string realMac = Net.Mac(lab.A, Lab.Real);
        int promiscBefore = Net.Promiscuity(lab.A, Lab.Real);
        var virtnet = lab.Up(datapath, "--mac", mac);

        string virtMac = Net.Mac(lab.A, Lab.Virtual);
        if (mac == "random")
        {
            Assert.NotEqual(realMac, virtMac);
            byte first = Convert.ToByte(virtMac[..2], 16);
            Assert.True((first & 1) == 0, $"random MAC {virtMac} is multicast");
            Assert.True((first & 2) != 0, $"random MAC {virtMac} is not locally administered");
        }
        else
        {
            Assert.Equal(mac, virtMac);
        }

        Assert.Contains($"mac {virtMac}", virtnet.ReadyLine, StringComparison.Ordinal);

        Net.AssertPing(lab.A, lab.A4, lab.B4);
        Net.AssertPing(lab.B, lab.B4, lab.A4);
        Assert.Contains($"{lab.A4} lladdr {virtMac}", Net.Ip(lab.B, "neigh", "show", "dev", Lab.Peer), StringComparison.Ordinal);
        output.WriteLine($"{Lab.Real} promiscuity while attached with {virtMac}: {Net.Promiscuity(lab.A, Lab.Real)} (before {promiscBefore})");
        Assert.Equal(realMac, Net.Mac(lab.A, Lab.Real));

        virtnet.Signal(TestLibc.SIGTERM);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running 10 s after SIGTERM: {virtnet.Describe()}");
        Assert.True(virtnet.ExitCode == 0, $"exit code {virtnet.ExitCode}: {virtnet.Describe()}");
        CleanupTests.AssertGivenBack(lab, before, promiscBefore);
        Assert.Equal(realMac, Net.Mac(lab.A, Lab.Real));
    }
}
