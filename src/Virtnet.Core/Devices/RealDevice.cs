// The real device of a binding, as last seen: kept current from link notifications, so a binding knows what to
// follow (MTU, carrier) and when to end (the device is gone). No ownership: virtnet never changes the real device
// itself; what it puts on it (tcx links, rings, a secondary MAC) belongs to the datapath and the binding.
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet.Devices;

/// <summary>What a link notification changed on the real device.</summary>
[Flags]
internal enum RealDeviceChange
{
    None = 0,
    Mtu = 1,
    Carrier = 2,
    Gone = 4,
    Mac = 8,
    Name = 16,
}

internal sealed class RealDevice
{
    private const ushort ArphrdEther = 1;

    private RealDevice(LinkInfo link) => Link = link;

    /// <summary>The last state seen.</summary>
    public LinkInfo Link { get; private set; }

    public string Name => Link.Name;

    public int Index => Link.Index;

    public byte[] Mac => Link.Mac;

    public int Mtu => Link.Mtu;

    public bool Carrier => Link.Carrier;

    /// <summary>The Ethernet device <paramref name="name"/>, refused when it cannot carry a binding.</summary>
    /// <param name="rtnl">A socket in the device's namespace.</param>
    /// <param name="name">The device.</param>
    /// <param name="virtnetAlias">The alias prefix of virtnet's own devices, which are never real devices.</param>
    /// <param name="allowPort">The binding leaves the frames it does not take to the device's stack (a filter, a
    /// mirror), so the device may be a bridge or bond port.</param>
    public static RealDevice Open(RtNetlink rtnl, string name, string virtnetAlias, bool allowPort = false)
    {
        var real = rtnl.GetLink(name);
        if (real.IsLoopback)
        {
            throw new VirtnetException(FailureKind.Unsuitable, "attach", real.Name, $"{real.Name}: is the loopback device; attach to an Ethernet device", Errno.EINVAL);
        }

        if (real.Alias?.StartsWith(virtnetAlias, StringComparison.Ordinal) == true)
        {
            throw new VirtnetException(FailureKind.Unsuitable, "attach", real.Name, $"{real.Name}: is a virtnet device; attach to the real device instead", Errno.EINVAL);
        }

        if (real.Type != ArphrdEther)
        {
            throw new VirtnetException(FailureKind.Unsuitable, "attach", real.Name, $"{real.Name}: is not an Ethernet device; virtnet attaches to Ethernet devices", Errno.EINVAL);
        }

        if (real.Master != 0 && !allowPort)
        {
            // A binding takes every frame the device receives: a bridge (or bond) port would silently stop
            // carrying its part of the bridge's traffic.
            string master = rtnl.TryGetLink(real.Master)?.Name ?? $"ifindex {real.Master}";
            string kind = real.PortKind ?? "master device";
            throw new VirtnetException(FailureKind.Unsuitable, "attach", real.Name,
                $"{real.Name}: is a port of {kind} {master}, and taking its frames would cut it out of {master}; attach to {master} instead, take only part of its frames with --filter, or release the port first (ip link set {real.Name} nomaster)",
                Errno.EBUSY);
        }

        return new RealDevice(real);
    }

    /// <summary>
    /// Takes a notification (or a fresh query: null means the device is gone) and says what changed since the last
    /// one. Notifications about other devices change nothing.
    /// </summary>
    public RealDeviceChange Update(LinkInfo? now)
    {
        if (now is null || (now.Index == Index && now.Deleted))
        {
            return RealDeviceChange.Gone;
        }

        if (now.Index != Index)
        {
            return RealDeviceChange.None;
        }

        var change = RealDeviceChange.None;
        if (now.Mtu != Link.Mtu)
        {
            change |= RealDeviceChange.Mtu;
        }

        if (now.Carrier != Link.Carrier)
        {
            change |= RealDeviceChange.Carrier;
        }

        if (now.Mac.Length > 0 && !now.Mac.AsSpan().SequenceEqual(Link.Mac))
        {
            change |= RealDeviceChange.Mac;
        }

        if (now.Name != Link.Name)
        {
            change |= RealDeviceChange.Name;
        }

        Link = now;
        return change;
    }
}
