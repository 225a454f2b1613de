// Differential tests of the filter compiler: for each expression, virtnet's eBPF program (run in the kernel with
// BPF_PROG_TEST_RUN) must match exactly the frames libpcap's classic BPF program for the same expression matches
// (run by ClassicBpf). Fixed expressions over fixed frames, then random expressions over random frames from a
// seed that is printed and can be set with VIRTNET_FILTER_SEED.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Virtnet.Bpf;
using Virtnet.Filters;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Filters;

public sealed class FilterDifferentialTests(ITestOutputHelper output)
{
    /// <summary>The seed of the frames the fixed expressions run over.</summary>
    internal const int FixedFrameSeed = 1;

    /// <summary>How many frames each fixed expression runs over.</summary>
    internal const int FixedFrameCount = 1000;

    private const int GeneratedExpressionCount = 300;
    private const int GeneratedFramePool = 1000;
    private const int FramesPerGeneratedExpression = 100;
    private const int MaxReported = 10;
    private const int MaxReportedPerExpression = 3;

    [SkippableFact]
    public void FixedExpressions_OverFixedFrames_MatchWhatLibpcapMatches()
    {
        Root.Require();
        PcapReference.Require();
        using var live = new LiveHandle();
        var clock = Stopwatch.StartNew();
        List<byte[]> frames = FilterFrames.Generate(FixedFrameSeed, FixedFrameCount);
        var failures = new Failures($"{FilterExpressions.Fixed.Length} fixed expressions, {frames.Count} frames of seed {FixedFrameSeed}");
        foreach (string expression in FilterExpressions.Fixed)
        {
            Compare(expression, frames, failures, live.Handle);
        }

        output.WriteLine($"{failures.Runs} runs in {clock.ElapsedMilliseconds} ms");
        failures.AssertNone();
    }

    [SkippableFact]
    public void GeneratedExpressions_OverRandomFrames_MatchWhatLibpcapMatches()
    {
        Root.Require();
        PcapReference.Require();
        using var live = new LiveHandle();
        int seed = Seed();
        output.WriteLine($"seed {seed}: VIRTNET_FILTER_SEED={seed} repeats this run");
        var clock = Stopwatch.StartNew();
        var pick = new Random(seed);
        List<byte[]> pool = FilterFrames.Generate(seed, GeneratedFramePool);
        List<string> expressions = FilterExpressions.Generate(seed, GeneratedExpressionCount);
        var failures = new Failures(
            $"seed {seed} (VIRTNET_FILTER_SEED={seed} repeats it), {expressions.Count} expressions, {FramesPerGeneratedExpression} frames each");
        foreach (string expression in expressions)
        {
            var frames = Enumerable.Range(0, FramesPerGeneratedExpression).Select(_ => pool[pick.Next(pool.Count)]).ToList();
            Compare(expression, frames, failures, live.Handle);
        }

        output.WriteLine($"{failures.Runs} runs in {clock.ElapsedMilliseconds} ms");
        failures.AssertNone();
    }

    private static int Seed()
    {
        string? text = Environment.GetEnvironmentVariable("VIRTNET_FILTER_SEED");
        if (string.IsNullOrEmpty(text))
        {
            // The day's number: the same seed for every run of a day (a CI run repeats the developer's), a new one
            // each day (the search goes on). 78 seeds passed when this was written; one had found a real difference.
            return (int)(DateTime.UtcNow - DateTime.UnixEpoch).TotalDays;
        }

        Assert.True(int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed),
            $"VIRTNET_FILTER_SEED='{text}' is not an int");
        return seed;
    }

    /// <summary>Compiles <paramref name="expression"/> both ways, loads virtnet's program once, runs both over every frame.</summary>
    /// <remarks>
    /// The reference is compiled as tcpdump does on a Linux device (a live handle: the first "vlan" also reads the
    /// skb's VLAN metadata and moves later offsets at run time, which virtnet's programs do too). A frame on which
    /// the two differ still passes when virtnet agrees with libpcap's unoptimized program: the optimizer drops
    /// loads whose result it can foresee, and on a frame cut short such a load is what ends the program (0) in
    /// one and not in the other; both are libpcap's meaning, the order of the loads is all that differs.
    /// </remarks>
    private static void Compare(string expression, List<byte[]> frames, Failures failures, nint live)
    {
        ClassicInsn[] reference;
        ClassicInsn[]? unoptimized = null;
        try
        {
            reference = PcapReference.CompileReference(expression, live);
        }
        catch (PcapCompileException e)
        {
            failures.Add(expression, $"libpcap refuses it, so the expression list or generator is wrong: {e.Error}", null);
            return;
        }

        PacketFilter filter;
        BpfInsn[] instructions;
        try
        {
            filter = PacketFilter.Parse(expression);
            instructions = filter.CompileMatchProgram();
        }
        catch (FilterSyntaxException e)
        {
            failures.Add(expression, $"virtnet refuses it, libpcap accepts it: {e.Message}", reference);
            return;
        }

        BpfProgram program;
        try
        {
            program = BpfProgram.LoadSchedCls("vn_t_flt", instructions, "test");
        }
        catch (VirtnetException e)
        {
            failures.Add(expression, $"the kernel refuses virtnet's program: {e.Message}", reference);
            return;
        }

        using (program)
        {
            foreach (byte[] frame in frames)
            {
                uint theirs = ClassicBpf.Run(reference, frame);
                uint ours;
                try
                {
                    ours = program.TestRun(frame).ReturnValue;
                }
                catch (VirtnetException e)
                {
                    string why = $"BPF_PROG_TEST_RUN refuses the frame, a kernel limit FilterFrames must avoid: {e.Message}";
                    failures.Add(expression, $"{why}\n  frame {FilterFrames.Describe(frame)}", null);
                    continue;
                }

                failures.Runs++;
                if ((ours != 0) != (theirs != 0) && ours <= 1)
                {
                    unoptimized ??= PcapReference.CompileReference(expression, live, optimize: false);
                    if ((ours != 0) == (ClassicBpf.Run(unoptimized, frame) != 0))
                    {
                        continue;
                    }
                }

                if ((ours != 0) != (theirs != 0) || ours > 1)
                {
                    string what = ours > 1
                        ? $"virtnet's program returns {ours} (a match program returns 1 or 0); libpcap's returns {theirs}"
                        : $"virtnet: {Verdict(ours)}, libpcap: {Verdict(theirs)}";
                    failures.Add(expression, $"{what}\n  frame {FilterFrames.Describe(frame)}", reference, filter);
                }
            }
        }
    }

    private static string Verdict(uint result) => result != 0 ? $"match ({result})" : "no match (0)";

    /// <summary>The mismatches of one test: all counted, the first few kept with what it takes to reproduce them.</summary>
    private sealed class Failures(string run)
    {
        private readonly List<string> _reported = [];
        private readonly Dictionary<string, int> _reportedPerExpression = [];
        private readonly HashSet<string> _expressions = [];
        private int _count;

        /// <summary>Frames run through both programs.</summary>
        public int Runs { get; set; }

        public void Add(string expression, string what, ClassicInsn[]? reference, PacketFilter? filter = null)
        {
            _count++;
            _expressions.Add(expression);
            int before = _reportedPerExpression.GetValueOrDefault(expression);
            if (_reported.Count >= MaxReported || before >= MaxReportedPerExpression)
            {
                return;
            }

            _reportedPerExpression[expression] = before + 1;
            var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"'{expression}': {what}");
            if (before == 0)
            {
                // The programs only the first time an expression is reported: they are long.
                if (reference is not null)
                {
                    text.Append("\n  libpcap's program (tcpdump -d):\n").Append(Indent(ClassicBpf.Disassemble(reference)));
                }

                if (filter is not null)
                {
                    text.Append("\n  virtnet's program (Explain):\n").Append(Indent(Explain(filter)));
                }
            }

            _reported.Add(text.ToString());
        }

        public void AssertNone()
        {
            if (_count == 0)
            {
                return;
            }

            Assert.Fail($"{run}: {_count} mismatches over {_expressions.Count} expressions; {_reported.Count} of them "
                + $"(at most {MaxReportedPerExpression} an expression):\n\n"
                + string.Join("\n\n", _reported));
        }

        private static string Explain(PacketFilter filter)
        {
            try
            {
                return filter.Explain();
            }
            catch (NotImplementedException)
            {
                return "(Explain is not implemented)";
            }
        }

        private static string Indent(string lines) => string.Join('\n', lines.TrimEnd('\n').Split('\n').Select(l => "    " + l));
    }

    /// <summary>A test namespace with its loopback up, and a live libpcap handle on it for tcpdump's compiles.</summary>
    private sealed class LiveHandle : IDisposable
    {
        private readonly TestNetns _ns = new("flive");

        public LiveHandle()
        {
            Virtnet.Tests.Integration.Net.Ip(_ns, "link", "set", "lo", "up");
            Handle = PcapReference.OpenLive(_ns.Name);
        }

        public nint Handle { get; }

        public void Dispose()
        {
            PcapReference.Close(Handle);
            _ns.Dispose();
        }
    }
}
