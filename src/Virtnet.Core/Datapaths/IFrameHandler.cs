namespace Virtnet.Datapaths;

/// <summary>
/// A C# frame handler in the user datapath's pipeline. It runs on every forwarder thread (one per CPU) at once,
/// so shared state needs per-thread slots or interlocked updates; it must not block or allocate, and should not
/// throw: an exception drops the frame (see <see cref="StopOnFault"/>).
/// </summary>
public interface IFrameHandler
{
    /// <summary>Decides what happens to <paramref name="frame"/>; may rewrite its bytes in place.</summary>
    /// <param name="frame">The frame, valid only during the call.</param>
    /// <returns>Pass to let the next handler decide, Consumed to take or drop it, Another to send it to <see cref="Frame.Target"/>.</returns>
    Verdict OnFrame(ref Frame frame);

    /// <summary>
    /// What an exception from <see cref="OnFrame"/> does. false (the default): the frame is dropped, counted as
    /// "handler fault", the exception is logged (once per handler every 10 s, with how many followed), and forwarding
    /// goes on. true: the binding stops, its run ending with the exception's message.
    /// </summary>
    bool StopOnFault => false;

    /// <summary>
    /// Called once before the first frame, with the binding's ports, MTU and number of forwarders (for lock-free
    /// per-forwarder state, indexed by <see cref="Frame.Forwarder"/>). An exception here fails the binding's setup.
    /// </summary>
    /// <param name="context">What the handler may want to know; keep it if needed later.</param>
    void OnStart(HandlerContext context)
    {
    }
}
