// Test frames for the benchmarks: a virtio_net_hdr (10 bytes, all zero: no offload) followed by an Ethernet frame.
using System.Buffers.Binary;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Benchmarks;

public enum FrameKind
{
    /// <summary>IPv4/UDP, no tag: the common case.</summary>
    Untagged,

    /// <summary>One 802.1Q tag (VLAN 100) in front of IPv4.</summary>
    Vlan,

    /// <summary>802.1ad outer tag and 802.1Q inner tag (QinQ) in front of IPv4.</summary>
    QinQ,
}

internal static class Frames
{
    /// <summary>A 64-byte Ethernet frame (as the end-to-end benchmark sends) behind a zeroed virtio_net_hdr.</summary>
    public static byte[] Make(FrameKind kind, int frameLength = 64)
    {
        var raw = new byte[VirtioNetHdr.Size + frameLength];
        var eth = raw.AsSpan(VirtioNetHdr.Size);
        ReadOnlySpan<byte> dst = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
        ReadOnlySpan<byte> src = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
        dst.CopyTo(eth);
        src.CopyTo(eth[6..]);
        int offset = 12;
        if (kind == FrameKind.QinQ)
        {
            BinaryPrimitives.WriteUInt16BigEndian(eth[offset..], EthernetView.EtherTypeQinQ);
            BinaryPrimitives.WriteUInt16BigEndian(eth[(offset + 2)..], 200);
            offset += 4;
        }

        if (kind is FrameKind.Vlan or FrameKind.QinQ)
        {
            BinaryPrimitives.WriteUInt16BigEndian(eth[offset..], EthernetView.EtherTypeVlan);
            BinaryPrimitives.WriteUInt16BigEndian(eth[(offset + 2)..], 100);
            offset += 4;
        }

        BinaryPrimitives.WriteUInt16BigEndian(eth[offset..], EthernetView.EtherTypeIPv4);
        eth[offset + 2] = 0x45;
        return raw;
    }
}

/// <summary>A handler that looks at the frame and passes it on, as a counter or a filter that matches nothing would.</summary>
public sealed class CountingHandler : IFrameHandler
{
    internal long Frames;
    internal long Tagged;

    public Verdict OnFrame(ref Frame frame)
    {
        Frames++;
        if (frame.Ethernet.HasVlanTag)
        {
            Tagged++;
        }

        return Verdict.Pass;
    }
}

/// <summary>A handler that drops every frame with a static reason (no allocation).</summary>
public sealed class DroppingHandler : IFrameHandler
{
    public Verdict OnFrame(ref Frame frame)
    {
        frame.DropReason = "benchmark drop";
        return Verdict.Consumed;
    }
}
