// virtnet0 follows the real device while running: its MTU (up and down) and its carrier, without a restart.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class FollowTests(ITestOutputHelper output)
{
    private const int X = 5;

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Mtu_RealChangesWhileRunning_VirtualFollows(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fm{datapath[0]}", X, output);
        lab.Up(datapath);
        Assert.Equal(1500, Net.Mtu(lab.A, Lab.Virtual));

        foreach (int mtu in new[] { 4000, 1400 })
        {
            Net.Ip(lab.A, "link", "set", Lab.Real, "mtu", mtu.ToString());
            var took = Net.WaitUntil(() => Net.Mtu(lab.A, Lab.Virtual) == mtu, Net.FollowDeadline,
                () => $"{Lab.Virtual} mtu {Net.Mtu(lab.A, Lab.Virtual)}, {Lab.Real} mtu {mtu}\n{lab.Virtnet!.Describe()}");
            output.WriteLine($"{Lab.Virtual} followed mtu {mtu} after {took.TotalMilliseconds:F0} ms");
        }

        // Still forwarding at the smaller MTU, both ways, with full-size frames.
        Net.Ip(lab.B, "link", "set", Lab.Peer, "mtu", "1400");
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3, size: 1400 - 28, dontFragment: true);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3, size: 1400 - 28, dontFragment: true);
        Assert.False(lab.Virtnet!.HasExited, $"virtnet exited while following: {lab.Virtnet.Describe()}");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Carrier_PeerDownThenUp_VirtualFollowsAndTrafficResumes(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fc{datapath[0]}", X, output);
        lab.Up(datapath);
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);

        Net.Ip(lab.B, "link", "set", Lab.Peer, "down");
        Net.WaitUntil(() => !Net.HasCarrier(lab.A, Lab.Real), Net.FollowDeadline, () => $"{Lab.Real} kept its carrier: {Net.LinkText(lab.A, Lab.Real)}");
        var lost = Net.WaitUntil(() => Net.Flags(lab.A, Lab.Virtual).Contains("NO-CARRIER"), Net.FollowDeadline,
            () => $"{Lab.Virtual} did not lose carrier: {Net.LinkText(lab.A, Lab.Virtual)}\n{lab.Virtnet!.Describe()}");
        output.WriteLine($"{Lab.Virtual} NO-CARRIER after {lost.TotalMilliseconds:F0} ms");
        Assert.Equal("0", lab.A.Exec("cat", $"/sys/class/net/{Lab.Virtual}/carrier").Trim());
        Assert.Contains("NO-CARRIER", Net.TryIp(lab.A, "link", "show", Lab.Virtual).Stdout, StringComparison.Ordinal);

        Net.Ip(lab.B, "link", "set", Lab.Peer, "up");
        var back = Net.WaitUntil(() => Net.HasCarrier(lab.A, Lab.Virtual), Net.FollowDeadline,
            () => $"{Lab.Virtual} carrier did not come back: {Net.LinkText(lab.A, Lab.Virtual)}; {Lab.Real}: {Net.LinkText(lab.A, Lab.Real)}\n{lab.Virtnet!.Describe()}");
        output.WriteLine($"{Lab.Virtual} carrier back after {back.TotalMilliseconds:F0} ms");
        Assert.Equal("1", lab.A.Exec("cat", $"/sys/class/net/{Lab.Virtual}/carrier").Trim());

        // Same process, no restart: traffic flows again (the first answer may wait for the link to settle).
        Assert.False(lab.Virtnet!.HasExited, $"virtnet exited on carrier loss: {lab.Virtnet.Describe()}");
        Net.WaitForPing(lab.A, lab.A4, lab.B4, TimeSpan.FromSeconds(5));
        Net.AssertPing(lab.A, lab.A4, lab.B4);
        Net.AssertPing(lab.B, lab.B4, lab.A4);
    }
}
