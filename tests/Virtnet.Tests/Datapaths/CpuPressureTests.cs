using System.Diagnostics;
using Virtnet.Datapaths.User;
using Xunit;

namespace Virtnet.Tests.Datapaths;

/// <summary>When the forwarders may busy-poll: a yield that lasts a time slice turns the spin off for a while.</summary>
public sealed class CpuPressureTests
{
    [Fact]
    public void Yielded_Short_SpinStaysOn()
    {
        var p = new CpuPressure();
        for (int i = 0; i < 1000; i++)
        {
            p.Yielded(Stopwatch.Frequency / 100_000); // 10 µs: a neighbour that blocked soon
        }

        Assert.True(p.SpinAllowed);
    }

    [Fact]
    public void Yielded_ATimeSlice_SpinOffForOffWindowsThenBack()
    {
        var p = new CpuPressure();
        p.Yielded(Stopwatch.Frequency / 500); // 2 ms: a CPU-bound neighbour had the CPU
        for (int w = 0; w < CpuPressure.OffWindows; w++)
        {
            Assert.False(p.SpinAllowed, $"spin back after {w} windows");
            p.WindowEnded();
        }

        Assert.True(p.SpinAllowed);
    }

    [Fact]
    public void Yielded_LongAgainWhileOff_OffAgainForTheFullTime()
    {
        var p = new CpuPressure();
        p.Yielded(CpuPressure.LongYieldTicks + 1);
        for (int w = 0; w < CpuPressure.OffWindows - 1; w++)
        {
            p.WindowEnded();
        }

        p.Yielded(CpuPressure.LongYieldTicks + 1);
        p.WindowEnded();
        Assert.False(p.SpinAllowed);
    }

    [Fact]
    public void LongYield_IsHalfAMillisecond()
        => Assert.Equal(Stopwatch.Frequency / 2000, CpuPressure.LongYieldTicks);
}
