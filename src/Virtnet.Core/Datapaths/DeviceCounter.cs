namespace Virtnet.Datapaths;

/// <summary>
/// A counter read from a device's own statistics, reported as its growth since the binding was made and never
/// lower than the last value reported: a device's counters go with the device (a virtual device whose namespace
/// died reads as absent), and a counter virtnet reports must not go down.
/// </summary>
internal sealed class DeviceCounter
{
    private readonly Lock _gate = new();
    private readonly ulong _start;
    private ulong _reported;

    /// <param name="start">The device's value when the binding was made (null: the device had none yet).</param>
    public DeviceCounter(ulong? start) => _start = start ?? 0;

    /// <summary>The growth since the start given the device's value now (null: the device is gone).</summary>
    public ulong Update(ulong? now)
    {
        lock (_gate)
        {
            if (now is { } value && value > _start)
            {
                _reported = Math.Max(_reported, value - _start);
            }

            return _reported;
        }
    }
}
