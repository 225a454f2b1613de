// The reference side of the filter tests, checked on its own (no root, no virtnet compiler): the classic BPF
// interpreter instruction by instruction and against libpcap's own bpf_filter, the P/Invoke into pcap_compile, and
// that the expression lists compile and the frames make them both match and miss.
using System.Runtime.InteropServices;
using Xunit;
using Xunit.Abstractions;
using static Virtnet.Tests.Filters.ClassicBpf;

namespace Virtnet.Tests.Filters;

public sealed class ClassicBpfTests(ITestOutputHelper output)
{
    // 16 bytes: 01 02 .. 08, then 0x4f (an IPv4 version/IHL byte: 4 * 15 = 60), then 09 .. 0f.
    private static readonly byte[] s_frame = [1, 2, 3, 4, 5, 6, 7, 8, 0x4f, 9, 10, 11, 12, 13, 14, 15];

    private static ClassicInsn I(int code, uint k = 0, byte jt = 0, byte jf = 0) => new((ushort)code, jt, jf, k);

    private static readonly ClassicInsn s_retA = I(BPF_RET | BPF_A);

    private static void Check(uint expected, params ClassicInsn[] program)
    {
        uint got = Run(program, s_frame);
        Assert.True(expected == got, $"expected {expected}, got {got} from\n{Disassemble(program)}");
    }

    [Fact]
    public void ClassicBpf_Loads_BigEndianAndZeroPastTheEnd()
    {
        Check(0x01020304, I(BPF_LD | BPF_W | BPF_ABS, 0), s_retA);
        Check(0x0304, I(BPF_LD | BPF_H | BPF_ABS, 2), s_retA);
        Check(0x05, I(BPF_LD | BPF_B | BPF_ABS, 4), s_retA);
        Check(0x0c0d0e0f, I(BPF_LD | BPF_W | BPF_ABS, 12), s_retA);   // ends exactly at the end
        Check(0, I(BPF_LD | BPF_W | BPF_ABS, 13), I(BPF_RET | BPF_K, 7)); // one byte past: the program returns 0
        Check(0, I(BPF_LD | BPF_H | BPF_ABS, 15), I(BPF_RET | BPF_K, 7));
        Check(0, I(BPF_LD | BPF_B | BPF_ABS, 16), I(BPF_RET | BPF_K, 7));
        Check(0, I(BPF_LD | BPF_B | BPF_ABS, 0xffffffff), I(BPF_RET | BPF_K, 7));

        Check(0x0405, I(BPF_LDX | BPF_IMM, 2), I(BPF_LD | BPF_H | BPF_IND, 1), s_retA);
        Check(0x0f, I(BPF_LDX | BPF_IMM, 15), I(BPF_LD | BPF_B | BPF_IND, 0), s_retA);
        Check(0, I(BPF_LDX | BPF_IMM, 13), I(BPF_LD | BPF_W | BPF_IND, 0), I(BPF_RET | BPF_K, 7));
        Check(0, I(BPF_LDX | BPF_IMM, 0xffffffff), I(BPF_LD | BPF_B | BPF_IND, 1), I(BPF_RET | BPF_K, 7)); // X + k wraps in 32 bits

        Check(60, I(BPF_LDX | BPF_B | BPF_MSH, 8), I(BPF_MISC | BPF_TXA), s_retA);
        Check(0, I(BPF_LDX | BPF_B | BPF_MSH, 16), I(BPF_RET | BPF_K, 7));

        Check(16, I(BPF_LD | BPF_W | BPF_LEN), s_retA);
        Check(16, I(BPF_LDX | BPF_W | BPF_LEN), I(BPF_MISC | BPF_TXA), s_retA);
        Check(0xdeadbeef, I(BPF_LD | BPF_IMM, 0xdeadbeef), s_retA);
    }

    [Fact]
    public void ClassicBpf_ScratchMemory_StoresAndLoads()
    {
        Check(0, I(BPF_LD | BPF_MEM, 5), s_retA); // scratch starts zeroed
        Check(42, I(BPF_LD | BPF_IMM, 42), I(BPF_ST, 3), I(BPF_LD | BPF_IMM, 0), I(BPF_LDX | BPF_MEM, 3), I(BPF_MISC | BPF_TXA), s_retA);
        Check(9, I(BPF_LDX | BPF_IMM, 9), I(BPF_STX, 15), I(BPF_LD | BPF_MEM, 15), s_retA);
        Assert.Throws<InvalidOperationException>(() => Run([I(BPF_ST, 16), s_retA], s_frame));
    }

    [Fact]
    public void ClassicBpf_Alu_WithConstantAndX()
    {
        (int Op, uint A, uint Operand, uint Result)[] cases =
        [
            (BPF_ADD, 0xffffffff, 2, 1),
            (BPF_SUB, 1, 2, 0xffffffff),
            (BPF_MUL, 0x10000, 0x10001, 0x10000),
            (BPF_DIV, 100, 7, 14),
            (BPF_MOD, 100, 7, 2),
            (BPF_AND, 0xff00ff00, 0x0ff00ff0, 0x0f000f00),
            (BPF_OR, 0xf0, 0x0f, 0xff),
            (BPF_XOR, 0xff, 0x0f, 0xf0),
            (BPF_LSH, 1, 31, 0x80000000),
            (BPF_LSH, 1, 32, 0),
            (BPF_RSH, 0x80000000, 31, 1),
            (BPF_RSH, 0x80000000, 40, 0),
        ];
        foreach (var (op, a, operand, result) in cases)
        {
            Check(result, I(BPF_LD | BPF_IMM, a), I(BPF_ALU | op | BPF_K, operand), s_retA);
            Check(result, I(BPF_LD | BPF_IMM, a), I(BPF_LDX | BPF_IMM, operand), I(BPF_ALU | op | BPF_X), s_retA);
        }

        Check(0xfffffffb, I(BPF_LD | BPF_IMM, 5), I(BPF_ALU | BPF_NEG), s_retA);
        Check(0, I(BPF_LD | BPF_IMM, 5), I(BPF_ALU | BPF_DIV | BPF_K, 0), I(BPF_RET | BPF_K, 7));
        Check(0, I(BPF_LD | BPF_IMM, 5), I(BPF_ALU | BPF_MOD | BPF_K, 0), I(BPF_RET | BPF_K, 7));
        Check(0, I(BPF_LD | BPF_IMM, 5), I(BPF_LDX | BPF_IMM, 0), I(BPF_ALU | BPF_DIV | BPF_X), I(BPF_RET | BPF_K, 7));
        Check(0, I(BPF_LD | BPF_IMM, 5), I(BPF_LDX | BPF_IMM, 0), I(BPF_ALU | BPF_MOD | BPF_X), I(BPF_RET | BPF_K, 7));
        Check(3, I(BPF_LD | BPF_IMM, 3), I(BPF_MISC | BPF_TAX), I(BPF_LD | BPF_IMM, 0), I(BPF_MISC | BPF_TXA), s_retA);
    }

    [Fact]
    public void ClassicBpf_Jumps_TakeTheRightBranch()
    {
        (int Op, uint A, uint Operand, bool Taken)[] cases =
        [
            (BPF_JEQ, 5, 5, true),
            (BPF_JEQ, 5, 6, false),
            (BPF_JGT, 6, 5, true),
            (BPF_JGT, 5, 5, false),
            (BPF_JGT, 0x80000000, 1, true), // unsigned
            (BPF_JGE, 5, 5, true),
            (BPF_JGE, 4, 5, false),
            (BPF_JSET, 0x1234, 0x0004, true),
            (BPF_JSET, 0x1234, 0x0003, false),
        ];
        foreach (var (op, a, operand, taken) in cases)
        {
            uint expected = taken ? 1u : 2u;
            Check(expected, I(BPF_LD | BPF_IMM, a), I(BPF_JMP | op | BPF_K, operand, 1, 3),
                I(BPF_RET | BPF_K, 9), I(BPF_RET | BPF_K, 1), I(BPF_RET | BPF_K, 9), I(BPF_RET | BPF_K, 2));
            Check(expected, I(BPF_LD | BPF_IMM, a), I(BPF_LDX | BPF_IMM, operand), I(BPF_JMP | op | BPF_X, 0, 1, 3),
                I(BPF_RET | BPF_K, 9), I(BPF_RET | BPF_K, 1), I(BPF_RET | BPF_K, 9), I(BPF_RET | BPF_K, 2));
        }

        Check(4, I(BPF_JMP | BPF_JA, 2), I(BPF_RET | BPF_K, 9), I(BPF_RET | BPF_K, 9), I(BPF_RET | BPF_K, 4));
        Assert.Throws<InvalidOperationException>(() => Run([I(BPF_JMP | BPF_JA, 5), s_retA], s_frame));
        Assert.Throws<InvalidOperationException>(() => Run([I(BPF_LD | BPF_IMM, 1)], s_frame)); // falls off the end
        Assert.Throws<InvalidOperationException>(() => Run([I(0xff), s_retA], s_frame));
    }

    [SkippableFact]
    public void PcapReference_Layouts_AndAPlainProgram()
    {
        PcapReference.Require();
        Assert.Equal(8, Marshal.SizeOf<PcapInsn>());
        Assert.Equal(IntPtr.Size == 8 ? 16 : 8, Marshal.SizeOf<PcapProgram>());
        Assert.Equal(IntPtr.Size, (int)Marshal.OffsetOf<PcapProgram>(nameof(PcapProgram.Instructions)));

        ClassicInsn[] ip = PcapReference.Compile("ip");
        Assert.Equal(
            "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 3\n(002) ret      #262144\n(003) ret      #0\n",
            Disassemble(ip));

        var error = Assert.Throws<PcapCompileException>(() => PcapReference.Compile("net 10.200.0.1/16"));
        Assert.Contains("non-network bits", error.Error, StringComparison.Ordinal);
        Assert.True(Assert.Throws<PcapCompileException>(() => PcapReference.Compile("ip and arp")).RejectsAllPackets);
        ClassicInsn[] nothing = PcapReference.CompileReference("ip and arp");
        Assert.All(FilterFrames.Generate(1, 100), f => Assert.Equal(0u, Run(nothing, f)));
    }

    [SkippableFact]
    public void ClassicBpf_IpUdpPort53_MatchesHandBuiltFrames()
    {
        PcapReference.Require();
        ClassicInsn[] program = PcapReference.Compile("ip and udp port 53");
        output.WriteLine(Disassemble(program));
        bool Matches(byte[] frame) => Run(program, frame) != 0;

        Assert.True(Matches(Udp4(sport: 40000, dport: 53)));
        Assert.True(Matches(Udp4(sport: 53, dport: 40000)));
        Assert.False(Matches(Udp4(sport: 40000, dport: 54)));
        Assert.False(Matches(Udp4(sport: 40000, dport: 53, protocol: 6)));           // TCP
        Assert.True(Matches(Udp4(sport: 40000, dport: 53, optionWords: 3)));         // IHL 8: ports behind the options
        Assert.False(Matches(Udp4(sport: 40000, dport: 80, optionWords: 3, optionByte: 0x35))); // 53s in the options only
        Assert.True(Matches(Udp4(sport: 40000, dport: 53, fragment: 0x2000)));       // MF, first fragment: has ports
        Assert.False(Matches(Udp4(sport: 40000, dport: 53, fragment: 0x0001)));      // a later fragment: no ports
        Assert.False(Matches(Udp4(sport: 40000, dport: 53, etherType: 0x86dd)));
        Assert.False(Matches(Udp4(sport: 40000, dport: 53)[..37]));                  // cut inside the destination port
        Assert.True(Matches(Udp4(sport: 40000, dport: 53)[..38]));                   // cut right after it
        byte[] plain = Udp4(sport: 40000, dport: 53);
        Assert.False(Matches([.. plain[..12], 0x81, 0x00, 0x00, 0x0a, .. plain[12..]]));  // tagged: "ip" is at 12
    }

    /// <summary>Ethernet + IPv4 (+ option words) + UDP header + 4 bytes of data.</summary>
    private static byte[] Udp4(ushort sport, ushort dport, byte protocol = 17, int optionWords = 0, byte optionByte = 1,
        ushort fragment = 0, ushort etherType = 0x0800)
    {
        int ihl = 5 + optionWords;
        var f = new byte[14 + (ihl * 4) + 8 + 4];
        f[0] = 2;
        f[5] = 1;
        f[6] = 2;
        f[11] = 2;
        f[12] = (byte)(etherType >> 8);
        f[13] = (byte)etherType;
        f[14] = (byte)(0x40 | ihl);
        f[16] = (byte)((f.Length - 14) >> 8);
        f[17] = (byte)(f.Length - 14);
        f[20] = (byte)(fragment >> 8);
        f[21] = (byte)fragment;
        f[22] = 64;
        f[23] = protocol;
        byte[] src = [10, 200, 0, 1];
        byte[] dst = [10, 200, 0, 2];
        src.CopyTo(f, 26);
        dst.CopyTo(f, 30);
        for (int i = 34; i < 14 + (ihl * 4); i++)
        {
            f[i] = optionByte;
        }

        int l4 = 14 + (ihl * 4);
        f[l4] = (byte)(sport >> 8);
        f[l4 + 1] = (byte)sport;
        f[l4 + 2] = (byte)(dport >> 8);
        f[l4 + 3] = (byte)dport;
        f[l4 + 5] = 12;
        return f;
    }

    [SkippableFact]
    public void ClassicBpf_OnManyProgramsAndFrames_AgreesWithLibpcapsInterpreter()
    {
        PcapReference.Require();
        List<byte[]> frames = FilterFrames.Generate(7, 300);
        var expressions = FilterExpressions.Fixed.Concat(FilterExpressions.Generate(7, 300));
        int runs = 0;
        var disagreements = new List<string>();
        foreach (string expression in expressions)
        {
            ClassicInsn[] program = PcapReference.CompileReference(expression);
            foreach (byte[] frame in frames)
            {
                uint ours = Run(program, frame);
                uint theirs = PcapReference.Filter(program, frame);
                runs++;
                if (ours != theirs && disagreements.Count < 5)
                {
                    disagreements.Add($"'{expression}': ClassicBpf {ours}, bpf_filter {theirs} on "
                        + FilterFrames.Describe(frame) + Disassemble(program));
                }
            }
        }

        output.WriteLine($"{runs} runs");
        Assert.True(disagreements.Count == 0, string.Join("\n", disagreements));
    }

    [SkippableFact]
    public void FilterExpressions_FixedAndGenerated_AllCompileWithLibpcap()
    {
        PcapReference.Require();
        var refused = new List<string>();
        int rejectAll = 0;
        List<string> generated = FilterExpressions.Generate(11, 2000);
        foreach (string expression in FilterExpressions.Fixed.Concat(generated))
        {
            try
            {
                PcapReference.Compile(expression);
            }
            catch (PcapCompileException e) when (e.RejectsAllPackets)
            {
                rejectAll++;
            }
            catch (PcapCompileException e)
            {
                refused.Add(e.Message);
            }
        }

        output.WriteLine($"{rejectAll} of {FilterExpressions.Fixed.Length + generated.Count} expressions match nothing");
        Assert.True(refused.Count == 0, string.Join("\n", refused.Take(20)));
    }

    [SkippableFact]
    public void FilterExpressions_Generated_MostMatchSomeFramesAndMissOthers()
    {
        PcapReference.Require();
        List<byte[]> frames = FilterFrames.Generate(5, 1000);
        List<string> expressions = FilterExpressions.Generate(5, 300);
        int interesting = 0;
        foreach (string expression in expressions)
        {
            ClassicInsn[] program = PcapReference.CompileReference(expression);
            int matches = frames.Count(f => Run(program, f) != 0);
            interesting += matches > 0 && matches < frames.Count ? 1 : 0;
            output.WriteLine($"{matches,4}  {expression}");
        }

        output.WriteLine($"{interesting} of {expressions.Count} expressions match some of {frames.Count} frames and miss others");
        Assert.InRange(interesting, expressions.Count * 6 / 10, expressions.Count);
    }

    [SkippableFact]
    public void FilterFrames_FixedExpressions_EachMatchesSomeAndMissesSome()
    {
        PcapReference.Require();
        List<byte[]> frames = FilterFrames.Generate(FilterDifferentialTests.FixedFrameSeed, FilterDifferentialTests.FixedFrameCount);
        Assert.All(frames, f => Assert.InRange(f.Length, FilterFrames.ShortestTestRun(f), FilterFrames.MaxLength));
        Assert.Equal(frames, FilterFrames.Generate(FilterDifferentialTests.FixedFrameSeed, FilterDifferentialTests.FixedFrameCount));

        var dull = new List<string>();
        foreach (string expression in FilterExpressions.Fixed)
        {
            ClassicInsn[] program;
            try
            {
                program = PcapReference.Compile(expression);
            }
            catch (PcapCompileException e) when (e.RejectsAllPackets)
            {
                continue;
            }

            int matches = frames.Count(f => Run(program, f) != 0);
            output.WriteLine($"{matches,4} / {frames.Count}  {expression}");
            if (matches == 0 || matches == frames.Count)
            {
                dull.Add($"'{expression}' matches {matches} of {frames.Count} frames");
            }
        }

        Assert.True(dull.Count == 0, string.Join("\n", dull));
    }
}
