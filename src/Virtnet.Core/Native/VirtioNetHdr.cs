// linux/virtio_net.h
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>struct virtio_net_hdr: 10 bytes, little-endian on x86_64 and arm64 TAPs.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1, Size = 10)]
public struct VirtioNetHdr
{
    /// <summary>Flag: the checksum at CsumStart + CsumOffset is still to be computed (a checksum-offloaded frame).</summary>
    public const byte VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;

    /// <summary>Flag: the checksum was already verified.</summary>
    public const byte VIRTIO_NET_HDR_F_DATA_VALID = 2;

    /// <summary>Not a GSO super-frame.</summary>
    public const byte VIRTIO_NET_HDR_GSO_NONE = 0;

    /// <summary>A TCP/IPv4 super-frame, to be cut into GsoSize segments.</summary>
    public const byte VIRTIO_NET_HDR_GSO_TCPV4 = 1;

    /// <summary>UDP fragmentation offload (UFO).</summary>
    public const byte VIRTIO_NET_HDR_GSO_UDP = 3;

    /// <summary>A TCP/IPv6 super-frame.</summary>
    public const byte VIRTIO_NET_HDR_GSO_TCPV6 = 4;

    /// <summary>A UDP super-frame cut into datagrams (USO, Linux 6.2).</summary>
    public const byte VIRTIO_NET_HDR_GSO_UDP_L4 = 5;

    /// <summary>Added to a TCP GSO type: the segments carry ECN.</summary>
    public const byte VIRTIO_NET_HDR_GSO_ECN = 0x80;

    /// <summary>The header's size in bytes (10, without the mergeable-buffers field).</summary>
    public const int Size = 10;

    /// <summary>VIRTIO_NET_HDR_F_* flags.</summary>
    public byte Flags;

    /// <summary>VIRTIO_NET_HDR_GSO_* type.</summary>
    public byte GsoType;

    /// <summary>With GSO: the length of the headers each segment repeats.</summary>
    public ushort HdrLen;

    /// <summary>With GSO: the payload size of each segment.</summary>
    public ushort GsoSize;

    /// <summary>With NEEDS_CSUM: where checksumming starts, from the frame's first byte.</summary>
    public ushort CsumStart;

    /// <summary>With NEEDS_CSUM: where the checksum goes, from CsumStart.</summary>
    public ushort CsumOffset;
}
