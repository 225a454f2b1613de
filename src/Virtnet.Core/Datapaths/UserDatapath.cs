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

    /// <summary>How long a forwarder keeps polling without sleeping after its last frame, unless told otherwise.</summary>
    public static readonly TimeSpan DefaultBusyPoll = TimeSpan.FromMicroseconds(200);

    private readonly RtNetlink _rtnl;
    private readonly TapDevice _pump;
    private readonly int _pumpIndex;
    private readonly int _virtIndex;
    private readonly Cleanup _owned;
    private readonly FileDescriptor _stop;
    private readonly Forwarder[] _forwarders;
    private int _disposed;

    private UserDatapath(RtNetlink rtnl, TapDevice pump, int pumpIndex, int virtIndex, Cleanup owned, FileDescriptor stop, Forwarder[] forwarders)
    {
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

    /// <summary>One forwarder (and one queue on each TAP) per CPU.</summary>
    public int Queues => _forwarders.Length;

    /// <summary>Whether frames are currently steered to the next CPU's forwarder (see <see cref="Forwarder"/>).</summary>
    public bool Spread => _forwarders[0].Spread;

    /// <summary>The name of the private TAP that carries the real device's frames to and from this process.</summary>
    public static string PumpNameFor(int realIndex) => $"vnpump{realIndex}";

    /// <summary>The queue count the virtual TAP must be created with for this datapath: one per CPU.</summary>
    public static int QueuesFor() => Math.Clamp(Environment.ProcessorCount, 1, 64);

    public static UserDatapath Create(RtNetlink rtnl, LinkInfo real, TapDevice virt, int virtIndex, IReadOnlyList<IFrameHandler> handlers, TimeSpan busyPoll)
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

            // Both TAPs pick a frame's queue with the same program: the queue of the CPU the frame is on, or of
            // the next CPU while the forwarders are busy (see Forwarder).
            var spread = owned.Add(FlagMap.Create("virtnet_spread"));
            if (queues > 1)
            {
                var steer = owned.Add(BpfProgram.LoadSocketFilter(SteeringProgramName, Programs.SteerByCpu(spread), pump.Name));
                pump.SetSteeringProgram(steer.Handle);
                virt.SetSteeringProgram(steer.Handle);
            }

            var stop = owned.Add(FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd"));
            var load = new Forwarder.SharedLoad(queues, spread);
            var forwarders = new Forwarder[queues];
            for (int q = 0; q < queues; q++)
            {
                forwarders[q] = new Forwarder(q, pump.Queues[q], virt.Queues[q], stop, handlers.ToArray(), busyPoll, load);
            }

            var pumpProgram = owned.Add(BpfProgram.LoadSchedCls(PumpProgramName, Programs.Redirect(real.Index, 0), pump.Name));
            var ingressProgram = owned.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.TakeIngress(null, 0, pumpLink.Index, 0), real.Name));

            // Forwarders first, then the way out, then the way in: no frame is taken before something reads it.
            // Teardown (Cleanup runs in reverse) gives the real device back first, then stops the forwarders.
            foreach (var f in forwarders)
            {
                f.Start();
            }

            owned.Add(() => StopForwarders(stop, forwarders));
            owned.Add(TcxLink.Attach(pumpProgram, pumpLink.Index, pump.Name, TcxDirection.Ingress));
            owned.Add(TcxLink.Attach(ingressProgram, real.Index, real.Name, TcxDirection.Ingress));
            return new UserDatapath(rtnl, pump, pumpLink.Index, virtIndex, owned, stop, forwarders);
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    /// <summary>
    /// What the forwarders moved, plus what the kernel dropped before they could: a full pump ring (the pump's
    /// tx_dropped) counts against ingress, a full virtual-device ring (its tx_dropped) against egress.
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
        ulong virtDropped = _rtnl.TryGetLink(_virtIndex)?.Stats?.TxDropped ?? 0;
        return new(ingress with { Drops = ingress.Drops + pumpDropped }, egress with { Drops = egress.Drops + virtDropped });

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

    private static void DisableIpv6(string device)
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
    /// forwarder is busy more than half of the time, the flag moves every frame to the next CPU's forwarder, so
    /// the producer (a NIC's softirq, a sender) and the forwarding run in parallel; below 15 % it moves back.
    /// </summary>
    private sealed unsafe class Forwarder
    {
        // virtio_net_hdr + the largest GSO frame a TAP hands over (64 KB) + slack.
        private const int BufferSize = VirtioNetHdr.Size + 65535 + 64;
        private const int Batch = 64;

        private readonly FileDescriptor _pump;
        private readonly FileDescriptor _virt;
        private readonly FileDescriptor _stop;
        private readonly IFrameHandler[] _handlers;
        private readonly FileDescriptor[] _ports;
        private readonly long _spinTicks;
        private readonly int _cpu;
        private readonly SharedLoad _load;
        private readonly Thread _thread;
        private volatile bool _stopping;
        private Stats _ingress;
        private Stats _egress;

        public Forwarder(int cpu, FileDescriptor pump, FileDescriptor virt, FileDescriptor stop, IFrameHandler[] handlers, TimeSpan spin, SharedLoad load)
        {
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

        public bool Spread => _load.Spread;

        public string? Fault { get; private set; }

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
            var buffer = GC.AllocateArray<byte>(BufferSize, pinned: true);
            byte* p = (byte*)Unsafe.AsPointer(ref buffer[0]);
            int pump = _pump.Fd;
            int virt = _virt.Fd;
            PollFd* fds = stackalloc PollFd[3];
            fds[0] = new PollFd { Fd = pump, Events = Libc.POLLIN };
            fds[1] = new PollFd { Fd = virt, Events = Libc.POLLIN };
            fds[2] = new PollFd { Fd = _stop.Fd, Events = Libc.POLLIN };
            long lastFrame = Stopwatch.GetTimestamp();
            long windowStart = lastFrame;
            long busy = 0;

            while (!_stopping)
            {
                long before = Stopwatch.GetTimestamp();
                int moved = Drain(pump, virt, Direction.Ingress, p, ref _ingress);
                int movedOut = Drain(virt, pump, Direction.Egress, p, ref _egress);
                if (moved < 0 || movedOut < 0)
                {
                    return;
                }

                long now = Stopwatch.GetTimestamp();
                if (now - windowStart >= SharedLoad.WindowTicks)
                {
                    _load.Report(_cpu, busy, now - windowStart);
                    windowStart = now;
                    busy = 0;
                }

                if (moved + movedOut > 0)
                {
                    busy += now - before;
                    lastFrame = now;
                    continue;
                }

                if (now - lastFrame < _spinTicks)
                {
                    continue;
                }

                // Sleep until a frame comes; while spread is on, wake each window to report the load falling.
                Libc.poll(fds, 3, _load.Spread ? (int)(SharedLoad.WindowTicks * 1000 / Stopwatch.Frequency) + 1 : -1);
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
            => Fault = $"read on the {(direction == Direction.Ingress ? "real" : "virtual")} side failed: {errno.Format()}";

        /// <summary>The forwarders' busy fractions and the spread flag they decide together.</summary>
        internal sealed class SharedLoad(int forwarders, FlagMap spread)
        {
            /// <summary>The measuring window: 10 ms.</summary>
            public static readonly long WindowTicks = Stopwatch.Frequency / 100;
            private const double SpreadAbove = 0.5;
            private const double LocalBelow = 0.15;
            private readonly double[] _busy = new double[forwarders];

            public bool Spread => spread.Value != 0;

            public void Report(int cpu, long busyTicks, long windowTicks)
            {
                Volatile.Write(ref _busy[cpu], (double)busyTicks / windowTicks);
                double max = 0;
                for (int i = 0; i < _busy.Length; i++)
                {
                    max = Math.Max(max, Volatile.Read(ref _busy[i]));
                }

                if (_busy.Length < 2)
                {
                    return;
                }

                if (!Spread && max > SpreadAbove)
                {
                    spread.Set(1);
                }
                else if (Spread && max < LocalBelow)
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
