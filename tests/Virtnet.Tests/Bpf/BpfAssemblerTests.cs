using Virtnet.Bpf;
using Virtnet.Native;
using Xunit;
using static Virtnet.Bpf.BpfReg;

namespace Virtnet.Tests.Bpf;

public class BpfAssemblerTests
{
    private static string Hex(BpfInsn[] program) => Convert.ToHexString(BpfInsn.ToBytes(program)).ToLowerInvariant();

    [Fact]
    public void MovImm_R1Five_EncodesAsKernel()
    {
        Assert.Equal("b701000005000000", Hex(new BpfAssembler().MovImm(R1, 5).ToArray()));
    }

    [Fact]
    public void MovImm_NegativeImmediate_StoresTwosComplement()
    {
        Assert.Equal("b7000000ffffffff", Hex(new BpfAssembler().MovImm(R0, -1).ToArray()));
    }

    [Fact]
    public void MovReg_R6FromR1_PutsSourceInHighNibble()
    {
        var insn = new BpfAssembler().MovReg(R6, R1).ToArray().Single();
        Assert.Equal("bf16000000000000", Hex([insn]));
        Assert.Equal(R6, insn.Dst);
        Assert.Equal(R1, insn.Src);
    }

    [Fact]
    public void MemoryInstructions_EncodeSizeModeAndOffset()
    {
        var program = new BpfAssembler()
            .LdxW(R7, R6, 0)       // 61: LDX|MEM|W
            .LdxDW(R1, R0, 8)      // 79: LDX|MEM|DW
            .StxDW(R0, R1, 8)      // 7b: STX|MEM|DW
            .StxW(R10, R1, -8)     // 63: STX|MEM|W
            .StW(R10, -4, 3)       // 62: ST|MEM|W
            .StDW(R10, -16, 0)     // 7a: ST|MEM|DW
            .LdxH(R2, R1, 12)      // 69
            .LdxB(R3, R1, 23)      // 71
            .ToArray();
        Assert.Equal(
            "6167000000000000" + "7901080000000000" + "7b10080000000000" + "631af8ff00000000" +
            "620afcff03000000" + "7a0af0ff00000000" + "69120c0000000000" + "7113170000000000",
            Hex(program));
    }

    [Fact]
    public void AluInstructions_EncodeImmediateAndRegisterForms()
    {
        var program = new BpfAssembler().AddImm(R2, -4).AddReg(R1, R7).ToArray();
        Assert.Equal("07020000fcffffff" + "0f71000000000000", Hex(program));
    }

    [Fact]
    public void LdMapFd_TakesTwoSlotsWithPseudoMapFdSource()
    {
        var program = new BpfAssembler().LdMapFd(R1, 7).ToArray();
        Assert.Equal(2, program.Length);
        Assert.Equal("1811000007000000" + "0000000000000000", Hex(program));
        Assert.Equal((BpfReg)Libc.BPF_PSEUDO_MAP_FD, program[0].Src);
    }

    [Fact]
    public void LdImm64_WideValue_SplitsLowAndHighHalves()
    {
        var program = new BpfAssembler().LdImm64(R2, 0x1122334455667788UL).ToArray();
        Assert.Equal("1802000088776655" + "0000000044332211", Hex(program));
    }

    [Fact]
    public void CallAndExit_EncodeHelperNumber()
    {
        var program = new BpfAssembler().Call(BpfHelper.Redirect).Exit().ToArray();
        Assert.Equal("8500000017000000" + "9500000000000000", Hex(program));
    }

    [Fact]
    public void JeqImm_ForwardLabel_CountsSlotsFromNextInstruction()
    {
        var asm = new BpfAssembler();
        var done = asm.DefineLabel();
        asm.JeqImm(R0, 0, done)      // 0
           .LdImm64(R1, 1)           // 1-2: two slots
           .MovImm(R0, 1)            // 3
           .Mark(done)               // 4
           .Exit();
        var program = asm.ToArray();
        Assert.Equal("1500030000000000", Hex([program[0]]));
    }

    [Fact]
    public void Jump_BackwardLabel_HasNegativeOffset()
    {
        var asm = new BpfAssembler();
        var top = asm.DefineLabel();
        asm.Mark(top).MovImm(R0, 0).JneReg(R0, R1, top).Ja(top).Exit();
        var program = asm.ToArray();
        Assert.Equal("5d10feff00000000", Hex([program[1]]));   // JMP|JNE|X, off -2
        Assert.Equal("0500fdff00000000", Hex([program[2]]));   // JA, off -3
    }

    [Fact]
    public void ToArray_LabelNeverPlaced_Throws()
    {
        var asm = new BpfAssembler();
        asm.JeqImm(R0, 0, asm.DefineLabel()).Exit();
        Assert.Throws<InvalidOperationException>(() => asm.ToArray());
    }

    [Fact]
    public void Mark_LabelPlacedTwice_Throws()
    {
        var asm = new BpfAssembler();
        var label = asm.DefineLabel();
        asm.Mark(label);
        Assert.Throws<InvalidOperationException>(() => asm.Mark(label));
    }

    [Fact]
    public void Mark_LabelOfAnotherAssembler_Throws()
    {
        var other = new BpfAssembler();
        other.DefineLabel();
        var label = other.DefineLabel();
        Assert.Throws<ArgumentException>(() => new BpfAssembler().Mark(label));
    }
}
