namespace Virtnet.Datapaths;

/// <summary>A view over an Ethernet header, 802.1Q-aware. No copies, no allocation.</summary>
public readonly ref struct EthernetView
{
    /// <summary>EtherType of IPv4.</summary>
    public const ushort EtherTypeIPv4 = 0x0800;

    /// <summary>EtherType of ARP.</summary>
    public const ushort EtherTypeArp = 0x0806;

    /// <summary>EtherType (TPID) of an 802.1Q tag.</summary>
    public const ushort EtherTypeVlan = 0x8100;

    /// <summary>EtherType (TPID) of an 802.1ad (QinQ) service tag.</summary>
    public const ushort EtherTypeQinQ = 0x88A8;

    /// <summary>EtherType of IPv6.</summary>
    public const ushort EtherTypeIPv6 = 0x86DD;

    /// <summary>An untagged Ethernet header: two MACs and the EtherType.</summary>
    public const int HeaderLength = 14;

    private readonly Span<byte> _data;

    /// <summary>A view over <paramref name="data"/>, which starts with the destination MAC.</summary>
    public EthernetView(Span<byte> data) => _data = data;

    /// <summary>Whether the data holds at least a whole header.</summary>
    public bool IsValid => _data.Length >= HeaderLength;

    /// <summary>The destination MAC.</summary>
    public Span<byte> Destination => _data[..6];

    /// <summary>The source MAC.</summary>
    public Span<byte> Source => _data[6..12];

    /// <summary>The outer EtherType (0x8100 for a tagged frame).</summary>
    public ushort EtherType => System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(_data[12..]);

    /// <summary>Whether the frame carries an 802.1Q or 802.1ad tag in its bytes.</summary>
    public bool HasVlanTag => IsValid && (EtherType == EtherTypeVlan || EtherType == EtherTypeQinQ) && _data.Length >= HeaderLength + 4;

    /// <summary>The 12-bit VLAN id of the outer tag, or -1 when untagged.</summary>
    public int VlanId => HasVlanTag ? System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(_data[14..]) & 0x0FFF : -1;

    /// <summary>The EtherType after any 802.1Q tags.</summary>
    public ushort InnerEtherType
    {
        get
        {
            int offset = 12;
            ushort type = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(_data[offset..]);
            while ((type == EtherTypeVlan || type == EtherTypeQinQ) && _data.Length >= offset + 6)
            {
                offset += 4;
                type = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(_data[offset..]);
            }

            return type;
        }
    }

    /// <summary>Whether the destination is ff:ff:ff:ff:ff:ff.</summary>
    public bool IsBroadcast => IsValid && Destination.IndexOfAnyExcept((byte)0xFF) < 0;

    /// <summary>Whether the destination is a group address (multicast or broadcast).</summary>
    public bool IsMulticast => IsValid && (_data[0] & 1) != 0;
}
