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
/// Handlers may rewrite bytes in place, change the frame's length (within <see cref="Capacity"/>: a reply of
/// another size, a VLAN tag pushed or popped), and send new frames or copies to any port (<see cref="Emit"/>,
/// <see cref="EmitCopy"/>). Valid only during the handler call.
/// </summary>
public ref struct Frame
{
    private readonly Span<byte> _space;
    private readonly IFrameEmitter? _emitter;
    private int _length;

    internal Frame(Span<byte> buffer, Direction direction)
        : this(buffer, buffer.Length, direction, null, 0)
    {
    }

    /// <param name="space">The virtio header, the frame, and the room after it the frame may grow into.</param>
    /// <param name="length">The virtio header's and the frame's bytes.</param>
    /// <param name="direction">Which way it crosses.</param>
    /// <param name="emitter">Where <see cref="Emit"/> and <see cref="EmitCopy"/> send (the forwarder), or null.</param>
    /// <param name="forwarder">The forwarder's index.</param>
    /// <param name="source">The port it came from; -1: the real side for ingress, the first virtual device for egress.</param>
    internal Frame(Span<byte> space, int length, Direction direction, IFrameEmitter? emitter, int forwarder, int source = -1)
    {
        Source = source >= 0 ? source : direction == Direction.Ingress ? 0 : 1;
        _space = space;
        _length = length;
        _emitter = emitter;
        Forwarder = forwarder;
        Direction = direction;
        Target = -1;
        DropReason = null;
    }

    /// <summary>Which way the frame crosses.</summary>
    public Direction Direction { get; }

    /// <summary>
    /// The forwarder (thread) handling it, from 0 to <see cref="HandlerContext.ForwarderCount"/> - 1: an index into
    /// per-forwarder state, which needs no lock (see <see cref="IFrameHandler.OnStart"/>).
    /// </summary>
    public int Forwarder { get; }

    /// <summary>
    /// The port the frame came from: 0 the real side (every ingress frame), 1 the first virtual device, 2 and on the
    /// binding's further devices (<see cref="AttachOptions.ExtraDevices"/>), whose frames are egress too.
    /// </summary>
    public int Source { get; }

    /// <summary>With <see cref="Verdict.Another"/>: the port index to deliver to (0 real side, 1 first virtual device).</summary>
    public int Target { get; set; }

    /// <summary>With <see cref="Verdict.Consumed"/> on a drop: a static reason string (no allocation).</summary>
    public string? DropReason { get; set; }

    /// <summary>virtio_net_hdr followed by the frame, as read from or written to the TAP.</summary>
    public readonly Span<byte> Raw => _space[.._length];

    /// <summary>The frame's offload metadata: a checksum still to compute, a GSO super-frame to cut. Rewrite with care.</summary>
    public readonly ref VirtioNetHdr VirtioHeader => ref MemoryMarshal.AsRef<VirtioNetHdr>(_space);

    /// <summary>The Ethernet frame (destination MAC first). With GSO it may be up to 64 KB.</summary>
    public readonly Span<byte> Data => _space[VirtioNetHdr.Size.._length];

    /// <summary>A view over the Ethernet header.</summary>
    public readonly EthernetView Ethernet => new(Data);

    /// <summary>The frame's length in bytes.</summary>
    public readonly int Length => _length - VirtioNetHdr.Size;

    /// <summary>The most the frame may grow to here.</summary>
    public readonly int Capacity => _space.Length - VirtioNetHdr.Size;

    /// <summary>How many ports the binding has (0 the real side, then its virtual devices); 0 outside a forwarder.</summary>
    public readonly int PortCount => _emitter?.PortCount ?? 0;

    /// <summary>
    /// Makes the frame <paramref name="length"/> bytes long (what it grows into holds what was there before: write
    /// it). False, and nothing changed, beyond <see cref="Capacity"/>.
    /// </summary>
    public bool TrySetLength(int length)
    {
        if (length < 0 || length > Capacity)
        {
            return false;
        }

        _length = length + VirtioNetHdr.Size;
        return true;
    }

    /// <summary>
    /// Inserts an 802.1Q tag (<paramref name="tpid"/>, <paramref name="tci"/>: priority and VLAN id) after the MACs,
    /// as the outermost tag; keeps the offload metadata pointing at the same headers. False without room.
    /// </summary>
    public bool TryPushVlan(ushort tci, ushort tpid = EthernetView.EtherTypeVlan)
    {
        int length = Length;
        if (length < 12 || !TrySetLength(length + 4))
        {
            return false;
        }

        var data = Data;
        data[12..length].CopyTo(data[16..]);
        data[12] = (byte)(tpid >> 8);
        data[13] = (byte)tpid;
        data[14] = (byte)(tci >> 8);
        data[15] = (byte)tci;
        ShiftOffloads(4);
        return true;
    }

    /// <summary>Removes the outermost 802.1Q or 802.1ad tag; false (nothing changed) for an untagged frame.</summary>
    public bool TryPopVlan(out ushort tci)
    {
        tci = 0;
        var data = Data;
        if (!Ethernet.HasVlanTag)
        {
            return false;
        }

        tci = (ushort)((data[14] << 8) | data[15]);
        data[16..].CopyTo(data[12..]);
        _length -= 4;
        ShiftOffloads(-4);
        return true;
    }

    /// <summary>
    /// Sends <paramref name="frame"/> (an Ethernet frame, no offloads) to <paramref name="port"/>, from a buffer of
    /// the forwarder's: this frame goes on as the verdict says. Counted as emitted; false (and counted as a failed
    /// emit) when the port does not exist or would not take it. Where the forwarder batches its writes, the copy
    /// joins the batch (written before the forwarder takes its next frames) and true means queued: a write that then
    /// fails is counted as a failed emit.
    /// </summary>
    public readonly bool Emit(int port, ReadOnlySpan<byte> frame) => _emitter?.Emit(port, frame, withHeader: false) ?? false;

    /// <summary>Sends a copy of this frame, as it is now (offload metadata too), to <paramref name="port"/> now.</summary>
    public readonly bool EmitCopy(int port) => _emitter?.Emit(port, Raw, withHeader: true) ?? false;

    private readonly void ShiftOffloads(int by)
    {
        ref var header = ref VirtioHeader;
        if ((header.Flags & VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0)
        {
            header.CsumStart = (ushort)(header.CsumStart + by);
        }

        if (header.HdrLen != 0)
        {
            header.HdrLen = (ushort)(header.HdrLen + by);
        }
    }
}

/// <summary>Where a frame's emits go: the forwarder that handles it.</summary>
internal interface IFrameEmitter
{
    int PortCount { get; }

    /// <summary><paramref name="bytes"/> to <paramref name="port"/>: with its virtio header, or a bare frame to give one.</summary>
    bool Emit(int port, ReadOnlySpan<byte> bytes, bool withHeader);
}
