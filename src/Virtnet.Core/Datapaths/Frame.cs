// The per-frame types of the user datapath. A frame is a span over a preallocated buffer plus metadata; the
// handlers return a verdict in the spirit of the kernel's rx_handler results.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Virtnet.Native;

namespace Virtnet.Datapaths;

/// <summary>Which way a frame crosses: ingress is real -> virtual (the wire's frames), egress virtual -> real.</summary>
public enum Direction : byte
{
    Ingress = 0,
    Egress = 1,
}

/// <summary>A handler's decision (compare rx_handler_result_t).</summary>
public enum Verdict : byte
{
    /// <summary>Not mine: the next handler decides; after the last one, the default path (RX_HANDLER_PASS).</summary>
    Pass = 0,

    /// <summary>Taken or dropped; nothing more happens to it. Set <see cref="Frame.DropReason"/> when dropping (RX_HANDLER_CONSUMED).</summary>
    Consumed = 1,

    /// <summary>Deliver to <see cref="Frame.Target"/> instead of the default (RX_HANDLER_ANOTHER).</summary>
    Another = 2,
}

/// <summary>
/// One frame in flight: the virtio_net_hdr the kernel gave us (offload metadata) and the Ethernet frame behind it.
/// Handlers may rewrite bytes in place. Valid only during the handler call.
/// </summary>
public ref struct Frame
{
    private readonly Span<byte> _buffer;

    internal Frame(Span<byte> buffer, Direction direction)
    {
        _buffer = buffer;
        Direction = direction;
        Target = -1;
        DropReason = null;
    }

    public readonly Direction Direction;

    /// <summary>With <see cref="Verdict.Another"/>: the port index to deliver to (0 real side, 1 first virtual device).</summary>
    public int Target;

    /// <summary>With <see cref="Verdict.Consumed"/> on a drop: a static reason string (no allocation).</summary>
    public string? DropReason;

    /// <summary>virtio_net_hdr followed by the frame, as read from or written to the TAP.</summary>
    public readonly Span<byte> Raw => _buffer;

    public readonly ref VirtioNetHdr VirtioHeader => ref MemoryMarshal.AsRef<VirtioNetHdr>(_buffer);

    /// <summary>The Ethernet frame (destination MAC first). With GSO it may be up to 64 KB.</summary>
    public readonly Span<byte> Data => _buffer[VirtioNetHdr.Size..];

    public readonly EthernetView Ethernet => new(Data);
}

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

/// <summary>
/// A C# frame handler in the user datapath's pipeline. It runs on every forwarder thread (one per CPU) at once,
/// so shared state needs per-thread slots or interlocked updates; it must not block, allocate or throw.
/// </summary>
public interface IFrameHandler
{
    Verdict OnFrame(ref Frame frame);
}

/// <summary>Per-direction counters, written by one worker and read by anyone.</summary>
public readonly record struct DirectionCounters(ulong Frames, ulong Bytes, ulong Drops);

public readonly record struct DatapathCounters(DirectionCounters Ingress, DirectionCounters Egress);

public enum DatapathKind
{
    Kernel,
    User,
}

/// <summary>A datapath moves frames between one real device and its virtual device until disposed.</summary>
public interface IDatapath : IDisposable
{
    DatapathKind Kind { get; }

    DatapathCounters ReadCounters();

    /// <summary>Follows an MTU change of the real device (the user datapath resizes its private device too).</summary>
    void OnMtuChanged(int mtu);

    /// <summary>The worker failed (e.g. the TAP was deleted under us); null while healthy.</summary>
    string? Fault { get; }
}
