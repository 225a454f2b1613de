// The samples (samples/), each built as a plugin and run from the CLI as a user would run it: an ARP/ICMP responder
// for an address no device holds, a 1:1 NAT that carries a verified TCP stream (64 KB super-frames both ways), a
// rate limiter whose drops are counted under its reason, a protocol counter scraped from --metrics.
using System.Net;
using System.Text.Json;
using Virtnet.Lab;
using Virtnet.Namespaces;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class SamplesTests(ITestOutputHelper output)
{
    private const int X = 72;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>A sample's assembly, where its build puts it (the tests' configuration).</summary>
    internal static string Sample(string name)
    {
        string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        string path = Path.Combine(Repo.Root, "samples", name, "bin", configuration, "net10.0", $"{name}.dll");
        Assert.True(File.Exists(path), $"{path} was not built");
        return path;
    }

    [SkippableFact]
    public void ArpIcmpResponder_AnswersForAnAddressNoDeviceHolds()
    {
        Root.Require();
        using var lab = Lab.Create("spr", X, output);
        string answered = $"10.200.{X}.9";
        var binding = lab.Up("user", "--handler", Sample("ArpIcmpResponder"), "--handler-arg", $"ip={answered}");
        Net.AssertPing(lab.B, lab.B4, answered, count: 3);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2); // the virtual device's own address still answers itself
        Assert.DoesNotContain(answered, Net.Ip(lab.A, "-4", "addr", "show"), StringComparison.Ordinal);
        Assert.False(binding.HasExited, binding.Describe());
    }

    [SkippableFact]
    public void Nat_PingAndAVerifiedTcpStream_ThroughTheOutsideAddress()
    {
        Root.Require();
        using var lab = Lab.Create("snat", X, output);
        string outside = $"10.200.{X}.50";
        var binding = lab.Up("user", "--handler", Sample("Nat"), "--handler-arg", $"inside={lab.A4}", "--handler-arg", $"outside={outside}");
        Net.AssertPing(lab.B, lab.B4, outside, count: 3);

        // A TCP stream from the wire to the outside address, served on the inside one: super-frames with partial
        // checksums both ways, every byte verified.
        using var server = NetNamespace.Open(lab.A.Path);
        using var client = NetNamespace.Open(lab.B.Path);
        var result = TcpTransfer.Run(server, IPAddress.Parse(lab.A4), client, TimeSpan.FromSeconds(2), 200L << 20, FailFast, connectTo: IPAddress.Parse(outside));
        output.WriteLine($"{result.BytesReceived} bytes, {result.MegabytesPerSecond:0} MB/s, {result.Error}");
        Assert.True(result.Ok, $"{result.Error}; {result.BytesReceived} of {result.BytesSent} bytes");
        Assert.True(result.BytesReceived > 10L << 20, $"only {result.BytesReceived} bytes");
        Assert.False(binding.HasExited, binding.Describe());
    }

    [SkippableFact]
    public void RateLimiter_DropsWhatTheBucketCannotPay_CountedUnderItsReason()
    {
        Root.Require();
        using var lab = Lab.Create("srl", X, output);
        lab.Up("user", "--handler", Sample("RateLimiter"), "--handler-arg", "rate=20", "--handler-arg", "burst=5");
        // 200 echo requests in about a second: far beyond 20/s and a burst of 5 on any forwarder.
        var r = Net.Ping(lab.B, lab.B4, lab.A4, count: 200, interval: 0.005);
        output.WriteLine(r.Stdout);
        var stats = ServiceTests.Cli("stats", "-j", $"{lab.A.Name}/{Lab.Virtual}");
        using var doc = JsonDocument.Parse(stats.Stdout);
        var ingress = doc.RootElement.GetProperty("ingress");
        ulong limited = ingress.GetProperty("handler_reasons").GetProperty("rate limit").GetUInt64();
        Assert.InRange(limited, 100UL, 200UL);
        Assert.Equal(limited, ingress.GetProperty("drop_reasons").GetProperty("handler").GetUInt64());
        Assert.Contains(" received", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(" 0 received", r.Stdout, StringComparison.Ordinal); // some got through
    }

    [SkippableFact]
    public void ProtocolCounter_ScrapedFromMetrics()
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/curl"), "curl is not installed (.ci/run installs it)");
        using var lab = Lab.Create("spc", X, output);
        lab.Up("user", "--handler", Sample("ProtocolCounter"), "--metrics", "127.0.0.1:9472");
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3);
        string? text = null;
        Net.WaitUntil(() => (text = MetricsTests.Scrape(lab.A, "127.0.0.1:9472")) is { } t && (MetricsTests.Value(t, "virtnet_sample_protocol_frames_total", "protocol=\"icmp\"", "direction=\"ingress\"") ?? 0) >= 3, FailFast, () => text ?? "no answer");
        Assert.True(MetricsTests.Value(text!, "virtnet_sample_protocol_frames_total", "protocol=\"icmp\"", "direction=\"egress\"") >= 3, text);
        Assert.True(MetricsTests.Value(text!, "virtnet_frames_total", "direction=\"ingress\"") >= 3, text);
    }
}
