using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Lab;

public class PingerTests
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    [SkippableFact]
    public void Ping_Ipv4AcrossVeth_EveryRequestAnsweredOnce()
    {
        Root.Require();
        using var lab = new VethLab("ping4");
        using var pinger = Pinger.Open(lab.A, AddressFamily.InterNetwork);

        var result = pinger.Ping(VethLab.B4, 5, Interval, Timeout);

        Assert.True(result.Complete, Describe(result));
        Assert.Equal(5, result.Received);
        Assert.All(result.RoundTrips, rtt => Assert.InRange(rtt, TimeSpan.Zero, Timeout));
        Assert.True(result.Min <= result.Average && result.Average <= result.Max);
    }

    [SkippableFact]
    public void Ping_Ipv6AcrossVeth_EveryRequestAnsweredOnce()
    {
        Root.Require();
        using var lab = new VethLab("ping6");
        using var pinger = Pinger.Open(lab.B, AddressFamily.InterNetworkV6);

        // The first request may wait for neighbour discovery.
        Assert.NotEqual(0, pinger.WaitForReply(VethLab.A6, 5, TimeSpan.FromMilliseconds(500)));
        var result = pinger.Ping(VethLab.A6, 5, Interval, Timeout);

        Assert.True(result.Complete, Describe(result));
    }

    [SkippableFact]
    public void Ping_BothDirectionsAtOnce_RepliesDoNotMix()
    {
        Root.Require();
        using var lab = new VethLab("pingmix");
        // Two pingers in the same namespace see each other's replies on their raw sockets; each must keep its own.
        using var first = Pinger.Open(lab.A, AddressFamily.InterNetwork);
        using var second = Pinger.Open(lab.A, AddressFamily.InterNetwork);
        PingResult? other = null;
        var thread = new Thread(() => other = second.Ping(VethLab.B4, 10, Interval, Timeout));
        thread.Start();

        var mine = first.Ping(VethLab.B4, 10, Interval, Timeout);
        thread.Join();

        Assert.NotEqual(first.Identifier, second.Identifier);
        Assert.True(mine.Complete, Describe(mine));
        Assert.True(other!.Complete, Describe(other));
    }

    [SkippableFact]
    public void Ping_AddressNobodyHas_NoRepliesWithinTimeout()
    {
        Root.Require();
        using var lab = new VethLab("pingnone");
        using var pinger = Pinger.Open(lab.A, AddressFamily.InterNetwork);
        var clock = Stopwatch.StartNew();

        var result = pinger.Ping(IPAddress.Parse("10.200.9.99"), 2, Interval, TimeSpan.FromMilliseconds(300));

        Assert.Equal(0, result.Received);
        Assert.False(result.Complete);
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(3));
    }

    [SkippableFact]
    public void WaitForReply_PeerGoesDown_ReturnsZero()
    {
        Root.Require();
        using var lab = new VethLab("pingdown");
        lab.NsB.Exec("ip", "link", "set", "vb", "down");
        using var pinger = Pinger.Open(lab.A, AddressFamily.InterNetworkV6);

        Assert.Equal(0, pinger.WaitForReply(VethLab.B6, 2, TimeSpan.FromMilliseconds(200)));
    }

    [SkippableFact]
    public void Ping_TargetOfOtherFamily_Throws()
    {
        // The check happens before any packet is sent, but opening a raw socket needs root.
        Root.Require();
        using var pinger = Pinger.Open(AddressFamily.InterNetwork);

        Assert.Throws<ArgumentException>(() => pinger.Ping(IPAddress.IPv6Loopback, 1, Interval, Timeout));
    }

    private static string Describe(PingResult r)
        => $"{r.Target}: {r.Received}/{r.Sent} replies, {r.Duplicates} duplicates, {r.Corrupt} corrupt";
}
