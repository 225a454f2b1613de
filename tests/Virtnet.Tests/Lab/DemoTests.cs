using System.Diagnostics;
using System.Text.RegularExpressions;
using Virtnet.Datapaths;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Lab;

public class DemoTests(ITestOutputHelper log)
{
    [SkippableTheory]
    [InlineData(DatapathKind.Kernel)]
    [InlineData(DatapathKind.User)]
    public void Run_EitherDatapath_TrafficCrossesBothWaysAndNothingIsLeft(DatapathKind datapath)
    {
        Root.Require();
        var linksBefore = RootLinkNames();
        var netnsBefore = Run.Checked("ip", "netns", "list");
        var output = new StringWriter();
        var clock = Stopwatch.StartNew();

        int exit = Demo.Run(datapath, output);

        clock.Stop();
        string text = output.ToString();
        log.WriteLine(text);
        Assert.True(exit == 0, $"exit {exit}:\n{text}");
        Assert.Contains("virtnet0 ready: veth-a <-> virtnet0", text);
        foreach (var direction in new[] { "A -> B", "B -> A" })
        {
            Assert.Matches($@"✓ ping {direction} IPv4 \S+ +4/4 replies", text);
            Assert.Matches($@"✓ ping {direction} IPv6 \S+ +4/4 replies", text);
            Assert.Matches($@"✓ TCP {direction}: \d+ MB in [\d.]+ s = \d+ MB/s \([\d.]+ Gbit/s\), every byte verified", text);
        }

        Assert.Matches(@"✓ ARP host A: 10\.200\.0\.2 is at ([0-9a-f]{2}:){5}[0-9a-f]{2} \(virtnet0, ", text);
        Assert.True(Counter(text, "ingress") > 0, text);
        Assert.True(Counter(text, "egress") > 0, text);
        Assert.Contains("✓ teardown", text);
        Assert.DoesNotContain("✗", text);
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(30));

        Assert.Equal(linksBefore, RootLinkNames());
        Assert.Equal(netnsBefore, Run.Checked("ip", "netns", "list"));
    }

    private static long Counter(string text, string direction)
    {
        var match = Regex.Match(text, $@"^\s+{direction}\s.*?:\s+([\d,]+) frames", RegexOptions.Multiline);
        Assert.True(match.Success, $"no {direction} counter line in:\n{text}");
        return long.Parse(match.Groups[1].Value.Replace(",", string.Empty));
    }

    private static List<string> RootLinkNames()
        => Run.Checked("ip", "-o", "link", "show").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':')[1].Trim())
            .Order(StringComparer.Ordinal)
            .ToList();
}
