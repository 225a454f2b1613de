// Classic BPF (the program pcap_compile produces), run in C#: the reference side of the filter tests. The
// semantics are libpcap's bpf_filter (and the kernel's classic interpreter): A, X and M[0..15] start at 0, loads
// are big-endian, a load that reaches past the frame's end ends the program with 0, division and modulo by 0 end
// it with 0, shifts by 32 or more give 0, and "len" is the frame's length.
using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Virtnet.Tests.Filters;

/// <summary>One classic BPF instruction, as struct bpf_insn: opcode, jump offsets if true and if false, constant.</summary>
/// <param name="Code">The opcode: class | size | mode, class | op | source, ...</param>
/// <param name="Jt">Conditional jumps: instructions to skip when the condition holds.</param>
/// <param name="Jf">Conditional jumps: instructions to skip when it does not.</param>
/// <param name="K">The constant: offset, immediate, scratch slot or return value.</param>
internal readonly record struct ClassicInsn(ushort Code, byte Jt, byte Jf, uint K)
{
    /// <summary>The instruction as tcpdump -d prints it, without the "(nnn)" index; jumps print absolute targets.</summary>
    public string ToString(int index) => ClassicBpf.Disassemble(this, index);
}

/// <summary>A classic BPF interpreter and disassembler with libpcap's semantics.</summary>
internal static class ClassicBpf
{
    // linux/bpf_common.h, linux/filter.h: instruction classes.
    public const ushort BPF_LD = 0x00;
    public const ushort BPF_LDX = 0x01;
    public const ushort BPF_ST = 0x02;
    public const ushort BPF_STX = 0x03;
    public const ushort BPF_ALU = 0x04;
    public const ushort BPF_JMP = 0x05;
    public const ushort BPF_RET = 0x06;
    public const ushort BPF_MISC = 0x07;

    // Load sizes.
    public const ushort BPF_W = 0x00;
    public const ushort BPF_H = 0x08;
    public const ushort BPF_B = 0x10;

    // Load modes.
    public const ushort BPF_IMM = 0x00;
    public const ushort BPF_ABS = 0x20;

    /// <summary>linux/filter.h: SKF_AD_OFF (-0x1000) and the VLAN ancillary offsets.</summary>
    private const uint SkfAdOff = 0xFFFFF000;
    private const uint SkfAdVlanTag = 44;
    private const uint SkfAdVlanTagPresent = 48;
    public const ushort BPF_IND = 0x40;
    public const ushort BPF_MEM = 0x60;
    public const ushort BPF_LEN = 0x80;
    public const ushort BPF_MSH = 0xa0;

    // ALU operations.
    public const ushort BPF_ADD = 0x00;
    public const ushort BPF_SUB = 0x10;
    public const ushort BPF_MUL = 0x20;
    public const ushort BPF_DIV = 0x30;
    public const ushort BPF_OR = 0x40;
    public const ushort BPF_AND = 0x50;
    public const ushort BPF_LSH = 0x60;
    public const ushort BPF_RSH = 0x70;
    public const ushort BPF_NEG = 0x80;
    public const ushort BPF_MOD = 0x90;
    public const ushort BPF_XOR = 0xa0;

    // Jump operations.
    public const ushort BPF_JA = 0x00;
    public const ushort BPF_JEQ = 0x10;
    public const ushort BPF_JGT = 0x20;
    public const ushort BPF_JGE = 0x30;
    public const ushort BPF_JSET = 0x40;

    // Operand sources (ALU, JMP) and return values (RET).
    public const ushort BPF_K = 0x00;
    public const ushort BPF_X = 0x08;
    public const ushort BPF_A = 0x10;

    // MISC operations.
    public const ushort BPF_TAX = 0x00;
    public const ushort BPF_TXA = 0x80;

    /// <summary>Scratch memory words (BPF_MEMWORDS).</summary>
    public const int MemWords = 16;

    /// <summary>libpcap's bound on backward unconditional jumps per packet (MAX_BACKWARD_JUMPS).</summary>
    private const int MaxBackwardJumps = 64;

    /// <summary>
    /// Runs <paramref name="program"/> over <paramref name="frame"/>, whose length is also the "len" it sees;
    /// returns what the program returns (non-zero: the frame matches). A program libpcap's validator would refuse
    /// (unknown opcode, scratch slot past 15, control leaving the program) throws
    /// <see cref="InvalidOperationException"/>: pcap_compile never produces one, so it means a broken harness.
    /// </summary>
    public static uint Run(ReadOnlySpan<ClassicInsn> program, ReadOnlySpan<byte> frame) => Run(program, frame, vlanPresent: false, vlanTci: 0);

    /// <summary>
    /// As the kernel runs a socket filter over a received frame whose outer VLAN tag (if any) is in the skb's metadata:
    /// <paramref name="frame"/> without it, <paramref name="vlanPresent"/> and <paramref name="vlanTci"/> for the
    /// ancillary loads of a live-compiled program (SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TAG).
    /// </summary>
    public static uint Run(ReadOnlySpan<ClassicInsn> program, ReadOnlySpan<byte> frame, bool vlanPresent, ushort vlanTci)
    {
        uint a = 0;
        uint x = 0;
        Span<uint> mem = stackalloc uint[MemWords];
        mem.Clear();
        int length = frame.Length;
        int backwardJumps = 0;
        int pc = 0;
        while (true)
        {
            if ((uint)pc >= (uint)program.Length)
            {
                throw new InvalidOperationException(
                    $"classic BPF: control reached instruction {pc} of a {program.Length}-instruction program");
            }

            ClassicInsn insn = program[pc];
            uint k = insn.K;
            switch (insn.Code)
            {
                case BPF_RET | BPF_K:
                    return k;
                case BPF_RET | BPF_A:
                    return a;

                case BPF_LD | BPF_W | BPF_ABS:
                case BPF_LD | BPF_H | BPF_ABS:
                case BPF_LD | BPF_B | BPF_ABS:
                    if (k is SkfAdOff + SkfAdVlanTag or SkfAdOff + SkfAdVlanTagPresent)
                    {
                        // Linux's ancillary loads, in live-compiled programs: the skb's VLAN metadata.
                        a = k == SkfAdOff + SkfAdVlanTagPresent ? (vlanPresent ? 1u : 0u) : vlanTci;
                        break;
                    }

                    if (!TryLoad(frame, k, insn.Code & 0x18, out a))
                    {
                        return 0;
                    }

                    break;
                case BPF_LD | BPF_W | BPF_IND:
                case BPF_LD | BPF_H | BPF_IND:
                case BPF_LD | BPF_B | BPF_IND:
                    if (!TryLoad(frame, (ulong)x + k, insn.Code & 0x18, out a))
                    {
                        return 0;
                    }

                    break;
                case BPF_LD | BPF_W | BPF_LEN:
                    a = (uint)length;
                    break;
                case BPF_LDX | BPF_W | BPF_LEN:
                    x = (uint)length;
                    break;
                case BPF_LDX | BPF_B | BPF_MSH:
                    if (k >= (uint)length)
                    {
                        return 0;
                    }

                    x = (uint)(frame[(int)k] & 0xf) << 2;
                    break;
                case BPF_LD | BPF_IMM:
                    a = k;
                    break;
                case BPF_LDX | BPF_IMM:
                    x = k;
                    break;
                case BPF_LD | BPF_MEM:
                    a = mem[Slot(k, pc)];
                    break;
                case BPF_LDX | BPF_MEM:
                    x = mem[Slot(k, pc)];
                    break;
                case BPF_ST:
                    mem[Slot(k, pc)] = a;
                    break;
                case BPF_STX:
                    mem[Slot(k, pc)] = x;
                    break;

                case BPF_JMP | BPF_JA:
                    {
                        long target = pc + 1L + (int)k;
                        if (target < 0 || target >= program.Length)
                        {
                            throw new InvalidOperationException($"classic BPF: ja at {pc} jumps to {target}, outside the program");
                        }

                        if ((int)k < 0 && ((int)k == -1 || backwardJumps++ >= MaxBackwardJumps))
                        {
                            return 0;
                        }

                        pc = (int)target;
                        continue;
                    }

                case BPF_JMP | BPF_JEQ | BPF_K:
                case BPF_JMP | BPF_JGT | BPF_K:
                case BPF_JMP | BPF_JGE | BPF_K:
                case BPF_JMP | BPF_JSET | BPF_K:
                case BPF_JMP | BPF_JEQ | BPF_X:
                case BPF_JMP | BPF_JGT | BPF_X:
                case BPF_JMP | BPF_JGE | BPF_X:
                case BPF_JMP | BPF_JSET | BPF_X:
                    {
                        uint operand = (insn.Code & BPF_X) != 0 ? x : k;
                        bool taken = (insn.Code & 0xf0) switch
                        {
                            BPF_JEQ => a == operand,
                            BPF_JGT => a > operand,
                            BPF_JGE => a >= operand,
                            _ => (a & operand) != 0,
                        };
                        pc += 1 + (taken ? insn.Jt : insn.Jf);
                        continue;
                    }

                case BPF_ALU | BPF_NEG:
                    a = 0u - a;
                    break;
                case BPF_MISC | BPF_TAX:
                    x = a;
                    break;
                case BPF_MISC | BPF_TXA:
                    a = x;
                    break;

                default:
                    if ((insn.Code & 0x07) == BPF_ALU && (insn.Code & ~0xf8) == BPF_ALU && IsAluOp(insn.Code & 0xf0))
                    {
                        uint operand = (insn.Code & BPF_X) != 0 ? x : k;
                        if (!TryAlu(insn.Code & 0xf0, ref a, operand))
                        {
                            return 0;
                        }

                        break;
                    }

                    throw new InvalidOperationException($"classic BPF: unknown opcode 0x{insn.Code:x} at {pc}");
            }

            pc++;
        }
    }

    private static int Slot(uint k, int pc) => k < MemWords
        ? (int)k
        : throw new InvalidOperationException($"classic BPF: scratch slot M[{k}] at {pc} does not exist");

    /// <summary>A big-endian load of 4, 2 or 1 bytes (size field W, H, B) at <paramref name="offset"/>; false past the end.</summary>
    private static bool TryLoad(ReadOnlySpan<byte> frame, ulong offset, int size, out uint value)
    {
        int width = size switch
        {
            BPF_W => 4,
            BPF_H => 2,
            _ => 1,
        };
        if (offset + (ulong)width > (ulong)frame.Length)
        {
            value = 0;
            return false;
        }

        ReadOnlySpan<byte> at = frame.Slice((int)offset, width);
        value = width switch
        {
            4 => BinaryPrimitives.ReadUInt32BigEndian(at),
            2 => BinaryPrimitives.ReadUInt16BigEndian(at),
            _ => at[0],
        };
        return true;
    }

    private static bool IsAluOp(int op) => op is BPF_ADD or BPF_SUB or BPF_MUL or BPF_DIV or BPF_MOD
        or BPF_AND or BPF_OR or BPF_XOR or BPF_LSH or BPF_RSH;

    /// <summary>A = A op operand; false when the operation ends the program (division or modulo by 0).</summary>
    private static bool TryAlu(int op, ref uint a, uint operand)
    {
        switch (op)
        {
            case BPF_ADD:
                a += operand;
                return true;
            case BPF_SUB:
                a -= operand;
                return true;
            case BPF_MUL:
                a *= operand;
                return true;
            case BPF_DIV:
                if (operand == 0)
                {
                    return false;
                }

                a /= operand;
                return true;
            case BPF_MOD:
                if (operand == 0)
                {
                    return false;
                }

                a %= operand;
                return true;
            case BPF_AND:
                a &= operand;
                return true;
            case BPF_OR:
                a |= operand;
                return true;
            case BPF_XOR:
                a ^= operand;
                return true;
            case BPF_LSH:
                a = operand < 32 ? a << (int)operand : 0;
                return true;
            default: // BPF_RSH
                a = operand < 32 ? a >> (int)operand : 0;
                return true;
        }
    }

    /// <summary>The whole program, one instruction a line, in the style of <c>tcpdump -d</c>.</summary>
    public static string Disassemble(ReadOnlySpan<ClassicInsn> program)
    {
        var text = new StringBuilder();
        for (int i = 0; i < program.Length; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"({i:000}) ").Append(Disassemble(program[i], i)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>One instruction at <paramref name="index"/>, e.g. "ldh [12]" or "jeq #0x800 jt 2 jf 5".</summary>
    public static string Disassemble(ClassicInsn insn, int index)
    {
        uint k = insn.K;
        string hex = string.Create(CultureInfo.InvariantCulture, $"#0x{k:x}");
        string dec = string.Create(CultureInfo.InvariantCulture, $"#{k}");
        string size = (insn.Code & 0x18) switch
        {
            BPF_H => "h",
            BPF_B => "b",
            _ => "",
        };
        (string op, string operand) = insn.Code switch
        {
            BPF_RET | BPF_K => ("ret", dec),
            BPF_RET | BPF_A => ("ret", "a"),
            BPF_LD | BPF_W | BPF_LEN => ("ld", "#pktlen"),
            BPF_LDX | BPF_W | BPF_LEN => ("ldx", "#pktlen"),
            BPF_LD | BPF_IMM => ("ld", hex),
            BPF_LDX | BPF_IMM => ("ldx", hex),
            BPF_LD | BPF_MEM => ("ld", $"M[{k}]"),
            BPF_LDX | BPF_MEM => ("ldx", $"M[{k}]"),
            BPF_ST => ("st", $"M[{k}]"),
            BPF_STX => ("stx", $"M[{k}]"),
            BPF_LDX | BPF_B | BPF_MSH => ("ldxb", $"4*([{k}]&0xf)"),
            BPF_ALU | BPF_NEG => ("neg", ""),
            BPF_MISC | BPF_TAX => ("tax", ""),
            BPF_MISC | BPF_TXA => ("txa", ""),
            BPF_JMP | BPF_JA => ("ja", (index + 1L + (int)k).ToString(CultureInfo.InvariantCulture)),
            _ when (insn.Code & 0xe7) == (BPF_LD | BPF_ABS) => ("ld" + size, $"[{k}]"),
            _ when (insn.Code & 0xe7) == (BPF_LD | BPF_IND) => ("ld" + size, $"[x + {k}]"),
            _ when (insn.Code & 0x07) == BPF_ALU => (AluName(insn.Code & 0xf0), (insn.Code & BPF_X) != 0 ? "x" : hex),
            _ when (insn.Code & 0x07) == BPF_JMP => (JumpName(insn.Code & 0xf0), (insn.Code & BPF_X) != 0 ? "x" : hex),
            _ => ("unimp", string.Create(CultureInfo.InvariantCulture, $"0x{insn.Code:x}")),
        };
        if ((insn.Code & 0x07) == BPF_JMP && (insn.Code & 0xf0) != BPF_JA)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"{op,-8} {operand,-16} jt {index + 1 + insn.Jt}\tjf {index + 1 + insn.Jf}");
        }

        return $"{op,-8} {operand}".TrimEnd();
    }

    private static string AluName(int op) => op switch
    {
        BPF_ADD => "add",
        BPF_SUB => "sub",
        BPF_MUL => "mul",
        BPF_DIV => "div",
        BPF_MOD => "mod",
        BPF_AND => "and",
        BPF_OR => "or",
        BPF_XOR => "xor",
        BPF_LSH => "lsh",
        BPF_RSH => "rsh",
        _ => "alu?",
    };

    private static string JumpName(int op) => op switch
    {
        BPF_JEQ => "jeq",
        BPF_JGT => "jgt",
        BPF_JGE => "jge",
        BPF_JSET => "jset",
        _ => "jmp?",
    };
}
