using Virtnet.Bpf;
using Xunit;

namespace Virtnet.Tests.Bpf;

public class ProgramsTests
{
    private static string Hex(BpfInsn[] program) => Convert.ToHexString(BpfInsn.ToBytes(program)).ToLowerInvariant();

    [Fact]
    public void Redirect_IngressFlag_IsFourInstructions()
    {
        var program = Programs.Redirect(ifindex: 5, flags: 1);
        Assert.Equal(
            "b701000005000000" +   // r1 = 5
            "b702000001000000" +   // r2 = BPF_F_INGRESS
            "8500000017000000" +   // call bpf_redirect (23)
            "9500000000000000",    // exit
            Hex(program));
    }

    [Fact]
    public void Redirect_FlagsAboveInt32_UsesLdImm64()
    {
        var program = Programs.Redirect(ifindex: 5, flags: 0x1_0000_0000UL);
        Assert.Equal(5, program.Length);
        Assert.Equal("1802000000000000" + "0000000001000000", Hex(program[1..3]));
    }

    [Fact]
    public void TakeIngress_WithoutCounters_LeavesLoopbackCopiesAlone()
    {
        var program = Programs.TakeIngress(counters: null, key: 0, ifindex: 5, flags: 0);
        Assert.Equal(
            "6112040000000000" +   // r2 = *(u32 *)(r1 + 4)   skb->pkt_type
            "5502020005000000" +   // if r2 != PACKET_LOOPBACK goto +2
            "b7000000ffffffff" +   // r0 = TCX_NEXT (-1)
            "9500000000000000" +   // exit
            "b701000005000000" +   // r1 = 5
            "b702000000000000" +   // r2 = 0
            "8500000017000000" +   // call bpf_redirect
            "9500000000000000",    // exit
            Hex(program));
    }

    [Fact]
    public void SteerByCpu_ReturnsCpuPlusFlag()
    {
        var asm = Programs.SteerByCpuFor(mapFd: 9);
        Assert.Equal(
            "8500000008000000" +   // call bpf_get_smp_processor_id
            "bf06000000000000" +   // r6 = r0
            "620afcff00000000" +   // *(u32 *)(r10 - 4) = 0
            "bfa2000000000000" +   // r2 = r10
            "07020000fcffffff" +   // r2 += -4
            "1811000009000000" + "0000000000000000" + // r1 = map fd 9 (ld_imm64, BPF_PSEUDO_MAP_FD)
            "8500000001000000" +   // call bpf_map_lookup_elem
            "1500020000000000" +   // if r0 == 0 goto +2
            "6101000000000000" +   // r1 = *(u32 *)(r0 + 0)
            "0f16000000000000" +   // r6 += r1
            "bf60000000000000" +   // r0 = r6
            "9500000000000000",    // exit
            Hex(asm));
    }

    [Fact]
    public void Drop_ReturnsTcxDrop()
    {
        Assert.Equal("b700000002000000" + "9500000000000000", Hex(Programs.Drop()));
    }

    [Fact]
    public void CountAndRedirect_GoldenBytes()
    {
        var program = Programs.CountAndRedirect(mapFd: 7, key: 1, ifindex: 5, flags: 0);
        Assert.Equal(
            "bf16000000000000" +   //  0 r6 = r1
            "6167000000000000" +   //  1 r7 = *(u32 *)(r6 + 0)       skb->len
            "620afcff01000000" +   //  2 *(u32 *)(r10 - 4) = 1       key
            "bfa2000000000000" +   //  3 r2 = r10
            "07020000fcffffff" +   //  4 r2 += -4
            "1811000007000000" +   //  5 r1 = map fd 7 (ld_imm64, BPF_PSEUDO_MAP_FD)
            "0000000000000000" +   //  6   second slot
            "8500000001000000" +   //  7 call bpf_map_lookup_elem
            "1500060000000000" +   //  8 if r0 == 0 goto +6 (15)
            "7901000000000000" +   //  9 r1 = *(u64 *)(r0 + 0)
            "0701000001000000" +   // 10 r1 += 1
            "7b10000000000000" +   // 11 *(u64 *)(r0 + 0) = r1
            "7901080000000000" +   // 12 r1 = *(u64 *)(r0 + 8)
            "0f71000000000000" +   // 13 r1 += r7
            "7b10080000000000" +   // 14 *(u64 *)(r0 + 8) = r1
            "b701000005000000" +   // 15 r1 = 5
            "b702000000000000" +   // 16 r2 = 0
            "8500000017000000" +   // 17 call bpf_redirect
            "9500000000000000",    // 18 exit
            Hex(program));
    }

    [Fact]
    public void CountAndRedirect_NullCheckJumpLandsOnRedirect()
    {
        var program = Programs.CountAndRedirect(mapFd: 3, key: 0, ifindex: 9, flags: 1);
        int jump = Array.FindIndex(program, i => i.Code == (BpfCode.BPF_JMP | BpfCode.BPF_JEQ | BpfCode.BPF_K));
        var target = program[jump + 1 + program[jump].Offset];
        Assert.Equal(BpfCode.BPF_ALU64 | BpfCode.BPF_MOV | BpfCode.BPF_K, target.Code);
        Assert.Equal(BpfReg.R1, target.Dst);
        Assert.Equal(9, target.Imm);
        Assert.Equal(BpfCode.BPF_JMP | BpfCode.BPF_EXIT, program[^1].Code);
    }
}
