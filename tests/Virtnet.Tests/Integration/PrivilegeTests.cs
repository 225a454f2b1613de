// Least privilege, end to end: by its ready line a binding keeps only what it still needs, in every thread of the
// process (CAP_NET_ADMIN alone); it still follows the real device (MTU, MAC, name) and undoes everything on SIGTERM.
// run keeps what making bindings on reload needs but CAP_SYS_ADMIN, which only its privilege broker keeps.
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class PrivilegeTests(ITestOutputHelper output)
{
    private const int X = 63;
    private static readonly TimeSpan FailFast = TimeSpan.FromSeconds(30);

    /// <summary>Every thread's sets, from /proc/PID/task/*/status; fails naming a thread beyond <paramref name="keep"/>.</summary>
    private static int AssertEveryThreadWithin(int pid, ulong keep)
    {
        int threads = 0;
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            string status;
            try
            {
                status = File.ReadAllText(Path.Combine(task, "status"));
            }
            catch (IOException)
            {
                continue; // a thread that ended meanwhile
            }

            var t = Capabilities.ParseStatus(int.Parse(Path.GetFileName(task), System.Globalization.CultureInfo.InvariantCulture), status);
            string what = $"thread {t.Tid} ({t.Name}): eff {Capabilities.Describe(t.Sets.Effective)}, prm {Capabilities.Describe(t.Sets.Permitted)}, bnd {Capabilities.Describe(t.Sets.Bounding)}";
            Assert.True(t.Sets.Effective == keep && t.Sets.Permitted == keep, what);
            Assert.True(t.Sets.Bounding == keep, what);
            Assert.True(t.Sets.Inheritable == 0 && t.Sets.Ambient == 0, what);
            threads++;
        }

        return threads;
    }

    [SkippableTheory]
    [InlineData("kernel", false)]
    [InlineData("user", false)]
    [InlineData("kernel", true)]
    [InlineData("user", true)]
    public void Attach_AfterReady_KeepsOnlyWhatItNeeds_AndStillFollowsAndCleansUp(string datapath, bool netns)
    {
        Root.Require();
        using var c = netns ? new TestNetns($"pvc{datapath[0]}") : null;
        using var lab = Lab.Create($"pv{datapath[0]}{(netns ? "n" : "")}", X, output);
        var before = Net.LinkNames(lab.A);
        var p = c is null ? lab.Attach(datapath) : lab.Attach(datapath, "--netns", c.Name);
        var where = c ?? lab.A;

        // CAP_NET_ADMIN alone, --netns too: the device there is reached by nsid, without setns.
        ulong keep = Capabilities.Mask(Capabilities.CAP_NET_ADMIN);

        int threads = AssertEveryThreadWithin(p.Pid, keep);
        output.WriteLine($"{threads} threads, each with {Capabilities.Describe(keep)} only");
        Assert.True(threads >= 4, $"only {threads} threads read");

        // Still follows the real device, and traffic flows.
        Net.Ip(lab.A, "link", "set", Lab.Real, "mtu", "1400");
        Net.WaitUntil(() => Net.Mtu(where, Lab.Virtual) == 1400, Net.FollowDeadline, p.Describe);
        Net.Ip(where, "addr", "add", $"{lab.A4}/24", "dev", Lab.Virtual);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);

        // The MAC (inherited) and the alias follow too: in another namespace by nsid, on the kernel datapath's
        // --netns with the classify program's map updated in place.
        const string NewMac = "02:00:00:00:63:09";
        Net.Ip(lab.A, "link", "set", Lab.Real, "address", NewMac);
        Net.WaitUntil(() => Net.Mac(where, Lab.Virtual) == NewMac, Net.FollowDeadline, p.Describe);
        Net.Ip(lab.B, "neigh", "flush", "dev", Lab.Peer);
        Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
        Net.Ip(lab.A, "link", "set", Lab.Real, "name", "pvren0");
        Net.WaitUntil(() => Net.LinkText(where, Lab.Virtual).Contains("bound to pvren0", StringComparison.Ordinal), Net.FollowDeadline, p.Describe);
        Net.Ip(lab.A, "link", "set", "pvren0", "name", Lab.Real);
        Assert.False(p.HasExited, p.Describe());

        // And undoes everything with what it kept.
        p.Signal(15);
        Assert.True(p.WaitForExit(FailFast), p.Describe());
        Assert.Equal(0, p.ExitCode);
        Assert.Equal(before, Net.LinkNames(lab.A));
        Assert.False(Net.Exists(where, Lab.Virtual));
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
    }

    [SkippableFact]
    public void Run_KeepsNoSysAdmin_ItsBrokerMakesWhatNeedsIt_OnReloadToo()
    {
        Root.Require();
        using var c = new TestNetns("pvrc");
        using var lab = Lab.Create("pvrun", X, output);
        string file = Path.Combine(Path.GetTempPath(), $"virtnet-{Guid.NewGuid():N}.toml");
        try
        {
            File.WriteAllText(file, $"[[binding]]\nreal = \"{Lab.Real}\"\nname = \"pvr0\"\nmode = \"bridge\"\nmac = \"02:00:00:00:63:22\"\n");
            using var run = VirtnetProcess.Start(lab.A, "run", "--config", file);
            run.WaitForReady();
            ulong runKeeps = Capabilities.Mask(Capabilities.CAP_NET_ADMIN, Capabilities.CAP_NET_RAW, Capabilities.CAP_BPF);
            int threads = AssertEveryThreadWithin(run.Pid, runKeeps);
            output.WriteLine($"run: {threads} threads, each with {Capabilities.Describe(runKeeps)} only");

            // Its one child, the broker, keeps CAP_SYS_ADMIN, and only with what tcx links need.
            int broker = Children(run.Pid).Single();
            Assert.Contains("__broker", File.ReadAllText($"/proc/{broker}/cmdline"), StringComparison.Ordinal);
            AssertEveryThreadWithin(broker, Capabilities.Mask(Capabilities.CAP_SYS_ADMIN, Capabilities.CAP_NET_ADMIN, Capabilities.CAP_BPF));

            // A reload makes what needed CAP_SYS_ADMIN before: a kernel-datapath binding in another namespace (a
            // netlink socket and a tcx link made inside it) on a real device shared with another process's binding
            // (its maps and links opened by id), and a user-datapath binding there too.
            lab.Attach("kernel", "--name", "pvsib", "--mode", "bridge", "--mac", "02:00:00:00:63:21");
            File.WriteAllText(file, $"""
                [[binding]]
                real = "{Lab.Real}"
                name = "pvr0"
                netns = "{c.Name}"
                mode = "bridge"
                mac = "02:00:00:00:63:22"

                [[binding]]
                real = "{Lab.Real}"
                name = "pvr1"
                netns = "{c.Name}"
                datapath = "user"
                mode = "bridge"
                mac = "02:00:00:00:63:23"
                """);
            run.Signal(1);
            Net.WaitUntil(() => run.Stderr.Contains("2 added, 1 removed, 0 re-created", StringComparison.Ordinal), FailFast, run.Describe);
            AssertEveryThreadWithin(run.Pid, runKeeps);
            Net.Ip(c, "link", "set", "pvr0", "up");
            Net.Ip(c, "addr", "add", $"{lab.A4}/24", "dev", "pvr0");
            Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);
            Net.Ip(c, "addr", "flush", "dev", "pvr0");
            Net.Ip(c, "link", "set", "pvr1", "up");
            Net.Ip(c, "addr", "add", $"{lab.A4}/24", "dev", "pvr1");
            Net.Ip(lab.B, "neigh", "flush", "dev", Lab.Peer);
            Net.AssertPing(lab.B, lab.B4, lab.A4, count: 2);

            // The broker ends with run.
            run.Signal(15);
            Assert.True(run.WaitForExit(FailFast), run.Describe());
            Assert.Equal(0, run.ExitCode);
            Net.WaitUntil(() => !Directory.Exists($"/proc/{broker}") || File.ReadAllText($"/proc/{broker}/stat").Contains(") Z ", StringComparison.Ordinal), FailFast, () => $"broker {broker} still runs");
            Assert.False(Net.Exists(c, "pvr0") || Net.Exists(c, "pvr1"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static List<int> Children(int pid)
        => Directory.EnumerateDirectories($"/proc/{pid}/task")
            .SelectMany(t => File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse)
            .ToList();
}
