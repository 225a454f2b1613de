using System.Runtime.CompilerServices;
using Virtnet.Native;

namespace Virtnet.Datapaths;

/// <summary>The handler dispatch of the user datapath, separate from the I/O so it is testable without devices.</summary>
public static class Pipeline
{
    /// <summary>
    /// Runs the handlers in order until one returns something other than <see cref="Verdict.Pass"/>. Returns the
    /// fd to write the frame to (<paramref name="defaultOutput"/> on Pass, the target port on Another), or -1 when
    /// the frame was consumed; a consumed frame with a <see cref="Frame.DropReason"/> and an Another with a bad
    /// target both count as drops.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Decide(IFrameHandler[] handlers, ref Frame frame, int defaultOutput, FileDescriptor[] ports, ref long drops)
    {
        var verdict = Verdict.Pass;
        for (int i = 0; i < handlers.Length; i++)
        {
            verdict = handlers[i].OnFrame(ref frame);
            if (verdict != Verdict.Pass)
            {
                break;
            }
        }

        switch (verdict)
        {
            case Verdict.Pass:
                return defaultOutput;
            case Verdict.Another when (uint)frame.Target < (uint)ports.Length:
                return ports[frame.Target].Fd;
            case Verdict.Consumed when frame.DropReason is null:
                return -1;
            default:
                drops++;
                return -1;
        }
    }
}
