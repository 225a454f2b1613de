// A binding's virtual device: the port its frames appear on. Two kinds, chosen by the datapath:
//  - a TAP owned by this process (its fds are the device: it goes when the process goes), in the real device's
//    namespace or moved into another one, where its fds keep working;
//  - one end of a veth pair born in another namespace, whose other end (the "peer") stays with the real device
//    where tcx can reach it; a SIGKILL leaves this pair behind (the next binding to the same real device removes it).
// Everything is made and configured here; a binding only says which kind, name, MAC and MTU.
using Virtnet.Namespaces;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet.Devices;

/// <summary>What a datapath needs its virtual device to be.</summary>
/// <param name="IsVethPair">A veth pair (only with the device in another namespace) rather than a TAP.</param>
/// <param name="Queues">A TAP's queue count.</param>
internal readonly record struct VirtualDeviceShape(bool IsVethPair, int Queues)
{
    public static VirtualDeviceShape VethPair => new(true, 0);

    public static VirtualDeviceShape Tap(int queues) => new(false, queues);
}

/// <summary>Where and what a virtual device is to be made.</summary>
/// <param name="Name">Its name in its namespace.</param>
/// <param name="Mac">Its address.</param>
/// <param name="Real">The real device it is bound to (its MTU and carrier are copied).</param>
/// <param name="Alias">Its IFLA_IFALIAS.</param>
/// <param name="Netns">Held open during setup: the namespace to make it in; null for the real device's.</param>
/// <param name="NetnsPath">The path <paramref name="Netns"/> was opened by, to reach it later without holding it.</param>
internal sealed record VirtualDeviceSpec(string Name, byte[] Mac, LinkInfo Real, string Alias, NetNamespace? Netns, string? NetnsPath);

internal abstract class VirtualDevice : IDisposable
{
    // A netlink socket made inside the device's namespace during setup, kept to follow the real device there without
    // setns (which needs CAP_SYS_ADMIN, dropped after setup). It holds the namespace: the binding ends once the
    // namespace's path is gone (Attachment.Run), and closing it lets the namespace go.
    private readonly RtNetlink? _there;

    private protected VirtualDevice(string name, int index, byte[] mac, int maxMtu, NamespaceByPath? ns, NetNamespace? setupNamespace, RtNetlink? there)
    {
        _there = there;
        Name = name;
        Index = index;
        Mac = mac;
        MaxMtu = maxMtu;
        Namespace = ns;
        SetupNamespace = setupNamespace;
    }

    /// <summary>
    /// The device's namespace while the binding is being set up (held by the binding, which releases it after
    /// setup; a program may be attached from inside); null for the real device's namespace.
    /// </summary>
    public NetNamespace? SetupNamespace { get; }

    public string Name { get; }

    /// <summary>Its ifindex, in its own namespace.</summary>
    public int Index { get; }

    public byte[] Mac { get; private set; }

    /// <summary>The largest MTU its driver takes (a TAP: 65521); 0 when the kernel did not say.</summary>
    public int MaxMtu { get; }

    /// <summary>The MTU it can have when the real device's is <paramref name="realMtu"/>: the same, or its driver's maximum.</summary>
    public int MtuFor(int realMtu) => MaxMtu > 0 ? Math.Min(realMtu, MaxMtu) : realMtu;

    /// <summary>The namespace it lives in, or null for the real device's.</summary>
    public NamespaceByPath? Namespace { get; }

    /// <summary>The TAP, for a datapath that moves frames through its fds; null for a veth.</summary>
    public virtual TapDevice? Tap => null;

    /// <summary>The veth end that stays with the real device; null for a TAP.</summary>
    public virtual LinkInfo? Peer => null;

    /// <summary>Makes the device <paramref name="shape"/> asks for, configured (alias, MAC, MTU) but still down.</summary>
    /// <param name="rtnl">A socket in the real device's namespace.</param>
    /// <param name="shape">TAP or veth pair.</param>
    /// <param name="spec">Name, MAC, namespace.</param>
    /// <param name="peerName">The veth pair's end that stays with the real device.</param>
    public static VirtualDevice Create(RtNetlink rtnl, VirtualDeviceShape shape, VirtualDeviceSpec spec, string peerName)
        => shape.IsVethPair ? VethPairDevice.Create(rtnl, spec, peerName) : TapVirtualDevice.Create(rtnl, spec, shape.Queues);

    /// <summary>Sets it up once its datapath is ready, so whatever its stack sends first (DAD, MLD) has a way out.</summary>
    public abstract void BringUp(RtNetlink rtnl, bool carrier);

    /// <summary>Follows the real device's carrier.</summary>
    public abstract void SetCarrier(RtNetlink rtnl, bool on);

    /// <summary>Follows the real device's MTU (<paramref name="from"/> the old value).</summary>
    public abstract void SetMtu(RtNetlink rtnl, int mtu, int from);

    /// <summary>Follows the real device's MAC (macvlan passthru does): the address, where the device lives.</summary>
    public virtual void SetMac(RtNetlink rtnl, byte[] mac)
    {
        RunWhereItLives(rtnl, r => r.SetMac(Index, mac));
        Mac = mac;
    }

    /// <summary>Sets its alias (IFLA_IFALIAS), where the device lives.</summary>
    public void SetAlias(RtNetlink rtnl, string alias) => RunWhereItLives(rtnl, r => r.SetAlias(Index, alias));

    /// <summary>
    /// A link in the real device's namespace changed: a private device of this port (a veth peer) set down by
    /// someone else is set up again. Returns a line to log, or null.
    /// </summary>
    public virtual string? OnLinkChanged(RtNetlink rtnl, LinkInfo link, bool realCarrier) => null;

    /// <summary>Whether the device still exists, seen from the real device's namespace.</summary>
    public abstract bool Exists(RtNetlink rtnl);

    /// <summary>Whether a deletion seen in the real device's namespace is this device's.</summary>
    public abstract bool IsDeletedBy(LinkInfo deleted);

    /// <summary>The device's own counters (null when it is gone).</summary>
    public LinkStats? ReadStats(RtNetlink rtnl) => (_there ?? rtnl).TryGetLink(Index)?.Stats;

    public abstract void Dispose();

    /// <summary>Closes the socket kept in the device's namespace.</summary>
    private protected void CloseThere() => _there?.Dispose();

    /// <summary>The socket kept in the device's namespace (a device in another one only).</summary>
    private protected RtNetlink There => _there ?? throw new InvalidOperationException($"{Name} is in this namespace");

    /// <summary>Sets the MTU where the device lives; a gone device is nothing to follow.</summary>
    private protected void SetOwnMtu(RtNetlink rtnl, int mtu) => RunWhereItLives(rtnl, r => r.SetMtu(Index, mtu));

    /// <summary>Runs a change with a socket where the device lives; a device gone meanwhile is nothing to change.</summary>
    private protected void RunWhereItLives(RtNetlink rtnl, Action<RtNetlink> change)
    {
        if (_there is null)
        {
            change(rtnl);
            return;
        }

        try
        {
            change(_there);
        }
        catch (VirtnetException e) when (e.Errno == Errno.ENODEV)
        {
            // Deleted in its namespace: the binding learns it from its own path (a veth's peer goes too, a TAP's reads fail).
        }
    }

    /// <summary>Opens the socket a device in <paramref name="netns"/> keeps (<see cref="_there"/>): on a thread inside it.</summary>
    private protected static RtNetlink OpenThere(NetNamespace netns) => RtNetlink.OpenIn(netns);

    /// <summary>Alias, MAC and MTU (the real device's, or as close as the driver allows), through a socket where the device lives.</summary>
    private protected static void Configure(RtNetlink where, LinkInfo link, VirtualDeviceSpec spec)
    {
        where.SetAlias(link.Index, spec.Alias);
        where.SetMac(link.Index, spec.Mac);
        where.SetMtu(link.Index, link.MaxMtu > 0 ? Math.Min(spec.Real.Mtu, link.MaxMtu) : spec.Real.Mtu);
    }
}

/// <summary>A TAP owned by this process.</summary>
internal sealed class TapVirtualDevice : VirtualDevice
{
    private readonly TapDevice _tap;

    private TapVirtualDevice(TapDevice tap, LinkInfo link, byte[] mac, NamespaceByPath? ns, NetNamespace? setupNamespace, RtNetlink? there)
        : base(tap.Name, link.Index, mac, link.MaxMtu, ns, setupNamespace, there)
        => _tap = tap;

    public override TapDevice Tap => _tap;

    public static TapVirtualDevice Create(RtNetlink rtnl, VirtualDeviceSpec spec, int queues)
    {
        // For another namespace the TAP is made here under a passing name and moved there under its own in one
        // request: its fds then belong to this namespace and do not keep the other alive.
        string firstName = spec.Netns is null ? spec.Name : $"vnt{Random.Shared.Next():x7}";
        var tap = TapDevice.Create(firstName, queues: queues);
        RtNetlink? there = null;
        try
        {
            tap.EnableOffloads();
            var link = rtnl.GetLink(tap.Name);
            NamespaceByPath? ns = null;
            if (spec.Netns is { } netns)
            {
                rtnl.MoveToNamespace(link.Index, netns.Handle.Fd, spec.Name);
                tap.Renamed(spec.Name);
                ns = NamespaceByPath.Of(spec.NetnsPath!, netns);
                there = OpenThere(netns);
                link = there.GetLink(spec.Name);
                Configure(there, link, spec);
            }
            else
            {
                Configure(rtnl, link, spec);
            }

            tap.SetCarrier(spec.Real.Carrier);
            return new TapVirtualDevice(tap, link, spec.Mac, ns, spec.Netns, there);
        }
        catch
        {
            there?.Dispose();
            tap.Dispose();
            throw;
        }
    }

    public override void BringUp(RtNetlink rtnl, bool carrier)
    {
        if (SetupNamespace is null)
        {
            rtnl.SetUp(Index, true);
        }
        else
        {
            There.SetUp(Index, true);
        }
    }

    public override void SetCarrier(RtNetlink rtnl, bool on) => _tap.SetCarrier(on);

    public override void SetMtu(RtNetlink rtnl, int mtu, int from) => SetOwnMtu(rtnl, mtu);

    // In another namespace its deletion is not seen from here: the forwarders' reads (EBADFD) tell instead.
    public override bool Exists(RtNetlink rtnl) => Namespace is not null || rtnl.TryGetLink(Index) is not null;

    public override bool IsDeletedBy(LinkInfo deleted) => Namespace is null && deleted.Deleted && deleted.Index == Index;

    public override void Dispose()
    {
        CloseThere();
        _tap.Dispose();
    }
}

/// <summary>One end of a veth pair in another namespace; the other end, the peer, stays with the real device.</summary>
internal sealed class VethPairDevice : VirtualDevice
{
    /// <summary>The alias of a peer: what marks a pair a killed binding left behind as virtnet's.</summary>
    public const string PeerAliasPrefix = "virtnet: peer of ";

    private readonly RtNetlink _rtnl;
    private readonly LinkInfo _peer;

    private VethPairDevice(RtNetlink rtnl, LinkInfo peer, LinkInfo link, VirtualDeviceSpec spec, NetNamespace netns, RtNetlink there)
        : base(spec.Name, link.Index, spec.Mac, link.MaxMtu, NamespaceByPath.Of(spec.NetnsPath!, netns), netns, there)
    {
        _rtnl = rtnl;
        _peer = peer;
    }

    public override LinkInfo Peer => _peer;

    public static VethPairDevice Create(RtNetlink rtnl, VirtualDeviceSpec spec, string peerName)
    {
        var netns = spec.Netns ?? throw new ArgumentException("a veth pair's virtual end lives in another namespace", nameof(spec));
        // Born in its namespace; the peer stays here, where tcx can reach it.
        rtnl.AddVeth(peerName, null, spec.Name, netns.Handle.Fd);
        RtNetlink? there = null;
        try
        {
            var peer = rtnl.GetLink(peerName);
            rtnl.SetAlias(peer.Index, $"{PeerAliasPrefix}{spec.Name} for {spec.Real.Name}");
            // The peer only carries frames; it must not speak (IPv6 would send ND and MLD into the namespace).
            Sysctl.DisableIpv6(peerName);
            rtnl.SetMtu(peer.Index, peer.MaxMtu > 0 ? Math.Min(spec.Real.Mtu, peer.MaxMtu) : spec.Real.Mtu);
            there = OpenThere(netns);
            var link = there.GetLink(spec.Name);
            Configure(there, link, spec);
            return new VethPairDevice(rtnl, peer, link, spec, netns, there);
        }
        catch
        {
            there?.Dispose();
            if (rtnl.TryGetLink(peerName) is { } made)
            {
                rtnl.DeleteLink(made.Index);
            }

            throw;
        }
    }

    /// <summary>A veth has carrier while both ends are up: the peer's state is how it follows the real device's carrier.</summary>
    public override void BringUp(RtNetlink rtnl, bool carrier)
    {
        rtnl.SetUp(_peer.Index, carrier);
        There.SetUp(Index, true);
    }

    public override void SetCarrier(RtNetlink rtnl, bool on) => rtnl.SetUp(_peer.Index, on);

    /// <summary>The peer is down only while the real device has no carrier; set down by anyone else, it goes up again.</summary>
    public override string? OnLinkChanged(RtNetlink rtnl, LinkInfo link, bool realCarrier)
    {
        if (link.Index != _peer.Index || link.Deleted || link.IsUp || !realCarrier)
        {
            return null;
        }

        try
        {
            rtnl.SetUp(_peer.Index, true);
        }
        catch (VirtnetException e) when (e.Errno == Errno.ENODEV)
        {
            // Going down on its way out (the pair is being deleted): the deletion that follows ends the binding.
            return null;
        }

        return $"{_peer.Name} was set down; virtnet's veth peer for {Name} must stay up, so it was set up again";
    }

    public override void SetMtu(RtNetlink rtnl, int mtu, int from)
    {
        // The veth end that frames cross last must take them first: growing, the peer before the virtual device.
        if (mtu > from)
        {
            rtnl.SetMtu(_peer.Index, mtu);
            SetOwnMtu(rtnl, mtu);
        }
        else
        {
            SetOwnMtu(rtnl, mtu);
            rtnl.SetMtu(_peer.Index, mtu);
        }
    }

    public override bool Exists(RtNetlink rtnl) => rtnl.TryGetLink(_peer.Index) is not null;

    // A veth goes as a pair: deleting the virtual device (in its namespace) deletes the peer here.
    public override bool IsDeletedBy(LinkInfo deleted) => deleted.Deleted && deleted.Index == _peer.Index;

    public override void Dispose()
    {
        CloseThere();
        try
        {
            _rtnl.DeleteLink(_peer.Index);
        }
        catch (VirtnetException e) when (e.Errno == Errno.ENODEV)
        {
            // Already gone: someone deleted the pair from either end.
        }
    }
}
