// attach --netns: the virtual device made in a third namespace C (a container's, say), the real device staying in
// A. The kernel datapath makes virtnet0 one end of a veth pair whose other end (vnpeer<ifindex>) stays in A and
// is reached by bpf_redirect_peer; the user datapath moves its TAP into C.
//
//   [C: virtnet0 10.200.X.1] ~ virtnet ~ [A: va] ==veth== [B: vb 10.200.X.2]
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class NetnsTests(ITestOutputHelper output)
{
    private const int X = 21;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    [SkippableTheory]
    [InlineData("kernel", "inherit")]
    [InlineData("user", "inherit")]
    [InlineData("kernel", "02:00:00:00:00:43")]
    [InlineData("user", "02:00:00:00:00:43")]
    public void Netns_PingBothWays_ThenStopLeavesNothing(string datapath, string mac)
    {
        Root.Require();
        string tag = $"{datapath[0]}{mac[0]}";
        using var c = new TestNetns($"nsc{tag}");
        using var lab = Lab.Create($"ns{tag}", X, output);
        var before = Net.LinkNames(lab.A);
        string realMac = Net.Mac(lab.A, Lab.Real);

        var virtnet = lab.Attach(datapath, "--netns", c.Name, "--mac", mac);

        Assert.Contains($"{Lab.Real} <-> {Lab.Virtual}, in /run/netns/{c.Name}, {datapath} datapath, mtu 1500", virtnet.ReadyLine, StringComparison.Ordinal);
        Assert.False(Net.Exists(lab.A, Lab.Virtual), $"{Lab.Virtual} is in A: {string.Join(' ', Net.LinkNames(lab.A))}");
        Assert.Contains("UP", Net.Flags(c, Lab.Virtual));
        Assert.Equal(mac == "inherit" ? realMac : mac, Net.Mac(c, Lab.Virtual));
        if (datapath == "kernel")
        {
            string peer = $"vnpeer{Net.Ifindex(lab.A, Lab.Real)}";
            Assert.Contains($", peer {peer}", virtnet.ReadyLine, StringComparison.Ordinal);
            Assert.Equal("1", lab.A.Exec("cat", $"/proc/sys/net/ipv6/conf/{peer}/disable_ipv6").Trim());
        }

        AddressVirtual(c, lab);
        Net.AssertPing(c, lab.A4, lab.B4);
        Net.AssertPing(lab.B, lab.B4, lab.A4);
        var took = Net.WaitForPing(c, lab.A6, lab.B6, TimeSpan.FromSeconds(5));
        output.WriteLine($"first IPv6 answer after {took.TotalMilliseconds:F0} ms");
        Net.AssertPing(lab.B, lab.B6, lab.A6);

        if (mac != "inherit")
        {
            // A frame for the real device's own MAC is not the virtual device's: its stack must see it as another
            // host's (PACKET_OTHERHOST) and not answer, on either datapath.
            Net.Ip(lab.B, "neigh", "replace", lab.A4, "lladdr", realMac, "dev", Lab.Peer, "nud", "permanent");
            var r = Net.Ping(lab.B, lab.B4, lab.A4, count: 2);
            Assert.True(r.ExitCode != 0, $"the virtual device answered a frame for {realMac}: {r.All}");
            Net.Ip(lab.B, "neigh", "replace", lab.A4, "lladdr", mac, "dev", Lab.Peer, "nud", "permanent");
            Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
        }

        virtnet.Signal(15);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"no exit on SIGTERM: {virtnet.Describe()}");
        Assert.Equal(0, virtnet.ExitCode);
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.Equal(["lo"], Net.LinkNames(c));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Netns_TheStackSeesBroadcastAndMulticastFramesAsSuch(string datapath)
    {
        Root.Require();
        using var c = new TestNetns($"nsp{datapath[0]}");
        using var lab = Lab.Create($"np{datapath[0]}", X, output);
        lab.Attach(datapath, "--netns", c.Name);
        AddressVirtual(c, lab);
        string virtMac = Net.Mac(c, Lab.Virtual);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);

        // With this (namespace-local) sysctl, IPv4 drops a unicast packet that came in an L2 broadcast or multicast
        // frame: it answers only if the frame's packet type says PACKET_HOST. The peer redirect marks every frame
        // PACKET_HOST; virtnet_cls must have put the right type back before the stack looks.
        c.Exec("sysctl", "-qw", "net.ipv4.conf.all.drop_unicast_in_l2_multicast=1");
        foreach (var groupMac in new[] { "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:fb" })
        {
            Net.Ip(lab.B, "neigh", "replace", lab.A4, "lladdr", groupMac, "dev", Lab.Peer, "nud", "permanent");
            var r = Net.Ping(lab.B, lab.B4, lab.A4, count: 2);
            Assert.True(r.ExitCode != 0, $"an echo in a frame to {groupMac} was answered, so the stack took it for unicast: {r.All}");
        }

        Net.Ip(lab.B, "neigh", "replace", lab.A4, "lladdr", virtMac, "dev", Lab.Peer, "nud", "permanent");
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Netns_Tcp16MiBEachWay_ArrivesIntact(string datapath)
    {
        Root.Require();
        using var c = new TestNetns($"nst{datapath[0]}");
        using var lab = Lab.Create($"nt{datapath[0]}", X, output);
        lab.Attach(datapath, "--netns", c.Name);
        AddressVirtual(c, lab);
        Net.AssertPing(c, lab.A4, lab.B4, count: 2);

        var wireToVirtual = Traffic.TcpTransfer(lab.B, lab.B4, c, lab.A4, 16L << 20, TimeSpan.FromSeconds(60));
        var virtualToWire = Traffic.TcpTransfer(c, lab.A4, lab.B, lab.B4, 16L << 20, TimeSpan.FromSeconds(60));
        output.WriteLine($"wire -> virtual {wireToVirtual}; virtual -> wire {virtualToWire}");
    }

    [SkippableFact]
    public void Netns_Kernel_Sigkill_RealDeviceBack_NextAttachRemovesTheLeftPair()
    {
        Root.Require();
        using var c = new TestNetns("nsk");
        using var lab = Lab.Create("nk", X, output);
        string peer = $"vnpeer{Net.Ifindex(lab.A, Lab.Real)}";
        var first = lab.Attach("kernel", "--netns", c.Name);
        AddressVirtual(c, lab);
        Net.AssertPing(c, lab.A4, lab.B4, count: 2);

        first.Kill();
        Assert.True(first.WaitForExit(TimeSpan.FromSeconds(5)), "the process survived SIGKILL?");

        // The real device is given back as after any SIGKILL: its hook empties when the last fd closes.
        var back = Net.WaitUntil(() => Net.HooksEmpty(lab.A, Lab.Real), TimeSpan.FromSeconds(1), () => Net.DescribeHooks(lab.A, Lab.Real));
        output.WriteLine($"hooks empty {back.TotalMilliseconds:F0} ms after SIGKILL");

        // The veth pair is not owned by an fd: it stays, inert, until the next attach to the same device.
        Assert.True(Net.Exists(lab.A, peer), $"{peer} gone already: {string.Join(' ', Net.LinkNames(lab.A))}");
        Assert.True(Net.Exists(c, Lab.Virtual));

        var second = lab.Attach("kernel", "--netns", c.Name);
        AddressVirtual(c, lab);
        Net.AssertPing(c, lab.A4, lab.B4, count: 2);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
        second.Signal(15);
        Assert.True(second.WaitForExit(TimeSpan.FromSeconds(10)), $"no exit on SIGTERM: {second.Describe()}");
        Assert.False(Net.Exists(lab.A, peer), $"{peer} left after a clean stop");
        Assert.Equal(["lo"], Net.LinkNames(c));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Netns_MtuAndCarrierFollowTheRealDevice(string datapath)
    {
        Root.Require();
        using var c = new TestNetns($"nsf{datapath[0]}");
        using var lab = Lab.Create($"nf{datapath[0]}", X, output);
        string? peer = datapath == "kernel" ? $"vnpeer{Net.Ifindex(lab.A, Lab.Real)}" : null;
        var virtnet = lab.Attach(datapath, "--netns", c.Name);
        AddressVirtual(c, lab);

        bool Follows(int mtu) => Net.Mtu(c, Lab.Virtual) == mtu && (peer is null || Net.Mtu(lab.A, peer) == mtu);
        string Describe() => $"{Lab.Virtual} mtu {Net.Mtu(c, Lab.Virtual)}{(peer is null ? "" : $", {peer} mtu {Net.Mtu(lab.A, peer)}")}\n{virtnet.Describe()}";

        Net.Ip(lab.B, "link", "set", Lab.Peer, "mtu", "9000");
        Net.Ip(lab.A, "link", "set", Lab.Real, "mtu", "9000");
        Net.WaitUntil(() => Follows(9000), Net.FollowDeadline, Describe);
        Net.AssertPing(c, lab.A4, lab.B4, count: 2, size: 8000, dontFragment: true);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2, size: 8000, dontFragment: true);

        Net.Ip(lab.A, "link", "set", Lab.Real, "mtu", "1400");
        Net.WaitUntil(() => Follows(1400), Net.FollowDeadline, Describe);

        Net.Ip(lab.B, "link", "set", Lab.Peer, "down");
        Net.WaitUntil(() => !Net.HasCarrier(c, Lab.Virtual), Net.FollowDeadline,
            () => $"{Lab.Virtual} kept its carrier: {Net.LinkText(c, Lab.Virtual)}\n{virtnet.Describe()}");
        Net.Ip(lab.B, "link", "set", Lab.Peer, "up");
        Net.WaitUntil(() => Net.HasCarrier(c, Lab.Virtual), Net.FollowDeadline,
            () => $"{Lab.Virtual} carrier did not come back: {Net.LinkText(c, Lab.Virtual)}\n{virtnet.Describe()}");
        Net.AssertPing(c, lab.A4, lab.B4, count: 2);
        Assert.False(virtnet.HasExited, virtnet.Describe());
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Netns_VirtualDeletedInsideTheNamespace_AttachEndsSayingSo(string datapath)
    {
        Root.Require();
        using var c = new TestNetns($"nsd{datapath[0]}");
        using var lab = Lab.Create($"nd{datapath[0]}", X, output);
        var before = Net.LinkNames(lab.A);
        var virtnet = lab.Attach(datapath, "--netns", c.Name);

        Net.Ip(c, "link", "del", Lab.Virtual);

        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running: {virtnet.Describe()}");
        Assert.Equal(1, virtnet.ExitCode);
        Assert.Contains($"virtnet: {Lab.Virtual} was deleted", virtnet.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Netns_NamespaceGoesAway_AttachEndsAndGivesTheRealDeviceBack(string datapath)
    {
        Root.Require();
        using var c = new TestNetns($"nsg{datapath[0]}");
        using var lab = Lab.Create($"ng{datapath[0]}", X, output);
        var before = Net.LinkNames(lab.A);
        var virtnet = lab.Attach(datapath, "--netns", c.Name);
        AddressVirtual(c, lab);
        Net.AssertPing(c, lab.A4, lab.B4, count: 2);

        // The container exits: its namespace loses its last holder. virtnet must not be one, or the real device's
        // frames would go on flowing into a namespace nobody can reach.
        Run.Checked("ip", "netns", "del", c.Name);

        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), $"still running with its namespace gone: {virtnet.Describe()}");
        Assert.Equal(1, virtnet.ExitCode);
        Assert.Contains($"virtnet: /run/netns/{c.Name} is gone, and {Lab.Virtual} with it", virtnet.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
        CleanupTests.AssertRealWorksDirectly(lab);
    }

    [SkippableFact]
    public void Netns_TheRealDevicesOwnNamespace_IsTheOrdinaryMode()
    {
        Root.Require();
        using var lab = Lab.Create("nself", X, output);

        // /proc/self/ns/net of the virtnet process is A: a peer redirect could not work there, so none is made.
        var virtnet = lab.Up("kernel", "--netns", "/proc/self/ns/net");

        Assert.DoesNotContain(", in ", virtnet.ReadyLine, StringComparison.Ordinal);
        Assert.DoesNotContain("peer", virtnet.ReadyLine, StringComparison.Ordinal);
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
    }

    [SkippableFact]
    public void Netns_Refusals_SayWhatToDo_AndLeaveNothing()
    {
        Root.Require();
        using var c = new TestNetns("nse");
        using var lab = Lab.Create("ne", X, output);
        var before = Net.LinkNames(lab.A);

        var missing = VirtnetProcess.RunToExit(lab.A, FailFast, "attach", Lab.Real, "--netns", "vn-no-such-netns");
        AssertRefused(missing, "no network namespace /run/netns/vn-no-such-netns", "ip netns add");

        var reserved = VirtnetProcess.RunToExit(lab.A, FailFast, "attach", Lab.Real, "--netns", c.Name, "--name", "vnpeer7");
        AssertRefused(reserved, "vnpeer7: names starting with vnpeer, vnpump or vnring are virtnet's own", "--name");

        // Something else already called virtnet0 in C (no dummy driver here: a veth pair born inside C).
        Net.Ip(c, "link", "add", Lab.Virtual, "type", "veth", "peer", "name", "vx");
        foreach (var datapath in new[] { "kernel", "user" })
        {
            var inUse = VirtnetProcess.RunToExit(lab.A, FailFast, "attach", Lab.Real, "--datapath", datapath, "--netns", c.Name);
            AssertRefused(inUse, $"{Lab.Virtual}: name already in use in /run/netns/{c.Name}");
        }

        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.Equal(["lo", Lab.Virtual, "vx"], Net.LinkNames(c));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    private static void AddressVirtual(TestNetns c, Lab lab)
    {
        Net.Ip(c, "link", "set", "lo", "up");
        Net.Ip(c, "addr", "add", $"{lab.A4}/24", "dev", Lab.Virtual);
        Net.Ip(c, "addr", "add", $"{lab.A6}/64", "dev", Lab.Virtual, "nodad");
    }

    private void AssertRefused(RunResult r, params string[] mentions)
        => Refusal.AssertOneSentence(r, output, StringComparison.Ordinal, mentions);
}
