// Helpers for the tests of the shared modes (attach --mode bridge|private|vepa, --vlan): one binding attached to
// va with its name, namespace, MAC and address; a clean stop; static neighbours (so that a ping that fails failed
// for want of forwarding, not of ARP); ICMP frames decoded from a capture; frames with a marker, tagged or not;
// the replies to a broadcast or multicast ping, counted per source and sequence number.
using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Integration;

/// <summary>A running binding: <see cref="Ns"/> holds its virtual device <see cref="Name"/> (A for a TAP binding).</summary>
internal sealed partial record Binding(VirtnetProcess Process, TestNetns Ns, string Name, string Mac, string? Address)
{
    public string ReadyLine => Process.ReadyLine!;

    public int Pid => Process.Pid;

    public byte[] MacBytes => Convert.FromHexString(Mac.Replace(":", "", StringComparison.Ordinal));

    /// <summary>vnpeer&lt;ifindex&gt;s&lt;slot&gt; from the ready line (kernel datapath with --netns), or null.</summary>
    public string? Peer => PeerPattern().Match(ReadyLine) is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>SIGTERM: exit 0 with the "stopped" line.</summary>
    public void Stop()
    {
        Process.Signal(TestLibc.SIGTERM);
        Assert.True(Process.WaitForExit(TimeSpan.FromSeconds(10)), $"{Name}: still running 10 s after SIGTERM: {Process.Describe()}");
        Assert.True(Process.ExitCode == 0, $"{Name}: exit code {Process.ExitCode} after SIGTERM: {Process.Describe()}");
        Assert.Contains($"{Name} stopped: ingress ", Process.Stdout, StringComparison.Ordinal);
    }

    [GeneratedRegex(@", peer (vnpeer\d+s\d+)")]
    private static partial Regex PeerPattern();
}

/// <summary>One ICMPv4 message seen in a capture (<see cref="Vid"/>: its 802.1Q VLAN, if tagged).</summary>
internal sealed record IcmpFrame(string SrcMac, string DstMac, int? Vid, string Src, string Dst, byte Type)
{
    public const byte EchoReply = 0;
    public const byte EchoRequest = 8;

    public override string ToString() => $"{Src} > {Dst} {(Type == EchoRequest ? "echo request" : Type == EchoReply ? "echo reply" : $"type {Type}")} ({SrcMac} > {DstMac}{(Vid is { } v ? $", vlan {v}" : "")})";
}

internal static partial class Shared
{
    /// <summary>IEEE 802 local experimental EtherType: nothing in any namespace handles it.</summary>
    public const ushort ExperimentalEtherType = 0x88B5;

    /// <summary>
    /// `virtnet attach va --datapath D --name NAME --mode MODE [--netns NS] EXTRA...`, ready; then lo up and
    /// ADDRESS/24 on the virtual device. <paramref name="ns"/> null: a TAP next to va, in A.
    /// </summary>
    public static Binding Bind(Lab lab, string datapath, string name, string mode, TestNetns? ns, string? address, params string[] extra)
    {
        string[] args = ns is null ? ["--name", name, "--mode", mode, .. extra] : ["--name", name, "--mode", mode, "--netns", ns.Name, .. extra];
        var p = lab.Attach(datapath, args);
        var where = ns ?? lab.A;
        Net.Ip(where, "link", "set", "lo", "up");
        if (address is not null)
        {
            Net.Ip(where, "addr", "add", $"{address}/24", "dev", name);
        }

        string mac = Net.Mac(where, name);
        string line = p.ReadyLine!;
        Assert.StartsWith($"{name} ready: {Lab.Real} <-> {name}", line, StringComparison.Ordinal);
        Assert.Contains($", {datapath} datapath, ", line, StringComparison.Ordinal);
        Assert.Contains($", mac {mac}", line, StringComparison.Ordinal);
        int vlanAt = Array.IndexOf(extra, "--vlan");
        string modeText = vlanAt >= 0 ? $", mode {mode} vlan {extra[vlanAt + 1]}" : $", mode {mode}";
        Assert.True(line.EndsWith(modeText, StringComparison.Ordinal), $"the ready line does not end with '{modeText}': {line}");
        if (ns is not null)
        {
            Assert.Contains($", in /run/netns/{ns.Name}, ", line, StringComparison.Ordinal);
            Assert.False(Net.Exists(lab.A, name), $"{name} is in A: {string.Join(' ', Net.LinkNames(lab.A))}");
            if (datapath == "kernel")
            {
                Assert.Matches($@", peer vnpeer{Net.Ifindex(lab.A, Lab.Real)}s\d+, ", line);
            }
        }

        return new Binding(p, where, name, mac, address);
    }

    /// <summary>A permanent neighbour entry: IP is at MAC, on DEV.</summary>
    public static void Neigh(TestNetns ns, string device, string ip, string mac)
        => Net.Ip(ns, "neigh", "replace", ip, "lladdr", mac, "dev", device, "nud", "permanent");

    /// <summary>Sets a sysctl in each namespace.</summary>
    public static void Sysctl(string setting, params TestNetns[] namespaces)
    {
        foreach (var ns in namespaces)
        {
            ns.Exec("sysctl", "-qw", setting);
        }
    }

    /// <summary>Every frame the socket has queued or receives within <paramref name="ms"/> ms.</summary>
    public static List<PacketSocket.Captured> Drain(PacketSocket socket, int ms = 300)
        => socket.Capture(_ => false, TimeSpan.FromMilliseconds(ms), TimeSpan.Zero);

    /// <summary>The ICMPv4 messages among the frames (tagged or not).</summary>
    public static List<IcmpFrame> Icmp(IEnumerable<PacketSocket.Captured> frames)
    {
        var result = new List<IcmpFrame>();
        foreach (var f in frames)
        {
            var d = f.Data;
            if (d.Length < 14)
            {
                continue;
            }

            int? vid = f.AuxVlanValid ? f.AuxVlanTci & 0x0FFF : null;
            int l3 = 14;
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(12));
            if (type == PacketSocket.EtherTypeVlan && d.Length >= 18)
            {
                vid = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(14)) & 0x0FFF;
                type = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(16));
                l3 = 18;
            }

            if (type != 0x0800 || d.Length < l3 + 20 || d[l3 + 9] != 1)
            {
                continue;
            }

            int ihl = (d[l3] & 0x0F) * 4;
            if (d.Length < l3 + ihl + 1)
            {
                continue;
            }

            result.Add(new IcmpFrame(FormatMac(d.AsSpan(6, 6)), FormatMac(d.AsSpan(0, 6)), vid,
                new IPAddress(d.AsSpan(l3 + 12, 4)).ToString(), new IPAddress(d.AsSpan(l3 + 16, 4)).ToString(), d[l3 + ihl]));
        }

        return result;
    }

    public static string FormatMac(ReadOnlySpan<byte> mac) => string.Join(':', mac.ToArray().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    public static byte[] ParseMac(string mac) => Convert.FromHexString(mac.Replace(":", "", StringComparison.Ordinal));

    // ---- frames with a marker ----

    /// <summary>A unique marker for one probe frame.</summary>
    public static string NewMarker(string what) => $"vn-shared-{what}-{Guid.NewGuid():N}";

    /// <summary>An Ethernet frame DST SRC [802.1Q VID] 0x88B5 with the marker as payload.</summary>
    public static byte[] MarkedFrame(byte[] dst, byte[] src, int? vid, string marker)
    {
        byte[] payload = Encoding.ASCII.GetBytes(marker.PadRight(64, '.'));
        int header = vid is null ? 14 : 18;
        var frame = new byte[header + payload.Length];
        dst.CopyTo(frame, 0);
        src.CopyTo(frame, 6);
        if (vid is { } v)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), PacketSocket.EtherTypeVlan);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), (ushort)v);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), ExperimentalEtherType);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), ExperimentalEtherType);
        }

        payload.CopyTo(frame, header);
        return frame;
    }

    /// <summary>The captured frames that carry the marker.</summary>
    public static List<PacketSocket.Captured> WithMarker(IEnumerable<PacketSocket.Captured> frames, string marker)
    {
        byte[] needle = Encoding.ASCII.GetBytes(marker);
        return frames.Where(f => f.Data.AsSpan().IndexOf(needle) >= 0).ToList();
    }

    /// <summary>The frame's VLAN (out of band or inline; null: untagged) and the EtherType after the tag.</summary>
    public static (int? Vid, ushort EtherType, bool DoubleTagged) Tag(PacketSocket.Captured c)
    {
        ushort outer = BinaryPrimitives.ReadUInt16BigEndian(c.Data.AsSpan(12));
        if (c.AuxVlanValid)
        {
            return (c.AuxVlanTci & 0x0FFF, outer, outer == PacketSocket.EtherTypeVlan);
        }

        if (outer == PacketSocket.EtherTypeVlan)
        {
            ushort inner = BinaryPrimitives.ReadUInt16BigEndian(c.Data.AsSpan(16));
            return (BinaryPrimitives.ReadUInt16BigEndian(c.Data.AsSpan(14)) & 0x0FFF, inner, inner == PacketSocket.EtherTypeVlan);
        }

        return (null, outer, false);
    }

    public static string Describe(PacketSocket.Captured c)
        => $"{c.Data.Length} bytes, aux vlan {(c.AuxVlanValid ? $"tci 0x{c.AuxVlanTci:x4}" : "none")}, head {Convert.ToHexString(c.Data.AsSpan(0, Math.Min(20, c.Data.Length)))}";

    // ---- broadcast and multicast pings ----

    /// <summary>`ping [-6] -n [-b] -c COUNT -i 0.3 -W 1 [-I FROM] TO` in NS (for a broadcast or multicast TO).</summary>
    public static RunResult GroupPing(TestNetns ns, string? from, string to, int count)
    {
        bool v6 = to.Contains(':', StringComparison.Ordinal);
        var args = new List<string> { "ping", v6 ? "-6" : "-4", "-n", "-c", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", "0.3", "-W", "1" };
        if (!v6)
        {
            args.Add("-b");
        }

        if (from is not null)
        {
            args.AddRange(["-I", from]);
        }

        args.Add(to);
        return ns.Try(TimeSpan.FromSeconds(30), [.. args]);
    }

    /// <summary>(source, icmp_seq) of every reply line ping printed, duplicates included.</summary>
    public static List<(string From, int Seq)> Replies(string pingOutput)
    {
        var list = new List<(string, int)>();
        foreach (Match m in ReplyLine().Matches(pingOutput))
        {
            list.Add((m.Groups["from"].Value, int.Parse(m.Groups["seq"].Value, System.Globalization.CultureInfo.InvariantCulture)));
        }

        return list;
    }

    /// <summary>
    /// For each echo but the last (ping stops as soon as the last one is answered, by the sender itself): exactly
    /// one reply from each of <paramref name="expected"/> and from nobody else but <paramref name="self"/>.
    /// </summary>
    public static void AssertEachRepliesOnce(RunResult r, string what, string self, IReadOnlyCollection<string> expected, int count)
    {
        var replies = Replies(r.Stdout);
        for (int seq = 1; seq < count; seq++)
        {
            var bySource = replies.Where(x => x.Seq == seq && x.From != self).GroupBy(x => x.From).ToDictionary(g => g.Key, g => g.Count());
            var missing = expected.Where(e => !bySource.ContainsKey(e)).ToList();
            var extra = bySource.Keys.Where(k => !expected.Contains(k)).ToList();
            var doubled = bySource.Where(kv => kv.Value > 1).Select(kv => $"{kv.Key} x{kv.Value}").ToList();
            Assert.True(missing.Count == 0 && extra.Count == 0 && doubled.Count == 0,
                $"{what}, echo {seq}: expected one reply from each of {string.Join(", ", expected)}; missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", extra)}], duplicated [{string.Join(", ", doubled)}]\n{r.All}");
        }
    }

    /// <summary>The IPv6 link-local address of DEV, once it is no longer tentative.</summary>
    public static string LinkLocal(TestNetns ns, string device)
    {
        string? address = null;
        string last = "";
        Net.WaitUntil(() =>
        {
            last = Net.Ip(ns, "-6", "-j", "addr", "show", "dev", device, "scope", "link");
            using var doc = JsonDocument.Parse(last);
            foreach (var link in doc.RootElement.EnumerateArray())
            {
                if (!link.TryGetProperty("addr_info", out var info))
                {
                    continue;
                }

                foreach (var a in info.EnumerateArray())
                {
                    if (a.TryGetProperty("local", out var local) && local.GetString() is { } text && text.StartsWith("fe80:", StringComparison.Ordinal)
                        && !a.TryGetProperty("tentative", out _) && !a.TryGetProperty("dadfailed", out _))
                    {
                        address = text;
                        return true;
                    }
                }
            }

            return false;
        }, TimeSpan.FromSeconds(5), () => $"no usable link-local address on {device} in {ns.Name}: {last}");
        return address!;
    }

    /// <summary>The count of "N packets transmitted, M received" (M, or -1 when absent).</summary>
    public static (int Transmitted, int Received) PingTotals(string pingOutput)
    {
        var m = Totals().Match(pingOutput);
        return m.Success ? (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)) : (-1, -1);
    }

    [GeneratedRegex(@"bytes from (?<from>[^\s%]+?)(%\S+)?: icmp_seq=(?<seq>\d+)")]
    private static partial Regex ReplyLine();

    [GeneratedRegex(@"(\d+) packets transmitted, (\d+) received")]
    private static partial Regex Totals();
}
