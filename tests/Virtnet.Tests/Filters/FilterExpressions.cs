// Filter expressions for the filter tests, in the pcap-filter(7) subset virtnet compiles: a fixed list written by
// hand, each primitive combined with others and the tricky corners of pcap's grammar, and a seeded generator of
// random ones over the same subset and the same address, port and VLAN pools as FilterFrames.
//
// Two rules of pcap's grammar the expressions lean on: "and" and "or" have the same precedence and group from the
// left ("a or b and c" is "(a or b) and c"), "not" binds tightest; and "vlan" moves the offsets of everything
// parsed after it by 4 bytes, whatever the operator in between ("vlan 10 or vlan 100" looks for the second tag
// behind the first).
using System.Net;
using System.Text;

namespace Virtnet.Tests.Filters;

/// <summary>Filter expressions: a fixed list and a seeded random generator.</summary>
internal sealed class FilterExpressions(int seed)
{
    /// <summary>Hand-written expressions covering every primitive of the subset and pcap's corners.</summary>
    public static readonly string[] Fixed =
    [
        // Link layer.
        "ether host 02:00:00:00:00:01",
        "ether src 02:00:00:00:00:02",
        "ether dst ff:ff:ff:ff:ff:ff",
        "ether dst 01:00:5e:00:00:01 and ip",
        "ether src 02:00:00:00:00:01 and not ether dst ff:ff:ff:ff:ff:ff",
        "ether proto 0x0800",
        "ether proto 2048",
        "ether proto 0x86dd and not ip6",
        "ether proto 0x88cc or ether proto 0x9000",
        "ether proto 1501",
        "ether proto 0x8100",
        "ether proto 0x88a8 and vlan 100",
        "arp",
        "arp or ether proto 0x8035",
        "not arp and not ip and not ip6",

        // Network and transport protocols.
        "ip",
        "ip6",
        "tcp",
        "udp",
        "icmp",
        "icmp6",
        "ip and tcp",
        "ip6 and udp",
        "ip6 and tcp",
        "icmp or icmp6",
        "ip proto 47",
        "ip proto 50 or ip proto 132",
        "ip proto 6 and not tcp port 22",
        "ip proto 58",
        "ip and arp",

        // Hosts.
        "host 10.200.0.1",
        "src host 10.200.0.2",
        "dst host 224.0.0.1",
        "host fd00::1",
        "src host fd00:1::7",
        "dst host ff02::1",
        "host 10.200.0.1 and host 10.200.0.2",
        "host 10.200.1.7 or host fd00::2",
        "arp and host 192.168.5.5",
        "ip and not host 10.200.0.1",

        // Networks.
        "net 10.200.0.0/16",
        "src net 10.200.1.0/24",
        "dst net 224.0.0.0/4",
        "net 192.168.5.5/32",
        "net 0.0.0.0/0",
        "net 10.0.0.0/8 and not net 10.200.1.0/24",
        "net fd00::/16",
        "src net fd00:1::/32",
        "dst net ff00::/8",
        "net fd00::/127",
        "net fd00:1::/48 or net 10.200.0.0/23",

        // Ports.
        "port 53",
        "tcp port 22",
        "udp port 53",
        "src port 4789",
        "dst port 443",
        "tcp dst port 80",
        "udp src port 5000",
        "port 65535",
        "tcp port 22 or udp port 53",
        "port 80 and ip6",
        "port 4789 and not udp",
        "portrange 1-1024",
        "tcp portrange 22-80",
        "udp dst portrange 5000-65535",
        "src portrange 443-4789",
        "portrange 53-53",

        // Lengths.
        "less 64",
        "greater 100",
        "less 60 or greater 500",
        "greater 128 and udp",
        "not less 100 and ip6",

        // VLANs: each "vlan" moves what follows it by a tag.
        "vlan",
        "vlan 10",
        "vlan 100 and ip",
        "vlan 4094 or vlan 1",
        "vlan and vlan 10 and udp",
        "not vlan",
        "vlan and not vlan",
        "ip or vlan and tcp",
        "vlan 10 and host 10.200.0.1",
        "vlan and ip6 and tcp port 22",
        "vlan 1 and arp",
        "vlan and vlan and ip",
        "vlan and ether proto 0x8100",
        "ether host 02:00:00:00:00:01 and vlan 100",
        "(vlan 10 or vlan 100) and icmp",
        "not vlan and udp port 53",
        "vlan and (ip or ip6) and port 53",

        // Operators: "and" and "or" equal and left-associative, "not" tightest, the C spellings, parentheses.
        "tcp or udp and port 53",
        "not tcp and udp",
        "!ip6 && !arp",
        "ip || ip6 && udp",
        "not (tcp or udp)",
        "((tcp))",
        "tcp and (port 22 or port 80)",
        "not not ip",
        "ip and not (src host 10.200.0.1 or dst net 192.168.5.0/24)",
        "(host 10.200.0.1 or host fd00::1) and (tcp port 80 or udp port 53)",
        "ether src 02:00:00:00:00:01 || (ip6 && dst host ff02::1)",
        "greater 60 and (icmp or icmp6) or arp",
    ];

    private static readonly string[] s_protocols = ["arp", "ip", "ip6", "tcp", "udp", "icmp", "icmp6"];
    private static readonly string[] s_etherProtos =
        ["0x0800", "0x800", "2048", "0x86dd", "34525", "0x0806", "0x8035", "0x88cc", "0x9000", "0x8100", "0x88a8", "1501", "0x0600"];
    private static readonly int[] s_ipProtos = [1, 6, 17, 47, 50, 58, 132];
    private static readonly int[] s_lengths = [14, 60, 64, 100, 128, 200, 576, 600];
    private static readonly int[] s_rangeEnds = [1, 22, 53, 80, 443, 1024, 4789, 5000, 65535];
    private static readonly int[] s_ipv4Prefixes = [0, 8, 12, 16, 23, 24, 28, 31, 32];
    private static readonly int[] s_ipv6Prefixes = [8, 16, 32, 48, 64, 112, 127, 128];

    private readonly Random _random = new(seed);

    /// <summary><paramref name="count"/> expressions from <paramref name="seed"/>: the same seed, the same expressions.</summary>
    public static List<string> Generate(int seed, int count)
    {
        var expressions = new FilterExpressions(seed);
        return [.. Enumerable.Range(0, count).Select(_ => expressions.Next())];
    }

    /// <summary>The next expression: one to three terms, a term a primitive or a parenthesised expression, maybe negated.</summary>
    public string Next() => Expression(depth: 0);

    private string Expression(int depth)
    {
        int terms = _random.Next(1, depth == 0 ? 4 : 3);
        var text = new StringBuilder(Term(depth));
        for (int i = 1; i < terms; i++)
        {
            text.Append(Pick(" and ", " or ", " and ", " or ", " && ", " || ")).Append(Term(depth));
        }

        return text.ToString();
    }

    private string Term(int depth)
    {
        string not = Chance(0.2) ? Pick("not ", "!", "! ") : "";
        return depth < 2 && Chance(0.2) ? $"{not}({Expression(depth + 1)})" : not + Primitive();
    }

    private string Primitive()
    {
        int which = _random.Next(100);
        return which switch
        {
            < 8 => $"ether {Pick("host", "src", "dst")} {Pick(FilterFrames.Macs)}",
            < 13 => $"ether proto {Pick(s_etherProtos)}",
            < 19 => Chance(0.4) ? "vlan" : $"vlan {Pick(FilterFrames.VlanIds)}",
            < 33 => Pick(s_protocols),
            < 45 => $"{Direction()}host {(Chance(0.6) ? Pick(FilterFrames.Ipv4Addresses) : Pick(FilterFrames.Ipv6Addresses))}",
            < 55 => $"{Direction()}net {Network()}",
            < 69 => $"{Transport()}{Direction()}port {Port()}",
            < 76 => $"{Transport()}{Direction()}portrange {PortRange()}",
            < 81 => $"ip proto {Pick(s_ipProtos)}",
            < 88 => $"{Pick("less", "greater")} {Pick(s_lengths)}",
            _ => Pick(s_protocols),
        };
    }

    private string Direction() => _random.Next(3) switch
    {
        0 => "",
        1 => "src ",
        _ => "dst ",
    };

    private string Transport() => _random.Next(3) switch
    {
        0 => "",
        1 => "tcp ",
        _ => "udp ",
    };

    private ushort Port() => Chance(0.9) ? Pick(FilterFrames.Ports) : (ushort)_random.Next(1, 0x10000);

    private string PortRange()
    {
        int a = Pick(s_rangeEnds);
        int b = Pick(s_rangeEnds);
        return $"{Math.Min(a, b)}-{Math.Max(a, b)}";
    }

    /// <summary>A network around a pool address: its prefix of a random length, host bits cleared (pcap insists).</summary>
    private string Network()
    {
        bool v4 = Chance(0.6);
        byte[] address = IPAddress.Parse(v4 ? Pick(FilterFrames.Ipv4Addresses) : Pick(FilterFrames.Ipv6Addresses)).GetAddressBytes();
        int prefix = v4 ? Pick(s_ipv4Prefixes) : Pick(s_ipv6Prefixes);
        for (int bit = prefix; bit < address.Length * 8; bit++)
        {
            address[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }

        return $"{new IPAddress(address)}/{prefix}";
    }

    private bool Chance(double p) => _random.NextDouble() < p;

    private T Pick<T>(params T[] pool) => pool[_random.Next(pool.Length)];
}
