// Handlers as a user would write them in a plugin assembly, for HandlerPluginTests.
using Virtnet.Datapaths;

namespace Virtnet.TestHandlers;

/// <summary>Drops the ICMP echo requests that arrive from the wire, with the reason given as --handler-arg reason=...</summary>
public sealed class DropPings(IReadOnlyDictionary<string, string> args) : IFrameHandler
{
    private readonly string _reason = args.TryGetValue("reason", out var r) ? r : "no pings";

    public Verdict OnFrame(ref Frame frame)
    {
        var data = frame.Data;
        bool request = frame.Direction == Direction.Ingress && data.Length >= 35
            && data[12] == 0x08 && data[13] == 0x00 && data[23] == 1 && data[14 + ((data[14] & 0xf) * 4)] == 8;
        if (!request)
        {
            return Verdict.Pass;
        }

        frame.DropReason = _reason;
        return Verdict.Consumed;
    }
}

/// <summary>Counts frames and passes them all: a second handler in the assembly, and one with no arguments.</summary>
public sealed class PassAll : IFrameHandler
{
    public long Seen { get; private set; }

    public Verdict OnFrame(ref Frame frame)
    {
        Seen++;
        return Verdict.Pass;
    }
}

/// <summary>Public, but not a handler.</summary>
public sealed class NotAHandler
{
}
