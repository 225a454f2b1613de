using Virtnet.Datapaths;
using Virtnet.Datapaths.Kernel;
using Virtnet.Datapaths.User;
using Virtnet.Devices;

namespace Virtnet;

/// <summary>
/// The one place that knows each datapath's needs: which virtual device it runs on, and how it is made. A binding
/// asks, makes that device, and hands it over; it never branches on the kind itself.
/// </summary>
internal static class DatapathFactory
{
    /// <summary>The virtual device <paramref name="kind"/> needs, with the device in the real device's namespace or another.</summary>
    public static VirtualDeviceShape ShapeFor(DatapathKind kind, bool otherNamespace) => kind switch
    {
        // Kernel: a veth pair reached by bpf_redirect_peer when the device lives elsewhere, a TAP (one queue) here.
        DatapathKind.Kernel => otherNamespace ? VirtualDeviceShape.VethPair : VirtualDeviceShape.Tap(queues: 1),
        // User: a TAP with one queue per forwarder, wherever it lives (its fds keep working when it is moved).
        _ => VirtualDeviceShape.Tap(UserDatapath.QueuesFor()),
    };

    /// <summary>The private devices a binding in switch slot <paramref name="slot"/> of a shared real device may make, by name.</summary>
    public static string[] SlotDeviceNames(int realIndex, int slot)
        => [Attachment.PeerNameFor(realIndex, slot), UserDatapath.PumpNameFor(realIndex, slot), UserDatapath.RingNameFor(realIndex, slot)];

    /// <summary>Makes and starts the datapath on the device <see cref="ShapeFor"/> asked for.</summary>
    public static IDatapath Create(DatapathKind kind, DatapathSetup setup) => (kind, setup.Mirror != MirrorDirections.None) switch
    {
        (DatapathKind.Kernel, true) => MirrorDatapath.Create(setup),
        (DatapathKind.Kernel, false) => KernelDatapath.Create(setup),
        (_, true) => UserDatapath.CreateMirror(setup),
        _ => UserDatapath.Create(setup),
    };
}
