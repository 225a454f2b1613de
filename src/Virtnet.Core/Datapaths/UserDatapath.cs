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

    private readonly RtNetlink _rtnl;
    private readonly TapDevice _pump;
    private readonly int _pumpIndex;
    private readonly BpfProgram _ingressProgram;
    private readonly BpfProgram _pumpProgram;
    private readonly TcxLink _pumpLink;
    private readonly TcxLink _ingressLink;
    private readonly FileDescriptor _stop;
    private readonly Worker _ingress;
    private readonly Worker _egress;
    private int _disposed;

    private UserDatapath(RtNetlink rtnl, TapDevice pump, int pumpIndex, BpfProgram ingressProgram, BpfProgram pumpProgram, TcxLink pumpLink, TcxLink ingressLink, FileDescriptor stop, Worker ingress, Worker egress)
    {
        _rtnl = rtnl;
        _pump = pump;
        _pumpIndex = pumpIndex;
        _ingressProgram = ingressProgram;
        _pumpProgram = pumpProgram;
        _pumpLink = pumpLink;
        _ingressLink = ingressLink;
        _stop = stop;
        _ingress = ingress;
        _egress = egress;
    }

    public DatapathKind Kind => DatapathKind.User;

    public string? Fault => _ingress.Fault ?? _egress.Fault;

    public string PumpName => _pump.Name;

    /// <summary>The name of the private TAP that carries the real device's frames to and from this process.</summary>
    public static string PumpNameFor(int realIndex) => $"vnpump{realIndex}";

    public static UserDatapath Create(RtNetlink rtnl, LinkInfo real, TapDevice virt, IReadOnlyList<IFrameHandler> handlers)
    {
        using var cleanup = new Cleanup();
        var pump = cleanup.Add(TapDevice.Create(PumpNameFor(real.Index)));
        pump.EnableOffloads(virt.Offloads == 0 ? TapDevice.WantedOffloads : virt.Offloads);
        var pumpLink = rtnl.GetLink(pump.Name);
        rtnl.SetAlias(pumpLink.Index, $"virtnet pump for {real.Name}");
        // The pump carries only the real device's frames: no addresses, no IPv6 autoconfiguration, no ND/MLD of
        // its own that would leak out through the real device.
        DisableIpv6(pump.Name);
        rtnl.SetMtu(pumpLink.Index, real.Mtu);
        rtnl.SetUp(pumpLink.Index, true);

        var stop = cleanup.Add(FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd"));
        var handlerArray = handlers.ToArray();
        var ingress = new Worker(Direction.Ingress, pump.Handle, virt.Handle, stop, handlerArray, pump.Handle, virt.Handle);
        var egress = new Worker(Direction.Egress, virt.Handle, pump.Handle, stop, handlerArray, pump.Handle, virt.Handle);

        var pumpProgram = cleanup.Add(BpfProgram.LoadSchedCls(PumpProgramName, Programs.Redirect(real.Index, 0), pump.Name));
        var ingressProgram = cleanup.Add(BpfProgram.LoadSchedCls(IngressProgramName, Programs.TakeIngress(null, 0, pumpLink.Index, 0), real.Name));

        // Workers first, then the way out, then the way in: no frame is taken before something reads it.
        ingress.Start();
        egress.Start();
        cleanup.Add(() => StopWorkers(stop, ingress, egress));
        var outLink = cleanup.Add(TcxLink.Attach(pumpProgram, pumpLink.Index, pump.Name, TcxDirection.Ingress));
        var inLink = cleanup.Add(TcxLink.Attach(ingressProgram, real.Index, real.Name, TcxDirection.Ingress));
        cleanup.Commit();
        return new UserDatapath(rtnl, pump, pumpLink.Index, ingressProgram, pumpProgram, outLink, inLink, stop, ingress, egress);
    }

    public DatapathCounters ReadCounters() => new(_ingress.Read(), _egress.Read());

    public void OnMtuChanged(int mtu) => _rtnl.SetMtu(_pumpIndex, mtu);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Give the real device back first, then stop the workers, then let the pump go.
        _ingressLink.Dispose();
        _pumpLink.Dispose();
        StopWorkers(_stop, _ingress, _egress);
        _ingressProgram.Dispose();
        _pumpProgram.Dispose();
        _stop.Dispose();
        _pump.Dispose();
    }

    private static unsafe void StopWorkers(FileDescriptor stop, Worker a, Worker b)
    {
        a.RequestStop();
        b.RequestStop();
        ulong one = 1;
        _ = Libc.write(stop.Fd, (byte*)&one, sizeof(ulong));
        a.Join();
        b.Join();
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

    /// <summary>One direction: read a frame from one TAP, run the pipeline, write it to the other.</summary>
    private sealed unsafe class Worker
    {
        // virtio_net_hdr + the largest GSO frame a TAP hands over (64 KB) + slack.
        private const int BufferSize = VirtioNetHdr.Size + 65535 + 64;

        private readonly Direction _direction;
        private readonly FileDescriptor _source;
        private readonly FileDescriptor _destination;
        private readonly FileDescriptor _stop;
        private readonly IFrameHandler[] _handlers;
        private readonly FileDescriptor[] _ports;
        private readonly Thread _thread;
        private volatile bool _stopping;
        private long _frames;
        private long _bytes;
        private long _drops;

        public Worker(Direction direction, FileDescriptor source, FileDescriptor destination, FileDescriptor stop, IFrameHandler[] handlers, params FileDescriptor[] ports)
        {
            _direction = direction;
            _source = source;
            _destination = destination;
            _stop = stop;
            _handlers = handlers;
            _ports = ports;
            _thread = new Thread(Loop) { IsBackground = true, Name = $"virtnet {direction}" };
        }

        public string? Fault { get; private set; }

        public void Start() => _thread.Start();

        public void RequestStop() => _stopping = true;

        public void Join()
        {
            if (_thread.ThreadState != ThreadState.Unstarted)
            {
                _thread.Join();
            }
        }

        public DirectionCounters Read() => new((ulong)Volatile.Read(ref _frames), (ulong)Volatile.Read(ref _bytes), (ulong)Volatile.Read(ref _drops));

        private void Loop()
        {
            var buffer = GC.AllocateArray<byte>(BufferSize, pinned: true);
            byte* p = (byte*)Unsafe.AsPointer(ref buffer[0]);
            int src = _source.Fd;
            int dst = _destination.Fd;
            PollFd* fds = stackalloc PollFd[2];
            fds[0] = new PollFd { Fd = src, Events = Libc.POLLIN };
            fds[1] = new PollFd { Fd = _stop.Fd, Events = Libc.POLLIN };

            while (!_stopping)
            {
                nint n = TapDevice.Read(src, p, BufferSize);
                if (n < 0)
                {
                    if (n == -(nint)Errno.EAGAIN)
                    {
                        Libc.poll(fds, 2, -1);
                        continue;
                    }

                    if (n == -(nint)Errno.EINTR)
                    {
                        continue;
                    }

                    Fault = $"read on the {(_direction == Direction.Ingress ? "real" : "virtual")} side failed: {((Errno)(-n)).Format()}";
                    return;
                }

                if (n < VirtioNetHdr.Size + EthernetView.HeaderLength)
                {
                    _drops++;
                    continue;
                }

                var frame = new Frame(new Span<byte>(p, (int)n), _direction);
                int output = Pipeline.Decide(_handlers, ref frame, dst, _ports, ref _drops);
                if (output < 0)
                {
                    continue;
                }

                nint written = TapDevice.Write(output, p, (int)n);
                if (written < 0)
                {
                    // EIO: the destination is down; the frame is lost as it would be on a down link.
                    _drops++;
                    continue;
                }

                _frames++;
                _bytes += n - VirtioNetHdr.Size;
            }
        }
    }
}
