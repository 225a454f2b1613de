using Virtnet.Datapaths;
using Xunit;

namespace Virtnet.Tests.Datapaths;

/// <summary>Counters read from devices: growth since the start, and never down (issue 8: drops vanished with a device).</summary>
public sealed class DeviceCounterTests
{
    [Fact]
    public void Update_Grows_ReportsGrowthSinceStart()
    {
        var c = new DeviceCounter(start: 100);
        Assert.Equal(0UL, c.Update(100));
        Assert.Equal(5UL, c.Update(105));
        Assert.Equal(42UL, c.Update(142));
    }

    [Fact]
    public void Update_DeviceGone_KeepsTheLastValue()
    {
        var c = new DeviceCounter(start: 0);
        Assert.Equal(7UL, c.Update(7));
        Assert.Equal(7UL, c.Update(null)); // the namespace died with the device
        Assert.Equal(7UL, c.Update(0));    // or a new device of the same index reads 0
        Assert.Equal(9UL, c.Update(9));
    }

    [Fact]
    public void Update_BelowStart_NotNegative()
    {
        var c = new DeviceCounter(start: 50);
        Assert.Equal(0UL, c.Update(10));
    }

    [Fact]
    public void Start_Unknown_CountsFromZero()
        => Assert.Equal(3UL, new DeviceCounter(start: null).Update(3));
}
