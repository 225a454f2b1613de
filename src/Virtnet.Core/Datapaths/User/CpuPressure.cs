// Whether a forwarder's CPU is shared with a CPU-bound task, for the busy-poll. Spinning after a frame (yielding on
// every pass) pays off while the CPU would otherwise idle, or serves applications that block: a reply is caught
// without the ~80 µs wake-up of a halted vCPU, and a yield gives a blocking application the CPU for the few
// microseconds it needs. A CPU-bound neighbour is different: a spinning forwarder stays runnable, so the scheduler
// shares the CPU with the neighbour slice by slice and every frame waits for a slice to end; a forwarder that
// sleeps and is woken at its higher weight gets the CPU at once. Measured with a CPU hog on one of two CPUs: TCP
// through the user datapath at 0.3 of the plain veth with the spin, 0.8 without it (docs/performance.md).
//
// The signal costs nothing: how long a sched_yield() took. A neighbour that blocks soon gives the CPU back within
// tens of microseconds; a CPU-bound one keeps it for its time slice (a millisecond or more). One long yield turns
// the spin off for OffWindows load windows (10 ms each), after which it is tried again.
using System.Diagnostics;

namespace Virtnet.Datapaths.User;

internal sealed class CpuPressure
{
    /// <summary>Windows the spin stays off once a yield found a CPU-bound neighbour.</summary>
    public const int OffWindows = 10;

    /// <summary>A yield longer than this (0.5 ms) means a neighbour kept the CPU for a time slice.</summary>
    public static readonly long LongYieldTicks = Stopwatch.Frequency / 2000;

    private int _offFor;

    /// <summary>Whether the forwarder may busy-poll now.</summary>
    public bool SpinAllowed => _offFor == 0;

    /// <summary>A sched_yield() in the spin took <paramref name="ticks"/> (Stopwatch ticks).</summary>
    public void Yielded(long ticks)
    {
        if (ticks > LongYieldTicks)
        {
            _offFor = OffWindows;
        }
    }

    /// <summary>Called once per load window: a spin turned off comes back after <see cref="OffWindows"/> of them.</summary>
    public void WindowEnded()
    {
        if (_offFor > 0)
        {
            _offFor--;
        }
    }
}
