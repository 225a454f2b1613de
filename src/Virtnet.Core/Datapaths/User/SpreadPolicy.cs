// Where frames go is decided by the TAPs' steering program (and the rings' fanout program), which reads one flag.
// Lightly loaded (flag 0), a frame goes to the forwarder of the CPU that produced it: the forwarder woken is on the
// same CPU, which on a VM saves the inter-processor interrupt and halted-vCPU wake-up that cost ~80 µs per
// direction here. Once a forwarder moves more than 50,000 frames or 200 MB a second, the flag moves every frame to
// the next CPU's forwarder, so the producer (a NIC's softirq, a sender) and the forwarding run in parallel; below
// 10,000 frames and 50 MB on every forwarder it moves back. The gap between the two thresholds is the hysteresis
// that keeps the flag from flapping at one rate.
//
// A rate, not a busy fraction: a forwarder that shares its CPU with the producer finds its ring empty whenever it
// runs (the producer is not running then), so it never looks busy although most frames are lost while it waits.
using System.Diagnostics;

namespace Virtnet.Datapaths.User;

/// <summary>The forwarders' frame rates and the spread flag they decide together.</summary>
/// <param name="forwarders">How many forwarders report; with one there is nowhere to spread to.</param>
/// <param name="setFlag">Writes the flag the steering programs read; false if the write failed (it is retried on the next report).</param>
internal sealed class SpreadPolicy(int forwarders, Func<bool, bool> setFlag)
{
    /// <summary>The measuring window: 10 ms.</summary>
    public static readonly long WindowTicks = Stopwatch.Frequency / 100;

    /// <summary>Above this many frames per second on one forwarder, frames move to the next CPU...</summary>
    public const double SpreadAboveFrames = 50_000;

    /// <summary>...or above this many bytes per second (1.6 Gbit/s: 64 KB GSO frames are few but heavy).</summary>
    public const double SpreadAboveBytes = 200e6;

    /// <summary>Below both of these on every forwarder, frames stay on the CPU that produced them.</summary>
    public const double LocalBelowFrames = 10_000;

    /// <summary>See <see cref="LocalBelowFrames"/>.</summary>
    public const double LocalBelowBytes = 50e6;

    private readonly double[] _frames = new double[forwarders];
    private readonly double[] _bytes = new double[forwarders];
    private int _spread;

    /// <summary>Whether frames are being moved to the next CPU's forwarder (the flag's last written value).</summary>
    public bool Spread => Volatile.Read(ref _spread) != 0;

    /// <summary>
    /// Forwarder <paramref name="forwarder"/> moved <paramref name="frames"/> frames and <paramref name="bytes"/>
    /// bytes in the last <paramref name="windowTicks"/>; flips the flag when the busiest forwarder crosses a threshold.
    /// </summary>
    public void Report(int forwarder, long frames, long bytes, long windowTicks)
    {
        double seconds = windowTicks / (double)Stopwatch.Frequency;
        Volatile.Write(ref _frames[forwarder], frames / seconds);
        Volatile.Write(ref _bytes[forwarder], bytes / seconds);
        if (_frames.Length < 2)
        {
            return;
        }

        double maxFrames = 0, maxBytes = 0;
        for (int i = 0; i < _frames.Length; i++)
        {
            maxFrames = Math.Max(maxFrames, Volatile.Read(ref _frames[i]));
            maxBytes = Math.Max(maxBytes, Volatile.Read(ref _bytes[i]));
        }

        if (!Spread && (maxFrames > SpreadAboveFrames || maxBytes > SpreadAboveBytes))
        {
            Set(true);
        }
        else if (Spread && maxFrames < LocalBelowFrames && maxBytes < LocalBelowBytes)
        {
            Set(false);
        }
    }

    private void Set(bool spread)
    {
        if (setFlag(spread))
        {
            Volatile.Write(ref _spread, spread ? 1 : 0);
        }
    }
}
