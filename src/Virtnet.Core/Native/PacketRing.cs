// linux/if_packet.h: an AF_PACKET socket with a TPACKET_V2 receive ring (PACKET_MMAP). The kernel copies each
// frame into the next free slot of a ring we share with it and flips the slot's tp_status to TP_STATUS_USER;
// we read it in place and hand the slot back by writing TP_STATUS_KERNEL. No system call per frame: poll()
// only when the ring is empty. V2 rather than V3: a V3 block reaches user space only when full or after its
// retire timeout (>= 1 ms), which is latency; a V2 slot is ours the moment it is written.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>
/// One RX ring on one device. Each frame comes with its virtio_net_hdr, so it crosses with its offload metadata
/// as on a TAP. Owned by its socket fd and mapping: both go on Dispose,
/// and the kernel releases them on process death.
/// </summary>
internal sealed unsafe class PacketRing : IDisposable
{
    /// <summary>
    /// Slot size: header, sockaddr_ll, reserve, virtio_net_hdr and a full-sized Ethernet frame (1518 bytes with
    /// an 802.1Q tag) fit in 2 KB. Longer frames (jumbo frames, GSO super-frames) never come here: the ring's
    /// filter leaves them to the pump. Small slots buy depth: 4096 of them in the memory 512 jumbo slots took.
    /// </summary>
    public const int SlotSize = 2048;

    /// <summary>The kernel allocates a ring in blocks of whole pages; each holds BlockSize / SlotSize slots.</summary>
    private const int BlockSize = 4096;

    /// <summary>The longest frame a slot holds with room to spare for the headers in front of it.</summary>
    public const int MaxFrame = SlotSize - 512;

    /// <summary>Bytes kept free before every frame, for an 802.1Q tag put back in front of the MACs.</summary>
    public const int Reserve = 16;

    private readonly FileDescriptor _fd;
    private readonly byte* _ring;
    private readonly int _slots;
    private readonly nuint _length;
    private int _next;

    private readonly int _ifindex;

    private PacketRing(FileDescriptor fd, byte* ring, int slots, nuint length, int ifindex)
    {
        _ifindex = ifindex;
        _fd = fd;
        _ring = ring;
        _slots = slots;
        _length = length;
    }

    public FileDescriptor Handle => _fd;

    /// <summary>
    /// A ring for <paramref name="ifindex"/>, not yet receiving (see <see cref="Bind"/>): every frame the device receives (not the ones it sends: PACKET_IGNORE_OUTGOING),
    /// each with a virtio_net_hdr before it (PACKET_VNET_HDR).
    /// </summary>
    /// <remarks>With <c>outgoing</c>, also the frames the device sends (a mirror of its egress).</remarks>
    public static PacketRing Open(int ifindex, string device, int slots, bool outgoing = false)
    {
        // Protocol 0 until the ring exists, so nothing is queued to the socket before it can be read.
        var fd = FileDescriptor.FromResult(Libc.socket(Packet.AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0), "socket(AF_PACKET)", device);
        try
        {
            SetInt(fd, Packet.PACKET_VERSION, Packet.TPACKET_V2, device, "PACKET_VERSION");
            SetInt(fd, Packet.PACKET_VNET_HDR, 1, device, "PACKET_VNET_HDR");
            SetInt(fd, Packet.PACKET_RESERVE, Reserve, device, "PACKET_RESERVE");
            if (!outgoing)
            {
                SetInt(fd, Packet.PACKET_IGNORE_OUTGOING, 1, device, "PACKET_IGNORE_OUTGOING");
            }

            const int perBlock = BlockSize / SlotSize;
            slots = (slots + perBlock - 1) / perBlock * perBlock;
            var req = new TpacketReq { BlockSize = BlockSize, BlockNr = (uint)(slots / perBlock), FrameSize = SlotSize, FrameNr = (uint)slots };
            if (Libc.setsockopt(fd.Fd, Packet.SOL_PACKET, Packet.PACKET_RX_RING, &req, sizeof(TpacketReq)) < 0)
            {
                VirtnetException.ThrowLastError("PACKET_RX_RING", device);
            }

            nuint length = (nuint)slots * SlotSize;
            byte* ring = (byte*)Libc.mmap(null, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd.Fd, 0);
            if (ring == (byte*)-1)
            {
                VirtnetException.ThrowLastError("mmap PACKET_RX_RING", device);
            }

            return new PacketRing(fd, ring, slots, length, ifindex);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>SO_ATTACH_BPF: a SOCKET_FILTER program decides how much of each frame the ring takes (0: none).</summary>
    public void AttachFilter(FileDescriptor program, string device)
    {
        int fd = program.Fd;
        if (Libc.setsockopt(_fd.Fd, Libc.SOL_SOCKET, Libc.SO_ATTACH_BPF, &fd, sizeof(int)) < 0)
        {
            VirtnetException.ThrowLastError("SO_ATTACH_BPF", device);
        }
    }

    /// <summary>Starts receiving: binds to the device for every protocol (ETH_P_ALL). Until then the ring gets nothing.</summary>
    public void Bind(string device)
    {
        var ll = new SockaddrLl { Family = Packet.AF_PACKET, Protocol = BinaryHtons(Packet.ETH_P_ALL), Ifindex = _ifindex };
        if (Libc.bind(_fd.Fd, &ll, sizeof(SockaddrLl)) < 0)
        {
            VirtnetException.ThrowLastError("bind(AF_PACKET)", device);
        }
    }

    /// <summary>Joins fanout group <paramref name="group"/>: each frame goes to one ring of the group.</summary>
    public void JoinFanout(ushort group, int mode, string device, bool outgoing = false)
    {
        if (outgoing)
        {
            SetInt(_fd, Packet.PACKET_FANOUT, group | (mode << 16), device, "PACKET_FANOUT");
            return;
        }

        // Ask the group to skip the device's transmissions; kernels before 6.8 refuse the flag (EINVAL), and then
        // the reader drops PACKET_OUTGOING slots itself.
        int arg = group | ((mode | Packet.PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16);
        if (Libc.setsockopt(_fd.Fd, Packet.SOL_PACKET, Packet.PACKET_FANOUT, &arg, sizeof(int)) == 0)
        {
            return;
        }

        SetInt(_fd, Packet.PACKET_FANOUT, group | (mode << 16), device, "PACKET_FANOUT");
    }

    /// <summary>PACKET_FANOUT_DATA for PACKET_FANOUT_EBPF: the program returns the index of the ring in the group.</summary>
    public void SetFanoutProgram(FileDescriptor program, string device)
        => SetInt(_fd, Packet.PACKET_FANOUT_DATA, program.Fd, device, "PACKET_FANOUT_DATA");

    /// <summary>The slot <paramref name="ahead"/> places after the current one if it is filled, else null (nothing is taken).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Tpacket2Hdr* Peek(int ahead)
    {
        int k = _next + ahead;
        if (k >= _slots)
        {
            k -= _slots;
        }

        var hdr = (Tpacket2Hdr*)(_ring + ((nint)k * SlotSize));
        return (Volatile.Read(ref hdr->Status) & Packet.TP_STATUS_USER) != 0 ? hdr : null;
    }

    /// <summary>Hands the current slot and the <paramref name="count"/> - 1 after it back to the kernel, in order.</summary>
    public void ReleaseMany(int count)
    {
        for (int i = 0; i < count; i++)
        {
            var hdr = (Tpacket2Hdr*)(_ring + ((nint)_next * SlotSize));
            Volatile.Write(ref hdr->Status, Packet.TP_STATUS_KERNEL);
            _next = _next + 1 == _slots ? 0 : _next + 1;
        }
    }

    /// <summary>PACKET_STATISTICS: frames the kernel handed to this ring and frames it dropped (ring full), since the last call.</summary>
    public (uint Packets, uint Drops) TakeStatistics()
    {
        uint* stats = stackalloc uint[2];
        int len = 2 * sizeof(uint);
        if (Libc.getsockopt(_fd.Fd, Packet.SOL_PACKET, Packet.PACKET_STATISTICS, stats, &len) < 0)
        {
            return (0, 0);
        }

        return (stats[0], stats[1]);
    }

    /// <summary>
    /// Reads and so clears the socket's pending error (SO_ERROR). A device going down sets ENETDOWN on every packet
    /// socket bound to it, and poll() then reports POLLERR until someone reads it: a ring read only through its
    /// mapping never does, so its reader would wake at once forever.
    /// </summary>
    public void ClearError()
    {
        int error = 0;
        int len = sizeof(int);
        _ = Libc.getsockopt(_fd.Fd, Libc.SOL_SOCKET, Libc.SO_ERROR, &error, &len);
    }

    public void Dispose()
    {
        Libc.munmap(_ring, _length);
        _fd.Dispose();
    }

    private static ushort BinaryHtons(ushort v) => (ushort)((v >> 8) | (v << 8));

    /// <summary>setsockopt(SOL_PACKET, option, int): throws with the option's name and the device.</summary>
    internal static void SetInt(FileDescriptor fd, int option, int value, string device, string name)
    {
        if (Libc.setsockopt(fd.Fd, Packet.SOL_PACKET, option, &value, sizeof(int)) < 0)
        {
            VirtnetException.ThrowLastError(name, device);
        }
    }
}
