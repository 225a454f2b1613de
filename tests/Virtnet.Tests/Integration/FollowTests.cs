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

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Carrier_RealWithoutCarrierAtStart_VirtualStartsWithoutAndFollows(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fs{datapath[0]}", X, output);
        Net.Ip(lab.B, "link", "set", Lab.Peer, "down");
        Net.WaitUntil(() => !Net.HasCarrier(lab.A, Lab.Real), Net.FollowDeadline, () => $"{Lab.Real} kept its carrier: {Net.LinkText(lab.A, Lab.Real)}");
        lab.Up(datapath);

        Assert.True(Net.Flags(lab.A, Lab.Virtual).Contains("NO-CARRIER"), $"{Lab.Virtual} has carrier although {Lab.Real} has none: {Net.LinkText(lab.A, Lab.Virtual)}");

        Net.Ip(lab.B, "link", "set", Lab.Peer, "up");
        Net.Ip(lab.B, "addr", "replace", $"{lab.B4}/24", "dev", Lab.Peer);
        Net.WaitUntil(() => Net.HasCarrier(lab.A, Lab.Virtual), Net.FollowDeadline,
            () => $"{Lab.Virtual} carrier did not come: {Net.LinkText(lab.A, Lab.Virtual)}\n{lab.Virtnet!.Describe()}");
        Net.WaitForPing(lab.A, lab.A4, lab.B4, TimeSpan.FromSeconds(5));
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void RealDeleted_WhileRunning_ExitsWithOneSentenceAndLeavesNothing(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fd{datapath[0]}", X, output);
        var virtnet = lab.Up(datapath, "-q"); // -q: the log's information lines (carrier off) stay out of stderr
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);

        // Deleting vb deletes its peer va too: the real device is gone.
        Net.Ip(lab.B, "link", "del", Lab.Peer);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running 10 s after {Lab.Real} was deleted: {virtnet.Describe()}");
        output.WriteLine(virtnet.Describe());

        Assert.NotEqual(0, virtnet.ExitCode);
        string stderr = virtnet.Stderr.TrimEnd('\n');
        Assert.StartsWith("virtnet: ", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', stderr);
        Assert.Contains(Lab.Real, stderr, StringComparison.Ordinal);
        Assert.Equal(["lo"], Net.LinkNames(lab.A));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Carrier_RealAdminDownThenUp_VirtualFollowsAndTrafficResumes(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fa{datapath[0]}", X, output);
        lab.Up(datapath);
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);

        Net.Ip(lab.A, "link", "set", Lab.Real, "down");
        Net.WaitUntil(() => Net.Flags(lab.A, Lab.Virtual).Contains("NO-CARRIER"), Net.FollowDeadline,
            () => $"{Lab.Virtual} kept its carrier with {Lab.Real} down: {Net.LinkText(lab.A, Lab.Virtual)}\n{lab.Virtnet!.Describe()}");

        Net.Ip(lab.A, "link", "set", Lab.Real, "up");
        Net.WaitUntil(() => Net.HasCarrier(lab.A, Lab.Virtual), Net.FollowDeadline,
            () => $"{Lab.Virtual} carrier did not come back: {Net.LinkText(lab.A, Lab.Virtual)}; {Lab.Real}: {Net.LinkText(lab.A, Lab.Real)}\n{lab.Virtnet!.Describe()}");
        Assert.False(lab.Virtnet!.HasExited, $"virtnet exited when {Lab.Real} went down: {lab.Virtnet.Describe()}");
        Net.WaitForPing(lab.A, lab.A4, lab.B4, TimeSpan.FromSeconds(5));
        Net.AssertPing(lab.A, lab.A4, lab.B4);
        Net.AssertPing(lab.B, lab.B4, lab.A4);
    }
}
