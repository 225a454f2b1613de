// --metrics: the Prometheus endpoint of attach and of run (metrics = "ADDR:PORT" at the top of its file), scraped
// with curl inside the lab's namespace before and after traffic, on both datapaths: frames and bytes per direction,
// drops by reason, the process's CPU and memory; a reload that moves the endpoint; an address in use refused with
// nothing made.
using System.Globalization;
using System.Text.RegularExpressions;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public partial class MetricsTests(ITestOutputHelper output)
{
    private const int X = 65;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>The endpoint's text, scraped from inside <paramref name="ns"/>; null when nothing answers.</summary>
    internal static string? Scrape(TestNetns ns, string address)
    {
        var r = Run.Command(TimeSpan.FromSeconds(30), "ip", "netns", "exec", ns.Name, "curl", "-sf", "--max-time", "10", $"http://{address}/metrics");
        return r.ExitCode == 0 ? r.Stdout : null;
    }

    /// <summary>The value of the series <paramref name="name"/> whose labels include every one of <paramref name="labels"/>; null if none.</summary>
    internal static double? Value(string text, string name, params string[] labels)
    {
        foreach (Match m in Series().Matches(text))
        {
            if (m.Groups["name"].Value == name && labels.All(l => m.Groups["labels"].Value.Contains(l, StringComparison.Ordinal)))
            {
                return double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    [GeneratedRegex(@"^(?<name>[a-z_]+)\{(?<labels>[^}]*)\} (?<value>[0-9.e+-]+)", RegexOptions.Multiline)]
    private static partial Regex Series();

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Attach_Endpoint_BeforeAndAfterTraffic(string datapath)
    {
        Root.Require();
        char d = datapath[0];
        using var lab = Lab.Create($"me{d}", X, output);
        lab.Up(datapath, "--metrics", "127.0.0.1:9464");
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 1);
        string binding = $"binding=\"{Lab.Virtual}\"";

        string before = Scrape(lab.A, "127.0.0.1:9464") ?? throw new Xunit.Sdk.XunitException("the endpoint did not answer");
        output.WriteLine(before);
        double inFrames = Value(before, "virtnet_frames_total", binding, "direction=\"ingress\"", "real=\"va\"") ?? -1;
        double outFrames = Value(before, "virtnet_frames_total", binding, "direction=\"egress\"") ?? -1;
        double inBytes = Value(before, "virtnet_bytes_total", binding, "direction=\"ingress\"") ?? -1;
        Assert.True(inFrames >= 1 && outFrames >= 1 && inBytes >= 64, before);
        Assert.True(Value(before, "dotnet_process_cpu_time_seconds_total", "cpu_mode=\"user\"") > 0, before);
        Assert.True(Value(before, "dotnet_process_memory_working_set_bytes") > 1 << 20, before);

        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 5);
        Thread.Sleep(400); // past the exporter's 300 ms response cache
        string after = Scrape(lab.A, "127.0.0.1:9464")!;
        Assert.True(Value(after, "virtnet_frames_total", binding, "direction=\"ingress\"") >= inFrames + 5, after);
        Assert.True(Value(after, "virtnet_frames_total", binding, "direction=\"egress\"") >= outFrames + 5, after);
        Assert.True(Value(after, "virtnet_bytes_total", binding, "direction=\"ingress\"") >= inBytes + (5 * 98), after);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Drops_ByReason(string datapath)
    {
        Root.Require();
        char d = datapath[0];
        using var lab = Lab.Create($"md{d}", X, output);

        // A mirror's device is receive-only: what it sends is dropped, and counted as such.
        lab.Attach(datapath, "--mirror", "--metrics", "127.0.0.1:9465");
        Net.Ip(lab.A, "link", "set", Lab.Virtual, "up");
        Net.Ip(lab.A, "addr", "add", $"10.200.{X}.9/24", "dev", Lab.Virtual);
        _ = Net.Ping(lab.A, $"10.200.{X}.9", lab.B4, count: 2);
        Net.WaitUntil(() => Value(Scrape(lab.A, "127.0.0.1:9465") ?? "", "virtnet_drops_total", "direction=\"egress\"", "reason=\"mirror_receive_only\"") >= 1, FailFast, () => Scrape(lab.A, "127.0.0.1:9465") ?? "no answer");
    }

    /// <summary>
    /// Scraped five times a second under a TCP stream, the user datapath's process lives on. The runtime's metrics
    /// allocate enough for full collections; before the forwarders held their pinned frame buffers in fields, such
    /// a collection freed a buffer still in use and the process died of a segmentation fault within seconds.
    /// </summary>
    [SkippableFact]
    public void ScrapedUnderATcpStream_UserDatapathLivesOn()
    {
        Root.Require();
        using var lab = Lab.Create("ms", X, output);
        var binding = lab.Up("user", "--metrics", "127.0.0.1:9466");
        using (var blast = new Traffic.Blast(lab.A, lab.A4, lab.B, lab.B4))
        {
            for (int i = 0; i < 25; i++)
            {
                Assert.True(Scrape(lab.A, "127.0.0.1:9466") is not null, binding.Describe());
                Thread.Sleep(200);
            }

            Assert.True(blast.Received > 10 << 20, $"only {blast.Received} bytes crossed");
        }

        Assert.False(binding.HasExited, binding.Describe());
        Assert.True(Value(Scrape(lab.A, "127.0.0.1:9466")!, "dotnet_gc_collections_total") > 0);
    }

    [SkippableFact]
    public void Run_MetricsInTheFile_MovedByAReload_AddressInUseRefused()
    {
        Root.Require();
        using var lab = Lab.Create("mr", X, output);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-{Guid.NewGuid():N}.toml");
        string binding = $"[[binding]]\nreal = \"{Lab.Real}\"\nname = \"mr0\"\nmode = \"bridge\"\n";
        try
        {
            File.WriteAllText(file, $"metrics = \"127.0.0.1:9470\"\n{binding}");
            using var run = VirtnetProcess.Start(lab.A, "run", "--config", file);
            run.WaitForReady();
            Assert.NotNull(Value(Scrape(lab.A, "127.0.0.1:9470") ?? "", "virtnet_frames_total", "binding=\"mr0\""));

            // An attach that wants the same address is refused before it makes anything.
            var taken = VirtnetProcess.RunToExit(lab.A, FailFast, "attach", Lab.Real, "--name", "mx0", "--mode", "bridge", "--metrics", "127.0.0.1:9470");
            Assert.Equal(1, taken.ExitCode);
            Assert.StartsWith("virtnet: --metrics 127.0.0.1:9470: cannot listen there (", taken.Stderr, StringComparison.Ordinal);
            Assert.Single(taken.Stderr.Trim().Split('\n'));
            Assert.False(Net.Exists(lab.A, "mx0"));

            // A reload moves the endpoint; the binding is untouched.
            File.WriteAllText(file, $"metrics = \"127.0.0.1:9471\"\n{binding}");
            run.Signal(1);
            Net.WaitUntil(() => run.Stderr.Contains("reloaded", StringComparison.Ordinal), FailFast, run.Describe);
            Assert.Contains("0 re-created, 1 unchanged", run.Stderr, StringComparison.Ordinal);
            Assert.NotNull(Value(Scrape(lab.A, "127.0.0.1:9471") ?? "", "virtnet_frames_total", "binding=\"mr0\""));
            Assert.Null(Scrape(lab.A, "127.0.0.1:9470"));
            run.Signal(15);
            Assert.True(run.WaitForExit(FailFast), run.Describe());
            Assert.Equal(0, run.ExitCode);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
