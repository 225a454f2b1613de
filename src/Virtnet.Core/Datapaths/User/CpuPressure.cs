// Whether the machine has a CPU to spare, for the forwarders' busy-poll. Spinning after a frame (even yielding on
// every pass) pays off while a CPU would otherwise idle: a reply is caught without the ~80 µs wake-up of a halted
// vCPU. When more threads want to run than there are CPUs, the spin takes time that an application (or the
// stack's own work) needs, and a forwarder that sleeps and is woken does better: measured with a CPU hog on one
// of two CPUs, TCP through the user datapath went from 0.3 to 0.8 of the plain veth (docs/performance.md).
//
// The signal is the kernel's count of runnable threads (the fourth field of /proc/loadavg, "R/T"), read once per
// load window (10 ms) with one pread() on a file kept open: there are no per-CPU scheduler statistics to read on
// kernels without CONFIG_SCHEDSTATS, and this one is everywhere. Pressure switches the spin off for at least
// OffWindows windows, so that a forwarder whose own spin made the count high does not flap every window.
using Virtnet.Native;

namespace Virtnet.Datapaths.User;

internal sealed unsafe class CpuPressure : IDisposable
{
    /// <summary>Windows the spin stays off once the machine was found busy.</summary>
    public const int OffWindows = 10;

    private readonly FileDescriptor? _loadavg;
    private readonly int _cpus;
    private int _offFor;

    private CpuPressure(FileDescriptor? loadavg, int cpus)
    {
        _loadavg = loadavg;
        _cpus = cpus;
    }

    /// <summary>Opens /proc/loadavg; where it cannot be read, the spin is always allowed (the behaviour before).</summary>
    public static CpuPressure Open()
    {
        int fd = Libc.open("/proc/loadavg", Libc.O_RDONLY | Libc.O_CLOEXEC);
        return new CpuPressure(fd >= 0 ? new FileDescriptor(fd) : null, Environment.ProcessorCount);
    }

    /// <summary>Called once per window: whether a forwarder may busy-poll during the next one.</summary>
    public bool SpinAllowed()
    {
        if (!Spare(Running(), _cpus))
        {
            _offFor = OffWindows;
            return false;
        }

        if (_offFor > 0)
        {
            _offFor--;
            return false;
        }

        return true;
    }

    /// <summary>Whether <paramref name="running"/> runnable threads (0: unknown) leave a CPU for a spin.</summary>
    internal static bool Spare(int running, int cpus) => running <= cpus;

    /// <summary>Runnable threads now, or 0 when unknown.</summary>
    private int Running()
    {
        if (_loadavg is null)
        {
            return 0;
        }

        byte* text = stackalloc byte[128];
        nint n = Libc.pread(_loadavg.Fd, text, 127, 0);
        return n > 0 ? ParseRunning(new ReadOnlySpan<byte>(text, (int)n)) : 0;
    }

    /// <summary>"0.52 0.58 0.59 3/467 12345" → 3; 0 when malformed.</summary>
    internal static int ParseRunning(ReadOnlySpan<byte> loadavg)
    {
        int field = 0, i = 0;
        while (i < loadavg.Length && field < 3)
        {
            if (loadavg[i++] == (byte)' ')
            {
                field++;
            }
        }

        int value = 0;
        bool digits = false;
        for (; i < loadavg.Length && loadavg[i] is >= (byte)'0' and <= (byte)'9'; i++)
        {
            value = (value * 10) + (loadavg[i] - '0');
            digits = true;
        }

        return digits && i < loadavg.Length && loadavg[i] == (byte)'/' ? value : 0;
    }

    public void Dispose() => _loadavg?.Dispose();
}
