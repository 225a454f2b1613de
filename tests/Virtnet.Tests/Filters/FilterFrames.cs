// Random Ethernet frames for the filter tests, from a seed: untagged, 802.1Q and QinQ; ARP, RARP, IPv4 (with options,
// with fragments), IPv6 (with a fragment header), TCP, UDP, ICMP, ICMPv6, SCTP and other protocols; 802.3/LLC and
// odd ethertypes; some cut short in the middle of a header. Addresses and ports come from small pools (the same the
// expressions use), so that filters match often, and the bytes where a header "would be" under a wrong ethertype
// or protocol look real, so that a filter that forgets a check matches where it must not.
using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;

namespace Virtnet.Tests.Filters;

/// <summary>A seeded generator of Ethernet frames that make filters interesting.</summary>
internal sealed class FilterFrames(int seed)
{
    /// <summary>The MAC addresses frames and expressions use.</summary>
    public static readonly string[] Macs = ["02:00:00:00:00:01", "02:00:00:00:00:02", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"];

    /// <summary>The IPv4 addresses frames and expressions use.</summary>
    public static readonly string[] Ipv4Addresses = ["10.200.0.1", "10.200.0.2", "10.200.1.7", "192.168.5.5", "224.0.0.1"];

    /// <summary>The IPv6 addresses frames and expressions use.</summary>
    public static readonly string[] Ipv6Addresses = ["fd00::1", "fd00::2", "fd00:1::7", "ff02::1"];

    /// <summary>The TCP/UDP/SCTP ports frames and expressions use.</summary>
    public static readonly ushort[] Ports = [22, 53, 80, 443, 4789, 5000, 65535];

    /// <summary>The VLAN IDs frames and expressions use.</summary>
    public static readonly ushort[] VlanIds = [1, 10, 100, 4094];

    /// <summary>Longest frame made (BPF_PROG_TEST_RUN takes up to about a page).</summary>
    public const int MaxLength = 600;

    private const ushort EtherTypeIpv4 = 0x0800;
    private const ushort EtherTypeArp = 0x0806;
    private const ushort EtherTypeRarp = 0x8035;
    private const ushort EtherTypeIpv6 = 0x86dd;

    private static readonly byte[][] s_macs = [.. Macs.Select(ParseMac)];
    private static readonly byte[][] s_ipv4 = [.. Ipv4Addresses.Select(a => IPAddress.Parse(a).GetAddressBytes())];
    private static readonly byte[][] s_ipv6 = [.. Ipv6Addresses.Select(a => IPAddress.Parse(a).GetAddressBytes())];

    // Not only the VLAN TPIDs 802.1Q/802.1ad name: libpcap's "vlan" also accepts 0x9100 (the old QinQ TPID).
    private static readonly ushort[] s_oddEtherTypes = [0x88cc, 0x9000, 0x88e5, 0x05dd, 0x0600, 0x9100, 0x8847, 0x0801];

    // IP protocols: TCP, UDP, ICMP, ICMPv6, SCTP, GRE, ESP, and for IPv6 also hop-by-hop (0) and no-next-header (59).
    private static readonly byte[] s_ipv4Protocols = [6, 6, 6, 17, 17, 17, 1, 1, 132, 47, 50, 58, 44];
    private static readonly byte[] s_ipv6Protocols = [6, 6, 6, 17, 17, 17, 58, 58, 132, 47, 50, 1, 0, 59];

    private readonly Random _random = new(seed);

    /// <summary><paramref name="count"/> frames from <paramref name="seed"/>: the same seed, the same frames.</summary>
    public static List<byte[]> Generate(int seed, int count)
    {
        var frames = new FilterFrames(seed);
        return [.. Enumerable.Range(0, count).Select(_ => frames.Next())];
    }

    /// <summary>The next frame: 14 to <see cref="MaxLength"/> bytes.</summary>
    public byte[] Next()
    {
        var f = new List<byte>(MaxLength);
        f.AddRange(Pick(s_macs));
        f.AddRange(Pick(s_macs));

        double tagging = _random.NextDouble();
        if (tagging < 0.30)
        {
            Tag(f, Chance(0.85) ? (ushort)0x8100 : (ushort)0x88a8);
        }
        else if (tagging < 0.50)
        {
            Tag(f, Chance(0.45) ? (ushort)0x88a8 : Chance(0.8) ? (ushort)0x8100 : (ushort)0x9100);
            Tag(f, 0x8100);
        }

        int headersEnd = Payload(f);
        if (Chance(0.4))
        {
            int room = MaxLength - f.Count;
            int data = Chance(0.6) ? _random.Next(0, Math.Min(64, room) + 1) : _random.Next(0, room + 1);
            f.AddRange(Bytes(data));
        }

        if (f.Count < 60 && Chance(0.5))
        {
            f.AddRange(new byte[60 - f.Count]); // the minimum frame's padding
        }

        int shortest = ShortestTestRun(f);
        if (Chance(0.15) && f.Count > shortest)
        {
            // Cut short, mostly within the headers, so that some loads reach past the end.
            int upTo = Math.Min(f.Count, headersEnd + 4);
            int cut = _random.Next(shortest, Math.Max(shortest + 1, upTo));
            f.RemoveRange(cut, f.Count - cut);
        }

        return [.. f];
    }

    /// <summary>
    /// The shortest frame BPF_PROG_TEST_RUN takes with these first 14 bytes: 14, but with the April 2026 change to
    /// bpf_prog_test_run_skb (in stable kernels too, e.g. 6.18.44) an ethertype of IPv4 needs the 20 bytes of an IP
    /// header behind it and one of IPv6 the 40 of an IPv6 header, else EINVAL. Only the ethertype at offset 12
    /// counts (what eth_type_trans reads): a tagged frame may be cut anywhere. So an untagged IP frame cut inside its
    /// fixed IP header can reach a tc program on a real device, but not one in a test run; the frames here avoid it.
    /// </summary>
    public static int ShortestTestRun(IReadOnlyList<byte> frame)
    {
        int etherType = (frame[12] << 8) | frame[13];
        return etherType switch
        {
            EtherTypeIpv4 => 14 + 20,
            EtherTypeIpv6 => 14 + 40,
            _ => 14,
        };
    }

    /// <summary>An 802.1Q-style tag: TPID, then PCP/DEI (random: filters must mask them) and a VID from the pool.</summary>
    private void Tag(List<byte> f, ushort tpid)
    {
        ushort tci = (ushort)((_random.Next(0, 16) << 12) | Pick(VlanIds));
        Put16(f, tpid);
        Put16(f, tci);
    }

    /// <summary>The ethertype (or 802.3 length) and what follows; returns the offset where the headers end.</summary>
    private int Payload(List<byte> f)
    {
        double kind = _random.NextDouble();
        if (kind < 0.40)
        {
            Put16(f, EtherTypeIpv4);
            return Ipv4(f);
        }

        if (kind < 0.70)
        {
            Put16(f, EtherTypeIpv6);
            return Ipv6(f);
        }

        if (kind < 0.80)
        {
            Put16(f, Chance(0.7) ? EtherTypeArp : EtherTypeRarp);
            return Arp(f);
        }

        if (kind < 0.88)
        {
            return Llc(f);
        }

        // An odd ethertype, followed by random bytes or by what would be an IPv4 or IPv6 packet under the right one,
        // or by what looks like the rest of a VLAN tag: pcap's "not vlan and udp" reads the ethertype at 16 and the
        // packet behind it even when the frame has no tag.
        Put16(f, Pick(s_oddEtherTypes));
        double body = _random.NextDouble();
        if (body < 0.3)
        {
            return Ipv4(f);
        }

        if (body < 0.5)
        {
            return Ipv6(f);
        }

        if (body < 0.8)
        {
            f.AddRange(Bytes(2));
            bool v4 = Chance(0.6);
            Put16(f, v4 ? EtherTypeIpv4 : EtherTypeIpv6);
            return v4 ? Ipv4(f) : Ipv6(f);
        }

        f.AddRange(Bytes(_random.Next(0, 80)));
        return f.Count;
    }

    private int Arp(List<byte> f)
    {
        Put16(f, 1);                  // hardware: Ethernet
        Put16(f, EtherTypeIpv4);      // protocol: IPv4
        f.Add(6);
        f.Add(4);
        Put16(f, (ushort)_random.Next(1, 5)); // request, reply, RARP request, RARP reply
        f.AddRange(Pick(s_macs));
        f.AddRange(Pick(s_ipv4));
        f.AddRange(Chance(0.5) ? new byte[6] : Pick(s_macs));
        f.AddRange(Pick(s_ipv4));
        return f.Count;
    }

    /// <summary>802.3 with an LLC header: a length (at most 1500) instead of an ethertype.</summary>
    private int Llc(List<byte> f)
    {
        double kind = _random.NextDouble();
        byte[] body = kind switch
        {
            < 0.3 => [0x42, 0x42, 0x03, .. Bytes(_random.Next(0, 40))],                        // STP
            < 0.6 => [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, .. Bytes(_random.Next(20, 60))], // SNAP, IPv4
            < 0.75 => [0xe0, 0xe0, 0x03, .. Bytes(_random.Next(0, 40))],                      // IPX
            _ => Bytes(_random.Next(0, 60)),
        };
        ushort length = _random.NextDouble() switch
        {
            < 0.6 => (ushort)body.Length,
            < 0.8 => (ushort)1500,
            < 0.9 => (ushort)_random.Next(0, 1501),
            _ => (ushort)_random.Next(0, 0x100), // small, like an ether proto N <= 255 could name
        };
        Put16(f, length);
        f.AddRange(body);
        return f.Count;
    }

    private int Ipv4(List<byte> f)
    {
        int start = f.Count;
        double shape = _random.NextDouble();
        int ihl = shape switch
        {
            < 0.7 => 5,
            < 0.96 => _random.Next(6, 16), // options
            _ => _random.Next(0, 5),       // nonsense: "4 * IHL" then points into the IP header itself
        };
        byte protocol = Pick(s_ipv4Protocols);
        int headerLength = Math.Max(ihl, 5) * 4;
        var header = new byte[headerLength];
        header[0] = (byte)((Chance(0.97) ? 0x40 : 0x60) | ihl);
        header[1] = (byte)_random.Next(0, 256);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), (ushort)_random.Next(0, 0x10000));
        ushort fragment = _random.NextDouble() switch
        {
            < 0.55 => 0,
            < 0.75 => 0x4000,                                            // DF
            < 0.87 => 0x2000,                                            // MF, first fragment
            < 0.95 => (ushort)(0x2000 | _random.Next(1, 0x2000)),        // MF, a later one
            _ => (ushort)_random.Next(1, 0x2000),                        // the last one
        };
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(6), fragment);
        header[8] = 64;
        header[9] = protocol;
        Pick(s_ipv4).CopyTo(header, 12);
        Pick(s_ipv4).CopyTo(header, 16);
        for (int i = 20; i < headerLength; i++)
        {
            header[i] = Chance(0.7) ? (byte)1 : (byte)_random.Next(0, 256); // NOPs, or anything
        }

        f.AddRange(header);
        Transport(f, protocol);
        int total = f.Count - start + (Chance(0.3) ? _random.Next(0, 64) : 0);
        f[start + 2] = (byte)(total >> 8);
        f[start + 3] = (byte)total;
        ushort checksum = Checksum(f, start, headerLength);
        f[start + 10] = (byte)(checksum >> 8);
        f[start + 11] = (byte)checksum;
        return f.Count;
    }

    private int Ipv6(List<byte> f)
    {
        int start = f.Count;
        byte protocol = Pick(s_ipv6Protocols);
        bool fragmentHeader = Chance(0.2);
        f.Add((byte)(Chance(0.97) ? 0x60 : 0x40));
        f.AddRange(Bytes(3)); // traffic class, flow label
        Put16(f, 0);
        f.Add(fragmentHeader ? (byte)44 : protocol);
        f.Add(64);
        f.AddRange(Pick(s_ipv6));
        f.AddRange(Pick(s_ipv6));
        if (fragmentHeader)
        {
            f.Add(protocol);
            f.Add(0);
            int offset = Chance(0.5) ? 0 : _random.Next(1, 0x2000); // first fragment (or atomic), or a later one
            Put16(f, (ushort)((offset << 3) | _random.Next(0, 2)));
            f.AddRange(Bytes(4)); // identification
        }

        Transport(f, protocol);
        int payload = f.Count - start - 40;
        f[start + 4] = (byte)(payload >> 8);
        f[start + 5] = (byte)payload;
        return f.Count;
    }

    /// <summary>The transport header of <paramref name="protocol"/>; for others, bytes that often look like ports.</summary>
    private void Transport(List<byte> f, byte protocol)
    {
        switch (protocol)
        {
            case 6: // TCP
                PortPair(f);
                f.AddRange(Bytes(8));        // sequence, acknowledgement
                f.Add(0x50);                 // data offset 5
                f.Add((byte)_random.Next(0, 64));
                f.AddRange(Bytes(6));        // window, checksum, urgent
                break;
            case 17: // UDP
                PortPair(f);
                Put16(f, (ushort)_random.Next(8, 600));
                f.AddRange(Bytes(2));
                break;
            case 132: // SCTP common header
                PortPair(f);
                f.AddRange(Bytes(8));        // verification tag, checksum
                break;
            case 1:
            case 58: // ICMP, ICMPv6: type, code, checksum, rest
                f.Add((byte)(Chance(0.5) ? (protocol == 1 ? 8 : 128) : _random.Next(0, 256)));
                f.Add(0);
                f.AddRange(Bytes(6));
                break;
            default:
                if (Chance(0.6))
                {
                    PortPair(f);
                }

                f.AddRange(Bytes(_random.Next(0, 40)));
                break;
        }
    }

    private void PortPair(List<byte> f)
    {
        Put16(f, Port());
        Put16(f, Port());
    }

    private ushort Port() => _random.NextDouble() switch
    {
        < 0.9 => Pick(Ports),
        < 0.97 => (ushort)_random.Next(1, 0x10000),
        _ => 0,
    };

    private static ushort Checksum(List<byte> f, int start, int length)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < length; i += 2)
        {
            sum += (uint)((f[start + i] << 8) | f[start + i + 1]);
        }

        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    private bool Chance(double p) => _random.NextDouble() < p;

    private T Pick<T>(T[] pool) => pool[_random.Next(pool.Length)];

    private byte[] Bytes(int count)
    {
        var bytes = new byte[count];
        _random.NextBytes(bytes);
        return bytes;
    }

    private static void Put16(List<byte> f, ushort value)
    {
        f.Add((byte)(value >> 8));
        f.Add((byte)value);
    }

    private static byte[] ParseMac(string mac) => [.. mac.Split(':').Select(b => Convert.ToByte(b, 16))];

    /// <summary>
    /// The frame for a failure message: what it is, as far as its bytes say (tags, ethertype, addresses, protocol,
    /// fragment, ports; "cut" where a header is incomplete), then all its bytes in hex.
    /// </summary>
    public static string Describe(byte[] frame)
    {
        var text = new StringBuilder();
        text.Append(frame.Length).Append(" bytes: ");
        if (frame.Length < 14)
        {
            return text.Append("shorter than an Ethernet header\n").Append(Convert.ToHexString(frame).ToLowerInvariant()).ToString();
        }

        text.Append(Mac(frame, 6)).Append(" > ").Append(Mac(frame, 0));
        int offset = 12;
        ushort type = U16(frame, offset);
        while (type is 0x8100 or 0x88a8 or 0x9100)
        {
            if (offset + 4 > frame.Length)
            {
                text.Append($", tag 0x{type:x4} cut");
                type = 0;
                break;
            }

            text.Append($", tag 0x{type:x4} vid {U16(frame, offset + 2) & 0xfff}");
            offset += 4;
            if (offset + 2 > frame.Length)
            {
                text.Append(", ethertype cut");
                return WithHex(text, frame);
            }

            type = U16(frame, offset);
        }

        int l3 = offset + 2;
        switch (type)
        {
            case <= 1500:
                text.Append($", 802.3 length {type}");
                if (l3 < frame.Length)
                {
                    text.Append($", dsap 0x{frame[l3]:x2}");
                }

                break;
            case EtherTypeIpv4:
                DescribeIpv4(text, frame, l3);
                break;
            case EtherTypeIpv6:
                DescribeIpv6(text, frame, l3);
                break;
            case EtherTypeArp:
            case EtherTypeRarp:
                text.Append(type == EtherTypeArp ? ", ARP" : ", RARP");
                if (l3 + 28 <= frame.Length)
                {
                    text.Append($" op {U16(frame, l3 + 6)} {Ip(frame, l3 + 14, 4)} > {Ip(frame, l3 + 24, 4)}");
                }
                else
                {
                    text.Append(" cut");
                }

                break;
            default:
                text.Append($", ethertype 0x{type:x4}");
                break;
        }

        return WithHex(text, frame);
    }

    private static void DescribeIpv4(StringBuilder text, byte[] frame, int l3)
    {
        text.Append(", IPv4");
        if (l3 + 20 > frame.Length)
        {
            text.Append(" cut");
            return;
        }

        int ihl = frame[l3] & 0xf;
        ushort fragment = U16(frame, l3 + 6);
        text.Append($" ihl {ihl} {Ip(frame, l3 + 12, 4)} > {Ip(frame, l3 + 16, 4)} proto {frame[l3 + 9]}");
        if ((fragment & 0x3fff) != 0)
        {
            text.Append($" frag offset {fragment & 0x1fff}{((fragment & 0x2000) != 0 ? " MF" : "")}");
        }

        DescribePorts(text, frame, l3 + (4 * ihl));
    }

    private static void DescribeIpv6(StringBuilder text, byte[] frame, int l3)
    {
        text.Append(", IPv6");
        if (l3 + 40 > frame.Length)
        {
            text.Append(" cut");
            return;
        }

        byte next = frame[l3 + 6];
        text.Append($" {Ip(frame, l3 + 8, 16)} > {Ip(frame, l3 + 24, 16)} next {next}");
        int l4 = l3 + 40;
        if (next == 44)
        {
            if (l4 + 8 > frame.Length)
            {
                text.Append(", fragment header cut");
                return;
            }

            ushort offsetAndMore = U16(frame, l4 + 2);
            text.Append($", fragment offset {offsetAndMore >> 3}{((offsetAndMore & 1) != 0 ? " M" : "")} next {frame[l4]}");
            l4 += 8;
        }

        DescribePorts(text, frame, l4);
    }

    private static void DescribePorts(StringBuilder text, byte[] frame, int l4)
    {
        if (l4 + 4 <= frame.Length)
        {
            text.Append($", ports? {U16(frame, l4)} > {U16(frame, l4 + 2)}");
        }
        else
        {
            text.Append(", transport cut");
        }
    }

    /// <summary>The bytes in hex, 32 a line; past the first 160 (filters read headers) only how many there are.</summary>
    private static string WithHex(StringBuilder text, byte[] frame)
    {
        const int Shown = 160;
        text.Append('\n');
        int shown = Math.Min(frame.Length, Shown);
        for (int i = 0; i < shown; i += 32)
        {
            text.Append("    ").Append(Convert.ToHexString(frame, i, Math.Min(32, shown - i)).ToLowerInvariant()).Append('\n');
        }

        if (frame.Length > Shown)
        {
            text.Append("    ... ").Append(frame.Length - Shown).Append(" more bytes\n");
        }

        return text.ToString();
    }

    private static ushort U16(byte[] frame, int offset) => BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(offset, 2));

    private static string Mac(byte[] frame, int offset)
        => string.Join(':', frame.Skip(offset).Take(6).Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    private static IPAddress Ip(byte[] frame, int offset, int length) => new(frame.AsSpan(offset, length));
}
