using Virtnet.Native;

namespace Virtnet.Namespaces;

/// <summary>
/// A network namespace reached by path without being held: each use opens the path and checks that it is still the
/// namespace it was when first seen (its nsfs inode), then runs on a short-lived thread inside it. Holding no fd
/// lets the namespace die with its last process, taking a binding's virtual device with it.
/// </summary>
internal sealed class NamespaceByPath
{
    private readonly string _identity;

    private NamespaceByPath(string path, string identity)
    {
        Path = path;
        _identity = identity;
    }

    /// <summary>The path as given (/run/netns/NAME, /proc/PID/ns/net).</summary>
    public string Path { get; }

    /// <summary>The namespace <paramref name="held"/> refers to now, to be reached later by <paramref name="path"/>.</summary>
    public static NamespaceByPath Of(string path, NetNamespace held) => new(path, Identity(held));

    /// <summary>
    /// "net:[inode]" of a held namespace, from its nsfs inode. (Not /proc/self/fd/N's link: for a namespace opened
    /// through an `ip netns` bind mount, that reads as the path /run/netns/NAME, the same for every namespace ever
    /// given that name.)
    /// </summary>
    public static unsafe string Identity(NetNamespace held)
    {
        byte* buffer = stackalloc byte[Libc.StatxSize];
        return Libc.statx(held.Handle.Fd, "", Libc.AT_EMPTY_PATH, Libc.STATX_INO, buffer) == 0
            ? $"net:[{*(ulong*)(buffer + Libc.StatxInoOffset)}]"
            : "";
    }

    /// <summary>"net:[inode]" of the calling thread's namespace.</summary>
    public static string Current() => new FileInfo("/proc/thread-self/ns/net").LinkTarget ?? "";

    /// <summary>Runs <paramref name="action"/> inside the namespace; default if it is gone or no longer the same one.</summary>
    public T? TryRun<T>(Func<T?> action)
    {
        try
        {
            using var ns = NetNamespace.Open(Path);
            return Identity(ns) == _identity ? ns.Run(action) : default;
        }
        catch (VirtnetException)
        {
            return default;
        }
    }
}
