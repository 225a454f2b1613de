// Frames by protocol and direction, exported through the Virtnet meter: `virtnet attach ... --metrics ADDR:PORT`
// serves them to Prometheus as virtnet_sample_protocol_frames_total{protocol, direction}, and dotnet-counters shows
// them under Virtnet.
//   virtnet attach eth1 --handler samples/ProtocolCounter/bin/Release/net10.0/ProtocolCounter.dll --metrics 127.0.0.1:9464
// Counting is per forwarder (a row of its own, indexed by Frame.Forwarder): a plain increment, no lock; a scrape
// sums the rows.
using System.Diagnostics.Metrics;
using Virtnet.Datapaths;

namespace Virtnet.Samples;

/// <summary>Counts every frame by protocol (arp, ipv4, ipv6, tcp, udp, icmp, icmp6, other) and direction; passes them all.</summary>
public sealed class ProtocolCounter : IFrameHandler, IDisposable
{
    private static readonly string[] Protocols = ["arp", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmp6", "other"];
    private readonly Meter _meter = new("Virtnet");
    private long[][] _counts = [];

    /// <inheritdoc/>
    public void OnStart(HandlerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        // One row per forwarder, each [direction × protocol], padded apart.
        _counts = Enumerable.Range(0, context.ForwarderCount).Select(_ => new long[(2 * Protocols.Length) + 16]).ToArray();
        _meter.CreateObservableCounter("virtnet.sample.protocol.frames", Observe, "{frame}", "Frames by protocol and direction (the ProtocolCounter sample)");
    }

    /// <inheritdoc/>
    public Verdict OnFrame(ref Frame frame)
    {
        int protocol = Classify(ref frame);
        _counts[frame.Forwarder][((int)frame.Direction * Protocols.Length) + protocol]++;
        return Verdict.Pass;
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();

    private static int Classify(ref Frame frame)
    {
        if (frame.TryArp(out _))
        {
            return 0;
        }

        if (frame.TryIpv4(out var v4))
        {
            return v4.Protocol switch { 6 => 3, 17 => 4, 1 => 5, _ => 1 };
        }

        if (frame.TryIpv6(out var v6))
        {
            return v6.Protocol switch { 6 => 3, 17 => 4, 58 => 6, _ => 2 };
        }

        return 7;
    }

    private IEnumerable<Measurement<long>> Observe()
    {
        for (int d = 0; d < 2; d++)
        {
            for (int p = 0; p < Protocols.Length; p++)
            {
                long sum = 0;
                foreach (var row in _counts)
                {
                    sum += Volatile.Read(ref row[(d * Protocols.Length) + p]);
                }

                if (sum > 0)
                {
                    yield return new Measurement<long>(sum, new("protocol", Protocols[p]), new("direction", d == 0 ? "ingress" : "egress"));
                }
            }
        }
    }
}
