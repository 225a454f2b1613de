// Design: one NETLINK_ROUTE socket per RtNetlink, in the network namespace of the thread that opened it.
// Every request is built by RtnlCodec into one reusable send buffer, sent with NLM_F_REQUEST|NLM_F_ACK (or
// NLM_F_DUMP), and answered by reading until NLMSG_ERROR (the ack: error 0) or NLMSG_DONE with our sequence
// number. The kernel runs rtnetlink requests synchronously inside sendmsg(), so the answer is queued by the
// time send returns; the poll timeout only guards against the impossible.
using System.Net;
using System.Net.Sockets;
using Virtnet.Native;

namespace Virtnet.Netlink;

/// <summary>A link as rtnetlink reports it (RTM_NEWLINK), decoded.</summary>
internal sealed record LinkInfo
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
    /// <summary>IFF_LOWER_UP (0x10000): the driver reports carrier.</summary>
    public bool IsLowerUp => (Flags & 0x10000) != 0;
    /// <summary>IFLA_MASTER: the ifindex of the bridge, bond or other device this one is a port of; 0 for none.</summary>
    public int Master { get; init; }
    /// <summary>IFLA_LINKINFO/IFLA_INFO_SLAVE_KIND: what kind of port it is ("bridge", "bond"), null for none.</summary>
    public string? PortKind { get; init; }
    /// <summary>IFLA_MAX_MTU: the largest MTU the driver takes (a TAP: 65521); 0 when the kernel did not say.</summary>
    public int MaxMtu { get; init; }
}

/// <summary>The first counters of struct rtnl_link_stats64 (IFLA_STATS64).</summary>
internal sealed record LinkStats(ulong RxPackets, ulong TxPackets, ulong RxBytes, ulong TxBytes, ulong RxDropped, ulong TxDropped)
{
    public ulong RxErrors { get; init; }

    public ulong TxErrors { get; init; }
}

/// <summary>A neighbour entry (RTM_NEWNEIGH): State is ndm_state (NUD_REACHABLE 0x2, NUD_STALE 0x4, NUD_PERMANENT 0x80, ...); Mac is empty while unresolved.</summary>
internal sealed record NeighborInfo(int Index, IPAddress Address, byte[] Mac, ushort State);

/// <summary>
/// An rtnetlink socket (NETLINK_ROUTE) in the network namespace of the thread that opened it.
/// Each operation is named after the ip(8) command it equals. Errors throw VirtnetException with the
/// errno and the kernel's extended-ack text. Operations are serialized; the object may be shared by threads.
/// </summary>
internal sealed class RtNetlink : IDisposable
{
    private const int SendBufferSize = 4096;
    private const int ReplyTimeoutMs = 30_000;
    private const int DumpRetries = 5;

    private readonly NetlinkSocket _socket;
    private readonly byte[] _tx = new byte[SendBufferSize];
    private readonly Lock _gate = new();
    private uint _seq;

    private RtNetlink(NetlinkSocket socket)
    {
        _socket = socket;
        _seq = (uint)Environment.TickCount;
    }

    /// <summary>Opens an rtnetlink socket in the calling thread's network namespace.</summary>
    public static RtNetlink Open() => new(NetlinkSocket.Open(groups: 0, nonBlocking: false));

    /// <summary>
    /// Opens an rtnetlink socket inside <paramref name="netns"/> (by this process, or by the privilege broker when
    /// this one may not enter it): its requests name that namespace's devices, from any thread.
    /// </summary>
    public static RtNetlink OpenIn(Namespaces.NetNamespace netns, Namespaces.IPrivilegedOperations? via = null)
        => new(NetlinkSocket.Adopt((via ?? Namespaces.Privileged.Operations).SocketIn(netns, Nl.AF_NETLINK, Libc.SOCK_RAW, Nl.NETLINK_ROUTE, "socket(AF_NETLINK)"), groups: 0));

    /// <summary>ip link show NAME. Throws VirtnetException(ENODEV) "NAME: no such device".</summary>
    /// <remarks>Equivalent to: <c>ip link show dev NAME</c> (RTM_GETLINK with IFLA_IFNAME; altnames match too).</remarks>
    public LinkInfo GetLink(string name)
        => TryGetLink(name) ?? throw new VirtnetException(FailureKind.NoSuchDevice, "RTM_GETLINK", name, $"{name}: no such device", Errno.ENODEV);

    /// <summary>Equivalent to: <c>ip link show dev NAME</c>, null when there is no such device.</summary>
    public LinkInfo? TryGetLink(string name)
    {
        ArgumentNullException.ThrowIfNull(name);

        // A name the kernel could never hold cannot exist; asking would fail its policy with EINVAL instead.
        if (name.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(name) >= Tun.IFNAMSIZ)
        {
            return null;
        }

        return QueryLink(new LinkRequest { Name = name }, name);
    }

    /// <summary>Equivalent to: <c>ip link show</c> for one ifindex. Throws VirtnetException(ENODEV) "ifindex N: no such device".</summary>
    public LinkInfo GetLink(int ifindex)
        => TryGetLink(ifindex) ?? throw new VirtnetException(FailureKind.NoSuchDevice, "RTM_GETLINK", $"ifindex {ifindex}", $"ifindex {ifindex}: no such device", Errno.ENODEV);

    /// <summary>Equivalent to: <c>ip link show</c> for one ifindex, null when there is no such device.</summary>
    public LinkInfo? TryGetLink(int ifindex)
        => ifindex <= 0 ? null : QueryLink(new LinkRequest { Index = ifindex }, $"ifindex {ifindex}");

    /// <summary>ip link show (dump).</summary>
    /// <remarks>Equivalent to: <c>ip -s link show</c> (RTM_GETLINK, NLM_F_DUMP).</remarks>
    public IReadOnlyList<LinkInfo> GetLinks()
    {
        var links = new List<LinkInfo>();
        lock (_gate)
        {
            for (int attempt = 0; ; attempt++)
            {
                links.Clear();
                var w = new NetlinkWriter(_tx);
                uint seq = NextSeq();
                RtnlCodec.WriteLink(ref w, Rtnl.RTM_GETLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_DUMP, seq, new LinkRequest());
                var result = Transact(w.EndMessage(), seq, links, static (m, list) =>
                {
                    if (m.Type == Rtnl.RTM_NEWLINK)
                    {
                        list.Add(RtnlCodec.DecodeLink(m));
                    }
                });
                ThrowIfFailed(result, "RTM_GETLINK", null);
                if (!result.Interrupted || attempt == DumpRetries)
                {
                    return links;
                }
            }
        }
    }

    /// <summary>ip link set dev X up|down.</summary>
    /// <remarks>Equivalent to: <c>ip link set dev X up</c> / <c>down</c> (ifi_flags IFF_UP under ifi_change IFF_UP).</remarks>
    public void SetUp(int ifindex, bool up)
        => ModifyLink(Rtnl.RTM_NEWLINK, 0, new LinkRequest { Index = ifindex, Flags = up ? Ifla.IFF_UP : 0, Change = Ifla.IFF_UP });

    /// <summary>ip link set dev X mtu N.</summary>
    /// <remarks>Equivalent to: <c>ip link set dev X mtu N</c> (IFLA_MTU). Outside [min_mtu, max_mtu] the kernel answers EINVAL
    /// "mtu greater than device maximum" / "mtu less than device minimum".</remarks>
    public void SetMtu(int ifindex, int mtu)
        => ModifyLink(Rtnl.RTM_NEWLINK, 0, new LinkRequest { Index = ifindex, Mtu = mtu });

    /// <summary>ip link set dev X address MAC.</summary>
    /// <remarks>Equivalent to: <c>ip link set dev X address MAC</c> (IFLA_ADDRESS).</remarks>
    public void SetMac(int ifindex, ReadOnlySpan<byte> mac)
        => ModifyLink(Rtnl.RTM_NEWLINK, 0, new LinkRequest { Index = ifindex, Mac = mac.ToArray() });

    /// <summary>ip link set dev X alias TEXT.</summary>
    /// <remarks>Equivalent to: <c>ip link set dev X alias TEXT</c> (IFLA_IFALIAS); an empty TEXT removes the alias. At most 255 bytes.</remarks>
    public void SetAlias(int ifindex, string alias)
    {
        ArgumentNullException.ThrowIfNull(alias);
        ModifyLink(Rtnl.RTM_NEWLINK, 0, new LinkRequest { Index = ifindex, Alias = alias });
    }

    /// <summary>ip link set dev X netns NSFD [name NEW]: moves the device into the namespace the fd refers to.</summary>
    /// <remarks>Equivalent to: <c>ip link set dev X netns NS</c> (IFLA_NET_NS_FD); with <paramref name="newName"/>
    /// (IFLA_IFNAME in the same request) it arrives under that name, checked against the target namespace. Its
    /// ifindex may change.</remarks>
    public void MoveToNamespace(int ifindex, int nsFd, string? newName = null)
        => ModifyLink(Rtnl.RTM_NEWLINK, 0, new LinkRequest { Index = ifindex, NsFd = nsFd, Name = newName }, device: newName);

    /// <summary>ip link set dev X carrier on|off (IFLA_CARRIER).</summary>
    /// <remarks>Equivalent to: <c>ip link set dev X carrier on|off</c>. Needs the driver's ndo_change_carrier: tun/tap and dummy
    /// have it; veth does not and answers EOPNOTSUPP.</remarks>
    public void SetCarrier(int ifindex, bool on)
        => ModifyLink(Rtnl.RTM_NEWLINK, 0, new LinkRequest { Index = ifindex, Carrier = on });

    /// <summary>ip link del dev X.</summary>
    /// <remarks>Equivalent to: <c>ip link del dev X</c> (RTM_DELLINK on the ifindex); deleting one end of a veth deletes both.</remarks>
    public void DeleteLink(int ifindex)
        => ModifyLink(Rtnl.RTM_DELLINK, 0, new LinkRequest { Index = ifindex });

    /// <summary>ip link add NAME [netns nsfd] type veth peer name PEER [netns peerNsFd]. A null fd means this socket's namespace.</summary>
    /// <remarks>Equivalent to: <c>ip link add NAME netns NS1 type veth peer name PEER netns NS2</c>: both ends are born in
    /// their namespaces (IFLA_NET_NS_FD on the link and inside VETH_INFO_PEER), never moved there afterwards.
    /// The fds are only read during the call.</remarks>
    public void AddVeth(string name, int? nsFd, string peerName, int? peerNsFd)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(peerName);
        ModifyLink(
            Rtnl.RTM_NEWLINK,
            Nl.NLM_F_CREATE | Nl.NLM_F_EXCL,
            new LinkRequest { Name = name, NsFd = nsFd, Kind = "veth", PeerName = peerName, PeerNsFd = peerNsFd },
            device: name);
    }

    /// <summary>ip addr add ADDR/PREFIX dev X (IPv4 or IPv6; IPv6 with IFA_F_NODAD so it is usable at once).</summary>
    /// <remarks>Equivalent to: <c>ip addr add ADDR/PREFIX dev X</c> (IPv6: <c>... nodad</c>). An existing address fails with EEXIST.</remarks>
    public void AddAddress(int ifindex, IPAddress address, int prefixLength)
    {
        ArgumentNullException.ThrowIfNull(address);
        int max = address.AddressFamily switch
        {
            AddressFamily.InterNetwork => 32,
            AddressFamily.InterNetworkV6 => 128,
            _ => -1,
        };
        if (max < 0 || prefixLength < 0 || prefixLength > max)
        {
            throw new VirtnetException(FailureKind.Malformed, "RTM_NEWADDR", DeviceName(ifindex), $"{address}/{prefixLength}: not an IPv4 or IPv6 prefix", Errno.EINVAL);
        }

        NetlinkResult result;
        lock (_gate)
        {
            var w = new NetlinkWriter(_tx);
            uint seq = NextSeq();
            RtnlCodec.WriteAddress(ref w, Rtnl.RTM_NEWADDR, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL, seq, ifindex, address, prefixLength);
            result = Transact<object?>(w.EndMessage(), seq, null, null);
        }

        if (result.Errno != Errno.OK)
        {
            ThrowIfFailed(result, "RTM_NEWADDR", DeviceName(ifindex));
        }
    }

    /// <summary>tc qdisc replace dev X root KIND, for a qdisc that takes no options ("noqueue", "pfifo_fast").</summary>
    /// <remarks>Equivalent to: <c>tc qdisc replace dev X root noqueue</c> (RTM_NEWQDISC, NLM_F_CREATE|NLM_F_REPLACE, parent TC_H_ROOT).</remarks>
    public void SetRootQdisc(int ifindex, string kind)
    {
        NetlinkResult result;
        lock (_gate)
        {
            var w = new NetlinkWriter(_tx);
            uint seq = NextSeq();
            w.BeginMessage(Rtnl.RTM_NEWQDISC, (ushort)(Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | Nl.NLM_F_CREATE | Nl.NLM_F_REPLACE), seq);
            w.WriteStruct(new TcMsg { Family = 0, Ifindex = ifindex, Handle = 0, Parent = TcMsg.TC_H_ROOT, Info = 0 });
            w.PutString(TcMsg.TCA_KIND, kind);
            result = Transact<object?>(w.EndMessage(), seq, null, null);
        }

        if (result.Errno != Errno.OK)
        {
            ThrowIfFailed(result, "RTM_NEWQDISC", DeviceName(ifindex));
        }
    }

    /// <summary>ip neigh show dev X.</summary>
    /// <remarks>Equivalent to: <c>ip neigh show dev X</c> (RTM_GETNEIGH dump, IPv4 and IPv6, filtered to the ifindex).</remarks>
    public IReadOnlyList<NeighborInfo> GetNeighbors(int ifindex)
    {
        var neighbors = new List<NeighborInfo>();
        NetlinkResult result;
        lock (_gate)
        {
            for (int attempt = 0; ; attempt++)
            {
                neighbors.Clear();
                var w = new NetlinkWriter(_tx);
                uint seq = NextSeq();
                RtnlCodec.WriteNeighborDump(ref w, seq, ifindex);
                result = Transact(w.EndMessage(), seq, (neighbors, ifindex), static (m, s) =>
                {
                    if (m.Type == Rtnl.RTM_NEWNEIGH && RtnlCodec.DecodeNeighbor(m) is { } n && n.Index == s.ifindex)
                    {
                        s.neighbors.Add(n);
                    }
                });
                if (result.Errno != Errno.OK || !result.Interrupted || attempt == DumpRetries)
                {
                    break;
                }
            }
        }

        if (result.Errno != Errno.OK)
        {
            ThrowIfFailed(result, "RTM_GETNEIGH", DeviceName(ifindex));
        }

        return neighbors;
    }

    /// <summary>Closes the socket, after an operation running on another thread has finished.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _socket.Dispose();
        }
    }

    /// <summary>
    /// The one link modifier (vishvananda/netlink's linkModify): RTM_NEWLINK/RTM_SETLINK/RTM_DELLINK requests differ only
    /// in type and flags; every field set in <paramref name="request"/> becomes an attribute.
    /// </summary>
    private void ModifyLink(ushort type, ushort flags, LinkRequest request, string? device = null)
    {
        NetlinkResult result;
        lock (_gate)
        {
            var w = new NetlinkWriter(_tx);
            uint seq = NextSeq();
            RtnlCodec.WriteLink(ref w, type, (ushort)(Nl.NLM_F_REQUEST | Nl.NLM_F_ACK | flags), seq, request);
            result = Transact<object?>(w.EndMessage(), seq, null, null);
        }

        if (result.Errno != Errno.OK)
        {
            ThrowIfFailed(result, type switch
            {
                Rtnl.RTM_DELLINK => "RTM_DELLINK",
                Rtnl.RTM_SETLINK => "RTM_SETLINK",
                _ => "RTM_NEWLINK",
            }, device ?? DeviceName(request.Index));
        }
    }

    private LinkInfo? QueryLink(LinkRequest request, string device)
    {
        LinkInfo? link = null;
        NetlinkResult result;
        lock (_gate)
        {
            var w = new NetlinkWriter(_tx);
            uint seq = NextSeq();
            RtnlCodec.WriteLink(ref w, Rtnl.RTM_GETLINK, Nl.NLM_F_REQUEST | Nl.NLM_F_ACK, seq, request);
            var box = new StrongBox<LinkInfo?>();
            result = Transact(w.EndMessage(), seq, box, static (m, b) =>
            {
                if (m.Type == Rtnl.RTM_NEWLINK)
                {
                    b.Value = RtnlCodec.DecodeLink(m);
                }
            });
            link = box.Value;
        }

        if (result.Errno == Errno.ENODEV)
        {
            return null;
        }

        ThrowIfFailed(result, "RTM_GETLINK", device);
        return link;
    }

    /// <summary>The device's name for an error message, or "ifindex N" when it cannot be found.</summary>
    private string DeviceName(int ifindex)
    {
        if (ifindex <= 0)
        {
            return $"ifindex {ifindex}";
        }

        try
        {
            return TryGetLink(ifindex)?.Name ?? $"ifindex {ifindex}";
        }
        catch (VirtnetException)
        {
            return $"ifindex {ifindex}";
        }
    }

    private uint NextSeq()
    {
        _seq++;
        if (_seq == 0)
        {
            _seq = 1;
        }

        return _seq;
    }

    private static void ThrowIfFailed(NetlinkResult result, string operation, string? device)
    {
        if (result.Errno != Errno.OK)
        {
            VirtnetException.Throw(operation, device, result.Errno, result.ExtAck);
        }
    }

    /// <summary>
    /// Sends <paramref name="request"/> and reads answers with its sequence number until the ack/error (requests) or
    /// NLMSG_DONE (dumps), handing every other message to <paramref name="onMessage"/>. Caller holds the lock.
    /// </summary>
    private NetlinkResult Transact<TState>(ReadOnlySpan<byte> request, uint seq, TState state, MessageHandler<TState>? onMessage)
    {
        ObjectDisposedException.ThrowIf(_socket.Handle.IsClosed, this);
        Errno sent = _socket.Send(request);
        if (sent != Errno.OK)
        {
            return new NetlinkResult(sent, null, false);
        }

        bool interrupted = false;
        while (true)
        {
            if (_socket.Wait(ReplyTimeoutMs) == 0)
            {
                return new NetlinkResult(Errno.ETIMEDOUT, "no answer from the kernel", interrupted);
            }

            Errno received = _socket.Receive();
            if (received == Errno.EAGAIN)
            {
                continue;
            }

            if (received != Errno.OK)
            {
                return new NetlinkResult(received, null, interrupted);
            }

            var messages = new NetlinkMessageReader(_socket.Received);
            while (messages.TryRead(out var m))
            {
                if (m.Seq != seq)
                {
                    // A stale answer to an earlier request that gave up; not ours.
                    continue;
                }

                if ((m.Flags & Nl.NLM_F_DUMP_INTR) != 0)
                {
                    interrupted = true;
                }

                switch (m.Type)
                {
                    case Nl.NLMSG_ERROR:
                        var error = RtnlCodec.ParseError(m);
                        return new NetlinkResult(error.Error == 0 ? Errno.OK : (Errno)(-error.Error), error.Message, interrupted);
                    case Nl.NLMSG_DONE:
                        var done = RtnlCodec.ParseDone(m);
                        return new NetlinkResult(done.Error >= 0 ? Errno.OK : (Errno)(-done.Error), done.Message, interrupted);
                    case Nl.NLMSG_NOOP:
                    case Nl.NLMSG_OVERRUN:
                        continue;
                    default:
                        onMessage?.Invoke(m, state);
                        break;
                }
            }
        }
    }

    private sealed class StrongBox<T>
    {
        public T? Value;
    }
}

/// <summary>The outcome of one request: the errno (OK on ack), the kernel's extack text, and whether a dump was interrupted.</summary>
internal readonly record struct NetlinkResult(Errno Errno, string? ExtAck, bool Interrupted);

internal delegate void MessageHandler<TState>(NetlinkMessage message, TState state);
