// The lab cleans up after itself even when a test already disposed a process it holds (which once made its Dispose
// throw before the namespaces were deleted, leaving them behind).
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class LabTests(ITestOutputHelper output)
{
    private const int X = 73;

    [SkippableFact]
    public void Dispose_AfterATestDisposedItsProcess_StillDeletesTheNamespaces()
    {
        Root.Require();
        string a, b;
        using (var lab = Lab.Create("lbd", X, output))
        {
            (a, b) = (lab.A.Name, lab.B.Name);
            var attach = lab.Attach("kernel");
            attach.Dispose();
            Assert.True(attach.HasExited);
        }

        string namespaces = Run.Checked("ip", "netns", "list");
        Assert.DoesNotContain(a, namespaces, StringComparison.Ordinal);
        Assert.DoesNotContain(b, namespaces, StringComparison.Ordinal);
    }
}
