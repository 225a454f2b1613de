// Runs BPF calls inside a test network namespace.
//
// BPF_LINK_CREATE and BPF_PROG_QUERY name the device by ifindex in the *calling thread's* network namespace.
// So the call runs on a dedicated Thread that setns()-es into /run/netns/NAME and switches back to the
// original namespace (/proc/thread-self/ns/net) before it ends. Nothing on that thread may start thread-pool
// work, tasks, timers or processes: threads are born in their creator's namespace (KERNEL-NOTES.md).
// The fds it creates (links, programs) are process-wide and outlive the thread; their objects stay bound to
// the devices they were attached to.
using System.Runtime.ExceptionServices;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;

namespace Virtnet.Tests.Bpf;

internal static class BpfNetns
{
    public static T In<T>(TestNetns ns, Func<T> action)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = RunSwitched(ns.Path, action);
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        }) { IsBackground = true, Name = $"netns {ns.Name}" };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    public static void In(TestNetns ns, Action action) => In(ns, () => { action(); return 0; });

    /// <summary>
    /// The programs on a hook once it has settled. A link detaches when its *last* fd reference goes; another test
    /// of this process that is starting a child (fork, then exec closes the CLOEXEC fds) can hold a copy of our
    /// fd table for a moment, so an emptied hook is polled for up to two seconds rather than read once.
    /// </summary>
    public static IReadOnlyList<uint> Settled(TestNetns ns, int ifindex, Virtnet.Bpf.TcxDirection direction)
    {
        var deadline = DateTime.UtcNow.AddSeconds(2);
        while (true)
        {
            var ids = In(ns, () => Virtnet.Bpf.Tcx.QueryProgramIds(ifindex, direction));
            if (ids.Count == 0 || DateTime.UtcNow > deadline)
            {
                return ids;
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>The device's ifindex inside the namespace (read outside it, through `ip netns exec`).</summary>
    public static int Ifindex(TestNetns ns, string device)
        => int.Parse(ns.Exec("cat", $"/sys/class/net/{device}/ifindex").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    private static T RunSwitched<T>(string path, Func<T> action)
    {
        using var original = FileDescriptor.FromResult(Libc.open("/proc/thread-self/ns/net", Libc.O_RDONLY | Libc.O_CLOEXEC), "open /proc/thread-self/ns/net");
        using var target = FileDescriptor.FromResult(Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC), $"open {path}");
        if (Libc.setns(target.Fd, Libc.CLONE_NEWNET) != 0)
        {
            VirtnetException.ThrowLastError("setns", path);
        }

        try
        {
            return action();
        }
        finally
        {
            if (Libc.setns(original.Fd, Libc.CLONE_NEWNET) != 0)
            {
                // A thread stuck in a test namespace must not live on to host other work.
                Environment.FailFast("BpfNetns: could not switch the thread back to its network namespace");
            }
        }
    }
}
