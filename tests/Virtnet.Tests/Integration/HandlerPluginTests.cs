// --handler PATH.dll[:TYPE] --handler-arg KEY=VALUE: a handler built as a plugin (tests/Virtnet.TestHandlers, loaded
// from its own output folder as a user's would be) runs on the user datapath, chosen for it; its drops are counted
// under its own reason in stats and captured with that reason at the drop point. Every way of getting it wrong is one
// sentence, exit 1 (2 for usage), with nothing created.
using System.Text.Json;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class HandlerPluginTests(ITestOutputHelper output)
{
    private const int X = 69;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>The plugin, where its build puts it (the tests' configuration).</summary>
    private static string Plugin
    {
        get
        {
            string configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name; // bin/<Configuration>/net10.0
            return Path.Combine(Repo.Root, "tests", "Virtnet.TestHandlers", "bin", configuration, "net10.0", "virtnet-testhandlers.dll");
        }
    }

    [SkippableFact]
    public void Handler_FromTheCli_DropsWithItsReason_CountedAndCaptured()
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/tshark"), "tshark is not installed (.ci/run installs it)");
        Assert.True(File.Exists(Plugin), $"{Plugin} was not built");
        using var lab = Lab.Create("hp", X, output);
        // A chain: a handler that takes the arguments, then one that takes none (it is made without them).
        var binding = lab.Attach("user", "--handler", $"{Plugin}:Virtnet.TestHandlers.DropPings", "--handler", $"{Plugin}:PassAll", "--handler-arg", "reason=blocked by test");
        lab.AddressVirtual();
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2); // out and back: requests go out, replies come in

        string name = $"{lab.A.Name}/{Lab.Virtual}";
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-capture-{Guid.NewGuid():N}.pcapng");
        try
        {
            using var capture = VirtnetProcess.StartArgv(lab.A, ["dotnet", VirtnetProcess.Dll, "capture", name, "-w", file, "--point", "drop", "--filter", "icmp"]);
            var deadline = DateTime.UtcNow + FailFast;
            while (!capture.Stderr.Contains("capturing", StringComparison.Ordinal))
            {
                Assert.False(capture.HasExited, capture.Describe());
                Assert.True(DateTime.UtcNow < deadline, capture.Describe());
                Thread.Sleep(50);
            }

            Assert.NotEqual(0, Net.Ping(lab.B, lab.B4, lab.A4, count: 3).ExitCode);
            Thread.Sleep(500);
            capture.Signal(2);
            Assert.True(capture.WaitForExit(FailFast), capture.Describe());
            Assert.True(capture.Stderr.Contains("3 frames captured (drop 3)", StringComparison.Ordinal), capture.Describe());
            var frames = CaptureTests.Tshark(file);
            Assert.Equal(3, frames.Count);
            Assert.All(frames, f => Assert.Equal(("drop", (int?)8, $"drop: handler (blocked by test) on {Lab.Real} in virtnet's user datapath"), (f.Point, f.IcmpType, f.Comment)));
        }
        finally
        {
            File.Delete(file);
        }

        var stats = ServiceTests.Stats(name);
        var ingress = stats.GetProperty("ingress");
        Assert.Equal("user", stats.GetProperty("datapath").GetString());
        Assert.Equal(3UL, ingress.GetProperty("drop_reasons").GetProperty("handler").GetUInt64());
        Assert.Equal(3UL, ingress.GetProperty("handler_reasons").GetProperty("blocked by test").GetUInt64());
        var text = ServiceTests.Cli("stats", name);
        Assert.Contains("dropped 3 by handlers\n", text.Stdout, StringComparison.Ordinal);
        Assert.Contains("            3 blocked by test\n", text.Stdout, StringComparison.Ordinal);
        Assert.False(binding.HasExited, binding.Describe());
    }

    [SkippableFact]
    public void BadHandlers_OneSentence_NothingCreated()
    {
        Root.Require();
        Assert.True(File.Exists(Plugin), $"{Plugin} was not built");
        using var lab = Lab.Create("hpe", X, output);
        var before = Net.LinkNames(lab.A);
        string text = Path.Combine(Path.GetTempPath(), $"virtnet-not-an-assembly-{Guid.NewGuid():N}.dll");
        File.WriteAllText(text, "not an assembly\n");
        try
        {
            void Refused(int code, string expected, params string[] args)
            {
                var r = VirtnetProcess.RunToExit(lab.A, FailFast, ["attach", Lab.Real, .. args]);
                Assert.True(r.ExitCode == code, $"{string.Join(' ', args)}: {r.All}");
                string said = r.Stderr.Trim();
                Assert.True(said.Split('\n').Length <= 2, said);
                Assert.True(said.StartsWith("virtnet: ", StringComparison.Ordinal) && said.Contains(expected, StringComparison.Ordinal), $"{string.Join(' ', args)}: {said}");
            }

            Refused(1, "/nonexistent/h.dll: no such file; give the path of a .NET assembly", "--handler", "/nonexistent/h.dll");
            Refused(1, "is not a .NET assembly", "--handler", text);
            Refused(1, "has 2 handlers (Virtnet.TestHandlers.DropPings, Virtnet.TestHandlers.PassAll); name one as", "--handler", Plugin);
            Refused(1, "has no public type Nope; its handlers: Virtnet.TestHandlers.DropPings, Virtnet.TestHandlers.PassAll", "--handler", $"{Plugin}:Nope");
            Refused(1, "Virtnet.TestHandlers.NotAHandler is not a handler", "--handler", $"{Plugin}:NotAHandler");
            Refused(1, "--handler-arg a=...: Virtnet.TestHandlers.PassAll takes no arguments", "--handler", $"{Plugin}:PassAll", "--handler-arg", "a=b");
            Refused(1, "--handler-arg a=...: none of the handlers takes arguments", "--handler", $"{Plugin}:PassAll", "--handler", $"{Plugin}:PassAll", "--handler-arg", "a=b");
            Refused(2, "--handler-arg without --handler", "--handler-arg", "a=b");
            Refused(2, "--handler-arg 'ab': give KEY=VALUE", "--handler", $"{Plugin}:PassAll", "--handler-arg", "ab");
            Refused(1, "run on the user datapath only, and this binding's is the kernel one", "--handler", $"{Plugin}:PassAll", "--datapath", "kernel");
            Refused(2, "--extra-device mon1: further devices get frames from handlers, which run on the user datapath; add --datapath user or a --handler", "--extra-device", "mon1");
            Refused(2, "--extra-device virtnet0: the binding already has a device of that name", "--datapath", "user", "--extra-device", "virtnet0");
            Refused(2, "--extra-device m1: the binding already has a device of that name", "--datapath", "user", "--extra-device", "m1", "--extra-device", "m1");
            Refused(2, "--extra-device a/b: a/b: not a valid interface name", "--datapath", "user", "--extra-device", "a/b");
            Refused(1, "lo: name already in use", "--datapath", "user", "--extra-device", "mon1", "--extra-device", "lo");
            Refused(1, "vnpump9: names starting with vnpeer, vnpump or vnring are virtnet's own", "--datapath", "user", "--extra-device", "vnpump9");
            Assert.Equal(before, Net.LinkNames(lab.A));
        }
        finally
        {
            File.Delete(text);
        }
    }
    /// <summary>
    /// A `run` reloaded again and again keeps one copy of a plugin: each reload loads the handlers of the file to
    /// compare, and drops them for an unchanged binding; a rebuilt plugin re-creates its binding, and the old copy
    /// goes; a handler that is IDisposable is disposed first. Counted as the process's loaded assemblies (the
    /// runtime's dotnet.assembly.count, scraped from metrics).
    /// </summary>
    [SkippableFact]
    public void Run_ReloadedAgainAndAgain_KeepsOneCopyOfAPlugin()
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/curl"), "curl is not installed (.ci/run installs it)");
        using var lab = Lab.Create("hpu", X, output);
        string dir = Path.Combine(Path.GetTempPath(), $"virtnet-plugin-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        // A handler that holds a Meter (the metrics endpoint listens to it): disposed, then unloaded.
        string plugin = Path.Combine(dir, "ProtocolCounter.dll");
        File.Copy(SamplesTests.Sample("ProtocolCounter"), plugin);
        string file = Path.Combine(dir, "run.toml");
        const string Metrics = "127.0.0.1:9473";
        File.WriteAllText(file, $"metrics = \"{Metrics}\"\n[[binding]]\nreal = \"{Lab.Real}\"\nname = \"hu0\"\nhandler = [\"{plugin}\"]\n");
        try
        {
            using var run = VirtnetProcess.Start(lab.A, "run", "--config", file);
            run.WaitForReady();
            double Assemblies()
            {
                string? text = null;
                Net.WaitUntil(() => (text = MetricsTests.Scrape(lab.A, Metrics)) is not null, FailFast, () => "no answer");
                return MetricsTests.Value(text!, "dotnet_assembly_count") ?? throw new InvalidOperationException($"no dotnet_assembly_count in {text}");
            }

            int reloads = 0;
            void Reload(string expected)
            {
                reloads++;
                run.Signal(1);
                Net.WaitUntil(() => CountOf(run.Stderr, "reloaded ") == reloads, FailFast, run.Describe);
                Assert.Contains(expected, run.Stderr.Split('\n').Last(l => l.Contains("reloaded ", StringComparison.Ordinal)), StringComparison.Ordinal);
            }

            // One reload first: whatever a reload itself loads is loaded once and for all.
            Reload("0 re-created, 1 unchanged");
            double settled = Assemblies();
            for (int i = 0; i < 5; i++)
            {
                Reload("0 re-created, 1 unchanged");
            }

            Assert.Equal(settled, Assemblies());

            // Rebuilt (a new write time): its binding is re-created with the new copy, and the old one goes.
            File.SetLastWriteTimeUtc(plugin, DateTime.UtcNow.AddSeconds(5));
            Reload("1 re-created, 0 unchanged");
            Assert.Equal(settled, Assemblies());
            Assert.False(run.HasExited, run.Describe());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal))
        {
            n++;
        }

        return n;
    }
}
