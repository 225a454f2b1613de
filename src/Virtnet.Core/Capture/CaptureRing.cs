// A capture point's tap: an AF_PACKET socket on one device with a TPACKET_V3 receive ring (linux/if_packet.h).
// Packet taps see a device's frames where `tcpdump -i DEV` does: what it receives before tcx ingress runs (so a
// frame a binding takes is still seen on the real device), what it sends as the driver gets it. V3 rather than
// the datapath's V2: frames are packed into big blocks whatever their length (a GSO super-frame and a 64-byte
// frame cost their own size), and a reader that cannot keep up costs the datapath nothing: the kernel drops what
// finds no room and counts it (PACKET_STATISTICS), which is the capture's "not captured" figure.
//
// The socket exists only while a capture runs: with no capture, nothing of this is on any frame's path.
using System.Runtime.InteropServices;
using Virtnet.Native;

namespace Virtnet.Capture;

/// <summary>Which of a device's frames a ring takes.</summary>
[Flags]
internal enum TapDirections
{
    /// <summary>Frames the device receives.</summary>
    Incoming = 1,

    /// <summary>Frames the device sends.</summary>
    Outgoing = 2,
}

/// <summary>One frame in a ring, valid until the ring moves on.</summary>
internal readonly unsafe ref struct TappedFrame
{
    public TappedFrame(byte* data, int captured, int length, long unixNanos, bool outgoing, int vlanTag, DropRecord? drop = null)
    {
        Data = new ReadOnlySpan<byte>(data, captured);
        Length = length;
        UnixNanos = unixNanos;
        Outgoing = outgoing;
        VlanTag = vlanTag;
        Drop = drop;
    }

    /// <summary>For a frame of the drop point: why, where and by whom it was dropped; null otherwise.</summary>
    public DropRecord? Drop { get; }

    /// <summary>The frame's bytes as captured (the whole frame unless it was longer than a ring block).</summary>
    public ReadOnlySpan<byte> Data { get; }

    /// <summary>Its length on the device.</summary>
    public int Length { get; }

    /// <summary>When the tap saw it, in nanoseconds since the Unix epoch.</summary>
    public long UnixNanos { get; }

    /// <summary>Sent by the device (PACKET_OUTGOING) rather than received.</summary>
    public bool Outgoing { get; }

    /// <summary>-1, or the 802.1Q tag (TPID &lt;&lt; 16 | TCI) the skb carried out of the frame (VLAN offload).</summary>
    public int VlanTag { get; }
}

internal sealed unsafe class CaptureRing : IDisposable
{
    private const int TPACKET_V3 = 2;
    private const int BlockSize = 1 << 20;
    private const int FrameSize = 2048;
    private const int RetireMs = 20;

    // tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status, num_pkts, offset_to_first_pkt.
    private const int BlockStatus = 8;
    private const int BlockPackets = 12;
    private const int BlockFirst = 16;

    // tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac (u16), tp_net (u16),
    // hv1 { tp_rxhash, tp_vlan_tci, tp_vlan_tpid (u16) }; sockaddr_ll at TPACKET_ALIGN(48), its sll_pkttype at 10.
    private const int HdrSec = 4;
    private const int HdrNsec = 8;
    private const int HdrSnap = 12;
    private const int HdrLen = 16;
    private const int HdrStatus = 20;
    private const int HdrMac = 24;
    private const int HdrVlanTci = 32;
    private const int HdrVlanTpid = 36;
    private const int PktTypeOffset = 48 + 10;

    private readonly FileDescriptor _fd;
    private readonly byte* _ring;
    private readonly int _blocks;
    private readonly nuint _length;
    private readonly TapDirections _directions;
    private int _block;

    private CaptureRing(FileDescriptor fd, byte* ring, int blocks, nuint length, TapDirections directions)
    {
        _fd = fd;
        _ring = ring;
        _blocks = blocks;
        _length = length;
        _directions = directions;
    }

    public FileDescriptor Handle => _fd;

    /// <summary>
    /// A ring of <paramref name="megabytes"/> MB on the device <paramref name="ifindex"/> of the calling thread's
    /// namespace, taking the frames of <paramref name="directions"/> that <paramref name="filter"/> (a SOCKET_FILTER
    /// program; null: all) passes. It receives from the moment it returns.
    /// </summary>
    public static CaptureRing Open(int ifindex, string device, TapDirections directions, FileDescriptor? filter, int megabytes = 16)
    {
        // Protocol 0 until the ring and the filter are in place: nothing is queued before it can be read.
        var fd = FileDescriptor.FromResult(Libc.socket(Packet.AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0), "socket(AF_PACKET)", device);
        try
        {
            SetInt(fd, Packet.PACKET_VERSION, TPACKET_V3, device, "PACKET_VERSION");
            if (!directions.HasFlag(TapDirections.Outgoing))
            {
                SetInt(fd, Packet.PACKET_IGNORE_OUTGOING, 1, device, "PACKET_IGNORE_OUTGOING");
            }

            int blocks = Math.Max(2, megabytes * (1 << 20) / BlockSize);
            uint* req = stackalloc uint[7];
            req[0] = BlockSize;
            req[1] = (uint)blocks;
            req[2] = FrameSize;
            req[3] = (uint)((long)BlockSize * blocks / FrameSize);
            req[4] = RetireMs;
            req[5] = 0;
            req[6] = 0;
            if (Libc.setsockopt(fd.Fd, Packet.SOL_PACKET, Packet.PACKET_RX_RING, req, 7 * sizeof(uint)) < 0)
            {
                VirtnetException.ThrowLastError("PACKET_RX_RING", device);
            }

            nuint length = (nuint)blocks * BlockSize;
            byte* ring = (byte*)Libc.mmap(null, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd.Fd, 0);
            if (ring == (byte*)-1)
            {
                VirtnetException.ThrowLastError("mmap PACKET_RX_RING", device);
            }

            var result = new CaptureRing(fd, ring, blocks, length, directions);
            try
            {
                if (filter is not null)
                {
                    int program = filter.Fd;
                    if (Libc.setsockopt(fd.Fd, Libc.SOL_SOCKET, Libc.SO_ATTACH_BPF, &program, sizeof(int)) < 0)
                    {
                        VirtnetException.ThrowLastError("SO_ATTACH_BPF", device);
                    }
                }

                var ll = new SockaddrLl { Family = Packet.AF_PACKET, Protocol = (ushort)((Packet.ETH_P_ALL >> 8) | (Packet.ETH_P_ALL << 8)), Ifindex = ifindex };
                if (Libc.bind(fd.Fd, &ll, sizeof(SockaddrLl)) < 0)
                {
                    VirtnetException.ThrowLastError("bind(AF_PACKET)", device);
                }

                return result;
            }
            catch
            {
                result.Dispose();
                throw;
            }
        }
        catch
        {
            fd.Dispose(); // a SafeHandle: disposing it again after the ring's Dispose is harmless
            throw;
        }
    }

    /// <summary>A visitor for <see cref="Drain{T}"/>; returns false to stop at this frame.</summary>
    public delegate bool Visitor<T>(ref T state, in TappedFrame frame);

    /// <summary>
    /// Hands every frame of every block the kernel has finished to <paramref name="visit"/>, in order, and the
    /// blocks back. Returns false when the visitor asked to stop (the rest of that block is not read).
    /// </summary>
    public bool Drain<T>(ref T state, Visitor<T> visit)
    {
        for (int seen = 0; seen < _blocks; seen++)
        {
            byte* block = _ring + ((nint)_block * BlockSize);
            if ((Volatile.Read(ref *(uint*)(block + BlockStatus)) & Packet.TP_STATUS_USER) == 0)
            {
                return true;
            }

            uint packets = *(uint*)(block + BlockPackets);
            byte* hdr = block + *(uint*)(block + BlockFirst);
            bool go = true;
            for (uint i = 0; i < packets && go; i++)
            {
                uint status = *(uint*)(hdr + HdrStatus);
                bool outgoing = hdr[PktTypeOffset] == Packet.PACKET_OUTGOING;
                if (hdr[PktTypeOffset] != Packet.PACKET_LOOPBACK && _directions.HasFlag(outgoing ? TapDirections.Outgoing : TapDirections.Incoming))
                {
                    int tag = (status & Packet.TP_STATUS_VLAN_VALID) == 0 ? -1
                        : (((status & Packet.TP_STATUS_VLAN_TPID_VALID) != 0 ? *(ushort*)(hdr + HdrVlanTpid) : 0x8100) << 16) | *(ushort*)(hdr + HdrVlanTci);
                    long nanos = (*(uint*)(hdr + HdrSec) * 1_000_000_000L) + *(uint*)(hdr + HdrNsec);
                    var frame = new TappedFrame(hdr + *(ushort*)(hdr + HdrMac), (int)*(uint*)(hdr + HdrSnap), (int)*(uint*)(hdr + HdrLen), nanos, outgoing, tag);
                    go = visit(ref state, frame);
                }

                hdr += *(uint*)hdr;
            }

            Volatile.Write(ref *(uint*)(block + BlockStatus), Packet.TP_STATUS_KERNEL);
            _block = _block + 1 == _blocks ? 0 : _block + 1;
            if (!go)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>PACKET_STATISTICS (tpacket_stats_v3): frames the ring took and frames it had no room for, since the last call.</summary>
    public (ulong Packets, ulong Drops) TakeStatistics()
    {
        uint* stats = stackalloc uint[3];
        int len = 3 * sizeof(uint);
        if (Libc.getsockopt(_fd.Fd, Packet.SOL_PACKET, Packet.PACKET_STATISTICS, stats, &len) < 0)
        {
            return (0, 0);
        }

        return (stats[0], stats[1]);
    }

    public void Dispose()
    {
        Libc.munmap(_ring, _length);
        _fd.Dispose();
    }

    private static void SetInt(FileDescriptor fd, int option, int value, string device, string name) => PacketRing.SetInt(fd, option, value, device, name);
}
