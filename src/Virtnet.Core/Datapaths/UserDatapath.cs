// The user datapath: every frame crosses this process, through the C# handler pipeline.
//
//   wire -> real --[tcx ingress: bpf_redirect(pump, 0)]--> pump fd -> pipeline -> virt fd -> stack
//   stack -> virt fd -> pipeline -> pump fd --[tcx ingress on pump: bpf_redirect(real, 0)]--> real -> wire
//
// Why a private "pump" TAP and not an AF_PACKET socket on the real device: a packet socket only gets a copy
// (the real device's stack still sees the frame, and a tcx drop after the tap is needed to hide it), sees its own
// transmissions unless told not to, and needs a separate ring per direction. The pump is taken, not copied: the
// tcx redirect steals the frame before the real device's stack sees it; frames written to the pump never come
// back to us; both TAPs speak virtio_net_hdr, so checksum-offloaded and 64 KB GSO frames cross in one read and
// one write with their metadata untouched, and VLAN tags are put back into the frame by the TAP (tun_put_user).
// Everything is owned by fds (the two TAPs, the programs, the tcx links), so a dead process leaves nothing.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Virtnet.Bpf;
using Virtnet.Devices;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet.Datapaths;

public sealed class UserDatapath : IDatapath
{
    public const string IngressProgramName = "virtnet_uin";
    public const string PumpProgramName = "virtnet_uout";
    public const string SteeringProgramName = "virtnet_steer";
    public const string RingFilterName = "virtnet_ring";

    /// <summary>Slots per receive ring (2 KB each: 8 MB a ring, mapped whole, so it counts in RSS).</summary>
    public const int RingSlots = 4096;

    /// <summary>How long a forwarder keeps polling without sleeping after its last frame, unless told otherwise.</summary>
    public static readonly TimeSpan DefaultBusyPoll = TimeSpan.FromMicroseconds(200);

    private readonly RtNetlink _rtnl;
    private readonly TapDevice _pump;
    private readonly int _pumpIndex;
    private readonly int _virtIndex;
    private readonly Func<ulong>? _virtTxDropped;
    private readonly Cleanup _owned;
    private readonly FileDescriptor _stop;
    private readonly Forwarder[] _forwarders;
    private readonly object _ringDropsGate = new();
    private ulong _ringDrops;
    private int _disposed;

    private UserDatapath(RtNetlink rtnl, Func<ulong>? virtTxDropped, TapDevice pump, int pumpIndex, int virtIndex, Cleanup owned, FileDescriptor stop, Forwarder[] forwarders)
    {
        _virtTxDropped = virtTxDropped;
        _rtnl = rtnl;
        _pump = pump;
        _pumpIndex = pumpIndex;
        _virtIndex = virtIndex;
        _owned = owned;
        _stop = stop;
        _forwarders = forwarders;
    }

    public DatapathKind Kind => DatapathKind.User;

    public string? Fault => _forwarders.Select(f => f.Fault).FirstOrDefault(f => f is not null);

    public string PumpName => _pump.Name;

    /// <summary>
    /// Whether the forwarders write ring frames into the TAPs in batches through io_uring (one io_uring_enter per
    /// batch) rather than one write() per frame: where the kernel allows it and VIRTNET_IO_URING is not 0.
    /// </summary>
    public bool BatchedWrites { get; private init; }

    /// <summary>One forwarder (and one queue on each TAP) per CPU.</summary>
    public int Queues => _forwarders.Length;

    /// <summary>The name of the private TAP that carries the real device's frames to and from this process.</summary>
    public static string PumpNameFor(int realIndex) => $"vnpump{realIndex}";

    /// <summary>The queue count the virtual TAP must be created with for this datapath: one per CPU.</summary>
    public static int QueuesFor() => Math.Clamp(Environment.ProcessorCount, 1, 64);

    /// <param name="virtTxDropped">When the virtual device lives in another namespace: reads its tx_dropped there
    /// (null: <paramref name="rtnl"/> reaches it by <paramref name="virtIndex"/>).</param>
    public static UserDatapath Create(RtNetlink rtnl, LinkInfo real, TapDevice virt, int virtIndex, IReadOnlyList<IFrameHandler> handlers, TimeSpan busyPoll, Func<ulong>? virtTxDropped = null)
    {
        var owned = new Cleanup();
        try
        {
            int queues = virt.Queues.Count;
            var pump = owned.Add(TapDevice.Create(PumpNameFor(real.Index), queues: queues));
            pump.EnableOffloads(virt.Offloads == 0 ? TapDevice.WantedOffloads : virt.Offloads);
            var pumpLink = rtnl.GetLink(pump.Name);
            rtnl.SetAlias(pumpLink.Index, $"virtnet pump for {real.Name}");
            // The pump carries only the real device's frames: no addresses, no IPv6 autoconfiguration, no ND/MLD of
            // its own that would leak out through the real device.
            DisableIpv6(pump.Name);
            rtnl.SetMtu(pumpLink.Index, real.Mtu);
            // No qdisc between the tcx redirect and the TAP's rings: frames go straight to tun_net_xmit.
            rtnl.SetRootQdisc(pumpLink.Index, "noqueue");
            rtnl.SetUp(pumpLink.Index, true);

            // One receive ring per forwarder on the real device. The virtual TAP's queues and the rings' fanout
            // pick with the same program: the forwarder of the CPU the frame is on, or of the next CPU while the
            // forwarders are busy (see Forwarder).
            var spread = owned.Add(FlagMap.Create("virtnet_spread"));
            var rings = new PacketRing[queues];
            for (int q = 0; q < queues; q++)
            {
                rings[q] = owned.Add(PacketRing.Open(real.Index, real.Name, RingSlots));
            }

            BpfProgram? steer = queues > 1
                ? owned.Add(BpfProgram.LoadSocketFilter(SteeringProgramName, Programs.SteerByCpu(spread, queues), real.Name))
                : null;
            if (steer is not null)
            {
                virt.SetSteeringProgram(steer.Handle);
                pump.SetSteeringProgram(steer.Handle);
            }

            var ringFilter = owned.Add(BpfProgram.LoadSocketFilter(RingFilterName, Programs.RingFilter(PacketRing.MaxFrame), real.Name));
            foreach (var ring in rings)
            {
                ring.AttachFilter(ringFilter.Handle, real.Name);
            }

            var stop = owned.Add(FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd"));
            var load = new Forwarder.SharedLoad(queues, spread);
            bool batched = IoUring.IsAvailable();
            var forwarders = new Forwarder[queues];
            for (int q = 0; q < queues; q++)
            {
                forwarders[q] = new Forwarder(q, rings[q], pump.Queues[q], virt.Queues[q], stop, handlers.ToArray(), busyPoll, load, (pump.Name, virt.Name), batched);
            }

            var pumpProgram = owned.Add(BpfProgram.LoadSchedCls(PumpProgramName, Programs.Redirect(real.Index, 0), pump.Name));
            var ingressProgram = owned.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.SplitIngress(pumpLink.Index, PacketRing.MaxFrame), real.Name));

            // The way out first; then the real device's frames stop reaching its stack (tcx drop) and only then
            // the rings start copying them, so nothing is delivered twice (a frame arriving in between is lost);
            // then the forwarders. Teardown (Cleanup runs in reverse) stops the forwarders before the real device
            // gets its frames back, for the same reason.
            owned.Add(TcxLink.Attach(pumpProgram, pumpLink.Index, pump.Name, TcxDirection.Ingress));
            owned.Add(TcxLink.Attach(ingressProgram, real.Index, real.Name, TcxDirection.Ingress));
            foreach (var ring in rings)
            {
                ring.Bind(real.Name);
            }

            if (steer is not null)
            {
                ushort group = (ushort)Random.Shared.Next(1, 0xFFFF);
                foreach (var ring in rings)
                {
                    ring.JoinFanout(group, Packet.PACKET_FANOUT_EBPF, real.Name);
                }

                rings[0].SetFanoutProgram(steer.Handle, real.Name);
            }

            foreach (var f in forwarders)
            {
                f.Start();
            }

            owned.Add(() => StopForwarders(stop, forwarders));
            return new UserDatapath(rtnl, virtTxDropped, pump, pumpLink.Index, virtIndex, owned, stop, forwarders) { BatchedWrites = batched };
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    /// <summary>
    /// What the forwarders moved, plus what the kernel dropped before they could: a full receive ring
    /// (PACKET_STATISTICS tp_drops) or pump ring (the pump's tx_dropped) counts against ingress, a full
    /// virtual-device ring (its tx_dropped) against egress.
    /// </summary>
    public DatapathCounters ReadCounters()
    {
        DirectionCounters ingress = default, egress = default;
        foreach (var f in _forwarders)
        {
            ingress = Add(ingress, f.Read(Direction.Ingress));
            egress = Add(egress, f.Read(Direction.Egress));
        }

        ulong pumpDropped = _rtnl.TryGetLink(_pumpIndex)?.Stats?.TxDropped ?? 0;
        ulong virtDropped = _virtTxDropped is { } read ? read() : _rtnl.TryGetLink(_virtIndex)?.Stats?.TxDropped ?? 0;
        ulong ringDropped;
        lock (_ringDropsGate)
        {
            // PACKET_STATISTICS resets on every read, so the totals are kept here.
            foreach (var f in _forwarders)
            {
                _ringDrops += f.Ring.TakeStatistics().Drops;
            }

            ringDropped = _ringDrops;
        }

        return new(ingress with { Drops = ingress.Drops + pumpDropped + ringDropped }, egress with { Drops = egress.Drops + virtDropped });

        static DirectionCounters Add(DirectionCounters a, DirectionCounters b) => new(a.Frames + b.Frames, a.Bytes + b.Bytes, a.Drops + b.Drops);
    }

    public void OnMtuChanged(int mtu) => _rtnl.SetMtu(_pumpIndex, mtu);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _owned.Dispose();
    }

    private static unsafe void StopForwarders(FileDescriptor stop, Forwarder[] forwarders)
    {
        foreach (var f in forwarders)
        {
            f.RequestStop();
        }

        // The eventfd stays readable once written (nobody reads it), so every forwarder's poll() returns.
        ulong one = 1;
        _ = Libc.write(stop.Fd, (byte*)&one, sizeof(ulong));
        foreach (var f in forwarders)
        {
            f.Join();
        }
    }

    internal static void DisableIpv6(string device)
    {
        // /proc/sys/net resolves to the network namespace of the opening thread, which is ours.
        var path = $"/proc/sys/net/ipv6/conf/{device}/disable_ipv6";
        if (File.Exists(path))
        {
            File.WriteAllText(path, "1");
        }
    }

    /// <summary>
    /// One forwarding thread per CPU, pinned there, serving one queue of each TAP in both directions: it drains
    /// up to <see cref="Batch"/> frames from one TAP, then from the other, and sleeps in poll() only after
    /// <see cref="_spinTicks"/> without a frame, so a reply that follows a request closely is caught without a
    /// wake-up.
    ///
    /// Where frames go is decided by the TAPs' steering program. Lightly loaded (the "spread" flag at 0), a frame
    /// goes to the queue of the CPU that produced it: the forwarder woken is on the same CPU, which on a VM saves
    /// the inter-processor interrupt and halted-vCPU wake-up that cost ~80 µs per direction here. Once a
    /// forwarder moves more than 50,000 frames or 200 MB a second, the flag moves every frame to the next CPU's
    /// forwarder, so the producer (a NIC's softirq, a sender) and the forwarding run in parallel; below 10,000
    /// frames and 50 MB it moves back.
    /// </summary>
    private sealed unsafe class Forwarder
    {
        // virtio_net_hdr + the largest GSO frame a TAP hands over (64 KB) + slack.
        private const int BufferSize = VirtioNetHdr.Size + 65535 + 64;
        private const int Batch = 64;

        private readonly PacketRing _ring;
        private readonly FileDescriptor _pump;
        private readonly FileDescriptor _virt;
        private readonly FileDescriptor _stop;
        private readonly IFrameHandler[] _handlers;
        private readonly FileDescriptor[] _ports;
        private readonly long _spinTicks;
        private readonly int _cpu;
        private readonly SharedLoad _load;
        private readonly Thread _thread;
        private readonly (string Pump, string Virt) _names;
        private readonly bool _batched;
        private IoUring? _uring;
        private volatile bool _stopping;
        private Stats _ingress;
        private Stats _egress;

        public Forwarder(int cpu, PacketRing ring, FileDescriptor pump, FileDescriptor virt, FileDescriptor stop, IFrameHandler[] handlers, TimeSpan spin, SharedLoad load, (string Pump, string Virt) names, bool batched)
        {
            _batched = batched;
            _names = names;
            _ring = ring;
            _cpu = cpu;
            _load = load;
            _pump = pump;
            _virt = virt;
            _stop = stop;
            _handlers = handlers;
            _ports = [pump, virt];
            _spinTicks = (long)(spin.TotalSeconds * Stopwatch.Frequency);
            _thread = new Thread(Loop) { IsBackground = true, Name = $"virtnet fwd{cpu}" };
        }

        public string? Fault { get; private set; }

        public PacketRing Ring => _ring;

        public void Start() => _thread.Start();

        public void RequestStop() => _stopping = true;

        public void Join()
        {
            if (_thread.ThreadState != System.Threading.ThreadState.Unstarted)
            {
                _thread.Join();
            }
        }

        public DirectionCounters Read(Direction direction)
        {
            ref Stats s = ref direction == Direction.Ingress ? ref _ingress : ref _egress;
            return new((ulong)Volatile.Read(ref s.Frames), (ulong)Volatile.Read(ref s.Bytes), (ulong)Volatile.Read(ref s.Drops));
        }

        private void Loop()
        {
            PinToCpu(_cpu);
            // Created on this thread: a SINGLE_ISSUER ring belongs to the thread that submits to it. Should it fail
            // here although the probe succeeded, this forwarder writes frame by frame.
            Span<int> files = [_ports[0].Fd, _ports[1].Fd];
            _uring = _batched ? IoUring.TryCreate(Batch, files) : null;
            try
            {
                Run();
            }
            finally
            {
                _uring?.Dispose();
            }
        }

        private void Run()
        {
            var buffer = GC.AllocateArray<byte>(BufferSize, pinned: true);
            byte* p = (byte*)Unsafe.AsPointer(ref buffer[0]);
            int pump = _pump.Fd;
            int virt = _virt.Fd;
            PollFd* fds = stackalloc PollFd[4];
            fds[0] = new PollFd { Fd = _ring.Handle.Fd, Events = Libc.POLLIN };
            fds[1] = new PollFd { Fd = pump, Events = Libc.POLLIN };
            fds[2] = new PollFd { Fd = virt, Events = Libc.POLLIN };
            fds[3] = new PollFd { Fd = _stop.Fd, Events = Libc.POLLIN };
            long lastFrame = Stopwatch.GetTimestamp();
            long windowStart = lastFrame;
            long framesInWindow = 0;
            long bytesAtWindowStart = 0;

            int ringSinceTaps = 0;
            while (!_stopping)
            {
                int moved = DrainRing(virt);
                int movedOut = 0;

                // A TAP has no shared-memory ring: finding one empty costs a read() that returns EAGAIN (~0.6 µs,
                // two of them per pass). While the ring keeps us busy, look at the TAPs once per Batch ring
                // frames instead of once per pass; when the ring is idle, every pass.
                ringSinceTaps += moved;
                if (moved == 0 || ringSinceTaps >= Batch)
                {
                    ringSinceTaps = 0;
                    int movedTcp = Drain(pump, virt, Direction.Ingress, p, ref _ingress);
                    movedOut = Drain(virt, pump, Direction.Egress, p, ref _egress);
                    if (movedTcp < 0 || movedOut < 0)
                    {
                        return;
                    }

                    moved += movedTcp;
                }

                long now = Stopwatch.GetTimestamp();
                if (now - windowStart >= SharedLoad.WindowTicks)
                {
                    long bytes = _ingress.Bytes + _egress.Bytes;
                    _load.Report(_cpu, framesInWindow, bytes - bytesAtWindowStart, now - windowStart);
                    windowStart = now;
                    framesInWindow = 0;
                    bytesAtWindowStart = bytes;
                }

                if (moved + movedOut > 0)
                {
                    framesInWindow += moved + movedOut;
                    lastFrame = now;
                    continue;
                }

                if (now - lastFrame < _spinTicks)
                {
                    // Let any other thread runnable on this CPU go first. Under TCP the gaps between super-frames
                    // (~20-40 µs) never reach the sleep, and the spin's empty reads (~15 per frame moved, ~0.6 µs
                    // each) took the CPU from the stack and the applications sharing it; yielding gave TCP
                    // +12-16 %. The spin still costs a system call a pass when the CPU is otherwise idle.
                    Libc.sched_yield();
                    continue;
                }

                // Sleep until a frame comes; while spread is on, wake each window to report the load falling.
                Libc.poll(fds, 4, _load.Spread ? (int)(SharedLoad.WindowTicks * 1000 / Stopwatch.Frequency) + 1 : -1);
                lastFrame = Stopwatch.GetTimestamp();
            }
        }

        private static void PinToCpu(int cpu)
        {
            // Best effort: in a restricted cpuset the thread simply stays where the scheduler puts it.
            ulong* mask = stackalloc ulong[16];
            new Span<ulong>(mask, 16).Clear();
            mask[cpu / 64] = 1UL << (cpu % 64);
            _ = Libc.sched_setaffinity(0, 16 * sizeof(ulong), mask);
        }

        /// <summary>
        /// Moves up to <see cref="Batch"/> frames from the real device's ring into the virtual TAP, in place: the
        /// slot already holds the virtio_net_hdr right before the frame, which is exactly what a TAP write takes.
        /// An 802.1Q tag the device stripped (tp_vlan_tci) is put back in front of the EtherType, in the slot's
        /// reserved headroom, and the header's offsets move with it. No system call unless a frame is written.
        /// </summary>
        private int DrainRing(int destination)
        {
            int moved = 0;
            int queued = 0;
            Tpacket2Hdr* hdr;
            while (moved < Batch && (hdr = _ring.Peek(moved)) != null)
            {
                // Slots are handed back together after the loop: a queued write still reads its slot until the
                // batch is submitted.
                moved++;
                byte* slot = (byte*)hdr;
                byte* mac = slot + hdr->Mac;
                int length = (int)hdr->Snaplen;
                uint status = hdr->Status;
                byte pkttype = slot[Packet.SockaddrOffset + 10];
                if (pkttype is Packet.PACKET_LOOPBACK or Packet.PACKET_OUTGOING)
                {
                    // The real device's own looped-back multicast (tcx leaves it to the device) or its own
                    // transmissions (ours among them): not from the wire.
                    continue;
                }

                if (length != hdr->Len || length < EthernetView.HeaderLength)
                {
                    _ingress.Drops++;
                    continue;
                }

                if ((status & Packet.TP_STATUS_VLAN_VALID) != 0)
                {
                    ushort tpid = (status & Packet.TP_STATUS_VLAN_TPID_VALID) != 0 && hdr->VlanTpid != 0 ? hdr->VlanTpid : EthernetView.EtherTypeVlan;
                    byte* tagged = mac - 4;
                    Buffer.MemoryCopy(mac - VirtioNetHdr.Size, tagged - VirtioNetHdr.Size, VirtioNetHdr.Size + 12, VirtioNetHdr.Size + 12);
                    tagged[12] = (byte)(tpid >> 8);
                    tagged[13] = (byte)tpid;
                    tagged[14] = (byte)(hdr->VlanTci >> 8);
                    tagged[15] = (byte)hdr->VlanTci;
                    ref VirtioNetHdr vnet = ref *(VirtioNetHdr*)(tagged - VirtioNetHdr.Size);
                    if ((vnet.Flags & VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0)
                    {
                        vnet.CsumStart += 4;
                    }

                    if (vnet.GsoType != VirtioNetHdr.VIRTIO_NET_HDR_GSO_NONE)
                    {
                        vnet.HdrLen += 4;
                    }

                    mac = tagged;
                    length += 4;
                }

                byte* p = mac - VirtioNetHdr.Size;
                int n = length + VirtioNetHdr.Size;
                var frame = new Frame(new Span<byte>(p, n), Direction.Ingress);
                int output = Pipeline.Decide(_handlers, ref frame, destination, _ports, ref _ingress.Drops);
                if (output < 0)
                {
                    continue;
                }

                if (_uring is not null)
                {
                    // Registered files: 0 the pump's queue, 1 the virtual TAP's (the order of _ports).
                    _uring.PrepareWrite(output == _ports[0].Fd ? 0 : 1, p, n, (ulong)length);
                    queued++;
                }
                else if (TapDevice.Write(output, p, n) < 0)
                {
                    _ingress.Drops++;
                }
                else
                {
                    _ingress.Frames++;
                    _ingress.Bytes += length;
                }
            }

            if (queued > 0)
            {
                CompleteWrites(queued);
            }

            _ring.ReleaseMany(moved);
            return moved;
        }

        /// <summary>One io_uring_enter for the batch; each completion counts as a frame moved or a drop.</summary>
        private void CompleteWrites(int queued)
        {
            if (_uring!.SubmitAndWait() < 0)
            {
                // The enter itself failed (not one write): count the batch lost. Completions that did arrive are
                // still reaped below, so the queue stays in step.
                _ingress.Drops += queued;
                while (_uring.TryReap(out _, out _))
                {
                }

                return;
            }

            while (_uring.TryReap(out ulong length, out int result))
            {
                if (result < 0)
                {
                    _ingress.Drops++;
                }
                else
                {
                    _ingress.Frames++;
                    _ingress.Bytes += (long)length;
                }
            }
        }

        /// <summary>Moves up to <see cref="Batch"/> frames from one TAP to the other. Returns the count, or -1 on a fault.</summary>
        private int Drain(int source, int destination, Direction direction, byte* p, ref Stats stats)
        {
            int moved = 0;
            while (moved < Batch)
            {
                nint n = TapDevice.Read(source, p, BufferSize);
                if (n < 0)
                {
                    if (n == -(nint)Errno.EAGAIN)
                    {
                        return moved;
                    }

                    if (n == -(nint)Errno.EINTR)
                    {
                        continue;
                    }

                    Fail(direction, (Errno)(-n));
                    return -1;
                }

                moved++;
                if (n < VirtioNetHdr.Size + EthernetView.HeaderLength)
                {
                    stats.Drops++;
                    continue;
                }

                var frame = new Frame(new Span<byte>(p, (int)n), direction);
                int output = Pipeline.Decide(_handlers, ref frame, destination, _ports, ref stats.Drops);
                if (output < 0)
                {
                    continue;
                }

                if (TapDevice.Write(output, p, (int)n) < 0)
                {
                    // EIO: the destination is down; the frame is lost as it would be on a down link.
                    stats.Drops++;
                    continue;
                }

                stats.Frames++;
                stats.Bytes += n - VirtioNetHdr.Size;
            }

            return moved;
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        private void Fail(Direction direction, Errno errno)
            => Fault = errno == Errno.EBADFD
                ? $"{(direction == Direction.Ingress ? _names.Pump : _names.Virt)} was deleted" // the fd outlived its device
                : $"read on the {(direction == Direction.Ingress ? "real" : "virtual")} side failed: {errno.Format()}";

        /// <summary>
        /// The forwarders' frame rates and the spread flag they decide together. A rate, not a busy fraction:
        /// a forwarder that shares its CPU with the producer finds its ring empty whenever it runs (the producer
        /// is not running then), so it never looks busy although most frames are lost while it waits its turn.
        /// </summary>
        internal sealed class SharedLoad(int forwarders, FlagMap spread)
        {
            /// <summary>The measuring window: 10 ms.</summary>
            public static readonly long WindowTicks = Stopwatch.Frequency / 100;

            /// <summary>Above this many frames per second on one forwarder, frames move to the next CPU...</summary>
            public const double SpreadAboveFrames = 50_000;

            /// <summary>...or above this many bytes per second (1.6 Gbit/s: 64 KB GSO frames are few but heavy).</summary>
            public const double SpreadAboveBytes = 200e6;

            /// <summary>Below both of these on every forwarder, frames stay on the CPU that produced them.</summary>
            public const double LocalBelowFrames = 10_000;

            public const double LocalBelowBytes = 50e6;

            private readonly double[] _frames = new double[forwarders];
            private readonly double[] _bytes = new double[forwarders];

            public bool Spread => spread.Value != 0;

            public void Report(int cpu, long frames, long bytes, long windowTicks)
            {
                double seconds = windowTicks / (double)Stopwatch.Frequency;
                Volatile.Write(ref _frames[cpu], frames / seconds);
                Volatile.Write(ref _bytes[cpu], bytes / seconds);
                if (_frames.Length < 2)
                {
                    return;
                }

                double maxFrames = 0, maxBytes = 0;
                for (int i = 0; i < _frames.Length; i++)
                {
                    maxFrames = Math.Max(maxFrames, Volatile.Read(ref _frames[i]));
                    maxBytes = Math.Max(maxBytes, Volatile.Read(ref _bytes[i]));
                }

                if (!Spread && (maxFrames > SpreadAboveFrames || maxBytes > SpreadAboveBytes))
                {
                    spread.Set(1);
                }
                else if (Spread && maxFrames < LocalBelowFrames && maxBytes < LocalBelowBytes)
                {
                    spread.Set(0);
                }
            }
        }

        private struct Stats
        {
            public long Frames;
            public long Bytes;
            public long Drops;
        }
    }
}
