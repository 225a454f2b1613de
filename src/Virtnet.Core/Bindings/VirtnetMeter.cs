// The bindings' counters as System.Diagnostics.Metrics instruments, on one Meter named "Virtnet": what
// `dotnet-counters monitor --counters Virtnet` shows, and what an OpenTelemetry exporter (the CLI's --metrics
// Prometheus endpoint) publishes. The instruments are observable: nothing is recorded per frame; each
// collection reads the live bindings' counters (the same reads `virtnet stats` makes), so a scrape costs a few
// map lookups per binding and the frame path nothing at all.
//
//   virtnet.frames {frame}  binding, real, direction            (Prometheus: virtnet_frames_total)
//   virtnet.bytes  By       binding, real, direction            (virtnet_bytes_total)
//   virtnet.drops  {frame}  binding, real, direction, reason    (virtnet_drops_total; reason as DropCauseNames.Key)
using System.Diagnostics.Metrics;
using Virtnet.Datapaths;

namespace Virtnet;

/// <summary>The <c>Virtnet</c> meter: every live binding of this process, counted.</summary>
public static class VirtnetMeter
{
    /// <summary>The meter's name, for <c>AddMeter</c> and <c>dotnet-counters --counters</c>.</summary>
    public const string Name = "Virtnet";

    private static readonly Direction[] Directions = [Direction.Ingress, Direction.Egress];
    private static readonly Lock Gate = new();
    private static readonly List<Attachment> Live = [];
    private static readonly Meter Meter = new(Name, typeof(VirtnetMeter).Assembly.GetName().Version?.ToString(3));

    // One read of every binding serves the three instruments of one collection (they are observed back to back).
    private static (long Ticks, List<(Attachment Binding, DatapathCounters Counters)> Read) s_snapshot = (0, []);

    static VirtnetMeter()
    {
        Meter.CreateObservableCounter("virtnet.frames", () => Observe((c, d) => (long)Side(c, d).Frames), "{frame}", "Frames that crossed a binding, by direction");
        Meter.CreateObservableCounter("virtnet.bytes", () => Observe((c, d) => (long)Side(c, d).Bytes), "By", "Bytes of the frames that crossed a binding, by direction");
        Meter.CreateObservableCounter("virtnet.drops", ObserveDrops, "{frame}", "Frames that entered a binding and did not leave it, by direction and reason");
        Meter.CreateObservableCounter("virtnet.handler.emitted", ObserveEmitted, "{frame}", "Frames a binding's handlers sent (Frame.Emit, EmitCopy), by result (sent, failed)");
    }

    private static IEnumerable<Measurement<long>> ObserveEmitted()
    {
        foreach (var (binding, counters) in Snapshot())
        {
            if (binding.Datapath != DatapathKind.User)
            {
                continue;
            }

            var name = Tags(binding, Direction.Ingress)[..2];
            yield return new Measurement<long>((long)counters.HandlerEmitted, [.. name, new("result", "sent")]);
            yield return new Measurement<long>((long)counters.HandlerEmitFailed, [.. name, new("result", "failed")]);
        }
    }

    internal static void Register(Attachment binding)
    {
        lock (Gate)
        {
            Live.Add(binding);
            s_snapshot = (0, []);
        }
    }

    internal static void Unregister(Attachment binding)
    {
        lock (Gate)
        {
            Live.Remove(binding);

            // A collection right after this must not see it in the last snapshot (CI saw one 100 ms old).
            s_snapshot = (0, []);
        }
    }

    private static DirectionCounters Side(DatapathCounters c, Direction d) => d == Direction.Ingress ? c.Ingress : c.Egress;

    private static List<(Attachment Binding, DatapathCounters Counters)> Snapshot()
    {
        lock (Gate)
        {
            long now = Environment.TickCount64;
            if (now - s_snapshot.Ticks > 100)
            {
                var read = new List<(Attachment, DatapathCounters)>(Live.Count);
                foreach (var binding in Live)
                {
                    try
                    {
                        read.Add((binding, binding.ReadCounters()));
                    }
                    catch (VirtnetException)
                    {
                        // Going away while read: it is simply not in this collection.
                    }
                }

                s_snapshot = (now, read);
            }

            return s_snapshot.Read;
        }
    }

    private static IEnumerable<Measurement<long>> Observe(Func<DatapathCounters, Direction, long> value)
    {
        foreach (var (binding, counters) in Snapshot())
        {
            foreach (var d in Directions)
            {
                yield return new Measurement<long>(value(counters, d), Tags(binding, d));
            }
        }
    }

    private static IEnumerable<Measurement<long>> ObserveDrops()
    {
        foreach (var (binding, counters) in Snapshot())
        {
            foreach (var drop in counters.DropCauses)
            {
                var tags = Tags(binding, drop.Direction);
                yield return new Measurement<long>((long)drop.Frames, [.. tags, new("reason", drop.Cause.Key())]);
            }
        }
    }

    private static KeyValuePair<string, object?>[] Tags(Attachment binding, Direction direction) =>
    [
        new("binding", binding.Namespace is { } ns ? $"{Path.GetFileName(ns)}/{binding.VirtualName}" : binding.VirtualName),
        new("real", binding.RealName),
        new("direction", direction == Direction.Ingress ? "ingress" : "egress"),
    ];
}
