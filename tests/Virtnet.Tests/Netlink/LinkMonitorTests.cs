using System.Diagnostics;
using Virtnet.Netlink;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Netlink;

public class LinkMonitorTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>Reads until a notification matches, failing after <see cref="Patience"/>.</summary>
    private static LinkInfo ReadUntil(LinkMonitor monitor, Func<LinkInfo, bool> match)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < Patience)
        {
            if (monitor.Read(Patience - clock.Elapsed) is { } link && match(link))
            {
                return link;
            }
        }

        Assert.Fail("no matching link notification");
        return null!;
    }

    [SkippableFact]
    public void Read_MtuChangeAndDeleteByIp_SeesBoth()
    {
        Root.Require();
        using var ns = new TestNetns("nl-mon");
        using var monitor = InNetns.Run(ns.Name, LinkMonitor.Open);
        Run.Checked("ip", "-n", ns.Name, "link", "add", "va", "type", "veth", "peer", "name", "vb");
        Run.Checked("ip", "-n", ns.Name, "link", "set", "va", "mtu", "1400");

        LinkInfo changed = ReadUntil(monitor, l => l.Name == "va" && l.Mtu == 1400);
        Assert.False(changed.Deleted);
        Assert.Equal("veth", changed.Kind);

        Run.Checked("ip", "-n", ns.Name, "link", "del", "va");
        LinkInfo deleted = ReadUntil(monitor, l => l.Name == "va" && l.Deleted);
        Assert.Equal(changed.Index, deleted.Index);
    }

    [SkippableFact]
    public void Read_NothingHappens_ReturnsNullAfterTimeout()
    {
        Root.Require();
        using var ns = new TestNetns("nl-mon");
        using var monitor = InNetns.Run(ns.Name, LinkMonitor.Open);

        var clock = Stopwatch.StartNew();
        Assert.Null(monitor.Read(TimeSpan.FromMilliseconds(200)));
        Assert.InRange(clock.ElapsedMilliseconds, 150, 5000);
    }

    [SkippableFact]
    public void Wake_BlockedRead_ReturnsNullPromptly()
    {
        Root.Require();
        using var ns = new TestNetns("nl-mon");
        using var monitor = InNetns.Run(ns.Name, LinkMonitor.Open);
        var clock = Stopwatch.StartNew();
        LinkInfo? result = new LinkInfo { Index = -1, Name = "sentinel", Flags = 0, Mtu = 0, Mac = [] };
        var reader = new Thread(() => result = monitor.Read(TimeSpan.FromSeconds(30))) { IsBackground = true };
        reader.Start();
        Thread.Sleep(200);

        monitor.Wake();

        Assert.True(reader.Join(TimeSpan.FromSeconds(5)), "Read did not return after Wake");
        Assert.Null(result);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
    }

    [SkippableFact]
    public void Dispose_BlockedRead_ReturnsNullAndLaterReadsReturnNull()
    {
        Root.Require();
        using var ns = new TestNetns("nl-mon");
        var monitor = InNetns.Run(ns.Name, LinkMonitor.Open);
        LinkInfo? result = new LinkInfo { Index = -1, Name = "sentinel", Flags = 0, Mtu = 0, Mac = [] };
        var reader = new Thread(() => result = monitor.Read(TimeSpan.FromSeconds(30))) { IsBackground = true };
        reader.Start();
        Thread.Sleep(200);

        monitor.Dispose();

        Assert.True(reader.Join(TimeSpan.FromSeconds(5)), "Read did not return after Dispose");
        Assert.Null(result);
        Assert.Null(monitor.Read(TimeSpan.FromSeconds(1)));
        monitor.Wake();
        monitor.Dispose();
    }
}
