using System.Runtime.CompilerServices;

namespace Virtnet.Datapaths;

/// <summary>
/// The handler dispatch of the user datapath, over port indices (0 the real side, 1 the first virtual device), so
/// that it knows nothing of file descriptors and is testable without devices.
/// </summary>
internal static class Pipeline
{
    /// <summary>What <c>Decide</c> returns for a frame a handler took (consumed it with no drop reason).</summary>
    public const int Consumed = -1;

    /// <summary>What <c>Decide</c> returns for a frame a handler dropped (with a reason, or to a port that does not exist).</summary>
    public const int Dropped = -2;

    /// <summary>What <c>Decide</c> returns for a frame a handler threw on.</summary>
    public const int Faulted = -3;

    /// <summary>
    /// Runs the handlers in order until one returns something other than <see cref="Verdict.Pass"/>. Returns the
    /// port to deliver the frame to (<paramref name="defaultPort"/> on Pass, the frame's target on Another), or a
    /// negative number: <see cref="Consumed"/> when a handler took it; <see cref="Dropped"/>, counted in
    /// <paramref name="drops"/>, for a consumed frame with a <see cref="Frame.DropReason"/> and for an Another whose
    /// target is not one of the <paramref name="portCount"/> ports.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Decide(IFrameHandler[] handlers, ref Frame frame, int defaultPort, int portCount, ref long drops)
    {
        long faulted = 0;
        return Decide(handlers, ref frame, defaultPort, portCount, ref drops, null, ref faulted);
    }

    /// <summary>
    /// As above; a handler that throws has the frame dropped, counted in <paramref name="faulted"/>, and its
    /// exception recorded in <paramref name="faults"/> (when given).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Decide(IFrameHandler[] handlers, ref Frame frame, int defaultPort, int portCount, ref long drops, HandlerFaults? faults, ref long faulted)
    {
        var verdict = Verdict.Pass;
        for (int i = 0; i < handlers.Length; i++)
        {
            try
            {
                verdict = handlers[i].OnFrame(ref frame);
            }
            catch (Exception e)
            {
                faulted++;
                faults?.Record(i, e);
                return Faulted;
            }

            if (verdict != Verdict.Pass)
            {
                break;
            }
        }

        switch (verdict)
        {
            case Verdict.Pass:
                return defaultPort;
            case Verdict.Another when (uint)frame.Target < (uint)portCount:
                return frame.Target;
            case Verdict.Consumed when frame.DropReason is null:
                return Consumed;
            default:
                drops++;
                return Dropped;
        }
    }
}
