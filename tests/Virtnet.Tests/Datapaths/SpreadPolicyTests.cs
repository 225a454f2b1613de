using System.Diagnostics;
using Virtnet.Datapaths.User;
using Xunit;

namespace Virtnet.Tests.Datapaths;

/// <summary>When frames move to the next CPU's forwarder, and back: thresholds and hysteresis, with a fake flag.</summary>
public sealed class SpreadPolicyTests
{
    private static readonly long Second = Stopwatch.Frequency;

    private sealed class Flag
    {
        public readonly List<bool> Writes = [];
        public bool Fail;

        public bool Set(bool on)
        {
            Writes.Add(on);
            return !Fail;
        }
    }

    private static (SpreadPolicy Policy, Flag Flag) Make(int forwarders = 2)
    {
        var flag = new Flag();
        return (new SpreadPolicy(forwarders, flag.Set), flag);
    }

    [Fact]
    public void Report_BelowSpreadThreshold_StaysLocal()
    {
        var (policy, flag) = Make();
        policy.Report(0, frames: 49_000, bytes: 10_000_000, Second);
        Assert.False(policy.Spread);
        Assert.Empty(flag.Writes);
    }

    [Fact]
    public void Report_OneForwarderAboveFrameRate_Spreads()
    {
        var (policy, flag) = Make();
        policy.Report(1, frames: 51_000, bytes: 3_000_000, Second);
        Assert.True(policy.Spread);
        Assert.Equal([true], flag.Writes);
    }

    [Fact]
    public void Report_AboveByteRate_SpreadsWithFewFrames()
    {
        var (policy, _) = Make();
        // Twenty 64 KB super-frames in 5 ms: few frames, 262 MB/s.
        policy.Report(0, frames: 20, bytes: 20 * 65536, Second / 200);
        Assert.True(policy.Spread);
    }

    [Fact]
    public void Report_BetweenThresholds_KeepsWhicheverStateItIsIn()
    {
        var (policy, flag) = Make();
        policy.Report(0, 30_000, 1_000_000, Second);
        Assert.False(policy.Spread); // not enough to spread...
        policy.Report(0, 60_000, 1_000_000, Second);
        Assert.True(policy.Spread);
        policy.Report(0, 30_000, 1_000_000, Second);
        Assert.True(policy.Spread); // ...nor to come back: the hysteresis
        Assert.Equal([true], flag.Writes);
    }

    [Fact]
    public void Report_AllForwardersBelowLocalThresholds_ComesBack()
    {
        var (policy, flag) = Make();
        policy.Report(0, 60_000, 1_000_000, Second);
        policy.Report(0, 5_000, 1_000_000, Second);
        Assert.False(policy.Spread);
        Assert.Equal([true, false], flag.Writes);
    }

    [Fact]
    public void Report_OtherForwarderStillBusy_StaysSpread()
    {
        var (policy, _) = Make();
        policy.Report(0, 60_000, 1_000_000, Second);
        policy.Report(1, 20_000, 1_000_000, Second);
        policy.Report(0, 1_000, 1_000_000, Second);
        Assert.True(policy.Spread); // forwarder 1 is still above the way back
        policy.Report(1, 1_000, 1_000_000, Second);
        Assert.False(policy.Spread);
    }

    [Fact]
    public void Report_BytesStillHigh_StaysSpread()
    {
        var (policy, _) = Make();
        policy.Report(0, 60_000, 1_000_000, Second);
        policy.Report(0, 1_000, 60_000_000, Second); // few frames, but above 50 MB/s
        Assert.True(policy.Spread);
    }

    [Fact]
    public void Report_SingleForwarder_NeverSpreads()
    {
        var (policy, flag) = Make(forwarders: 1);
        policy.Report(0, 1_000_000, 1_000_000_000, Second);
        Assert.False(policy.Spread);
        Assert.Empty(flag.Writes);
    }

    [Fact]
    public void Report_FlagWriteFails_StateUnchangedAndRetried()
    {
        var (policy, flag) = Make();
        flag.Fail = true;
        policy.Report(0, 60_000, 1_000_000, Second);
        Assert.False(policy.Spread);
        flag.Fail = false;
        policy.Report(0, 60_000, 1_000_000, Second);
        Assert.True(policy.Spread);
        Assert.Equal([true, true], flag.Writes);
    }
}
