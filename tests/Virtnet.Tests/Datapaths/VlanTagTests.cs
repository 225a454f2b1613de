using Virtnet.Datapaths;
using Virtnet.Datapaths.User;
using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Datapaths;

/// <summary>The 802.1Q tag a ring frame lost to the skb's metadata, put back in front of the EtherType. Pure: a byte buffer stands for a ring slot.</summary>
public sealed unsafe class VlanTagTests
{
    private const int Headroom = 16;

    private static byte[] Slot(byte flags, byte gso, ushort csumStart, ushort hdrLen, out int macOffset)
    {
        // [headroom][virtio_net_hdr][dst 6][src 6][type 2][payload]
        var slot = new byte[Headroom + VirtioNetHdr.Size + 14 + 8];
        macOffset = Headroom + VirtioNetHdr.Size;
        fixed (byte* s = slot)
        {
            ref var vnet = ref *(VirtioNetHdr*)(s + Headroom);
            vnet.Flags = flags;
            vnet.GsoType = gso;
            vnet.CsumStart = csumStart;
            vnet.HdrLen = hdrLen;
        }

        for (int i = 0; i < 12; i++)
        {
            slot[macOffset + i] = (byte)(0xA0 + i);
        }

        slot[macOffset + 12] = 0x08;
        slot[macOffset + 13] = 0x00;
        for (int i = 0; i < 8; i++)
        {
            slot[macOffset + 14 + i] = (byte)(0x40 + i);
        }

        return slot;
    }

    [Fact]
    public void Restore_PlainFrame_TagSitsBeforeEtherTypeAndMacsMoveFront()
    {
        var slot = Slot(0, VirtioNetHdr.VIRTIO_NET_HDR_GSO_NONE, 0, 0, out int mac);
        fixed (byte* s = slot)
        {
            byte* tagged = VlanTag.Restore(s + mac, EthernetView.EtherTypeVlan, 0x2064);
            Assert.True(s + mac - VlanTag.Length == tagged);
            var frame = new Span<byte>(tagged, 14 + VlanTag.Length + 8).ToArray();
            Assert.Equal(Enumerable.Range(0, 12).Select(i => (byte)(0xA0 + i)), frame[..12]);
            Assert.Equal(new byte[] { 0x81, 0x00, 0x20, 0x64, 0x08, 0x00 }, frame[12..18]);
            Assert.Equal(Enumerable.Range(0, 8).Select(i => (byte)(0x40 + i)), frame[18..]);
            var view = new EthernetView(frame);
            Assert.Equal(0x064, view.VlanId);
            Assert.Equal(EthernetView.EtherTypeIPv4, view.InnerEtherType);
        }
    }

    [Fact]
    public void Restore_OffloadedFrame_ChecksumStartAndGsoHeaderLengthMoveWithThePayload()
    {
        var slot = Slot(VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM, VirtioNetHdr.VIRTIO_NET_HDR_GSO_TCPV4, csumStart: 34, hdrLen: 66, out int mac);
        fixed (byte* s = slot)
        {
            byte* tagged = VlanTag.Restore(s + mac, EthernetView.EtherTypeVlan, 7);
            ref var vnet = ref *(VirtioNetHdr*)(tagged - VirtioNetHdr.Size);
            Assert.Equal(VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM, vnet.Flags);
            Assert.Equal(VirtioNetHdr.VIRTIO_NET_HDR_GSO_TCPV4, vnet.GsoType);
            Assert.Equal(38, vnet.CsumStart);
            Assert.Equal(70, vnet.HdrLen);
        }
    }

    [Fact]
    public void Restore_NoOffload_HeaderOffsetsUntouched()
    {
        var slot = Slot(0, VirtioNetHdr.VIRTIO_NET_HDR_GSO_NONE, csumStart: 34, hdrLen: 66, out int mac);
        fixed (byte* s = slot)
        {
            ref var vnet = ref *(VirtioNetHdr*)(VlanTag.Restore(s + mac, EthernetView.EtherTypeVlan, 7) - VirtioNetHdr.Size);
            Assert.Equal(34, vnet.CsumStart);
            Assert.Equal(66, vnet.HdrLen);
        }
    }

    [Theory]
    [InlineData(Packet.TP_STATUS_VLAN_VALID, 0x88A8, 0x8100)] // TPID not said to be valid: 802.1Q
    [InlineData(Packet.TP_STATUS_VLAN_VALID | Packet.TP_STATUS_VLAN_TPID_VALID, 0x88A8, 0x88A8)] // 802.1ad kept
    [InlineData(Packet.TP_STATUS_VLAN_VALID | Packet.TP_STATUS_VLAN_TPID_VALID, 0, 0x8100)] // valid but zero: 802.1Q
    public void Tpid_FromRingStatus(uint status, int reported, int expected)
        => Assert.Equal((ushort)expected, VlanTag.Tpid(status, (ushort)reported));
}
