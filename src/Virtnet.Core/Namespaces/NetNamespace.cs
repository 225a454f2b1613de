// Network namespaces without ip(8). A namespace is held by an fd: the anonymous ones made by Create() vanish,
// with every device inside them, as soon as the last fd closes and no thread is inside, which is what makes a
// throwaway topology leave nothing behind even on SIGKILL.
//
// Pitfall (see docs/kernel-notes.md): a thread inherits the namespace of the thread that creates it. Work runs on
// a fresh dedicated thread that switches with setns(2) and is never reused, and the runtime's lazily started
// threads (the thread pool, and the socket engine, which merely constructing a Socket starts on .NET 10) are
// started from the caller's namespace first, so none is born inside another namespace and keeps it alive.
// Callbacks passed to Run must not await or start timers.
using Virtnet.Native;

namespace Virtnet.Namespaces;

internal sealed class NetNamespace : IDisposable
{
    private readonly FileDescriptor _fd;

    private NetNamespace(FileDescriptor fd, string description)
    {
        _fd = fd;
        Description = description;
    }

    public FileDescriptor Handle => _fd;

    public string Description { get; }

    /// <summary>A new anonymous namespace (unshare(CLONE_NEWNET) on a throwaway thread), held only by the returned fd.</summary>
    public static NetNamespace Create(string description)
    {
        FileDescriptor? result = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var home = OpenThreadNamespace();
                if (Libc.unshare(Libc.CLONE_NEWNET) != 0)
                {
                    VirtnetException.ThrowLastError("unshare(CLONE_NEWNET)");
                }

                try
                {
                    result = OpenThreadNamespace();
                }
                finally
                {
                    Return(home);
                }
            }
            catch (Exception e)
            {
                error = e;
            }
        }) { IsBackground = true, Name = "netns create" };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw error;
        }

        return new NetNamespace(result!, description);
    }

    /// <summary>A namespace by path: /run/netns/NAME (ip netns) or /proc/PID/ns/net.</summary>
    public static NetNamespace Open(string path)
    {
        var fd = FileDescriptor.FromResult(Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC), $"open {path}");
        return new NetNamespace(fd, path);
    }

    /// <summary>A namespace by a descriptor received from elsewhere (the privilege broker's requests); owns it.</summary>
    public static NetNamespace Adopt(FileDescriptor fd, string description) => new(fd, description);

    /// <summary>
    /// Runs <paramref name="action"/> synchronously on a new thread inside this namespace and returns its result.
    /// Sockets, TAPs and netlink handles created there stay bound to this namespace; threads started there are born in it.
    /// </summary>
    public T Run<T>(Func<T> action)
    {
        // The runtime's lazily started threads (thread pool, socket engine) must be born out here, not inside.
        RuntimeThreads.Start();
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var home = OpenThreadNamespace();
                if (Libc.setns(_fd.Fd, Libc.CLONE_NEWNET) != 0)
                {
                    VirtnetException.ThrowLastError("setns(CLONE_NEWNET)", Description);
                }

                try
                {
                    result = action();
                }
                finally
                {
                    Return(home);
                }
            }
            catch (Exception e)
            {
                error = e;
            }
        }) { IsBackground = true, Name = $"in netns {Description}" };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }

        return result!;
    }

    public void Run(Action action) => Run<bool>(() =>
    {
        action();
        return true;
    });

    public void Dispose() => _fd.Dispose();

    private static FileDescriptor OpenThreadNamespace()
        => FileDescriptor.FromResult(Libc.open("/proc/thread-self/ns/net", Libc.O_RDONLY | Libc.O_CLOEXEC), "open /proc/thread-self/ns/net");

    /// <summary>
    /// Puts the calling thread back where it started. Thread.Join returns before the kernel has finished with the
    /// thread, so one that simply ended would still count, for a moment, as a user of the namespace it was in (CI
    /// saw "in netns host A" among the threads left after a teardown). Best effort: should the switch fail, the
    /// thread ends anyway and lingers only that moment, so nothing is thrown over the action's own result.
    /// </summary>
    private static void Return(FileDescriptor home) => _ = Libc.setns(home.Fd, Libc.CLONE_NEWNET);
}
