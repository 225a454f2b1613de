// The kernel datapath's slow path. Its egress program sits on the virtual TAP's tcx egress hook, which every frame
// the stack transmits through the qdisc layer passes. Some frames reach the TAP's transmit without that hook:
// packet sockets with PACKET_QDISC_BYPASS (trafgen, pktgen, DPDK's af_packet driver), and XDP_REDIRECT into the
// device (ndo_xdp_xmit). A TAP queues such frames for its fd reader, which here is us: this thread reads them and
// sends them out of the real device through a packet socket, with their virtio_net_hdr, so the binding forwards
// everything its transmit is given, as a driver's ndo_start_xmit does. It costs nothing while unused: the thread
// sleeps in poll() until such a frame comes. Counted apart from the tcx path, so a user can see that something
// sends past the qdisc.
using System.Runtime.CompilerServices;
using Virtnet.Devices;
using Virtnet.Native;

namespace Virtnet.Datapaths.Kernel;

internal sealed unsafe class SlowPath : IDisposable
{
    private const int BufferSize = VirtioNetHdr.Size + 65535 + 64;

    // The frame buffer, on the pinned object heap, held by a field: a pinned array that only a local held was
    // collected once the JIT saw the local's last use (the pointer taken from it lives on), and the POH
    // reused its memory while frames were still read into it (docs/kernel-notes.md, "A pinned array needs a root").
    private readonly byte[] _buffer = GC.AllocateArray<byte>(BufferSize, pinned: true);

    private readonly FileDescriptor _tap;
    private readonly FileDescriptor _sender;
    private readonly FileDescriptor _stop;
    private readonly Thread _thread;
    private readonly ushort _vlan;
    private long _frames;
    private long _bytes;
    private long _drops;
    private int _disposed;

    private SlowPath(FileDescriptor tap, FileDescriptor sender, FileDescriptor stop, int vlan)
    {
        _vlan = (ushort)vlan;
        _tap = tap;
        _sender = sender;
        _stop = stop;
        _thread = new Thread(Loop) { IsBackground = true, Name = "virtnet slow path" };
    }

    /// <summary>Why the loop ended on its own (the TAP's reads fail for good), or null.</summary>
    public string? Fault { get; private set; }

    /// <summary>
    /// Starts reading <paramref name="tap"/> (non-blocking) and sending what it gets out of <paramref name="realIndex"/>,
    /// tagged with <paramref name="vlan"/> unless it is 0.
    /// </summary>
    public static SlowPath Start(FileDescriptor tap, int realIndex, string realName, int vlan = 0)
    {
        var sender = PacketSender.Open(realIndex, realName);
        FileDescriptor? stop = null;
        try
        {
            stop = FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd");
            var path = new SlowPath(tap, sender, stop, vlan);
            path._thread.Start();
            return path;
        }
        catch
        {
            stop?.Dispose();
            sender.Dispose();
            throw;
        }
    }

    /// <summary>Frames sent, their bytes, and frames that could not be sent.</summary>
    public DirectionCounters Read() => new((ulong)Volatile.Read(ref _frames), (ulong)Volatile.Read(ref _bytes), (ulong)Volatile.Read(ref _drops));

    private void Loop()
    {
        // Headroom for a VLAN tag in front of what is read.
        byte* p = (byte*)Unsafe.AsPointer(ref _buffer[0]) + VlanTag.Length;
        PollFd* fds = stackalloc PollFd[2];
        fds[0] = new PollFd { Fd = _tap.Fd, Events = Libc.POLLIN };
        fds[1] = new PollFd { Fd = _stop.Fd, Events = Libc.POLLIN };
        while (true)
        {
            _ = Libc.poll(fds, 2, -1);
            if ((fds[1].REvents & Libc.POLLIN) != 0)
            {
                return;
            }

            while (true)
            {
                var error = TapDevice.Read(_tap.Fd, p, BufferSize - VlanTag.Length, out int n);
                if (error == Errno.EAGAIN)
                {
                    break;
                }

                if (error == Errno.EINTR)
                {
                    continue;
                }

                if (error != Errno.OK)
                {
                    Fault = error == Errno.EBADFD ? null : $"read on the virtual device's slow path failed: {error.Format()}";
                    return;
                }

                byte* send = p;
                if (_vlan != 0 && n >= VirtioNetHdr.Size + EthernetView.HeaderLength)
                {
                    send = VlanTag.Restore(p + VirtioNetHdr.Size, EthernetView.EtherTypeVlan, _vlan) - VirtioNetHdr.Size;
                    n += VlanTag.Length;
                }

                if (n < VirtioNetHdr.Size + EthernetView.HeaderLength || PacketSender.Send(_sender.Fd, send, n) != Errno.OK)
                {
                    // A runt, or the real device refused it (down, too big): lost as on a failed transmit.
                    Interlocked.Increment(ref _drops);
                    continue;
                }

                Interlocked.Increment(ref _frames);
                Interlocked.Add(ref _bytes, n - VirtioNetHdr.Size - (send == p ? 0 : VlanTag.Length));
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ulong one = 1;
        _ = Libc.write(_stop.Fd, (byte*)&one, sizeof(ulong));
        _thread.Join();
        _stop.Dispose();
        _sender.Dispose();
    }
}
