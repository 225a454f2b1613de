// 802.1Q-tagged frames cross virtnet with their tag, once, each way. There is no 8021q module here, so the frames
// are made and captured with AF_PACKET sockets. A received tag may be inline or (usually) stripped by the kernel
// into PACKET_AUXDATA; either counts as "arrived with its tag".
using System.Buffers.Binary;
using System.Text;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class VlanTests(ITestOutputHelper output)
{
    private const int X = 3;
    private const ushort Vid = 42;
    private const ushort Pcp = 5;
    private const ushort Tci = (Pcp << 13) | Vid;
    // IEEE 802 local experimental EtherType: nothing on either side handles it.
    private const ushort ExperimentalEtherType = 0x88B5;

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Vlan_TaggedFrameEachWay_ArrivesOnceWithItsTag(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"vlan{datapath[0]}", X, output);
        lab.Up(datapath);

        // wire -> virtual: sent on vb, captured on virtnet0.
        AssertTaggedFrameCrosses(lab.B, Lab.Peer, lab.A, Lab.Virtual, output);
        // virtual -> wire: sent on virtnet0, captured on vb.
        AssertTaggedFrameCrosses(lab.A, Lab.Virtual, lab.B, Lab.Peer, output);
    }

    /// <summary>Sends one tagged frame on fromDev and asserts it is captured on toDev exactly once, tag and bytes intact.</summary>
    internal static void AssertTaggedFrameCrosses(TestNetns fromNs, string fromDev, TestNetns toNs, string toDev, ITestOutputHelper output)
    {
        string marker = $"virtnet-vlan-{Guid.NewGuid():N}";
        byte[] payload = Encoding.ASCII.GetBytes(marker.PadRight(64, '.'));
        byte[] dst = Net.MacBytes(toNs, toDev);
        byte[] src = Net.MacBytes(fromNs, fromDev);

        var frame = new byte[18 + payload.Length];
        dst.CopyTo(frame, 0);
        src.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), PacketSocket.EtherTypeVlan);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), Tci);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), ExperimentalEtherType);
        payload.CopyTo(frame, 18);

        using var capture = PacketSocket.Open(toNs, toDev);
        using var sender = PacketSocket.Open(fromNs, fromDev);
        byte[] needle = Encoding.ASCII.GetBytes(marker);
        bool Mine(PacketSocket.Captured c) => c.Data.AsSpan().IndexOf(needle) >= 0;
        sender.Send(frame);
        var frames = capture.Capture(Mine, deadline: TimeSpan.FromSeconds(3), settle: TimeSpan.FromMilliseconds(500));

        var mine = frames.Where(Mine).ToList();
        string what = $"tagged frame (VID {Vid}, PCP {Pcp}) {fromDev} -> {toDev}";
        foreach (var c in mine)
        {
            output.WriteLine($"{what}: {Describe(c)}");
        }

        Assert.True(mine.Count > 0, $"{what}: never captured on {toDev} ({frames.Count} other frames seen)");
        Assert.True(mine.Count == 1, $"{what}: captured {mine.Count} times (duplicates)");
        var got = mine[0];
        var (tci, etherType, body) = Decode(got);
        Assert.True(tci is not null, $"{what}: arrived without a VLAN tag: {Describe(got)}");
        Assert.Equal(Vid, (ushort)(tci!.Value & 0x0FFF));
        Assert.Equal(Tci, tci.Value);
        Assert.Equal(ExperimentalEtherType, etherType);
        Assert.True(body.Length >= payload.Length && body.AsSpan(0, payload.Length).SequenceEqual(payload), $"{what}: payload changed: {Describe(got)}");
        Assert.True(dst.AsSpan().SequenceEqual(got.Data.AsSpan(0, 6)) && src.AsSpan().SequenceEqual(got.Data.AsSpan(6, 6)), $"{what}: MAC addresses changed: {Describe(got)}");
    }

    /// <summary>The tag (inline or from auxdata), the inner EtherType and what follows.</summary>
    private static (ushort? Tci, ushort EtherType, byte[] Body) Decode(PacketSocket.Captured c)
    {
        var d = c.Data;
        ushort outer = BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(12));
        if (outer == PacketSocket.EtherTypeVlan && !c.AuxVlanValid)
        {
            return (BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(14)), BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(16)), d[18..]);
        }

        if (outer == PacketSocket.EtherTypeVlan && c.AuxVlanValid)
        {
            // Two tags (one out of band, one inline) would be a doubled tag: report it as the inline one's
            // EtherType so the assertion on the inner type fails loudly.
            return (c.AuxVlanTci, outer, d[14..]);
        }

        return (c.AuxVlanValid ? c.AuxVlanTci : null, outer, d[14..]);
    }

    private static string Describe(PacketSocket.Captured c)
        => $"{c.Data.Length} bytes, aux vlan {(c.AuxVlanValid ? $"tci 0x{c.AuxVlanTci:x4} tpid 0x{c.AuxVlanTpid:x4}" : "none")}, head {Convert.ToHexString(c.Data.AsSpan(0, Math.Min(24, c.Data.Length)))}";
}
