// virtnet run --config: several bindings in one process from a TOML file, re-read on SIGHUP. A reload adds the new
// entries, removes the gone ones and re-creates the changed ones, while an unchanged binding forwards on without
// losing a frame (a 20/s ping through it across the reload); an invalid file is refused before anything is made,
// and an invalid reload changes nothing. systemd hears READY=1, RELOADING=1, READY=1 and STOPPING=1.
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class RunConfigTests(ITestOutputHelper output)
{
    private const int X = 61;
    private const string KeptMac = "02:00:00:00:61:01";
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    private static string Binding(string name, string datapath, string? mac = null)
        => $"[[binding]]\nreal = \"{Lab.Real}\"\nname = \"{name}\"\nmode = \"bridge\"\ndatapath = \"{datapath}\"\n{(mac is null ? "" : $"mac = \"{mac}\"\n")}\n";

    [SkippableFact]
    public void Run_ReloadAddsRemovesRecreates_TheKeptBindingLosesNoFrame()
    {
        Root.Require();
        using var lab = Lab.Create("rcfg", X, output);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-{Guid.NewGuid():N}.toml");
        string notifyPath = Path.Combine(Path.GetTempPath(), $"virtnet-notify-{Guid.NewGuid():N}.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        notify.ReceiveTimeout = 30_000;
        try
        {
            File.WriteAllText(file, "# two bindings\n" + Binding("rk0", "kernel", KeptMac) + Binding("rg0", "user"));
            using var run = VirtnetProcess.StartWrapped(lab.A, ["env", $"NOTIFY_SOCKET={notifyPath}"], ["run", "--config", file]);
            run.WaitForReady();
            Net.WaitUntil(() => run.Stdout.Contains("rg0 ready", StringComparison.Ordinal), FailFast, run.Describe);
            var ready = Receive(notify);
            Assert.Contains("READY=1", ready);
            Assert.Contains("STATUS=2 bindings: rk0<->va, rg0<->va", ready);
            Assert.Equal(["rg0", "rk0"], Names(lab));
            string keptSince = Since(lab, "rk0");

            Net.Ip(lab.A, "link", "set", "rk0", "up");
            Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", "rk0");
            Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);

            // 20 echoes a second for 4 s through rk0; the reload lands in the middle.
            var ping = Task.Run(() => Net.Ping(lab.B, lab.B4, lab.A4, count: 80, interval: 0.05));
            Thread.Sleep(1000);
            File.WriteAllText(file, Binding("rk0", "kernel", KeptMac) + Binding("rn0", "user", "02:00:00:00:61:03"));
            run.Signal(1);
            Net.WaitUntil(() => run.Stderr.Contains("reloaded", StringComparison.Ordinal), FailFast, run.Describe);
            var result = ping.Result;
            output.WriteLine(result.Stdout);
            Assert.Contains("80 packets transmitted, 80 received", result.Stdout, StringComparison.Ordinal);
            Assert.Contains($"reloaded {file}: 1 added, 1 removed, 0 re-created, 1 unchanged", run.Stderr, StringComparison.Ordinal);
            Assert.Equal(["rk0", "rn0"], Names(lab));
            Assert.Equal(keptSince, Since(lab, "rk0"));
            Assert.False(Net.Exists(lab.A, "rg0"));
            Assert.Contains("RELOADING=1", Receive(notify));
            Assert.Contains("READY=1", Receive(notify));

            // A changed entry is made again, with its new settings.
            File.WriteAllText(file, Binding("rk0", "kernel", KeptMac) + Binding("rn0", "user", "02:00:00:00:61:04"));
            run.Signal(1);
            Net.WaitUntil(() => run.Stderr.Contains("1 re-created", StringComparison.Ordinal), FailFast, run.Describe);
            Assert.Equal("02:00:00:00:61:04", Net.Mac(lab.A, "rn0"));
            Assert.Equal(keptSince, Since(lab, "rk0"));

            // An invalid file changes nothing, and says why in one line with the file, the line and the key.
            File.WriteAllText(file, Binding("rk0", "kernel", KeptMac) + "[[binding]]\nreal = \"va\"\nname = \"rx0\"\nvlan = \"100\"\n");
            run.Signal(1);
            Net.WaitUntil(() => run.Stderr.Contains("nothing was changed", StringComparison.Ordinal), FailFast, run.Describe);
            string refusal = run.Stderr.Split('\n').Single(l => l.Contains("nothing was changed", StringComparison.Ordinal));
            Assert.Contains($"{file}:11: vlan = \"100\" in binding 2: vlan must be a number", refusal, StringComparison.Ordinal);
            Assert.Contains("vlan", refusal, StringComparison.Ordinal);
            Assert.Equal(["rk0", "rn0"], Names(lab));
            Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);

            run.Signal(15);
            Assert.True(run.WaitForExit(FailFast), run.Describe());
            Assert.Equal(0, run.ExitCode);
            Assert.Contains("STOPPING=1", Drain(notify));
            Assert.DoesNotContain(Net.LinkNames(lab.A), n => n.StartsWith('r') || n.StartsWith("vn", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(file);
            File.Delete(notifyPath);
        }
    }

    [SkippableFact]
    public void Run_InvalidFile_RefusedBeforeAnythingIsMade()
    {
        Root.Require();
        using var lab = Lab.Create("rbad", X, output);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-{Guid.NewGuid():N}.toml");
        try
        {
            File.WriteAllText(file, Binding("rb0", "kernel") + "[[binding]]\nreal = \"va\"\nname = \"rb1\"\nmdoe = \"bridge\"\n");
            var before = Net.LinkNames(lab.A);
            var r = VirtnetProcess.RunToExit(lab.A, FailFast, "run", "--config", file);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal($"virtnet: {file}:10: mdoe = \"bridge\" in binding 2: unknown key mdoe; did you mean mode?", r.Stderr.Trim());
            Assert.Equal(before, Net.LinkNames(lab.A));
            Assert.Equal("", r.Stdout);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [SkippableFact]
    public void Run_ABindingThatCannotBeMade_UndoesTheOnesBeforeIt()
    {
        Root.Require();
        using var lab = Lab.Create("rund", X, output);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-{Guid.NewGuid():N}.toml");
        try
        {
            File.WriteAllText(file, Binding("ru0", "kernel") + "[[binding]]\nreal = \"runosuch0\"\nname = \"ru1\"\n");
            var before = Net.LinkNames(lab.A);
            var r = VirtnetProcess.RunToExit(lab.A, FailFast, "run", "--config", file);
            Assert.Equal(1, r.ExitCode);
            Assert.StartsWith($"virtnet: {file}:7: runosuch0: no such device", r.Stderr.Trim(), StringComparison.Ordinal);
            Assert.Contains("ru0 ready", r.Stdout, StringComparison.Ordinal);
            Assert.Contains("ru0 stopped", r.Stdout, StringComparison.Ordinal);
            Assert.Equal(before, Net.LinkNames(lab.A));
            Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static List<string> Names(Lab lab) => [.. ServiceTests.Shown(lab.A.Name).Select(b => b.GetProperty("name").GetString()!).Order(StringComparer.Ordinal)];

    private static string Since(Lab lab, string name)
        => ServiceTests.Shown(lab.A.Name).Single(b => b.GetProperty("name").GetString() == name).GetProperty("since").GetString()!;

    private static string Receive(Socket socket)
    {
        var buffer = new byte[4096];
        int n = socket.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>Every datagram still queued, joined.</summary>
    private static string Drain(Socket socket)
    {
        var all = new StringBuilder();
        socket.ReceiveTimeout = 2000;
        try
        {
            while (true)
            {
                all.Append(Receive(socket)).Append('\n');
            }
        }
        catch (SocketException)
        {
        }

        return all.ToString();
    }
}
