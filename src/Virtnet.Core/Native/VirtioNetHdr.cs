// linux/virtio_net.h
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>struct virtio_net_hdr: 10 bytes, little-endian on x86_64 and arm64 TAPs.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1, Size = 10)]
public struct VirtioNetHdr
{
    public const byte VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
    public const byte VIRTIO_NET_HDR_F_DATA_VALID = 2;
    public const byte VIRTIO_NET_HDR_GSO_NONE = 0;
    public const byte VIRTIO_NET_HDR_GSO_TCPV4 = 1;
    public const byte VIRTIO_NET_HDR_GSO_UDP = 3;
    public const byte VIRTIO_NET_HDR_GSO_TCPV6 = 4;
    public const byte VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
    public const byte VIRTIO_NET_HDR_GSO_ECN = 0x80;
    public const int Size = 10;

    public byte Flags;
    public byte GsoType;
    public ushort HdrLen;
    public ushort GsoSize;
    public ushort CsumStart;
    public ushort CsumOffset;
}
