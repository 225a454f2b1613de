using Virtnet.Devices;
using Virtnet.Netlink;

namespace Virtnet.Datapaths;

/// <summary>What crossed a binding in one direction, and what was lost on the way.</summary>
/// <param name="Frames">Frames delivered.</param>
/// <param name="Bytes">Their bytes (Ethernet frames, without the virtio_net_hdr).</param>
/// <param name="Drops">Frames that entered and did not leave.</param>
public readonly record struct DirectionCounters(ulong Frames, ulong Bytes, ulong Drops)
{
    /// <summary>The sum of two counters (e.g. two forwarders').</summary>
    public static DirectionCounters operator +(DirectionCounters a, DirectionCounters b)
        => new(a.Frames + b.Frames, a.Bytes + b.Bytes, a.Drops + b.Drops);

    /// <summary>Same as <c>+</c>, for languages without operators.</summary>
    public static DirectionCounters Add(DirectionCounters left, DirectionCounters right) => left + right;
}

/// <summary>A binding's counters: ingress is real to virtual (the wire's frames), egress virtual to real.</summary>
/// <param name="Ingress">Real to virtual.</param>
/// <param name="Egress">Virtual to real.</param>
public readonly record struct DatapathCounters(DirectionCounters Ingress, DirectionCounters Egress)
{
    /// <summary>
    /// Kernel datapath: of the egress frames, those that reached the virtual device's transmit past its tcx hook
    /// (a packet socket with PACKET_QDISC_BYPASS, XDP_REDIRECT) and left through the process's slow path.
    /// </summary>
    public ulong EgressSlowPath { get; init; }

    /// <summary>The drops of both directions by cause (non-zero ones); per direction they add up to its Drops.</summary>
    public IReadOnlyList<DropCount> DropCauses { get; init; } = [];

    /// <summary>User datapath: frames handlers sent with <see cref="Frame.Emit"/> or <see cref="Frame.EmitCopy"/> (not in the directions' counts).</summary>
    public ulong HandlerEmitted { get; init; }

    /// <summary>User datapath: emits that could not be sent (no such port, the port would not take it).</summary>
    public ulong HandlerEmitFailed { get; init; }

    /// <summary>User datapath: the frames handlers dropped (<see cref="DropCause.Handler"/>), by the handler's own reason (<see cref="Frame.DropReason"/>).</summary>
    public IReadOnlyList<HandlerReasonCount> HandlerReasons { get; init; } = [];

    /// <summary>The counters with <see cref="DirectionCounters.Drops"/> of each direction set to the sum of its causes.</summary>
    public static DatapathCounters WithCauses(DirectionCounters ingress, DirectionCounters egress, params (Direction Direction, DropCause Cause, ulong Frames)[] causes)
    {
        var list = causes.Where(c => c.Frames > 0).Select(c => new DropCount(c.Direction, c.Cause, c.Frames)).ToArray();
        ulong Sum(Direction d) => list.Where(c => c.Direction == d).Aggregate(0UL, (a, c) => a + c.Frames);
        return new DatapathCounters(ingress with { Drops = Sum(Direction.Ingress) }, egress with { Drops = Sum(Direction.Egress) }) { DropCauses = list };
    }
}

/// <summary>How many frames of one direction handlers dropped for one reason of theirs.</summary>
/// <param name="Direction">Which way they were going.</param>
/// <param name="Reason">The handler's <see cref="Frame.DropReason"/>; "(other reasons)" for those beyond the first 16 distinct ones.</param>
/// <param name="Frames">How many (since the binding was made).</param>
public readonly record struct HandlerReasonCount(Direction Direction, string Reason, ulong Frames);

/// <summary>Which of the real device's frames a mirror binding receives copies of.</summary>
[Flags]
public enum MirrorDirections
{
    /// <summary>Not a mirror: the binding takes frames.</summary>
    None = 0,

    /// <summary>Copies of what the real device receives.</summary>
    Ingress = 1,

    /// <summary>Copies of what the real device sends (its stack's frames and other bindings').</summary>
    Egress = 2,

    /// <summary>Both.</summary>
    Both = Ingress | Egress,
}

/// <summary>How a mirror's ready line names what it copies.</summary>
internal static class Mirrors
{
    public static string Describe(MirrorDirections directions) => directions switch
    {
        MirrorDirections.Ingress => "what it receives",
        MirrorDirections.Egress => "what it sends",
        _ => "what it receives and sends",
    };
}

/// <summary>Which datapath moves a binding's frames.</summary>
public enum DatapathKind
{
    /// <summary>BPF programs on tcx hooks redirect frames inside the kernel, with no copy.</summary>
    Kernel,

    /// <summary>Every frame crosses this process, through the C# handler pipeline.</summary>
    User,
}

/// <summary>A datapath moves frames between one real device and its virtual device until disposed.</summary>
internal interface IDatapath : IDisposable
{
    DatapathKind Kind { get; }

    /// <summary>What the ready line says about this datapath beyond its kind (e.g. the user datapath's pump), or null.</summary>
    string? Details { get; }

    /// <summary>Devices this datapath made that carry only its binding's frames (the user datapath's pump and ring device).</summary>
    IReadOnlyList<string> PrivateDevices => [];

    /// <summary>
    /// Sends the frames dropped in managed code (handlers, runts) to the capture's socket at <paramref name="socketPath"/>
    /// from now on (null: to none). False when this datapath drops nothing in managed code (the kernel datapath).
    /// </summary>
    bool SendDropsTo(string? socketPath) => false;

    DatapathCounters ReadCounters();

    /// <summary>Follows an MTU change of the real device (the user datapath resizes its private device too).</summary>
    void OnMtuChanged(int mtu);

    /// <summary>
    /// A link in the real device's namespace changed: a private device of the datapath (the user datapath's pump)
    /// set down by someone else is set up again. Returns a line to log, or null.
    /// </summary>
    string? OnLinkChanged(LinkInfo link);

    /// <summary>The virtual device's MAC changed to <paramref name="mac"/> (it follows the real device's): programs that match on it are replaced.</summary>
    void OnVirtualMacChanged(byte[] mac);

    /// <summary>The worker failed (e.g. the TAP was deleted under us); null while healthy.</summary>
    string? Fault { get; }

    /// <summary>
    /// Lines for the log about handlers that threw since the last report, at most one per handler every 10 s; the
    /// binding's loop asks about twice a second. Only the user datapath runs handlers.
    /// </summary>
    IReadOnlyList<string> TakeHandlerReports() => [];

    /// <summary>On a shared real device: publishes the binding's key on the switch, so its frames come from now on.</summary>
    void Publish();

    /// <summary>
    /// The device the datapath delivers the wire's frames to is down (or up again): the kernel datapath drops and
    /// counts them under <see cref="DropCause.DeviceDown"/> (the kernel would drop them anyway, a veth peer's without
    /// counting). Called by the binding, which holds the switch's registry lock around it on a shared device.
    /// </summary>
    void SetTargetDown(bool down);
}

/// <summary>What a binding hands its datapath: the real device, the virtual device made for it, and the options.</summary>
/// <remarks>With <see cref="Port"/>, the binding shares the real device through its switch (a mode other than the whole-device passthru).</remarks>
/// <remarks>With <see cref="Filter"/>, only the frames it matches are the binding's; with <see cref="Mirror"/>, the binding gets copies.</remarks>
internal sealed record DatapathSetup(RtNetlink Rtnl, LinkInfo Real, VirtualDevice Virtual, IReadOnlyList<IFrameHandler> Handlers, TimeSpan BusyPoll, SwitchPort? Port = null)
{
    public Filters.PacketFilter? Filter { get; init; }

    public MirrorDirections Mirror { get; init; }

    /// <summary>The binding's further virtual devices (user datapath): ports 2, 3, ...</summary>
    public IReadOnlyList<VirtualDevice> Extra { get; init; } = [];

    /// <summary>The filter as a test to emit into a tc program, or null.</summary>
    public Bpf.BpfTest? TcTest => Filter is { } f ? (asm, yes, no) => f.Emit(asm, Filters.FilterContext.Tc, yes, no) : null;

    /// <summary>The filter as a test to emit into a socket filter, or null.</summary>
    public Bpf.BpfTest? SocketTest => Filter is { } f ? (asm, yes, no) => f.Emit(asm, Filters.FilterContext.Socket, yes, no) : null;
}
