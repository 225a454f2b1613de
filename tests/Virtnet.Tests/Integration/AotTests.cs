// The one binary: the Native AOT build (.ci/run publishes it to .build/aot/virtnet, as the README says) runs
// without the .NET runtime and does what the JIT build does: its help, a filter, a binding on each datapath
// that show sees and detach stops, and run, whose privilege broker is the same binary started again.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class AotTests(ITestOutputHelper output)
{
    private const int X = 62;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>Where .ci/run publishes it (VIRTNET_AOT moves it).</summary>
    private static string Binary => Environment.GetEnvironmentVariable("VIRTNET_AOT") ?? Path.Combine(Repo.Root, ".build", "aot", "virtnet");

    private static void RequireBinary()
    {
        Root.Require();
        Skip.If(!File.Exists(Binary), $"no Native AOT build at {Binary}: dotnet publish src/Virtnet.Cli -c Release -r linux-x64 -p:PublishAot=true -o .build/aot (.ci/run does)");
    }

    [SkippableFact]
    public void Aot_IsNativeAndAnswersWithoutTheRuntime()
    {
        RequireBinary();
        // An ELF executable, not an apphost that loads virtnet.dll: nothing managed next to it is needed.
        var head = new byte[4];
        using (var f = File.OpenRead(Binary))
        {
            f.ReadExactly(head);
        }

        Assert.Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }, head);
        var r = Run.Command(FailFast, "env", ["-i", "PATH=/usr/bin:/bin", Binary, "filter", "--explain", "udp port 53"]);
        Assert.True(r.ExitCode == 0, r.All);
        Assert.StartsWith("filter: udp port 53", r.Stdout, StringComparison.Ordinal);
        var usage = Run.Command(FailFast, Binary, "stats");
        Assert.Equal(2, usage.ExitCode);

        // It cannot load handler assemblies, and says so before anything is made.
        var handler = Run.Command(FailFast, Binary, "attach", "virtnet-no-such0", "--handler", "/nonexistent/h.dll");
        Assert.Equal(1, handler.ExitCode);
        Assert.Equal("virtnet: this virtnet is a Native AOT build, which cannot load handler assemblies; run the JIT build (./virtnet, or dotnet virtnet.dll) to use --handler", handler.Stderr.Trim());
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Aot_AttachShowDetach(string datapath)
    {
        RequireBinary();
        using var lab = Lab.Create($"aot{datapath[0]}", X, output);
        using var p = VirtnetProcess.StartCommand(lab.A, Binary, ["attach", Lab.Real, "--datapath", datapath, "--name", "aot0"]);
        p.WaitForReady();
        lab.AddressVirtual("aot0");
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
        var shown = Assert.Single(ServiceTests.Shown(lab.A.Name));
        Assert.Equal(p.Pid, shown.GetProperty("pid").GetInt32());
        Assert.Equal(0, Run.Command(FailFast, Binary, "detach", $"{lab.A.Name}/aot0").ExitCode);
        Assert.True(p.WaitForExit(FailFast), p.Describe());
        Assert.Equal(0, p.ExitCode);
        Assert.False(Net.Exists(lab.A, "aot0"));
    }

    [SkippableFact]
    public void Aot_Run_MakesANetnsBindingThroughItsBroker()
    {
        RequireBinary();
        using var c = new TestNetns("aotc");
        using var lab = Lab.Create("aotr", X, output);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-{Guid.NewGuid():N}.toml");
        try
        {
            File.WriteAllText(file, $"[[binding]]\nreal = \"{Lab.Real}\"\nname = \"aot1\"\nnetns = \"{c.Name}\"\n");
            using var p = VirtnetProcess.StartCommand(lab.A, Binary, ["run", "--config", file]);
            p.WaitForReady();
            Net.Ip(c, "link", "set", "aot1", "up");
            Net.Ip(c, "addr", "add", $"{lab.A4}/24", "dev", "aot1");
            Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
            p.Signal(15);
            Assert.True(p.WaitForExit(FailFast), p.Describe());
            Assert.Equal(0, p.ExitCode);
            Assert.False(Net.Exists(c, "aot1"));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
