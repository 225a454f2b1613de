using BenchmarkDotNet.Attributes;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Benchmarks;

/// <summary>
/// What a handler pays to look into a frame with the protocol views, and to rewrite an address keeping every
/// checksum right (FrameViews), on a tagged or untagged IPv4/UDP frame. Expect nanoseconds, 0 B.
/// </summary>
[MemoryDiagnoser]
public class ProtocolViewBenchmarks
{
    private static readonly byte[] Address = [192, 0, 2, 1];
    private byte[] _raw = [];

    [Params(FrameKind.Untagged, FrameKind.Vlan)]
    public FrameKind Kind { get; set; }

    [GlobalSetup]
    public void Setup() => _raw = Frames.Make(Kind);

    /// <summary>IPv4 header, then its UDP header: the two TryReads of a port-based handler.</summary>
    [Benchmark(Baseline = true)]
    public int Ipv4ThenUdp()
    {
        var frame = new Frame(_raw, Direction.Ingress);
        return frame.TryIpv4(out var ip) && UdpView.TryRead(ip.Payload, out var udp) ? udp.DestinationPort + ip.Protocol : -1;
    }

    /// <summary>The same frame read as IPv6: the EtherType check that says no.</summary>
    [Benchmark]
    public bool Ipv6Miss()
    {
        var frame = new Frame(_raw, Direction.Ingress);
        return frame.TryIpv6(out _);
    }

    /// <summary>A NAT's rewrite: the destination address, with the IP and UDP checksums updated (RFC 1624).</summary>
    [Benchmark]
    public bool RewriteAddress()
    {
        var frame = new Frame(_raw, Direction.Ingress);
        return frame.RewriteIpv4Address(source: false, Address);
    }

    /// <summary>The IPv4 header checksum computed whole: the cost the incremental update avoids.</summary>
    [Benchmark]
    public ushort HeaderChecksumWhole()
    {
        var frame = new Frame(_raw, Direction.Ingress);
        return frame.TryIpv4(out var ip) ? InternetChecksum.Compute(frame.Data.Slice(frame.NetworkOffset(), ip.HeaderLength)) : (ushort)0;
    }

    /// <summary>The whole frame summed (what a full checksum over it costs).</summary>
    [Benchmark]
    public ulong SumFrame() => InternetChecksum.Add(0, _raw.AsSpan(VirtioNetHdr.Size));

}
