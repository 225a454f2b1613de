using System.Text;
using Virtnet.Datapaths.User;
using Xunit;

namespace Virtnet.Tests.Datapaths;

/// <summary>When the forwarders may busy-poll: the runnable count from /proc/loadavg, against the CPUs.</summary>
public sealed class CpuPressureTests
{
    [Theory]
    [InlineData("0.52 0.58 0.59 3/467 12345\n", 3)]
    [InlineData("1.39 1.91 1.89 1/79 32405\n", 1)]
    [InlineData("10.00 9.00 8.00 128/2048 1\n", 128)]
    [InlineData("0.00 0.00 0.00 /467 1\n", 0)]
    [InlineData("garbage", 0)]
    [InlineData("", 0)]
    public void ParseRunning_LoadavgText_RunnableCount(string text, int expected)
        => Assert.Equal(expected, CpuPressure.ParseRunning(Encoding.ASCII.GetBytes(text)));

    [Theory]
    [InlineData(1, 2, true)]
    [InlineData(2, 2, true)]   // both forwarders spinning, nothing else: a CPU each
    [InlineData(3, 2, false)]  // someone waits for a CPU: spinning would take it
    [InlineData(0, 2, true)]   // unknown: as before
    public void Spare_RunnableAgainstCpus(int running, int cpus, bool spare)
        => Assert.Equal(spare, CpuPressure.Spare(running, cpus));

    [Fact]
    public void SpinAllowed_ThisMachine_ReadsTheFileWithoutThrowing()
    {
        using var pressure = CpuPressure.Open();
        _ = pressure.SpinAllowed(); // either answer; what matters is that the real file parses
        Assert.True(CpuPressure.ParseRunning(File.ReadAllBytes("/proc/loadavg")) >= 1, File.ReadAllText("/proc/loadavg"));
    }
}
