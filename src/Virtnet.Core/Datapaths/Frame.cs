// The per-frame types of the user datapath. A frame is a span over a preallocated buffer plus metadata; the
// handlers return a verdict in the spirit of the kernel's rx_handler results.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Virtnet.Native;

namespace Virtnet.Datapaths;

/// <summary>Which way a frame crosses: ingress is real -> virtual (the wire's frames), egress virtual -> real.</summary>
public enum Direction : byte
{
    /// <summary>From the real device (the wire) to the virtual device.</summary>
    Ingress = 0,

    /// <summary>From the virtual device to the real device (the wire).</summary>
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

    /// <summary>Which way the frame crosses.</summary>
    public Direction Direction { get; }

    /// <summary>With <see cref="Verdict.Another"/>: the port index to deliver to (0 real side, 1 first virtual device).</summary>
    public int Target { get; set; }

    /// <summary>With <see cref="Verdict.Consumed"/> on a drop: a static reason string (no allocation).</summary>
    public string? DropReason { get; set; }

    /// <summary>virtio_net_hdr followed by the frame, as read from or written to the TAP.</summary>
    public readonly Span<byte> Raw => _buffer;

    /// <summary>The frame's offload metadata: a checksum still to compute, a GSO super-frame to cut. Rewrite with care.</summary>
    public readonly ref VirtioNetHdr VirtioHeader => ref MemoryMarshal.AsRef<VirtioNetHdr>(_buffer);

    /// <summary>The Ethernet frame (destination MAC first). With GSO it may be up to 64 KB.</summary>
    public readonly Span<byte> Data => _buffer[VirtioNetHdr.Size..];

    /// <summary>A view over the Ethernet header.</summary>
    public readonly EthernetView Ethernet => new(Data);
}
