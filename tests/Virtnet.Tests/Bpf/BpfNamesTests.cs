using Virtnet.Bpf;
using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Bpf;

public class BpfNamesTests
{
    [Fact]
    public void LoadSchedCls_NameLongerThan15Bytes_ThrowsBeforeTheKernel()
    {
        var e = Assert.Throws<VirtnetException>(() => BpfProgram.LoadSchedCls("a_name_of_16_byt", Programs.Drop(), "vn0"));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("longer than 15", e.Message);
    }

    [Fact]
    public void Create_NameWithDash_Throws()
    {
        var e = Assert.Throws<VirtnetException>(() => CounterMap.Create("vn-counters", 2));
        Assert.Contains("letters, digits", e.Message);
    }

    [Fact]
    public void Write_FifteenBytes_IsNulTerminated()
    {
        Span<byte> field = stackalloc byte[16];
        field.Fill(0xff);
        BpfNames.Write("virtnet_in.tap0", field, "BPF_PROG_LOAD", null);
        Assert.Equal(0, field[15]);
        Assert.Equal("virtnet_in.tap0", BpfNames.Read(field));
    }
}
