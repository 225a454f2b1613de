// linux/if_packet.h: constants and structures of AF_PACKET sockets, their TPACKET_V2 rings and memberships.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static class Packet
{
    /// <summary>sys/socket.h: the packet socket family.</summary>
    public const int AF_PACKET = 17;
    public const int SOL_PACKET = 263;
    public const ushort ETH_P_ALL = 0x0003;
    public const int PACKET_ADD_MEMBERSHIP = 1;
    public const int PACKET_RX_RING = 5;
    public const int PACKET_STATISTICS = 6;
    public const int PACKET_VERSION = 10;
    public const int PACKET_RESERVE = 12;
    public const int PACKET_VNET_HDR = 15;
    public const int PACKET_FANOUT = 18;
    public const int PACKET_FANOUT_DATA = 22;
    public const int PACKET_IGNORE_OUTGOING = 23;
    public const int PACKET_FANOUT_CPU = 2;
    public const int PACKET_FANOUT_EBPF = 7;
    /// <summary>The group's own ignore-outgoing (Linux 6.8): members' PACKET_IGNORE_OUTGOING does not apply to a fanout group.</summary>
    public const int PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000;
    public const byte PACKET_OUTGOING = 4;
    public const ushort PACKET_MR_MULTICAST = 0;
    public const ushort PACKET_MR_PROMISC = 1;
    public const ushort PACKET_MR_ALLMULTI = 2;
    public const ushort PACKET_MR_UNICAST = 3;
    public const int TPACKET_V2 = 1;
    public const uint TP_STATUS_KERNEL = 0;
    public const uint TP_STATUS_USER = 1 << 0;
    public const uint TP_STATUS_COPY = 1 << 1;
    public const uint TP_STATUS_VLAN_VALID = 1 << 4;
    public const uint TP_STATUS_VLAN_TPID_VALID = 1 << 6;
    public const byte PACKET_LOOPBACK = 5;

    /// <summary>TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): where struct sockaddr_ll starts in a slot.</summary>
    public const int SockaddrOffset = 32;
}

/// <summary>struct tpacket_req (the V1/V2 ring request).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TpacketReq
{
    public uint BlockSize;
    public uint BlockNr;
    public uint FrameSize;
    public uint FrameNr;
}

/// <summary>struct tpacket2_hdr: the header of every V2 slot (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Tpacket2Hdr
{
    public uint Status;
    public uint Len;
    public uint Snaplen;
    public ushort Mac;
    public ushort Net;
    public uint Sec;
    public uint Nsec;
    public ushort VlanTci;
    public ushort VlanTpid;
    public uint Padding;
}

/// <summary>struct sockaddr_ll (20 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockaddrLl
{
    public ushort Family;
    public ushort Protocol;
    public int Ifindex;
    public ushort Hatype;
    public byte Pkttype;
    public byte Halen;
    public fixed byte Addr[8];
}

/// <summary>struct packet_mreq (PACKET_ADD_MEMBERSHIP).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct PacketMreq
{
    public int Ifindex;
    public ushort Type;
    public ushort AddressLength;
    public fixed byte Address[8];
}
