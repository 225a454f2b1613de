namespace Virtnet.Datapaths;

/// <summary>
/// A C# frame handler in the user datapath's pipeline. It runs on every forwarder thread (one per CPU) at once,
/// so shared state needs per-thread slots or interlocked updates; it must not block, allocate or throw.
/// </summary>
public interface IFrameHandler
{
    Verdict OnFrame(ref Frame frame);
}
