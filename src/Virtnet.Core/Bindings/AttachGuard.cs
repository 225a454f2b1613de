// One binding per real device, without a race and without a lockout: an exclusive flock(2) on a file named after
// the device's network namespace and ifindex, in a directory only root may enter (/run/virtnet/attach, 0700).
// flock lets exactly one of several simultaneous attaches have the lock; the kernel releases it when the fd
// closes, so a killed attach releases it with its other fds. The files stay (empty, like /run/lock's); a stale one
// locks nothing.
//
// Why not an abstract AF_UNIX name (what virtnet used first): abstract names have no permissions, so any user in
// the namespace could bind "virtnet/attach/<ifindex>" first and lock every attach out.
using Virtnet.Namespaces;
using Virtnet.Native;

namespace Virtnet;

internal static class AttachGuard
{
    /// <summary>virtnet's runtime directory: root's alone.</summary>
    public const string RuntimeDirectory = "/run/virtnet";

    /// <summary>Where the per-device lock files are.</summary>
    public const string LockDirectory = RuntimeDirectory + "/attach";

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The lock file of <paramref name="ifindex"/> in the calling thread's network namespace.</summary>
    public static string LockPathFor(int ifindex)
    {
        // "net:[4026531840]": the namespace's inode, which ifindexes are unique within.
        string ns = NamespaceByPath.Current();
        string inode = new(ns.Where(char.IsAsciiDigit).ToArray());
        return $"{LockDirectory}/net{inode}-if{ifindex}.lock";
    }

    /// <summary>
    /// Takes the device's lock: exclusively for a binding that takes every frame (the whole-device passthru, whose
    /// owner is written into the file), shared for one of the bindings that share the device through its switch.
    /// Throws "already attached" (EBUSY) when the other kind holds it; <paramref name="sharers"/> names the
    /// sharing bindings for that sentence.
    /// </summary>
    public static FileDescriptor Take(int ifindex, string device, bool shared, string owner, Func<IReadOnlyList<string>>? sharers = null)
    {
        string path = LockPathFor(ifindex);
        var fd = OpenLockFile(path, device);
        if (Libc.flock(fd.Fd, (shared ? Libc.LOCK_SH : Libc.LOCK_EX) | Libc.LOCK_NB) == 0)
        {
            if (!shared)
            {
                SwitchRegistry.WriteOwner(fd, $"{owner} pid {Environment.ProcessId}");
            }

            return fd;
        }

        var errno = LastError.Get();
        fd.Dispose();
        if (errno != Errno.EAGAIN)
        {
            throw new VirtnetException($"flock {path}", device, errno);
        }

        if (shared)
        {
            string holder = ReadHolder(path);
            throw new VirtnetException(FailureKind.AlreadyAttached, "attach", device, $"{device}: already attached by another virtnet{holder} in passthru mode, which takes every frame; stop that one first", Errno.EBUSY);
        }

        var names = sharers?.Invoke() ?? [];
        throw names.Count == 0
            ? new VirtnetException(FailureKind.AlreadyAttached, "attach", device, $"{device}: already attached by another virtnet; stop that one first", Errno.EBUSY)
            : new VirtnetException(FailureKind.AlreadyAttached, "attach", device, $"{device}: already carries virtnet bindings ({string.Join(", ", names)}), and passthru takes every frame; stop them first, or attach in a shared mode", Errno.EBUSY);
    }

    /// <summary>Opens (creating) a lock file in the root-only lock directory.</summary>
    public static FileDescriptor OpenLockFile(string path, string device)
    {
        PrivateDirectory(RuntimeDirectory, device);
        PrivateDirectory(LockDirectory, device);
        return FileDescriptor.FromResult(Libc.open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0b110_000_000), $"open {path}", device);
    }

    private static string ReadHolder(string path)
    {
        string text = SwitchRegistry.ReadText(path);
        int pid = text.LastIndexOf(" pid ", StringComparison.Ordinal);
        return text.Length == 0 ? "" : pid < 0 ? $" ({text})" : $" ({text[..pid]}, {text[(pid + 1)..]})";
    }

    /// <summary>Makes <paramref name="path"/> a directory only its owner (root) may enter, whatever it was before.</summary>
    private static void PrivateDirectory(string path, string device)
    {
        try
        {
            var info = new DirectoryInfo(path);
            if (info.Exists && info.LinkTarget is not null)
            {
                throw new VirtnetException(FailureKind.Unsuitable, "attach", path, $"{path} is a symbolic link; remove it (virtnet keeps its locks there)", Errno.ELOOP);
            }

            Directory.CreateDirectory(path, OwnerOnly);
            if (File.GetUnixFileMode(path) != OwnerOnly)
            {
                File.SetUnixFileMode(path, OwnerOnly);
            }
        }
        catch (UnauthorizedAccessException)
        {
            throw new VirtnetException(FailureKind.NotPermitted, $"mkdir {path}", device, $"cannot create {path}; run virtnet as root (sudo)", Errno.EACCES);
        }
    }
}
