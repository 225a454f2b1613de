using Virtnet.Native;

namespace Virtnet.Datapaths;

/// <summary>
/// The protocol views of a <see cref="Frame"/>, past any 802.1Q tags, and the rewrites handlers do most (an IPv4
/// address, a port) with every checksum they touch kept right.
/// </summary>
/// <remarks>
/// <para><b>GSO super-frames.</b> On the user datapath a TCP frame may be a super-frame of up to 64 KB: many
/// segments' worth of data behind one set of headers, with <see cref="VirtioNetHdr.GsoType"/> set and its size per
/// segment in <see cref="VirtioNetHdr.GsoSize"/>. The kernel cuts it into segments after the handler, copying the
/// headers into each and fixing lengths, IP checksums and TCP checksums there. So a handler that rewrites headers
/// rewrites every segment at once, and must not drop or reorder bytes of the payload. Its TCP checksum field is
/// partial (below): the rewrites here keep it so.</para>
/// <para><b>Checksum offload.</b> A frame with <see cref="VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM"/> (every GSO
/// super-frame, and most frames a local stack sends) carries in the field at
/// <see cref="VirtioNetHdr.CsumStart"/> + <see cref="VirtioNetHdr.CsumOffset"/> only the pseudo-header's sum; the
/// payload is summed later, by whoever sends it. Recomputing that field in full would be wrong; updating it as a
/// sum is right (<see cref="InternetChecksum.UpdatePartial"/>), and that is what these rewrites do.</para>
/// </remarks>
public static class FrameViews
{
    private const byte Tcp = 6;
    private const byte Udp = 17;

    /// <summary>Where the network header starts in <see cref="Frame.Data"/>: after the MACs, the 802.1Q tags and the EtherType.</summary>
    public static int NetworkOffset(this ref Frame frame)
    {
        var data = frame.Data;
        int offset = 12;
        while (data.Length >= offset + 6 && data[offset] is 0x81 or 0x88 && data[offset + 1] is 0x00 or 0xA8)
        {
            offset += 4;
        }

        return offset + 2;
    }

    /// <summary>The EtherType of what follows the tags.</summary>
    public static ushort NetworkType(this ref Frame frame)
    {
        int offset = frame.NetworkOffset();
        var data = frame.Data;
        return data.Length >= offset ? (ushort)((data[offset - 2] << 8) | data[offset - 1]) : (ushort)0;
    }

    /// <summary>The frame's IPv4 header, if it carries one.</summary>
    public static bool TryIpv4(this ref Frame frame, out Ipv4View ip)
    {
        ip = default;
        return frame.NetworkType() == EthernetView.EtherTypeIPv4 && Ipv4View.TryRead(frame.Data[frame.NetworkOffset()..], out ip);
    }

    /// <summary>The frame's IPv6 header (extension headers walked), if it carries one.</summary>
    public static bool TryIpv6(this ref Frame frame, out Ipv6View ip)
    {
        ip = default;
        return frame.NetworkType() == EthernetView.EtherTypeIPv6 && Ipv6View.TryRead(frame.Data[frame.NetworkOffset()..], out ip);
    }

    /// <summary>The frame's ARP packet, if it carries one.</summary>
    public static bool TryArp(this ref Frame frame, out ArpView arp)
    {
        arp = default;
        return frame.NetworkType() == EthernetView.EtherTypeArp && ArpView.TryRead(frame.Data[frame.NetworkOffset()..], out arp);
    }

    /// <summary>
    /// Rewrites the IPv4 source (or, with <paramref name="source"/> false, destination) address to
    /// <paramref name="address"/>, updating the IP header checksum and the TCP or UDP checksum (complete or partial,
    /// as the frame holds it; a UDP datagram without a checksum keeps none) incrementally. False, and nothing
    /// changed, when the frame is not IPv4.
    /// </summary>
    public static bool RewriteIpv4Address(this ref Frame frame, bool source, ReadOnlySpan<byte> address)
    {
        if (address.Length != 4 || !frame.TryIpv4(out var ip))
        {
            return false;
        }

        var field = source ? ip.Source : ip.Destination;
        Span<byte> before = stackalloc byte[4];
        field.CopyTo(before);
        address.CopyTo(field);
        ip.Checksum = InternetChecksum.Update(ip.Checksum, before, address);
        if (!ip.IsFragment || ip.FragmentOffset == 0)
        {
            // The address is in the TCP and UDP pseudo-header: their checksums change with it.
            bool partial = IsPartial(ref frame, frame.NetworkOffset() + ip.HeaderLength);
            UpdateL4(partial, ip.Protocol, ip.Payload, before, address);
        }

        return true;
    }

    /// <summary>
    /// Rewrites the TCP or UDP source (or destination) port of an IPv4 or IPv6 frame, updating its checksum as
    /// <see cref="RewriteIpv4Address"/> does. False, and nothing changed, when the frame has no such header.
    /// </summary>
    public static bool RewritePort(this ref Frame frame, bool source, ushort port)
    {
        scoped Span<byte> l4;
        byte protocol;
        int offset;
        bool overIpv4 = false;
        if (frame.TryIpv4(out var v4) && (!v4.IsFragment || v4.FragmentOffset == 0))
        {
            l4 = v4.Payload;
            protocol = v4.Protocol;
            offset = frame.NetworkOffset() + v4.HeaderLength;
            overIpv4 = true;
        }
        else if (frame.TryIpv6(out var v6) && v6.UpperLayerOffset > 0)
        {
            l4 = v6.Payload;
            protocol = v6.Protocol;
            offset = frame.NetworkOffset() + v6.UpperLayerOffset;
        }
        else
        {
            return false;
        }

        if (protocol is not (Tcp or Udp) || l4.Length < (protocol == Tcp ? 20 : 8))
        {
            return false;
        }

        var at = l4[(source ? 0 : 2)..];
        ushort old = (ushort)((at[0] << 8) | at[1]);
        at[0] = (byte)(port >> 8);
        at[1] = (byte)port;
        int checksumAt = protocol == Tcp ? TcpView.ChecksumOffset : UdpView.ChecksumOffset;
        ushort checksum = (ushort)((l4[checksumAt] << 8) | l4[checksumAt + 1]);
        if (IsPartial(ref frame, offset))
        {
            return true; // ports are not in the pseudo-header: the sum the sender will add picks the new one up
        }

        if (protocol == Udp && checksum == 0 && overIpv4)
        {
            return true; // IPv4 UDP without a checksum
        }

        ushort updated = InternetChecksum.Update(checksum, old, port);
        Store(l4, checksumAt, protocol == Udp && updated == 0 ? (ushort)0xFFFF : updated);
        return true;
    }

    private static void UpdateL4(bool partial, byte protocol, Span<byte> l4, ReadOnlySpan<byte> before, ReadOnlySpan<byte> after)
    {
        if (protocol is not (Tcp or Udp) || l4.Length < (protocol == Tcp ? 20 : 8))
        {
            return;
        }

        int at = protocol == Tcp ? TcpView.ChecksumOffset : UdpView.ChecksumOffset;
        ushort checksum = (ushort)((l4[at] << 8) | l4[at + 1]);
        if (partial)
        {
            Store(l4, at, InternetChecksum.UpdatePartial(checksum, before, after));
        }
        else if (protocol == Udp && checksum == 0)
        {
            // IPv4 UDP without a checksum stays without one.
        }
        else
        {
            ushort updated = InternetChecksum.Update(checksum, before, after);
            Store(l4, at, protocol == Udp && updated == 0 ? (ushort)0xFFFF : updated);
        }
    }

    /// <summary>Whether the checksum of the transport header at <paramref name="offset"/> is left for later (offload, GSO).</summary>
    private static bool IsPartial(ref Frame frame, int offset)
    {
        ref var header = ref frame.VirtioHeader;
        return (header.Flags & VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 && header.CsumStart == offset;
    }

    private static void Store(Span<byte> l4, int at, ushort value)
    {
        l4[at] = (byte)(value >> 8);
        l4[at + 1] = (byte)value;
    }
}
