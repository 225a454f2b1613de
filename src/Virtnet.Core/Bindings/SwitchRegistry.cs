// The bindings that share one real device (every mode but the whole-device passthru) coordinate through lock
// files next to the device's attach lock, in the root-only /run/virtnet/attach:
//
//   net<ns>-if<ifindex>.lock        held shared by each of them (the whole-device passthru holds it exclusively)
//   net<ns>-if<ifindex>.registry    held exclusively, briefly, by whoever changes the switch's tables
//   net<ns>-if<ifindex>-slot<N>.lock held by the binding in slot N for its lifetime; it holds "NAME pid PID"
//
// flock(2) locks die with their holder, so a slot whose file can be locked belongs to a dead binding: the living
// ones sweep its entries out of the switch (within half a second) and remove what it left (a veth pair).
using System.Globalization;
using System.Text;
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet;

internal static class SwitchRegistry
{
    /// <summary>The registry lock of the device (blocking): released when the returned fd is disposed.</summary>
    public static FileDescriptor Lock(int ifindex, string device)
    {
        string path = BasePath(ifindex) + ".registry";
        var fd = AttachGuard.OpenLockFile(path, device);
        while (Libc.flock(fd.Fd, Libc.LOCK_EX) != 0)
        {
            var errno = LastError.Get();
            if (errno != Errno.EINTR)
            {
                fd.Dispose();
                throw new VirtnetException($"flock {path}", device, errno);
            }
        }

        return fd;
    }

    /// <summary>Takes the first free slot (not <paramref name="busy"/>) and writes its owner's description into it.</summary>
    public static (FileDescriptor Lock, int Slot) Claim(int ifindex, string device, string owner, Func<int, bool>? busy = null)
    {
        for (int slot = 0; slot < SwitchPrograms.MaxPorts; slot++)
        {
            if (busy?.Invoke(slot) == true)
            {
                continue;
            }

            var fd = AttachGuard.OpenLockFile(SlotPath(ifindex, slot), device);
            if (Libc.flock(fd.Fd, Libc.LOCK_EX | Libc.LOCK_NB) == 0)
            {
                WriteOwner(fd, $"{owner} pid {Environment.ProcessId}");
                return (fd, slot);
            }

            fd.Dispose();
        }

        throw new VirtnetException(FailureKind.Unsuitable, "attach", device, $"{device}: already carries {SwitchPrograms.MaxPorts} virtnet bindings, the most one device can", Errno.ENOSPC);
    }

    /// <summary>Whether slot <paramref name="slot"/> belongs to a living binding. Call with the registry lock held.</summary>
    public static bool IsAlive(int ifindex, int slot)
    {
        string path = SlotPath(ifindex, slot);
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0);
        if (fd < 0)
        {
            return false;
        }

        using var handle = new FileDescriptor(fd);
        if (Libc.flock(fd, Libc.LOCK_EX | Libc.LOCK_NB) == 0)
        {
            _ = Libc.flock(fd, Libc.LOCK_UN);
            return false;
        }

        return true;
    }

    /// <summary>"v1 (pid 1234)": who holds a slot, as its holder wrote it.</summary>
    public static string Owner(int ifindex, int slot)
    {
        string text = ReadText(SlotPath(ifindex, slot));
        if (text.Length == 0)
        {
            return $"the binding in slot {slot}";
        }

        int pid = text.LastIndexOf(" pid ", StringComparison.Ordinal);
        return pid < 0 ? text : $"{text[..pid]} ({text[(pid + 1)..]})";
    }

    /// <summary>
    /// A lock file's text, read with plain open(2)/read(2): .NET's own file APIs take a shared flock on every file
    /// they open and fail on one its holder locks exclusively, which is exactly the file whose holder we want to name.
    /// </summary>
    public static unsafe string ReadText(string path)
    {
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NOFOLLOW);
        if (fd < 0)
        {
            return "";
        }

        using var handle = new FileDescriptor(fd);
        var buffer = new byte[256];
        fixed (byte* p = buffer)
        {
            nint n = Libc.read(fd, p, buffer.Length);
            return n <= 0 ? "" : Encoding.UTF8.GetString(buffer, 0, (int)n).Trim();
        }
    }

    /// <summary>Writes the owner text into a locked file (the whole-device passthru uses it for its attach lock too).</summary>
    public static unsafe void WriteOwner(FileDescriptor fd, string owner)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(owner + "\n");
        _ = Libc.ftruncate(fd.Fd, 0);
        fixed (byte* p = bytes)
        {
            _ = Libc.pwrite(fd.Fd, p, bytes.Length, 0);
        }
    }

    /// <summary>
    /// Removes from the switch every entry whose slot's binding is dead, and calls <paramref name="leftOver"/> with
    /// each such slot (to remove what it left behind). Call with the registry lock held.
    /// </summary>
    public static int Sweep(RealSwitch sw, Action<int>? leftOver = null)
    {
        var dead = new HashSet<int>();
        foreach (var (key, entry) in sw.Entries())
        {
            if (entry.Mode != SwitchMode.Host && !IsAlive(sw.RealIndex, entry.Slot))
            {
                sw.Remove(key);
                dead.Add(entry.Slot);
            }
        }

        foreach (var entry in sw.GroupEntries())
        {
            if (!IsAlive(sw.RealIndex, entry.Slot))
            {
                sw.SetGroupSlot(entry.Slot, null);
                dead.Add(entry.Slot);
            }
        }

        foreach (int slot in dead)
        {
            leftOver?.Invoke(slot);
        }

        return dead.Count;
    }

    private static string SlotPath(int ifindex, int slot) => string.Create(CultureInfo.InvariantCulture, $"{BasePath(ifindex)}-slot{slot}.lock");

    /// <summary>The lock file of a slot.</summary>
    public static string SlotPathFor(int ifindex, int slot) => SlotPath(ifindex, slot);

    private static string BasePath(int ifindex)
    {
        string lockPath = AttachGuard.LockPathFor(ifindex);
        return lockPath[..^".lock".Length];
    }
}

/// <summary>
/// A binding's cheap look at its siblings' slots, so that it takes the registry lock and sweeps only when one of
/// them died: one non-blocking flock(2) on an already open fd per living sibling per look, and every
/// <see cref="RescanMs"/> a look at every slot for newcomers. (Sweeping every time cost each of 15 idle bindings
/// about 5 ms of CPU a second: a lock, a walk of both tables and an open and two flocks per entry, four times a
/// second, in every process.)
/// </summary>
internal sealed class SlotWatch(int ifindex, int ownSlot) : IDisposable
{
    private const int RescanMs = 2000;

    private readonly FileDescriptor?[] _files = new FileDescriptor?[SwitchPrograms.MaxPorts];
    private readonly bool[] _alive = new bool[SwitchPrograms.MaxPorts];
    private long _lastRescan;
    private bool _scanned;

    /// <summary>True when a slot that was alive at the last look is not any more.</summary>
    public bool AnyDied()
    {
        long now = Environment.TickCount64;
        bool rescan = !_scanned || now - _lastRescan >= RescanMs;
        bool died = false;
        for (int slot = 0; slot < SwitchPrograms.MaxPorts; slot++)
        {
            if (slot == ownSlot || (!_alive[slot] && !rescan))
            {
                continue;
            }

            bool alive = Probe(slot);
            died |= _alive[slot] && !alive;
            _alive[slot] = alive;
        }

        if (rescan)
        {
            _lastRescan = now;
            _scanned = true;
        }

        return died;
    }

    private bool Probe(int slot)
    {
        var file = _files[slot];
        if (file is null)
        {
            int fd = Libc.open(SwitchRegistry.SlotPathFor(ifindex, slot), Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NOFOLLOW);
            if (fd < 0)
            {
                return false;
            }

            file = _files[slot] = new FileDescriptor(fd);
        }

        if (Libc.flock(file.Fd, Libc.LOCK_EX | Libc.LOCK_NB) == 0)
        {
            _ = Libc.flock(file.Fd, Libc.LOCK_UN);
            return false;
        }

        return true;
    }

    public void Dispose()
    {
        foreach (var file in _files)
        {
            file?.Dispose();
        }
    }
}
