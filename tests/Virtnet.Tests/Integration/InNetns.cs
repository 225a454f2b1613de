// Runs a small piece of code (creating a socket, a BPF query) inside a named network namespace.
//
// setns(CLONE_NEWNET) switches only the calling thread, and a socket keeps the namespace it was created in, so:
// on a NEW dedicated thread, enter the namespace, run the body, switch back (from /proc/thread-self/ns/net
// opened first). The body must not await, Task.Run, start timers or do async socket work: threads born from a
// switched thread inherit its namespace (KERNEL-NOTES pitfall). Everything else (Send/Receive) can then run on
// ordinary threads: the namespace belongs to the socket, not the thread using it.
using System.Runtime.InteropServices;
using Virtnet.Native;

namespace Virtnet.Tests.Integration;

internal static class InNetns
{
    public static T Run<T>(string netns, Func<T> body)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = RunOnThisThread(netns, body);
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        { IsBackground = true, Name = $"netns {netns}" };
        thread.Start();
        if (!thread.Join(TimeSpan.FromSeconds(30)))
        {
            throw new TimeoutException($"code in netns {netns} did not finish within 30 s");
        }

        if (error is not null)
        {
            throw new InvalidOperationException($"in netns {netns}: {error.Message}", error);
        }

        return result;
    }

    private static T RunOnThisThread<T>(string netns, Func<T> body)
    {
        int self = Libc.open("/proc/thread-self/ns/net", Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (self < 0)
        {
            throw new InvalidOperationException($"open /proc/thread-self/ns/net: errno {Marshal.GetLastPInvokeError()}");
        }

        try
        {
            int target = Libc.open($"/run/netns/{netns}", Libc.O_RDONLY | Libc.O_CLOEXEC);
            if (target < 0)
            {
                throw new InvalidOperationException($"open /run/netns/{netns}: errno {Marshal.GetLastPInvokeError()}");
            }

            try
            {
                if (Libc.setns(target, Libc.CLONE_NEWNET) < 0)
                {
                    throw new InvalidOperationException($"setns {netns}: errno {Marshal.GetLastPInvokeError()}");
                }
            }
            finally
            {
                Libc.close(target);
            }

            try
            {
                return body();
            }
            finally
            {
                if (Libc.setns(self, Libc.CLONE_NEWNET) < 0)
                {
                    // A thread stuck in a test namespace must not go on to do anything else.
                    Environment.FailFast($"cannot switch back from netns {netns}: errno {Marshal.GetLastPInvokeError()}");
                }
            }
        }
        finally
        {
            Libc.close(self);
        }
    }
}
