using Virtnet.Native;

namespace Virtnet.Namespaces;

/// <summary>
/// A network namespace known by path: the nsfs inode it had when first seen, so that a binding can tell when the path
/// no longer names it (deleted, its process gone) and end, letting the namespace die with its last process.
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

    /// <summary>
    /// Whether the path still names the namespace it named at first: false once `ip netns del` unmounted it, or the
    /// process of /proc/PID/ns/net exited, or the path names another namespace now. A stat, no open: a namespace
    /// file made by `ip netns add` has mode 0, which root opens only with CAP_DAC_OVERRIDE.
    /// </summary>
    public unsafe bool StillThere()
    {
        byte* buffer = stackalloc byte[Libc.StatxSize];
        return Libc.statx(Libc.AT_FDCWD, Path, 0, Libc.STATX_INO, buffer) == 0
            && $"net:[{*(ulong*)(buffer + Libc.StatxInoOffset)}]" == _identity;
    }
}
