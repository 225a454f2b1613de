// A tcpdump-style filter expression (the pcap-filter(7) subset in docs/filters.md), parsed and compiled to eBPF
// by FilterParser.cs and FilterCompiler.cs.
using System.Text;
using Virtnet.Bpf;

namespace Virtnet.Filters;

/// <summary>A parsed filter expression, ready to be compiled into a program.</summary>
public sealed class PacketFilter
{
    private readonly FilterNode _root;

    private PacketFilter(string expression, FilterNode root)
    {
        Expression = expression;
        _root = root;
    }

    /// <summary>The expression as the user wrote it.</summary>
    public string Expression { get; }

    /// <summary>The expression with every grouping written out: pcap's and/or share one precedence, left to right.</summary>
    public string Grouped => Describe(_root, top: true);

    /// <summary>Parses <paramref name="expression"/>; throws <see cref="FilterSyntaxException"/> if it is not valid.</summary>
    public static PacketFilter Parse(string expression) => new(expression, FilterParser.Parse(expression));

    /// <summary>A SCHED_CLS program that returns 1 when the frame matches and 0 when it does not.</summary>
    internal BpfInsn[] CompileMatchProgram() => CompileMatchProgram(FilterContext.Tc);

    internal BpfInsn[] CompileMatchProgram(FilterContext context)
    {
        var asm = new BpfAssembler();
        var match = asm.DefineLabel();
        var noMatch = asm.DefineLabel();
        Emit(asm, context, match, noMatch);
        asm.Mark(match).MovImm(BpfReg.R0, 1).Exit()
           .Mark(noMatch).MovImm(BpfReg.R0, 0).Exit();
        return asm.ToArray();
    }

    /// <summary>
    /// Emits the filter into a larger program: R1 is the skb on entry; the code jumps to <paramref name="match"/> or
    /// <paramref name="noMatch"/> with R6 = the skb and every other register clobbered.
    /// </summary>
    internal void Emit(BpfAssembler asm, FilterContext context, BpfLabel match, BpfLabel noMatch)
        => FilterCompiler.Emit(asm, _root, context, match, noMatch);

    /// <summary>The grouped expression and the compiled tc program, one instruction a line (like <c>tcpdump -d</c>).</summary>
    public string Explain()
    {
        var program = CompileMatchProgram();
        var text = new StringBuilder();
        text.Append("filter: ").Append(Grouped).Append('\n');
        text.Append("eBPF, ").Append(program.Length).Append(" instructions; returns 1 for a frame that matches, 0 for one that does not:\n");
        text.Append(BpfText.Disassemble(program));
        return text.ToString();
    }

    private static string Describe(FilterNode node, bool top = false)
    {
        string text = node switch
        {
            AndNode a => $"{Operand(a.Left, a)} and {Describe(a.Right)}",
            OrNode o => $"{Operand(o.Left, o)} or {Describe(o.Right)}",
            NotNode n => $"not {Describe(n.Operand)}",
            EtherHostNode e => $"ether {(e.Direction == FilterDirection.SrcOrDst ? "host" : Direction(e.Direction, "host"))} {Convert.ToHexString(e.Mac).ToLowerInvariant().Chunk(2).Select(c => new string(c)).Aggregate((x, y) => x + ":" + y)}",
            EtherProtoNode p => p.Value switch { 0x0800 => "ip", 0x86DD => "ip6", 0x0806 => "arp", 0x8035 => "rarp", _ => $"ether proto 0x{p.Value:x}" },
            VlanNode v => v.Id is { } id ? $"vlan {id}" : "vlan",
            TransportNode t => (t.V4, t.V6) switch
            {
                (6, 6) => "tcp",
                (17, 17) => "udp",
                (132, 132) => "sctp",
                (1, -1) => "icmp",
                (-1, 58) => "icmp6",
                _ => $"ip proto {t.V4}",
            },
            HostNode h => h.PrefixLength == (h.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
                ? $"{Direction(h.Direction, "host")} {h.Address}"
                : $"{Direction(h.Direction, "net")} {h.Address}/{h.PrefixLength}",
            PortNode p => $"{(p.Protocols.Length == 1 ? (p.Protocols[0] == 6 ? "tcp " : p.Protocols[0] == 17 ? "udp " : "sctp ") : "")}{Direction(p.Direction, p.Low == p.High ? "port" : "portrange")} {(p.Low == p.High ? p.Low.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{p.Low}-{p.High}")}",
            LengthNode l => $"{(l.Greater ? "greater" : "less")} {l.Value}",
            _ => "?",
        };
        return top || node is not (AndNode or OrNode) ? text : $"({text})";
    }

    /// <summary>A left operand of the same operator needs no parentheses: "a and b and c" reads only one way.</summary>
    private static string Operand(FilterNode left, FilterNode parent) => left.GetType() == parent.GetType() ? Describe(left, top: true) : Describe(left);

    private static string Direction(FilterDirection direction, string what) => direction switch
    {
        FilterDirection.Src => $"src {what}",
        FilterDirection.Dst => $"dst {what}",
        _ => what,
    };
}

/// <summary>An expression that is not valid: where (a 0-based column) and why.</summary>
public sealed class FilterSyntaxException(string expression, int column, string reason)
    : Exception($"filter '{expression}': column {column + 1}: {reason}")
{
    /// <summary>The expression as given.</summary>
    public string Expression { get; } = expression;

    /// <summary>0-based index into <see cref="Expression"/> of the offending token.</summary>
    public int Column { get; } = column;

    /// <summary>What is wrong, without the expression and column.</summary>
    public string Reason { get; } = reason;
}
