// The benchmark's small-packet generator: one frame, sent over and over from an AF_PACKET socket
// (PACKET_QDISC_BYPASS), pinned to one CPU, until SIGINT/SIGTERM. Two ways to send:
//  - "mmsg" (the default): sendmmsg(), 64 frames per call. Each frame is copied into an ordinary linear skb, as a
//    NIC driver would hand it to the stack. A full send buffer blocks the sender until the frames ahead of it are
//    gone (backpressure, not loss).
//  - "ring": a TX ring (TPACKET_V2), trafgen's technique. The kernel sends ring frames zero-copy, as page fragments
//    of the ring marked SKBFL_ZEROCOPY; any packet socket that sees such a frame on the receive side must first
//    copy it (skb_copy_ubufs). That penalises exactly the configurations with a packet socket on the receiving
//    device and nothing a real NIC delivers, so the benchmark does not use it. Unlike trafgen, which exits on the
//    first EAGAIN ("Flushing TX_RING failed"), it waits for room and goes on.
using System.Runtime.InteropServices;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet.Flood;

internal static unsafe class Program
{
    private const int PACKET_TX_RING = 13;
    private const int PACKET_QDISC_BYPASS = 20;
    private const uint TP_STATUS_AVAILABLE = 0;
    private const uint TP_STATUS_SEND_REQUEST = 1;
    private const uint TP_STATUS_WRONG_FORMAT = 4;
    private const int MSG_DONTWAIT = 0x40;
    private const int FrameSize = 2048;
    private const int Frames = 1024;
    private const int DataOffset = 32; // TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)

    private static volatile bool s_stop;

    /// <summary>
    /// flood DEVICE HEXFRAME [CPU [mmsg|ring]]: prints "N packets outgoing" (trafgen's wording) when stopped.
    /// flood tcx-chain DEVICE N: holds N non-matching programs on DEVICE's tcx ingress (TcxChain.cs).
    /// flood prog-bench [REPEAT]: each ingress program's own run time (ProgBench.cs).
    /// flood perf-mirror DEVICE CPU [TAP]: copies of DEVICE's frames through perf buffers (PerfMirror.cs).
    /// </summary>
    public static int Main(string[] args)
    {
        if (args.Length >= 1 && args[0] == "prog-bench")
        {
            return ProgBench.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000);
        }

        if (args.Length == 3 && args[0] == "tcx-chain")
        {
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; s_stop = true; });
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; s_stop = true; });
            return TcxChain.Run(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), () => s_stop);
        }

        if (args.Length >= 3 && args[0] == "perf-mirror")
        {
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; s_stop = true; });
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; s_stop = true; });
            return PerfMirror.Run(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture), args.Length > 3 ? args[3] : null, () => s_stop);
        }

        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: flood DEVICE HEXFRAME [CPU [mmsg|ring]]");
            return 2;
        }

        string device = args[0];
        byte[] frame = Convert.FromHexString(args[1]);
        int cpu = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 0;
        bool useRing = args.Length > 3 && args[3] == "ring";
        if (frame.Length is < 14 or > FrameSize - DataOffset)
        {
            Console.Error.WriteLine($"flood: a frame of {frame.Length} bytes does not fit");
            return 2;
        }

        int ifindex;
        using (var rt = RtNetlink.Open())
        {
            ifindex = rt.GetLink(device).Index;
        }

        using var stopInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; s_stop = true; });
        using var stopTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; s_stop = true; });

        ulong mask = 1UL << cpu;
        if (Libc.sched_setaffinity(0, sizeof(ulong), &mask) < 0)
        {
            Console.Error.WriteLine($"flood: cannot pin to CPU {cpu}");
            return 1;
        }

        // Protocol 0: the socket only sends (a receiving packet socket would see every frame and cost the CPU).
        int fd = Libc.socket(Packet.AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            Console.Error.WriteLine($"flood: socket(AF_PACKET): {((Errno)Marshal.GetLastPInvokeError()).Format()}");
            return 1;
        }

        try
        {
            SetInt(fd, Packet.PACKET_VERSION, Packet.TPACKET_V2);
            SetInt(fd, PACKET_QDISC_BYPASS, 1);
            if (!useRing)
            {
                var to = new SockaddrLl { Family = Packet.AF_PACKET, Ifindex = ifindex };
                Check(Libc.bind(fd, &to, sizeof(SockaddrLl)), "bind");
                long count;
                fixed (byte* f = frame)
                {
                    count = SendLoop(fd, f, frame.Length);
                }

                Console.WriteLine($"{count} packets outgoing");
                return 0;
            }

            var req = new TpacketReq { BlockSize = 4096, BlockNr = Frames * FrameSize / 4096, FrameSize = FrameSize, FrameNr = Frames };
            Check(Libc.setsockopt(fd, Packet.SOL_PACKET, PACKET_TX_RING, &req, sizeof(TpacketReq)), "PACKET_TX_RING");
            var ll = new SockaddrLl { Family = Packet.AF_PACKET, Ifindex = ifindex };
            Check(Libc.bind(fd, &ll, sizeof(SockaddrLl)), "bind");
            nuint length = (nuint)Frames * FrameSize;
            byte* ring = (byte*)Libc.mmap(null, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0);
            if (ring == (byte*)-1)
            {
                Check(-1, "mmap");
            }

            for (int i = 0; i < Frames; i++)
            {
                frame.CopyTo(new Span<byte>(ring + ((nint)i * FrameSize) + DataOffset, frame.Length));
            }

            long sent = Loop(fd, ring, (uint)frame.Length);
            Console.WriteLine($"{sent} packets outgoing");
            Libc.munmap(ring, length);
            return 0;
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"flood: {device}: {e.Message}");
            return 1;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MMsgHdr
    {
        public void* Name;
        public int NameLen;
        public IoVec* Iov;
        public nuint IovLen;
        public void* Control;
        public nuint ControlLen;
        public int Flags;
        private readonly int _pad;
        public uint Len; // struct mmsghdr: msg_len after the 56-byte msghdr; 64 bytes in all
        private readonly int _tail;
    }

    [DllImport("libc", EntryPoint = "sendmmsg", SetLastError = true)]
    private static extern int SendMMsg(int fd, MMsgHdr* msgs, uint vlen, int flags);

    private static long SendLoop(int fd, byte* frame, int length)
    {
        const int Burst = 64;
        if (sizeof(MMsgHdr) != 64)
        {
            throw new InvalidOperationException("struct mmsghdr is 64 bytes on x86_64 and arm64");
        }

        var iov = new IoVec { Base = frame, Length = (nuint)length };
        MMsgHdr* msgs = stackalloc MMsgHdr[Burst];
        for (int i = 0; i < Burst; i++)
        {
            msgs[i] = new MMsgHdr { Iov = &iov, IovLen = 1 };
        }

        long sent = 0;
        while (!s_stop)
        {
            int n = SendMMsg(fd, msgs, Burst, 0);
            if (n > 0)
            {
                sent += n;
                continue;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno is not ((int)Errno.EAGAIN or (int)Errno.ENOBUFS or (int)Errno.EINTR))
            {
                throw new InvalidOperationException($"sending: {((Errno)errno).Format()}");
            }
        }

        return sent;
    }

    private static long Loop(int fd, byte* ring, uint len)
    {
        long submitted = 0, waits = 0;
        int next = 0;
        var pfd = new PollFd { Fd = fd, Events = Libc.POLLOUT };
        while (!s_stop)
        {
            int queued = 0;
            while (queued < Frames)
            {
                var hdr = (Tpacket2Hdr*)(ring + ((nint)next * FrameSize));
                uint status = Volatile.Read(ref hdr->Status);
                if (status == TP_STATUS_WRONG_FORMAT)
                {
                    throw new InvalidOperationException("the kernel refused the frame (TP_STATUS_WRONG_FORMAT)");
                }

                if (status != TP_STATUS_AVAILABLE)
                {
                    break;
                }

                hdr->Len = len;
                Volatile.Write(ref hdr->Status, TP_STATUS_SEND_REQUEST);
                next = next + 1 == Frames ? 0 : next + 1;
                queued++;
            }

            submitted += queued;
            if (Libc.sendto(fd, null, 0, MSG_DONTWAIT, null, 0) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is not ((int)Errno.EAGAIN or (int)Errno.ENOBUFS or (int)Errno.EINTR))
                {
                    throw new InvalidOperationException($"sending: {((Errno)errno).Format()}");
                }
            }

            if (queued == 0)
            {
                // Every slot is still in flight: wait for the kernel to hand one back.
                waits++;
                Libc.poll(&pfd, 1, 1);
            }
        }

        // Frames still marked for sending were never sent.
        Thread.Sleep(200);
        long pending = 0;
        for (int i = 0; i < Frames; i++)
        {
            if (Volatile.Read(ref ((Tpacket2Hdr*)(ring + ((nint)i * FrameSize)))->Status) != TP_STATUS_AVAILABLE)
            {
                pending++;
            }
        }

        Console.Error.WriteLine($"flood: {waits} waits for room");
        return submitted - pending;
    }

    private static void SetInt(int fd, int option, int value)
        => Check(Libc.setsockopt(fd, Packet.SOL_PACKET, option, &value, sizeof(int)), option.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static void Check(int result, string what)
    {
        if (result < 0)
        {
            throw new InvalidOperationException($"{what}: {((Errno)Marshal.GetLastPInvokeError()).Format()}");
        }
    }
}
