// What the layout tier compares: C expressions and our C# values for them. Constants are found by
// reflection where our names are the kernel's names, so a constant added to the native layer is checked
// without touching this file.
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Tests.Layout;

internal static class LayoutChecks
{
    /// <summary>Macros newer than linux-libc-dev 6.1 (Debian 12): compared only where the headers have them.</summary>
    private static readonly HashSet<string> s_newerMacros = ["TUN_F_USO4", "TUN_F_USO6", "VIRTIO_NET_HDR_GSO_UDP_L4", "PACKET_FANOUT_FLAG_IGNORE_OUTGOING"];

    /// <summary>Names of enums new in Linux 6.6 (tcx): only the running kernel's BTF has them.</summary>
    private static readonly HashSet<string> s_btfOnly = ["BPF_TCX_INGRESS", "BPF_TCX_EGRESS", "TCX_NEXT", "TCX_PASS", "TCX_DROP", "TCX_REDIRECT"];

    /// <summary>#defines or anonymous enums: only the userspace headers have them (BTF holds no macros).</summary>
    private static readonly HashSet<string> s_systemOnly = ["BPF_ANY", "BPF_PSEUDO_MAP_FD", "BPF_OBJ_NAME_LEN"];

    public static readonly CCheck[] Tun =
    [
        new("sizeof(struct ifreq)", Unsafe.SizeOf<IfReqFlags>()),
        new("offsetof(struct ifreq, ifr_name)", Off<IfReqFlags>(nameof(IfReqFlags.Name))),
        new("offsetof(struct ifreq, ifr_flags)", Off<IfReqFlags>(nameof(IfReqFlags.Flags))),
        new("sizeof(((struct ifreq *)0)->ifr_flags)", sizeof(short)),
        .. Constants(typeof(Tun), _ => true),
    ];

    public static readonly CCheck[] Virtio =
    [
        new("sizeof(struct virtio_net_hdr)", Unsafe.SizeOf<VirtioNetHdr>()),
        new("sizeof(struct virtio_net_hdr)", VirtioNetHdr.Size),
        new("offsetof(struct virtio_net_hdr, flags)", Off<VirtioNetHdr>(nameof(VirtioNetHdr.Flags))),
        new("offsetof(struct virtio_net_hdr, gso_type)", Off<VirtioNetHdr>(nameof(VirtioNetHdr.GsoType))),
        new("offsetof(struct virtio_net_hdr, hdr_len)", Off<VirtioNetHdr>(nameof(VirtioNetHdr.HdrLen))),
        new("offsetof(struct virtio_net_hdr, gso_size)", Off<VirtioNetHdr>(nameof(VirtioNetHdr.GsoSize))),
        new("offsetof(struct virtio_net_hdr, csum_start)", Off<VirtioNetHdr>(nameof(VirtioNetHdr.CsumStart))),
        new("offsetof(struct virtio_net_hdr, csum_offset)", Off<VirtioNetHdr>(nameof(VirtioNetHdr.CsumOffset))),
        .. Constants(typeof(VirtioNetHdr), n => n.StartsWith("VIRTIO_", StringComparison.Ordinal)),
    ];

    public static readonly CCheck[] LibcAbi =
    [
        new("sizeof(struct pollfd)", Unsafe.SizeOf<PollFd>()),
        new("offsetof(struct pollfd, fd)", Off<PollFd>(nameof(PollFd.Fd))),
        new("offsetof(struct pollfd, events)", Off<PollFd>(nameof(PollFd.Events))),
        new("offsetof(struct pollfd, revents)", Off<PollFd>(nameof(PollFd.REvents))),
        new("sizeof(struct iovec)", Unsafe.SizeOf<IoVec>()),
        new("offsetof(struct iovec, iov_base)", Off<IoVec>(nameof(IoVec.Base))),
        new("offsetof(struct iovec, iov_len)", Off<IoVec>(nameof(IoVec.Length))),
        new("__NR_bpf", Libc.SysBpf),
        .. Constants(typeof(Capabilities), n => n.StartsWith("CAP_", StringComparison.Ordinal)),
        .. Constants(typeof(Libc), n => n.StartsWith("O_", StringComparison.Ordinal) || n.StartsWith("POLL", StringComparison.Ordinal)
            || n.StartsWith("EFD_", StringComparison.Ordinal) || n.StartsWith("SOCK_", StringComparison.Ordinal)
            || n.StartsWith("CLONE_", StringComparison.Ordinal) || n.StartsWith("PROT_", StringComparison.Ordinal)
            || n.StartsWith("MAP_", StringComparison.Ordinal) || n.StartsWith("SO_", StringComparison.Ordinal)
            || n.StartsWith("SOL_", StringComparison.Ordinal) || n.StartsWith("MSG_", StringComparison.Ordinal)),
    ];

    /// <summary>linux/if_packet.h: the receive ring's request, the slot header and address the forwarders read in place, memberships, and every constant.</summary>
    public static readonly CCheck[] PacketAbi =
    [
        new("sizeof(struct tpacket_req)", Unsafe.SizeOf<TpacketReq>()),
        new("offsetof(struct tpacket_req, tp_block_size)", Off<TpacketReq>(nameof(TpacketReq.BlockSize))),
        new("offsetof(struct tpacket_req, tp_block_nr)", Off<TpacketReq>(nameof(TpacketReq.BlockNr))),
        new("offsetof(struct tpacket_req, tp_frame_size)", Off<TpacketReq>(nameof(TpacketReq.FrameSize))),
        new("offsetof(struct tpacket_req, tp_frame_nr)", Off<TpacketReq>(nameof(TpacketReq.FrameNr))),
        new("sizeof(struct tpacket2_hdr)", Unsafe.SizeOf<Tpacket2Hdr>()),
        new("offsetof(struct tpacket2_hdr, tp_status)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Status))),
        new("offsetof(struct tpacket2_hdr, tp_len)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Len))),
        new("offsetof(struct tpacket2_hdr, tp_snaplen)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Snaplen))),
        new("offsetof(struct tpacket2_hdr, tp_mac)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Mac))),
        new("offsetof(struct tpacket2_hdr, tp_net)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Net))),
        new("offsetof(struct tpacket2_hdr, tp_sec)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Sec))),
        new("offsetof(struct tpacket2_hdr, tp_nsec)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.Nsec))),
        new("offsetof(struct tpacket2_hdr, tp_vlan_tci)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.VlanTci))),
        new("offsetof(struct tpacket2_hdr, tp_vlan_tpid)", Off<Tpacket2Hdr>(nameof(Tpacket2Hdr.VlanTpid))),
        new("TPACKET_ALIGN(sizeof(struct tpacket2_hdr))", Packet.SockaddrOffset),
        new("sizeof(struct sockaddr_ll)", Unsafe.SizeOf<SockaddrLl>()),
        new("offsetof(struct sockaddr_ll, sll_family)", Off<SockaddrLl>(nameof(SockaddrLl.Family))),
        new("offsetof(struct sockaddr_ll, sll_protocol)", Off<SockaddrLl>(nameof(SockaddrLl.Protocol))),
        new("offsetof(struct sockaddr_ll, sll_ifindex)", Off<SockaddrLl>(nameof(SockaddrLl.Ifindex))),
        new("offsetof(struct sockaddr_ll, sll_hatype)", Off<SockaddrLl>(nameof(SockaddrLl.Hatype))),
        new("offsetof(struct sockaddr_ll, sll_pkttype)", Off<SockaddrLl>(nameof(SockaddrLl.Pkttype))),
        new("offsetof(struct sockaddr_ll, sll_halen)", Off<SockaddrLl>(nameof(SockaddrLl.Halen))),
        new("offsetof(struct sockaddr_ll, sll_addr)", Off<SockaddrLl>(nameof(SockaddrLl.Addr))),
        new("sizeof(struct packet_mreq)", Unsafe.SizeOf<PacketMreq>()),
        new("offsetof(struct packet_mreq, mr_ifindex)", Off<PacketMreq>(nameof(PacketMreq.Ifindex))),
        new("offsetof(struct packet_mreq, mr_type)", Off<PacketMreq>(nameof(PacketMreq.Type))),
        new("offsetof(struct packet_mreq, mr_alen)", Off<PacketMreq>(nameof(PacketMreq.AddressLength))),
        new("offsetof(struct packet_mreq, mr_address)", Off<PacketMreq>(nameof(PacketMreq.Address))),
        .. Constants(typeof(Packet), n => !n.Any(char.IsLower)),
    ];

    /// <summary>linux/io_uring.h: what the forwarders' batched writes use.</summary>
    public static readonly CCheck[] IoUringAbi =
    [
        new("sizeof(struct io_uring_params)", Unsafe.SizeOf<IoUringParams>()),
        new("offsetof(struct io_uring_params, flags)", Off<IoUringParams>(nameof(IoUringParams.Flags))),
        new("offsetof(struct io_uring_params, features)", Off<IoUringParams>(nameof(IoUringParams.Features))),
        new("offsetof(struct io_uring_params, sq_off)", Off<IoUringParams>(nameof(IoUringParams.SqOff))),
        new("offsetof(struct io_uring_params, cq_off)", Off<IoUringParams>(nameof(IoUringParams.CqOff))),
        new("sizeof(struct io_sqring_offsets)", Unsafe.SizeOf<IoSqringOffsets>()),
        new("offsetof(struct io_sqring_offsets, tail)", Off<IoSqringOffsets>(nameof(IoSqringOffsets.Tail))),
        new("offsetof(struct io_sqring_offsets, ring_entries)", Off<IoSqringOffsets>(nameof(IoSqringOffsets.RingEntries))),
        new("offsetof(struct io_sqring_offsets, array)", Off<IoSqringOffsets>(nameof(IoSqringOffsets.Array))),
        new("sizeof(struct io_cqring_offsets)", Unsafe.SizeOf<IoCqringOffsets>()),
        new("offsetof(struct io_cqring_offsets, cqes)", Off<IoCqringOffsets>(nameof(IoCqringOffsets.Cqes))),
        new("sizeof(struct io_uring_sqe)", Unsafe.SizeOf<IoUringSqe>()),
        new("offsetof(struct io_uring_sqe, flags)", Off<IoUringSqe>(nameof(IoUringSqe.Flags))),
        new("offsetof(struct io_uring_sqe, fd)", Off<IoUringSqe>(nameof(IoUringSqe.Fd))),
        new("offsetof(struct io_uring_sqe, off)", Off<IoUringSqe>(nameof(IoUringSqe.Off))),
        new("offsetof(struct io_uring_sqe, addr)", Off<IoUringSqe>(nameof(IoUringSqe.Addr))),
        new("offsetof(struct io_uring_sqe, len)", Off<IoUringSqe>(nameof(IoUringSqe.Len))),
        new("offsetof(struct io_uring_sqe, user_data)", Off<IoUringSqe>(nameof(IoUringSqe.UserData))),
        new("sizeof(struct io_uring_cqe)", Unsafe.SizeOf<IoUringCqe>()),
        new("offsetof(struct io_uring_cqe, res)", Off<IoUringCqe>(nameof(IoUringCqe.Res))),
        new("__NR_io_uring_setup", IoUring.SYS_io_uring_setup),
        new("__NR_io_uring_enter", IoUring.SYS_io_uring_enter),
        new("__NR_io_uring_register", IoUring.SYS_io_uring_register),
        .. Constants(typeof(IoUring), n => n.StartsWith("IORING_", StringComparison.Ordinal) || n.StartsWith("IOSQE_", StringComparison.Ordinal)),
    ];

    /// <summary>Every errno we name, except ENOTSUPP (524), which is kernel-internal (include/linux/errno.h) and in no uapi header.</summary>
    public static readonly CCheck[] Errnos =
    [
        .. Enum.GetValues<Errno>().Where(e => e is not Errno.OK and not Errno.ENOTSUPP).Select(e => new CCheck(e.ToString(), (long)e)),
    ];

    public static readonly CCheck[] BpfCodes =
    [
        new("sizeof(struct bpf_insn)", Unsafe.SizeOf<BpfInsn>(), CHeaders.Both),
        new("offsetof(struct bpf_insn, code)", Off<BpfInsn>(nameof(BpfInsn.Code)), CHeaders.Both),
        new("offsetof(struct bpf_insn, off)", Off<BpfInsn>(nameof(BpfInsn.Offset)), CHeaders.Both),
        new("offsetof(struct bpf_insn, imm)", Off<BpfInsn>(nameof(BpfInsn.Imm)), CHeaders.Both),
        new("offsetof(struct __sk_buff, len)", Programs.SkBuffLenOffset, CHeaders.Both),
        .. Constants(typeof(BpfCode), _ => true, CHeaders.System),
        .. Enum.GetValues<BpfHelper>().Select(h => new CCheck("BPF_FUNC_" + Snake(h.ToString()), (long)h, CHeaders.Both)),
        .. Constants(typeof(Libc), n => n.StartsWith("BPF_", StringComparison.Ordinal) || n.StartsWith("TCX_", StringComparison.Ordinal)),
    ];

    public static readonly CCheck[] BpfAttr =
    [
        // BPF_MAP_CREATE
        .. Fields<BpfAttrMapCreate>("union bpf_attr", CHeaders.Both,
            ("map_type", "MapType"), ("key_size", "KeySize"), ("value_size", "ValueSize"), ("max_entries", "MaxEntries"),
            ("map_flags", "MapFlags"), ("inner_map_fd", "InnerMapFd"), ("numa_node", "NumaNode"), ("map_name", "MapName"),
            ("map_ifindex", "MapIfindex")),
        new("END(union bpf_attr, map_ifindex)", Unsafe.SizeOf<BpfAttrMapCreate>(), CHeaders.Both),

        // BPF_MAP_LOOKUP_ELEM
        .. Fields<BpfAttrMapElem>("union bpf_attr", CHeaders.Both, ("map_fd", "MapFd"), ("key", "Key"), ("value", "Value"), ("flags", "Flags")),
        new("END(union bpf_attr, flags)", Unsafe.SizeOf<BpfAttrMapElem>(), CHeaders.Both),

        // BPF_PROG_LOAD
        .. Fields<BpfAttrProgLoad>("union bpf_attr", CHeaders.Both,
            ("prog_type", "ProgType"), ("insn_cnt", "InsnCnt"), ("insns", "Insns"), ("license", "License"),
            ("log_level", "LogLevel"), ("log_size", "LogSize"), ("log_buf", "LogBuf"), ("kern_version", "KernVersion"),
            ("prog_flags", "ProgFlags"), ("prog_name", "ProgName"), ("prog_ifindex", "ProgIfindex"),
            ("expected_attach_type", "ExpectedAttachType")),
        new("END(union bpf_attr, expected_attach_type)", Unsafe.SizeOf<BpfAttrProgLoad>(), CHeaders.Both),
        new("MEMBER_SIZE(union bpf_attr, prog_name)", Libc.BPF_OBJ_NAME_LEN, CHeaders.Both),

        // BPF_PROG_GET_FD_BY_ID
        .. Fields<BpfAttrGetId>("union bpf_attr", CHeaders.Both, ("prog_id", "ProgId"), ("next_id", "NextId"), ("open_flags", "OpenFlags")),
        new("END(union bpf_attr, open_flags)", Unsafe.SizeOf<BpfAttrGetId>(), CHeaders.Both),

        // BPF_OBJ_GET_INFO_BY_FD
        .. Fields<BpfAttrObjGetInfo>("union bpf_attr", CHeaders.Both, ("info.bpf_fd", "BpfFd"), ("info.info_len", "InfoLen"), ("info.info", "Info")),
        new("MEMBER_SIZE(union bpf_attr, info)", Unsafe.SizeOf<BpfAttrObjGetInfo>(), CHeaders.Both),

        // BPF_PROG_QUERY: revision, link_ids and link_attach_flags are Linux 6.6 (tcx).
        .. Fields<BpfAttrQuery>("union bpf_attr", CHeaders.Both,
            ("query.target_fd", "TargetIfindex"), ("query.attach_type", "AttachType"), ("query.query_flags", "QueryFlags"),
            ("query.attach_flags", "AttachFlags"), ("query.prog_ids", "ProgIds"), ("query.prog_cnt", "ProgCnt"),
            ("query.prog_attach_flags", "ProgAttachFlags")),
        .. Fields<BpfAttrQuery>("union bpf_attr", CHeaders.Btf,
            ("query.target_ifindex", "TargetIfindex"), ("query.count", "ProgCnt"), ("query.link_ids", "LinkIds"),
            ("query.link_attach_flags", "LinkAttachFlags"), ("query.revision", "Revision")),
        new("MEMBER_SIZE(union bpf_attr, query)", Unsafe.SizeOf<BpfAttrQuery>(), CHeaders.Btf),

        // BPF_LINK_CREATE with the tcx member (Linux 6.6)
        .. Fields<BpfAttrLinkCreateTcx>("union bpf_attr", CHeaders.Both,
            ("link_create.prog_fd", "ProgFd"), ("link_create.target_ifindex", "TargetIfindex"),
            ("link_create.attach_type", "AttachType"), ("link_create.flags", "Flags")),
        .. Fields<BpfAttrLinkCreateTcx>("union bpf_attr", CHeaders.Btf,
            ("link_create.tcx.relative_fd", "TcxRelativeFd"), ("link_create.tcx.expected_revision", "TcxExpectedRevision")),
        new("END(union bpf_attr, link_create.tcx.expected_revision)", Unsafe.SizeOf<BpfAttrLinkCreateTcx>(), CHeaders.Btf),

        // struct bpf_prog_info, up to ifindex and the bit-field word after it
        .. Fields<BpfProgInfo>("struct bpf_prog_info", CHeaders.Both,
            ("type", "Type"), ("id", "Id"), ("tag", "Tag"), ("jited_prog_len", "JitedProgLen"), ("xlated_prog_len", "XlatedProgLen"),
            ("jited_prog_insns", "JitedProgInsns"), ("xlated_prog_insns", "XlatedProgInsns"), ("load_time", "LoadTime"),
            ("created_by_uid", "CreatedByUid"), ("nr_map_ids", "NrMapIds"), ("map_ids", "MapIds"), ("name", "Name"),
            ("ifindex", "Ifindex")),
        new("offsetof(struct bpf_prog_info, netns_dev)", Unsafe.SizeOf<BpfProgInfo>(), CHeaders.Both),

        // BPF_PROG_TEST_RUN
        .. Fields<BpfAttrTestRun>("union bpf_attr", CHeaders.Both,
            ("test.prog_fd", "ProgFd"), ("test.retval", "Retval"), ("test.data_size_in", "DataSizeIn"), ("test.data_size_out", "DataSizeOut"),
            ("test.data_in", "DataIn"), ("test.data_out", "DataOut"), ("test.repeat", "Repeat"), ("test.duration", "Duration")),
        new("END(union bpf_attr, test.duration)", Unsafe.SizeOf<BpfAttrTestRun>(), CHeaders.Both),

        // struct bpf_map_info, up to map_ifindex
        .. Fields<BpfMapInfo>("struct bpf_map_info", CHeaders.Both,
            ("type", "Type"), ("id", "Id"), ("key_size", "KeySize"), ("value_size", "ValueSize"), ("max_entries", "MaxEntries"),
            ("map_flags", "MapFlags"), ("name", "Name"), ("ifindex", "Ifindex")),
        new("END(struct bpf_map_info, ifindex)", Unsafe.SizeOf<BpfMapInfo>(), CHeaders.Both),
    ];

    private static readonly CCheck[] s_all = [.. Tun, .. Virtio, .. LibcAbi, .. PacketAbi, .. IoUringAbi, .. Errnos, .. BpfCodes, .. BpfAttr];

    public static IReadOnlyList<CCheck> All() => s_all;

    private static long Off<T>(string field) => Marshal.OffsetOf<T>(field).ToInt64();

    private static IEnumerable<CCheck> Fields<T>(string cType, CHeaders headers, params (string C, string CSharp)[] fields)
        => fields.Select(f => new CCheck($"offsetof({cType}, {f.C})", Off<T>(f.CSharp), headers));

    /// <summary>The const fields of a type whose names pass the filter, each checked against the C name of the same spelling.</summary>
    private static IEnumerable<CCheck> Constants(Type type, Func<string, bool> filter, CHeaders? headers = null)
        => type.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && filter(f.Name))
            .Select(f => new CCheck(
                f.Name,
                ToLong(f.GetRawConstantValue()!),
                headers ?? (s_btfOnly.Contains(f.Name) ? CHeaders.Btf : s_systemOnly.Contains(f.Name) ? CHeaders.System : HeadersOf(f.Name)),
                s_newerMacros.Contains(f.Name) ? f.Name : null));

    // Enums of linux/bpf.h are in both; everything else in the TAP/libc headers is a macro.
    private static CHeaders HeadersOf(string name)
        => name.StartsWith("BPF_", StringComparison.Ordinal) ? CHeaders.Both : CHeaders.System;

    /// <summary>C's view of our constant: short flags such as IFF_TUN_EXCL (0x8000) are unsigned there.</summary>
    private static long ToLong(object value) => value switch
    {
        short s => (ushort)s,
        nuint u => (long)(ulong)u,
        nint n => n,
        ulong u => (long)u,
        _ => Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>MapLookupElem → map_lookup_elem, GetPrandomU32 → get_prandom_u32.</summary>
    private static string Snake(string pascal)
    {
        var sb = new System.Text.StringBuilder();
        foreach (char c in pascal)
        {
            if (char.IsUpper(c) && sb.Length > 0)
            {
                sb.Append('_');
            }

            sb.Append(char.ToLowerInvariant(c));
        }

        return sb.ToString();
    }
}
