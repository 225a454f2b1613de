using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using Virtnet.Bpf;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Bpf;

/// <summary>Root-only: real BPF_PROG_LOAD, maps, tcx links and traffic through them, all inside test namespaces.</summary>
[Collection("Bpf kernel")]
public partial class BpfKernelTests
{
    [SkippableFact]
    public void IsSupported_ThisKernel_MatchesRelease()
    {
        Root.Require();
        Assert.Equal(Environment.OSVersion.Version >= new Version(6, 6), Tcx.IsSupported());
    }

    [SkippableFact]
    public void LoadSchedCls_RedirectProgram_HasIdAndName()
    {
        Root.Require();
        using var program = BpfProgram.LoadSchedCls("vn_t_load", Programs.Redirect(1, 0), "lo");
        Assert.True(program.Id > 0);
        Assert.Equal("vn_t_load", program.Name);
        Assert.False(program.Handle.IsInvalid);
    }

    [SkippableFact]
    public void LoadSchedCls_R0NeverSet_ThrowsWithVerifierLog()
    {
        Root.Require();
        var bad = new BpfAssembler().Exit().ToArray();
        var e = Assert.Throws<VirtnetException>(() => BpfProgram.LoadSchedCls("vn_t_bad", bad, "vn0"));
        Assert.Equal("BPF_PROG_LOAD", e.Operation);
        Assert.Equal("vn0", e.Device);
        Assert.Equal(Errno.EACCES, e.Errno);
        Assert.Contains("verifier log:", e.Message);
        Assert.Contains("R0 !read_ok", e.Message);
    }

    [SkippableFact]
    public void Create_NewMap_ReadsZero()
    {
        Root.Require();
        using var map = CounterMap.Create("vn_t_zero", 2);
        Assert.Equal((0UL, 0UL), map.Read(0));
        Assert.Equal((0UL, 0UL), map.Read(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Read(2));
    }

    [SkippableFact]
    public void CountAndRedirect_ProgramLoadsWithMap()
    {
        Root.Require();
        using var map = CounterMap.Create("vn_t_map", 2);
        using var program = BpfProgram.LoadSchedCls("vn_t_count", Programs.CountAndRedirect(map, 1, 1, 1), "lo");
        Assert.True(program.Id > 0);
    }

    [SkippableFact]
    public void Attach_MissingIfindex_ThrowsEnodevNamingDevice()
    {
        Root.Require();
        using var ns = new TestNetns("bpf-nodev");
        using var program = BpfProgram.LoadSchedCls("vn_t_nodev", Programs.Drop(), "ghost0");
        var e = Assert.Throws<VirtnetException>(() => BpfNetns.In(ns, () => TcxLink.Attach(program, 4242, "ghost0", TcxDirection.Ingress)));
        Assert.Equal(Errno.ENODEV, e.Errno);
        Assert.Equal("ghost0", e.Device);
        Assert.Contains("ghost0", e.Message);
        Assert.Contains("ifindex 4242", e.Message);
    }

    [SkippableFact]
    public void Attach_Egress_QueryShowsProgramAndItDrops()
    {
        Root.Require();
        using var ns1 = new TestNetns("bpf-eg1");
        using var ns2 = new TestNetns("bpf-eg2");
        TestNetns.AddVeth(ns1, "va", ns2, "vb");
        ns1.Exec("ip", "addr", "add", "10.200.2.1/24", "dev", "va");
        ns2.Exec("ip", "addr", "add", "10.200.2.2/24", "dev", "vb");
        ns1.Exec("ip", "link", "set", "va", "up");
        ns2.Exec("ip", "link", "set", "vb", "up");
        Assert.Equal(0, ns1.Try(TimeSpan.FromSeconds(15), "ping", "-c", "1", "-W", "2", "10.200.2.2").ExitCode);

        int va = BpfNetns.Ifindex(ns1, "va");
        using var program = BpfProgram.LoadSchedCls("vn_t_drop", Programs.Drop(), "va");
        using (var link = BpfNetns.In(ns1, () => TcxLink.Attach(program, va, "va", TcxDirection.Egress)))
        {
            Assert.Equal(["vn_t_drop"], BpfNetns.In(ns1, () => Tcx.QueryProgramNames(va, TcxDirection.Egress)));
            Assert.Empty(BpfNetns.Settled(ns1, va, TcxDirection.Ingress));
            Assert.NotEqual(0, ns1.Try(TimeSpan.FromSeconds(15), "ping", "-c", "1", "-W", "1", "10.200.2.2").ExitCode);
        }

        Assert.Empty(BpfNetns.Settled(ns1, va, TcxDirection.Egress));
        Assert.Equal(0, ns1.Try(TimeSpan.FromSeconds(15), "ping", "-c", "1", "-W", "2", "10.200.2.2").ExitCode);
    }

    [SkippableFact]
    public void CountAndRedirect_PingAcrossTwoVethPairs_CountsAndDelivers()
    {
        Root.Require();
        // ns1:va <-> ns2:vb   ns2:vc <-> ns3:vd. ns2 has no addresses: only the two tcx programs join vb and vc.
        using var ns1 = new TestNetns("bpf-r1");
        using var ns2 = new TestNetns("bpf-r2");
        using var ns3 = new TestNetns("bpf-r3");
        TestNetns.AddVeth(ns1, "va", ns2, "vb");
        TestNetns.AddVeth(ns2, "vc", ns3, "vd");
        ns1.Exec("ip", "addr", "add", "10.200.1.1/24", "dev", "va");
        ns3.Exec("ip", "addr", "add", "10.200.1.2/24", "dev", "vd");
        string macA = Mac(ns1, "va"), macD = Mac(ns3, "vd");
        ns1.Exec("ip", "neigh", "add", "10.200.1.2", "lladdr", macD, "dev", "va", "nud", "permanent");
        ns3.Exec("ip", "neigh", "add", "10.200.1.1", "lladdr", macA, "dev", "vd", "nud", "permanent");
        ns1.Exec("ip", "link", "set", "va", "up");
        ns2.Exec("ip", "link", "set", "vb", "up");
        ns2.Exec("ip", "link", "set", "vc", "up");
        ns3.Exec("ip", "link", "set", "vd", "up");
        int vb = BpfNetns.Ifindex(ns2, "vb"), vc = BpfNetns.Ifindex(ns2, "vc");
        ulong vdRxBefore = RxPackets(ns3, "vd");

        using var counters = CounterMap.Create("vn_t_ctr", 2);
        using (var toVc = BpfProgram.LoadSchedCls("vn_t_b2c", Programs.CountAndRedirect(counters, 0, vc, 0), "vb"))
        using (var toVb = BpfProgram.LoadSchedCls("vn_t_c2b", Programs.CountAndRedirect(counters, 1, vb, 0), "vc"))
        using (var linkB = BpfNetns.In(ns2, () => TcxLink.Attach(toVc, vb, "vb", TcxDirection.Ingress)))
        using (var linkC = BpfNetns.In(ns2, () => TcxLink.Attach(toVb, vc, "vc", TcxDirection.Ingress)))
        {
            Assert.Equal(["vn_t_b2c"], BpfNetns.In(ns2, () => Tcx.QueryProgramNames(vb, TcxDirection.Ingress)));
            Assert.Equal([toVb.Id], BpfNetns.In(ns2, () => Tcx.QueryProgramIds(vc, TcxDirection.Ingress)));

            var ping = ns1.Try(TimeSpan.FromSeconds(20), "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.200.1.2");
            Assert.True(ping.ExitCode == 0, ping.All);

            var (framesOut, bytesOut) = counters.Read(0);
            var (framesBack, bytesBack) = counters.Read(1);
            // Echo request/reply: 14 Ethernet + 20 IPv4 + 8 ICMP + 56 data = 98 bytes; skb->len at tcx includes the MAC header.
            Assert.True(framesOut >= 3 && bytesOut >= 3 * 98, $"vb->vc counted {framesOut} frames, {bytesOut} bytes");
            Assert.True(framesBack >= 3 && bytesBack >= 3 * 98, $"vc->vb counted {framesBack} frames, {bytesBack} bytes");
            Assert.True(RxPackets(ns3, "vd") - vdRxBefore >= 3);
        }

        // Links and programs closed: both hooks are empty again and traffic stops.
        Assert.Empty(BpfNetns.Settled(ns2, vb, TcxDirection.Ingress));
        Assert.Empty(BpfNetns.Settled(ns2, vc, TcxDirection.Ingress));
        Assert.NotEqual(0, ns1.Try(TimeSpan.FromSeconds(15), "ping", "-c", "1", "-W", "1", "10.200.1.2").ExitCode);
    }

    [SkippableFact]
    public void QueryProgramIds_MoreProgramsThanFirstBuffer_ReturnsAllInAttachOrder()
    {
        Root.Require();
        using var ns1 = new TestNetns("bpf-many1");
        using var ns2 = new TestNetns("bpf-many2");
        TestNetns.AddVeth(ns1, "va", ns2, "vb");
        int va = BpfNetns.Ifindex(ns1, "va");

        var programs = new List<BpfProgram>();
        var links = new List<TcxLink>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var program = BpfProgram.LoadSchedCls($"vn_t_many{i}", Programs.Drop(), "va");
                programs.Add(program);
                links.Add(BpfNetns.In(ns1, () => TcxLink.Attach(program, va, "va", TcxDirection.Ingress)));
            }

            // flags 0 appends: the hook runs the programs in the order they were attached.
            Assert.Equal(programs.Select(p => p.Id), BpfNetns.In(ns1, () => Tcx.QueryProgramIds(va, TcxDirection.Ingress)));
            Assert.Equal(programs.Select(p => p.Name), BpfNetns.In(ns1, () => Tcx.QueryProgramNames(va, TcxDirection.Ingress)));

            var again = Assert.Throws<VirtnetException>(() => BpfNetns.In(ns1, () => TcxLink.Attach(programs[0], va, "va", TcxDirection.Ingress)));
            Assert.Equal(Errno.EEXIST, again.Errno);
        }
        finally
        {
            links.ForEach(l => l.Dispose());
            programs.ForEach(p => p.Dispose());
        }

        Assert.Empty(BpfNetns.Settled(ns1, va, TcxDirection.Ingress));
    }

    [SkippableFact]
    public void Attach_HolderProcessKilled_HookEmptyWithinOneSecond()
    {
        Root.Require();
        using var ns1 = new TestNetns("bpf-kill1");
        using var ns2 = new TestNetns("bpf-kill2");
        TestNetns.AddVeth(ns1, "va", ns2, "vb");
        int va = BpfNetns.Ifindex(ns1, "va");

        Process holder;
        using (var program = BpfProgram.LoadSchedCls("vn_t_kill", Programs.Drop(), "va"))
        using (var link = BpfNetns.In(ns1, () => TcxLink.Attach(program, va, "va", TcxDirection.Ingress)))
        {
            // Hand the link to a child: a dup without FD_CLOEXEC is inherited across exec (BPF fds are O_CLOEXEC).
            int inherited = dup(link.Handle.Fd);
            Assert.True(inherited >= 0);
            try
            {
                holder = Process.Start(new ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;
            }
            finally
            {
                Libc.close(inherited);
            }
        }

        using (holder)
        {
            try
            {
                // Our fds are closed; the child's copy keeps the link alive.
                Assert.Single(BpfNetns.In(ns1, () => Tcx.QueryProgramIds(va, TcxDirection.Ingress)));
            }
            finally
            {
                holder.Kill();   // SIGKILL
                holder.WaitForExit();
            }
        }

        var deadline = Stopwatch.StartNew();
        while (BpfNetns.In(ns1, () => Tcx.QueryProgramIds(va, TcxDirection.Ingress)).Count != 0)
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(1), "the tcx hook still had a program 1 s after its holder was killed");
            Thread.Sleep(20);
        }
    }

    private static string Mac(TestNetns ns, string device)
    {
        using var doc = JsonDocument.Parse(Run.Checked("ip", "-n", ns.Name, "-j", "link", "show", "dev", device));
        return doc.RootElement[0].GetProperty("address").GetString()!;
    }

    private static ulong RxPackets(TestNetns ns, string device)
    {
        using var doc = JsonDocument.Parse(Run.Checked("ip", "-n", ns.Name, "-s", "-j", "link", "show", "dev", device));
        return doc.RootElement[0].GetProperty("stats64").GetProperty("rx").GetProperty("packets").GetUInt64();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup(int fd);
}
