// CONTRACT STUB: the Netlink helper replaces the bodies; callers rely on these signatures.
using System.Net;

namespace Virtnet.Netlink;

/// <summary>A link as rtnetlink reports it (RTM_NEWLINK), decoded.</summary>
public sealed record LinkInfo
{
    public required int Index { get; init; }
    public required string Name { get; init; }
    /// <summary>IFF_* flags from ifinfomsg.ifi_flags (IFF_UP 0x1, IFF_LOOPBACK 0x8, IFF_PROMISC 0x100, IFF_LOWER_UP 0x10000).</summary>
    public required uint Flags { get; init; }
    public required int Mtu { get; init; }
    /// <summary>IFLA_ADDRESS (6 bytes for Ethernet), empty if absent.</summary>
    public required byte[] Mac { get; init; }
    /// <summary>IFLA_LINKINFO/IFLA_INFO_KIND ("veth", "tun", "macvlan"), null for none.</summary>
    public string? Kind { get; init; }
    /// <summary>IFLA_IFALIAS, null for none.</summary>
    public string? Alias { get; init; }
    /// <summary>ifinfomsg.ifi_type (ARPHRD_ETHER 1, ARPHRD_LOOPBACK 772).</summary>
    public ushort Type { get; init; }
    /// <summary>IFLA_CARRIER when present, else IFF_LOWER_UP.</summary>
    public bool Carrier { get; init; }
    public bool IsUp => (Flags & 0x1) != 0;
    public bool IsLoopback => (Flags & 0x8) != 0;
    /// <summary>IFLA_STATS64, null when the kernel did not send it.</summary>
    public LinkStats? Stats { get; init; }
    /// <summary>True when this came from an RTM_DELLINK notification.</summary>
    public bool Deleted { get; init; }
}

public sealed record LinkStats(ulong RxPackets, ulong TxPackets, ulong RxBytes, ulong TxBytes, ulong RxDropped, ulong TxDropped);

public sealed record NeighborInfo(int Index, IPAddress Address, byte[] Mac, ushort State);

/// <summary>
/// An rtnetlink socket (NETLINK_ROUTE) in the network namespace of the thread that opened it.
/// Each operation is named after the ip(8) command it equals. Errors throw VirtnetException with the
/// errno and the kernel's extended-ack text.
/// </summary>
public sealed class RtNetlink : IDisposable
{
    public static RtNetlink Open() => throw new NotImplementedException();

    /// <summary>ip link show NAME. Throws VirtnetException(ENODEV) "NAME: no such device".</summary>
    public LinkInfo GetLink(string name) => throw new NotImplementedException();

    public LinkInfo? TryGetLink(string name) => throw new NotImplementedException();

    public LinkInfo GetLink(int ifindex) => throw new NotImplementedException();

    public LinkInfo? TryGetLink(int ifindex) => throw new NotImplementedException();

    /// <summary>ip link show (dump).</summary>
    public IReadOnlyList<LinkInfo> GetLinks() => throw new NotImplementedException();

    /// <summary>ip link set dev X up|down.</summary>
    public void SetUp(int ifindex, bool up) => throw new NotImplementedException();

    /// <summary>ip link set dev X mtu N.</summary>
    public void SetMtu(int ifindex, int mtu) => throw new NotImplementedException();

    /// <summary>ip link set dev X address MAC.</summary>
    public void SetMac(int ifindex, ReadOnlySpan<byte> mac) => throw new NotImplementedException();

    /// <summary>ip link set dev X alias TEXT.</summary>
    public void SetAlias(int ifindex, string alias) => throw new NotImplementedException();

    /// <summary>ip link set dev X carrier on|off (IFLA_CARRIER; works on veth and tun).</summary>
    public void SetCarrier(int ifindex, bool on) => throw new NotImplementedException();

    /// <summary>ip link del dev X.</summary>
    public void DeleteLink(int ifindex) => throw new NotImplementedException();

    /// <summary>ip link add NAME [netns nsfd] type veth peer name PEER [netns peerNsFd]. A null fd means this socket's namespace.</summary>
    public void AddVeth(string name, int? nsFd, string peerName, int? peerNsFd) => throw new NotImplementedException();

    /// <summary>ip addr add ADDR/PREFIX dev X (IPv4 or IPv6; IPv6 with IFA_F_NODAD so it is usable at once).</summary>
    public void AddAddress(int ifindex, IPAddress address, int prefixLength) => throw new NotImplementedException();

    /// <summary>ip neigh show dev X.</summary>
    public IReadOnlyList<NeighborInfo> GetNeighbors(int ifindex) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}

/// <summary>
/// A subscription to RTNLGRP_LINK (ip monitor link). Read() blocks until a notification or until the
/// monitor is woken by Dispose/Wake from another thread, in which case it returns null.
/// </summary>
public sealed class LinkMonitor : IDisposable
{
    public static LinkMonitor Open() => throw new NotImplementedException();

    /// <summary>The next link notification (new or deleted), null on timeout or when woken.</summary>
    public LinkInfo? Read(TimeSpan timeout) => throw new NotImplementedException();

    /// <summary>Makes a blocked Read return null; safe from any thread.</summary>
    public void Wake() => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}
