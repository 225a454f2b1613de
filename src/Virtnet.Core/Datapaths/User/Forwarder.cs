// The frame loop of the user datapath. One forwarder thread per CPU, pinned there, serving one receive ring on the
// real device and one queue of each port (a TAP, or anything that reads and writes whole frames on an fd) in both
// directions: it drains up to Batch frames from the ring, then from each port, and sleeps in poll() only after
// the busy-poll time without a frame, so a reply that follows a request closely is caught without a wake-up.
//
// Ports are indices: 0 is the real side (the pump TAP, whose frames go out through the real device), 1.. are the
// virtual devices. Frames from port 0 and from the ring are ingress and go to port 1 unless a handler says
// otherwise; frames from a virtual port are egress and go to port 0.
//
// Nothing here allocates or throws per frame: I/O results come back as Errno values, and a read that fails for
// good (the device was deleted under us) ends the loop with a Fault for the binding to report.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Virtnet.Devices;
using Virtnet.Native;

namespace Virtnet.Datapaths.User;

internal sealed unsafe partial class Forwarder : IFrameEmitter
{
    /// <summary>The real side's port: frames written here leave through the real device.</summary>
    public const int RealPort = 0;

    /// <summary>The first virtual device's port: where ingress frames go by default (further devices follow it).</summary>
    public const int FirstVirtualPort = 1;

    /// <summary>
    /// The forwarders' nice value. With a CPU hog on one of two CPUs, TCP through the user datapath reached 0.25-0.35
    /// of the plain veth before, 0.75-0.85 at -10 with the spin standing down (docs/performance.md).
    /// </summary>
    public const int Nice = -10;

    // virtio_net_hdr + the largest GSO frame a TAP hands over (64 KB) + slack.
    private const int BufferSize = VirtioNetHdr.Size + 65535 + 64;
    private const int Batch = 64;

    // The frame buffer, on the pinned object heap, held by a field: a pinned array that only a local held was
    // collected once the JIT saw the local's last use (the pointer taken from it lives on), and the POH
    // reused its memory while frames were still read into it (docs/kernel-notes.md, "A pinned array needs a root").
    private readonly byte[] _buffer = GC.AllocateArray<byte>(BufferSize, pinned: true);

    // Where Frame.Emit builds a new frame (a zeroed virtio header, then the handler's bytes): a field, as above.
    private readonly byte[] _emitBuffer = GC.AllocateArray<byte>(BufferSize, pinned: true);
    private long _emitted;
    private long _emitFailed;

    // While the ring road batches its writes through io_uring, what handlers emit joins the batch: each copy is
    // staged in a slot of its own here (the handler may change the frame after EmitCopy) and written with the
    // batch's one io_uring_enter. A copy larger than a slot, or beyond Batch in one batch, is written at once.
    private const int EmitSlot = VirtioNetHdr.Size + PacketRing.SlotSize;
    private const ulong EmitTag = 1UL << 63;
    private readonly byte[] _emitArena = GC.AllocateArray<byte>(Batch * EmitSlot, pinned: true);
    private bool _staging;
    private int _staged;

    private readonly PacketRing? _ring;
    private readonly FileDescriptor[] _ports;
    private readonly string[] _portNames;
    private readonly FileDescriptor _stop;
    private readonly IFrameHandler[] _handlers;
    private readonly long _spinTicks;
    private readonly int _index;
    private readonly bool _pin;
    private readonly SpreadPolicy _load;
    private readonly Thread _thread;
    private readonly bool _batched;
    private readonly bool _outgoing;
    private IoUring? _uring;
    private volatile bool _stopping;
    private volatile DropSink? _dropSink;
    private readonly HandlerReasons _reasonsIn = new();
    private readonly HandlerReasons _reasonsOut = new();
    private Stats _ingress;
    private Stats _egress;

    /// <param name="index">The forwarder's number, which is also the CPU it is pinned to.</param>
    /// <param name="ring">The real device's receive ring this forwarder drains (null: ports only).</param>
    /// <param name="ports">Port 0 the real side, then the virtual devices; each fd non-blocking.</param>
    /// <param name="portNames">The device behind each port, for the fault sentence.</param>
    /// <param name="stop">An eventfd that becomes readable when the forwarders must stop.</param>
    /// <param name="handlers">The pipeline every frame passes through.</param>
    /// <param name="spin">How long to poll after the last frame before sleeping.</param>
    /// <param name="load">Where the frame rate is reported each window.</param>
    /// <param name="batched">Write ring frames through io_uring, one enter per batch.</param>
    /// <param name="pin">Pin the thread to CPU <paramref name="index"/>.</param>
    /// <param name="outgoing">A mirror's forwarder: the ring's copies of what the real device sends are frames to deliver too.</param>
    public Forwarder(int index, PacketRing? ring, FileDescriptor[] ports, string[] portNames, FileDescriptor stop, IFrameHandler[] handlers, TimeSpan spin, SpreadPolicy load, bool batched, bool pin = true, bool outgoing = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ports.Length, 2);
        _index = index;
        _ring = ring;
        _ports = ports;
        _portNames = portNames;
        _stop = stop;
        _handlers = handlers;
        Faults = new HandlerFaults(handlers);
        _spinTicks = (long)(spin.TotalSeconds * Stopwatch.Frequency);
        _load = load;
        _batched = batched;
        _pin = pin;
        _outgoing = outgoing;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"virtnet fwd{index}" };
    }

    /// <summary>Why the loop ended on its own (a port's device is gone, a read failed); null while healthy.</summary>
    public string? Fault { get; private set; }

    /// <summary>The real device's receive ring this forwarder drains, if any.</summary>
    public PacketRing? Ring => _ring;

    public void Start() => _thread.Start();

    /// <summary>Asks the loop to end; it notices at the next pass, or when the stop eventfd wakes its poll().</summary>
    public void RequestStop() => _stopping = true;

    public void Join()
    {
        if (_thread.ThreadState != System.Threading.ThreadState.Unstarted)
        {
            _thread.Join();
        }
    }

    /// <summary>What this forwarder moved and dropped in one direction (a consistent-enough snapshot for reporting).</summary>
    public DirectionCounters Read(Direction direction)
    {
        ref Stats s = ref direction == Direction.Ingress ? ref _ingress : ref _egress;
        return new((ulong)Volatile.Read(ref s.Frames), (ulong)Volatile.Read(ref s.Bytes), (ulong)(Volatile.Read(ref s.Drops) + Volatile.Read(ref s.HandlerDrops) + Volatile.Read(ref s.HandlerFaults)));
    }

    /// <summary>Of <see cref="Read"/>'s drops, those on which a handler threw.</summary>
    public ulong ReadHandlerFaults(Direction direction)
        => (ulong)Volatile.Read(ref (direction == Direction.Ingress ? ref _ingress : ref _egress).HandlerFaults);

    /// <summary>The exceptions this forwarder's handlers threw, for the binding's log.</summary>
    public HandlerFaults Faults { get; }

    /// <summary>What the handlers said through HandlerContext.Log (the first forwarder's holds the binding's), for the binding's log.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> HandlerLog { get; } = new();

    /// <summary>Where the frames dropped in managed code go while a capture asks for them (DropSink.cs); null: nowhere.</summary>
    public DropSink? DropSink
    {
        get => _dropSink;
        set => _dropSink = value;
    }

    /// <summary>Frames handlers sent with Frame.Emit or EmitCopy, and those that could not be sent.</summary>
    public (ulong Emitted, ulong Failed) ReadEmitted() => ((ulong)Volatile.Read(ref _emitted), (ulong)Volatile.Read(ref _emitFailed));

    int IFrameEmitter.PortCount => _ports.Length;

    bool IFrameEmitter.Emit(int port, ReadOnlySpan<byte> bytes, bool withHeader)
    {
        if ((uint)port >= (uint)_ports.Length || bytes.Length == 0 || bytes.Length > BufferSize - VirtioNetHdr.Size)
        {
            _emitFailed++;
            return false;
        }

        int total = bytes.Length + (withHeader ? 0 : VirtioNetHdr.Size);
        if (_staging && _staged < Batch && total <= EmitSlot)
        {
            fixed (byte* arena = _emitArena)
            {
                byte* slot = arena + (_staged * EmitSlot);
                if (!withHeader)
                {
                    new Span<byte>(slot, VirtioNetHdr.Size).Clear();
                }

                bytes.CopyTo(new Span<byte>(slot + total - bytes.Length, bytes.Length));
                _uring!.PrepareWrite(port, slot, total, EmitTag);
            }

            _staged++;
            return true;
        }

        Errno result;
        if (withHeader)
        {
            fixed (byte* b = bytes)
            {
                result = TapDevice.Write(_ports[port].Fd, b, bytes.Length);
            }
        }
        else
        {
            fixed (byte* e = _emitBuffer)
            {
                new Span<byte>(e, VirtioNetHdr.Size).Clear();
                bytes.CopyTo(new Span<byte>(e + VirtioNetHdr.Size, bytes.Length));
                result = TapDevice.Write(_ports[port].Fd, e, VirtioNetHdr.Size + bytes.Length);
            }
        }

        if (result != Errno.OK)
        {
            _emitFailed++;
            return false;
        }

        _emitted++;
        return true;
    }

    /// <summary>The handlers' own reasons for what they dropped, per direction.</summary>
    public HandlerReasons Reasons(Direction direction) => direction == Direction.Ingress ? _reasonsIn : _reasonsOut;

    /// <summary>A frame <c>Pipeline.Decide</c> dropped: counted under its handler's reason, and to the drop sink if one listens.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void OnNotDelivered(int decided, in Frame frame, byte* data, int length, Direction direction)
    {
        if (decided == Pipeline.Dropped && frame.DropReason is { } reason)
        {
            (direction == Direction.Ingress ? _reasonsIn : _reasonsOut).Count(reason);
        }

        if (decided == Pipeline.Consumed || _dropSink is not { Dead: false } sink)
        {
            return;
        }

        bool threw = decided == Pipeline.Faulted;
        sink.Offer(new ReadOnlySpan<byte>(data, length), direction, threw ? DropCause.HandlerFault : DropCause.Handler, threw ? DropSink.Threw : frame.DropReason ?? DropSink.NoSuchPort);
    }

    /// <summary>Of <see cref="Read"/>'s drops, those a handler decided.</summary>
    public ulong ReadHandlerDrops(Direction direction)
        => (ulong)Volatile.Read(ref (direction == Direction.Ingress ? ref _ingress : ref _egress).HandlerDrops);

    private void Loop()
    {
        if (_pin)
        {
            PinToCpu(_index);
        }

        // A forwarder stands in for a softirq, which no task can delay: when it wakes for a frame it must not
        // wait behind whatever else runs on its CPU. Best effort (needs CAP_SYS_NICE, which root has).
        _ = Libc.setpriority(Libc.PRIO_PROCESS, (uint)Libc.gettid(), Nice);

        // Created on this thread: a SINGLE_ISSUER ring belongs to the thread that submits to it. Registered file i
        // is port i. Should it fail here although the probe succeeded, this forwarder writes frame by frame.
        Span<int> files = stackalloc int[_ports.Length];
        for (int i = 0; i < _ports.Length; i++)
        {
            files[i] = _ports[i].Fd;
        }

        _uring = _batched && _ring is not null ? IoUring.TryCreate(2 * Batch, files) : null; // a batch's frames, and as many emitted copies
        try
        {
            Run(new CpuPressure());
        }
        finally
        {
            _uring?.Dispose();
        }
    }

    private void Run(CpuPressure pressure)
    {
        byte* p = (byte*)Unsafe.AsPointer(ref _buffer[0]);
        int ports = _ports.Length;
        int polled = ports + 1 + (_ring is null ? 0 : 1);
        PollFd* fds = stackalloc PollFd[polled];
        for (int i = 0; i < ports; i++)
        {
            fds[i] = new PollFd { Fd = _ports[i].Fd, Events = Libc.POLLIN };
        }

        fds[ports] = new PollFd { Fd = _stop.Fd, Events = Libc.POLLIN };
        if (_ring is not null)
        {
            fds[ports + 1] = new PollFd { Fd = _ring.Handle.Fd, Events = Libc.POLLIN };
        }

        long lastFrame = Stopwatch.GetTimestamp();
        long windowStart = lastFrame;
        long framesInWindow = 0;
        long bytesAtWindowStart = 0;

        int ringSinceTaps = 0;
        while (!_stopping)
        {
            int moved = _ring is null ? 0 : DrainRing();

            // A TAP has no shared-memory ring: finding one empty costs a read() that returns EAGAIN (~0.6 µs, one
            // per port per pass). While the ring keeps us busy, look at the ports once per Batch ring frames instead
            // of once per pass; when the ring is idle, every pass.
            ringSinceTaps += moved;
            if (moved == 0 || ringSinceTaps >= Batch)
            {
                ringSinceTaps = 0;
                for (int port = 0; port < ports; port++)
                {
                    int n = Drain(port, p);
                    if (n < 0)
                    {
                        return;
                    }

                    moved += n;
                }
            }

            long now = Stopwatch.GetTimestamp();
            if (now - windowStart >= SpreadPolicy.WindowTicks)
            {
                long bytes = _ingress.Bytes + _egress.Bytes;
                _load.Report(_index, framesInWindow, bytes - bytesAtWindowStart, now - windowStart);
                pressure.WindowEnded();
                windowStart = now;
                framesInWindow = 0;
                bytesAtWindowStart = bytes;
            }

            if (moved > 0)
            {
                framesInWindow += moved;
                lastFrame = now;
                continue;
            }

            if (pressure.SpinAllowed && now - lastFrame < _spinTicks)
            {
                // Let any other thread runnable on this CPU go first. Under TCP the gaps between super-frames
                // (~20-40 µs) never reach the sleep, and the spin's empty reads (~15 per frame moved, ~0.6 µs
                // each) took the CPU from the stack and the applications sharing it; yielding gave TCP
                // +12-16 %. A yield that lasts a time slice means a CPU-bound neighbour: then the spin stands
                // down and the forwarder sleeps between frames (CpuPressure).
                _ = Libc.sched_yield();
                pressure.Yielded(Stopwatch.GetTimestamp() - now);
                continue;
            }

            // Sleep until a frame comes; while spread is on, wake each window to report the load falling.
            Libc.poll(fds, (nuint)polled, _load.Spread ? (int)(SpreadPolicy.WindowTicks * 1000 / Stopwatch.Frequency) + 1 : -1);
            if (_ring is not null && (fds[ports + 1].REvents & Libc.POLLERR) != 0)
            {
                // Its device went down and up: clear the error, or every poll() returns at once from now on.
                _ring.ClearError();
            }

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
    /// Moves up to <see cref="Batch"/> frames from port <paramref name="source"/> to where the pipeline sends them.
    /// Returns the count read, or -1 when the port failed for good (see <see cref="Fault"/>).
    /// </summary>
    private int Drain(int source, byte* p)
    {
        var direction = source == RealPort ? Direction.Ingress : Direction.Egress;
        int defaultPort = source == RealPort ? FirstVirtualPort : RealPort;
        ref Stats stats = ref source == RealPort ? ref _ingress : ref _egress;
        int fd = _ports[source].Fd;
        int moved = 0;
        while (moved < Batch)
        {
            var error = TapDevice.Read(fd, p, BufferSize, out int n);
            if (error != Errno.OK)
            {
                if (error == Errno.EAGAIN)
                {
                    return moved;
                }

                if (error == Errno.EINTR)
                {
                    continue;
                }

                Fail(source, error);
                return -1;
            }

            moved++;
            if (n < VirtioNetHdr.Size + EthernetView.HeaderLength)
            {
                stats.Drops++;
                _dropSink?.Offer(new ReadOnlySpan<byte>(p + VirtioNetHdr.Size, Math.Max(0, n - VirtioNetHdr.Size)), direction, DropCause.SendFailed, "shorter than an Ethernet header");
                continue;
            }

            var frame = new Frame(new Span<byte>(p, BufferSize), n, direction, this, _index, source);
            int output = Pipeline.Decide(_handlers, ref frame, defaultPort, _ports.Length, ref stats.HandlerDrops, Faults, ref stats.HandlerFaults);
            n = frame.Raw.Length; // a handler may have changed its length
            if (output < 0)
            {
                if (output != Pipeline.Consumed)
                {
                    OnNotDelivered(output, frame, p + VirtioNetHdr.Size, n - VirtioNetHdr.Size, direction);
                }

                continue;
            }

            if (TapDevice.Write(_ports[output].Fd, p, n) != Errno.OK)
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
    private void Fail(int port, Errno errno)
        => Fault = errno == Errno.EBADFD
            ? $"{_portNames[port]} was deleted" // the fd outlived its device
            : $"read on the {(port == RealPort ? "real" : "virtual")} side ({_portNames[port]}) failed: {errno.Format()}";

    private struct Stats
    {
        public long Frames;
        public long Bytes;

        /// <summary>Runts and frames that could not be written out.</summary>
        public long Drops;

        /// <summary>Frames a handler dropped.</summary>
        public long HandlerDrops;

        /// <summary>Frames a handler threw on.</summary>
        public long HandlerFaults;
    }
}
