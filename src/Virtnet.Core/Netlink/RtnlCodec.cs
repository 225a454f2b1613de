// Encoders and decoders of the rtnetlink messages RtNetlink and LinkMonitor use. Pure functions over
// NetlinkWriter / NetlinkMessage, so the codec tests need no socket and no root.
using System.Net;
using System.Net.Sockets;
using Virtnet.Native;

namespace Virtnet.Netlink;

/// <summary>
/// What one link message says, vishvananda/netlink style: every field that is set becomes an attribute.
/// Index 0 with a Name addresses the link by name (or names a new one).
/// </summary>
internal sealed record LinkRequest
{
    public int Index { get; init; }

    public uint Flags { get; init; }

    public uint Change { get; init; }

    public string? Name { get; init; }

    public int? Mtu { get; init; }

    public byte[]? Mac { get; init; }

    public string? Alias { get; init; }

    public bool? Carrier { get; init; }

    public int? NsFd { get; init; }

    public string? Kind { get; init; }

    public string? PeerName { get; init; }

    public int? PeerNsFd { get; init; }
}

/// <summary>The result of an NLMSG_ERROR message: 0 for an ack, else a negative errno, plus the extack text.</summary>
internal readonly record struct NetlinkError(int Error, string? Message, uint Offset);

internal static class RtnlCodec
{
    /// <summary>The one link encoder: RTM_NEWLINK / RTM_SETLINK / RTM_DELLINK / RTM_GETLINK differ only in type and flags.</summary>
    public static void WriteLink(ref NetlinkWriter w, ushort type, ushort flags, uint seq, LinkRequest r)
    {
        w.BeginMessage(type, flags, seq);
        w.WriteStruct(new IfInfoMsg { Family = Rtnl.AF_UNSPEC, Index = r.Index, Flags = r.Flags, Change = r.Change });

        // iproute2's order (netns before name), so our bytes equal what `ip link add` sends.
        if (r.NsFd is int nsFd)
        {
            w.PutU32(Ifla.IFLA_NET_NS_FD, (uint)nsFd);
        }

        if (r.Name is not null)
        {
            w.PutString(Ifla.IFLA_IFNAME, r.Name);
        }

        if (r.Mtu is int mtu)
        {
            w.PutU32(Ifla.IFLA_MTU, (uint)mtu);
        }

        if (r.Mac is not null)
        {
            w.PutBytes(Ifla.IFLA_ADDRESS, r.Mac);
        }

        if (r.Alias is not null)
        {
            // dev_set_alias() takes nla_len bytes; iproute2 sends no NUL, and an empty value removes the alias.
            w.PutStringNoNul(Ifla.IFLA_IFALIAS, r.Alias);
        }

        if (r.Carrier is bool carrier)
        {
            w.PutU8(Ifla.IFLA_CARRIER, carrier ? (byte)1 : (byte)0);
        }

        if (r.Kind is not null)
        {
            int linkInfo = w.BeginNested(Ifla.IFLA_LINKINFO);
            w.PutStringNoNul(Ifla.IFLA_INFO_KIND, r.Kind);
            if (r.PeerName is not null)
            {
                // veth: IFLA_INFO_DATA { VETH_INFO_PEER { struct ifinfomsg, peer attributes } }.
                int data = w.BeginNested(Ifla.IFLA_INFO_DATA);
                int peer = w.BeginNested(Ifla.VETH_INFO_PEER);
                w.WriteStruct(new IfInfoMsg());
                if (r.PeerNsFd is int peerNsFd)
                {
                    w.PutU32(Ifla.IFLA_NET_NS_FD, (uint)peerNsFd);
                }

                w.PutString(Ifla.IFLA_IFNAME, r.PeerName);

                w.EndNested(peer);
                w.EndNested(data);
            }

            w.EndNested(linkInfo);
        }
    }

    /// <summary>RTM_NEWADDR / RTM_DELADDR for one address. IPv4 sends IFA_LOCAL and IFA_ADDRESS (as ip does); IPv6 IFA_ADDRESS with IFA_F_NODAD.</summary>
    public static void WriteAddress(ref NetlinkWriter w, ushort type, ushort flags, uint seq, int ifindex, IPAddress address, int prefixLength)
    {
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int length))
        {
            NetlinkThrow.Malformed($"address {address} does not fit");
        }

        uint ifaFlags = v6 ? Ifa.IFA_F_NODAD : 0;
        w.BeginMessage(type, flags, seq);
        w.WriteStruct(new IfAddrMsg
        {
            Family = v6 ? Rtnl.AF_INET6 : Rtnl.AF_INET,
            PrefixLen = (byte)prefixLength,
            Flags = (byte)ifaFlags,
            Scope = Ifa.RT_SCOPE_UNIVERSE,
            Index = ifindex,
        });
        if (!v6)
        {
            w.PutBytes(Ifa.IFA_LOCAL, bytes[..length]);
        }

        w.PutBytes(Ifa.IFA_ADDRESS, bytes[..length]);
        if (v6)
        {
            // IFA_FLAGS (Linux >= 3.14) carries the full 32-bit flags; ifa_flags keeps the low 8 for old kernels.
            w.PutU32(Ifa.IFA_FLAGS, ifaFlags);
        }
    }

    /// <summary>RTM_GETNEIGH dump of one link: ndm_ifindex for strict-checking sockets, NDA_IFINDEX for the legacy filter.</summary>
    public static void WriteNeighborDump(ref NetlinkWriter w, uint seq, int ifindex)
    {
        w.BeginMessage(Rtnl.RTM_GETNEIGH, Nl.NLM_F_REQUEST | Nl.NLM_F_DUMP, seq);
        w.WriteStruct(new NdMsg { Family = Rtnl.AF_UNSPEC, Index = ifindex });
        w.PutU32(Nda.NDA_IFINDEX, (uint)ifindex);
    }

    /// <summary>Decodes an RTM_NEWLINK / RTM_DELLINK message.</summary>
    public static LinkInfo DecodeLink(NetlinkMessage m)
    {
        var header = m.ReadHeader<IfInfoMsg>();
        string? name = null;
        int mtu = 0;
        byte[] mac = [];
        string? kind = null;
        string? alias = null;
        int carrier = -1;
        LinkStats? stats = null;
        int master = 0;
        int maxMtu = 0;
        string? portKind = null;

        var attrs = m.Attributes(IfInfoMsg.Size);
        while (attrs.TryRead(out var a))
        {
            switch (a.Type)
            {
                case Ifla.IFLA_IFNAME:
                    name = a.String();
                    break;
                case Ifla.IFLA_MTU:
                    mtu = a.I32();
                    break;
                case Ifla.IFLA_ADDRESS:
                    mac = a.Value.ToArray();
                    break;
                case Ifla.IFLA_IFALIAS:
                    alias = a.String();
                    break;
                case Ifla.IFLA_CARRIER:
                    carrier = a.U8();
                    break;
                case Ifla.IFLA_MASTER:
                    master = a.I32();
                    break;
                case Ifla.IFLA_MAX_MTU:
                    maxMtu = a.I32();
                    break;
                case Ifla.IFLA_STATS64:
                    // struct rtnl_link_stats64 grew over time (rx_otherhost_dropped in 5.19); the first
                    // eight counters have been stable since 2.6.35.
                    stats = new LinkStats(a.U64At(0), a.U64At(1), a.U64At(2), a.U64At(3), a.U64At(6), a.U64At(7))
                    {
                        RxErrors = a.U64At(4),
                        TxErrors = a.U64At(5),
                    };
                    break;
                case Ifla.IFLA_LINKINFO:
                    var info = a.Nested();
                    while (info.TryRead(out var i))
                    {
                        if (i.Type == Ifla.IFLA_INFO_KIND)
                        {
                            kind = i.String();
                        }
                        else if (i.Type == Ifla.IFLA_INFO_SLAVE_KIND)
                        {
                            portKind = i.String();
                        }
                    }

                    break;
            }
        }

        if (name is null)
        {
            NetlinkThrow.Malformed($"link {header.Index} without IFLA_IFNAME");
        }

        return new LinkInfo
        {
            Index = header.Index,
            Name = name,
            Flags = header.Flags,
            Mtu = mtu,
            Mac = mac,
            Kind = kind,
            Alias = string.IsNullOrEmpty(alias) ? null : alias,
            Type = header.Type,
            Carrier = carrier >= 0 ? carrier != 0 : (header.Flags & Ifla.IFF_LOWER_UP) != 0,
            Stats = stats,
            Deleted = m.Type == Rtnl.RTM_DELLINK,
            Master = master,
            MaxMtu = maxMtu,
            PortKind = portKind,
        };
    }

    /// <summary>Decodes an RTM_NEWNEIGH message; null for entries without NDA_DST.</summary>
    public static NeighborInfo? DecodeNeighbor(NetlinkMessage m)
    {
        var header = m.ReadHeader<NdMsg>();
        IPAddress? address = null;
        byte[] mac = [];
        var attrs = m.Attributes(NdMsg.Size);
        while (attrs.TryRead(out var a))
        {
            switch (a.Type)
            {
                case Nda.NDA_DST:
                    if (a.Value.Length != 4 && a.Value.Length != 16)
                    {
                        NetlinkThrow.Malformed($"NDA_DST of {a.Value.Length} bytes");
                    }

                    address = new IPAddress(a.Value);
                    break;
                case Nda.NDA_LLADDR:
                    mac = a.Value.ToArray();
                    break;
            }
        }

        return address is null ? null : new NeighborInfo(header.Index, address, mac, header.State);
    }

    /// <summary>
    /// Parses the payload of NLMSG_ERROR (struct nlmsgerr, the echoed request, then extack TLVs).
    /// The request is echoed whole unless NLM_F_CAPPED (acks, and NETLINK_CAP_ACK sockets); the TLVs are present
    /// when NLM_F_ACK_TLVS is set and start at NLMSG_ALIGN(4 + echoed length) (linux/netlink.h, netlink_ack()).
    /// </summary>
    public static NetlinkError ParseError(NetlinkMessage m)
    {
        ReadOnlySpan<byte> p = m.Payload;
        if (p.Length < 4)
        {
            NetlinkThrow.Malformed($"NLMSG_ERROR of {p.Length} bytes");
        }

        int error = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(p);
        if ((m.Flags & Nl.NLM_F_ACK_TLVS) == 0 || p.Length < NlMsgErr.Size)
        {
            return new NetlinkError(error, null, 0);
        }

        int echoed = NlMsgHdr.Size;
        if ((m.Flags & Nl.NLM_F_CAPPED) == 0)
        {
            uint len = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(p[4..]);
            if (len < NlMsgHdr.Size || len > (uint)(p.Length - 4))
            {
                NetlinkThrow.Malformed($"NLMSG_ERROR echoes {len} bytes of {p.Length - 4}");
            }

            echoed = (int)len;
        }

        int start = Nl.Align(4 + echoed);
        string? text = null;
        uint offset = 0;
        var tlvs = new NetlinkAttributeReader(start >= p.Length ? default : p[start..]);
        while (tlvs.TryRead(out var a))
        {
            if (a.Type == Nl.NLMSGERR_ATTR_MSG)
            {
                text = a.String();
            }
            else if (a.Type == Nl.NLMSGERR_ATTR_OFFS)
            {
                offset = a.U32();
            }
        }

        return new NetlinkError(error, string.IsNullOrEmpty(text) ? null : text, offset);
    }

    /// <summary>The error code of NLMSG_DONE (a dump's own failure travels there since Linux 4.x).</summary>
    public static NetlinkError ParseDone(NetlinkMessage m)
    {
        ReadOnlySpan<byte> p = m.Payload;
        if (p.Length < 4)
        {
            return new NetlinkError(0, null, 0);
        }

        int error = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(p);
        string? text = null;
        if ((m.Flags & Nl.NLM_F_ACK_TLVS) != 0 && p.Length > 4)
        {
            var tlvs = new NetlinkAttributeReader(p[4..]);
            while (tlvs.TryRead(out var a))
            {
                if (a.Type == Nl.NLMSGERR_ATTR_MSG)
                {
                    text = a.String();
                }
            }
        }

        return new NetlinkError(error, text, 0);
    }
}
