using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Virtnet.Native;

namespace Virtnet.Datapaths;

/// <summary>
/// The Internet checksum (RFC 1071) of IPv4 headers, TCP, UDP and ICMP: whole, over a pseudo-header, and updated
/// in place when a field changes (RFC 1624), in both of the forms a checksum field holds in a frame:
/// <list type="bullet">
/// <item><b>complete</b>: the one's complement of the sum, as on the wire;</item>
/// <item><b>partial</b>: a frame whose <see cref="VirtioNetHdr.Flags"/> has <see cref="VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM"/>
/// (checksum offload, and every GSO super-frame) carries in its TCP or UDP checksum field only the sum of the
/// pseudo-header, not complemented; whoever sends it on (the NIC, or the kernel when it segments) adds the
/// payload. A rewrite of an address or a port must then update that field as a sum, not as a checksum:
/// <see cref="UpdatePartial(ushort, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>.</item>
/// </list>
/// No allocation; every method works on spans.
/// </summary>
public static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> to a running one's-complement sum (16-bit big-endian words; an odd last byte is padded).</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 4 <= data.Length; i += 4)
        {
            sum += BinaryPrimitives.ReadUInt32BigEndian(data[i..]);
        }

        if (i + 2 <= data.Length)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
            i += 2;
        }

        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }

        return sum;
    }

    /// <summary>A running sum folded to 16 bits (end-around carry), not complemented.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)sum;
    }

    /// <summary>The checksum of <paramref name="data"/> (e.g. an IPv4 header with its checksum field zeroed), as stored.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => (ushort)~Fold(Add(0, data));

    /// <summary>The sum of the IPv4 pseudo-header of a TCP or UDP segment of <paramref name="length"/> bytes.</summary>
    public static ulong PseudoHeaderIpv4(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int length)
        => Add(Add(0, source[..4]), destination[..4]) + protocol + (ulong)(ushort)length;

    /// <summary>The sum of the IPv6 pseudo-header (RFC 8200, 8.1) of an upper-layer packet of <paramref name="length"/> bytes.</summary>
    public static ulong PseudoHeaderIpv6(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte nextHeader, int length)
        => Add(Add(0, source[..16]), destination[..16]) + (uint)length + nextHeader;

    /// <summary>
    /// A complete checksum after a field changed from <paramref name="before"/> to <paramref name="after"/> (the
    /// same even length: a port, an address), without summing the rest again: RFC 1624's HC' = ~(~HC + ~m + m').
    /// </summary>
    public static ushort Update(ushort checksum, ReadOnlySpan<byte> before, ReadOnlySpan<byte> after)
        => (ushort)~Fold(Difference((ushort)~checksum, before, after));

    /// <summary>A complete checksum after one 16-bit word changed.</summary>
    public static ushort Update(ushort checksum, ushort before, ushort after)
        => (ushort)~Fold((ulong)(ushort)~checksum + (ushort)~before + after);

    /// <summary>
    /// A partial checksum field (<see cref="VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM"/>: the pseudo-header's sum, not
    /// complemented) after a pseudo-header field changed (an address; the length).
    /// </summary>
    public static ushort UpdatePartial(ushort field, ReadOnlySpan<byte> before, ReadOnlySpan<byte> after)
        => Fold(Difference(field, before, after));

    private static ulong Difference(ulong sum, ReadOnlySpan<byte> before, ReadOnlySpan<byte> after)
    {
        if (before.Length != after.Length || before.Length % 2 != 0)
        {
            throw new ArgumentException("a changed field is the same even number of bytes before and after", nameof(after));
        }

        for (int i = 0; i < before.Length; i += 2)
        {
            sum += (ushort)~BinaryPrimitives.ReadUInt16BigEndian(before[i..]);
            sum += BinaryPrimitives.ReadUInt16BigEndian(after[i..]);
        }

        return sum;
    }
}
