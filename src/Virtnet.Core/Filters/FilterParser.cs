// The parser of the pcap-filter(7) subset virtnet compiles (docs/filters.md), with tcpdump's meaning:
//   expr      := term { ("and" | "&&" | "or" | "||") term }      -- and/or: one precedence, left to right
//   term      := ("not" | "!") term | "(" expr ")" | primitive
//   primitive := "ether" ("host" | "src" ["host"] | "dst" ["host"]) MAC | "ether" "proto" NUM
//              | "vlan" [NUM] | "arp" | "ip" ["proto" NUM] | "ip6" | "icmp" | "icmp6"
//              | ("tcp" | "udp") [[dir] ("port" NUM | "portrange" NUM-NUM)]
//              | [dir] ("host" ADDR | "net" CIDR | "port" NUM | "portrange" NUM-NUM)
//              | "less" NUM | "greater" NUM
//   dir       := "src" | "dst"
// "vlan" moves the link-layer offsets of every primitive written after it, as in libpcap.
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Virtnet.Filters;

internal sealed class FilterParser
{
    private const int Tcp = 6;
    private const int Udp = 17;
    private const int Sctp = 132;
    private const int Icmp = 1;
    private const int Icmp6 = 58;

    private readonly string _text;
    private readonly List<Token> _tokens;
    private int _next;
    private LinkOffset _at = new(0, false);
    private bool _sawVlan;

    private FilterParser(string text)
    {
        _text = text;
        _tokens = Lex(text);
    }

    private enum Kind
    {
        Word,
        Open,
        Close,
        Not,
        And,
        Or,
        End,
    }

    private readonly record struct Token(Kind Kind, string Text, int Column);

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FilterSyntaxException"/> with the column at fault.</summary>
    public static FilterNode Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parser = new FilterParser(text);
        if (parser.Peek.Kind == Kind.End)
        {
            throw new FilterSyntaxException(text, 0, "the expression is empty");
        }

        var node = parser.ParseExpression();
        if (parser.Peek.Kind != Kind.End)
        {
            throw parser.Error(parser.Peek, parser.Peek.Kind == Kind.Close
                ? "this ')' has no '(' to close"
                : parser.Peek.Kind == Kind.Word
                    ? $"'{parser.Peek.Text}' cannot follow here{Suggest(parser.Peek.Text)}; join primitives with 'and' or 'or'"
                    : $"expected 'and', 'or' or the end, not '{parser.Peek.Text}'");
        }

        return node;
    }

    private Token Peek => _tokens[_next];

    private Token Take() => _tokens[_next++];

    private FilterSyntaxException Error(Token at, string reason) => new(_text, at.Column, reason);

    private FilterNode ParseExpression()
    {
        var left = ParseTerm();
        while (Peek.Kind is Kind.And or Kind.Or)
        {
            bool and = Take().Kind == Kind.And;
            var right = ParseTerm();
            left = and ? new AndNode(left, right) : new OrNode(left, right);
        }

        return left;
    }

    private FilterNode ParseTerm()
    {
        var token = Peek;
        switch (token.Kind)
        {
            case Kind.Not:
                Take();
                return new NotNode(ParseTerm());
            case Kind.Open:
                Take();
                var inner = ParseExpression();
                if (Peek.Kind != Kind.Close)
                {
                    throw Error(Peek, Peek.Kind == Kind.End ? $"the '(' at column {token.Column + 1} is never closed" : $"expected ')', not '{Peek.Text}'");
                }

                Take();
                return inner;
            case Kind.Word:
                return ParsePrimitive();
            case Kind.End:
                throw Error(token, "the expression ends where a primitive (e.g. 'host 10.0.0.1', 'udp port 53') should follow");
            default:
                throw Error(token, $"expected a primitive (e.g. 'host 10.0.0.1', 'udp port 53'), not '{token.Text}'");
        }
    }

    private FilterNode ParsePrimitive()
    {
        var word = Take();
        switch (word.Text.ToLowerInvariant())
        {
            case "ether":
                return ParseEther(word);
            case "vlan":
                return ParseVlan();
            case "arp":
                return new EtherProtoNode(0x0806, _at);
            case "rarp":
                return new EtherProtoNode(0x8035, _at);
            case "ip":
                if (IsWord("proto"))
                {
                    Take();
                    return new TransportNode(Number(0, 255, "an IP protocol number"), -1, false, _at);
                }

                return new EtherProtoNode(0x0800, _at);
            case "ip6":
                return new EtherProtoNode(0x86DD, _at);
            case "icmp":
                return new TransportNode(Icmp, -1, false, _at);
            case "icmp6":
                return new TransportNode(-1, Icmp6, true, _at);
            case "sctp":
                return PortOrProtocol(Sctp);
            case "tcp":
                return PortOrProtocol(Tcp);
            case "udp":
                return PortOrProtocol(Udp);
            case "less":
                return new LengthNode(false, Number(0, int.MaxValue, "a length in bytes"));
            case "greater":
                return new LengthNode(true, Number(0, int.MaxValue, "a length in bytes"));
            case "src" or "dst" or "host" or "net" or "port" or "portrange":
                _next--;
                return ParseQualified(null);
            default:
                throw Error(word, $"'{word.Text}' is not a filter primitive{Suggest(word.Text)}");
        }
    }

    private FilterNode PortOrProtocol(int protocol)
    {
        if (IsWord("src") || IsWord("dst") || IsWord("port") || IsWord("portrange") || IsWord("host") || IsWord("net"))
        {
            return ParseQualified(protocol);
        }

        return new TransportNode(protocol, protocol, true, _at);
    }

    /// <summary><c>[src|dst] (host|net|port|portrange) VALUE</c>; <paramref name="protocol"/> set after tcp/udp.</summary>
    private FilterNode ParseQualified(int? protocol)
    {
        var direction = FilterDirection.SrcOrDst;
        if (IsWord("src") || IsWord("dst"))
        {
            direction = Take().Text.Equals("src", StringComparison.OrdinalIgnoreCase) ? FilterDirection.Src : FilterDirection.Dst;
        }

        var what = Peek;
        if (what.Kind != Kind.Word)
        {
            throw Error(what, "expected 'host', 'net', 'port' or 'portrange' here");
        }

        Take();
        switch (what.Text.ToLowerInvariant())
        {
            case "host" when protocol is null:
                var (address, column) = Address();
                return new HostNode(direction, address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128, _at);
            case "net" when protocol is null:
                return ParseNet(direction);
            case "port":
            {
                int port = Number(0, 65535, "a port number (0-65535)");
                return new PortNode(Protocols(protocol), direction, port, port, _at);
            }

            case "portrange":
                return ParsePortRange(protocol, direction);
            case "host" or "net":
                throw Error(what, $"'{what.Text}' cannot follow a transport protocol; write e.g. 'tcp and host 10.0.0.1'");
            default:
                throw Error(what, $"expected 'host', 'net', 'port' or 'portrange', not '{what.Text}'{Suggest(what.Text)}");
        }
    }

    private static int[] Protocols(int? protocol) => protocol is { } p ? [p] : [Tcp, Udp, Sctp];

    private PortNode ParsePortRange(int? protocol, FilterDirection direction)
    {
        var token = ExpectWord("a port range such as 5000-5010");
        int dash = token.Text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || dash == token.Text.Length - 1)
        {
            throw Error(token, $"'{token.Text}' is not a port range; write LOW-HIGH, e.g. 5000-5010");
        }

        int low = ParseNumber(token, token.Text[..dash], 0, 65535, "a port number (0-65535)");
        int high = ParseNumber(token, token.Text[(dash + 1)..], 0, 65535, "a port number (0-65535)");
        if (low > high)
        {
            (low, high) = (high, low); // libpcap swaps them too
        }

        return new PortNode(Protocols(protocol), direction, low, high, _at);
    }

    private HostNode ParseNet(FilterDirection direction)
    {
        var token = ExpectWord("a network such as 10.200.0.0/16");
        int slash = token.Text.IndexOf('/', StringComparison.Ordinal);
        string addressText = slash < 0 ? token.Text : token.Text[..slash];
        if (!IPAddress.TryParse(addressText, out var address) || !LooksLikeAddress(addressText))
        {
            throw Error(token, $"'{addressText}' is not an IPv4 or IPv6 address");
        }

        int max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int prefix = slash < 0 ? max : ParseNumber(token, token.Text[(slash + 1)..], 0, max, $"a prefix length (0-{max})");
        var bytes = address.GetAddressBytes();
        for (int bit = prefix; bit < max; bit++)
        {
            if ((bytes[bit / 8] & (0x80 >> (bit % 8))) != 0)
            {
                throw Error(token, $"'{token.Text}' has host bits set beyond the /{prefix} prefix");
            }
        }

        return new HostNode(direction, address, prefix, _at);
    }

    private FilterNode ParseEther(Token ether)
    {
        var what = Peek;
        if (what.Kind != Kind.Word)
        {
            throw Error(what, "expected 'host', 'src', 'dst' or 'proto' after 'ether'");
        }

        Take();
        switch (what.Text.ToLowerInvariant())
        {
            case "proto":
                return new EtherProtoNode(Number(0, 65535, "an EtherType (0-65535)"), _at);
            case "host":
                return new EtherHostNode(FilterDirection.SrcOrDst, Mac());
            case "src" or "dst":
                if (IsWord("host"))
                {
                    Take();
                }

                return new EtherHostNode(what.Text.Equals("src", StringComparison.OrdinalIgnoreCase) ? FilterDirection.Src : FilterDirection.Dst, Mac());
            default:
                throw Error(what, $"expected 'host', 'src', 'dst' or 'proto' after '{ether.Text}', not '{what.Text}'");
        }
    }

    private VlanNode ParseVlan()
    {
        int? id = null;
        if (Peek.Kind == Kind.Word && Peek.Text.Length > 0 && char.IsAsciiDigit(Peek.Text[0]))
        {
            id = Number(0, 4095, "a VLAN ID (0-4095)");
        }

        var node = new VlanNode(id, !_sawVlan, _at);
        // The first vlan (which may find its tag in the skb's metadata) moves the offsets at run time; the
        // following ones, whose tags can only be in the frame, move them by 4 for good.
        _at = _sawVlan ? _at with { Shift = _at.Shift + 4 } : _at with { Variable = true };
        _sawVlan = true;
        return node;
    }

    private byte[] Mac()
    {
        var token = ExpectWord("a MAC address such as 02:00:00:00:00:01");
        var parts = token.Text.Split(':', '-', '.');
        var mac = new byte[6];
        if (parts.Length == 6 && parts.All(p => p.Length is 1 or 2))
        {
            for (int i = 0; i < 6; i++)
            {
                if (!byte.TryParse(parts[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out mac[i]))
                {
                    throw Error(token, $"'{token.Text}' is not a MAC address; write six hex bytes, e.g. 02:00:00:00:00:01");
                }
            }

            return mac;
        }

        throw Error(token, $"'{token.Text}' is not a MAC address; write six hex bytes, e.g. 02:00:00:00:00:01");
    }

    private (IPAddress Address, int Column) Address()
    {
        var token = ExpectWord("an IPv4 or IPv6 address");
        if (IPAddress.TryParse(token.Text, out var address) && LooksLikeAddress(token.Text))
        {
            return (address, token.Column);
        }

        throw Error(token, $"'{token.Text}' is not an IPv4 or IPv6 address (names are not resolved)");
    }

    /// <summary>IPAddress.TryParse also takes "10" or "1.2" (inet_aton forms); a filter wants the full form.</summary>
    private static bool LooksLikeAddress(string text) => text.Contains(':', StringComparison.Ordinal) || text.Count(c => c == '.') == 3;

    private bool IsWord(string word) => Peek.Kind == Kind.Word && Peek.Text.Equals(word, StringComparison.OrdinalIgnoreCase);

    private Token ExpectWord(string what)
    {
        var token = Peek;
        if (token.Kind != Kind.Word)
        {
            throw Error(token, token.Kind == Kind.End ? $"the expression ends where {what} should follow" : $"expected {what}, not '{token.Text}'");
        }

        return Take();
    }

    private int Number(int min, int max, string what)
    {
        var token = ExpectWord(what);
        return ParseNumber(token, token.Text, min, max, what);
    }

    /// <summary>Decimal, 0x hex or 0-prefixed octal, as libpcap reads numbers.</summary>
    private int ParseNumber(Token token, string text, int min, int max, string what)
    {
        long value;
        bool ok;
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && text.Length > 2)
        {
            ok = long.TryParse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        }
        else if (text.Length > 1 && text[0] == '0')
        {
            ok = text.All(c => c is >= '0' and <= '7');
            value = ok ? text.Aggregate(0L, (v, c) => v < int.MaxValue ? (v * 8) + (c - '0') : v) : 0;
        }
        else
        {
            ok = text.All(char.IsAsciiDigit) && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
            value = ok ? long.Parse(text, CultureInfo.InvariantCulture) : 0;
        }

        if (!ok)
        {
            throw Error(token, $"expected {what}, not '{text}'{(text.All(char.IsAsciiLetter) ? " (names are not looked up)" : "")}");
        }

        if (value < min || value > max)
        {
            throw Error(token, $"{text} is out of range for {what}");
        }

        return (int)value;
    }

    private static readonly string[] s_words =
        ["ether", "host", "src", "dst", "port", "portrange", "proto", "vlan", "arp", "rarp", "ip", "ip6", "icmp", "icmp6", "tcp", "udp", "sctp", "net", "less", "greater", "and", "or", "not"];

    /// <summary>" (did you mean 'port'?)" for a word one edit away from a known one.</summary>
    private static string Suggest(string word)
    {
        string lower = word.ToLowerInvariant();
        var near = s_words.FirstOrDefault(w => Distance(w, lower) == 1);
        return near is null ? "" : $" (did you mean '{near}'?)";
    }

    /// <summary>Edits from <paramref name="a"/> to <paramref name="b"/>: insertions, deletions, substitutions and swaps of neighbours (also the config file's "did you mean").</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1); // two letters swapped
                }
            }
        }

        return d[a.Length, b.Length];
    }

    private static List<Token> Lex(string text)
    {
        var tokens = new List<Token>();
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            switch (c)
            {
                case '(':
                    tokens.Add(new Token(Kind.Open, "(", i++));
                    continue;
                case ')':
                    tokens.Add(new Token(Kind.Close, ")", i++));
                    continue;
                case '!':
                    tokens.Add(new Token(Kind.Not, "!", i++));
                    continue;
                case '&' or '|':
                    if (i + 1 < text.Length && text[i + 1] == c)
                    {
                        tokens.Add(new Token(c == '&' ? Kind.And : Kind.Or, new string(c, 2), i));
                        i += 2;
                        continue;
                    }

                    throw new FilterSyntaxException(text, i, $"'{c}' alone is not an operator; write '{c}{c}' or '{(c == '&' ? "and" : "or")}'");
            }

            int start = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i]) && text[i] is not ('(' or ')' or '!' or '&' or '|'))
            {
                i++;
            }

            string word = text[start..i];
            if (!word.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is ':' or '.' or '/' or '-' or '_'))
            {
                var bad = word.First(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is ':' or '.' or '/' or '-' or '_'));
                throw new FilterSyntaxException(text, start + word.IndexOf(bad, StringComparison.Ordinal), $"'{bad}' has no meaning in a filter");
            }

            var kind = word.ToLowerInvariant() switch
            {
                "and" => Kind.And,
                "or" => Kind.Or,
                "not" => Kind.Not,
                _ => Kind.Word,
            };
            tokens.Add(new Token(kind, word, start));
        }

        tokens.Add(new Token(Kind.End, "", text.Length));
        return tokens;
    }
}
