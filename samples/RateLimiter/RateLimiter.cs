// A token-bucket rate limiter on what arrives from the wire.
//   virtnet attach eth1 --handler samples/RateLimiter/bin/Release/net10.0/RateLimiter.dll --handler-arg rate=1000 --handler-arg burst=100
// Each forwarder (one per CPU) has a bucket of its own, in an array indexed by Frame.Forwarder: no lock, no shared
// cache line. The rate is per forwarder, so the whole binding takes up to forwarders × rate frames a second; a flow
// always lands on one forwarder. What the bucket cannot pay for is dropped with reason "rate limit"
// (virtnet stats: dropped N by handlers / N rate limit).
using System.Diagnostics;
using System.Globalization;
using Virtnet.Datapaths;

namespace Virtnet.Samples;

/// <summary>--handler-arg rate=FRAMES_PER_SECOND (required), burst=FRAMES (default: rate / 10, at least 1).</summary>
public sealed class RateLimiter : IFrameHandler
{
    private const string Reason = "rate limit";
    private readonly double _rate;
    private readonly double _burst;
    private Bucket[] _buckets = [];

    /// <summary>Takes rate= and burst=.</summary>
    public RateLimiter(IReadOnlyDictionary<string, string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (!args.TryGetValue("rate", out var rate) || !double.TryParse(rate, NumberStyles.Float, CultureInfo.InvariantCulture, out _rate) || _rate <= 0)
        {
            throw new ArgumentException("give the rate in frames a second: --handler-arg rate=1000");
        }

        _burst = args.TryGetValue("burst", out var burst) && double.TryParse(burst, NumberStyles.Float, CultureInfo.InvariantCulture, out var b) && b >= 1 ? b : Math.Max(1, _rate / 10);
    }

    /// <inheritdoc/>
    public void OnStart(HandlerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _buckets = new Bucket[context.ForwarderCount];
        long now = Stopwatch.GetTimestamp();
        for (int i = 0; i < _buckets.Length; i++)
        {
            _buckets[i] = new Bucket { Tokens = _burst, Last = now };
        }

        context.Log($"{_rate} frames/s and a burst of {_burst} per forwarder, {context.ForwarderCount} forwarders");
    }

    /// <inheritdoc/>
    public Verdict OnFrame(ref Frame frame)
    {
        if (frame.Direction != Direction.Ingress)
        {
            return Verdict.Pass;
        }

        ref var bucket = ref _buckets[frame.Forwarder];
        long now = Stopwatch.GetTimestamp();
        bucket.Tokens = Math.Min(_burst, bucket.Tokens + ((now - bucket.Last) * _rate / Stopwatch.Frequency));
        bucket.Last = now;
        if (bucket.Tokens >= 1)
        {
            bucket.Tokens -= 1;
            return Verdict.Pass;
        }

        frame.DropReason = Reason;
        return Verdict.Consumed;
    }

    // One forwarder's bucket, padded to a cache line of its own.
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 64)]
    private struct Bucket
    {
        public double Tokens;
        public long Last;
    }
}
