// Capabilities: names and masks, a status file's Cap* lines, and reading the calling thread's sets (any user).
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Unit;

public class CapabilitiesTests
{
    [Fact]
    public void Describe_NamesEachBit_LowestFirst()
    {
        Assert.Equal("cap_net_admin,cap_bpf", Capabilities.Describe(Capabilities.Mask(Capabilities.CAP_BPF, Capabilities.CAP_NET_ADMIN)));
        Assert.Equal("cap_net_raw,cap_sys_admin,cap_perfmon", Capabilities.Describe(0x40_0020_2000UL));
        Assert.Equal("none", Capabilities.Describe(0));
        Assert.Equal("cap_checkpoint_restore,cap_50", Capabilities.Describe((1UL << 40) | (1UL << 50)));
    }

    [Fact]
    public void Parse_TakesKernelAndCapshSpellings()
    {
        ulong mask = Capabilities.Mask(Capabilities.CAP_NET_ADMIN, Capabilities.CAP_BPF);
        Assert.Equal(mask, Capabilities.Parse("cap_net_admin,cap_bpf"));
        Assert.Equal(mask, Capabilities.Parse("CAP_NET_ADMIN bpf"));
        Assert.Equal(mask, Capabilities.Parse(" net_admin , CAP_BPF "));
        Assert.Equal(0UL, Capabilities.Parse("none"));
        Assert.Equal(0UL, Capabilities.Parse(""));
        Assert.Equal(1UL << 50, Capabilities.Parse("cap_50"));
        Assert.Throws<ArgumentException>(() => Capabilities.Parse("cap_net_admn"));
    }

    [Fact]
    public void Parse_OfDescribe_RoundTripsEveryKnownCapability()
    {
        for (int cap = 0; cap <= 40; cap++)
        {
            Assert.Equal(1UL << cap, Capabilities.Parse(Capabilities.Describe(1UL << cap)));
        }

        Assert.Equal(Capabilities.All, Capabilities.Parse(Capabilities.Describe(Capabilities.All)));
    }

    [Fact]
    public void Names_AreLinuxCapabilityHNumbers()
    {
        Assert.Equal("cap_chown", Capabilities.Name(0));
        Assert.Equal("cap_setpcap", Capabilities.Name(Capabilities.CAP_SETPCAP));
        Assert.Equal("cap_net_admin", Capabilities.Name(Capabilities.CAP_NET_ADMIN));
        Assert.Equal("cap_net_raw", Capabilities.Name(Capabilities.CAP_NET_RAW));
        Assert.Equal("cap_sys_admin", Capabilities.Name(Capabilities.CAP_SYS_ADMIN));
        Assert.Equal("cap_perfmon", Capabilities.Name(Capabilities.CAP_PERFMON));
        Assert.Equal("cap_bpf", Capabilities.Name(Capabilities.CAP_BPF));
        Assert.Equal("cap_checkpoint_restore", Capabilities.Name(40));
    }

    [SkippableFact]
    public void Describe_AgreesWithCapsh()
    {
        string? capsh = Layout.Tools.Find("capsh");
        Skip.If(capsh is null && Environment.GetEnvironmentVariable("VIRTNET_REQUIRE_ROOT_TESTS") != "1", "capsh is not installed (apt-get install libcap2-bin)");
        Assert.NotNull(capsh);
        ulong mask = Capabilities.All;
        string decoded = Run.Checked(capsh, $"--decode=0x{mask:x}").Trim();
        Assert.Equal($"0x{mask:x16}={Capabilities.Describe(mask)}", decoded);
    }

    [Fact]
    public void LastCap_IsTheKernels()
    {
        Assert.Equal(int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), System.Globalization.CultureInfo.InvariantCulture), Capabilities.LastCap);
        Assert.Equal(Capabilities.LastCap >= 63 ? ulong.MaxValue : (1UL << (Capabilities.LastCap + 1)) - 1, Capabilities.All);
    }

    [Fact]
    public unsafe void SigAction_HasGlibcsLayout()
    {
        // struct sigaction on x86_64 and arm64: handler 0, sa_mask 8 (1024 bits), sa_flags 136, sa_restorer 144.
        Assert.Equal(152, sizeof(SigAction));
        var action = default(SigAction);
        Assert.Equal(136, (int)((byte*)&action.Flags - (byte*)&action));
        Assert.Equal(144, (int)((byte*)&action.Restorer - (byte*)&action));
        Assert.Equal(12, sizeof(CapUserData));
    }

    [Fact]
    public void ParseStatus_ReadsNameAndTheFiveSets()
    {
        const string Status = "Name:\t.NET TP Worker\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t100\nPid:\t107\n"
            + "CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t0000000000001000\nCapBnd:\t0000008000003000\nCapAmb:\t0000000000002000\nNoNewPrivs:\t0\n";
        var thread = Capabilities.ParseStatus(107, Status);
        Assert.Equal(107, thread.Tid);
        Assert.Equal(".NET TP Worker", thread.Name);
        Assert.Equal(new CapabilitySets(0x1000, 0x1fffeffffff, 0, 0x8000003000, 0x2000), thread.Sets);
        Assert.True(thread.Sets.Within(0x1fffeffffff));
        Assert.False(thread.Sets.Within(0x8000003000));
        Assert.Equal(0x1fffeffffffUL, thread.Sets.Any);
    }

    [Fact]
    public void Read_CallingThread_MatchesItsStatusFile()
    {
        var read = Capabilities.Read();
        var status = Capabilities.ParseStatus(0, File.ReadAllText("/proc/thread-self/status"));
        Assert.Equal(status.Sets, read);
        Assert.Equal(Capabilities.HasEffective(Capabilities.CAP_NET_ADMIN), (read.Effective & Capabilities.Mask(Capabilities.CAP_NET_ADMIN)) != 0);
    }

    [Fact]
    public void ReadThreads_ListsEveryTaskOfTheProcess_WithTheCallingThread()
    {
        var threads = Capabilities.ReadThreads();
        int tid = Libc.gettid();
        Assert.Contains(threads, t => t.Tid == tid);
        Assert.Equal(Capabilities.Read(), threads.Single(t => t.Tid == tid).Sets);
        Assert.True(threads.Count >= 2, $"only {threads.Count} thread(s) listed");
        Assert.Equal(threads.Select(t => t.Tid).Order(), threads.Select(t => t.Tid));
    }
}
