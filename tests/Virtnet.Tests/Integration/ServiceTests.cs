// The service side of virtnet, seen from other shells: show, stats and detach reach every virtnet process on the
// host through its control socket (/run/virtnet/PID.sock), across processes and namespaces; the socket's
// permissions, a non-root caller, a dead process's socket; systemd's notify protocol on a fake NOTIFY_SOCKET; and
// journald priorities. Other tests' bindings run beside these, so every check picks ours out by namespace.
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class ServiceTests(ITestOutputHelper output)
{
    private const int X = 60;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>`dotnet virtnet.dll ARGS` from the test's own (the host's) namespace, as another shell would.</summary>
    internal static RunResult Cli(params string[] args) => Run.Command(TimeSpan.FromSeconds(60), "dotnet", [VirtnetProcess.Dll, .. args]);

    /// <summary>stats -j of the binding <paramref name="name"/> (NAME or NETNS/NAME), asserted to succeed.</summary>
    internal static JsonElement Stats(string name)
    {
        var r = Cli("stats", "-j", name);
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.Clone();
    }

    /// <summary>show -j's bindings in one namespace.</summary>
    internal static List<JsonElement> Shown(string netns)
    {
        var r = Cli("show", "-j");
        Assert.True(r.ExitCode == 0, r.All);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(1, doc.RootElement.GetProperty("version").GetInt32());
        return doc.RootElement.GetProperty("bindings").EnumerateArray()
            .Where(b => b.GetProperty("netns").ValueKind == JsonValueKind.String && b.GetProperty("netns").GetString() == netns)
            .Select(b => b.Clone())
            .ToList();
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void ShowStatsDetach_FromAnotherShell_AcrossNamespaces(string datapath)
    {
        Root.Require();
        char d = datapath[0];
        using var c = new TestNetns($"svc{d}");
        using var lab = Lab.Create($"sv{d}", X, output);
        var taker = lab.Up(datapath);
        var mirror = lab.Attach(datapath, "--name", "svm0", "--mirror", "ingress", "--netns", c.Name, "--filter", "icmp");
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 3);

        // show -j: every field, for both processes, in their namespaces.
        var shown = Shown(lab.A.Name);
        var t = Assert.Single(shown);
        Assert.Equal(Lab.Virtual, t.GetProperty("name").GetString());
        Assert.Equal(Lab.Real, t.GetProperty("real").GetString());
        Assert.Equal(datapath, t.GetProperty("datapath").GetString());
        Assert.Equal("passthru", t.GetProperty("mode").GetString());
        Assert.Equal(JsonValueKind.Null, t.GetProperty("mirror").ValueKind);
        Assert.Equal(Net.Mac(lab.A, Lab.Virtual), t.GetProperty("mac").GetString());
        Assert.Equal(JsonValueKind.Null, t.GetProperty("vlan").ValueKind);
        Assert.Equal(JsonValueKind.Null, t.GetProperty("filter").ValueKind);
        Assert.Equal(taker.Pid, t.GetProperty("pid").GetInt32());
        Assert.StartsWith("net:[", t.GetProperty("netns_id").GetString(), StringComparison.Ordinal);
        var since = DateTimeOffset.Parse(t.GetProperty("since").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(since, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow);
        Assert.True(t.GetProperty("ingress").GetProperty("frames").GetUInt64() >= 3, t.ToString());
        Assert.True(t.GetProperty("egress").GetProperty("frames").GetUInt64() >= 3, t.ToString());

        var m = Assert.Single(Shown(c.Name));
        Assert.Equal("svm0", m.GetProperty("name").GetString());
        Assert.Equal("mirror", m.GetProperty("mode").GetString());
        Assert.Equal("ingress", m.GetProperty("mirror").GetString());
        Assert.Equal("icmp", m.GetProperty("filter").GetString());
        Assert.Equal(mirror.Pid, m.GetProperty("pid").GetInt32());
        Assert.True(m.GetProperty("ingress").GetProperty("frames").GetUInt64() >= 3, m.ToString());

        // The human table: a header and our two lines, aligned.
        var table = Cli("show");
        Assert.Equal(0, table.ExitCode);
        var lines = table.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("NAME ", lines[0], StringComparison.Ordinal);
        var ours = lines.Where(l => l.Contains(lab.A.Name, StringComparison.Ordinal) || l.Contains(c.Name, StringComparison.Ordinal)).ToList();
        Assert.Equal(2, ours.Count);
        int realColumn = lines[0].IndexOf("REAL", StringComparison.Ordinal);
        Assert.All(ours, l => Assert.Equal(Lab.Real, l[realColumn..].Split(' ')[0]));
        Assert.Contains(ours, l => l.Contains("mirror:ingress", StringComparison.Ordinal) && l.TrimEnd().EndsWith("icmp", StringComparison.Ordinal));

        // stats: by NETNS/NAME, text and JSON, and --watch with rates over each interval.
        var stats = Cli("stats", $"{lab.A.Name}/{Lab.Virtual}");
        Assert.True(stats.ExitCode == 0, stats.All);
        Assert.Contains($"{Lab.Virtual} in {lab.A.Name}: {Lab.Real} <-> {Lab.Virtual}, {datapath} datapath, passthru, pid {taker.Pid}", stats.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"ingress +\d+ frames \d+ bytes \d+ dropped; now [\d.]+ frames/s", stats.Stdout);
        var mirrorStats = Cli("stats", "-j", $"{c.Name}/svm0");
        using (var doc = JsonDocument.Parse(mirrorStats.Stdout))
        {
            Assert.Equal("svm0", doc.RootElement.GetProperty("name").GetString());
        }

        var watch = Run.Command(TimeSpan.FromSeconds(30), "timeout", ["-s", "INT", "2.5", "dotnet", VirtnetProcess.Dll, "stats", $"{lab.A.Name}/{Lab.Virtual}", "-j", "--watch", "0.5"]);
        var samples = watch.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(samples.Length >= 2, watch.All);
        Assert.All(samples, s => JsonDocument.Parse(s).Dispose());

        // detach, from here: the binding stops cleanly and its process, left with none, exits 0.
        var detach = Cli("detach", $"{lab.A.Name}/{Lab.Virtual}");
        Assert.True(detach.ExitCode == 0, detach.All);
        Assert.StartsWith($"{Lab.Virtual} stopped: ingress ", detach.Stdout, StringComparison.Ordinal);
        Assert.True(taker.WaitForExit(FailFast), taker.Describe());
        Assert.Equal(0, taker.ExitCode);
        Assert.Contains($"{Lab.Virtual} stopped:", taker.Stdout, StringComparison.Ordinal);
        Assert.False(Net.Exists(lab.A, Lab.Virtual));
        Assert.Empty(Shown(lab.A.Name));
        Assert.False(File.Exists($"/run/virtnet/{taker.Pid}.sock"));

        // The mirror's process is untouched by that, and goes the same way.
        Assert.False(mirror.HasExited, mirror.Describe());
        Assert.Equal(0, Cli("detach", $"{c.Name}/svm0").ExitCode);
        Assert.True(mirror.WaitForExit(FailFast), mirror.Describe());
        Assert.Equal(0, mirror.ExitCode);
        Assert.False(Net.Exists(c, "svm0"));
    }

    [SkippableFact]
    public void StatsAndDetach_UnknownOrAmbiguousName_OneSentenceExit1()
    {
        Root.Require();
        using var c = new TestNetns("svamc");
        using var lab = Lab.Create("svam", X, output);
        lab.Attach("kernel", "--name", "svamb0", "--mode", "bridge");
        var second = lab.Attach("kernel", "--name", "svamb0", "--mode", "bridge", "--netns", c.Name);

        var unknown = Cli("stats", "svnothere0");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Equal("virtnet: svnothere0: no such binding; 'virtnet show' lists the bindings running on this host", unknown.Stderr.Trim());

        var ambiguous = Cli("detach", "svamb0");
        Assert.Equal(1, ambiguous.ExitCode);
        Assert.Contains("svamb0 names 2 bindings", ambiguous.Stderr, StringComparison.Ordinal);
        Assert.Contains($"{lab.A.Name}/svamb0", ambiguous.Stderr, StringComparison.Ordinal);
        Assert.Contains($"{c.Name}/svamb0", ambiguous.Stderr, StringComparison.Ordinal);
        Assert.Single(ambiguous.Stderr.Trim().Split('\n'));
        Assert.Equal(2, Shown(lab.A.Name).Count + Shown(c.Name).Count); // nothing was stopped

        Assert.Equal(0, Cli("detach", $"{c.Name}/svamb0").ExitCode);
        Assert.True(second.WaitForExit(FailFast), second.Describe());
        Assert.Single(Shown(lab.A.Name));
    }

    [SkippableFact]
    public void ControlSocket_RootOnly_AndANonRootCallerIsToldWhy()
    {
        Root.Require();
        using var lab = Lab.Create("svperm", X, output);
        var p = lab.Attach("kernel");
        string socket = $"/run/virtnet/{p.Pid}.sock";
        Assert.True(File.Exists(socket), socket);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode("/run/virtnet"));
        Assert.Equal("0 0", Run.Checked("stat", "-c", "%u %g", socket).Trim());

        Skip.If(!File.Exists("/usr/bin/setpriv"), "setpriv (util-linux) is not installed");
        foreach (var command in new[] { new[] { "show" }, ["stats", Lab.Virtual], ["detach", Lab.Virtual] })
        {
            var r = Run.Command(TimeSpan.FromSeconds(60), "setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp", "dotnet", VirtnetProcess.Dll, .. command]);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal($"virtnet: {command[0]} needs root: the control sockets in /run/virtnet are root's alone; run 'sudo virtnet {command[0]}'", r.Stderr.Trim());
        }

        Assert.False(p.HasExited, p.Describe());
    }

    [SkippableFact]
    public void DeadProcessSocket_IgnoredAndRemoved()
    {
        Root.Require();
        using var lab = Lab.Create("svdead", X, output);
        var p = lab.Attach("kernel", "--name", "svdead0");
        string socket = $"/run/virtnet/{p.Pid}.sock";
        Assert.True(File.Exists(socket));
        p.Kill();
        Assert.True(p.WaitForExit(FailFast));
        Assert.True(File.Exists(socket)); // SIGKILL: nobody removed it

        var r = Cli("show", "-j");
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("svdead0", r.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(socket), "show left the dead process's socket");
    }

    [SkippableFact]
    public void Notify_ReadyThenStopping_OnAFakeNotifySocket()
    {
        Root.Require();
        using var lab = Lab.Create("svntf", X, output);
        string path = Path.Combine(Path.GetTempPath(), $"virtnet-notify-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        try
        {
            var p = VirtnetProcess.StartWrapped(lab.A, ["env", $"NOTIFY_SOCKET={path}"], ["attach", Lab.Real, "--name", "svntf0"]);
            using (p)
            {
                p.WaitForReady();
                string ready = Receive(listener);
                Assert.Contains("READY=1", ready.Split('\n'));
                Assert.Contains("STATUS=1 binding: svntf0<->va", ready.Split('\n'));

                p.Signal(15);
                Assert.True(p.WaitForExit(FailFast), p.Describe());
                Assert.Equal(0, p.ExitCode);
                Assert.Contains("STOPPING=1", Receive(listener).Split('\n'));
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [SkippableFact]
    public void UnderJournald_LinesCarryTheirPriority()
    {
        Root.Require();
        using var lab = Lab.Create("svjrn", X, output);
        var p = VirtnetProcess.StartWrapped(lab.A, ["env", "JOURNAL_STREAM=8:12345"], ["attach", Lab.Real, "--name", "svjrn0"]);
        using (p)
        {
            p.WaitForReady();
            Assert.Equal(0, Cli("detach", $"{lab.A.Name}/svjrn0").ExitCode);
            Assert.True(p.WaitForExit(FailFast), p.Describe());
            Assert.Contains("<6>virtnet: svjrn0: detach asked on the control socket", p.Stderr, StringComparison.Ordinal);
        }

        var failed = VirtnetProcess.RunWrappedToExit(lab.A, ["env", "JOURNAL_STREAM=8:12345"], ["attach", "svnosuch0"], FailFast);
        Assert.Equal(1, failed.ExitCode);
        Assert.StartsWith("<3>virtnet: svnosuch0: no such device", failed.Stderr, StringComparison.Ordinal);
    }

    private static string Receive(Socket socket)
    {
        socket.ReceiveTimeout = 30_000;
        var buffer = new byte[4096];
        int n = socket.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }
}
