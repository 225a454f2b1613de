using System.Buffers.Binary;
using System.Net;
using Virtnet.Native;
using Virtnet.Netlink;
using Xunit;

namespace Virtnet.Tests.Netlink;

/// <summary>Pure codec tests: no socket, no root. Golden bytes are what iproute2 6.x sends (strace -xx), seq aside.</summary>
public class NetlinkCodecTests
{
    private const ushort RequestAck = Nl.NLM_F_REQUEST | Nl.NLM_F_ACK;

    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    private static byte[] WriteLink(ushort type, ushort flags, uint seq, LinkRequest request)
    {
        var buffer = new byte[4096];
        var w = new NetlinkWriter(buffer);
        RtnlCodec.WriteLink(ref w, type, flags, seq, request);
        return w.EndMessage().ToArray();
    }

    [Fact]
    public void WriteLink_SetMtuOnIfindex7_MatchesIpLinkSetMtu()
    {
        // ip link set dev X mtu 65536: nlmsghdr, ifinfomsg (ifindex 7), IFLA_MTU.
        byte[] expected = Hex(
            "28000000 1000 0500 01000000 00000000" +
            "00 00 0000 07000000 00000000 00000000" +
            "0800 0400 00000100");
        byte[] actual = WriteLink(Rtnl.RTM_NEWLINK, RequestAck, 1, new LinkRequest { Index = 7, Mtu = 65536 });
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
    }

    [Fact]
    public void WriteLink_SetUp_MatchesIpLinkSetUp()
    {
        byte[] expected = Hex(
            "20000000 1000 0500 02000000 00000000" +
            "00 00 0000 03000000 01000000 01000000");
        byte[] actual = WriteLink(Rtnl.RTM_NEWLINK, RequestAck, 2, new LinkRequest { Index = 3, Flags = Ifla.IFF_UP, Change = Ifla.IFF_UP });
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
    }

    [Fact]
    public void WriteLink_Alias_SentWithoutNulLikeIp()
    {
        // ip link set dev va alias hello: IFLA_IFALIAS nla_len 9, "hello", 3 bytes of padding.
        byte[] expected = Hex(
            "2c000000 1000 0500 03000000 00000000" +
            "00 00 0000 03000000 00000000 00000000" +
            "0900 1400 68656c6c6f 000000");
        byte[] actual = WriteLink(Rtnl.RTM_NEWLINK, RequestAck, 3, new LinkRequest { Index = 3, Alias = "hello" });
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
    }

    [Fact]
    public void WriteLink_VethWithPeer_MatchesIpLinkAddVeth()
    {
        // ip link add vx type veth peer name vy (84 bytes).
        byte[] expected = Hex(
            "54000000 1000 0506 04000000 00000000" +          // REQUEST|ACK|EXCL|CREATE
            "00000000 00000000 00000000 00000000" +           // ifinfomsg
            "0700 0300 767800 00" +                           // IFLA_IFNAME "vx"
            "2c00 1200" +                                     // IFLA_LINKINFO (44)
            "  0800 0100 76657468" +                          //   IFLA_INFO_KIND "veth"
            "  2000 0200" +                                   //   IFLA_INFO_DATA (32)
            "    1c00 0100" +                                 //     VETH_INFO_PEER (28)
            "      00000000 00000000 00000000 00000000" +     //       ifinfomsg
            "      0700 0300 767900 00");                     //       IFLA_IFNAME "vy"
        byte[] actual = WriteLink(
            Rtnl.RTM_NEWLINK,
            RequestAck | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL,
            4,
            new LinkRequest { Name = "vx", Kind = "veth", PeerName = "vy" });
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
    }

    [Fact]
    public void WriteLink_VethWithNamespaceFds_MatchesIpLinkAddVethNetns()
    {
        // ip link add vx netns NS type veth peer name vy netns NS, with the namespace opened as fds 4 and 5 (100 bytes).
        byte[] expected = Hex(
            "64000000 1000 0506 05000000 00000000" +
            "00000000 00000000 00000000 00000000" +
            "0800 1c00 04000000" +                            // IFLA_NET_NS_FD 4
            "0700 0300 767800 00" +
            "3400 1200" +                                     // IFLA_LINKINFO (52)
            "  0800 0100 76657468" +
            "  2800 0200" +                                   //   IFLA_INFO_DATA (40)
            "    2400 0100" +                                 //     VETH_INFO_PEER (36)
            "      00000000 00000000 00000000 00000000" +
            "      0800 1c00 05000000" +                      //       IFLA_NET_NS_FD 5
            "      0700 0300 767900 00");
        byte[] actual = WriteLink(
            Rtnl.RTM_NEWLINK,
            RequestAck | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL,
            5,
            new LinkRequest { Name = "vx", NsFd = 4, Kind = "veth", PeerName = "vy", PeerNsFd = 5 });
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
    }

    [Fact]
    public void WriteAddress_Ipv4_MatchesIpAddrAdd()
    {
        // ip addr add 10.0.0.1/24 dev X (ifindex 3): IFA_LOCAL and IFA_ADDRESS.
        byte[] expected = Hex(
            "28000000 1400 0506 06000000 00000000" +
            "02 18 00 00 03000000" +
            "0800 0200 0a000001" +
            "0800 0100 0a000001");
        var buffer = new byte[256];
        var w = new NetlinkWriter(buffer);
        RtnlCodec.WriteAddress(ref w, Rtnl.RTM_NEWADDR, RequestAck | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL, 6, 3, IPAddress.Parse("10.0.0.1"), 24);
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(w.EndMessage()));
    }

    [Fact]
    public void WriteAddress_Ipv6_CarriesNodadInHeaderAndIfaFlags()
    {
        byte[] expected = Hex(
            "34000000 1400 0506 07000000 00000000" +
            "0a 40 02 00 03000000" +                          // AF_INET6, /64, IFA_F_NODAD
            "1400 0100 fd000000000000000000000000000001" +    // IFA_ADDRESS fd00::1
            "0800 0800 02000000");                            // IFA_FLAGS IFA_F_NODAD
        var buffer = new byte[256];
        var w = new NetlinkWriter(buffer);
        RtnlCodec.WriteAddress(ref w, Rtnl.RTM_NEWADDR, RequestAck | Nl.NLM_F_CREATE | Nl.NLM_F_EXCL, 7, 3, IPAddress.Parse("fd00::1"), 64);
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(w.EndMessage()));
    }

    [Fact]
    public void WriteNeighborDump_Ifindex_PutsIndexInHeaderAndAttribute()
    {
        byte[] expected = Hex(
            "24000000 1e00 0103 08000000 00000000" +          // RTM_GETNEIGH, REQUEST|DUMP
            "00 00 0000 05000000 0000 00 00" +                // ndmsg, ifindex 5
            "0800 0800 05000000");                            // NDA_IFINDEX 5
        var buffer = new byte[256];
        var w = new NetlinkWriter(buffer);
        RtnlCodec.WriteNeighborDump(ref w, 8, 5);
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(w.EndMessage()));
    }

    [Fact]
    public void EndNested_ThreeLevels_PatchesEachLengthAndReadsBack()
    {
        var buffer = new byte[256];
        var w = new NetlinkWriter(buffer);
        w.BeginMessage(100, Nl.NLM_F_REQUEST, 9);
        int outer = w.BeginNested(1);
        w.PutU8(2, 0xAB);                       // 8 bytes with padding
        int middle = w.BeginNested(3);
        int inner = w.BeginNested(4);
        w.PutU64(5, 0x0102030405060708);        // 12 bytes
        w.EndNested(inner);                     // 4 + 12 = 16
        w.PutString(6, "abc");                  // 8 bytes
        w.EndNested(middle);                    // 4 + 16 + 8 = 28
        w.EndNested(outer);                     // 4 + 8 + 28 = 40
        ReadOnlySpan<byte> message = w.EndMessage();

        Assert.Equal(16 + 40, message.Length);
        Assert.Equal(56u, BinaryPrimitives.ReadUInt32LittleEndian(message));
        Assert.Equal(40, BinaryPrimitives.ReadUInt16LittleEndian(message[outer..]));
        Assert.Equal(28, BinaryPrimitives.ReadUInt16LittleEndian(message[middle..]));
        Assert.Equal(16, BinaryPrimitives.ReadUInt16LittleEndian(message[inner..]));

        var reader = new NetlinkMessageReader(message);
        Assert.True(reader.TryRead(out var m));
        Assert.Equal(100, m.Type);
        Assert.Equal(9u, m.Seq);
        var top = m.Attributes(0);
        Assert.True(top.TryRead(out var a1));
        Assert.Equal(1, a1.Type);
        var level1 = a1.Nested();
        Assert.True(level1.TryRead(out var u8));
        Assert.Equal(0xAB, u8.U8());
        Assert.True(level1.TryRead(out var a3));
        var level2 = a3.Nested();
        Assert.True(level2.TryRead(out var a4));
        var level3 = a4.Nested();
        Assert.True(level3.TryRead(out var u64));
        Assert.Equal(0x0102030405060708ul, u64.U64());
        Assert.False(level3.TryRead(out _));
        Assert.True(level2.TryRead(out var s));
        Assert.Equal("abc", s.String());
        Assert.False(level2.TryRead(out _));
        Assert.False(level1.TryRead(out _));
        Assert.False(top.TryRead(out _));
        Assert.False(reader.TryRead(out _));
    }

    [Fact]
    public void Writer_BufferTooSmall_ThrowsEmsgsize()
    {
        var ex = Assert.Throws<VirtnetException>(() =>
        {
            var buffer = new byte[32];
            var w = new NetlinkWriter(buffer);
            w.BeginMessage(Rtnl.RTM_NEWLINK, RequestAck, 1);
            w.WriteStruct(new IfInfoMsg());
            w.PutString(Ifla.IFLA_IFNAME, "too-long-for-the-buffer");
        });
        Assert.Equal(Errno.EMSGSIZE, ex.Errno);
    }

    [Fact]
    public void DecodeLink_CapturedVethNewLink_DecodesEveryField()
    {
        byte[] datagram = Convert.FromHexString(CapturedMessages.VethNewLinkHex);
        var reader = new NetlinkMessageReader(datagram);
        Assert.True(reader.TryRead(out var m));
        Assert.Equal(Rtnl.RTM_NEWLINK, m.Type);
        LinkInfo link = RtnlCodec.DecodeLink(m);
        Assert.False(reader.TryRead(out _));

        Assert.Equal(3, link.Index);
        Assert.Equal("va", link.Name);
        Assert.Equal(1400, link.Mtu);
        Assert.Equal(Hex("02000000000a"), link.Mac);
        Assert.Equal("veth", link.Kind);
        Assert.Equal("hello", link.Alias);
        Assert.Equal(1, link.Type);
        Assert.True(link.IsUp);
        Assert.True(link.IsLowerUp);
        Assert.True(link.Carrier);
        Assert.False(link.IsLoopback);
        Assert.False(link.Deleted);
        Assert.NotNull(link.Stats);
        Assert.Equal(new LinkStats(RxPackets: 1, TxPackets: 1, RxBytes: 90, TxBytes: 90, RxDropped: 0, TxDropped: 0), link.Stats);
    }

    [Fact]
    public void DecodeLink_DelLinkType_SetsDeleted()
    {
        byte[] datagram = Convert.FromHexString(CapturedMessages.VethNewLinkHex);
        BinaryPrimitives.WriteUInt16LittleEndian(datagram.AsSpan(4), Rtnl.RTM_DELLINK);
        var reader = new NetlinkMessageReader(datagram);
        Assert.True(reader.TryRead(out var m));
        Assert.True(RtnlCodec.DecodeLink(m).Deleted);
    }

    [Fact]
    public void DecodeLink_RoundTripOfWrittenRequest_ReturnsWrittenFields()
    {
        byte[] message = WriteLink(Rtnl.RTM_NEWLINK, 0, 1, new LinkRequest
        {
            Index = 42,
            Flags = Ifla.IFF_UP,
            Name = "tap0",
            Mtu = 9000,
            Mac = Hex("020000000001"),
            Alias = "uplink",
            Carrier = false,
            Kind = "tun",
        });
        var reader = new NetlinkMessageReader(message);
        Assert.True(reader.TryRead(out var m));
        LinkInfo link = RtnlCodec.DecodeLink(m);
        Assert.Equal(42, link.Index);
        Assert.Equal("tap0", link.Name);
        Assert.Equal(9000, link.Mtu);
        Assert.Equal(Hex("020000000001"), link.Mac);
        Assert.Equal("uplink", link.Alias);
        Assert.Equal("tun", link.Kind);
        Assert.True(link.IsUp);
        Assert.False(link.Carrier);
        Assert.Null(link.Stats);
    }

    [Fact]
    public void ParseError_CapturedMtuError_CarriesErrnoAndExtackText()
    {
        byte[] datagram = Convert.FromHexString(CapturedMessages.MtuErrorHex);
        Assert.Equal(96, datagram.Length);
        var reader = new NetlinkMessageReader(datagram);
        Assert.True(reader.TryRead(out var m));
        Assert.Equal(Nl.NLMSG_ERROR, m.Type);
        NetlinkError error = RtnlCodec.ParseError(m);
        Assert.Equal(-(int)Errno.EINVAL, error.Error);
        Assert.Equal("mtu greater than device maximum", error.Message);
    }

    [Fact]
    public void ParseError_CappedWithOffset_ReadsTlvsAfterHeaderOnly()
    {
        // NETLINK_CAP_ACK style: only the request's nlmsghdr is echoed; MSG and OFFS follow.
        byte[] datagram = Hex(
            "38000000 0200 0003 01000000 00000000" +          // NLMSG_ERROR, CAPPED|ACK_TLVS, 56 bytes
            "deffffff" +                                      // -34 ERANGE
            "28000000 1000 0500 01000000 00000000" +          // echoed header only
            "0c00 0100 626164206d747500" +                    // NLMSGERR_ATTR_MSG "bad mtu"
            "0800 0200 20000000");                            // NLMSGERR_ATTR_OFFS 32
        var reader = new NetlinkMessageReader(datagram);
        Assert.True(reader.TryRead(out var m));
        NetlinkError error = RtnlCodec.ParseError(m);
        Assert.Equal(-(int)Errno.ERANGE, error.Error);
        Assert.Equal("bad mtu", error.Message);
        Assert.Equal(32u, error.Offset);
    }

    [Fact]
    public void ParseError_Ack_ReturnsZeroWithoutText()
    {
        byte[] datagram = Hex("24000000 0200 0001 05000000 d50f0000 00000000 20000000 1000 0500 05000000 00000000");
        var reader = new NetlinkMessageReader(datagram);
        Assert.True(reader.TryRead(out var m));
        NetlinkError error = RtnlCodec.ParseError(m);
        Assert.Equal(0, error.Error);
        Assert.Null(error.Message);
    }

    [Fact]
    public void VirtnetException_FromExtack_MessageHasKernelText()
    {
        var ex = new VirtnetException("RTM_NEWLINK", "va", Errno.EINVAL, "mtu greater than device maximum");
        Assert.Equal("RTM_NEWLINK on va: EINVAL (Invalid argument): mtu greater than device maximum", ex.Message);
    }

    [Theory]
    [InlineData("0f000000")]                                  // shorter than a header
    [InlineData("08000000 1000 0000 00000000 00000000")]      // nlmsg_len 8 < 16
    [InlineData("40000000 1000 0000 00000000 00000000")]      // nlmsg_len past the end
    public void MessageReader_BadLength_ThrowsVirtnetException(string hex)
    {
        byte[] bytes = Hex(hex);
        var ex = Assert.Throws<VirtnetException>(() =>
        {
            var reader = new NetlinkMessageReader(bytes);
            reader.TryRead(out _);
        });
        Assert.Equal(Errno.EBADMSG, ex.Errno);
    }

    [Fact]
    public void DecodeLink_AttributeLengthPastEnd_ThrowsVirtnetException()
    {
        byte[] bytes = Hex(
            "24000000 1000 0000 00000000 00000000" +
            "00000000 01000000 00000000 00000000" +
            "4000 0300 6c6f0000");                            // IFLA_IFNAME claims 64 bytes
        var ex = Assert.Throws<VirtnetException>(() =>
        {
            var reader = new NetlinkMessageReader(bytes);
            reader.TryRead(out var m);
            RtnlCodec.DecodeLink(m);
        });
        Assert.Equal(Errno.EBADMSG, ex.Errno);
    }

    [Fact]
    public void DecodeLink_ShortMtuAttribute_ThrowsVirtnetException()
    {
        byte[] bytes = Hex(
            "28000000 1000 0000 00000000 00000000" +
            "00000000 01000000 00000000 00000000" +
            "0600 0400 dc05 0000" +                           // IFLA_MTU with 2 bytes
            "0700 0300 6c6f00 00");
        Assert.Throws<VirtnetException>(() =>
        {
            var reader = new NetlinkMessageReader(bytes);
            reader.TryRead(out var m);
            RtnlCodec.DecodeLink(m);
        });
    }

    [Fact]
    public void Decode_RandomBytes_ThrowsOnlyVirtnetException()
    {
        var random = new Random(12345);
        var buffer = new byte[512];
        for (int i = 0; i < 20_000; i++)
        {
            int length = random.Next(buffer.Length);
            random.NextBytes(buffer.AsSpan(0, length));

            // Make the first header plausible half of the time so the attribute parsers get exercised too.
            if (length >= 16 && random.Next(2) == 0)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)random.Next(16, length + 1));
            }

            DecodeAll(buffer.AsSpan(0, length).ToArray());
        }
    }

    [Fact]
    public void Decode_MutatedCapture_ThrowsOnlyVirtnetException()
    {
        byte[] original = Convert.FromHexString(CapturedMessages.VethNewLinkHex);
        var random = new Random(54321);
        for (int i = 0; i < 5_000; i++)
        {
            byte[] bytes = (byte[])original.Clone();
            int flips = random.Next(1, 8);
            for (int f = 0; f < flips; f++)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            int length = random.Next(2) == 0 ? bytes.Length : random.Next(bytes.Length);
            DecodeAll(bytes.AsSpan(0, length).ToArray());
        }
    }

    /// <summary>Runs every decoder on the bytes; anything but VirtnetException fails the test.</summary>
    private static void DecodeAll(byte[] bytes)
    {
        try
        {
            var reader = new NetlinkMessageReader(bytes);
            while (reader.TryRead(out var m))
            {
                switch (m.Type % 4)
                {
                    case 0:
                        RtnlCodec.DecodeLink(m);
                        break;
                    case 1:
                        RtnlCodec.DecodeNeighbor(m);
                        break;
                    case 2:
                        RtnlCodec.ParseError(m);
                        break;
                    default:
                        RtnlCodec.ParseDone(m);
                        break;
                }

                RtnlCodec.DecodeLink(m);
            }
        }
        catch (VirtnetException)
        {
        }
    }
}
