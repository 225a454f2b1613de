namespace Virtnet.Datapaths;

/// <summary>A view over an Ethernet header, 802.1Q-aware. No copies, no allocation.</summary>
public readonly ref struct EthernetView
{
    public const ushort EtherTypeIPv4 = 0x0800;
    public const ushort EtherTypeArp = 0x0806;
    public const ushort EtherTypeVlan = 0x8100;
    public const ushort EtherTypeQinQ = 0x88A8;
    public const ushort EtherTypeIPv6 = 0x86DD;
    public const int HeaderLength = 14;

    private readonly Span<byte> _data;

    public EthernetView(Span<byte> data) => _data = data;

    public bool IsValid => _data.Length >= HeaderLength;

    public Span<byte> Destination => _data[..6];

    public Span<byte> Source => _data[6..12];

    /// <summary>The outer EtherType (0x8100 for a tagged frame).</summary>
    public ushort EtherType => System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(_data[12..]);

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

    public bool IsBroadcast => IsValid && Destination.IndexOfAnyExcept((byte)0xFF) < 0;

    public bool IsMulticast => IsValid && (_data[0] & 1) != 0;
}
