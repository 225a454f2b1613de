// A tcpdump-style filter expression (the pcap-filter(7) subset in docs/filters.md), parsed and compiled to eBPF.
using Virtnet.Bpf;

namespace Virtnet.Filters;

/// <summary>A parsed filter expression, ready to be compiled into a program.</summary>
public sealed class PacketFilter
{
    private PacketFilter(string expression) => Expression = expression;

    /// <summary>The expression as the user wrote it.</summary>
    public string Expression { get; }

    /// <summary>Parses <paramref name="expression"/>; throws <see cref="FilterSyntaxException"/> if it is not valid.</summary>
    public static PacketFilter Parse(string expression) => throw new NotImplementedException();

    /// <summary>A SCHED_CLS program that returns 1 when the frame matches and 0 when it does not.</summary>
    public BpfInsn[] CompileMatchProgram() => throw new NotImplementedException();

    /// <summary>The compiled program as text, one instruction a line (like <c>tcpdump -d</c>).</summary>
    public string Explain() => throw new NotImplementedException();
}

/// <summary>An expression that is not valid: where (a 0-based column) and why.</summary>
public sealed class FilterSyntaxException(string expression, int column, string reason)
    : Exception($"filter '{expression}': column {column + 1}: {reason}")
{
    public string Expression { get; } = expression;

    /// <summary>0-based index into <see cref="Expression"/> of the offending token.</summary>
    public int Column { get; } = column;

    public string Reason { get; } = reason;
}
