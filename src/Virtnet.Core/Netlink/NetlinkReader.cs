// Design: views over received bytes, never copies. Every length is checked against what is left before it
// is used, so a short or lying message ends in VirtnetException(EBADMSG) from NetlinkThrow, never in an
// IndexOutOfRangeException. The kernel's own iterators (nlmsg_ok, nla_ok) are the model; unlike them we
// reject trailing garbage instead of ignoring it.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Virtnet.Native;

namespace Virtnet.Netlink;

/// <summary>Iterates the netlink messages of one datagram.</summary>
internal ref struct NetlinkMessageReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;

    public NetlinkMessageReader(ReadOnlySpan<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    /// <summary>The next message, or false at the end of the datagram.</summary>
    public bool TryRead(out NetlinkMessage message)
    {
        int left = _buffer.Length - _position;
        if (left <= 0)
        {
            message = default;
            return false;
        }

        if (left < NlMsgHdr.Size)
        {
            NetlinkThrow.Malformed($"{left} trailing bytes are shorter than a header");
        }

        ReadOnlySpan<byte> rest = _buffer[_position..];
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(rest);
        if (length < NlMsgHdr.Size || length > (uint)left)
        {
            NetlinkThrow.Malformed($"nlmsg_len {length} with {left} bytes left");
        }

        message = new NetlinkMessage(
            BinaryPrimitives.ReadUInt16LittleEndian(rest[4..]),
            BinaryPrimitives.ReadUInt16LittleEndian(rest[6..]),
            BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(rest[12..]),
            rest[NlMsgHdr.Size..(int)length]);

        // The next message starts aligned; the last one may end unpadded.
        _position = Math.Min(_buffer.Length, _position + Nl.Align((int)length));
        return true;
    }
}

/// <summary>One netlink message: the nlmsghdr fields and the payload after the header.</summary>
internal readonly ref struct NetlinkMessage
{
    public NetlinkMessage(ushort type, ushort flags, uint seq, uint pid, ReadOnlySpan<byte> payload)
    {
        Type = type;
        Flags = flags;
        Seq = seq;
        Pid = pid;
        Payload = payload;
    }

    public ushort Type { get; }

    public ushort Flags { get; }

    public uint Seq { get; }

    public uint Pid { get; }

    public ReadOnlySpan<byte> Payload { get; }

    /// <summary>The fixed family header at the start of the payload (ifinfomsg, ifaddrmsg, ndmsg, nlmsgerr).</summary>
    public T ReadHeader<T>()
        where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        if (Payload.Length < size)
        {
            NetlinkThrow.Malformed($"type {Type} payload of {Payload.Length} bytes, header needs {size}");
        }

        return MemoryMarshal.Read<T>(Payload);
    }

    /// <summary>The attributes after a family header of <paramref name="headerSize"/> bytes.</summary>
    public NetlinkAttributeReader Attributes(int headerSize)
    {
        int start = Nl.Align(headerSize);
        if (Payload.Length < headerSize)
        {
            NetlinkThrow.Malformed($"type {Type} payload of {Payload.Length} bytes, header needs {headerSize}");
        }

        return new NetlinkAttributeReader(start >= Payload.Length ? default : Payload[start..]);
    }
}

/// <summary>Iterates a run of attributes (a message's, or a nested attribute's value).</summary>
internal ref struct NetlinkAttributeReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private int _position;

    public NetlinkAttributeReader(ReadOnlySpan<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
    }

    public bool TryRead(out NetlinkAttribute attribute)
    {
        int left = _buffer.Length - _position;
        if (left <= 0)
        {
            attribute = default;
            return false;
        }

        if (left < NlAttr.Size)
        {
            NetlinkThrow.Malformed($"{left} trailing bytes are shorter than an attribute header");
        }

        ReadOnlySpan<byte> rest = _buffer[_position..];
        ushort length = BinaryPrimitives.ReadUInt16LittleEndian(rest);
        ushort rawType = BinaryPrimitives.ReadUInt16LittleEndian(rest[2..]);
        if (length < NlAttr.Size || length > left)
        {
            NetlinkThrow.Malformed($"attribute {rawType & Nl.NLA_TYPE_MASK} nla_len {length} with {left} bytes left");
        }

        attribute = new NetlinkAttribute(rawType, rest[NlAttr.Size..length]);
        _position = Math.Min(_buffer.Length, _position + Nl.Align(length));
        return true;
    }
}

/// <summary>One attribute: its type (flags masked off) and value, with checked typed accessors.</summary>
internal readonly ref struct NetlinkAttribute
{
    private readonly ushort _rawType;

    public NetlinkAttribute(ushort rawType, ReadOnlySpan<byte> value)
    {
        _rawType = rawType;
        Value = value;
    }

    public ushort Type => (ushort)(_rawType & Nl.NLA_TYPE_MASK);

    public bool IsNestedFlag => (_rawType & Nl.NLA_F_NESTED) != 0;

    public ReadOnlySpan<byte> Value { get; }

    public byte U8()
    {
        Need(1);
        return Value[0];
    }

    public ushort U16()
    {
        Need(2);
        return BinaryPrimitives.ReadUInt16LittleEndian(Value);
    }

    public uint U32()
    {
        Need(4);
        return BinaryPrimitives.ReadUInt32LittleEndian(Value);
    }

    public int I32()
    {
        Need(4);
        return BinaryPrimitives.ReadInt32LittleEndian(Value);
    }

    public ulong U64()
    {
        Need(8);
        return BinaryPrimitives.ReadUInt64LittleEndian(Value);
    }

    /// <summary>The u64 at <paramref name="index"/> of an array value (rtnl_link_stats64).</summary>
    public ulong U64At(int index)
    {
        Need((index + 1) * 8);
        return BinaryPrimitives.ReadUInt64LittleEndian(Value[(index * 8)..]);
    }

    /// <summary>A string up to the first NUL (or the whole value), decoded as UTF-8.</summary>
    public string String()
    {
        int nul = Value.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? Value : Value[..nul]);
    }

    public NetlinkAttributeReader Nested() => new(Value);

    private void Need(int bytes)
    {
        if (Value.Length < bytes)
        {
            NetlinkThrow.ShortAttribute(Type, Value.Length, bytes);
        }
    }
}
