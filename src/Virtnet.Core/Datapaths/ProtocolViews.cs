// Views over the protocols of a frame, as ref structs over its bytes: reading a field reads the frame, setting one
// writes it; nothing is copied or allocated. Each has TryRead, which checks that the header is whole (and its
// version and length fields sane) before anything is read. Addresses are spans of the frame; ports and numbers are
// host-order values. Checksums are not fixed up by setters: see InternetChecksum and FrameRewrite.
using System.Buffers.Binary;

namespace Virtnet.Datapaths;

/// <summary>An ARP packet for IPv4 over Ethernet (RFC 826).</summary>
public readonly ref struct ArpView
{
    /// <summary>A request.</summary>
    public const ushort OpRequest = 1;

    /// <summary>A reply.</summary>
    public const ushort OpReply = 2;

    /// <summary>Its length: 28 bytes.</summary>
    public const int Length = 28;

    private readonly Span<byte> _p;

    private ArpView(Span<byte> packet) => _p = packet;

    /// <summary>Reads an Ethernet/IPv4 ARP packet at the start of <paramref name="packet"/>.</summary>
    public static bool TryRead(Span<byte> packet, out ArpView view)
    {
        bool ok = packet.Length >= Length && BinaryPrimitives.ReadUInt16BigEndian(packet) == 1 && BinaryPrimitives.ReadUInt16BigEndian(packet[2..]) == EthernetView.EtherTypeIPv4
            && packet[4] == 6 && packet[5] == 4;
        view = ok ? new ArpView(packet) : default;
        return ok;
    }

    /// <summary>Request or reply.</summary>
    public ushort Operation
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[6..], value);
    }

    /// <summary>The sender's MAC.</summary>
    public Span<byte> SenderMac => _p.Slice(8, 6);

    /// <summary>The sender's IPv4 address.</summary>
    public Span<byte> SenderIp => _p.Slice(14, 4);

    /// <summary>The target's MAC (zero in a request).</summary>
    public Span<byte> TargetMac => _p.Slice(18, 6);

    /// <summary>The target's IPv4 address.</summary>
    public Span<byte> TargetIp => _p.Slice(24, 4);
}

/// <summary>An IPv4 header and what follows it.</summary>
public readonly ref struct Ipv4View
{
    private readonly Span<byte> _p;

    private Ipv4View(Span<byte> packet) => _p = packet;

    /// <summary>Reads an IPv4 header (version 4, IHL 5-15, whole) at the start of <paramref name="packet"/>.</summary>
    public static bool TryRead(Span<byte> packet, out Ipv4View view)
    {
        bool ok = packet.Length >= 20 && packet[0] >> 4 == 4 && (packet[0] & 0xF) >= 5 && packet.Length >= (packet[0] & 0xF) * 4;
        view = ok ? new Ipv4View(packet) : default;
        return ok;
    }

    /// <summary>The header's length in bytes (IHL × 4).</summary>
    public int HeaderLength => (_p[0] & 0xF) * 4;

    /// <summary>Total Length: header and payload (in a GSO super-frame, the super-frame's).</summary>
    public ushort TotalLength
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[2..], value);
    }

    /// <summary>Time to live.</summary>
    public byte Ttl
    {
        get => _p[8];
        set => _p[8] = value;
    }

    /// <summary>The payload's protocol (6 TCP, 17 UDP, 1 ICMP).</summary>
    public byte Protocol => _p[9];

    /// <summary>The header checksum field.</summary>
    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[10..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[10..], value);
    }

    /// <summary>More fragments set, or a fragment offset: a fragment (only the first carries the ports).</summary>
    public bool IsFragment => (BinaryPrimitives.ReadUInt16BigEndian(_p[6..]) & 0x3FFF) != 0;

    /// <summary>The fragment offset in bytes (0 for the first fragment and for a whole packet).</summary>
    public int FragmentOffset => (BinaryPrimitives.ReadUInt16BigEndian(_p[6..]) & 0x1FFF) * 8;

    /// <summary>The source address.</summary>
    public Span<byte> Source => _p.Slice(12, 4);

    /// <summary>The destination address.</summary>
    public Span<byte> Destination => _p.Slice(16, 4);

    /// <summary>What follows the header, up to the end of the frame (trailing padding included).</summary>
    public Span<byte> Payload => _p[HeaderLength..];

    /// <summary>Computes and stores the header checksum.</summary>
    public void UpdateChecksum()
    {
        Checksum = 0;
        Checksum = InternetChecksum.Compute(_p[..HeaderLength]);
    }

    /// <summary>Whether the header checksum is right.</summary>
    public bool ChecksumIsValid => InternetChecksum.Fold(InternetChecksum.Add(0, _p[..HeaderLength])) == 0xFFFF;
}

/// <summary>An IPv6 header, with its extension headers walked to the upper layer.</summary>
public readonly ref struct Ipv6View
{
    /// <summary>The fixed header's length.</summary>
    public const int HeaderLength = 40;

    private readonly Span<byte> _p;
    private readonly int _upper;
    private readonly byte _protocol;

    private Ipv6View(Span<byte> packet, int upper, byte protocol)
    {
        _p = packet;
        _upper = upper;
        _protocol = protocol;
    }

    /// <summary>
    /// Reads an IPv6 header at the start of <paramref name="packet"/>, and walks its extension headers (hop-by-hop,
    /// routing, fragment, destination options, authentication) to the upper-layer header, as far as the frame holds them.
    /// </summary>
    public static bool TryRead(Span<byte> packet, out Ipv6View view)
    {
        view = default;
        if (packet.Length < HeaderLength || packet[0] >> 4 != 6)
        {
            return false;
        }

        byte next = packet[6];
        int at = HeaderLength;
        for (int hops = 0; hops < 16; hops++)
        {
            int length;
            switch (next)
            {
                case 0 or 43 or 60: // hop-by-hop, routing, destination options: (len + 1) × 8
                    if (packet.Length < at + 8)
                    {
                        return false;
                    }

                    length = (packet[at + 1] + 1) * 8;
                    break;
                case 44: // fragment: 8 bytes; a later fragment has no upper-layer header in it
                    if (packet.Length < at + 8)
                    {
                        return false;
                    }

                    if ((BinaryPrimitives.ReadUInt16BigEndian(packet[(at + 2)..]) & 0xFFF8) != 0)
                    {
                        view = new Ipv6View(packet, -1, packet[at]);
                        return true;
                    }

                    length = 8;
                    break;
                case 51: // authentication: (len + 2) × 4
                    if (packet.Length < at + 8)
                    {
                        return false;
                    }

                    length = (packet[at + 1] + 2) * 4;
                    break;
                default:
                    view = new Ipv6View(packet, at, next);
                    return true;
            }

            if (packet.Length < at + length)
            {
                return false;
            }

            next = packet[at];
            at += length;
        }

        return false;
    }

    /// <summary>Payload Length: what follows the fixed header.</summary>
    public ushort PayloadLength
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[4..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[4..], value);
    }

    /// <summary>Hop limit.</summary>
    public byte HopLimit
    {
        get => _p[7];
        set => _p[7] = value;
    }

    /// <summary>The upper-layer protocol after the extension headers (6 TCP, 17 UDP, 58 ICMPv6).</summary>
    public byte Protocol => _protocol;

    /// <summary>Where the upper-layer header starts, from the IPv6 header; -1 in a fragment other than the first.</summary>
    public int UpperLayerOffset => _upper;

    /// <summary>The source address.</summary>
    public Span<byte> Source => _p.Slice(8, 16);

    /// <summary>The destination address.</summary>
    public Span<byte> Destination => _p.Slice(24, 16);

    /// <summary>The upper-layer header and what follows (empty in a later fragment).</summary>
    public Span<byte> Payload => _upper < 0 ? default : _p[_upper..];
}

/// <summary>A TCP header.</summary>
public readonly ref struct TcpView
{
    /// <summary>FIN.</summary>
    public const byte Fin = 0x01;

    /// <summary>SYN.</summary>
    public const byte Syn = 0x02;

    /// <summary>RST.</summary>
    public const byte Rst = 0x04;

    /// <summary>ACK.</summary>
    public const byte Ack = 0x10;

    private readonly Span<byte> _p;

    private TcpView(Span<byte> segment) => _p = segment;

    /// <summary>Reads a TCP header (data offset 5-15, whole) at the start of <paramref name="segment"/>.</summary>
    public static bool TryRead(Span<byte> segment, out TcpView view)
    {
        bool ok = segment.Length >= 20 && segment[12] >> 4 >= 5 && segment.Length >= (segment[12] >> 4) * 4;
        view = ok ? new TcpView(segment) : default;
        return ok;
    }

    /// <summary>The source port.</summary>
    public ushort SourcePort
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p, value);
    }

    /// <summary>The destination port.</summary>
    public ushort DestinationPort
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[2..], value);
    }

    /// <summary>The sequence number.</summary>
    public uint Sequence => BinaryPrimitives.ReadUInt32BigEndian(_p[4..]);

    /// <summary>The acknowledgment number.</summary>
    public uint Acknowledgment => BinaryPrimitives.ReadUInt32BigEndian(_p[8..]);

    /// <summary>The header's length in bytes (data offset × 4).</summary>
    public int HeaderLength => (_p[12] >> 4) * 4;

    /// <summary>The flags (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).</summary>
    public byte Flags => _p[13];

    /// <summary>The checksum field (a partial sum when the frame's checksum is offloaded).</summary>
    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[16..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[16..], value);
    }

    /// <summary>The segment's data.</summary>
    public Span<byte> Payload => _p[HeaderLength..];

    /// <summary>Offset of the checksum field in the header.</summary>
    public const int ChecksumOffset = 16;
}

/// <summary>A UDP header.</summary>
public readonly ref struct UdpView
{
    private readonly Span<byte> _p;

    private UdpView(Span<byte> datagram) => _p = datagram;

    /// <summary>Reads a UDP header at the start of <paramref name="datagram"/>.</summary>
    public static bool TryRead(Span<byte> datagram, out UdpView view)
    {
        bool ok = datagram.Length >= 8;
        view = ok ? new UdpView(datagram) : default;
        return ok;
    }

    /// <summary>The source port.</summary>
    public ushort SourcePort
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p, value);
    }

    /// <summary>The destination port.</summary>
    public ushort DestinationPort
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[2..], value);
    }

    /// <summary>The Length field: header and data.</summary>
    public ushort Length => BinaryPrimitives.ReadUInt16BigEndian(_p[4..]);

    /// <summary>The checksum field (0 over IPv4: none; a partial sum when offloaded).</summary>
    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[6..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[6..], value);
    }

    /// <summary>The datagram's data.</summary>
    public Span<byte> Payload => _p[8..];

    /// <summary>Offset of the checksum field in the header.</summary>
    public const int ChecksumOffset = 6;
}

/// <summary>An ICMP (IPv4) or ICMPv6 header: type, code, checksum, and the rest.</summary>
public readonly ref struct IcmpView
{
    /// <summary>ICMP echo reply.</summary>
    public const byte EchoReply = 0;

    /// <summary>ICMP echo request.</summary>
    public const byte EchoRequest = 8;

    /// <summary>ICMPv6 echo request.</summary>
    public const byte EchoRequestV6 = 128;

    /// <summary>ICMPv6 echo reply.</summary>
    public const byte EchoReplyV6 = 129;

    private readonly Span<byte> _p;

    private IcmpView(Span<byte> message) => _p = message;

    /// <summary>Reads an ICMP header (8 bytes) at the start of <paramref name="message"/>.</summary>
    public static bool TryRead(Span<byte> message, out IcmpView view)
    {
        bool ok = message.Length >= 8;
        view = ok ? new IcmpView(message) : default;
        return ok;
    }

    /// <summary>The type.</summary>
    public byte Type
    {
        get => _p[0];
        set => _p[0] = value;
    }

    /// <summary>The code.</summary>
    public byte Code
    {
        get => _p[1];
        set => _p[1] = value;
    }

    /// <summary>The checksum field.</summary>
    public ushort Checksum
    {
        get => BinaryPrimitives.ReadUInt16BigEndian(_p[2..]);
        set => BinaryPrimitives.WriteUInt16BigEndian(_p[2..], value);
    }

    /// <summary>The whole message: header and data.</summary>
    public Span<byte> Message => _p;

    /// <summary>ICMP (IPv4): computes and stores the checksum over the whole message.</summary>
    public void UpdateChecksum()
    {
        Checksum = 0;
        Checksum = InternetChecksum.Compute(_p);
    }
}
