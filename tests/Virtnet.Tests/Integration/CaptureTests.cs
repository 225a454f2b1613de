// virtnet capture, from another shell, on both datapaths: every capture point read back by tshark (frame counts
// and directions), -c, SIGINT mid-capture, -w - to a pipe, --filter, a reader too slow for a TCP stream (the binding
// forwards on, the captures it lost counted), the drop point (each lost frame with why as its comment, as many as
// stats counts), and the errors that must leave the binding alone.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class CaptureTests(ITestOutputHelper output)
{
    private const int X = 64;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>One frame as tshark reads it: the capture point (interface name), sent or received, ICMP type, comment.</summary>
    internal sealed record Read(string Point, bool Sent, int? IcmpType, string Comment);

    internal static List<Read> Tshark(string file)
    {
        var r = Run.Command(TimeSpan.FromSeconds(60), "tshark", "-r", file, "-T", "fields", "-E", "separator=/t", "-e", "frame.interface_name", "-e", "frame.p2p_dir", "-e", "icmp.type", "-e", "frame.comment");
        Assert.True(r.ExitCode == 0, $"tshark -r {file}: {r.All}");
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('\t'))
            .Select(f => new Read(f[0], f[1] == "0", f[2].Length > 0 ? int.Parse(f[2].Split(',')[0], System.Globalization.CultureInfo.InvariantCulture) : null, f.Length > 3 ? f[3] : ""))
            .ToList();
    }

    /// <summary>`virtnet capture ARGS` in the background, from another shell in the lab.s namespace.</summary>
    private static VirtnetProcess StartCapture(TestNetns anyNs, params string[] args)
        => VirtnetProcess.StartArgv(anyNs, ["dotnet", VirtnetProcess.Dll, "capture", .. args]);

    private static void WaitForCapturing(VirtnetProcess capture)
    {
        var deadline = DateTime.UtcNow + FailFast;
        while (!capture.Stderr.Contains("capturing", StringComparison.Ordinal))
        {
            Assert.False(capture.HasExited, capture.Describe());
            Assert.True(DateTime.UtcNow < deadline, capture.Describe());
            Thread.Sleep(50);
        }
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void EveryPoint_ReadBackByTshark_StoppedBySigint(string datapath)
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/tshark"), "tshark is not installed (.ci/run installs it)");
        char d = datapath[0];
        using var lab = Lab.Create($"cp{d}", X, output);
        lab.Up(datapath);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-capture-{Guid.NewGuid():N}.pcapng");
        try
        {
            Net.AssertPing(lab.A, lab.A4, lab.B4, count: 1); // the neighbours are known: the capture sees ICMP alone
            using var capture = StartCapture(lab.A, $"{lab.A.Name}/{Lab.Virtual}", "-w", file, "--point", "wire-in,virtual-in,virtual-out,wire-out", "--filter", "icmp");
            WaitForCapturing(capture);
            Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3);
            capture.Signal(2);
            Assert.True(capture.WaitForExit(FailFast), capture.Describe());
            Assert.True(capture.ExitCode == 0, capture.Describe());
            Assert.True(capture.Stderr.Contains("12 frames captured (wire-in 3, virtual-in 3, virtual-out 3, wire-out 3)", StringComparison.Ordinal), capture.Describe());

            // Requests leave the virtual device and then the real one; replies arrive on the real one, then the virtual.
            var frames = Tshark(file);
            Assert.Equal(12, frames.Count);
            foreach (var (point, sent, type) in new[] { ("virtual-out", true, 8), ("wire-out", true, 8), ("wire-in", false, 0), ("virtual-in", false, 0) })
            {
                var at = frames.Where(f => f.Point == point).ToList();
                Assert.True(at.Count == 3, $"{point}: {string.Join("; ", frames)}");
                Assert.All(at, f => Assert.Equal((sent, (int?)type), (f.Sent, f.IcmpType)));
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Count_DefaultPoints_ToStandardOutput(string datapath)
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/tshark"), "tshark is not installed (.ci/run installs it)");
        char d = datapath[0];
        using var lab = Lab.Create($"cc{d}", X, output);
        lab.Up(datapath);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-capture-{Guid.NewGuid():N}.pcapng");
        try
        {
            Net.AssertPing(lab.A, lab.A4, lab.B4, count: 1);

            // -w - into a pipe; -c 4 ends it by itself with a whole file.
            using var capture = VirtnetProcess.StartArgv(lab.A, ["sh", "-c", $"dotnet {VirtnetProcess.Dll} capture {lab.A.Name}/{Lab.Virtual} -w - -c 4 --filter icmp > {file}"]);
            WaitForCapturing(capture);
            Net.AssertPing(lab.A, lab.A4, lab.B4, count: 3);
            Assert.True(capture.WaitForExit(FailFast), capture.Describe());
            Assert.True(capture.ExitCode == 0, capture.Describe());
            Assert.Contains("4 frames captured (virtual-in 2, virtual-out 2)", capture.Stderr, StringComparison.Ordinal);
            var frames = Tshark(file);
            Assert.Equal(2, frames.Count(f => f.Point == "virtual-out" && f.Sent && f.IcmpType == 8));
            Assert.Equal(2, frames.Count(f => f.Point == "virtual-in" && !f.Sent && f.IcmpType == 0));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [SkippableFact]
    public void SlowReader_BindingForwardsOn_LostCapturesCounted()
    {
        Root.Require();
        using var lab = Lab.Create("cs", X, output);
        var binding = lab.Up("kernel");

        // A TCP stream through the binding, and a capture whose reader takes nothing for 4 s: its rings fill.
        using var blast = new Traffic.Blast(lab.A, lab.A4, lab.B, lab.B4);
        Thread.Sleep(500);
        using var capture = VirtnetProcess.StartArgv(lab.A, ["sh", "-c", $"timeout -s INT 6 dotnet {VirtnetProcess.Dll} capture {lab.A.Name}/{Lab.Virtual} -w - --point wire-in,virtual-in,virtual-out,wire-out | (sleep 4; cat > /dev/null)"]);
        WaitForCapturing(capture);
        long before = blast.Received;
        Thread.Sleep(3000);
        long during = blast.Received - before;
        Assert.True(capture.WaitForExit(FailFast), capture.Describe());
        Assert.True(capture.ExitCode == 0, capture.Describe());
        output.WriteLine($"stream during the stalled capture: {during / 1048576.0:F0} MiB in 3 s; {capture.Stderr}");

        // The stream went on while nobody read the capture, and what the capture could not keep is counted.
        Assert.True(during > 10 << 20, $"only {during} bytes crossed in 3 s of a stalled capture");
        Assert.Matches(@"\d+ frames captured .*; \d+ frames not captured \(the capture could not keep up; the binding forwarded them\)", capture.Stderr);
        Assert.False(binding.HasExited, binding.Describe());
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void DropPoint_EachLostFrameWithWhy_AsManyAsCounted(string datapath)
    {
        Root.Require();
        Skip.If(!File.Exists("/usr/bin/tshark"), "tshark is not installed (.ci/run installs it)");
        char d = datapath[0];
        using var lab = Lab.Create($"cd{d}", X, output);
        lab.Up(datapath);
        string name = $"{lab.A.Name}/{Lab.Virtual}";
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-capture-{Guid.NewGuid():N}.pcapng");
        try
        {
            // Forwarded frames are not drops, though the user datapath ends some of them with a drop once its ring holds the copy.
            using (var quiet = StartCapture(lab.A, name, "-w", file, "--point", "drop", "--filter", "icmp"))
            {
                WaitForCapturing(quiet);
                Net.AssertPing(lab.B, lab.B4, lab.A4, count: 4);
                Thread.Sleep(500);
                quiet.Signal(2);
                Assert.True(quiet.WaitForExit(FailFast), quiet.Describe());
                Assert.True(quiet.Stderr.Contains("0 frames captured (drop 0)", StringComparison.Ordinal), quiet.Describe());
            }

            // The virtual device down: what arrives for it is lost, the kernel datapath's in its tcx program, the
            // user datapath's in the write to the TAP, or in the switch program when a shared one notices first.
            Net.Ip(lab.B, "neigh", "replace", lab.A4, "lladdr", Net.Mac(lab.A, Lab.Virtual), "dev", Lab.Peer);
            Net.Ip(lab.A, "link", "set", Lab.Virtual, "down");
            using var capture = StartCapture(lab.A, name, "-w", file, "--point", "drop", "--filter", "icmp");
            WaitForCapturing(capture);
            ulong before = IngressDrops(name);
            var r = Net.Ping(lab.B, lab.B4, lab.A4, count: 4);
            Assert.NotEqual(0, r.ExitCode);
            Net.WaitUntil(() => IngressDrops(name) >= before + 4, FailFast, capture.Describe);
            Thread.Sleep(500); // a perf buffer wakes its reader at a quarter full; the reader also looks every 200 ms
            capture.Signal(2);
            Assert.True(capture.WaitForExit(FailFast), capture.Describe());
            Assert.True(capture.ExitCode == 0, capture.Describe());
            Assert.True(capture.Stderr.Contains("4 frames captured (drop 4)", StringComparison.Ordinal), capture.Describe());

            var frames = Tshark(file);
            output.WriteLine(string.Join("\n", frames));
            Assert.Equal(4, frames.Count);
            Assert.All(frames, f => Assert.Equal(("drop", (int?)8), (f.Point, f.IcmpType)));
            string expected = datapath == "kernel" ? $"drop: TC_INGRESS on {Lab.Real} in " : "drop: ";
            Assert.All(frames, f => Assert.StartsWith(expected, f.Comment, StringComparison.Ordinal));
            Assert.All(frames, f => Assert.Matches(@"^drop: [A-Z_]+ on \S+ in \S+$", f.Comment));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static ulong IngressDrops(string name) => ServiceTests.Stats(name).GetProperty("ingress").GetProperty("drops").GetUInt64();

    [SkippableFact]
    public void Errors_OneSentence_BindingUndisturbed()
    {
        Root.Require();
        using var lab = Lab.Create("ce", X, output);
        var binding = lab.Up("user");
        string name = $"{lab.A.Name}/{Lab.Virtual}";
        string file = $"/tmp/virtnet-capture-{Guid.NewGuid():N}.pcapng";

        var missing = VirtnetProcess.RunToExit(lab.A, FailFast, "capture", $"{lab.A.Name}/nosuch0", "-w", file);
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal($"virtnet: {lab.A.Name}/nosuch0: no such binding; 'virtnet show' lists the bindings running on this host", missing.Stderr.Trim());

        var unwritable = VirtnetProcess.RunToExit(lab.A, FailFast, "capture", name, "-w", "/proc/virtnet-no-such-dir/x.pcapng");
        Assert.Equal(1, unwritable.ExitCode);
        Assert.Single(unwritable.Stderr.Trim().Split('\n'));
        Assert.StartsWith("virtnet: /proc/virtnet-no-such-dir/x.pcapng: cannot write the capture there", unwritable.Stderr, StringComparison.Ordinal);

        var point = VirtnetProcess.RunToExit(lab.A, FailFast, "capture", name, "-w", file, "--point", "wire-in,middle");
        Assert.Equal(2, point.ExitCode);
        Assert.Equal("virtnet: --point middle: not a capture point; give some of wire-in,virtual-in,virtual-out,wire-out,drop", point.Stderr.Trim());

        var filter = VirtnetProcess.RunToExit(lab.A, FailFast, "capture", name, "-w", file, "--filter", "udp port");
        Assert.Equal(2, filter.ExitCode);
        Assert.StartsWith("virtnet: bad filter 'udp port' at column", filter.Stderr, StringComparison.Ordinal);

        var count = VirtnetProcess.RunToExit(lab.A, FailFast, "capture", name, "-w", file, "-c", "0");
        Assert.Equal(2, count.ExitCode);

        Assert.False(File.Exists(file));
        Assert.False(binding.HasExited, binding.Describe());
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);
    }
}
