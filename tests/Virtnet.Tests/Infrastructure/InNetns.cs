// Runs code inside a named network namespace on a dedicated thread: setns() into /run/netns/NAME, run, and
// setns() back to the thread's original namespace (opened from /proc/thread-self/ns/net first) before the
// thread ends. Sockets, TAPs, netlink sockets and tcx links made inside stay bound to that namespace.
// No async, Task.Run or timers while switched: a thread-pool worker or the socket engine born on a switched
// thread would live in the test namespace (docs/kernel-notes.md), so both are started out here first.
using Virtnet.Native;
using Virtnet.Namespaces;

namespace Virtnet.Tests.Infrastructure;

internal static class InNetns
{
    public static T Run<T>(string nsName, Func<T> body)
    {
        Virtnet.Namespaces.RuntimeThreads.Start();
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = Switched(nsName, body);
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
        if (!thread.Join(TimeSpan.FromSeconds(60)))
        {
            throw new TimeoutException($"code in netns {nsName} did not finish within 60 s");
        }

        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        return result;
    }

    public static void Run(string nsName, Action body) => Run<object?>(nsName, () =>
    {
        body();
        return null;
    });

    /// <summary>Opens /run/netns/NAME, e.g. for IFLA_NET_NS_FD.</summary>
    public static FileDescriptor OpenNamespace(string nsName)
        => FileDescriptor.FromResult(Libc.open($"/run/netns/{nsName}", Libc.O_RDONLY | Libc.O_CLOEXEC), "open", nsName);

    private static T Switched<T>(string nsName, Func<T> body)
    {
        using var original = FileDescriptor.FromResult(Libc.open("/proc/thread-self/ns/net", Libc.O_RDONLY | Libc.O_CLOEXEC), "open", "/proc/thread-self/ns/net");
        using (var target = OpenNamespace(nsName))
        {
            if (Libc.setns(target.Fd, Libc.CLONE_NEWNET) != 0)
            {
                VirtnetException.ThrowLastError("setns", nsName);
            }
        }

        try
        {
            return body();
        }
        finally
        {
            if (Libc.setns(original.Fd, Libc.CLONE_NEWNET) != 0)
            {
                // The thread is about to end, so nothing else runs in the wrong namespace; still, say so loudly.
                Environment.FailFast($"setns back from {nsName} failed: {LastError.Get().Format()}");
            }
        }
    }
}
