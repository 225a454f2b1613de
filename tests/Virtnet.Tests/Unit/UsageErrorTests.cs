// Every usage error, whether System.CommandLine's parser or virtnet finds it, exits 2 with two lines on stderr: one
// sentence, and where to look ("Try 'virtnet CMD --help'."), never the whole help text. None needs root or a device.
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Unit;

public class UsageErrorTests
{
    private static RunResult Cli(params string[] args) => Run.Command(TimeSpan.FromSeconds(60), "dotnet", [Virtnet.Tests.Integration.VirtnetProcess.Dll, .. args]);

    [Theory]
    [InlineData("stats", "stats")]                              // a missing argument
    [InlineData("detach", "detach")]
    [InlineData("attach", "attach")]
    [InlineData("run", "run")]                                  // a missing required option
    [InlineData("run", "run", "--config")]                      // an option without its value
    [InlineData("show", "show", "--bogus")]                     // an unknown option
    [InlineData("attach", "attach", "eth9", "--mode", "sideways")] // a bad enum value
    [InlineData("attach", "attach", "eth9", "--mirror", "sideways")]
    [InlineData("attach", "attach", "eth9", "--datapath", "gpu")]
    [InlineData("stats", "stats", "v1", "--watch", "soon")]     // not a number
    [InlineData("attach", "attach", "eth9", "--vlan", "many")]
    [InlineData("", "frobnicate")]                              // an unknown command
    [InlineData("detach", "detach", "v1", "v2")]                // an extra argument
    public void ParserErrors_TwoLinesAndExit2(string command, params string[] args)
    {
        var r = Cli(args);
        Assert.True(r.ExitCode == 2, r.All);
        var lines = r.Stderr.TrimEnd().Split('\n');
        Assert.True(lines.Length == 2, r.Stderr);
        Assert.StartsWith("virtnet: ", lines[0], StringComparison.Ordinal);
        Assert.Equal(command.Length == 0 ? "Try 'virtnet --help'." : $"Try 'virtnet {command} --help'.", lines[1]);
        Assert.DoesNotContain("Usage:", r.All, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("--watch", "stats", "v1", "--watch", "0")]
    [InlineData("--stats", "attach", "eth9", "--stats", "-1")]
    [InlineData("--vlan 5000", "attach", "eth9", "--vlan", "5000")]
    [InlineData("MAC address", "attach", "eth9", "--mac", "02:00")]
    public void RangeErrors_OneSentenceAndExit2(string names, params string[] args)
    {
        var r = Cli(args);
        Assert.True(r.ExitCode == 2, r.All);
        string line = Assert.Single(r.Stderr.TrimEnd().Split('\n'));
        Assert.StartsWith("virtnet: ", line, StringComparison.Ordinal);
        Assert.Contains(names, line, StringComparison.Ordinal);
    }
}
