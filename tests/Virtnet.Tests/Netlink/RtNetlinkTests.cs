using System.Net;
using Virtnet.Native;
using Virtnet.Netlink;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Netlink;

/// <summary>
/// Root-only: every socket is opened inside a fresh TestNetns (InNetns.Run), so every write lands in a
/// namespace the test made. Results are checked with ip(8).
/// </summary>
public class RtNetlinkTests
{
    private static RtNetlink OpenIn(TestNetns ns) => InNetns.Run(ns.Name, RtNetlink.Open);

    private static string Ip(TestNetns ns, params string[] args) => Run.Checked("ip", ["-n", ns.Name, .. args]);

    [SkippableFact]
    public void GetLink_Loopback_ReturnsLoopback()
    {
        Root.Require();
        using var ns = new TestNetns("nl-lo");
        using var nl = OpenIn(ns);

        LinkInfo lo = nl.GetLink("lo");

        Assert.Equal(1, lo.Index);
        Assert.Equal("lo", lo.Name);
        Assert.True(lo.IsLoopback);
        Assert.True(lo.IsUp);
        Assert.Equal(65536, lo.Mtu);
        Assert.Equal(772, lo.Type);
        Assert.Equal(new byte[6], lo.Mac);
        Assert.Null(lo.Kind);
        Assert.NotNull(lo.Stats);
        Assert.Equal("lo", nl.GetLink(1).Name);
    }

    [SkippableFact]
    public void GetLink_LoopbackInRootNamespace_ReadOnlyQueryWorks()
    {
        Root.Require();
        using var nl = RtNetlink.Open();
        Assert.True(nl.GetLink("lo").IsLoopback);
    }

    [SkippableFact]
    public void GetLink_Missing_ThrowsEnodevNamingTheDevice()
    {
        Root.Require();
        using var ns = new TestNetns("nl-nodev");
        using var nl = OpenIn(ns);

        var ex = Assert.Throws<VirtnetException>(() => nl.GetLink("nope0"));
        Assert.Equal("nope0: no such device", ex.Message);
        Assert.Equal(Errno.ENODEV, ex.Errno);
        Assert.Equal("nope0", ex.Device);
        Assert.Null(nl.TryGetLink("nope0"));
        Assert.Null(nl.TryGetLink("a-name-far-too-long-for-linux"));
        Assert.Null(nl.TryGetLink(9999));
        Assert.Equal(Errno.ENODEV, Assert.Throws<VirtnetException>(() => nl.GetLink(9999)).Errno);
    }

    [SkippableFact]
    public void GetLinks_Dump_ListsEveryLink()
    {
        Root.Require();
        using var ns = new TestNetns("nl-dump");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);

        var names = nl.GetLinks().Select(l => l.Name).Order().ToArray();

        Assert.Equal(["lo", "va", "vb"], names);
    }

    [SkippableFact]
    public void AddVeth_SameNamespace_BothEndsAppear()
    {
        Root.Require();
        using var ns = new TestNetns("nl-veth");
        using var nl = OpenIn(ns);

        nl.AddVeth("va", null, "vb", null);

        string links = Ip(ns, "-o", "link");
        Assert.Contains("va@vb:", links);
        Assert.Contains("vb@va:", links);
        LinkInfo va = nl.GetLink("va");
        Assert.Equal("veth", va.Kind);
        Assert.Equal(1, va.Type);
        Assert.Equal(6, va.Mac.Length);
        Assert.False(va.IsUp);
    }

    [SkippableFact]
    public void AddVeth_Existing_ThrowsEexist()
    {
        Root.Require();
        using var ns = new TestNetns("nl-exist");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);

        var ex = Assert.Throws<VirtnetException>(() => nl.AddVeth("va", null, "vc", null));

        Assert.Equal(Errno.EEXIST, ex.Errno);
        Assert.Equal("RTM_NEWLINK", ex.Operation);
        Assert.Equal("va", ex.Device);
    }

    [SkippableFact]
    public void AddVeth_AcrossNamespaces_EndsBornInTargetNamespaces()
    {
        Root.Require();
        using var home = new TestNetns("nl-home");
        using var ns1 = new TestNetns("nl-a");
        using var ns2 = new TestNetns("nl-b");
        using var nl = OpenIn(home);
        using (var fd1 = InNetns.OpenNamespace(ns1.Name))
        using (var fd2 = InNetns.OpenNamespace(ns2.Name))
        {
            nl.AddVeth("va", fd1.Fd, "vb", fd2.Fd);
        }

        Assert.Contains("va@", Ip(ns1, "-o", "link"));
        Assert.DoesNotContain("vb", Ip(ns1, "-o", "link"));
        Assert.Contains("vb@", Ip(ns2, "-o", "link"));
        Assert.DoesNotContain("va", Ip(ns2, "-o", "link"));
        Assert.DoesNotContain("veth", Ip(home, "-o", "-d", "link"));
        Assert.Null(nl.TryGetLink("va"));
    }

    [SkippableFact]
    public void AddVeth_PeerFdOnly_LinkStaysInSocketNamespace()
    {
        Root.Require();
        using var ns1 = new TestNetns("nl-a");
        using var ns2 = new TestNetns("nl-b");
        using var nl = OpenIn(ns1);
        using (var fd2 = InNetns.OpenNamespace(ns2.Name))
        {
            nl.AddVeth("va", null, "vb", fd2.Fd);
        }

        Assert.Equal("veth", nl.GetLink("va").Kind);
        Assert.Null(nl.TryGetLink("vb"));
        Assert.Contains("vb@", Ip(ns2, "-o", "link"));
    }

    [SkippableFact]
    public void AddVeth_LinkFdOnly_PeerStaysInSocketNamespace()
    {
        Root.Require();
        using var ns1 = new TestNetns("nl-a");
        using var ns2 = new TestNetns("nl-b");
        using var nl = OpenIn(ns1);
        using (var fd2 = InNetns.OpenNamespace(ns2.Name))
        {
            nl.AddVeth("va", fd2.Fd, "vb", null);
        }

        Assert.Contains("va@", Ip(ns2, "-o", "link"));
        Assert.Equal("veth", nl.GetLink("vb").Kind);
        Assert.Null(nl.TryGetLink("va"));
    }

    [SkippableFact]
    public void Setters_OnVeth_VisibleToIpLinkShow()
    {
        Root.Require();
        using var ns = new TestNetns("nl-set");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);
        int va = nl.GetLink("va").Index;
        int vb = nl.GetLink("vb").Index;

        nl.SetMtu(va, 1400);
        nl.SetMac(va, [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]);
        nl.SetAlias(va, "virtnet uplink");
        nl.SetUp(va, true);
        nl.SetUp(vb, true);

        string shown = Ip(ns, "-d", "link", "show", "dev", "va");
        Assert.Contains("mtu 1400", shown);
        Assert.Contains("link/ether 02:00:00:00:00:0a", shown);
        Assert.Contains("alias virtnet uplink", shown);
        Assert.Contains(",UP", shown);

        LinkInfo link = nl.GetLink(va);
        Assert.Equal(1400, link.Mtu);
        Assert.Equal(new byte[] { 0x02, 0, 0, 0, 0, 0x0a }, link.Mac);
        Assert.Equal("virtnet uplink", link.Alias);
        Assert.True(link.IsUp);

        nl.SetAlias(va, string.Empty);
        nl.SetUp(va, false);
        shown = Ip(ns, "-d", "link", "show", "dev", "va");
        Assert.DoesNotContain("alias", shown);
        Assert.DoesNotContain(",UP", shown);
        Assert.Null(nl.GetLink(va).Alias);
        Assert.False(nl.GetLink(va).IsUp);
    }

    [SkippableFact]
    public void SetMtu_AboveVethMaximum_CarriesKernelExtack()
    {
        Root.Require();
        using var ns = new TestNetns("nl-extack");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);
        int va = nl.GetLink("va").Index;

        var ex = Assert.Throws<VirtnetException>(() => nl.SetMtu(va, 70000));

        Assert.Equal(Errno.EINVAL, ex.Errno);
        Assert.Equal("RTM_NEWLINK", ex.Operation);
        Assert.Equal("va", ex.Device);
        Assert.Equal("mtu greater than device maximum", ex.ExtAck);
        Assert.Equal("RTM_NEWLINK on va: EINVAL (Invalid argument): mtu greater than device maximum", ex.Message);
    }

    [SkippableFact]
    public void SetCarrier_TapWithQueue_TogglesLowerUp()
    {
        Root.Require();
        using var ns = new TestNetns("nl-carrier");
        Ip(ns, "tuntap", "add", "mode", "tap", "tp0");
        using var nl = OpenIn(ns);
        using var queue = InNetns.Run(ns.Name, () => AttachTap("tp0"));
        int tap = nl.GetLink("tp0").Index;
        nl.SetUp(tap, true);

        nl.SetCarrier(tap, false);
        Assert.Contains("NO-CARRIER", Ip(ns, "link", "show", "dev", "tp0"));
        Assert.False(nl.GetLink(tap).Carrier);

        nl.SetCarrier(tap, true);
        Assert.Contains("LOWER_UP", Ip(ns, "link", "show", "dev", "tp0"));
        Assert.True(nl.GetLink(tap).Carrier);
    }

    [SkippableFact]
    public void SetCarrier_TapWithoutQueue_OffWorksOnThrowsEperm()
    {
        Root.Require();
        using var ns = new TestNetns("nl-carrier");
        Ip(ns, "tuntap", "add", "mode", "tap", "tp0");
        using var nl = OpenIn(ns);
        int tap = nl.GetLink("tp0").Index;

        nl.SetCarrier(tap, false);

        // tun_net_change_carrier(): carrier on needs an attached queue (tun->numqueues), else -EPERM.
        var ex = Assert.Throws<VirtnetException>(() => nl.SetCarrier(tap, true));
        Assert.Equal(Errno.EPERM, ex.Errno);
        Assert.Equal("tp0", ex.Device);
    }

    /// <summary>Opens /dev/net/tun and attaches to the persistent TAP NAME (in the calling thread's namespace).</summary>
    private static unsafe FileDescriptor AttachTap(string name)
    {
        var fd = FileDescriptor.FromResult(Libc.open("/dev/net/tun", Libc.O_RDWR | Libc.O_CLOEXEC), "open", "/dev/net/tun");
        var request = new IfReqFlags { Flags = Tun.IFF_TAP | Tun.IFF_NO_PI };
        System.Text.Encoding.ASCII.GetBytes(name, new Span<byte>(request.Name, Tun.IFNAMSIZ - 1));
        if (Libc.ioctl(fd.Fd, Tun.TUNSETIFF, &request) != 0)
        {
            fd.Dispose();
            VirtnetException.ThrowLastError("TUNSETIFF", name);
        }

        return fd;
    }

    [SkippableFact]
    public void SetCarrier_Veth_ThrowsEopnotsupp()
    {
        Root.Require();
        using var ns = new TestNetns("nl-carrier");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);

        var ex = Assert.Throws<VirtnetException>(() => nl.SetCarrier(nl.GetLink("va").Index, false));

        Assert.Equal(Errno.EOPNOTSUPP, ex.Errno);
    }

    [SkippableFact]
    public void AddAddress_Ipv4AndIpv6_VisibleToIpAddr()
    {
        Root.Require();
        using var ns = new TestNetns("nl-addr");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);
        int va = nl.GetLink("va").Index;
        nl.SetUp(va, true);

        nl.AddAddress(va, IPAddress.Parse("10.9.8.7"), 24);
        nl.AddAddress(va, IPAddress.Parse("fd00:9::7"), 64);

        string shown = Ip(ns, "addr", "show", "dev", "va");
        Assert.Contains("inet 10.9.8.7/24", shown);
        Assert.Contains("inet6 fd00:9::7/64", shown);
        Assert.DoesNotContain("tentative", shown);

        var ex = Assert.Throws<VirtnetException>(() => nl.AddAddress(va, IPAddress.Parse("10.9.8.7"), 24));
        Assert.Equal(Errno.EEXIST, ex.Errno);
        Assert.Equal("RTM_NEWADDR", ex.Operation);
        Assert.Equal("va", ex.Device);
        Assert.Equal(Errno.EINVAL, Assert.Throws<VirtnetException>(() => nl.AddAddress(va, IPAddress.Parse("10.0.0.1"), 33)).Errno);
    }

    [SkippableFact]
    public void GetNeighbors_PermanentEntries_ReturnsThemForThatLinkOnly()
    {
        Root.Require();
        using var ns = new TestNetns("nl-neigh");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);
        int va = nl.GetLink("va").Index;
        Ip(ns, "neigh", "add", "10.0.0.2", "lladdr", "02:00:00:00:00:02", "dev", "va");
        Ip(ns, "neigh", "add", "fd00::2", "lladdr", "02:00:00:00:00:03", "dev", "va");
        Ip(ns, "neigh", "add", "10.0.0.3", "lladdr", "02:00:00:00:00:04", "dev", "vb");

        var neighbors = nl.GetNeighbors(va).OrderBy(n => n.Address.ToString()).ToArray();

        Assert.Equal(2, neighbors.Length);
        Assert.Equal(IPAddress.Parse("10.0.0.2"), neighbors[0].Address);
        Assert.Equal(new byte[] { 2, 0, 0, 0, 0, 2 }, neighbors[0].Mac);
        Assert.Equal(Nda.NUD_PERMANENT, neighbors[0].State);
        Assert.Equal(va, neighbors[0].Index);
        Assert.Equal(IPAddress.Parse("fd00::2"), neighbors[1].Address);
        Assert.Equal(new byte[] { 2, 0, 0, 0, 0, 3 }, neighbors[1].Mac);
    }

    [SkippableFact]
    public void DeleteLink_VethEnd_RemovesBothEnds()
    {
        Root.Require();
        using var ns = new TestNetns("nl-del");
        using var nl = OpenIn(ns);
        nl.AddVeth("va", null, "vb", null);
        int va = nl.GetLink("va").Index;

        nl.DeleteLink(va);

        Assert.DoesNotContain("va", Ip(ns, "-o", "link"));
        Assert.DoesNotContain("vb", Ip(ns, "-o", "link"));
        Assert.Null(nl.TryGetLink("vb"));
        var ex = Assert.Throws<VirtnetException>(() => nl.DeleteLink(va));
        Assert.Equal(Errno.ENODEV, ex.Errno);
        Assert.Equal($"ifindex {va}", ex.Device);
    }
}
