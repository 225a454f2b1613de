using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Datapaths.Kernel;
using Virtnet.Datapaths.User;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Virtnet.Namespaces;

namespace Virtnet.Tests.Lab;

public class LabTopologyTests
{
    [SkippableFact]
    public void Build_TwoHosts_DevicesBornAndAddressedInsideTheirNamespaces()
    {
        Root.Require();
        var rootLinks = Run.Checked("ip", "-o", "link", "show");
        using var lab = LabTopology.Build();

        Assert.Equal(rootLinks, Run.Checked("ip", "-o", "link", "show"));
        Assert.Contains("veth-a@", Exec(lab.HostA, "ip", "-o", "link", "show", "veth-a"));
        Assert.Contains("veth-b@", Exec(lab.HostB, "ip", "-o", "link", "show", "veth-b"));
        Assert.DoesNotContain("veth-b", Exec(lab.HostA, "ip", "-o", "link", "show"));
        // veth-a is the NIC virtnet takes over: up, with no address at all (not even an IPv6 link-local one).
        Assert.Contains(",UP", Exec(lab.HostA, "ip", "-o", "link", "show", "veth-a"));
        Assert.Equal(string.Empty, Exec(lab.HostA, "ip", "-o", "addr", "show", "dev", "veth-a").Trim());
        var peer = Exec(lab.HostB, "ip", "-o", "addr", "show", "dev", "veth-b");
        Assert.Contains("inet 10.200.0.2/24", peer);
        Assert.Contains("inet6 fd00:200::2/64", peer);
        Assert.Contains("LOOPBACK,UP", Exec(lab.HostA, "ip", "-o", "link", "show", "lo"));
        Assert.Contains("LOOPBACK,UP", Exec(lab.HostB, "ip", "-o", "link", "show", "lo"));
    }

    [SkippableTheory]
    [InlineData(DatapathKind.Kernel)]
    [InlineData(DatapathKind.User)]
    public void Teardown_Attached_RemovesVirtnetAndReleasesBothNamespaces(DatapathKind datapath)
    {
        Root.Require();
        using var lab = LabTopology.Build();
        lab.Attach(datapath);
        var addresses = Exec(lab.HostA, "ip", "-o", "addr", "show", "dev", "virtnet0");
        Assert.Contains("inet 10.200.0.1/24", addresses);
        Assert.Contains("inet6 fd00:200::1/64", addresses);
        var owners = lab.HostA.Run(() => Tcx.QueryProgramNames(lab.RealIndex, TcxDirection.Ingress));
        Assert.Contains(datapath == DatapathKind.Kernel ? KernelDatapath.IngressProgramName : UserDatapath.IngressProgramName, owners);

        var report = lab.Teardown();

        Assert.True(report.Clean, report.ToString());
        Assert.Empty(report.ThreadsLeft);
        Assert.Equal(0, report.HandlesLeft);
    }

    /// <summary>Runs a command inside an anonymous lab namespace, through the fd this process holds on it.</summary>
    private static string Exec(NetNamespace ns, params string[] args)
        => Run.Checked("nsenter", [$"--net=/proc/{Environment.ProcessId}/fd/{ns.Handle.Fd}", .. args]);
}
