// The parsed form of a filter expression: a tree of and/or/not over primitives, each primitive carrying the
// link-layer offsets in force where it was written (pcap's "vlan" moves them for everything written after it).
using System.Net;

namespace Virtnet.Filters;

/// <summary>Which address of a frame a primitive looks at.</summary>
internal enum FilterDirection
{
    SrcOrDst,
    Src,
    Dst,
}

/// <summary>
/// Where a primitive's link-layer payload starts: 14 + <see cref="Shift"/> bytes, plus 4 more at run time when
/// <see cref="Variable"/> and the first <c>vlan</c> found its tag in the frame rather than in the skb's metadata.
/// </summary>
internal readonly record struct LinkOffset(int Shift, bool Variable)
{
    public int Type => 12 + Shift;

    public int Payload => 14 + Shift;
}

internal abstract record FilterNode;

internal sealed record AndNode(FilterNode Left, FilterNode Right) : FilterNode;

internal sealed record OrNode(FilterNode Left, FilterNode Right) : FilterNode;

internal sealed record NotNode(FilterNode Operand) : FilterNode;

/// <summary><c>ether host|src|dst MAC</c>: the link header's own addresses, never moved by <c>vlan</c>.</summary>
internal sealed record EtherHostNode(FilterDirection Direction, byte[] Mac) : FilterNode;

/// <summary>The frame's EtherType is <see cref="Value"/> (or, at most 1500, its 802.2 LLC DSAP is).</summary>
internal sealed record EtherProtoNode(int Value, LinkOffset At) : FilterNode;

/// <summary>
/// <c>vlan [ID]</c>. The first one in an expression reads the skb's VLAN metadata first, as libpcap does on Linux.
/// </summary>
internal sealed record VlanNode(int? Id, bool First, LinkOffset At) : FilterNode;

/// <summary>An IPv4 protocol and/or IPv6 next header, -1 where not tested.</summary>
/// <param name="V4">The IPv4 protocol, or -1.</param>
/// <param name="V6">The IPv6 next header, or -1.</param>
/// <param name="At">Where the link-layer payload starts.</param>
/// <param name="V6FragmentHeader">Also match an IPv6 fragment header (44) followed by the next header, as
/// <c>tcp</c>, <c>udp</c> and <c>icmp6</c> do in libpcap.</param>
internal sealed record TransportNode(int V4, int V6, bool V6FragmentHeader, LinkOffset At) : FilterNode;

/// <summary><c>[src|dst] host|net</c> over IPv4 (with ARP/RARP) or IPv6.</summary>
internal sealed record HostNode(FilterDirection Direction, IPAddress Address, int PrefixLength, LinkOffset At) : FilterNode;

/// <summary><c>[tcp|udp] [src|dst] port|portrange</c>: <see cref="Protocols"/> are the IP protocols tested.</summary>
internal sealed record PortNode(int[] Protocols, FilterDirection Direction, int Low, int High, LinkOffset At) : FilterNode;

/// <summary><c>less N</c> (length ≤ N) or <c>greater N</c> (length ≥ N).</summary>
internal sealed record LengthNode(bool Greater, int Value) : FilterNode;
