// CONTRACT STUB: linux/bpf.h struct bpf_insn (8 bytes). The BPF helper owns this file.
using System.Runtime.InteropServices;

namespace Virtnet.Bpf;

[StructLayout(LayoutKind.Sequential, Size = 8)]
public struct BpfInsn
{
    public byte Code;
    /// <summary>dst_reg in the low nibble, src_reg in the high nibble.</summary>
    public byte Regs;
    public short Offset;
    public int Imm;
}

/// <summary>A tiny assembler with the kernel's opcode names.</summary>
public sealed class BpfAssembler
{
}
