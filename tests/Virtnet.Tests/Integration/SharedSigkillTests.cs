// A killed binding on a shared real device is swept within a second, and its siblings lose nothing.
using System.Diagnostics;
using System.Text.RegularExpressions;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Virtnet.Tests.Integration;

/// <summary>
/// SharedTests' timed SIGKILL sweep (1 s), run alone: another class's namespace churn (net namespace teardown holds
/// the RTNL lock) once held the swept peer's deletion to 1192 ms in CI.
/// </summary>
[Collection(nameof(CleanupTests))]
public class SharedSigkillTests(ITestOutputHelper output)
{
    private static string Ip(int x, int host) => $"10.200.{x}.{host}";

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Sigkill_OfOneBinding_IsSweptWithinASecond_SiblingsLoseNothing_LastStopLeavesNothing(string datapath)
    {
        Root.Require();
        const int X = 46;
        const string Mac1 = "02:00:00:00:46:11";
        using var c = new TestNetns($"shkc{datapath[0]}");
        using var d = new TestNetns($"shkd{datapath[0]}");
        using var lab = Lab.Create($"shk{datapath[0]}", X, output);
        var before = Net.LinkNames(lab.A);
        var v1 = Shared.Bind(lab, datapath, "v1", "bridge", c, Ip(X, 11), "--mac", Mac1);
        var v2 = Shared.Bind(lab, datapath, "v2", "bridge", d, Ip(X, 12));
        Net.AssertPing(lab.B, lab.B4, v1.Address!, count: 2);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 2);
        Net.AssertPing(c, v1.Address!, v2.Address!, count: 2);
        string? peer1 = v1.Peer;
        string? peer2 = v2.Peer;
        if (datapath == "kernel")
        {
            Assert.True(peer1 is not null && Net.Exists(lab.A, peer1), $"v1's peer {peer1} is not in A: {string.Join(' ', Net.LinkNames(lab.A))}");
        }

        // 300 echoes to v2 at 10 ms; v1 is killed a second in.
        RunResult? flood = null;
        var pinger = new Thread(() => flood = lab.B.Try(TimeSpan.FromSeconds(30), "ping", "-n", "-q", "-i", "0.01", "-c", "300", "-W", "1", "-I", lab.B4, v2.Address!))
        { IsBackground = true, Name = "ping v2" };
        pinger.Start();
        Thread.Sleep(1000);
        v1.Process.Signal(TestLibc.SIGKILL);
        var sinceKill = Stopwatch.StartNew();
        Assert.True(v1.Process.WaitForExit(TimeSpan.FromSeconds(5)), "v1 survived SIGKILL?");
        if (peer1 is not null)
        {
            var gone = Net.WaitUntil(() => !Net.Exists(lab.A, peer1), TimeSpan.FromSeconds(1) - sinceKill.Elapsed,
                () => $"{peer1} is still in A {sinceKill.ElapsedMilliseconds} ms after v1's SIGKILL: {string.Join(' ', Net.LinkNames(lab.A))}");
            output.WriteLine($"{peer1} gone {sinceKill.ElapsedMilliseconds} ms after the SIGKILL ({gone.TotalMilliseconds:F0} ms of waiting)");
            Assert.Equal(["lo"], Net.LinkNames(c));
            Assert.True(Net.Exists(lab.A, peer2!), $"v2's peer {peer2} went too: {string.Join(' ', Net.LinkNames(lab.A))}");
        }

        Assert.True(pinger.Join(TimeSpan.FromSeconds(30)), "the ping to v2 did not end");
        output.WriteLine($"ping to v2 across v1's SIGKILL: {flood!.Stdout.Trim()}");
        var (sent, received) = Shared.PingTotals(flood.Stdout);
        Assert.True(flood.ExitCode == 0 && sent == 300 && received == 300, $"v2 lost echoes while v1 was killed and swept: {flood.All}");
        Assert.False(v2.Process.HasExited, v2.Process.Describe());

        // v1's key is free: a new binding takes its MAC (no clash with the dead one), and works.
        var v3 = Shared.Bind(lab, datapath, "v3", "bridge", c, Ip(X, 13), "--mac", Mac1);
        Net.AssertPing(lab.B, lab.B4, v3.Address!, count: 2);
        Net.AssertPing(c, v3.Address!, v2.Address!, count: 2);
        Net.AssertPing(lab.B, lab.B4, v2.Address!, count: 2);

        v2.Stop();
        v3.Stop();
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.Equal(["lo"], Net.LinkNames(c));
        Assert.Equal(["lo"], Net.LinkNames(d));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

}
