// Several bindings on one real device (attach --mode bridge|private|vepa, --vlan): who reaches whom, what goes on
// the wire and what must not, broadcast fan-out, VLAN separation, clash refusals, and a killed binding swept away
// while its siblings lose nothing.
//
//   [C: v1 10.200.X.11] ~ virtnet ~ ┐
//   [D: v2 10.200.X.12] ~ virtnet ~ ┼ [A: va 10.200.X.3 (the real device's own stack)] ==veth== [B: vb 10.200.X.2]
//
// A binding with --netns lives in its own namespace (C, D, ...); without, its TAP sits next to va in A. Every
// ping that must fail is sent with static neighbour entries, so that it fails for want of forwarding, not of ARP.
using System.Diagnostics;
using System.Text.RegularExpressions;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Virtnet.Tests.Integration;

public class SharedTests(ITestOutputHelper output)
{
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    private static string Ip(int x, int host) => $"10.200.{x}.{host}";

    /// <summary>The real device's own stack: an address on va in A.</summary>
    private static string HostAddress(Lab lab)
    {
        string host = Ip(lab.X, 3);
        Net.Ip(lab.A, "addr", "add", $"{host}/24", "dev", Lab.Real);
        return host;
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Bridge_TwoBindings_ReachTheWireTheHostAndEachOther_SiblingTrafficNeverOnTheWire(string datapath)
    {
        Root.Require();
        const int X = 40;
        using var c = new TestNetns($"shbc{datapath[0]}");
        using var d = new TestNetns($"shbd{datapath[0]}");
        using var lab = Lab.Create($"shb{datapath[0]}", X, output);
        string host = HostAddress(lab);
        string hostMac = Net.Mac(lab.A, Lab.Real);
        var before = Net.LinkNames(lab.A);

        var v1 = Shared.Bind(lab, datapath, "v1", "bridge", c, Ip(X, 11));
        var v2 = Shared.Bind(lab, datapath, "v2", "bridge", d, Ip(X, 12));
        Assert.NotEqual(v1.Mac, v2.Mac);
        Assert.NotEqual(hostMac, v1.Mac);
        if (datapath == "kernel")
        {
            Assert.NotNull(v1.Peer);
            Assert.NotNull(v2.Peer);
            Assert.NotEqual(v1.Peer, v2.Peer);
            Assert.True(Net.Exists(lab.A, v1.Peer!) && Net.Exists(lab.A, v2.Peer!), $"peers {v1.Peer}, {v2.Peer} not both in A: {string.Join(' ', Net.LinkNames(lab.A))}");
        }

        // wire <-> each binding, and the wire <-> the host (a frame for no binding); neither binding sees the
        // other's unicast or the host's.
        using (var on1 = PacketSocket.Open(c, "v1"))
        using (var on2 = PacketSocket.Open(d, "v2"))
        {
            Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 3);
            Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 3);
            Net.AssertPing(c, v1.Address!, lab.B4, count: 3);
            Net.AssertPing(d, v2.Address!, lab.B4, count: 3);
            Net.AssertPing(lab.B, lab.B4, host, count: 3);
            var seen1 = Shared.Icmp(Shared.Drain(on1));
            var seen2 = Shared.Icmp(Shared.Drain(on2));
            // Received frames only: B's 3 echo requests and B's 3 replies to v1's.
            Assert.True(seen1.Count(f => f.Src == lab.B4 && f.Dst == v1.Address && f.Type == IcmpFrame.EchoRequest) == 3
                && seen1.Count(f => f.Src == lab.B4 && f.Dst == v1.Address && f.Type == IcmpFrame.EchoReply) == 3,
                $"v1 did not see exactly 3 echo requests and 3 replies from the wire: {string.Join("; ", seen1)}");
            var leak1 = seen1.Where(f => f.Src == v2.Address || f.Dst == v2.Address || f.Src == host || f.Dst == host).ToList();
            var leak2 = seen2.Where(f => f.Src == v1.Address || f.Dst == v1.Address || f.Src == host || f.Dst == host).ToList();
            Assert.True(leak1.Count == 0, $"v1 saw unicast that is not its own: {string.Join("; ", leak1)}");
            Assert.True(leak2.Count == 0, $"v2 saw unicast that is not its own: {string.Join("; ", leak2)}");
        }

        // B learnt each address at its owner's MAC.
        Assert.Contains($"{v1.Address} lladdr {v1.Mac}", Net.Ip(lab.B, "neigh", "show", "dev", Lab.Peer), StringComparison.Ordinal);
        Assert.Contains($"{v2.Address} lladdr {v2.Mac}", Net.Ip(lab.B, "neigh", "show", "dev", Lab.Peer), StringComparison.Ordinal);
        Assert.Contains($"{host} lladdr {hostMac}", Net.Ip(lab.B, "neigh", "show", "dev", Lab.Peer), StringComparison.Ordinal);

        // v1 <-> v2 and host <-> each binding, both ways: directly, never on the wire. The wire -> v1 echo in the
        // same capture shows the capture sees what crosses.
        using (var wire = PacketSocket.Open(lab.B, Lab.Peer))
        {
            Net.AssertPing(c, v1.Address!, v2.Address!, count: 3);
            Net.AssertPing(d, v2.Address!, v1.Address!, count: 3);
            Net.AssertPing(lab.A, host, v1.Address!, count: 3);
            Net.AssertPing(c, v1.Address!, host, count: 3);
            Net.AssertPing(lab.A, host, v2.Address!, count: 3);
            Net.AssertPing(d, v2.Address!, host, count: 3);
            Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 2);
            var onWire = Shared.Icmp(Shared.Drain(wire));
            output.WriteLine($"ICMP on the wire: {string.Join("; ", onWire)}");
            Assert.True(onWire.Count(f => f.Src == v1.Address && f.Dst == lab.B4 && f.Type == IcmpFrame.EchoReply && f.SrcMac == v1.Mac) == 2,
                $"the capture on {Lab.Peer} missed v1's 2 echo replies to the wire: {string.Join("; ", onWire)}");
            string[] local = [v1.Address!, v2.Address!, host];
            var shortcut = onWire.Where(f => local.Contains(f.Src) && local.Contains(f.Dst)).ToList();
            Assert.True(shortcut.Count == 0, $"traffic between the bindings and the host went on the wire: {string.Join("; ", shortcut)}");
        }

        v1.Stop();
        v2.Stop();
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.Equal(["lo"], Net.LinkNames(c));
        Assert.Equal(["lo"], Net.LinkNames(d));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
        Net.AssertPing(lab.B, lab.B4, host, count: 2);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Bridge_BroadcastAndMulticast_ReachEveryOtherHostExactlyOnce(string datapath)
    {
        Root.Require();
        const int X = 41;
        using var c = new TestNetns($"shmc{datapath[0]}");
        using var d = new TestNetns($"shmd{datapath[0]}");
        using var lab = Lab.Create($"shm{datapath[0]}", X, output);
        string host = HostAddress(lab);
        Shared.Sysctl("net.ipv4.icmp_echo_ignore_broadcasts=0", lab.A, lab.B, c, d);
        var v1 = Shared.Bind(lab, datapath, "v1", "bridge", c, Ip(X, 11));
        var v2 = Shared.Bind(lab, datapath, "v2", "bridge", d, Ip(X, 12));
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 1);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 1);

        string[] everyone = [lab.B4, host, v1.Address!, v2.Address!];
        const int Count = 4;
        foreach (var (ns, from, who) in new[] { (lab.B, lab.B4, "the wire"), (lab.A, host, "the host"), (c, v1.Address!, "v1"), (d, v2.Address!, "v2") })
        {
            var r = Shared.GroupPing(ns, from, lab.Broadcast4, Count);
            output.WriteLine($"broadcast ping from {who} ({from}):\n{r.Stdout}");
            Shared.AssertEachRepliesOnce(r, $"broadcast ping from {who} ({from})", from, everyone.Where(a => a != from).ToList(), Count);
        }

        // IPv6 all-nodes multicast, link-local sources.
        string llB = Shared.LinkLocal(lab.B, Lab.Peer);
        string llHost = Shared.LinkLocal(lab.A, Lab.Real);
        string ll1 = Shared.LinkLocal(c, "v1");
        string ll2 = Shared.LinkLocal(d, "v2");
        output.WriteLine($"link-local: vb {llB}, va {llHost}, v1 {ll1}, v2 {ll2}");
        string[] all6 = [llB, llHost, ll1, ll2];
        foreach (var (ns, self, device, who) in new[] { (lab.B, llB, Lab.Peer, "the wire"), (c, ll1, "v1", "v1") })
        {
            var r = Shared.GroupPing(ns, null, $"ff02::1%{device}", Count);
            output.WriteLine($"ff02::1 ping from {who}:\n{r.Stdout}");
            Shared.AssertEachRepliesOnce(r, $"ping ff02::1 from {who}", self, all6.Where(a => a != self).ToList(), Count);
        }
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Private_ReachesTheWireOnly_NotItsSiblingNorTheHost_EvenThroughAHairpin(string datapath)
    {
        Root.Require();
        const int X = 42;
        using var c = new TestNetns($"shpc{datapath[0]}");
        using var d = new TestNetns($"shpd{datapath[0]}");
        using var lab = Lab.Create($"shp{datapath[0]}", X, output);
        string host = HostAddress(lab);
        string hostMac = Net.Mac(lab.A, Lab.Real);
        var v1 = Shared.Bind(lab, datapath, "v1", "private", c, Ip(X, 11));
        var v2 = Shared.Bind(lab, datapath, "v2", "private", d, Ip(X, 12));

        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 3);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 3);
        Net.AssertPing(c, v1.Address!, lab.B4, count: 3);
        Net.AssertPing(d, v2.Address!, lab.B4, count: 3);
        Net.AssertPing(lab.B, lab.B4, host, count: 2);

        Shared.Neigh(c, "v1", v2.Address!, v2.Mac);
        Shared.Neigh(d, "v2", v1.Address!, v1.Mac);
        Shared.Neigh(c, "v1", host, hostMac);
        Shared.Neigh(lab.A, Lab.Real, v1.Address!, v1.Mac);
        AssertSiblingsApart(lab, c, v1, d, v2, "without a hairpin");

        var toV1 = Net.Ping(lab.A, host, v1.Address!, count: 2);
        Assert.True(toV1.ExitCode != 0, $"the host reached private v1: {toV1.All}");
        var fromV1 = Net.Ping(c, v1.Address!, host, count: 2);
        Assert.True(fromV1.ExitCode != 0, $"private v1 reached the host: {fromV1.All}");

        // A switch that sends frames back where they came from does not join private siblings either.
        HairpinBridge(lab);
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 2);
        Net.AssertPing(c, v1.Address!, lab.B4, count: 2);
        AssertSiblingsApart(lab, c, v1, d, v2, "through the wire's hairpin");
    }

    /// <summary>Pings each way between two private bindings fail, and no echo request from one arrives on the other.</summary>
    private static void AssertSiblingsApart(Lab lab, TestNetns c, Binding v1, TestNetns d, Binding v2, string how)
    {
        using var on1 = PacketSocket.Open(c, v1.Name);
        using var on2 = PacketSocket.Open(d, v2.Name);
        var oneToTwo = Net.Ping(c, v1.Address!, v2.Address!, count: 2);
        var twoToOne = Net.Ping(d, v2.Address!, v1.Address!, count: 2);
        Assert.True(oneToTwo.ExitCode != 0, $"private v1 reached its sibling v2 {how}: {oneToTwo.All}");
        Assert.True(twoToOne.ExitCode != 0, $"private v2 reached its sibling v1 {how}: {twoToOne.All}");

        // The captures do see what reaches each binding: one echo from the wire to each.
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 1);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 1);
        var seen2 = Shared.Icmp(Shared.Drain(on2));
        var seen1 = Shared.Icmp(Shared.Drain(on1));
        Assert.True(seen1.Any(f => f.Src == lab.B4 && f.Type == IcmpFrame.EchoRequest) && seen2.Any(f => f.Src == lab.B4 && f.Type == IcmpFrame.EchoRequest),
            $"the captures on v1 and v2 missed the wire's echo requests: v1 [{string.Join("; ", seen1)}], v2 [{string.Join("; ", seen2)}]");
        var at2 = seen2.Where(f => f.Src == v1.Address).ToList();
        var at1 = seen1.Where(f => f.Src == v2.Address).ToList();
        Assert.True(at2.Count == 0, $"v1's echoes arrived on its private sibling v2 {how}: {string.Join("; ", at2)}");
        Assert.True(at1.Count == 0, $"v2's echoes arrived on its private sibling v1 {how}: {string.Join("; ", at1)}");
    }

    /// <summary>In B, vb becomes a port of br0 with hairpin on (B's address moves to br0).</summary>
    private static void HairpinBridge(Lab lab)
    {
        Net.Ip(lab.B, "link", "add", "br0", "type", "bridge");
        Net.Ip(lab.B, "link", "set", Lab.Peer, "master", "br0");
        Net.Ip(lab.B, "addr", "del", $"{lab.B4}/24", "dev", Lab.Peer);
        Net.Ip(lab.B, "addr", "add", $"{lab.B4}/24", "dev", "br0");
        Net.Ip(lab.B, "link", "set", "br0", "up");
        Run.Checked("bridge", "-n", lab.B.Name, "link", "set", "dev", Lab.Peer, "hairpin", "on");
        Assert.Contains("hairpin on", Run.Checked("bridge", "-n", lab.B.Name, "-d", "link", "show", "dev", Lab.Peer), StringComparison.Ordinal);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Vepa_SiblingTrafficGoesOnTheWire_AndArrivesOnlyWhenTheSwitchHairpinsIt(string datapath)
    {
        Root.Require();
        const int X = 43;
        using var c = new TestNetns($"shvc{datapath[0]}");
        using var d = new TestNetns($"shvd{datapath[0]}");
        using var lab = Lab.Create($"shv{datapath[0]}", X, output);
        string host = HostAddress(lab);
        string hostMac = Net.Mac(lab.A, Lab.Real);
        var v1 = Shared.Bind(lab, datapath, "v1", "vepa", c, Ip(X, 11));
        var v2 = Shared.Bind(lab, datapath, "v2", "vepa", d, Ip(X, 12));
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 2);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 2);
        Net.AssertPing(c, v1.Address!, lab.B4, count: 2);
        Shared.Neigh(c, "v1", v2.Address!, v2.Mac);
        Shared.Neigh(d, "v2", v1.Address!, v1.Mac);
        Shared.Neigh(c, "v1", host, hostMac);

        // No hairpin: v1's echo requests to v2 (and to the host) leave on the wire and never come back.
        using (var wire = PacketSocket.Open(lab.B, Lab.Peer))
        using (var on2 = PacketSocket.Open(d, "v2"))
        {
            var r = Net.Ping(c, v1.Address!, v2.Address!, count: 2);
            Assert.True(r.ExitCode != 0, $"vepa v1 reached v2 without a hairpin on the wire: {r.All}");
            var h = Net.Ping(c, v1.Address!, host, count: 2);
            Assert.True(h.ExitCode != 0, $"vepa v1 reached the host without a hairpin on the wire: {h.All}");
            var onWire = Shared.Icmp(Shared.Drain(wire));
            output.WriteLine($"ICMP on the wire, no hairpin: {string.Join("; ", onWire)}");
            int requests = onWire.Count(f => f.Src == v1.Address && f.Dst == v2.Address && f.Type == IcmpFrame.EchoRequest && f.SrcMac == v1.Mac && f.DstMac == v2.Mac);
            Assert.True(requests == 2, $"expected v1's 2 echo requests to v2 on the wire, saw {requests}: {string.Join("; ", onWire)}");
            int toHost = onWire.Count(f => f.Src == v1.Address && f.Dst == host && f.Type == IcmpFrame.EchoRequest && f.DstMac == hostMac);
            Assert.True(toHost == 2, $"expected v1's 2 echo requests to the host on the wire, saw {toHost}: {string.Join("; ", onWire)}");
            Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 1);
            var seen2 = Shared.Icmp(Shared.Drain(on2));
            Assert.True(seen2.Any(f => f.Src == lab.B4 && f.Type == IcmpFrame.EchoRequest), $"the capture on v2 missed the wire's echo request: {string.Join("; ", seen2)}");
            var at2 = seen2.Where(f => f.Src == v1.Address).ToList();
            Assert.True(at2.Count == 0, $"v1's echoes reached v2 without a hairpin: {string.Join("; ", at2)}");
        }

        // The switch hairpins: v1 <-> v2 works, through the wire.
        HairpinBridge(lab);
        using (var wire = PacketSocket.Open(lab.B, Lab.Peer))
        {
            Net.AssertPing(c, v1.Address!, v2.Address!, count: 3);
            Net.AssertPing(d, v2.Address!, v1.Address!, count: 3);
            var onWire = Shared.Icmp(Shared.Drain(wire));
            int requests = onWire.Count(f => f.Src == v1.Address && f.Dst == v2.Address && f.Type == IcmpFrame.EchoRequest);
            int replies = onWire.Count(f => f.Src == v2.Address && f.Dst == v1.Address && f.Type == IcmpFrame.EchoReply);
            Assert.True(requests == 3 && replies == 3, $"expected v1 -> v2's 3 requests and 3 replies on the wire, saw {requests} and {replies}: {string.Join("; ", onWire)}");
        }

        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 2);
        v1.Stop();
        v2.Stop();
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Vlan_EachBindingGetsOnlyItsVlansFramesUntagged_AndSendsTagged(string datapath)
    {
        Root.Require();
        const int X = 44;
        const string SameMac = "02:00:00:00:44:10";
        using var lab = Lab.Create($"shl{datapath[0]}", X, output);
        var before = Net.LinkNames(lab.A);
        // TAPs next to va: two bridge bindings with one MAC on VLANs 10 and 20, a passthru of VLAN 30.
        var v10 = Shared.Bind(lab, datapath, "v10", "bridge", null, null, "--vlan", "10", "--mac", SameMac);
        var v20 = Shared.Bind(lab, datapath, "v20", "bridge", null, null, "--vlan", "20", "--mac", SameMac);
        var p30 = Shared.Bind(lab, datapath, "p30", "passthru", null, null, "--vlan", "30");
        byte[] mac = Shared.ParseMac(SameMac);
        byte[] wireMac = Net.MacBytes(lab.B, Lab.Peer);
        byte[] other = Shared.ParseMac("02:00:00:00:44:99");
        byte[] broadcast = Shared.ParseMac("ff:ff:ff:ff:ff:ff");

        // (what, destination, VLAN, the bindings that must get it once, untagged)
        var probes = new (string What, byte[] Dst, int? Vid, string[] To)[]
        {
            ("vlan 10 to the MAC", mac, 10, ["v10"]),
            ("vlan 20 to the MAC", mac, 20, ["v20"]),
            ("untagged to the MAC", mac, null, []),
            ("vlan 40 to the MAC", mac, 40, []),
            ("vlan 10 to another MAC", other, 10, []),
            ("vlan 10 broadcast", broadcast, 10, ["v10"]),
            ("vlan 30 to another MAC", other, 30, ["p30"]),
            ("vlan 30 to the MAC", mac, 30, ["p30"]),
            ("vlan 30 broadcast", broadcast, 30, ["p30"]),
            ("untagged broadcast", broadcast, null, []),
        };
        var bindings = new[] { v10, v20, p30 };
        var sockets = bindings.ToDictionary(b => b.Name, b => PacketSocket.Open(lab.A, b.Name));
        var markers = probes.Select(p => Shared.NewMarker(p.What.Replace(' ', '-'))).ToArray();
        var failures = new List<string>();
        try
        {
            using (var sender = PacketSocket.Open(lab.B, Lab.Peer))
            {
                for (int i = 0; i < probes.Length; i++)
                {
                    sender.Send(Shared.MarkedFrame(probes[i].Dst, wireMac, probes[i].Vid, markers[i]));
                }
            }

            foreach (var b in bindings)
            {
                var frames = Shared.Drain(sockets[b.Name], 500);
                for (int i = 0; i < probes.Length; i++)
                {
                    var got = Shared.WithMarker(frames, markers[i]);
                    int want = probes[i].To.Contains(b.Name) ? 1 : 0;
                    string seen = string.Join("; ", got.Select(Shared.Describe));
                    output.WriteLine($"{probes[i].What} -> {b.Name}: {got.Count} ({seen})");
                    if (got.Count != want)
                    {
                        failures.Add($"{probes[i].What}: arrived {got.Count} times on {b.Name}, expected {want} ({seen})");
                    }

                    foreach (var f in got)
                    {
                        var (vid, type, _) = Shared.Tag(f);
                        if (vid is not null || type != Shared.ExperimentalEtherType)
                        {
                            failures.Add($"{probes[i].What}: arrived on {b.Name} still tagged (vlan {vid}, EtherType 0x{type:x4}): {Shared.Describe(f)}");
                        }
                    }
                }
            }
        }
        finally
        {
            foreach (var s in sockets.Values)
            {
                s.Dispose();
            }
        }

        // What each binding sends leaves on the wire tagged with its VLAN, once.
        foreach (var (b, vid) in new[] { (v10, 10), (v20, 20), (p30, 30) })
        {
            string marker = Shared.NewMarker($"from-{b.Name}");
            using var wire = PacketSocket.Open(lab.B, Lab.Peer);
            using (var sender = PacketSocket.Open(lab.A, b.Name))
            {
                sender.Send(Shared.MarkedFrame(wireMac, b.MacBytes, null, marker));
            }

            var got = Shared.WithMarker(Shared.Drain(wire, 500), marker);
            string seen = string.Join("; ", got.Select(Shared.Describe));
            output.WriteLine($"{b.Name} -> wire: {seen}");
            if (got.Count != 1)
            {
                failures.Add($"a frame sent by {b.Name} arrived {got.Count} times on the wire, expected once ({seen})");
            }

            foreach (var f in got)
            {
                var (tag, type, twice) = Shared.Tag(f);
                if (tag != vid || type != Shared.ExperimentalEtherType || twice)
                {
                    failures.Add($"a frame sent by {b.Name} left with vlan {tag?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, EtherType 0x{type:x4}, expected vlan {vid} once: {Shared.Describe(f)}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));
        foreach (var b in bindings)
        {
            b.Stop();
        }

        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Clashes_AreRefusedNamingTheBindingInTheWay_AndRunningBindingsKeepWorking(string datapath)
    {
        Root.Require();
        const int X = 45;
        using var c = new TestNetns($"shcc{datapath[0]}");
        using var e = new TestNetns($"shce{datapath[0]}");
        using var lab = Lab.Create($"shc{datapath[0]}", X, output);
        string realMac = Net.Mac(lab.A, Lab.Real);
        var before = Net.LinkNames(lab.A);
        var problems = new List<string>();
        var v1 = Shared.Bind(lab, datapath, "v1", "bridge", c, Ip(X, 11), "--mac", "02:00:00:00:00:11");
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 2);

        // Runs an attach that must be refused; checks the sentence, that nothing was left, and that v1 still answers.
        void Refused(string what, Binding? running, string[] args, params string[] mentions)
        {
            var links = Net.LinkNames(lab.A);
            var r = VirtnetProcess.RunToExit(lab.A, FailFast, ["attach", Lab.Real, "--datapath", datapath, .. args]);
            try
            {
                Assert.True(r.ExitCode == 1, $"exit code {r.ExitCode}, expected 1");
                Refusal.AssertOneSentence(r, output, StringComparison.Ordinal, mentions);
            }
            catch (XunitException ex)
            {
                problems.Add($"{what}: `virtnet attach {Lab.Real} --datapath {datapath} {string.Join(' ', args)}`: {ex.Message.Replace('\n', ' ')}\n    stderr: {r.Stderr.TrimEnd()}");
            }

            Assert.Equal(links, Net.LinkNames(lab.A));
            if (running is not null)
            {
                Assert.False(running.Process.HasExited, $"{running.Name} stopped after the refused attach ({what}): {running.Process.Describe()}");
                Net.AssertPing(lab.B, lab.B4, running.Address!, count: 2);
            }
        }

        string v1Pid = $"pid {v1.Pid}";
        Refused("same MAC untagged, bridge", v1, ["--name", "va2", "--mode", "bridge", "--mac", "02:00:00:00:00:11"],
            "02:00:00:00:00:11 untagged is already served by v1", v1Pid, "--mac");
        Refused("same MAC untagged, private", v1, ["--name", "va2", "--mode", "private", "--mac", "02:00:00:00:00:11"],
            "02:00:00:00:00:11 untagged is already served by v1", v1Pid);
        Refused("whole-device passthru next to a bridge binding", v1, ["--name", "px"],
            "already carries virtnet bindings (v1", v1Pid, "passthru takes every frame");
        Refused("bridge with the real device's own MAC, untagged", v1, ["--name", "hm", "--mode", "bridge", "--mac", realMac],
            realMac, "va's own address");

        // The real device's MAC on a VLAN is no clash.
        var hm10 = Shared.Bind(lab, datapath, "hm10", "bridge", null, null, "--mac", realMac, "--vlan", "10");
        Refused("passthru --vlan 10 next to a bridge binding on VLAN 10", v1, ["--name", "p10", "--vlan", "10"],
            "VLAN 10 is already shared with hm10", $"pid {hm10.Pid}");
        Assert.False(hm10.Process.HasExited, hm10.Process.Describe());
        hm10.Stop();

        // VLAN 10 is free again: a passthru takes it whole, and a bridge binding on it is refused.
        var p10 = Shared.Bind(lab, datapath, "p10", "passthru", null, null, "--vlan", "10");
        Refused("bridge --vlan 10 next to a passthru of VLAN 10", v1, ["--name", "b10", "--mode", "bridge", "--vlan", "10"],
            "VLAN 10 is taken whole by the passthru binding p10", $"pid {p10.Pid}");
        Assert.False(p10.Process.HasExited, p10.Process.Describe());
        p10.Stop();
        v1.Stop();
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));

        // A whole-device passthru first: no shared binding beside it.
        var pt = lab.Attach(datapath, "--name", "pt", "--netns", e.Name);
        Net.Ip(e, "addr", "add", $"{Ip(X, 21)}/24", "dev", "pt");
        var ptBinding = new Binding(pt, e, "pt", Net.Mac(e, "pt"), Ip(X, 21));
        Net.AssertPing(lab.B, lab.B4, ptBinding.Address!, count: 2);
        Refused("bridge next to a whole-device passthru", ptBinding, ["--name", "b1", "--mode", "bridge"],
            "already attached by another virtnet (pt", $"pid {pt.Pid}", "in passthru mode");
        Refused("bridge --vlan 10 next to a whole-device passthru", ptBinding, ["--name", "b1", "--mode", "bridge", "--vlan", "10"],
            "already attached by another virtnet (pt", $"pid {pt.Pid}", "in passthru mode");

        Assert.True(problems.Count == 0, $"{problems.Count} refusals not as specified:\n{string.Join('\n', problems)}");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void AddingAndRemovingOthers_LosesNoFrameOfARunningBinding(string datapath)
    {
        Root.Require();
        const int X = 48;
        using var c = new TestNetns($"sharc{datapath[0]}");
        using var d = new TestNetns($"shard{datapath[0]}");
        using var lab = Lab.Create($"shar{datapath[0]}", X, output);
        var v2 = Shared.Bind(lab, datapath, "v2", "bridge", d, Ip(X, 12));
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 2);

        // 400 echoes to v2 at 10 ms while others come and go: the first binding after v2 (the switch's tables
        // change), one stopped cleanly, one killed, one on a VLAN, one on the whole of that VLAN.
        RunResult? flood = null;
        var pinger = new Thread(() => flood = lab.B.Try(TimeSpan.FromSeconds(30), "ping", "-n", "-q", "-i", "0.01", "-c", "400", "-W", "1", "-I", lab.B4, v2.Address!))
        { IsBackground = true, Name = "ping v2" };
        pinger.Start();
        var v1 = Shared.Bind(lab, datapath, "v1", "bridge", c, Ip(X, 11));
        v1.Stop();
        var v3 = Shared.Bind(lab, datapath, "v3", "vepa", c, Ip(X, 13));
        v3.Process.Signal(TestLibc.SIGKILL);
        Assert.True(v3.Process.WaitForExit(TimeSpan.FromSeconds(5)), "v3 survived SIGKILL?");
        var t1 = Shared.Bind(lab, datapath, "t1", "passthru", null, null, "--vlan", "7");
        t1.Stop();

        Assert.True(pinger.Join(TimeSpan.FromSeconds(30)), "the ping to v2 did not end");
        output.WriteLine($"ping to v2 while others came and went: {flood!.Stdout.Trim()}");
        var (sent, received) = Shared.PingTotals(flood.Stdout);
        Assert.True(flood.ExitCode == 0 && sent == 400 && received == 400, $"v2 lost echoes while other bindings came and went: {flood.All}");
        v2.Stop();
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    /// <summary>
    /// The user datapath on a shared device splits as it does on a whole one: small non-TCP frames reach the
    /// forwarders through the receive rings of the binding's ring device (vnring...), TCP through its pump; neither
    /// device sees another binding's frames.
    /// </summary>
    [SkippableFact]
    public void User_SmallFramesTakeTheRingDevice_TcpThePump_EachBindingItsOwn()
    {
        Root.Require();
        const int X = 49;
        using var c = new TestNetns("shsc");
        using var d = new TestNetns("shsd");
        using var lab = Lab.Create("shs", X, output);
        var v1 = Shared.Bind(lab, "user", "v1", "bridge", c, Ip(X, 11));
        var v2 = Shared.Bind(lab, "user", "v2", "bridge", d, Ip(X, 12));
        string ring1 = Regex.Match(v1.ReadyLine, @", rings on (vnring\d+s\d+)").Groups[1].Value;
        string pump1 = Regex.Match(v1.ReadyLine, @", pump (vnpump\d+s\d+)").Groups[1].Value;
        string ring2 = Regex.Match(v2.ReadyLine, @", rings on (vnring\d+s\d+)").Groups[1].Value;
        Assert.True(ring1.Length > 0 && pump1.Length > 0 && ring2.Length > 0 && ring1 != ring2, $"{v1.ReadyLine}\n{v2.ReadyLine}");

        // A frame redirected into a device is counted by no driver there (no rx_packets on the ring device); the
        // pump's tx_packets counts what the switch put into it. So: pings that arrive without crossing the pump
        // crossed the rings, and TCP crosses the pump.
        long Tx(string dev) => Net.RequireLinkStats(lab.A, dev).GetProperty("tx").GetProperty("packets").GetInt64();
        long pumpBefore = Tx(pump1);
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 20);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 5);
        long pumpPings = Tx(pump1) - pumpBefore;
        Assert.True(pumpPings < 5, $"20 echo requests to v1 answered, and {pumpPings} frames crossed {pump1}: small frames should take {ring1}");

        var result = Traffic.TcpTransfer(lab.B, lab.B4, c, v1.Address!, 32L << 20, TimeSpan.FromSeconds(30));
        output.WriteLine($"TCP into v1: {result}");
        long pumpTcp = Tx(pump1) - pumpBefore - pumpPings;
        Assert.True(pumpTcp > 100, $"32 MiB of TCP into v1, only {pumpTcp} frames through {pump1}");
    }

    [SkippableFact]
    public void Sigkill_OfTheLastBinding_LeavesOnlyAnInertPair_WhichTheNextAttachRemoves()
    {
        Root.Require();
        using var c = new TestNetns("shlc");
        using var lab = Lab.Create("shl", 49, output);
        var v1 = Shared.Bind(lab, "kernel", "v1", "bridge", c, Ip(49, 11));
        string peer = v1.Peer!;
        v1.Process.Signal(TestLibc.SIGKILL);
        Assert.True(v1.Process.WaitForExit(TimeSpan.FromSeconds(5)), "v1 survived SIGKILL?");

        // No binding is left to sweep: the switch went with the last fds, the pair stays, inert.
        Net.WaitUntil(() => Net.HooksEmpty(lab.A, Lab.Real), TimeSpan.FromSeconds(2), () => Net.DescribeHooks(lab.A, Lab.Real));
        Assert.True(Net.Exists(lab.A, peer), $"{peer} gone already: {string.Join(' ', Net.LinkNames(lab.A))}");

        // The same binding again, same name in the same namespace: the left pair is removed first.
        var again = Shared.Bind(lab, "kernel", "v1", "bridge", c, Ip(49, 11));
        Assert.False(Net.Exists(lab.A, peer) && peer != again.Peer, $"{peer} still in A: {string.Join(' ', Net.LinkNames(lab.A))}");
        Net.AssertPing(lab.B, lab.B4, Ip(49, 11), count: 2);
        again.Stop();
        Assert.DoesNotContain(Net.LinkNames(lab.A), n => n.StartsWith("vnpeer", StringComparison.Ordinal));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Tap_TwoBridgeBindingsNextToTheHostStack_EachReachesTheWireWithItsOwnMac(string datapath)
    {
        Root.Require();
        const int X = 47;
        using var lab = Lab.Create($"sht{datapath[0]}", X, output);
        string host = HostAddress(lab);
        string hostMac = Net.Mac(lab.A, Lab.Real);
        var before = Net.LinkNames(lab.A);
        // Three devices with addresses in one subnet of A: each answers ARP only for its own address, so that B
        // learns every address at its own device's MAC.
        Shared.Sysctl("net.ipv4.conf.all.arp_ignore=1", lab.A);
        Shared.Sysctl("net.ipv4.conf.all.arp_announce=2", lab.A);
        var t1 = Shared.Bind(lab, datapath, "t1", "bridge", null, Ip(X, 11));
        var t2 = Shared.Bind(lab, datapath, "t2", "bridge", null, Ip(X, 12));

        // And each address answers through its own device (source routing); the main table would send every
        // answer out through va, the first of three routes to the subnet.
        foreach (var (t, table) in new[] { (t1, "111"), (t2, "112") })
        {
            Net.Ip(lab.A, "route", "add", $"10.200.{X}.0/24", "dev", t.Name, "src", t.Address!, "table", table);
            Net.Ip(lab.A, "rule", "add", "from", t.Address!, "lookup", table);
        }
        Assert.True(t1.Mac != t2.Mac && t1.Mac != hostMac && t2.Mac != hostMac, $"MACs t1 {t1.Mac}, t2 {t2.Mac}, va {hostMac}");

        using (var wire = PacketSocket.Open(lab.B, Lab.Peer))
        {
            Net.AssertPing(lab.B, lab.B4, t1.Address!, count: 3);
            Net.AssertPing(lab.B, lab.B4, t2.Address!, count: 3);
            Net.AssertPing(lab.B, lab.B4, host, count: 3);
            Net.AssertPing(lab.A, "t1", lab.B4, count: 3);
            Net.AssertPing(lab.A, "t2", lab.B4, count: 3);
            var onWire = Shared.Icmp(Shared.Drain(wire));
            output.WriteLine($"ICMP on the wire: {string.Join("; ", onWire)}");
            foreach (var (address, mac, name) in new[] { (t1.Address!, t1.Mac, "t1"), (t2.Address!, t2.Mac, "t2"), (host, hostMac, Lab.Real) })
            {
                var from = onWire.Where(f => f.Src == address).ToList();
                Assert.True(from.Count >= 3, $"{name}: fewer than 3 ICMP messages from {address} on the wire: {string.Join("; ", onWire)}");
                var wrong = from.Where(f => f.SrcMac != mac).ToList();
                Assert.True(wrong.Count == 0, $"{name}: ICMP from {address} left with another MAC than {mac}: {string.Join("; ", wrong)}");
            }
        }

        string neigh = Net.Ip(lab.B, "neigh", "show", "dev", Lab.Peer);
        Assert.Contains($"{t1.Address} lladdr {t1.Mac}", neigh, StringComparison.Ordinal);
        Assert.Contains($"{t2.Address} lladdr {t2.Mac}", neigh, StringComparison.Ordinal);
        Assert.Contains($"{host} lladdr {hostMac}", neigh, StringComparison.Ordinal);

        t1.Stop();
        Net.AssertPing(lab.B, lab.B4, t2.Address!, count: 2);
        Net.AssertPing(lab.B, lab.B4, host, count: 2);
        t2.Stop();
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
        Net.AssertPing(lab.B, lab.B4, host, count: 2);
    }
}
