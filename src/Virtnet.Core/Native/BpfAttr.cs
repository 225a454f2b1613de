// linux/bpf.h: the members of union bpf_attr that virtnet uses, and struct bpf_prog_info.
//
// Each struct is a prefix of one anonymous member of union bpf_attr. Passing a prefix is how the ABI is
// meant to be used: the kernel copies min(size, sizeof(union bpf_attr)) bytes, zero-fills the rest, and
// CHECK_ATTR only demands that the bytes after the command's last field are zero. Offsets are asserted
// against the C headers (and the running kernel's BTF for the tcx fields) by tests/Virtnet.Tests/Layout.
// Pointers are __aligned_u64 in the ABI: always 8 bytes, whatever the architecture.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>BPF_MAP_CREATE: map_type .. map_ifindex.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal unsafe struct BpfAttrMapCreate
{
    [FieldOffset(0)] public uint MapType;
    [FieldOffset(4)] public uint KeySize;
    [FieldOffset(8)] public uint ValueSize;
    [FieldOffset(12)] public uint MaxEntries;
    [FieldOffset(16)] public uint MapFlags;
    [FieldOffset(20)] public uint InnerMapFd;
    [FieldOffset(24)] public uint NumaNode;
    [FieldOffset(28)] public fixed byte MapName[16];
    [FieldOffset(44)] public uint MapIfindex;
}

/// <summary>BPF_MAP_LOOKUP_ELEM / BPF_MAP_UPDATE_ELEM: map_fd, key, value, flags.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct BpfAttrMapElem
{
    [FieldOffset(0)] public uint MapFd;
    [FieldOffset(8)] public ulong Key;
    [FieldOffset(16)] public ulong Value;
    [FieldOffset(24)] public ulong Flags;
}

/// <summary>BPF_PROG_LOAD: prog_type .. expected_attach_type.</summary>
[StructLayout(LayoutKind.Explicit, Size = 72)]
internal unsafe struct BpfAttrProgLoad
{
    [FieldOffset(0)] public uint ProgType;
    [FieldOffset(4)] public uint InsnCnt;
    [FieldOffset(8)] public ulong Insns;
    [FieldOffset(16)] public ulong License;
    [FieldOffset(24)] public uint LogLevel;
    [FieldOffset(28)] public uint LogSize;
    [FieldOffset(32)] public ulong LogBuf;
    [FieldOffset(40)] public uint KernVersion;
    [FieldOffset(44)] public uint ProgFlags;
    [FieldOffset(48)] public fixed byte ProgName[16];
    [FieldOffset(64)] public uint ProgIfindex;
    [FieldOffset(68)] public uint ExpectedAttachType;
}

/// <summary>BPF_RAW_TRACEPOINT_OPEN: raw_tracepoint.name (a C string's address), prog_fd, cookie.</summary>
[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct BpfAttrRawTracepoint
{
    [FieldOffset(0)] public ulong Name;
    [FieldOffset(8)] public uint ProgFd;
    [FieldOffset(16)] public ulong Cookie;
}

/// <summary>BPF_PROG_GET_FD_BY_ID (and the other *_GET_FD_BY_ID / *_GET_NEXT_ID): prog_id, next_id, open_flags.</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
internal struct BpfAttrGetId
{
    [FieldOffset(0)] public uint ProgId;
    [FieldOffset(4)] public uint NextId;
    [FieldOffset(8)] public uint OpenFlags;
}

/// <summary>BPF_OBJ_GET_INFO_BY_FD: the "info" member.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct BpfAttrObjGetInfo
{
    [FieldOffset(0)] public uint BpfFd;
    [FieldOffset(4)] public uint InfoLen;
    [FieldOffset(8)] public ulong Info;
}

/// <summary>
/// BPF_PROG_QUERY: the "query" member. For tcx (Linux 6.6) target_ifindex names the device and revision (at 56)
/// is written back; link_ids/link_attach_flags (Linux 6.6) and prog_attach_flags (Linux 6.0) are out-arrays we leave 0.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct BpfAttrQuery
{
    [FieldOffset(0)] public uint TargetIfindex;
    [FieldOffset(4)] public uint AttachType;
    [FieldOffset(8)] public uint QueryFlags;
    [FieldOffset(12)] public uint AttachFlags;
    [FieldOffset(16)] public ulong ProgIds;
    [FieldOffset(24)] public uint ProgCnt;
    [FieldOffset(32)] public ulong ProgAttachFlags;
    [FieldOffset(40)] public ulong LinkIds;
    [FieldOffset(48)] public ulong LinkAttachFlags;
    [FieldOffset(56)] public ulong Revision;
}

/// <summary>BPF_LINK_CREATE with the tcx member of its inner union (Linux 6.6).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct BpfAttrLinkCreateTcx
{
    [FieldOffset(0)] public uint ProgFd;
    [FieldOffset(4)] public uint TargetIfindex;
    [FieldOffset(8)] public uint AttachType;
    [FieldOffset(12)] public uint Flags;
    [FieldOffset(16)] public uint TcxRelativeFd;
    [FieldOffset(24)] public ulong TcxExpectedRevision;
}

/// <summary>struct bpf_prog_info up to ifindex and the gpl_compatible bit-field word; the kernel fills min(info_len, its size).</summary>
[StructLayout(LayoutKind.Explicit, Size = 88)]
internal unsafe struct BpfProgInfo
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(8)] public fixed byte Tag[8];
    [FieldOffset(16)] public uint JitedProgLen;
    [FieldOffset(20)] public uint XlatedProgLen;
    [FieldOffset(24)] public ulong JitedProgInsns;
    [FieldOffset(32)] public ulong XlatedProgInsns;
    [FieldOffset(40)] public ulong LoadTime;
    [FieldOffset(48)] public uint CreatedByUid;
    [FieldOffset(52)] public uint NrMapIds;
    [FieldOffset(56)] public ulong MapIds;
    [FieldOffset(64)] public fixed byte Name[16];
    [FieldOffset(80)] public uint Ifindex;
    [FieldOffset(84)] public uint GplCompatible;
}

/// <summary>struct bpf_map_info up to map_ifindex; the kernel fills min(info_len, its size).</summary>
[StructLayout(LayoutKind.Explicit, Size = 44)]
internal unsafe struct BpfMapInfo
{
    [FieldOffset(0)] public uint Type;
    [FieldOffset(4)] public uint Id;
    [FieldOffset(8)] public uint KeySize;
    [FieldOffset(12)] public uint ValueSize;
    [FieldOffset(16)] public uint MaxEntries;
    [FieldOffset(20)] public uint MapFlags;
    [FieldOffset(24)] public fixed byte Name[16];
    [FieldOffset(40)] public uint Ifindex;
}

/// <summary>BPF_PROG_TEST_RUN: the "test" member, prog_fd .. duration.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct BpfAttrTestRun
{
    [FieldOffset(0)] public uint ProgFd;
    [FieldOffset(4)] public uint Retval;
    [FieldOffset(8)] public uint DataSizeIn;
    [FieldOffset(12)] public uint DataSizeOut;
    [FieldOffset(16)] public ulong DataIn;
    [FieldOffset(24)] public ulong DataOut;
    [FieldOffset(32)] public uint Repeat;
    [FieldOffset(36)] public uint Duration;
}
