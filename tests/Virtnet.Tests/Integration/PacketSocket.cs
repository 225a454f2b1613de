// A raw AF_PACKET socket bound to one device in a test namespace, for frames the stack cannot make itself
// (802.1Q-tagged frames: this kernel has no 8021q module). Receives with PACKET_AUXDATA: the kernel strips a
// VLAN tag into skb metadata on receive and reports it in tpacket_auxdata (tp_vlan_tci, TP_STATUS_VLAN_VALID);
// a tag may also still be inline. Both are decoded.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;

namespace Virtnet.Tests.Integration;

internal sealed unsafe class PacketSocket : IDisposable
{
    // linux/if_ether.h, linux/socket.h, linux/if_packet.h
    private const int AF_PACKET = 17;
    private const ushort ETH_P_ALL = 0x0003;
    private const int SOL_PACKET = 263;
    private const int PACKET_AUXDATA = 8;
    private const int PACKET_IGNORE_OUTGOING = 23;
    private const int SOL_SOCKET = 1;
    private const int SO_RCVBUFFORCE = 33;
    public const ushort EtherTypeVlan = 0x8100;

    private int _fd;

    private PacketSocket(int fd, string device)
    {
        _fd = fd;
        Device = device;
    }

    public string Device { get; }

    /// <summary>One received frame: its bytes and the VLAN tag the kernel reported out of band, if any.</summary>
    /// <summary>A frame as received; <paramref name="PacketType"/> is sockaddr_ll.sll_pkttype (PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3).</summary>
    public sealed record Captured(byte[] Data, bool AuxVlanValid, ushort AuxVlanTci, ushort AuxVlanTpid, byte PacketType = 0);

    public static PacketSocket Open(TestNetns ns, string device)
    {
        int ifindex = Net.Ifindex(ns, device);
        int fd = InNetns.Run(ns.Name, () =>
        {
            int s = Libc.socket(AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, BinaryPrimitives.ReverseEndianness(ETH_P_ALL));
            if (s < 0)
            {
                throw new InvalidOperationException($"socket(AF_PACKET): errno {Marshal.GetLastPInvokeError()}");
            }

            return s;
        });
        var socket = new PacketSocket(fd, device);
        try
        {
            // struct sockaddr_ll: family @0, protocol (big-endian) @2, ifindex @4; 20 bytes.
            byte* sll = stackalloc byte[20];
            new Span<byte>(sll, 20).Clear();
            *(ushort*)sll = AF_PACKET;
            *(ushort*)(sll + 2) = BinaryPrimitives.ReverseEndianness(ETH_P_ALL);
            *(int*)(sll + 4) = ifindex;
            Check(Libc.bind(fd, sll, 20), $"bind to {device}");
            int one = 1;
            Check(Libc.setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(int)), "PACKET_AUXDATA");
            Check(Libc.setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(int)), "PACKET_IGNORE_OUTGOING");
            // Room for a burst (SO_RCVBUFFORCE: root may exceed rmem_max).
            int rcvbuf = 8 << 20;
            Check(Libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(int)), "SO_RCVBUFFORCE");
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// PACKET_QDISC_BYPASS: transmissions go straight to the driver's ndo_start_xmit, past the qdisc and every
    /// tc/tcx egress hook (as trafgen, pktgen and DPDK's af_packet driver send).
    /// </summary>
    public void BypassQdisc()
    {
        const int PACKET_QDISC_BYPASS = 20;
        int one = 1;
        Check(Libc.setsockopt(_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(int)), "PACKET_QDISC_BYPASS");
    }

    /// <summary>
    /// Sends <paramref name="count"/> 60-byte frames of the IEEE local experimental EtherType (nothing handles it)
    /// from <paramref name="device"/> in <paramref name="ns"/> to <paramref name="destination"/>.
    /// </summary>
    public static void Burst(TestNetns ns, string device, byte[] destination, int count)
    {
        var frame = new byte[60];
        destination.CopyTo(frame, 0);
        Net.MacBytes(ns, device).CopyTo(frame, 6);
        frame[12] = 0x88;
        frame[13] = 0xB5;
        using var sender = Open(ns, device);
        for (int i = 0; i < count; i++)
        {
            sender.Send(frame);
        }
    }

    /// <summary>Transmits one complete Ethernet frame on the bound device.</summary>
    public void Send(ReadOnlySpan<byte> frame)
    {
        fixed (byte* p = frame)
        {
            nint n = Libc.send(_fd, p, frame.Length, 0);
            if (n != frame.Length)
            {
                throw new InvalidOperationException($"send on {Device}: returned {n}, errno {Marshal.GetLastPInvokeError()}");
            }
        }
    }

    /// <summary>
    /// Receives frames until <paramref name="deadline"/>, or until <paramref name="settle"/> after the first frame
    /// that <paramref name="interesting"/> accepts (to catch a duplicate without waiting the whole deadline).
    /// </summary>
    public List<Captured> Capture(Func<Captured, bool> interesting, TimeSpan deadline, TimeSpan settle)
    {
        var frames = new List<Captured>();
        var buffer = new byte[65536 + 64];
        byte* control = stackalloc byte[256];
        byte* from = stackalloc byte[32];
        var watch = Stopwatch.StartNew();
        TimeSpan end = deadline;
        bool settling = false;
        while (watch.Elapsed < end)
        {
            var pfd = new PollFd { Fd = _fd, Events = Libc.POLLIN };
            int wait = (int)Math.Max(1, (end - watch.Elapsed).TotalMilliseconds);
            int ready = Libc.poll(&pfd, 1, wait);
            if (ready <= 0)
            {
                continue;
            }

            fixed (byte* data = buffer)
            {
                var iov = new IoVec { Base = data, Length = (nuint)buffer.Length };
                var msg = new MsgHdr { Name = from, NameLength = 32, Iov = &iov, IovLength = 1, Control = control, ControlLength = 256 };
                nint n = TestLibc.recvmsg(_fd, &msg, TestLibc.MSG_DONTWAIT);
                if (n < 0)
                {
                    continue;
                }

                bool valid = false;
                ushort tci = 0, tpid = 0;
                for (nuint offset = 0; offset + (nuint)sizeof(CmsgHdr) <= msg.ControlLength;)
                {
                    var h = (CmsgHdr*)(control + offset);
                    if (h->Length < (nuint)sizeof(CmsgHdr))
                    {
                        break;
                    }

                    if (h->Level == SOL_PACKET && h->Type == PACKET_AUXDATA)
                    {
                        var aux = (TpacketAuxdata*)(control + offset + (nuint)sizeof(CmsgHdr));
                        valid = (aux->Status & TpacketAuxdata.TP_STATUS_VLAN_VALID) != 0;
                        tci = aux->VlanTci;
                        tpid = (aux->Status & TpacketAuxdata.TP_STATUS_VLAN_TPID_VALID) != 0 ? aux->VlanTpid : EtherTypeVlan;
                    }

                    offset += (h->Length + 7) & ~(nuint)7;
                }

                // struct sockaddr_ll: sll_pkttype at offset 10.
                var captured = new Captured(buffer.AsSpan(0, (int)n).ToArray(), valid, tci, tpid, from[10]);
                frames.Add(captured);
                if (!settling && interesting(captured))
                {
                    settling = true;
                    end = watch.Elapsed + settle;
                }
            }
        }

        return frames;
    }

    private static void Check(int rc, string what)
    {
        if (rc < 0)
        {
            throw new InvalidOperationException($"{what}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.close(fd);
        }
    }
}
