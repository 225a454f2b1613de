using System.Diagnostics;
using Virtnet.Datapaths;
using Virtnet.Datapaths.User;
using Virtnet.Native;
using Virtnet.Tests.Integration;
using Xunit;

namespace Virtnet.Tests.Datapaths;

/// <summary>
/// The forwarder's frame loop over fake ports: SOCK_SEQPACKET socket pairs read and write whole frames on an fd as
/// a TAP does, so the loop runs as in production, without devices or root. Port 0 stands for the real side (the
/// pump), port 1 for the virtual device; the test holds the far end of each pair.
/// </summary>
public sealed unsafe class ForwarderTests : IDisposable
{
    private const int SOCK_NONBLOCK = 0x800;
    private const int SOCK_CLOEXEC = 0x80000;
    private readonly List<FileDescriptor> _fds = [];

    private (FileDescriptor Near, FileDescriptor Far) Pair()
    {
        int* sv = stackalloc int[2];
        Assert.Equal(0, TestLibc.socketpair(TestLibc.AF_UNIX, TestLibc.SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
        var near = new FileDescriptor(sv[0]);
        var far = new FileDescriptor(sv[1]);
        _fds.Add(near);
        _fds.Add(far);
        return (near, far);
    }

    private sealed class Running : IDisposable
    {
        private readonly FileDescriptor _stop;

        public Running(Forwarder forwarder, FileDescriptor stop)
        {
            Forwarder = forwarder;
            _stop = stop;
            forwarder.Start();
        }

        public Forwarder Forwarder { get; }

        public void Dispose()
        {
            Forwarder.RequestStop();
            ulong one = 1;
            _ = Libc.write(_stop.Fd, (byte*)&one, sizeof(ulong));
            Forwarder.Join();
            _stop.Dispose();
        }
    }

    private static Running Start(FileDescriptor real, FileDescriptor virt, params IFrameHandler[] handlers)
    {
        var stop = FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd");
        var forwarder = new Forwarder(0, ring: null, [real, virt], ["pump", "virt"], stop, handlers, TimeSpan.FromMicroseconds(200),
            new SpreadPolicy(1, _ => true), batched: false, pin: false);
        return new Running(forwarder, stop);
    }

    /// <summary>virtio_net_hdr (zeros) + a 60-byte frame whose last byte is <paramref name="tag"/>.</summary>
    private static byte[] Frame(byte tag, int length = 60)
    {
        var f = new byte[VirtioNetHdr.Size + length];
        f[VirtioNetHdr.Size + 12] = 0x08;
        f[^1] = tag;
        return f;
    }

    private static void Send(FileDescriptor fd, byte[] frame)
    {
        fixed (byte* p = frame)
        {
            Assert.Equal(Errno.OK, Virtnet.Devices.TapDevice.Write(fd.Fd, p, frame.Length));
        }
    }

    /// <summary>The next frame on <paramref name="fd"/> within a second, or null.</summary>
    private static byte[]? Receive(FileDescriptor fd, int timeoutMs = 1000)
    {
        var buffer = new byte[70_000];
        var deadline = Stopwatch.StartNew();
        fixed (byte* p = buffer)
        {
            while (deadline.ElapsedMilliseconds < timeoutMs)
            {
                if (Virtnet.Devices.TapDevice.Read(fd.Fd, p, buffer.Length, out int n) == Errno.OK)
                {
                    return buffer[..n];
                }

                Thread.Sleep(1);
            }
        }

        return null;
    }

    private static void WaitFor(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition() && deadline.ElapsedMilliseconds < 2000)
        {
            Thread.Sleep(1);
        }

        Assert.True(condition());
    }

    [Fact]
    public void Loop_FrameOnRealSide_ArrivesOnVirtualAndCountsAsIngress()
    {
        var real = Pair();
        var virt = Pair();
        using var run = Start(real.Near, virt.Near);
        Send(real.Far, Frame(1));
        Assert.Equal(Frame(1), Receive(virt.Far));
        WaitFor(() => run.Forwarder.Read(Direction.Ingress).Frames == 1);
        Assert.Equal(new DirectionCounters(1, 60, 0), run.Forwarder.Read(Direction.Ingress));
        Assert.Equal(default, run.Forwarder.Read(Direction.Egress));
    }

    [Fact]
    public void Loop_FrameOnVirtual_LeavesOnRealSideAndCountsAsEgress()
    {
        var real = Pair();
        var virt = Pair();
        using var run = Start(real.Near, virt.Near);
        Send(virt.Far, Frame(2, 1500));
        Assert.Equal(Frame(2, 1500), Receive(real.Far));
        WaitFor(() => run.Forwarder.Read(Direction.Egress).Frames == 1);
        Assert.Equal(new DirectionCounters(1, 1500, 0), run.Forwarder.Read(Direction.Egress));
    }

    [Fact]
    public void Loop_ManyFramesBothWays_AllArriveInOrder()
    {
        var real = Pair();
        var virt = Pair();
        using var run = Start(real.Near, virt.Near);
        for (int i = 0; i < 200; i++)
        {
            Send(real.Far, Frame((byte)i));
            Send(virt.Far, Frame((byte)(255 - i)));
        }

        for (int i = 0; i < 200; i++)
        {
            Assert.Equal((byte)i, Receive(virt.Far)![^1]);
            Assert.Equal((byte)(255 - i), Receive(real.Far)![^1]);
        }
    }

    private sealed class DropOdd : IFrameHandler
    {
        public Verdict OnFrame(ref Frame frame)
        {
            if ((frame.Data[^1] & 1) == 0)
            {
                return Verdict.Pass;
            }

            frame.DropReason = "odd";
            return Verdict.Consumed;
        }
    }

    [Fact]
    public void Loop_HandlerDrops_FrameNotDeliveredAndCountedAsDrop()
    {
        var real = Pair();
        var virt = Pair();
        using var run = Start(real.Near, virt.Near, new DropOdd());
        Send(real.Far, Frame(3));
        Send(real.Far, Frame(4));
        Assert.Equal(4, Receive(virt.Far)![^1]);
        WaitFor(() => run.Forwarder.Read(Direction.Ingress).Drops == 1);
        Assert.Equal(new DirectionCounters(1, 60, 1), run.Forwarder.Read(Direction.Ingress));
        Assert.Null(Receive(virt.Far, timeoutMs: 50));
    }

    private sealed class Reflect : IFrameHandler
    {
        public Verdict OnFrame(ref Frame frame)
        {
            frame.Target = 0;
            return Verdict.Another;
        }
    }

    [Fact]
    public void Loop_HandlerSendsToAnotherPort_FrameGoesThere()
    {
        var real = Pair();
        var virt = Pair();
        using var run = Start(real.Near, virt.Near, new Reflect());
        Send(real.Far, Frame(5));
        Assert.Equal(Frame(5), Receive(real.Far)); // back where it came from, as a reflector would
        Assert.Null(Receive(virt.Far, timeoutMs: 50));
    }

    [Fact]
    public void Loop_RuntFrame_DroppedAndCounted()
    {
        var real = Pair();
        var virt = Pair();
        using var run = Start(real.Near, virt.Near);
        Send(real.Far, new byte[VirtioNetHdr.Size + 13]); // one byte short of an Ethernet header
        Send(real.Far, Frame(6));
        Assert.Equal(6, Receive(virt.Far)![^1]);
        WaitFor(() => run.Forwarder.Read(Direction.Ingress).Drops == 1);
    }

    [Fact]
    public void Loop_PortFailsForGood_EndsWithFaultNamingThePort()
    {
        // A port whose reads fail with EBADF (open for writing only): the loop must end and say why, not spin.
        var broken = FileDescriptor.FromResult(Libc.open("/dev/null", 1 /* O_WRONLY */ | Libc.O_CLOEXEC), "open /dev/null");
        _fds.Add(broken);
        var virt = Pair();
        using var run = Start(broken, virt.Near);
        WaitFor(() => run.Forwarder.Fault is not null);
        Assert.Equal($"read on the real side (pump) failed: {Errno.EBADF.Format()}", run.Forwarder.Fault);
    }

    public void Dispose()
    {
        foreach (var fd in _fds)
        {
            fd.Dispose();
        }
    }
}
