// linux/bpf.h struct bpf_insn, linux/bpf_common.h opcode fields, enum bpf_func_id.
using System.Runtime.InteropServices;

namespace Virtnet.Bpf;

/// <summary>struct bpf_insn: opcode, dst_reg:4 | src_reg:4, s16 off, s32 imm. 8 bytes, little-endian hosts only.</summary>
[StructLayout(LayoutKind.Sequential, Size = 8)]
internal struct BpfInsn : IEquatable<BpfInsn>
{
    public byte Code;
    /// <summary>dst_reg in the low nibble, src_reg in the high nibble.</summary>
    public byte Regs;
    public short Offset;
    public int Imm;

    public BpfInsn(byte code, BpfReg dst, BpfReg src, short offset, int imm)
    {
        Code = code;
        Regs = (byte)(((byte)src << 4) | ((byte)dst & 0x0f));
        Offset = offset;
        Imm = imm;
    }

    public readonly BpfReg Dst => (BpfReg)(Regs & 0x0f);

    public readonly BpfReg Src => (BpfReg)(Regs >> 4);

    public readonly bool Equals(BpfInsn other) => Code == other.Code && Regs == other.Regs && Offset == other.Offset && Imm == other.Imm;

    public override readonly bool Equals(object? obj) => obj is BpfInsn other && Equals(other);

    public override readonly int GetHashCode() => HashCode.Combine(Code, Regs, Offset, Imm);

    public static bool operator ==(BpfInsn left, BpfInsn right) => left.Equals(right);

    public static bool operator !=(BpfInsn left, BpfInsn right) => !left.Equals(right);

    /// <summary>"code=0xb7 dst=r1 src=r0 off=0 imm=5": enough to read a failing test or a dump.</summary>
    public override readonly string ToString() => $"code=0x{Code:x2} dst={Dst} src={Src} off={Offset} imm={Imm}";

    /// <summary>The program as the kernel reads it (struct bpf_insn[]).</summary>
    public static byte[] ToBytes(ReadOnlySpan<BpfInsn> program) => MemoryMarshal.AsBytes(program).ToArray();
}

/// <summary>The eleven eBPF registers. R0 return value, R1-R5 arguments (clobbered by calls), R6-R9 callee-saved, R10 frame pointer (read-only).</summary>
internal enum BpfReg : byte
{
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
    R5 = 5,
    R6 = 6,
    R7 = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
}

/// <summary>The opcode fields of linux/bpf_common.h and linux/bpf.h, with the kernel's names. code = class | size/op | mode/source.</summary>
internal static class BpfCode
{
    // instruction classes
    public const byte BPF_LD = 0x00;
    public const byte BPF_LDX = 0x01;
    public const byte BPF_ST = 0x02;
    public const byte BPF_STX = 0x03;
    public const byte BPF_ALU = 0x04;
    public const byte BPF_JMP = 0x05;
    public const byte BPF_JMP32 = 0x06;
    public const byte BPF_ALU64 = 0x07;

    // ld/ldx/st/stx sizes
    public const byte BPF_W = 0x00;
    public const byte BPF_H = 0x08;
    public const byte BPF_B = 0x10;
    public const byte BPF_DW = 0x18;

    // ld/ldx/st/stx modes
    public const byte BPF_IMM = 0x00;
    public const byte BPF_ABS = 0x20;
    public const byte BPF_IND = 0x40;
    public const byte BPF_MEM = 0x60;
    public const byte BPF_ATOMIC = 0xc0;

    // alu operations
    public const byte BPF_ADD = 0x00;
    public const byte BPF_SUB = 0x10;
    public const byte BPF_MUL = 0x20;
    public const byte BPF_DIV = 0x30;
    public const byte BPF_OR = 0x40;
    public const byte BPF_AND = 0x50;
    public const byte BPF_LSH = 0x60;
    public const byte BPF_RSH = 0x70;
    public const byte BPF_NEG = 0x80;
    public const byte BPF_MOD = 0x90;
    public const byte BPF_XOR = 0xa0;
    public const byte BPF_MOV = 0xb0;
    public const byte BPF_ARSH = 0xc0;

    // source operand
    public const byte BPF_K = 0x00;
    public const byte BPF_X = 0x08;

    // jump operations
    public const byte BPF_JA = 0x00;
    public const byte BPF_JEQ = 0x10;
    public const byte BPF_JGT = 0x20;
    public const byte BPF_JGE = 0x30;
    public const byte BPF_JSET = 0x40;
    public const byte BPF_JNE = 0x50;
    public const byte BPF_JSGT = 0x60;
    public const byte BPF_JSGE = 0x70;
    public const byte BPF_CALL = 0x80;
    public const byte BPF_EXIT = 0x90;
    public const byte BPF_JLT = 0xa0;
    public const byte BPF_JLE = 0xb0;
    public const byte BPF_JSLT = 0xc0;
    public const byte BPF_JSLE = 0xd0;
}

/// <summary>enum bpf_func_id: helper numbers as the kernel defines them (stable ABI).</summary>
internal enum BpfHelper
{
    MapLookupElem = 1,
    MapUpdateElem = 2,
    MapDeleteElem = 3,
    KtimeGetNs = 5,
    GetPrandomU32 = 7,
    GetSmpProcessorId = 8,
    SkbStoreBytes = 9,
    TailCall = 12,
    CloneRedirect = 13,
    SkbVlanPush = 18,
    SkbVlanPop = 19,
    Redirect = 23,
    PerfEventOutput = 25,
    SkbLoadBytes = 26,
    SkbChangeType = 32,
    SkbPullData = 39,
    RedirectMap = 51,
    ProbeReadKernel = 113,
    RedirectNeigh = 152,
    RedirectPeer = 155,
}
