using System.Diagnostics;
using System.Text.RegularExpressions;
using Virtnet.Datapaths;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Lab;

/// <summary>
/// The demo runs alone (no other test of this process in parallel), so that the checks on the root namespace
/// and on this process's threads see only what the demo did.
/// </summary>
[CollectionDefinition(nameof(DemoTests), DisableParallelization = true)]
public sealed class DemoSerially;

[Collection(nameof(DemoTests))]
public class DemoTests(ITestOutputHelper log)
{
    [SkippableTheory]
    [InlineData(DatapathKind.Kernel)]
    [InlineData(DatapathKind.User)]
    public void Run_EitherDatapath_TrafficCrossesBothWaysAndNothingIsLeft(DatapathKind datapath)
    {
        Root.Require();
        var linksBefore = RootLinkNames();
        var netnsBefore = NamedNamespaces();
        var threadNamespacesBefore = ThreadNamespaces();
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
        // The lab's namespaces are anonymous: the demo never names one. Other processes on the machine may add
        // their own per-test namespaces meanwhile; none may look like the demo's.
        Assert.All(NamedNamespaces().Except(netnsBefore), name => Assert.Matches("^vnb?-", name));
        // No thread of this process is left inside a lab namespace (the runtime's lazily started threads are born
        // in the namespace of the thread that first needs them). Compared with before, because another test may
        // already have left one in its own namespace.
        Assert.Empty(ThreadNamespaces().Except(threadNamespacesBefore));
    }

    private static string NamespaceOf(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget ?? string.Empty;
        }
        catch (IOException)
        {
            return string.Empty; // the thread ended meanwhile
        }
    }

    private static HashSet<string> ThreadNamespaces()
        => Directory.GetDirectories("/proc/self/task").Select(task => NamespaceOf(Path.Combine(task, "ns", "net"))).Where(ns => ns.Length > 0).ToHashSet();

    private static List<string> NamedNamespaces()
        => Run.Checked("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')[0]).ToList();

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
