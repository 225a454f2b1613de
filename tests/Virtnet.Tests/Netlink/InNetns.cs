// Runs code inside a named network namespace on a dedicated thread: setns() into /run/netns/NAME, run, and
// setns() back to the thread's original namespace (opened from /proc/thread-self/ns/net first) before the
// thread ends. Sockets made inside stay in that namespace. No async, Task.Run or timers while switched: a
// thread-pool worker or the socket engine born on a switched thread would live in the test namespace
// (KERNEL-NOTES.md), so the pool is warmed up before the first switch.
using Virtnet.Native;

namespace Virtnet.Tests.Netlink;

internal static class InNetns
{
    static InNetns()
    {
        // Make sure the thread pool already has workers, born in the root namespace.
        Task.Run(static () => { }).Wait();
    }

    public static T Run<T>(string nsName, Func<T> f)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = Switched(nsName, f);
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        {
            IsBackground = true,
            Name = $"netns {nsName}",
        };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw new InvalidOperationException($"in netns {nsName}: {error.Message}", error);
        }

        return result;
    }

    public static void Run(string nsName, Action f) => Run<object?>(nsName, () =>
    {
        f();
        return null;
    });

    private static T Switched<T>(string nsName, Func<T> f)
    {
        using var original = FileDescriptor.FromResult(Libc.open("/proc/thread-self/ns/net", Libc.O_RDONLY | Libc.O_CLOEXEC), "open", "/proc/thread-self/ns/net");
        using var target = FileDescriptor.FromResult(Libc.open($"/run/netns/{nsName}", Libc.O_RDONLY | Libc.O_CLOEXEC), "open", nsName);
        if (Libc.setns(target.Fd, Libc.CLONE_NEWNET) != 0)
        {
            VirtnetException.ThrowLastError("setns", nsName);
        }

        try
        {
            return f();
        }
        finally
        {
            if (Libc.setns(original.Fd, Libc.CLONE_NEWNET) != 0)
            {
                // The thread is about to end, so nothing else runs in the wrong namespace; still, say so loudly.
                Environment.FailFast($"setns back from {nsName} failed: {LastErrorText()}");
            }
        }
    }

    private static string LastErrorText() => ((Errno)System.Runtime.InteropServices.Marshal.GetLastPInvokeError()).Format();

    /// <summary>Opens /run/netns/NAME for IFLA_NET_NS_FD.</summary>
    public static FileDescriptor OpenNamespace(string nsName)
        => FileDescriptor.FromResult(Libc.open($"/run/netns/{nsName}", Libc.O_RDONLY | Libc.O_CLOEXEC), "open", nsName);
}
