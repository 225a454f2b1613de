// BPF_MAP_TYPE_PERCPU_ARRAY of (frames, bytes). Each CPU has its own copy of every slot, so the program
// adds with plain loads and stores (tc/tcx programs run with migration disabled, and one CPU runs one
// program at a time) and no atomic instructions. A lookup from user space returns every possible CPU's
// copy, one after another, each rounded up to 8 bytes; Read sums them.
using Virtnet.Native;

namespace Virtnet.Bpf;

/// <summary>A BPF_MAP_TYPE_PERCPU_ARRAY of (frames, bytes) counters, u64 pairs, one slot per key.</summary>
internal sealed class CounterMap : IDisposable
{
    /// <summary>value_size: u64 frames, u64 bytes.</summary>
    public const int ValueSize = 16;

    private CounterMap(FileDescriptor handle, string name, int slots)
    {
        Handle = handle;
        Name = name;
        Slots = slots;
    }

    public FileDescriptor Handle { get; }

    public string Name { get; }

    public int Slots { get; }

    /// <summary>BPF_MAP_CREATE of a per-CPU array with key u32 and 16-byte values; all slots start at zero.</summary>
    public static unsafe CounterMap Create(string name, int slots)
    {
        const string Op = "BPF_MAP_CREATE";
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        var attr = new BpfAttrMapCreate
        {
            MapType = Libc.BPF_MAP_TYPE_PERCPU_ARRAY,
            KeySize = sizeof(uint),
            ValueSize = ValueSize,
            MaxEntries = (uint)slots,
        };
        BpfNames.Write(name, new Span<byte>(attr.MapName, Libc.BPF_OBJ_NAME_LEN), Op, null);
        int fd = Libc.bpf(Libc.BPF_MAP_CREATE, &attr, (uint)sizeof(BpfAttrMapCreate));
        if (fd < 0)
        {
            var errno = LastError.Get();
            throw new VirtnetException(Op, null, errno, hint: errno == Errno.EPERM ? "creating BPF maps needs CAP_BPF (run as root)" : null);
        }

        return new CounterMap(new FileDescriptor(fd), name, slots);
    }

    /// <summary>Sum over all possible CPUs of slot key: (frames, bytes).</summary>
    public unsafe (ulong Frames, ulong Bytes) Read(int key)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(key);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(key, Slots);

        int cpus = PossibleCpus.Count;
        Span<ulong> values = cpus <= 64 ? stackalloc ulong[2 * 64] : new ulong[2 * cpus];
        values = values[..(2 * cpus)];
        values.Clear();

        uint k = (uint)key;
        fixed (ulong* v = values)
        {
            var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)&k, Value = (ulong)v };
            bool added = false;
            try
            {
                Handle.DangerousAddRef(ref added);
                if (Libc.bpf(Libc.BPF_MAP_LOOKUP_ELEM, &attr, (uint)sizeof(BpfAttrMapElem)) < 0)
                {
                    VirtnetException.ThrowLastError("BPF_MAP_LOOKUP_ELEM", null);
                }
            }
            finally
            {
                if (added)
                {
                    Handle.DangerousRelease();
                }
            }
        }

        ulong frames = 0, bytes = 0;
        for (int cpu = 0; cpu < cpus; cpu++)
        {
            frames += values[2 * cpu];
            bytes += values[(2 * cpu) + 1];
        }

        return (frames, bytes);
    }

    /// <summary>Sets every CPU's copy of slot <paramref name="key"/> to zero (a slot handed to a new owner).</summary>
    public unsafe void Reset(int key)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(key);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(key, Slots);
        var values = new ulong[2 * PossibleCpus.Count];
        uint k = (uint)key;
        fixed (ulong* v = values)
        {
            var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)&k, Value = (ulong)v, Flags = Libc.BPF_ANY };
            if (Libc.bpf(Libc.BPF_MAP_UPDATE_ELEM, &attr, (uint)sizeof(BpfAttrMapElem)) < 0)
            {
                VirtnetException.ThrowLastError("BPF_MAP_UPDATE_ELEM", Name);
            }
        }
    }

    /// <summary>A counter map opened by id (another process made it): takes over <paramref name="map"/>'s fd.</summary>
    public static CounterMap Adopt(BpfMap map, int slots) => new(map.Handle, map.Name, slots);

    public void Dispose() => Handle.Dispose();
}

/// <summary>
/// The number of possible CPUs (/sys/devices/system/cpu/possible, e.g. "0-1" or "0-3,8-11"): the count of
/// per-CPU copies a per-CPU map lookup writes. It is the number of CPUs in the mask, as the kernel's
/// num_possible_cpus(), not the highest index plus one.
/// </summary>
internal static class PossibleCpus
{
    private static readonly Lazy<int> s_count = new(() => Parse(File.ReadAllText("/sys/devices/system/cpu/possible")));

    public static int Count => s_count.Value;

    public static int Parse(string mask)
    {
        int count = 0;
        foreach (var part in mask.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dash = part.IndexOf('-');
            if (dash < 0)
            {
                _ = int.Parse(part, System.Globalization.CultureInfo.InvariantCulture);
                count++;
            }
            else
            {
                int first = int.Parse(part.AsSpan(0, dash), System.Globalization.CultureInfo.InvariantCulture);
                int last = int.Parse(part.AsSpan(dash + 1), System.Globalization.CultureInfo.InvariantCulture);
                if (last < first)
                {
                    throw new FormatException($"bad CPU range \"{part}\"");
                }

                count += last - first + 1;
            }
        }

        if (count == 0)
        {
            throw new FormatException($"empty CPU mask \"{mask}\"");
        }

        return count;
    }
}
