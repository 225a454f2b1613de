using BenchmarkDotNet.Attributes;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Benchmarks;

/// <summary>
/// Handler dispatch per frame (<see cref="Pipeline.Decide"/>) with 0, 1 and 5 handlers that all pass, and with one
/// handler that drops. Each invocation decides a batch of frames so the harness's own overhead is amortized; the
/// figure is per frame.
/// </summary>
[MemoryDiagnoser]
public class PipelineBenchmarks
{
    private const int Batch = 64;

    private const int Ports = 2;
    private byte[] _raw = [];
    private IFrameHandler[] _handlers = [];
    private IFrameHandler[] _dropping = [];
    private long _drops;

    [Params(0, 1, 5)]
    public int Handlers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _raw = Frames.Make(FrameKind.Untagged);
        _handlers = Enumerable.Range(0, Handlers).Select(_ => (IFrameHandler)new CountingHandler()).ToArray();
        _dropping = [.. _handlers, new DroppingHandler()];
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int DecidePass()
    {
        int sum = 0;
        for (int i = 0; i < Batch; i++)
        {
            var frame = new Frame(_raw, Direction.Ingress);
            sum += Pipeline.Decide(_handlers, ref frame, 1, Ports, ref _drops);
        }

        return sum;
    }

    /// <summary>The same handlers followed by one that drops: the consumed-with-reason path that counts a drop.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int DecideDrop()
    {
        int sum = 0;
        for (int i = 0; i < Batch; i++)
        {
            var frame = new Frame(_raw, Direction.Ingress);
            sum += Pipeline.Decide(_dropping, ref frame, 1, Ports, ref _drops);
        }

        return sum;
    }
}
