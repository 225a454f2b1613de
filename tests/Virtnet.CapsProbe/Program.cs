// virtnet-capsprobe KEEP: starts threads of every kind a binding has (blocked in poll(), waiting on a monitor,
// spinning, the thread pool's, a timer, the socket engine), keeps only KEEP (capability names, e.g.
// "cap_net_admin") with Capabilities.KeepOnly, then starts more, and prints what every thread holds:
//   thread TID NAME EFF PRM INH BND AMB       (hex masks, from /proc/self/task/TID/status)
//   packet-socket WHERE ERRNO                 (socket(AF_PACKET) on a thread, after the drop: CAP_NET_RAW)
//   alive WHERE                               (a thread that was interrupted went on working)
//   kept-in MS                                (how long KeepOnly took)
// Exit 0 when it got that far; 1 with one line on stderr otherwise.
using System.Net.Sockets;
using Virtnet;
using Virtnet.Native;

namespace Virtnet.CapsProbe;

internal static unsafe class Program
{
    private const int AF_PACKET = 17;

    private static int Main(string[] args)
    {
        try
        {
            return Probe(Capabilities.Parse(args.Length > 0 ? args[0] : "none"));
        }
        catch (Exception e) when (e is VirtnetException or ArgumentException)
        {
            Console.Error.WriteLine($"capsprobe: {e.Message}");
            return 1;
        }
    }

    private static int Probe(ulong keep)
    {
        int wake = Libc.eventfd(0, Libc.EFD_CLOEXEC);
        string? polled = null;
        var poller = new Thread(() =>
        {
            var fd = new PollFd { Fd = wake, Events = Libc.POLLIN };
            // The drop's signal interrupts this poll(): EINTR, and it polls again, as virtnet's loops do.
            while (Libc.poll(&fd, 1, -1) < 0 && LastError.Get() == Errno.EINTR)
            {
            }

            polled = PacketSocket();
        }) { Name = "probe poll" };
        poller.Start();

        var gate = new object();
        bool released = false;
        string? waited = null;
        var waiter = new Thread(() =>
        {
            lock (gate)
            {
                while (!released)
                {
                    Monitor.Wait(gate);
                }
            }

            waited = PacketSocket();
        }) { Name = "probe wait" };
        waiter.Start();

        long spins = 0;
        bool stop = false;
        var spinner = new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                Interlocked.Increment(ref spins);
            }
        }) { Name = "probe spin" };
        spinner.Start();

        // The runtime's lazily started threads: thread pool workers and gate, a timer, the socket engine.
        Task.WaitAll([.. Enumerable.Range(0, 4).Select(_ => Task.Run(() => Thread.Sleep(20)))]);
        using var timer = new Timer(_ => { }, null, 10, 10);
        new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp).Dispose();
        Thread.Sleep(100);

        long started = Environment.TickCount64;
        Capabilities.KeepOnly(keep);
        Console.WriteLine($"kept-in {Environment.TickCount64 - started}");

        // Threads born after the drop: they inherit it from their creator.
        string? after = null;
        var late = new Thread(() => after = PacketSocket()) { Name = "probe after" };
        late.Start();
        late.Join();
        string pooled = Task.Run(PacketSocket).Result;

        // Every thread, while all still live: the poller and the waiter still blocked, the spinner spinning.
        foreach (var t in Capabilities.ReadThreads())
        {
            var s = t.Sets;
            Console.WriteLine($"thread {t.Tid} {t.Name.Replace(' ', '_')} {s.Effective:x} {s.Permitted:x} {s.Inheritable:x} {s.Bounding:x} {s.Ambient:x}");
        }

        ulong one = 1;
        _ = Libc.write(wake, (byte*)&one, sizeof(ulong));
        poller.Join();
        lock (gate)
        {
            released = true;
            Monitor.PulseAll(gate);
        }

        waiter.Join();
        // Up to 5 s: on a loaded machine the spinner may wait that long for a CPU.
        long before = Interlocked.Read(ref spins);
        bool spun = SpinWait.SpinUntil(() => Interlocked.Read(ref spins) > before, 5000);
        Console.WriteLine(spun ? "alive probe spin" : "stuck probe spin");

        Volatile.Write(ref stop, true);
        spinner.Join();
        Console.WriteLine($"packet-socket poll {polled}");
        Console.WriteLine($"packet-socket wait {waited}");
        Console.WriteLine($"packet-socket after {after}");
        Console.WriteLine($"packet-socket pool {pooled}");
        Console.WriteLine($"packet-socket main {PacketSocket()}");
        Console.WriteLine("alive probe poll");
        _ = Libc.close(wake);
        return 0;
    }

    /// <summary>"OK", or the errno's name: a packet socket needs CAP_NET_RAW, checked against the calling thread.</summary>
    private static string PacketSocket()
    {
        int fd = Libc.socket(AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            return LastError.Get().ToString();
        }

        _ = Libc.close(fd);
        return "OK";
    }
}
