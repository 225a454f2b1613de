using Virtnet.Datapaths.Kernel;
using Virtnet.Datapaths.User;
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
public readonly record struct DatapathCounters(DirectionCounters Ingress, DirectionCounters Egress);

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

    DatapathCounters ReadCounters();

    /// <summary>Follows an MTU change of the real device (the user datapath resizes its private device too).</summary>
    void OnMtuChanged(int mtu);

    /// <summary>The worker failed (e.g. the TAP was deleted under us); null while healthy.</summary>
    string? Fault { get; }
}

/// <summary>What a binding hands its datapath: the real device, the virtual device made for it, and the options.</summary>
internal sealed record DatapathSetup(RtNetlink Rtnl, LinkInfo Real, VirtualDevice Virtual, IReadOnlyList<IFrameHandler> Handlers, TimeSpan BusyPoll);

/// <summary>
/// The one place that knows each datapath's needs: which virtual device it runs on, and how it is made. A binding
/// asks, makes that device, and hands it over; it never branches on the kind itself.
/// </summary>
internal static class Datapath
{
    /// <summary>The virtual device <paramref name="kind"/> needs, with the device in the real device's namespace or another.</summary>
    public static VirtualDeviceShape ShapeFor(DatapathKind kind, bool otherNamespace) => kind switch
    {
        // Kernel: a veth pair reached by bpf_redirect_peer when the device lives elsewhere, a TAP (one queue) here.
        DatapathKind.Kernel => otherNamespace ? VirtualDeviceShape.VethPair : VirtualDeviceShape.Tap(queues: 1),
        // User: a TAP with one queue per forwarder, wherever it lives (its fds keep working when it is moved).
        _ => VirtualDeviceShape.Tap(UserDatapath.QueuesFor()),
    };

    /// <summary>Makes and starts the datapath on the device <see cref="ShapeFor"/> asked for.</summary>
    public static IDatapath Create(DatapathKind kind, DatapathSetup setup) => kind switch
    {
        DatapathKind.Kernel => KernelDatapath.Create(setup),
        _ => UserDatapath.Create(setup),
    };
}
