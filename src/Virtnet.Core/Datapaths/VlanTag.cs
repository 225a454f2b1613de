// Ring frames arrive without their 802.1Q tag when the device (or veth's GRO path) stripped it into the skb's
// metadata: the ring gives it in tp_vlan_tci/tp_vlan_tpid instead. A TAP write takes the tag in the frame, so the
// forwarder puts it back, in place, in the headroom every slot keeps in front of the frame (PACKET_RESERVE).
using System.Runtime.CompilerServices;
using Virtnet.Native;

namespace Virtnet.Datapaths;

internal static unsafe class VlanTag
{
    /// <summary>Bytes a restored tag adds in front of the EtherType; the slot must keep this much headroom.</summary>
    public const int Length = 4;

    /// <summary>
    /// The tag's TPID: the one the ring reports when it says it is valid (802.1ad, say), else 802.1Q's 0x8100.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Tpid(uint status, ushort reported)
        => (status & Packet.TP_STATUS_VLAN_TPID_VALID) != 0 && reported != 0 ? reported : EthernetView.EtherTypeVlan;

    /// <summary>
    /// Puts the tag (<paramref name="tpid"/>, <paramref name="tci"/>) back in front of the EtherType of the frame at
    /// <paramref name="mac"/>, whose virtio_net_hdr sits right before it. The header and both MACs move
    /// <see cref="Length"/> bytes toward the front, into the headroom; the header's checksum start and GSO header
    /// length move with the payload they point at. Returns where the frame (its destination MAC) now starts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Restore(byte* mac, ushort tpid, ushort tci)
    {
        byte* tagged = mac - Length;
        Buffer.MemoryCopy(mac - VirtioNetHdr.Size, tagged - VirtioNetHdr.Size, VirtioNetHdr.Size + 12, VirtioNetHdr.Size + 12);
        tagged[12] = (byte)(tpid >> 8);
        tagged[13] = (byte)tpid;
        tagged[14] = (byte)(tci >> 8);
        tagged[15] = (byte)tci;
        ref VirtioNetHdr vnet = ref *(VirtioNetHdr*)(tagged - VirtioNetHdr.Size);
        if ((vnet.Flags & VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0)
        {
            vnet.CsumStart += Length;
        }

        if (vnet.GsoType != VirtioNetHdr.VIRTIO_NET_HDR_GSO_NONE)
        {
            vnet.HdrLen += Length;
        }

        return tagged;
    }
}
