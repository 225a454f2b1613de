// Protocol views and checksums: a known IPv4 header checksum; RFC 1624 updates equal a full recomputation (random
// headers, fixed seed); the rewrites keep IP, TCP and UDP checksums right in both forms a frame holds them (complete,
// and partial under checksum offload and GSO), past VLAN tags; IPv6 extension headers walked; ARP read.
using System.Buffers.Binary;
using Virtnet.Datapaths;
using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Unit;

public class ViewsTests
{
    private static readonly byte[] A = [10, 200, 1, 1], B = [10, 200, 1, 2], C = [192, 0, 2, 77];

    [Fact]
    public void Compute_KnownIpv4Header()
    {
        byte[] header = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xb861, InternetChecksum.Compute(header));
    }

    [Fact]
    public void Update_EqualsRecomputing_OverRandomHeaders()
    {
        var random = new Random(1624);
        var header = new byte[20];
        Span<byte> before = stackalloc byte[4];
        Span<byte> after = stackalloc byte[4];
        for (int i = 0; i < 2000; i++)
        {
            random.NextBytes(header);
            header[10] = header[11] = 0;
            ushort checksum = InternetChecksum.Compute(header);
            ushort partial = InternetChecksum.Fold(InternetChecksum.Add(0, header));
            int at = 2 * random.Next(0, 8);
            if (at == 10)
            {
                continue;
            }

            header.AsSpan(at, 4).CopyTo(before);
            random.NextBytes(after);
            after.CopyTo(header.AsSpan(at));
            // One's complement has two zeros (0x0000 and 0xFFFF): equal modulo 0xFFFF is equal.
            Assert.Equal(InternetChecksum.Compute(header) % 0xFFFF, InternetChecksum.Update(checksum, before, after) % 0xFFFF);
            Assert.Equal(InternetChecksum.Fold(InternetChecksum.Add(0, header)) % 0xFFFF, InternetChecksum.UpdatePartial(partial, before, after) % 0xFFFF);
        }
    }

    /// <summary>virtio header, Ethernet (tagged with <paramref name="vlan"/> when above 0), IPv4, then TCP or UDP with a right checksum.</summary>
    private static byte[] Frame(byte protocol, int vlan = 0, int payload = 40, bool partial = false, bool noUdpChecksum = false)
    {
        int l2 = vlan > 0 ? 18 : 14;
        int l4Length = (protocol == 6 ? 20 : 8) + payload;
        var f = new byte[VirtioNetHdr.Size + l2 + 20 + l4Length];
        var d = f.AsSpan(VirtioNetHdr.Size);
        d[0] = 0x02; d[5] = 1; d[6] = 0x02; d[11] = 2;
        if (vlan > 0)
        {
            BinaryPrimitives.WriteUInt16BigEndian(d[12..], 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(d[14..], (ushort)vlan);
        }

        BinaryPrimitives.WriteUInt16BigEndian(d[(l2 - 2)..], 0x0800);
        var ip = d[l2..];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + l4Length));
        ip[8] = 64;
        ip[9] = protocol;
        A.CopyTo(ip[12..]);
        B.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], InternetChecksum.Compute(ip[..20]));
        var l4 = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(l4, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(l4[2..], 443);
        if (protocol == 6)
        {
            l4[12] = 0x50;
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(l4[4..], (ushort)l4Length);
        }

        for (int i = protocol == 6 ? 20 : 8; i < l4Length; i++)
        {
            l4[i] = (byte)(i * 7);
        }

        int at = protocol == 6 ? 16 : 6;
        ulong pseudo = InternetChecksum.PseudoHeaderIpv4(A, B, protocol, l4Length);
        ushort value = partial ? InternetChecksum.Fold(pseudo) : noUdpChecksum ? (ushort)0 : (ushort)~InternetChecksum.Fold(InternetChecksum.Add(pseudo, l4));
        BinaryPrimitives.WriteUInt16BigEndian(l4[at..], value);
        if (partial)
        {
            f[0] = VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM;
            BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(6), (ushort)(l2 + 20));
            BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(8), (ushort)at);
        }

        return f;
    }

    /// <summary>The transport checksum as a receiver checks it: the sum over pseudo-header and segment folds to 0xFFFF.</summary>
    private static bool TransportChecksumIsValid(Span<byte> ip)
    {
        int l4Length = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]) - 20;
        ulong sum = InternetChecksum.Add(InternetChecksum.PseudoHeaderIpv4(ip[12..16], ip[16..20], ip[9], l4Length), ip.Slice(20, l4Length));
        return InternetChecksum.Fold(sum) == 0xFFFF;
    }

    [Theory]
    [InlineData(6, 0)]
    [InlineData(17, 0)]
    [InlineData(6, 100)]
    [InlineData(17, 4094)]
    public void RewriteAddressAndPort_CompleteChecksums_StayValid(byte protocol, int vlan)
    {
        var bytes = Frame(protocol, vlan);
        var frame = new Frame(bytes, Direction.Ingress);
        Assert.Equal(vlan > 0 ? 18 : 14, frame.NetworkOffset());
        Assert.True(frame.TryIpv4(out var ip));
        Assert.True(TransportChecksumIsValid(frame.Data[frame.NetworkOffset()..]));

        Assert.True(frame.RewriteIpv4Address(source: true, C));
        Assert.True(frame.RewriteIpv4Address(source: false, A));
        Assert.True(frame.RewritePort(source: false, 8443));
        Assert.True(frame.TryIpv4(out ip));
        Assert.Equal(C, ip.Source.ToArray());
        Assert.Equal(A, ip.Destination.ToArray());
        Assert.True(ip.ChecksumIsValid);
        Assert.True(TransportChecksumIsValid(frame.Data[frame.NetworkOffset()..]));
        Assert.True(protocol == 6 ? TcpView.TryRead(ip.Payload, out var tcp) && tcp.DestinationPort == 8443 : UdpView.TryRead(ip.Payload, out var udp) && udp.DestinationPort == 8443);
    }

    [Theory]
    [InlineData(6)]
    [InlineData(17)]
    public void RewriteAddress_PartialChecksum_StaysThePseudoHeaderSum(byte protocol)
    {
        // A checksum-offloaded frame (every GSO super-frame): the field holds the pseudo-header's sum only.
        var bytes = Frame(protocol, payload: 3000, partial: true);
        var frame = new Frame(bytes, Direction.Egress);
        Assert.True(frame.RewriteIpv4Address(source: true, C));
        Assert.True(frame.RewritePort(source: true, 5555));
        Assert.True(frame.TryIpv4(out var ip));
        int l4Length = ip.TotalLength - 20;
        ushort expected = InternetChecksum.Fold(InternetChecksum.PseudoHeaderIpv4(C, B, protocol, l4Length));
        int at = protocol == 6 ? TcpView.ChecksumOffset : UdpView.ChecksumOffset;
        Assert.Equal(expected, BinaryPrimitives.ReadUInt16BigEndian(ip.Payload[at..]));
        Assert.True(ip.ChecksumIsValid);
    }

    [Fact]
    public void RewriteAddress_UdpWithoutChecksum_KeepsNone()
    {
        var bytes = Frame(17, noUdpChecksum: true);
        var frame = new Frame(bytes, Direction.Ingress);
        Assert.True(frame.RewriteIpv4Address(source: false, C));
        Assert.True(frame.TryIpv4(out var ip));
        Assert.True(UdpView.TryRead(ip.Payload, out var udp));
        Assert.Equal(0, udp.Checksum);
        Assert.True(ip.ChecksumIsValid);
    }

    [Fact]
    public void Ipv6_ExtensionHeadersWalked_LaterFragmentHasNoUpperLayer()
    {
        var p = new byte[40 + 8 + 8 + 20];
        p[0] = 0x60;
        p[6] = 0;         // hop-by-hop
        p[40] = 44;       // next: fragment
        p[41] = 0;        // (0 + 1) * 8 bytes
        p[48] = 6;        // next: TCP
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(50), 0x0001); // offset 0, M set: the first fragment
        p[56 + 12] = 0x50;
        Assert.True(Ipv6View.TryRead(p, out var v6));
        Assert.Equal((6, 56), (v6.Protocol, v6.UpperLayerOffset));
        Assert.True(TcpView.TryRead(v6.Payload, out _));

        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(50), 0x0008); // offset 1 (8 bytes): a later fragment
        Assert.True(Ipv6View.TryRead(p, out v6));
        Assert.Equal(-1, v6.UpperLayerOffset);
        Assert.True(v6.Payload.IsEmpty);
        Assert.False(Ipv6View.TryRead(p.AsSpan(0, 44), out _)); // the hop-by-hop header cut short
    }

    [Fact]
    public void Arp_ReadAndWritten()
    {
        var bytes = new byte[VirtioNetHdr.Size + 14 + 28];
        var d = bytes.AsSpan(VirtioNetHdr.Size);
        d[..6].Fill(0xFF);
        BinaryPrimitives.WriteUInt16BigEndian(d[12..], 0x0806);
        Convert.FromHexString("0001080006040001020000000001" + "0ac80101" + "000000000000" + "0ac80102").CopyTo(d[14..]);
        var frame = new Frame(bytes, Direction.Ingress);
        Assert.True(frame.TryArp(out var arp));
        Assert.Equal(ArpView.OpRequest, arp.Operation);
        Assert.Equal(B, arp.TargetIp.ToArray());
        arp.Operation = ArpView.OpReply;
        Assert.Equal(2, d[21]);
        Assert.False(frame.TryIpv4(out _));
    }
}
