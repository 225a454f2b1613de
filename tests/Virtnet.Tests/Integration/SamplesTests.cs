// The samples (samples/), each built as a plugin and run from the CLI as a user would run it: an ARP/ICMP responder
// for an address no device holds, a 1:1 NAT that carries a verified TCP stream (64 KB super-frames both ways), a
// rate limiter whose drops are counted under its reason, a protocol counter scraped from --metrics, a mirror port
// on a second virtual device of the binding.
using System.Buffers.Binary;
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
        var ingress = ServiceTests.Stats($"{lab.A.Name}/{Lab.Virtual}").GetProperty("ingress");
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

    /// <summary>
    /// A binding with a second virtual device (--extra-device) and the MirrorPort sample: the first device works as
    /// usual, the second sees a copy of every frame both ways, and what the second sends is dropped under the
    /// sample's reason, never reaching the wire.
    /// </summary>
    [SkippableFact]
    public void MirrorPort_CopiesBothWaysToTheSecondDevice_WhichIsReceiveOnly()
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/curl"), "curl is not installed (.ci/run installs it)");
        using var lab = Lab.Create("smp", X, output);
        var binding = lab.Up("user", "--extra-device", "mon1", "--handler", Sample("MirrorPort"), "--metrics", "127.0.0.1:9474");
        Assert.Contains(", further devices mon1 (port 2, mac ", binding.ReadyLine, StringComparison.Ordinal);
        Assert.True(Net.Exists(lab.A, "mon1"));

        // The monitor's own stack stays quiet (no IPv6 of its own: no MLD, no router solicitations), so that what
        // it sends below is all it sends.
        lab.A.Exec("sysctl", "-qw", "net.ipv6.conf.mon1.disable_ipv6=1");
        using var monitor = PacketSocket.Open(lab.A, "mon1");
        string name = $"{lab.A.Name}/{Lab.Virtual}";
        // A copy made before mon1 was up (of what vb's stack sent while the binding was being made) could not be sent:
        // the pings' copies are counted from here.
        ulong failedBefore = ServiceTests.Stats(name).GetProperty("handler_emit_failed").GetUInt64();
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3);
        var copies = monitor.Capture(_ => false, TimeSpan.FromSeconds(1), TimeSpan.Zero).Where(f => f.PacketType != 4).ToList();
        Assert.Equal(3, copies.Count(f => IsEcho(f, 8, lab.B4, lab.A4)));
        Assert.Equal(3, copies.Count(f => IsEcho(f, 0, lab.A4, lab.B4)));

        // What the mirror port sends: dropped under the sample's reason, and not on the wire.
        using var wire = PacketSocket.Open(lab.B, Lab.Peer);
        var frame = new byte[60];
        frame.AsSpan(0, 6).Fill(0xff);
        frame[6] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x88b5);
        frame[14] = 0x5a;
        ulong ReceiveOnlyDrops() => ServiceTests.Stats(name).GetProperty("egress").GetProperty("handler_reasons").TryGetProperty("mirror port is receive-only", out var n) ? n.GetUInt64() : 0;
        Thread.Sleep(300);
        ulong before = ReceiveOnlyDrops();
        monitor.Send(frame);
        monitor.Send(frame);
        Net.WaitUntil(() => ReceiveOnlyDrops() >= before + 2, FailFast, () => $"{ReceiveOnlyDrops()} drops, {before} before");
        Thread.Sleep(300);
        Assert.Equal(before + 2, ReceiveOnlyDrops());
        Assert.DoesNotContain(wire.Capture(_ => false, TimeSpan.FromMilliseconds(500), TimeSpan.Zero), f => BinaryPrimitives.ReadUInt16BigEndian(f.Data.AsSpan(12)) == 0x88b5);

        // Every copy counted as emitted (through io_uring's batch where the ring road has it), none failed.
        var counted = ServiceTests.Stats(name);
        Assert.True(counted.GetProperty("handler_emitted").GetUInt64() >= 6, counted.ToString());
        Assert.Equal(failedBefore, counted.GetProperty("handler_emit_failed").GetUInt64());
        Assert.Contains("handlers emitted ", ServiceTests.Cli("stats", name).Stdout, StringComparison.Ordinal);
        string? metrics = null;
        Net.WaitUntil(() => (metrics = MetricsTests.Scrape(lab.A, "127.0.0.1:9474")) is { } t && MetricsTests.Value(t, "virtnet_handler_emitted_total", "result=\"sent\"") >= 6, FailFast, () => metrics ?? "no answer");
        Assert.Equal(failedBefore, MetricsTests.Value(metrics!, "virtnet_handler_emitted_total", "result=\"failed\""));

        // The mirror port down: its copies fail and are counted so, and the first device works on.
        Net.Ip(lab.A, "link", "set", "mon1", "down");
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
        Net.WaitUntil(() => ServiceTests.Stats(name).GetProperty("handler_emit_failed").GetUInt64() >= failedBefore + 4, FailFast, () => ServiceTests.Stats(name).ToString());

        var shown = ServiceTests.Shown(lab.A.Name).Single();
        var extra = Assert.Single(shown.GetProperty("extra_devices").EnumerateArray());
        Assert.Equal(2, extra.GetProperty("port").GetInt32());
        Assert.Equal("mon1", extra.GetProperty("name").GetString());
        Assert.False(binding.HasExited, binding.Describe());

        // Both devices go with the binding.
        binding.Signal(TestLibc.SIGTERM);
        Assert.True(binding.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, binding.ExitCode);
        Assert.False(Net.Exists(lab.A, "mon1"));
    }

    /// <summary>An ICMP echo of <paramref name="type"/> from <paramref name="from"/> to <paramref name="to"/>.</summary>
    private static bool IsEcho(PacketSocket.Captured c, byte type, string from, string to)
        => c.Data.Length > 34 && BinaryPrimitives.ReadUInt16BigEndian(c.Data.AsSpan(12)) == 0x0800 && c.Data[23] == 1 && c.Data[34] == type
            && new IPAddress(c.Data.AsSpan(26, 4)).ToString() == from && new IPAddress(c.Data.AsSpan(30, 4)).ToString() == to;
}
