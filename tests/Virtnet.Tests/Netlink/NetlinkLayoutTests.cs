using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Netlink;

/// <summary>
/// Layout tier: our netlink structs and constants against the kernel's UAPI headers, compiled with the
/// machine's C compiler (skipped when there is none). A wrong offset here is silent corruption on the wire.
/// </summary>
public class NetlinkLayoutTests
{
    private const string Program = """
        #include <stdio.h>
        #include <stddef.h>
        #include <sys/socket.h>
        #include <linux/netlink.h>
        #include <linux/rtnetlink.h>
        #include <linux/if_link.h>
        #include <linux/if_addr.h>
        #include <linux/neighbour.h>
        #include <linux/veth.h>
        #define P(x) printf("%s %ld\n", #x, (long)(x))
        int main(void) {
            P(sizeof(struct nlmsghdr)); P(sizeof(struct nlattr)); P(sizeof(struct nlmsgerr));
            P(sizeof(struct sockaddr_nl)); P(offsetof(struct sockaddr_nl, nl_pid)); P(offsetof(struct sockaddr_nl, nl_groups));
            P(sizeof(struct ifinfomsg)); P(offsetof(struct ifinfomsg, ifi_type)); P(offsetof(struct ifinfomsg, ifi_index));
            P(offsetof(struct ifinfomsg, ifi_flags)); P(offsetof(struct ifinfomsg, ifi_change));
            P(sizeof(struct ifaddrmsg)); P(offsetof(struct ifaddrmsg, ifa_index));
            P(sizeof(struct ndmsg)); P(offsetof(struct ndmsg, ndm_ifindex)); P(offsetof(struct ndmsg, ndm_state));
            P(offsetof(struct ndmsg, ndm_flags)); P(offsetof(struct ndmsg, ndm_type));
            P(offsetof(struct rtnl_link_stats64, rx_dropped)); P(offsetof(struct rtnl_link_stats64, tx_dropped));
            P(AF_NETLINK); P(NETLINK_ROUTE); P(SOL_NETLINK); P(NETLINK_EXT_ACK); P(NETLINK_CAP_ACK); P(NETLINK_GET_STRICT_CHK);
            P(NLMSG_ERROR); P(NLMSG_DONE); P(NLM_F_REQUEST); P(NLM_F_ACK); P(NLM_F_DUMP); P(NLM_F_DUMP_INTR);
            P(NLM_F_CREATE); P(NLM_F_EXCL); P(NLM_F_CAPPED); P(NLM_F_ACK_TLVS); P(NLMSGERR_ATTR_MSG); P(NLMSGERR_ATTR_OFFS);
            P(RTM_NEWLINK); P(RTM_DELLINK); P(RTM_GETLINK); P(RTM_SETLINK); P(RTM_NEWADDR); P(RTM_GETNEIGH); P(RTM_NEWNEIGH);
            P(RTMGRP_LINK); P(RTNLGRP_LINK);
            P(IFLA_ADDRESS); P(IFLA_IFNAME); P(IFLA_MTU); P(IFLA_LINKINFO); P(IFLA_IFALIAS); P(IFLA_STATS64);
            P(IFLA_NET_NS_FD); P(IFLA_EXT_MASK); P(IFLA_CARRIER); P(IFLA_INFO_KIND); P(IFLA_INFO_DATA); P(VETH_INFO_PEER);
            P(IFA_ADDRESS); P(IFA_LOCAL); P(IFA_FLAGS); P(IFA_F_NODAD);
            P(NDA_DST); P(NDA_LLADDR); P(NDA_IFINDEX); P(NUD_PERMANENT); P(NUD_REACHABLE);
            return 0;
        }
        """;

    [SkippableFact]
    public void StructsAndConstants_MatchKernelHeaders()
    {
        var cc = Run.Command("sh", "-c", "command -v cc");
        Skip.If(cc.ExitCode != 0, "no C compiler to check layouts against the kernel headers");
        string dir = Directory.CreateTempSubdirectory("vn-nl-layout").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "layout.c"), Program);
            Run.Checked("cc", "-o", Path.Combine(dir, "layout"), Path.Combine(dir, "layout.c"));
            var c = Run.Checked(Path.Combine(dir, "layout"))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .ToDictionary(line => line[..line.LastIndexOf(' ')], line => long.Parse(line[(line.LastIndexOf(' ') + 1)..]));

            var ours = new Dictionary<string, long>
            {
                ["sizeof(struct nlmsghdr)"] = Unsafe.SizeOf<NlMsgHdr>(),
                ["sizeof(struct nlattr)"] = Unsafe.SizeOf<NlAttr>(),
                ["sizeof(struct nlmsgerr)"] = Unsafe.SizeOf<NlMsgErr>(),
                ["sizeof(struct sockaddr_nl)"] = Unsafe.SizeOf<SockAddrNl>(),
                ["offsetof(struct sockaddr_nl, nl_pid)"] = Marshal.OffsetOf<SockAddrNl>(nameof(SockAddrNl.Pid)),
                ["offsetof(struct sockaddr_nl, nl_groups)"] = Marshal.OffsetOf<SockAddrNl>(nameof(SockAddrNl.Groups)),
                ["sizeof(struct ifinfomsg)"] = Unsafe.SizeOf<IfInfoMsg>(),
                ["offsetof(struct ifinfomsg, ifi_type)"] = Marshal.OffsetOf<IfInfoMsg>(nameof(IfInfoMsg.Type)),
                ["offsetof(struct ifinfomsg, ifi_index)"] = Marshal.OffsetOf<IfInfoMsg>(nameof(IfInfoMsg.Index)),
                ["offsetof(struct ifinfomsg, ifi_flags)"] = Marshal.OffsetOf<IfInfoMsg>(nameof(IfInfoMsg.Flags)),
                ["offsetof(struct ifinfomsg, ifi_change)"] = Marshal.OffsetOf<IfInfoMsg>(nameof(IfInfoMsg.Change)),
                ["sizeof(struct ifaddrmsg)"] = Unsafe.SizeOf<IfAddrMsg>(),
                ["offsetof(struct ifaddrmsg, ifa_index)"] = Marshal.OffsetOf<IfAddrMsg>(nameof(IfAddrMsg.Index)),
                ["sizeof(struct ndmsg)"] = Unsafe.SizeOf<NdMsg>(),
                ["offsetof(struct ndmsg, ndm_ifindex)"] = Marshal.OffsetOf<NdMsg>(nameof(NdMsg.Index)),
                ["offsetof(struct ndmsg, ndm_state)"] = Marshal.OffsetOf<NdMsg>(nameof(NdMsg.State)),
                ["offsetof(struct ndmsg, ndm_flags)"] = Marshal.OffsetOf<NdMsg>(nameof(NdMsg.Flags)),
                ["offsetof(struct ndmsg, ndm_type)"] = Marshal.OffsetOf<NdMsg>(nameof(NdMsg.Type)),
                ["offsetof(struct rtnl_link_stats64, rx_dropped)"] = 6 * 8,
                ["offsetof(struct rtnl_link_stats64, tx_dropped)"] = 7 * 8,
                ["AF_NETLINK"] = Nl.AF_NETLINK,
                ["NETLINK_ROUTE"] = Nl.NETLINK_ROUTE,
                ["SOL_NETLINK"] = Nl.SOL_NETLINK,
                ["NETLINK_EXT_ACK"] = Nl.NETLINK_EXT_ACK,
                ["NETLINK_CAP_ACK"] = Nl.NETLINK_CAP_ACK,
                ["NETLINK_GET_STRICT_CHK"] = Nl.NETLINK_GET_STRICT_CHK,
                ["NLMSG_ERROR"] = Nl.NLMSG_ERROR,
                ["NLMSG_DONE"] = Nl.NLMSG_DONE,
                ["NLM_F_REQUEST"] = Nl.NLM_F_REQUEST,
                ["NLM_F_ACK"] = Nl.NLM_F_ACK,
                ["NLM_F_DUMP"] = Nl.NLM_F_DUMP,
                ["NLM_F_DUMP_INTR"] = Nl.NLM_F_DUMP_INTR,
                ["NLM_F_CREATE"] = Nl.NLM_F_CREATE,
                ["NLM_F_EXCL"] = Nl.NLM_F_EXCL,
                ["NLM_F_CAPPED"] = Nl.NLM_F_CAPPED,
                ["NLM_F_ACK_TLVS"] = Nl.NLM_F_ACK_TLVS,
                ["NLMSGERR_ATTR_MSG"] = Nl.NLMSGERR_ATTR_MSG,
                ["NLMSGERR_ATTR_OFFS"] = Nl.NLMSGERR_ATTR_OFFS,
                ["RTM_NEWLINK"] = Rtnl.RTM_NEWLINK,
                ["RTM_DELLINK"] = Rtnl.RTM_DELLINK,
                ["RTM_GETLINK"] = Rtnl.RTM_GETLINK,
                ["RTM_SETLINK"] = Rtnl.RTM_SETLINK,
                ["RTM_NEWADDR"] = Rtnl.RTM_NEWADDR,
                ["RTM_GETNEIGH"] = Rtnl.RTM_GETNEIGH,
                ["RTM_NEWNEIGH"] = Rtnl.RTM_NEWNEIGH,
                ["RTMGRP_LINK"] = Rtnl.RTMGRP_LINK,
                ["RTNLGRP_LINK"] = Rtnl.RTNLGRP_LINK,
                ["IFLA_ADDRESS"] = Ifla.IFLA_ADDRESS,
                ["IFLA_IFNAME"] = Ifla.IFLA_IFNAME,
                ["IFLA_MTU"] = Ifla.IFLA_MTU,
                ["IFLA_LINKINFO"] = Ifla.IFLA_LINKINFO,
                ["IFLA_IFALIAS"] = Ifla.IFLA_IFALIAS,
                ["IFLA_STATS64"] = Ifla.IFLA_STATS64,
                ["IFLA_NET_NS_FD"] = Ifla.IFLA_NET_NS_FD,
                ["IFLA_EXT_MASK"] = Ifla.IFLA_EXT_MASK,
                ["IFLA_CARRIER"] = Ifla.IFLA_CARRIER,
                ["IFLA_INFO_KIND"] = Ifla.IFLA_INFO_KIND,
                ["IFLA_INFO_DATA"] = Ifla.IFLA_INFO_DATA,
                ["VETH_INFO_PEER"] = Ifla.VETH_INFO_PEER,
                ["IFA_ADDRESS"] = Ifa.IFA_ADDRESS,
                ["IFA_LOCAL"] = Ifa.IFA_LOCAL,
                ["IFA_FLAGS"] = Ifa.IFA_FLAGS,
                ["IFA_F_NODAD"] = Ifa.IFA_F_NODAD,
                ["NDA_DST"] = Nda.NDA_DST,
                ["NDA_LLADDR"] = Nda.NDA_LLADDR,
                ["NDA_IFINDEX"] = Nda.NDA_IFINDEX,
                ["NUD_PERMANENT"] = Nda.NUD_PERMANENT,
                ["NUD_REACHABLE"] = Nda.NUD_REACHABLE,
            };

            foreach (var (name, value) in ours)
            {
                Assert.True(c.ContainsKey(name), $"{name} missing from the C output");
                Assert.True(c[name] == value, $"{name}: C says {c[name]}, we say {value}");
            }

            Assert.Equal(c.Count, ours.Count);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
