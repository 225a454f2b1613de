// What `virtnet show` and `virtnet stats` say of a binding, as the control socket carries it and as `-j` prints it.
// The JSON field names are a contract (docs/service.md): they change only with ControlProtocol.Version.
using System.Text.Json;
using System.Text.Json.Serialization;
using Virtnet.Datapaths;

namespace Virtnet.Cli.Service;

/// <summary>One direction's counters: totals since the binding was made, drops by reason, and the rates over the last second.</summary>
public sealed record DirectionStatus
{
    /// <summary>Frames that crossed the binding this way.</summary>
    public ulong Frames { get; init; }

    /// <summary>Their bytes.</summary>
    public ulong Bytes { get; init; }

    /// <summary>Frames lost this way, all reasons.</summary>
    public ulong Drops { get; init; }

    /// <summary>Frames lost this way, by reason (<see cref="BindingStatus.ReasonKey"/> names); only reasons with a count.</summary>
    public SortedDictionary<string, ulong> DropReasons { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Of the drops under "handler": the frames by the handler's own reason (its DropReason); empty for none.</summary>
    public SortedDictionary<string, ulong> HandlerReasons { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Frames a second over the host's last one-second sample.</summary>
    public double FramesPerSecond { get; init; }

    /// <summary>Bits a second over the same sample.</summary>
    public double BitsPerSecond { get; init; }
}

/// <summary>One of a binding's further virtual devices.</summary>
/// <param name="Port">Its port number in the handlers' pipeline (2 and on).</param>
/// <param name="Name">Its name, in the binding's namespace.</param>
/// <param name="Mac">Its MAC.</param>
public sealed record ExtraDeviceStatus(int Port, string Name, string Mac);

/// <summary>A binding as one virtnet process reports it.</summary>
public sealed record BindingStatus
{
    /// <summary>The virtual device.</summary>
    public required string Name { get; init; }

    /// <summary>The real device.</summary>
    public required string Real { get; init; }

    /// <summary>The virtual device's network namespace: a name from `ip netns`, a path, its identity when it has no name, or null for the host's.</summary>
    public string? Netns { get; init; }

    /// <summary>The namespace's identity, "net:[inode]" as /proc/PID/ns/net reads.</summary>
    public required string NetnsId { get; init; }

    /// <summary>kernel or user.</summary>
    public required string Datapath { get; init; }

    /// <summary>passthru, bridge, private, vepa, or mirror.</summary>
    public required string Mode { get; init; }

    /// <summary>A mirror's directions (ingress, egress, both); null for a binding that takes frames.</summary>
    public string? Mirror { get; init; }

    /// <summary>The virtual device's MAC, like 02:00:00:00:00:01.</summary>
    public required string Mac { get; init; }

    /// <summary>The VLAN it takes, null for none.</summary>
    public int? Vlan { get; init; }

    /// <summary>Its filter with the grouping written out, null for none.</summary>
    public string? Filter { get; init; }

    /// <summary>Devices in the process's namespace that carry only this binding's frames (a veth peer, a pump, a ring device).</summary>
    public IReadOnlyList<string> PrivateDevices { get; init; } = [];

    /// <summary>The binding's further virtual devices (ports 2, 3, ..., which handlers send frames to), in port order.</summary>
    public IReadOnlyList<ExtraDeviceStatus> ExtraDevices { get; init; } = [];

    /// <summary>Frames the handlers sent with Frame.Emit or EmitCopy (user datapath), since the binding was made.</summary>
    public ulong HandlerEmitted { get; init; }

    /// <summary>Frames the handlers emitted that could not be sent (no such port, the device would not take them).</summary>
    public ulong HandlerEmitFailed { get; init; }

    /// <summary>The virtnet process that runs it.</summary>
    public int Pid { get; init; }

    /// <summary>When it became ready: UTC, ISO 8601 with milliseconds, like 2026-12-01T07:38:20.913Z.</summary>
    public required string Since { get; init; }

    /// <summary>What arrived on the real device and reached the virtual one.</summary>
    public required DirectionStatus Ingress { get; init; }

    /// <summary>What the virtual device sent and left through the real one.</summary>
    public required DirectionStatus Egress { get; init; }

    /// <summary>The reason's stable name in JSON (drop_reasons keys).</summary>
    public static string ReasonKey(DropCause cause) => cause.Key();

    /// <summary>The reason's words for people, from a <see cref="ReasonKey"/>.</summary>
    public static string ReasonText(string key)
        => Enum.GetValues<DropCause>().Where(c => ReasonKey(c) == key).Select(Cli.CauseText).FirstOrDefault() ?? key;

    /// <summary>The counters of one direction, with rates from the difference to an earlier sample.</summary>
    public static DirectionStatus Direction(DatapathCounters now, Datapaths.Direction direction, DirectionCounters earlier, double seconds)
    {
        var counters = direction == Datapaths.Direction.Ingress ? now.Ingress : now.Egress;
        var reasons = new SortedDictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var drop in now.DropCauses ?? [])
        {
            if (drop.Direction == direction && drop.Frames > 0)
            {
                reasons[ReasonKey(drop.Cause)] = reasons.GetValueOrDefault(ReasonKey(drop.Cause)) + drop.Frames;
            }
        }

        var handlerReasons = new SortedDictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var r in now.HandlerReasons ?? [])
        {
            if (r.Direction == direction && r.Frames > 0)
            {
                handlerReasons[r.Reason] = handlerReasons.GetValueOrDefault(r.Reason) + r.Frames;
            }
        }

        return new DirectionStatus
        {
            Frames = counters.Frames,
            Bytes = counters.Bytes,
            Drops = counters.Drops,
            DropReasons = reasons,
            HandlerReasons = handlerReasons,
            FramesPerSecond = seconds > 0 ? Math.Round((counters.Frames - Math.Min(counters.Frames, earlier.Frames)) / seconds, 1) : 0,
            BitsPerSecond = seconds > 0 ? Math.Round((counters.Bytes - Math.Min(counters.Bytes, earlier.Bytes)) * 8 / seconds, 0) : 0,
        };
    }
}

/// <summary>What a client asks of a virtnet process: one JSON line.</summary>
public sealed record ControlRequest
{
    /// <summary>show, stats, detach, or drops (a capture asks for the frames the binding drops in managed code).</summary>
    public required string Command { get; init; }

    /// <summary>For stats, detach and drops: the binding, as NAME or NETNS/NAME.</summary>
    public string? Name { get; init; }

    /// <summary>For drops: the capture's Unix datagram socket (under the control directory), or null to stop sending.</summary>
    public string? Socket { get; init; }
}

/// <summary>The answer: one JSON line.</summary>
public sealed record ControlReply
{
    /// <summary>The protocol's version (<see cref="ControlProtocol.Version"/>).</summary>
    public int Version { get; init; } = ControlProtocol.Version;

    /// <summary>The bindings the request was about (all of them for show).</summary>
    public List<BindingStatus> Bindings { get; init; } = [];

    /// <summary>A sentence when the request failed.</summary>
    public string? Error { get; init; }

    /// <summary>For detach: the binding's last line (its counters when it stopped).</summary>
    public string? Stopped { get; init; }
}

/// <summary>What `show -j` prints: every binding of every process.</summary>
public sealed record ShowOutput
{
    /// <summary>The format's version: the field names change only with it.</summary>
    public int Version { get; init; } = ControlProtocol.Version;

    /// <summary>The bindings, by namespace and name.</summary>
    public List<BindingStatus> Bindings { get; init; } = [];
}

/// <summary>The wire format's constants.</summary>
public static class ControlProtocol
{
    /// <summary>Bumped when a field is renamed or removed (a new field keeps it).</summary>
    public const int Version = 1;
}

/// <summary>Source-generated JSON (Native AOT has no reflection-based serializer): snake_case names, nulls written out.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlReply))]
[JsonSerializable(typeof(ShowOutput))]
[JsonSerializable(typeof(BindingStatus))]
internal sealed partial class ControlJson : JsonSerializerContext
{
    /// <summary>The same, indented, for people reading `-j` output.</summary>
    public static ControlJson Indented { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    });
}
