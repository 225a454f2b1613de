namespace Virtnet.Datapaths;

/// <summary>
/// A C# frame handler in the user datapath's pipeline. It runs on every forwarder thread (one per CPU) at once,
/// so shared state needs per-thread slots or interlocked updates; it must not block, allocate or throw.
/// </summary>
public interface IFrameHandler
{
    /// <summary>Decides what happens to <paramref name="frame"/>; may rewrite its bytes in place.</summary>
    /// <param name="frame">The frame, valid only during the call.</param>
    /// <returns>Pass to let the next handler decide, Consumed to take or drop it, Another to send it to <see cref="Frame.Target"/>.</returns>
    Verdict OnFrame(ref Frame frame);
}
