// Design: one message at a time is appended into a caller-owned buffer (RtNetlink keeps one per socket).
// Headers whose length is unknown until the end (nlmsghdr, nested attributes) are written with a zero length
// and patched by EndMessage/EndNested, as libmnl's mnl_attr_nest_start/end do. Nothing here allocates.
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Virtnet.Native;

namespace Virtnet.Netlink;

/// <summary>Appends one netlink message (nlmsghdr, family header, 4-byte aligned attributes) into a span.</summary>
internal ref struct NetlinkWriter
{
    private readonly Span<byte> _buffer;
    private int _position;
    private int _messageStart;

    public NetlinkWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _position = 0;
        _messageStart = -1;
    }

    /// <summary>Bytes written so far (all messages begun, including the open one).</summary>
    public readonly int Length => _position;

    /// <summary>Starts a message; nlmsg_len is patched by <see cref="EndMessage"/>.</summary>
    public void BeginMessage(ushort type, ushort flags, uint seq, uint pid = 0)
    {
        _position = Nl.Align(_position);
        _messageStart = _position;
        var header = new NlMsgHdr { Len = 0, Type = type, Flags = flags, Seq = seq, Pid = pid };
        WriteStruct(header);
    }

    /// <summary>Appends a fixed family header (ifinfomsg, ifaddrmsg, ndmsg) or any blittable struct, padded to 4.</summary>
    public void WriteStruct<T>(in T value)
        where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        Span<byte> dst = Reserve(Nl.Align(size));
        MemoryMarshal.Write(dst, in value);
        dst[size..].Clear();
    }

    public void PutU8(ushort type, byte value)
    {
        Span<byte> v = BeginAttr(type, 1);
        v[0] = value;
    }

    public void PutU32(ushort type, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(BeginAttr(type, 4), value);

    public void PutU64(ushort type, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(BeginAttr(type, 8), value);

    public void PutBytes(ushort type, scoped ReadOnlySpan<byte> value) => value.CopyTo(BeginAttr(type, value.Length));

    /// <summary>A NUL-terminated UTF-8 string (NLA_NUL_STRING / NLA_STRING as iproute2 sends names).</summary>
    public void PutString(ushort type, string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        Span<byte> v = BeginAttr(type, length + 1);
        Encoding.UTF8.GetBytes(value, v);
        v[length] = 0;
    }

    /// <summary>A UTF-8 string without the terminating NUL (what iproute2 sends for IFLA_IFALIAS).</summary>
    public void PutStringNoNul(ushort type, string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        Encoding.UTF8.GetBytes(value, BeginAttr(type, length));
    }

    /// <summary>Opens a nested attribute and returns its offset for <see cref="EndNested"/>.</summary>
    public int BeginNested(ushort type)
    {
        int start = _position;
        Span<byte> header = Reserve(NlAttr.Size);
        BinaryPrimitives.WriteUInt16LittleEndian(header, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        return start;
    }

    /// <summary>Patches the nested attribute's length to cover everything appended since BeginNested.</summary>
    public readonly void EndNested(int start)
    {
        int length = _position - start;
        if (start < 0 || length < NlAttr.Size || length > ushort.MaxValue)
        {
            NetlinkThrow.Overflow(length);
        }

        BinaryPrimitives.WriteUInt16LittleEndian(_buffer[start..], (ushort)length);
    }

    /// <summary>Patches nlmsg_len and returns the finished message.</summary>
    public readonly ReadOnlySpan<byte> EndMessage()
    {
        if (_messageStart < 0)
        {
            NetlinkThrow.Malformed("EndMessage without BeginMessage");
        }

        BinaryPrimitives.WriteUInt32LittleEndian(_buffer[_messageStart..], (uint)(_position - _messageStart));
        return _buffer[_messageStart.._position];
    }

    /// <summary>Writes an attribute header for a value of <paramref name="valueLength"/> bytes, pads it, and returns the value's span.</summary>
    private Span<byte> BeginAttr(ushort type, int valueLength)
    {
        int length = NlAttr.Size + valueLength;
        if (length > ushort.MaxValue)
        {
            NetlinkThrow.Overflow(length);
        }

        Span<byte> dst = Reserve(Nl.Align(length));
        BinaryPrimitives.WriteUInt16LittleEndian(dst, (ushort)length);
        BinaryPrimitives.WriteUInt16LittleEndian(dst[2..], type);
        dst[length..].Clear();
        return dst.Slice(NlAttr.Size, valueLength);
    }

    private Span<byte> Reserve(int count)
    {
        if (count > _buffer.Length - _position)
        {
            NetlinkThrow.Overflow(_position + count);
        }

        Span<byte> span = _buffer.Slice(_position, count);
        _position += count;
        return span;
    }
}
