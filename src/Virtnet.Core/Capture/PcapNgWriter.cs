// pcapng (draft-ietf-opsawg-pcapng): a Section Header Block, one Interface Description Block per capture point,
// then one Enhanced Packet Block per frame, in the writer's byte order (the section's magic says which). Each
// interface says its timestamps are in nanoseconds (if_tsresol 9); each packet carries its direction in epb_flags
// and, for a dropped frame, the reason as its comment (opt_comment), which Wireshark shows as the frame's comment
// and `tshark -r` prints as frame.comment.
using System.Buffers.Binary;
using System.Text;

namespace Virtnet.Capture;

/// <summary>Which way a captured frame was going, for epb_flags.</summary>
internal enum CaptureDirection
{
    /// <summary>Not said.</summary>
    Unknown = 0,

    /// <summary>Received.</summary>
    Inbound = 1,

    /// <summary>Sent.</summary>
    Outbound = 2,
}

/// <summary>Writes a pcapng stream; not thread-safe. Blocks are assembled in one reused buffer: no allocation per frame.</summary>
internal sealed class PcapNgWriter
{
    private const uint SectionHeaderType = 0x0A0D0D0A;
    private const uint InterfaceType = 0x00000001;
    private const uint EnhancedPacketType = 0x00000006;
    private const ushort LinkTypeEthernet = 1;
    private const ushort OptEnd = 0;
    private const ushort OptComment = 1;
    private const ushort ShbUserAppl = 4;
    private const ushort IfName = 2;
    private const ushort IfDescription = 3;
    private const ushort IfTsResol = 9;
    private const ushort EpbFlags = 2;

    private readonly Stream _output;
    private readonly byte[] _block = new byte[(1 << 18) + 4096];
    private int _interfaces;

    /// <summary>Starts a section on <paramref name="output"/>, naming <paramref name="application"/> as its writer.</summary>
    public PcapNgWriter(Stream output, string application)
    {
        _output = output;
        int n = 8;
        Put32(ref n, 0x1A2B3C4D); // byte-order magic
        Put16(ref n, 1);
        Put16(ref n, 0);
        BinaryPrimitives.WriteInt64LittleEndian(_block.AsSpan(n), -1); // section length: not given
        n += 8;
        PutOption(ref n, ShbUserAppl, Encoding.UTF8.GetBytes(application));
        PutOption(ref n, OptEnd, []);
        Finish(SectionHeaderType, n);
    }

    /// <summary>The largest frame a block holds whole; longer ones are cut to it (their original length is kept).</summary>
    public const int MaxCaptured = 1 << 18;

    /// <summary>Describes the next interface (a capture point) and returns its id.</summary>
    public int AddInterface(string name, string description)
    {
        int n = 8;
        Put16(ref n, LinkTypeEthernet);
        Put16(ref n, 0);
        Put32(ref n, MaxCaptured); // snaplen
        PutOption(ref n, IfName, Encoding.UTF8.GetBytes(name));
        PutOption(ref n, IfDescription, Encoding.UTF8.GetBytes(description));
        PutOption(ref n, IfTsResol, [9]);
        PutOption(ref n, OptEnd, []);
        Finish(InterfaceType, n);
        return _interfaces++;
    }

    /// <summary>
    /// One frame: <paramref name="head"/> then <paramref name="tail"/> (two parts, so a VLAN tag can be put back
    /// between the MACs and the rest without copying the frame first), its length on the wire, when, which way,
    /// and an optional comment (ASCII/UTF-8, a few words).
    /// </summary>
    public void WritePacket(int iface, long unixNanos, ReadOnlySpan<byte> head, ReadOnlySpan<byte> tail, int originalLength, CaptureDirection direction, ReadOnlySpan<byte> comment = default)
    {
        if (head.Length + tail.Length > MaxCaptured)
        {
            int keep = MaxCaptured - head.Length;
            tail = tail[..Math.Max(0, keep)];
        }

        int captured = head.Length + tail.Length;
        int n = 8;
        Put32(ref n, (uint)iface);
        Put32(ref n, (uint)((ulong)unixNanos >> 32));
        Put32(ref n, (uint)unixNanos);
        Put32(ref n, (uint)captured);
        Put32(ref n, (uint)Math.Max(originalLength, captured));
        head.CopyTo(_block.AsSpan(n));
        tail.CopyTo(_block.AsSpan(n + head.Length));
        n += captured;
        while ((n & 3) != 0)
        {
            _block[n++] = 0;
        }

        if (direction != CaptureDirection.Unknown)
        {
            Put16(ref n, EpbFlags);
            Put16(ref n, 4);
            Put32(ref n, (uint)direction);
        }

        if (!comment.IsEmpty)
        {
            PutOption(ref n, OptComment, comment);
        }

        if (direction != CaptureDirection.Unknown || !comment.IsEmpty)
        {
            PutOption(ref n, OptEnd, []);
        }

        Finish(EnhancedPacketType, n);
    }

    public void Flush() => _output.Flush();

    private void Finish(uint type, int n)
    {
        int total = n + 4;
        BinaryPrimitives.WriteUInt32LittleEndian(_block.AsSpan(0), type);
        BinaryPrimitives.WriteUInt32LittleEndian(_block.AsSpan(4), (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(_block.AsSpan(n), (uint)total);
        _output.Write(_block, 0, total);
    }

    private void PutOption(ref int n, ushort code, ReadOnlySpan<byte> value)
    {
        Put16(ref n, code);
        Put16(ref n, (ushort)value.Length);
        value.CopyTo(_block.AsSpan(n));
        n += value.Length;
        while ((n & 3) != 0)
        {
            _block[n++] = 0;
        }
    }

    private void Put16(ref int n, ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_block.AsSpan(n), value);
        n += 2;
    }

    private void Put32(ref int n, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_block.AsSpan(n), value);
        n += 4;
    }
}
