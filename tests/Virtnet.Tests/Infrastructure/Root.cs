using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Infrastructure;

/// <summary>
/// Root-only tests call <see cref="Require"/> first. Without root they are skipped with a reason, unless
/// VIRTNET_REQUIRE_ROOT_TESTS=1 (set by .ci/run), where a missing root is a failure: CI must not pass by skipping.
/// </summary>
public static class Root
{
    public static bool IsRoot => Libc.geteuid() == 0;

    public static void Require()
    {
        if (IsRoot)
        {
            return;
        }

        if (Environment.GetEnvironmentVariable("VIRTNET_REQUIRE_ROOT_TESTS") == "1")
        {
            Assert.Fail("root-only test run without root, but VIRTNET_REQUIRE_ROOT_TESTS=1 demands it");
        }

        Skip.If(true, "needs root (CAP_NET_ADMIN, CAP_BPF) to build network namespaces; run the tests as root");
    }
}
