using Virtnet.Datapaths;

namespace Virtnet;

/// <summary>How a binding's virtual device gets its MAC address.</summary>
public enum MacMode
{
    /// <summary>The real device's MAC, like macvlan passthru.</summary>
    Inherit,

    /// <summary>A random locally administered address.</summary>
    Random,

    /// <summary>The address in <see cref="AttachOptions.Mac"/>.</summary>
    Explicit,
}

/// <summary>How a binding shares its real device, with macvlan's meaning of each mode.</summary>
public enum BindingMode
{
    /// <summary>Every frame (of its VLAN, with one), exclusively; the virtual device inherits the real device's MAC by default.</summary>
    Passthru,

    /// <summary>Frames for its MAC, and copies of broadcast and multicast; reaches bridge-mode siblings and the host directly.</summary>
    Bridge,

    /// <summary>Frames for its MAC, and copies of broadcast and multicast; never reaches a sibling, not even through the wire.</summary>
    Private,

    /// <summary>Frames for its MAC, and copies of broadcast and multicast; everything it sends goes out on the wire.</summary>
    Vepa,
}

/// <summary>What to bind: the real device, and the virtual device and datapath to bind it with.</summary>
public sealed record AttachOptions
{
    /// <summary>How long a user-datapath forwarder polls without sleeping after a frame, unless told otherwise.</summary>
    public static readonly TimeSpan DefaultBusyPoll = TimeSpan.FromMicroseconds(200);

    /// <summary>The real device to take over (its frames appear on the virtual device).</summary>
    public required string RealDevice { get; init; }

    /// <summary>The virtual device's name, 1-15 bytes.</summary>
    public string Name { get; init; } = "virtnet0";

    /// <summary>Which datapath moves the frames.</summary>
    public DatapathKind Datapath { get; init; } = DatapathKind.Kernel;

    /// <summary>How the binding shares the real device.</summary>
    public BindingMode Mode { get; init; } = BindingMode.Passthru;

    /// <summary>The VLAN the binding takes (its frames arrive untagged, what it sends leaves tagged), 1-4094; 0: untagged.</summary>
    public int Vlan { get; init; }

    /// <summary>How the virtual device gets its MAC; null: inherited in passthru mode, random in the others.</summary>
    public MacMode? MacMode { get; init; }

    /// <summary>With <see cref="MacMode.Explicit"/>: the 6-byte address.</summary>
    public byte[]? Mac { get; init; }

    /// <summary>User datapath only: the handlers every frame passes through, in order, before the default path.</summary>
    public IReadOnlyList<IFrameHandler> Handlers { get; init; } = [];

    /// <summary>User datapath only: how long the forwarder polls without sleeping after a frame (0: sleep at once); null: <see cref="DefaultBusyPoll"/>.</summary>
    public TimeSpan? BusyPoll { get; init; }

    /// <summary>
    /// The network namespace the virtual device is made in, by path (/run/netns/NAME, /proc/PID/ns/net), like
    /// <c>ip link add ... netns NS</c>; null: the real device's (the caller's) namespace.
    /// </summary>
    public string? Netns { get; init; }

    /// <summary>Only the frames this filter matches are the binding's; the rest stay with the real device's stack. Null: every frame.</summary>
    public Filters.PacketFilter? Filter { get; init; }

    /// <summary>Not None: a mirror, which receives copies of the real device's frames in these directions and takes nothing.</summary>
    public MirrorDirections Mirror { get; init; }

    /// <summary>
    /// User datapath only: further virtual devices of the binding, by name, which are its ports 2, 3, ... (port 1 is
    /// <see cref="Name"/>). Each is a TAP made like the first (its namespace, the real device's MTU and carrier) with a
    /// random MAC. A frame reaches one only where a handler sends it (<see cref="Frame.Target"/>,
    /// <see cref="Frame.Emit"/>, <see cref="Frame.EmitCopy"/>); what one sends is egress, like the first device's,
    /// and goes out through the real device unless a handler decides otherwise (<see cref="Frame.Source"/> tells
    /// which device sent it).
    /// </summary>
    public IReadOnlyList<string> ExtraDevices { get; init; } = [];
}
