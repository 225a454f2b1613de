// --filter and --mirror against tcpdump itself: a mix of frames (IPv4/IPv6, TCP/UDP/ICMP, ARP, tagged and
// untagged, several sizes, addresses and ports) is sent to the real device; what the binding delivered must be,
// frame for frame, what tcpdump's own program for EXPR on va (tcpdump -ddd -i va EXPR) matches among the frames va
// received; everything else must stay with the real device.
using System.Buffers.Binary;
using System.Net;
using System.Text.RegularExpressions;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class FilterTests(ITestOutputHelper output)
{
    private const int X = 41;

    public static readonly TheoryData<string, string> Cases = new()
    {
        { "kernel", "udp dst port 4789" },
        { "kernel", "host 10.200.41.7 or host fd00:41::7" },
        { "kernel", "vlan 100 and udp" },
        { "kernel", "(tcp portrange 1000-2000 or icmp6) and not vlan" },
        { "kernel", "not vlan and ip" },                                  // libpcap: matches nothing (offsets move)
        { "kernel", "arp or icmp or greater 700" },
        { "kernel", "ip6 and not tcp and less 200" },
        { "user", "udp dst port 4789" },
        { "user", "vlan and (ip6 or arp)" },
        { "user", "tcp or src net 10.200.41.0/28" },
    };

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Filter_DeliversExactlyWhatTcpdumpMatches(string datapath, string expression)
    {
        Root.Require();
        using var lab = Lab.Create($"flt{datapath[0]}", X, output);
        lab.Attach(datapath, "--filter", expression);
        var (sent, matched, delivered) = SendAndCompare(lab, expression, Lab.Virtual);
        AssertSameFrames(expression, sent, matched, delivered);
        Assert.True(matched.Count < sent.Count, "the mix must have frames the expression does not match");
        Assert.True(matched.Count > 0 || expression == "not vlan and ip", "the mix must have frames the expression matches");
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Filter_LeavesTheRestToTheRealDevicesStack(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"flr{datapath[0]}", X, output);
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Real);
        lab.Attach(datapath, "--filter", "udp dst port 4789");
        // ARP and ICMP are not the binding's: the real device still answers its own address.
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 3);
    }

    /// <summary>A mirror whose device lives in another namespace (a monitoring container): the copies cross its veth.</summary>
    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Mirror_InAnotherNamespace_GetsTheCopiesThere(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fmn{datapath[0]}", X, output);
        using var c = new TestNetns($"fmnc{datapath[0]}");
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Real);
        var mirror = lab.Attach(datapath, "--name", "mon0", "--mirror", "--netns", c.Name);
        Assert.Contains($", in /run/netns/{c.Name}, ", mirror.ReadyLine, StringComparison.Ordinal);
        Assert.False(Net.Exists(lab.A, "mon0"));
        using var capture = PacketSocket.Open(c, "mon0");
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 3);
        var frames = capture.Capture(_ => false, TimeSpan.FromSeconds(1), TimeSpan.Zero).Where(f => f.PacketType != 4).ToList();
        Assert.Equal(3, frames.Count(f => IsEcho(f, 8)));
        Assert.Equal(3, frames.Count(f => IsEcho(f, 0)));
        mirror.Signal(TestLibc.SIGTERM);
        Assert.True(mirror.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, mirror.ExitCode);
    }

    /// <summary>
    /// Any number of mirrors beside one binding that takes every frame: each gets its copies (from before the binding
    /// takes them), and what the binding sends out through the real device is copied too.
    /// </summary>
    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Mirrors_BesideATakingBinding_CopyWhatItReceivesAndSends(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fmt{datapath[0]}", X, output);
        lab.Attach(datapath, "--mac", "random");
        lab.AddressVirtual();
        var both = lab.Attach(datapath == "kernel" ? "user" : "kernel", "--name", "m1", "--mirror"); // the other datapath's mirror
        var ingress = lab.Attach("kernel", "--name", "m2", "--mirror", "ingress");
        using var c1 = PacketSocket.Open(lab.A, "m1");
        using var c2 = PacketSocket.Open(lab.A, "m2");
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 3); // answered by virtnet0, the taking binding
        var f1 = c1.Capture(_ => false, TimeSpan.FromSeconds(1), TimeSpan.Zero);
        var f2 = c2.Capture(_ => false, TimeSpan.FromSeconds(0.2), TimeSpan.Zero);
        output.WriteLine($"m1: {f1.Count(c => IsEcho(c, 8))} requests, {f1.Count(c => IsEcho(c, 0))} replies; m2: {f2.Count(c => IsEcho(c, 8))} requests, {f2.Count(c => IsEcho(c, 0))} replies");
        Assert.Equal(3, f1.Count(c => IsEcho(c, 8)));
        Assert.Equal(3, f1.Count(c => IsEcho(c, 0))); // sent by virtnet0 through va
        Assert.Equal(3, f2.Count(c => IsEcho(c, 8)));
        Assert.Equal(0, f2.Count(c => IsEcho(c, 0)));
        foreach (var m in new[] { both, ingress })
        {
            m.Signal(TestLibc.SIGTERM);
            Assert.True(m.WaitForExit(TimeSpan.FromSeconds(10)));
            Assert.Equal(0, m.ExitCode);
        }

        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 2); // the taking binding never noticed
    }

    /// <summary>
    /// With a filter (or as a mirror) the real device may be a bridge port: the bridge keeps every frame the binding
    /// does not take (here the ping to the bridge's own address), the binding gets what it matches.
    /// </summary>
    [SkippableTheory]
    [InlineData("kernel", "--filter")]
    [InlineData("user", "--filter")]
    [InlineData("kernel", "--mirror")]
    public void BridgePort_FilteredOrMirrored_TheBridgeKeepsWorking(string datapath, string how)
    {
        Root.Require();
        using var lab = Lab.Create($"fbr{datapath[0]}{how[2]}", X, output);
        Net.Ip(lab.A, "link", "add", "br0", "type", "bridge");
        Net.Ip(lab.A, "link", "set", Lab.Real, "master", "br0");
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", "br0");
        Net.Ip(lab.A, "link", "set", "br0", "up");
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 2);

        // Without --filter or --mirror the port is refused, in one sentence that says what to do.
        var refused = lab.StartAttach(Lab.Real, datapath);
        Assert.True(refused.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains("is a port of bridge br0", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("--filter", refused.Stderr, StringComparison.Ordinal);

        string[] args = how == "--filter" ? ["--filter", "udp dst port 4789"] : ["--mirror", "--filter", "udp dst port 4789"];
        lab.Attach(datapath, args);
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 3);
        using var capture = PacketSocket.Open(lab.A, Lab.Virtual);
        using (var sender = PacketSocket.Open(lab.B, Lab.Peer))
        {
            var vxlan = UdpFrame(Net.MacBytes(lab.A, "br0"), Net.MacBytes(lab.B, Lab.Peer), lab.B4, lab.A4, 4789);
            for (int i = 0; i < 5; i++)
            {
                sender.Send(vxlan);
            }
        }

        var frames = capture.Capture(_ => false, TimeSpan.FromSeconds(1), TimeSpan.Zero).Where(f => f.PacketType != 4).ToList();
        Assert.Equal(5, frames.Count(f => f.Data.Length > 37 && f.Data[23] == 17 && BinaryPrimitives.ReadUInt16BigEndian(f.Data.AsSpan(36)) == 4789));
        Assert.Equal(0, frames.Count(f => f.Data.Length > 23 && f.Data[23] == 1)); // the pings stayed with the bridge
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 2);
    }

    /// <summary>
    /// A bridge-mode binding with a filter: the frames for its MAC (and the copies of broadcasts) that the filter
    /// does not match are dropped where they arrive, and counted; ARP and UDP get through, ICMP does not.
    /// </summary>
    [SkippableTheory]
    [InlineData("kernel", false)]
    [InlineData("kernel", true)]
    [InlineData("user", false)]
    [InlineData("user", true)]
    public void Filter_OnASharedBinding_DeliversOnlyWhatMatches(string datapath, bool netns)
    {
        Root.Require();
        using var lab = Lab.Create($"fsh{datapath[0]}{(netns ? "n" : "")}", X, output);
        using var c = netns ? new TestNetns($"fshc{datapath[0]}") : null;
        var where = c ?? lab.A;
        // Only the device that holds an address answers ARP for it (A's weak host model would answer on va too).
        Shared.Sysctl("net.ipv4.conf.all.arp_ignore=1", where);
        string[] args = ["--name", "b1", "--mode", "bridge", "--filter", "arp or udp", .. (c is null ? Array.Empty<string>() : ["--netns", c.Name])];
        var binding = lab.Attach(datapath, args);
        Assert.EndsWith(", mode bridge, filter 'arp or udp'", binding.ReadyLine, StringComparison.Ordinal);
        Net.Ip(where, "link", "set", "lo", "up");
        Net.Ip(where, "addr", "add", "10.200.41.11/24", "dev", "b1");
        string mac = Net.Mac(where, "b1");

        // What reached the binding's stack, from its counters (a capture on b1 would see frames before its filter).
        long Snmp(string proto, string field)
        {
            var lines = where.Exec("cat", "/proc/net/snmp").Split('\n').Where(l => l.StartsWith($"{proto}: ", StringComparison.Ordinal)).ToArray();
            int at = Array.IndexOf(lines[0].Split(' '), field);
            return long.Parse(lines[1].Split(' ')[at], System.Globalization.CultureInfo.InvariantCulture);
        }

        long echosBefore = Snmp("Icmp", "InEchos");
        long noPortsBefore = Snmp("Udp", "NoPorts");
        var ping = Net.Ping(lab.B, Lab.Peer, "10.200.41.11", count: 3);
        Assert.NotEqual(0, ping.ExitCode); // ICMP is not the binding's
        string neigh = Net.Ip(lab.B, "neigh", "show", "10.200.41.11");
        Assert.Contains(mac, neigh, StringComparison.OrdinalIgnoreCase); // ARP is
        using (var sender = PacketSocket.Open(lab.B, Lab.Peer))
        {
            var udp = UdpFrame(Shared.ParseMac(mac), Net.MacBytes(lab.B, Lab.Peer), "10.200.41.2", "10.200.41.11", 9999);
            for (int i = 0; i < 5; i++)
            {
                sender.Send(udp);
            }
        }

        long noPorts = 0;
        Net.WaitUntil(() => (noPorts = Snmp("Udp", "NoPorts") - noPortsBefore) >= 5, TimeSpan.FromSeconds(2), () => $"{noPorts} of 5 datagrams reached b1's stack");
        Assert.Equal(0, Snmp("Icmp", "InEchos") - echosBefore);
        binding.Signal(TestLibc.SIGTERM);
        Assert.True(binding.WaitForExit(TimeSpan.FromSeconds(10)));
        var refused = Regex.Match(binding.Stdout, @"dropped: ingress ([^;]*, )?(\d+) not matched by the filter");
        Assert.True(refused.Success && int.Parse(refused.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) >= 3, binding.Stdout); // the echo requests at least
    }

    private static byte[] UdpFrame(byte[] dst, byte[] src, string from, string to, int port)
    {
        var f = new byte[14 + 20 + 8 + 18];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        f[12] = 0x08;
        f[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 20 + 8 + 18);
        f[22] = 64;
        f[23] = 17;
        IPAddress.Parse(from).GetAddressBytes().CopyTo(f, 26);
        IPAddress.Parse(to).GetAddressBytes().CopyTo(f, 30);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), (ushort)port);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), 8 + 18);
        uint sum = 0;
        for (int i = 14; i < 34; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(i));
        }

        sum = (sum & 0xffff) + (sum >> 16);
        sum += sum >> 16;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(24), (ushort)~sum); // the stack drops a bad header checksum
        return f;
    }

    [SkippableTheory]
    [InlineData("kernel", "both", "")]
    [InlineData("kernel", "ingress", "udp")]
    [InlineData("user", "both", "")]
    [InlineData("user", "ingress", "udp")]
    public void Mirror_GetsCopies_AndTheRealDeviceKeepsEverything(string datapath, string direction, string expression)
    {
        Root.Require();
        using var lab = Lab.Create($"fmi{datapath[0]}{direction[0]}", X, output);
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Real);
        var args = new List<string> { "--name", "mir0", "--mirror", direction };
        if (expression.Length > 0)
        {
            args.AddRange(["--filter", expression]);
        }

        var mirror = lab.Attach(datapath, [.. args]);
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 2);
        var (sent, matched, delivered) = SendAndCompare(lab, expression.Length == 0 ? "" : expression, "mir0");
        AssertSameFrames(expression, sent, matched, delivered);

        // What the real device sends is copied too (with "both"): a ping's replies.
        using var capture = PacketSocket.Open(lab.A, "mir0");
        Net.AssertPing(lab.B, Lab.Peer, lab.A4, count: 3);
        var frames = capture.Capture(_ => false, TimeSpan.FromSeconds(1), TimeSpan.Zero);
        int requests = frames.Count(c => IsEcho(c, 8));
        int replies = frames.Count(c => IsEcho(c, 0));
        output.WriteLine($"mirror saw {requests} echo requests and {replies} replies");
        // (With the "udp" filter, no ICMP at all.)
        Assert.Equal(expression.Length == 0 ? 3 : 0, requests);
        Assert.Equal(expression.Length == 0 && direction == "both" ? 3 : 0, replies);

        // Receive-only: what the mirror's device sends is dropped and counted, and never reaches the wire.
        Net.Ip(lab.A, "addr", "add", "10.200.41.9/24", "dev", "mir0");
        _ = Net.Ping(lab.A, "mir0", lab.B4, count: 2);
        mirror.Signal(TestLibc.SIGINT);
        Assert.True(mirror.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.True(Regex.IsMatch(mirror.Stdout, @"egress 0 frames 0 bytes [1-9]\d* dropped; dropped: (ingress [^;]*; )?egress [1-9]\d* mirror is receive-only"), mirror.Stdout);
    }

    /// <summary>
    /// Sends the mix from vb to va while tcpdump (with <paramref name="expression"/>) listens on va and a packet
    /// socket on <paramref name="target"/>; returns the frames sent, those tcpdump matched, and those delivered.
    /// </summary>
    /// <remarks>
    /// "What tcpdump matched" is tcpdump's own program for <paramref name="expression"/> on va (`tcpdump -ddd -i va`,
    /// compiled as tcpdump compiles it there, VLAN metadata included), run over every frame va received, with the
    /// frame's VLAN metadata, by the classic BPF interpreter the filter tests check against libpcap. A running tcpdump
    /// writing a pcap file was the first reference; on a loaded machine it was stopped before it had written every
    /// frame its kernel filter passed (its own "captured" below "received by filter"), which failed runs at random.
    /// </remarks>
    private static (List<byte[]> Sent, List<byte[]> Matched, List<byte[]> Delivered) SendAndCompare(Lab lab, string expression, string target)
    {
        var program = TcpdumpProgram(lab.A, Lab.Real, expression);
        var sent = Mix(Net.MacBytes(lab.A, Lab.Real), Net.MacBytes(lab.B, Lab.Peer));
        using var onReal = PacketSocket.Open(lab.A, Lab.Real);
        using var capture = PacketSocket.Open(lab.A, target);
        using (var sender = PacketSocket.Open(lab.B, Lab.Peer))
        {
            foreach (var frame in sent)
            {
                sender.Send(frame);
            }
        }

        var delivered = capture.Capture(_ => false, TimeSpan.FromSeconds(1.5), TimeSpan.Zero)
            .Where(c => c.PacketType != 4) // PACKET_OUTGOING: what the device itself sent
            .Select(Restore)
            .ToList();
        var matched = onReal.Capture(_ => false, TimeSpan.FromSeconds(0.3), TimeSpan.Zero)
            .Where(c => c.PacketType != 4 && Filters.ClassicBpf.Run(program, c.Data, c.AuxVlanValid, c.AuxVlanTci) != 0)
            .Select(Restore)
            .ToList();
        var ours = new HashSet<string>(sent.Select(Convert.ToHexString));
        return (sent, matched.Where(f => ours.Contains(Convert.ToHexString(f))).ToList(), delivered.Where(f => ours.Contains(Convert.ToHexString(f))).ToList());
    }

    /// <summary>tcpdump's compiled filter for <paramref name="expression"/> on the device (`tcpdump -ddd`); "" takes every frame.</summary>
    private static Filters.ClassicInsn[] TcpdumpProgram(TestNetns ns, string device, string expression)
    {
        if (expression.Length == 0)
        {
            return [new Filters.ClassicInsn(0x06, 0, 0, 262144)]; // ret #262144
        }

        string text = ns.Exec("tcpdump", "-ddd", "-i", device, expression);
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        int count = int.Parse(lines[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(count + 1, lines.Length);
        return lines.Skip(1).Select(l => l.Split(' ').Select(v => uint.Parse(v, System.Globalization.CultureInfo.InvariantCulture)).ToArray())
            .Select(v => new Filters.ClassicInsn((ushort)v[0], (byte)v[1], (byte)v[2], v[3]))
            .ToArray();
    }

    private void AssertSameFrames(string expression, List<byte[]> sent, List<byte[]> matched, List<byte[]> delivered)
    {
        output.WriteLine($"'{expression}': sent {sent.Count}, tcpdump matched {matched.Count}, the binding delivered {delivered.Count}");
        var want = matched.Select(Convert.ToHexString).Order().ToList();
        var got = delivered.Select(Convert.ToHexString).Order().ToList();
        var missing = want.Except(got).ToList();
        var extra = got.Except(want).ToList();
        Assert.True(missing.Count == 0 && extra.Count == 0 && want.Count == got.Count,
            $"'{expression}': {missing.Count} matched by tcpdump but not delivered, {extra.Count} delivered but not matched, counts {want.Count} vs {got.Count}; e.g. missing {missing.FirstOrDefault()?[..Math.Min(120, missing.First().Length)]} extra {extra.FirstOrDefault()?[..Math.Min(120, extra.First().Length)]}");
    }

    /// <summary>An untagged ICMPv4 message of <paramref name="type"/> (8 echo request, 0 reply) that the device received.</summary>
    private static bool IsEcho(PacketSocket.Captured c, byte type)
        => c.PacketType != 4 && c.Data.Length > 34 && BinaryPrimitives.ReadUInt16BigEndian(c.Data.AsSpan(12)) == 0x0800 && c.Data[23] == 1 && c.Data[34] == type;

    /// <summary>A frame as sent: a VLAN tag the kernel reported out of band goes back in after the MACs.</summary>
    private static byte[] Restore(PacketSocket.Captured c)
    {
        if (!c.AuxVlanValid)
        {
            return c.Data;
        }

        var frame = new byte[c.Data.Length + 4];
        c.Data.AsSpan(0, 12).CopyTo(frame);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), c.AuxVlanTpid);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), c.AuxVlanTci);
        c.Data.AsSpan(12).CopyTo(frame.AsSpan(16));
        return frame;
    }

    /// <summary>The mix: every combination of a few link, network and transport choices, sizes varying.</summary>
    private static List<byte[]> Mix(byte[] realMac, byte[] senderMac)
    {
        var random = new Random(41);
        string[] v4 = ["10.200.41.2", "10.200.41.7", "10.200.41.99", "192.168.5.5"];
        string[] v6 = ["fd00:41::2", "fd00:41::7", "fd00:99::1"];
        int[] ports = [53, 80, 1500, 4789, 5000];
        int[] vlans = [0, 0, 100, 200];
        byte[][] dsts = [realMac, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]];
        var frames = new List<byte[]>();
        int n = 0;
        foreach (int vlan in vlans)
        {
            foreach (var kind in new[] { "arp", "icmp", "tcp", "udp", "icmp6", "tcp6", "udp6", "other" })
            {
                for (int k = 0; k < 3; k++)
                {
                    n++;
                    var payload = new List<byte>();
                    ushort type;
                    string src4 = v4[random.Next(v4.Length)], dst4 = v4[random.Next(v4.Length)];
                    string src6 = v6[random.Next(v6.Length)], dst6 = v6[random.Next(v6.Length)];
                    int sport = ports[random.Next(ports.Length)], dport = ports[random.Next(ports.Length)];
                    int size = random.Next(0, 900);
                    switch (kind)
                    {
                        case "arp":
                            type = 0x0806;
                            payload.AddRange([0, 1, 8, 0, 6, 4, 0, 1, .. senderMac, .. IPAddress.Parse(src4).GetAddressBytes(), 0, 0, 0, 0, 0, 0, .. IPAddress.Parse(dst4).GetAddressBytes()]);
                            break;
                        case "icmp" or "tcp" or "udp":
                        {
                            type = 0x0800;
                            byte proto = kind switch { "icmp" => 1, "tcp" => 6, _ => 17 };
                            var l4 = Transport(proto, sport, dport, size, n);
                            int total = 20 + l4.Length;
                            payload.AddRange([0x45, 0, (byte)(total >> 8), (byte)total, 0, (byte)n, 0, 0, 64, proto, 0, 0, .. IPAddress.Parse(src4).GetAddressBytes(), .. IPAddress.Parse(dst4).GetAddressBytes(), .. l4]);
                            break;
                        }

                        case "icmp6" or "tcp6" or "udp6":
                        {
                            type = 0x86DD;
                            byte proto = kind switch { "icmp6" => 58, "tcp6" => 6, _ => 17 };
                            var l4 = Transport(proto, sport, dport, size, n);
                            payload.AddRange([0x60, 0, 0, 0, (byte)(l4.Length >> 8), (byte)l4.Length, proto, 64, .. IPAddress.Parse(src6).GetAddressBytes(), .. IPAddress.Parse(dst6).GetAddressBytes(), .. l4]);
                            break;
                        }

                        default:
                            type = 0x88B5;
                            payload.AddRange(Enumerable.Range(0, 46 + size).Select(i => (byte)(i + n)));
                            break;
                    }

                    var frame = new List<byte>();
                    frame.AddRange(dsts[n % dsts.Length]);
                    frame.AddRange(senderMac);
                    if (vlan != 0)
                    {
                        frame.AddRange([0x81, 0x00, (byte)(vlan >> 8), (byte)vlan]);
                    }

                    frame.AddRange([(byte)(type >> 8), (byte)type]);
                    frame.AddRange(payload);
                    while (frame.Count < 60)
                    {
                        frame.Add(0);
                    }

                    frames.Add([.. frame]);
                }
            }
        }

        return frames;
    }

    private static byte[] Transport(byte proto, int sport, int dport, int size, int n)
    {
        int header = proto == 6 ? 20 : 8;
        var l4 = new byte[header + size];
        BinaryPrimitives.WriteUInt16BigEndian(l4, (ushort)sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), (ushort)dport);
        if (proto == 6)
        {
            l4[12] = 0x50;
        }
        else if (proto is 1 or 58)
        {
            l4[0] = 0x80; // an echo-ish type; never answered (bad checksum)
        }

        for (int i = header; i < l4.Length; i++)
        {
            l4[i] = (byte)(i * n);
        }

        return l4;
    }
}
