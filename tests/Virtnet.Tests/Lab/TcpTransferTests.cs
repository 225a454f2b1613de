using System.Diagnostics;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Lab;

public class TcpTransferTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    [SkippableFact]
    public void Run_Ipv4AcrossVeth_EveryByteArrivesVerified()
    {
        Root.Require();
        using var lab = new VethLab("tcp4");

        var result = TcpTransfer.Run(lab.B, VethLab.B4, lab.A, TimeSpan.FromSeconds(5), 32L << 20, Timeout);

        Assert.True(result.Ok, result.Error);
        Assert.Equal(32L << 20, result.BytesSent);
        Assert.Equal(result.BytesSent, result.BytesReceived);
        Assert.True(result.Verified);
        Assert.True(result.MegabytesPerSecond > 0);
        Assert.Equal(result.MegabytesPerSecond * 8 / 1000, result.GigabitsPerSecond, 6);
    }

    [SkippableFact]
    public void Run_Ipv6DurationBound_StopsInTime()
    {
        Root.Require();
        using var lab = new VethLab("tcp6");
        var clock = Stopwatch.StartNew();

        var result = TcpTransfer.Run(lab.A, VethLab.A6, lab.B, TimeSpan.FromMilliseconds(300), long.MaxValue, Timeout);

        Assert.True(result.Ok, result.Error);
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(3));
    }

    [SkippableFact]
    public void Run_PeerLinkDown_FailsWithinTimeout()
    {
        Root.Require();
        using var lab = new VethLab("tcpdown");
        lab.NsA.Exec("ip", "link", "set", "va", "down");
        var clock = Stopwatch.StartNew();

        var result = TcpTransfer.Run(lab.B, VethLab.B4, lab.A, TimeSpan.FromSeconds(1), 1L << 20, TimeSpan.FromMilliseconds(500));

        Assert.False(result.Ok);
        Assert.NotNull(result.Error);
        Assert.Equal(0, result.BytesReceived);
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(4));
    }
}
