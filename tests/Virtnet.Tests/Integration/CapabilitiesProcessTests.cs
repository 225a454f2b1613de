// Least privilege after setup: Capabilities.KeepOnly leaves every thread of the process with no more than it
// keeps. Linux keeps capabilities per thread, so the checks read every thread's /proc/self/task/TID/status, not
// the main thread's alone. The whole-process drop runs in a child process (virtnet-capsprobe): done here it would
// take the test host's capabilities from every other test. The per-thread drop is tested here, on a thread of
// its own that starts no other.
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class CapabilitiesProcessTests(ITestOutputHelper output)
{
    private const int AF_PACKET = 17;

    private static string Probe => Path.Combine(AppContext.BaseDirectory, "virtnet-capsprobe.dll");

    [SkippableTheory]
    [InlineData("cap_net_admin")]
    [InlineData("cap_net_admin,cap_net_raw")]
    [InlineData("none")]
    public void KeepOnly_LeavesEveryThreadWithinTheMask(string keepText)
    {
        Root.Require();
        ulong keep = Capabilities.Parse(keepText);
        ulong had = Capabilities.Read().Permitted;
        var run = Run.Command(TimeSpan.FromSeconds(60), "dotnet", Probe, keepText);
        output.WriteLine(run.All);
        Assert.True(run.ExitCode == 0, $"the probe failed: {run.All}");
        var lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        // Every thread: the runtime's own (finalizer, thread pool, timer, socket engine, debugger, signal handling:
        // that one names itself late, so it is not looked for by name) and the probe's (blocked in poll(), in
        // Monitor.Wait, spinning); those born after the drop are checked by what they may do, below.
        var threads = lines.Where(l => l.StartsWith("thread ", StringComparison.Ordinal)).Select(l => l.Split(' ')).ToList();
        Assert.True(threads.Count >= 8, $"only {threads.Count} threads: {run.Stdout}");
        foreach (var t in threads)
        {
            ulong Hex(int i) => Convert.ToUInt64(t[i], 16);
            string who = $"thread {t[1]} ({t[2]})";
            Assert.True(Hex(3) == (keep & had), $"{who}: effective {Capabilities.Describe(Hex(3))}, want {Capabilities.Describe(keep & had)}");
            Assert.True(Hex(4) == (keep & had), $"{who}: permitted {Capabilities.Describe(Hex(4))}, want {Capabilities.Describe(keep & had)}");
            Assert.True(Hex(5) == 0, $"{who}: inheritable {Capabilities.Describe(Hex(5))}");
            Assert.True((Hex(6) & ~keep) == 0, $"{who}: bounding {Capabilities.Describe(Hex(6))}, beyond {Capabilities.Describe(keep)}");
            Assert.True(Hex(7) == 0, $"{who}: ambient {Capabilities.Describe(Hex(7))}");
        }

        foreach (string name in new[] { "probe_poll", "probe_wait", "probe_spin", ".NET_Finalizer", ".NET_Timer", ".NET_Sockets", ".NET_TP_Worker" })
        {
            Assert.True(threads.Any(t => t[2] == name), $"no thread {name} among {string.Join(", ", threads.Select(t => t[2]))}");
        }

        // What the sets say, the kernel enforces: CAP_NET_RAW decides a packet socket on every kind of thread.
        string expected = (keep & Capabilities.Mask(Capabilities.CAP_NET_RAW)) != 0 ? "OK" : "EPERM";
        foreach (string where in new[] { "poll", "wait", "after", "pool", "main" })
        {
            Assert.True(lines.Contains($"packet-socket {where} {expected}"), $"want packet-socket {where} {expected}: {run.Stdout}");
        }

        // The threads the signal interrupted went on working.
        Assert.True(lines.Contains("alive probe spin"), run.Stdout);
        Assert.True(lines.Contains("alive probe poll"), run.Stdout);
    }

    [SkippableFact]
    public void KeepOnlyInThisThread_ChangesThatThreadAlone()
    {
        Root.Require();
        ulong keep = Capabilities.Mask(Capabilities.CAP_NET_ADMIN);
        int testTid = Libc.gettid();
        var before = Capabilities.Read();
        Assert.True((before.Effective & Capabilities.Mask(Capabilities.CAP_NET_RAW)) != 0, "the test host has no CAP_NET_RAW to drop");

        CapabilitySets read = default;
        ThreadCapabilities? own = null, other = null;
        Errno packet = Errno.OK;
        Exception? failure = null;
        // Nothing on this thread may start another (it would inherit the drop): no tasks, no timers, no sockets of .NET's.
        var thread = new Thread(() =>
        {
            try
            {
                Capabilities.KeepOnlyInThisThread(keep);
                read = Capabilities.Read();
                own = Capabilities.ReadThread(Libc.gettid());
                other = Capabilities.ReadThread(testTid);
                int fd = Libc.socket(AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0);
                packet = fd < 0 ? LastError.Get() : Errno.OK;
                if (fd >= 0)
                {
                    _ = Libc.close(fd);
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        }) { Name = "caps drop test" };
        thread.Start();
        thread.Join();

        Assert.Null(failure);
        Assert.Equal(new CapabilitySets(keep, keep, 0, keep, 0), read);
        Assert.Equal(read, own!.Sets);
        Assert.Equal(Errno.EPERM, packet);

        // The rest of the process is untouched: the test's thread, seen from there and from here, and what it may do.
        Assert.Equal(before, other!.Sets);
        Assert.Equal(before, Capabilities.Read());
        int mine = Libc.socket(AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0);
        Assert.True(mine >= 0, $"a packet socket on the test's thread: {LastError.Get()}");
        _ = Libc.close(mine);
    }
}
