// A tiny eBPF assembler with the kernel's opcode names (Documentation/bpf/standardization/instruction-set.rst).
//
// Operand order follows the kernel's filter.h macros: LdxW(dst, src, off) is BPF_LDX_MEM(BPF_W, dst, src, off),
// i.e. dst = *(u32 *)(src + off); StxDW(dst, src, off) is *(u64 *)(dst + off) = src; StW(dst, off, imm) is
// *(u32 *)(dst + off) = imm. Jumps take a label; offsets are counted in instruction slots from the next slot
// (ld_imm64 takes two) and resolved by ToArray().
using Virtnet.Native;
using static Virtnet.Bpf.BpfCode;

namespace Virtnet.Bpf;

/// <summary>A jump target made by <see cref="BpfAssembler.DefineLabel"/> and placed by <see cref="BpfAssembler.Mark"/>.</summary>
internal readonly record struct BpfLabel(int Index);

internal sealed class BpfAssembler
{
    private readonly List<BpfInsn> _insns = [];
    private readonly List<int> _labelTargets = [];
    private readonly List<(int Insn, int Label)> _fixups = [];

    /// <summary>Instruction slots emitted so far (ld_imm64 counts two).</summary>
    public int Count => _insns.Count;

    public BpfLabel DefineLabel()
    {
        _labelTargets.Add(-1);
        return new BpfLabel(_labelTargets.Count - 1);
    }

    /// <summary>Places the label at the next instruction.</summary>
    public BpfAssembler Mark(BpfLabel label)
    {
        CheckLabel(label);
        if (_labelTargets[label.Index] >= 0)
        {
            throw new InvalidOperationException($"BPF label {label.Index} is already placed");
        }

        _labelTargets[label.Index] = _insns.Count;
        return this;
    }

    public BpfAssembler Emit(BpfInsn insn)
    {
        _insns.Add(insn);
        return this;
    }

    public BpfAssembler Emit(byte code, BpfReg dst, BpfReg src, short offset, int imm)
        => Emit(new BpfInsn(code, dst, src, offset, imm));

    // ALU64: dst = dst OP imm / dst OP src. MOV is dst = imm (sign-extended to 64 bits) / dst = src.
    public BpfAssembler Alu64Imm(byte op, BpfReg dst, int imm) => Emit((byte)(BPF_ALU64 | op | BPF_K), dst, BpfReg.R0, 0, imm);

    public BpfAssembler Alu64Reg(byte op, BpfReg dst, BpfReg src) => Emit((byte)(BPF_ALU64 | op | BPF_X), dst, src, 0, 0);

    public BpfAssembler MovImm(BpfReg dst, int imm) => Alu64Imm(BPF_MOV, dst, imm);

    public BpfAssembler MovReg(BpfReg dst, BpfReg src) => Alu64Reg(BPF_MOV, dst, src);

    public BpfAssembler AddImm(BpfReg dst, int imm) => Alu64Imm(BPF_ADD, dst, imm);

    public BpfAssembler AddReg(BpfReg dst, BpfReg src) => Alu64Reg(BPF_ADD, dst, src);

    /// <summary>BPF_LD | BPF_IMM | BPF_DW: dst = imm64, two slots (the second holds the high 32 bits).</summary>
    public BpfAssembler LdImm64(BpfReg dst, ulong imm) => LdImm64(dst, BpfReg.R0, imm);

    /// <summary>ld_imm64 with src_reg BPF_PSEUDO_MAP_FD: the verifier replaces the fd with the map's address.</summary>
    public BpfAssembler LdMapFd(BpfReg dst, int mapFd) => LdImm64(dst, (BpfReg)Libc.BPF_PSEUDO_MAP_FD, (uint)mapFd);

    private BpfAssembler LdImm64(BpfReg dst, BpfReg src, ulong imm)
    {
        Emit((byte)(BPF_LD | BPF_IMM | BPF_DW), dst, src, 0, unchecked((int)(uint)imm));
        return Emit(0, BpfReg.R0, BpfReg.R0, 0, unchecked((int)(uint)(imm >> 32)));
    }

    // LDX: dst = *(size *)(src + off)
    public BpfAssembler LdxB(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_LDX | BPF_MEM | BPF_B), dst, src, off, 0);

    public BpfAssembler LdxH(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_LDX | BPF_MEM | BPF_H), dst, src, off, 0);

    public BpfAssembler LdxW(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_LDX | BPF_MEM | BPF_W), dst, src, off, 0);

    public BpfAssembler LdxDW(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_LDX | BPF_MEM | BPF_DW), dst, src, off, 0);

    // STX: *(size *)(dst + off) = src
    public BpfAssembler StxW(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_STX | BPF_MEM | BPF_W), dst, src, off, 0);

    public BpfAssembler StxH(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_STX | BPF_MEM | BPF_H), dst, src, off, 0);

    public BpfAssembler StxDW(BpfReg dst, BpfReg src, short off) => Emit((byte)(BPF_STX | BPF_MEM | BPF_DW), dst, src, off, 0);

    // ST: *(size *)(dst + off) = imm
    public BpfAssembler StW(BpfReg dst, short off, int imm) => Emit((byte)(BPF_ST | BPF_MEM | BPF_W), dst, BpfReg.R0, off, imm);

    public BpfAssembler StH(BpfReg dst, short off, int imm) => Emit((byte)(BPF_ST | BPF_MEM | BPF_H), dst, BpfReg.R0, off, imm);

    public BpfAssembler StDW(BpfReg dst, short off, int imm) => Emit((byte)(BPF_ST | BPF_MEM | BPF_DW), dst, BpfReg.R0, off, imm);

    /// <summary>BPF_JMP | BPF_CALL: r0 = helper(r1..r5).</summary>
    public BpfAssembler Call(BpfHelper helper) => Emit((byte)(BPF_JMP | BPF_CALL), BpfReg.R0, BpfReg.R0, 0, (int)helper);

    public BpfAssembler Exit() => Emit((byte)(BPF_JMP | BPF_EXIT), BpfReg.R0, BpfReg.R0, 0, 0);

    // Jumps: if (dst OP imm/src) goto label.
    public BpfAssembler JmpImm(byte op, BpfReg dst, int imm, BpfLabel target) => Jump((byte)(BPF_JMP | op | BPF_K), dst, BpfReg.R0, imm, target);

    public BpfAssembler JmpReg(byte op, BpfReg dst, BpfReg src, BpfLabel target) => Jump((byte)(BPF_JMP | op | BPF_X), dst, src, 0, target);

    /// <summary>BPF_JMP32: the same test on the low 32 bits of dst (imm not sign-extended to 64).</summary>
    public BpfAssembler Jmp32Imm(byte op, BpfReg dst, int imm, BpfLabel target) => Jump((byte)(BPF_JMP32 | op | BPF_K), dst, BpfReg.R0, imm, target);

    /// <summary>dst = htobe16/32(dst): BPF_ALU | BPF_END | BPF_TO_BE, <paramref name="bits"/> 16 or 32.</summary>
    public BpfAssembler ToBigEndian(BpfReg dst, int bits) => Emit((byte)(BPF_ALU | 0xd0 | BPF_X), dst, BpfReg.R0, 0, bits);

    /// <summary>Classic packet loads kept by eBPF (LD_ABS / LD_IND): r0 = ntoh(*(size *)(skb data + [src +] imm)); R6 must be the skb; a load past the end returns 0 from the program.</summary>
    public BpfAssembler LdAbs(byte size, int offset) => Emit((byte)(BPF_LD | BPF_ABS | size), BpfReg.R0, BpfReg.R0, 0, offset);

    public BpfAssembler LdInd(byte size, BpfReg src, int offset) => Emit((byte)(BPF_LD | BPF_IND | size), BpfReg.R0, src, 0, offset);

    public BpfAssembler Ja(BpfLabel target) => Jump((byte)(BPF_JMP | BPF_JA), BpfReg.R0, BpfReg.R0, 0, target);

    public BpfAssembler JeqImm(BpfReg dst, int imm, BpfLabel target) => JmpImm(BPF_JEQ, dst, imm, target);

    public BpfAssembler JneImm(BpfReg dst, int imm, BpfLabel target) => JmpImm(BPF_JNE, dst, imm, target);

    public BpfAssembler JneReg(BpfReg dst, BpfReg src, BpfLabel target) => JmpReg(BPF_JNE, dst, src, target);

    private BpfAssembler Jump(byte code, BpfReg dst, BpfReg src, int imm, BpfLabel target)
    {
        CheckLabel(target);
        _fixups.Add((_insns.Count, target.Index));
        return Emit(code, dst, src, 0, imm);
    }

    /// <summary>The program with every jump offset resolved. Throws if a used label was never placed.</summary>
    public BpfInsn[] ToArray()
    {
        var program = _insns.ToArray();
        foreach (var (at, label) in _fixups)
        {
            int target = _labelTargets[label];
            if (target < 0)
            {
                throw new InvalidOperationException($"BPF label {label} is used by instruction {at} but never placed");
            }

            int offset = target - (at + 1);
            if (offset is < short.MinValue or > short.MaxValue)
            {
                throw new InvalidOperationException($"BPF jump at {at} to {target} is out of range");
            }

            program[at].Offset = (short)offset;
        }

        return program;
    }

    private void CheckLabel(BpfLabel label)
    {
        if ((uint)label.Index >= (uint)_labelTargets.Count)
        {
            throw new ArgumentException($"BPF label {label.Index} does not belong to this assembler", nameof(label));
        }
    }
}
