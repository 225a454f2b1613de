// eBPF instructions as text, in the kernel verifier's notation (r0 = *(u16 *)(r3 + 12)), for `virtnet filter
// --explain` and for test failure messages.
using System.Globalization;
using System.Text;
using static Virtnet.Bpf.BpfCode;

namespace Virtnet.Bpf;

internal static class BpfText
{
    /// <summary>One line per instruction slot: "(007) if w0 != 0x800 goto 12".</summary>
    public static string Disassemble(ReadOnlySpan<BpfInsn> program)
    {
        var text = new StringBuilder();
        for (int pc = 0; pc < program.Length; pc++)
        {
            var insn = program[pc];
            text.Append(CultureInfo.InvariantCulture, $"({pc:000}) ");
            if (insn.Code == (BPF_LD | BPF_IMM | BPF_DW) && pc + 1 < program.Length)
            {
                ulong value = (uint)insn.Imm | ((ulong)(uint)program[pc + 1].Imm << 32);
                text.Append(insn.Src == (BpfReg)1 ? $"r{(int)insn.Dst} = map fd {insn.Imm}" : $"r{(int)insn.Dst} = {Hex(value)} ll").Append('\n');
                pc++;
                continue;
            }

            text.Append(Line(insn, pc)).Append('\n');
        }

        return text.ToString();
    }

    private static string Hex(ulong value) => value < 10 ? value.ToString(CultureInfo.InvariantCulture) : $"0x{value:x}";

    private static string Imm(int value) => value is >= 0 and < 10 ? value.ToString(CultureInfo.InvariantCulture) : value < 0 ? value.ToString(CultureInfo.InvariantCulture) : $"0x{value:x}";

    private static string Size(int code) => (code & 0x18) switch { BPF_B => "u8", BPF_H => "u16", BPF_W => "u32", _ => "u64" };

    private static string Line(BpfInsn insn, int pc)
    {
        int cls = insn.Code & 0x07;
        int op = insn.Code & 0xf0;
        bool x = (insn.Code & BPF_X) != 0;
        string dst = $"r{(int)insn.Dst}";
        string src = $"r{(int)insn.Src}";
        string off = insn.Offset >= 0 ? $"+ {insn.Offset}" : $"- {-insn.Offset}";
        switch (cls)
        {
            case BPF_LDX:
                return $"{dst} = *({Size(insn.Code)} *)({src} {off})";
            case BPF_STX:
                return $"*({Size(insn.Code)} *)({dst} {off}) = {src}";
            case BPF_ST:
                return $"*({Size(insn.Code)} *)({dst} {off}) = {Imm(insn.Imm)}";
            case BPF_LD:
                return (insn.Code & 0xe0) == BPF_IND
                    ? $"r0 = ntoh(*({Size(insn.Code)} *)(skb + {src} + {insn.Imm}))   ; 0 from the program past the end"
                    : $"r0 = ntoh(*({Size(insn.Code)} *)(skb + {insn.Imm}))   ; 0 from the program past the end";
            case BPF_ALU or BPF_ALU64:
            {
                string reg = cls == BPF_ALU ? $"w{(int)insn.Dst}" : dst;
                string operand = x ? (cls == BPF_ALU ? $"w{(int)insn.Src}" : src) : Imm(insn.Imm);
                return op switch
                {
                    0xd0 => $"{dst} = {(x ? "be" : "le")}{insn.Imm}({dst})",
                    BPF_NEG => $"{reg} = -{reg}",
                    BPF_MOV => $"{reg} = {operand}",
                    _ => $"{reg} {AluOp(op)}= {operand}",
                };
            }

            case BPF_JMP or BPF_JMP32:
            {
                int target = pc + 1 + insn.Offset;
                if (op == BPF_JA)
                {
                    return $"goto {target}";
                }

                if (op == BPF_CALL)
                {
                    return $"call {HelperName(insn.Imm)}";
                }

                if (op == BPF_EXIT)
                {
                    return "exit";
                }

                string reg = cls == BPF_JMP32 ? $"w{(int)insn.Dst}" : dst;
                string operand = x ? (cls == BPF_JMP32 ? $"w{(int)insn.Src}" : src) : Imm(insn.Imm);
                return $"if {reg} {JumpOp(op)} {operand} goto {target}";
            }

            default:
                return insn.ToString();
        }
    }

    private static string AluOp(int op) => op switch
    {
        BPF_ADD => "+",
        BPF_SUB => "-",
        BPF_MUL => "*",
        BPF_DIV => "/",
        BPF_OR => "|",
        BPF_AND => "&",
        BPF_LSH => "<<",
        BPF_RSH => ">>",
        BPF_MOD => "%",
        BPF_XOR => "^",
        BPF_ARSH => "s>>",
        _ => "?",
    };

    private static string JumpOp(int op) => op switch
    {
        BPF_JEQ => "==",
        BPF_JNE => "!=",
        BPF_JGT => ">",
        BPF_JGE => ">=",
        BPF_JLT => "<",
        BPF_JLE => "<=",
        BPF_JSET => "&",
        BPF_JSGT => "s>",
        BPF_JSGE => "s>=",
        BPF_JSLT => "s<",
        BPF_JSLE => "s<=",
        _ => "?",
    };

    private static string HelperName(int id) => Enum.IsDefined(typeof(BpfHelper), id) ? $"bpf_{Snake(((BpfHelper)id).ToString())}" : $"helper {id}";

    private static string Snake(string name)
    {
        var text = new StringBuilder();
        foreach (char c in name)
        {
            if (char.IsUpper(c) && text.Length > 0)
            {
                text.Append('_');
            }

            text.Append(char.ToLowerInvariant(c));
        }

        return text.ToString();
    }
}
