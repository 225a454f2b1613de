using Virtnet.Bpf;
using Xunit;

namespace Virtnet.Tests.Bpf;

public class PossibleCpusTests
{
    [Theory]
    [InlineData("0\n", 1)]
    [InlineData("0-1\n", 2)]
    [InlineData("0-3,8-11", 8)]
    [InlineData("0,2,4-5", 4)]
    public void Parse_KernelCpuList_CountsCpusInMask(string mask, int expected)
    {
        Assert.Equal(expected, PossibleCpus.Parse(mask));
    }

    [Theory]
    [InlineData("")]
    [InlineData("3-1")]
    [InlineData("x")]
    public void Parse_Malformed_Throws(string mask)
    {
        Assert.ThrowsAny<FormatException>(() => PossibleCpus.Parse(mask));
    }

    [Fact]
    public void Count_ThisMachine_AtLeastProcessorCount()
    {
        Assert.True(PossibleCpus.Count >= Environment.ProcessorCount);
    }
}
