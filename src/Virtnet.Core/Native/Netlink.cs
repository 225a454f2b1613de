// linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/neighbour.h, linux/veth.h,
// linux/if.h. Wire structs are host-endian (netlink is never byte-swapped); addresses inside attributes are
// network-order byte strings.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>linux/netlink.h: the netlink header, message types, flags and socket options.</summary>
internal static class Nl
{
    public const int AF_NETLINK = 16;
    public const int NETLINK_ROUTE = 0;
    public const int SOL_NETLINK = 270;

    // Socket options at SOL_NETLINK.
    public const int NETLINK_ADD_MEMBERSHIP = 1;
    public const int NETLINK_CAP_ACK = 10;
    public const int NETLINK_EXT_ACK = 11;
    public const int NETLINK_GET_STRICT_CHK = 12;

    public const ushort NLMSG_NOOP = 1;
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    public const ushort NLMSG_OVERRUN = 4;

    public const int NLMSG_ALIGNTO = 4;
    public const int NLMSG_HDRLEN = 16;

    public const ushort NLM_F_REQUEST = 0x01;
    public const ushort NLM_F_MULTI = 0x02;
    public const ushort NLM_F_ACK = 0x04;
    public const ushort NLM_F_ECHO = 0x08;
    public const ushort NLM_F_DUMP_INTR = 0x10;
    public const ushort NLM_F_DUMP_FILTERED = 0x20;

    // Modifiers to GET requests.
    public const ushort NLM_F_ROOT = 0x100;
    public const ushort NLM_F_MATCH = 0x200;
    public const ushort NLM_F_ATOMIC = 0x400;
    public const ushort NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;

    // Modifiers to NEW requests.
    public const ushort NLM_F_REPLACE = 0x100;
    public const ushort NLM_F_EXCL = 0x200;
    public const ushort NLM_F_CREATE = 0x400;
    public const ushort NLM_F_APPEND = 0x800;

    // Flags of NLMSG_ERROR acks.
    public const ushort NLM_F_CAPPED = 0x100;
    public const ushort NLM_F_ACK_TLVS = 0x200;

    // enum nlmsgerr_attrs: the TLVs after struct nlmsgerr when NLM_F_ACK_TLVS is set.
    public const ushort NLMSGERR_ATTR_MSG = 1;
    public const ushort NLMSGERR_ATTR_OFFS = 2;
    public const ushort NLMSGERR_ATTR_COOKIE = 3;
    public const ushort NLMSGERR_ATTR_POLICY = 4;
    public const ushort NLMSGERR_ATTR_MISS_TYPE = 5;
    public const ushort NLMSGERR_ATTR_MISS_NEST = 6;

    public const ushort NLA_F_NESTED = 0x8000;
    public const ushort NLA_F_NET_BYTEORDER = 0x4000;
    public const ushort NLA_TYPE_MASK = unchecked((ushort)~(NLA_F_NESTED | NLA_F_NET_BYTEORDER));
    public const int NLA_HDRLEN = 4;

    public static int Align(int length) => (length + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1);
}

/// <summary>linux/rtnetlink.h: message types, multicast groups, ext-mask filters.</summary>
internal static class Rtnl
{
    public const ushort RTM_NEWLINK = 16;
    public const ushort RTM_DELLINK = 17;
    public const ushort RTM_GETLINK = 18;
    public const ushort RTM_SETLINK = 19;
    public const ushort RTM_NEWADDR = 20;
    public const ushort RTM_NEWQDISC = 36;
    public const ushort RTM_DELADDR = 21;
    public const ushort RTM_GETADDR = 22;
    public const ushort RTM_NEWNEIGH = 28;
    public const ushort RTM_DELNEIGH = 29;
    public const ushort RTM_GETNEIGH = 30;

    // enum rtnetlink_groups; the legacy bind() mask is 1 << (group - 1).
    public const uint RTNLGRP_LINK = 1;
    public const uint RTMGRP_LINK = 1;

    public const uint RTEXT_FILTER_VF = 1 << 0;
    public const uint RTEXT_FILTER_SKIP_STATS = 1 << 3;

    public const byte AF_UNSPEC = 0;
    public const byte AF_INET = 2;
    public const byte AF_INET6 = 10;
}

/// <summary>linux/if_link.h, linux/veth.h: link attributes.</summary>
internal static class Ifla
{
    public const ushort IFLA_ADDRESS = 1;
    public const ushort IFLA_BROADCAST = 2;
    public const ushort IFLA_IFNAME = 3;
    public const ushort IFLA_MTU = 4;
    public const ushort IFLA_LINK = 5;
    public const ushort IFLA_STATS = 7;
    public const ushort IFLA_MASTER = 10;
    public const ushort IFLA_TXQLEN = 13;
    public const ushort IFLA_OPERSTATE = 16;
    public const ushort IFLA_LINKINFO = 18;
    public const ushort IFLA_NET_NS_PID = 19;
    public const ushort IFLA_IFALIAS = 20;
    public const ushort IFLA_STATS64 = 23;
    public const ushort IFLA_AF_SPEC = 26;
    public const ushort IFLA_NET_NS_FD = 28;
    public const ushort IFLA_EXT_MASK = 29;
    public const ushort IFLA_CARRIER = 33;
    public const ushort IFLA_MIN_MTU = 50;
    public const ushort IFLA_MAX_MTU = 51;

    // IFLA_LINKINFO nest.
    public const ushort IFLA_INFO_KIND = 1;
    public const ushort IFLA_INFO_DATA = 2;
    public const ushort IFLA_INFO_XSTATS = 3;
    public const ushort IFLA_INFO_SLAVE_KIND = 4;
    public const ushort IFLA_INFO_SLAVE_DATA = 5;

    // linux/veth.h: IFLA_INFO_DATA of kind "veth".
    public const ushort VETH_INFO_PEER = 1;

    /// <summary>IFALIASZ - 1: the longest alias the kernel's policy accepts.</summary>
    public const int IFALIAS_MAX = 255;

    // linux/if.h: net_device_flags.
    public const uint IFF_UP = 0x1;
    public const uint IFF_BROADCAST = 0x2;
    public const uint IFF_LOOPBACK = 0x8;
    public const uint IFF_POINTOPOINT = 0x10;
    public const uint IFF_RUNNING = 0x40;
    public const uint IFF_NOARP = 0x80;
    public const uint IFF_PROMISC = 0x100;
    public const uint IFF_MULTICAST = 0x1000;
    public const uint IFF_LOWER_UP = 0x10000;
    public const uint IFF_DORMANT = 0x20000;

    /// <summary>struct rtnl_link_stats64: 24 u64 counters on current kernels; we read the first eight.</summary>
    public const int RTNL_LINK_STATS64_MIN = 8 * 8;
}

/// <summary>linux/if_addr.h: address attributes and flags.</summary>
internal static class Ifa
{
    public const ushort IFA_ADDRESS = 1;
    public const ushort IFA_LOCAL = 2;
    public const ushort IFA_LABEL = 3;
    public const ushort IFA_BROADCAST = 4;
    public const ushort IFA_ANYCAST = 5;
    public const ushort IFA_CACHEINFO = 6;
    public const ushort IFA_MULTICAST = 7;
    public const ushort IFA_FLAGS = 8;

    public const uint IFA_F_SECONDARY = 0x01;
    public const uint IFA_F_NODAD = 0x02;
    public const uint IFA_F_OPTIMISTIC = 0x04;
    public const uint IFA_F_DADFAILED = 0x08;
    public const uint IFA_F_HOMEADDRESS = 0x10;
    public const uint IFA_F_DEPRECATED = 0x20;
    public const uint IFA_F_TENTATIVE = 0x40;
    public const uint IFA_F_PERMANENT = 0x80;
    public const uint IFA_F_NOPREFIXROUTE = 0x200;

    public const byte RT_SCOPE_UNIVERSE = 0;
    public const byte RT_SCOPE_LINK = 253;
    public const byte RT_SCOPE_HOST = 254;
}

/// <summary>linux/neighbour.h: neighbour attributes and NUD states.</summary>
internal static class Nda
{
    public const ushort NDA_DST = 1;
    public const ushort NDA_LLADDR = 2;
    public const ushort NDA_CACHEINFO = 3;
    public const ushort NDA_PROBES = 4;
    public const ushort NDA_IFINDEX = 8;
    public const ushort NDA_MASTER = 9;

    public const ushort NUD_INCOMPLETE = 0x01;
    public const ushort NUD_REACHABLE = 0x02;
    public const ushort NUD_STALE = 0x04;
    public const ushort NUD_DELAY = 0x08;
    public const ushort NUD_PROBE = 0x10;
    public const ushort NUD_FAILED = 0x20;
    public const ushort NUD_NOARP = 0x40;
    public const ushort NUD_PERMANENT = 0x80;
    public const ushort NUD_NONE = 0x00;
}

/// <summary>struct nlmsghdr: 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlMsgHdr
{
    public const int Size = 16;

    public uint Len;
    public ushort Type;
    public ushort Flags;
    public uint Seq;
    public uint Pid;
}

/// <summary>struct nlattr / struct rtattr: 4 bytes, then the value, padded to 4.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlAttr
{
    public const int Size = 4;

    public ushort Len;
    public ushort Type;
}

/// <summary>struct nlmsgerr: the error (0 for an ack, else -errno), then the request's header.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlMsgErr
{
    public const int Size = 20;

    public int Error;
    public NlMsgHdr Msg;
}

/// <summary>struct sockaddr_nl: 12 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SockAddrNl
{
    public const int Size = 12;

    public ushort Family;
    public ushort Pad;
    public uint Pid;
    public uint Groups;
}

/// <summary>struct ifinfomsg (linux/rtnetlink.h): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IfInfoMsg
{
    public const int Size = 16;

    public byte Family;
    public byte Pad;
    public ushort Type;
    public int Index;
    public uint Flags;
    public uint Change;
}

/// <summary>struct ifaddrmsg (linux/if_addr.h): 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IfAddrMsg
{
    public const int Size = 8;

    public byte Family;
    public byte PrefixLen;
    public byte Flags;
    public byte Scope;
    public int Index;
}

/// <summary>struct ndmsg (linux/neighbour.h): 12 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NdMsg
{
    public const int Size = 12;

    public byte Family;
    public byte Pad1;
    public ushort Pad2;
    public int Index;
    public ushort State;
    public byte Flags;
    public byte Type;
}

/// <summary>linux/rtnetlink.h struct tcmsg (20 bytes) and the few tc constants we use (linux/pkt_sched.h).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TcMsg
{
    public const uint TC_H_ROOT = 0xFFFFFFFF;
    public const ushort TCA_KIND = 1;

    public byte Family;
    public byte Pad1;
    public ushort Pad2;
    public int Ifindex;
    public uint Handle;
    public uint Parent;
    public uint Info;
}
