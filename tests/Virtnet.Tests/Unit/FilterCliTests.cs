// `virtnet filter` and `attach --filter`: a bad expression is one sentence pointing at the column, exit code 2,
// before anything is made (these runs need neither root nor a device); a good one prints its grouping.
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Unit;

public class FilterCliTests
{
    private static RunResult Cli(params string[] args) => Run.Command(TimeSpan.FromSeconds(60), "dotnet", [Virtnet.Tests.Integration.VirtnetProcess.Dll, .. args]);

    [Theory]
    [InlineData("filter", "udp prot 53")]
    [InlineData("filter", "--explain", "host 10.0.0")]
    [InlineData("attach", "nosuchdev0", "--filter", "(tcp or udp")]
    [InlineData("attach", "nosuchdev0", "--mirror", "--filter", "tcp and")]
    public void BadExpression_OneSentenceWithTheColumn_Exit2(params string[] args)
    {
        var r = Cli(args);
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.TrimEnd().Split('\n');
        Assert.Equal(3, lines.Length); // the sentence, the expression, the caret under the column
        string expression = args[^1];
        string head = $"virtnet: bad filter '{expression}' at column ";
        Assert.StartsWith(head, lines[0], StringComparison.Ordinal);
        int column = int.Parse(lines[0][head.Length..].Split(':')[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal($"  {expression}", lines[1]);
        Assert.Equal(column + 2, lines[2].TrimEnd().Length); // "  " + column - 1 spaces + "^": under the column's character
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Filter_Good_PrintsTheGroupingAndExplains()
    {
        var r = Cli("filter", "ip or vlan and tcp");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("filter: (ip or vlan) and tcp", r.Stdout.Trim());
        var e = Cli("filter", "--explain", "udp dst port 4789");
        Assert.Equal(0, e.ExitCode);
        Assert.Contains("eBPF, ", e.Stdout, StringComparison.Ordinal);
        Assert.Contains("exit", e.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Mirror_BadDirection_IsAUsageError()
    {
        var r = Cli("attach", "nosuchdev0", "--mirror", "sideways");
        Assert.Equal(2, r.ExitCode);
    }
}
