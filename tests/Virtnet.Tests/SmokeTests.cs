using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests;

public class ErrnoTests
{
    [Fact]
    public void Format_KnownErrno_NamesAndDescribes()
    {
        Assert.Equal("EBUSY (Device or resource busy)", Errno.EBUSY.Format());
    }
}
