using System.Runtime.CompilerServices;

namespace Virtnet.Datapaths;

/// <summary>
/// The handler dispatch of the user datapath, over port indices (0 the real side, 1 the first virtual device), so
/// that it knows nothing of file descriptors and is testable without devices.
/// </summary>
internal static class Pipeline
{
    /// <summary>
    /// Runs the handlers in order until one returns something other than <see cref="Verdict.Pass"/>. Returns the
    /// port to deliver the frame to (<paramref name="defaultPort"/> on Pass, the frame's target on Another), or -1
    /// when the frame was consumed; a consumed frame with a <see cref="Frame.DropReason"/> and an Another whose
    /// target is not one of the <paramref name="portCount"/> ports both count as drops.
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
                return -1;
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
                return -1;
            default:
                drops++;
                return -1;
        }
    }
}
