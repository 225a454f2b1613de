using BenchmarkDotNet.Attributes;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Benchmarks;

/// <summary>The 802.1Q-aware header view: what every handler pays to look at a frame. Expect nanoseconds, 0 B.</summary>
[MemoryDiagnoser]
public class EthernetViewBenchmarks
{
    private byte[] _raw = [];

    [Params(FrameKind.Untagged, FrameKind.Vlan, FrameKind.QinQ)]
    public FrameKind Kind { get; set; }

    [GlobalSetup]
    public void Setup() => _raw = Frames.Make(Kind);

    [Benchmark(Baseline = true)]
    public ushort EtherType() => new EthernetView(_raw.AsSpan(VirtioNetHdr.Size)).EtherType;

    [Benchmark]
    public ushort InnerEtherType() => new EthernetView(_raw.AsSpan(VirtioNetHdr.Size)).InnerEtherType;

    [Benchmark]
    public int VlanId() => new EthernetView(_raw.AsSpan(VirtioNetHdr.Size)).VlanId;

    /// <summary>What a demultiplexing handler would ask: broadcast, multicast, VLAN and inner type together.</summary>
    [Benchmark]
    public int Classify()
    {
        var view = new EthernetView(_raw.AsSpan(VirtioNetHdr.Size));
        if (!view.IsValid)
        {
            return -1;
        }

        int score = view.IsBroadcast ? 1 : 0;
        score += view.IsMulticast ? 2 : 0;
        score += view.VlanId;
        return score + view.InnerEtherType;
    }
}
