using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Unit;

public class ErrnoTests
{
    [Fact]
    public void Format_KnownErrno_NamesAndDescribes()
    {
        Assert.Equal("EBUSY (Device or resource busy)", Errno.EBUSY.Format());
    }

    [Fact]
    public void Format_UnknownErrno_PrintsNumber()
    {
        Assert.StartsWith("errno 4000", ((Errno)4000).Format());
    }

    [Fact]
    public void VirtnetException_WithExtAck_CarriesOperationDeviceAndText()
    {
        var e = new VirtnetException("RTM_NEWLINK", "virtnet0", Errno.ERANGE, "MTU too large");
        Assert.Equal("RTM_NEWLINK on virtnet0: ERANGE (Numerical result out of range): MTU too large", e.Message);
        Assert.Equal(Errno.ERANGE, e.Errno);
        Assert.Equal("virtnet0", e.Device);
    }
}
