// What every refused attach must look like: a non-zero exit, one line on stderr starting "virtnet: " that
// mentions what it should, and no ready line.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

internal static class Refusal
{
    public static void AssertOneSentence(RunResult r, ITestOutputHelper output, StringComparison comparison, params string[] mentions)
    {
        output.WriteLine($"exit {r.ExitCode}; stderr: {r.Stderr.TrimEnd()}; stdout: {r.Stdout.TrimEnd()}");
        Assert.True(r.ExitCode is not 0 and not -1, $"expected a refusal, got exit {r.ExitCode}\n{r.All}");
        string stderr = r.Stderr.TrimEnd('\n');
        Assert.StartsWith("virtnet: ", stderr, StringComparison.Ordinal);
        Assert.True(!stderr.Contains('\n', StringComparison.Ordinal), $"more than one line on stderr:\n{r.Stderr}");
        foreach (var m in mentions)
        {
            Assert.True(stderr.Contains(m, comparison), $"stderr does not mention '{m}': {stderr}");
        }

        Assert.DoesNotContain("ready", r.Stdout, StringComparison.Ordinal);
    }
}
