namespace Virtnet.Datapaths;

/// <summary>
/// One forwarder's record of the exceptions its handlers threw. The frame a handler threw on is dropped, counted
/// under <see cref="DropCause.HandlerFault"/>, and forwarding goes on. The first exception of each handler waits here
/// until the binding's loop takes it for the log (rate-limited there). A handler whose
/// <see cref="IFrameHandler.StopOnFault"/> is true stops the binding instead (<see cref="Stop"/>).
/// Written by one forwarder thread, read by the binding's.
/// </summary>
internal sealed class HandlerFaults(IFrameHandler[] handlers)
{
    private readonly Exception?[] _first = new Exception?[handlers.Length];
    private readonly long[] _counts = new long[handlers.Length];
    private volatile string? _stop;

    /// <summary>The handlers, in pipeline order.</summary>
    public IFrameHandler[] Handlers => handlers;

    /// <summary>Why the binding must stop (a StopOnFault handler threw), or null.</summary>
    public string? Stop => _stop;

    /// <summary>Handler <paramref name="index"/> threw <paramref name="e"/> on a frame, which is dropped.</summary>
    public void Record(int index, Exception e)
    {
        Interlocked.Increment(ref _counts[index]);
        Interlocked.CompareExchange(ref _first[index], e, null);
        if (handlers[index].StopOnFault && _stop is null)
        {
            _stop = $"handler {handlers[index].GetType().Name} threw {e.GetType().Name}: {e.Message} (it is marked StopOnFault, so the binding stops)";
        }
    }

    /// <summary>Takes handler <paramref name="index"/>'s first exception since the last take, and how many it threw.</summary>
    public (Exception? First, long Count) Take(int index)
        => (Interlocked.Exchange(ref _first[index], null), Interlocked.Exchange(ref _counts[index], 0));
}
