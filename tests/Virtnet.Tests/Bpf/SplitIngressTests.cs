// The user datapath's ingress split, run in the kernel with BPF_PROG_TEST_RUN: the verifier accepts the program
// and it sends each kind of frame down the road the design says (docs/design.md).
using Virtnet.Bpf;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Bpf;

public class SplitIngressTests
{
    private const int Redirect = 7; // TC_ACT_REDIRECT: to the pump
    private const int Drop = 2;     // TCX_DROP: the ring has the copy

    private static uint RunOnce(BpfProgram program, byte[] frame) => BpfTestRun.Once(program, frame);

    private static byte[] Frame(ushort etherType, int length, int protocolOffset = -1, byte protocol = 0)
    {
        var f = new byte[length];
        f[0] = 0x02;
        f[6] = 0x02;
        f[11] = 1;
        f[12] = (byte)(etherType >> 8);
        f[13] = (byte)etherType;
        if (etherType == 0x0800 && length >= 34)
        {
            f[14] = 0x45;
            int total = length - 14;
            f[16] = (byte)(total >> 8);
            f[17] = (byte)total;
            f[22] = 64;
        }
        else if (etherType == 0x86DD && length >= 54)
        {
            f[14] = 0x60;
            int payload = length - 54;
            f[18] = (byte)(payload >> 8);
            f[19] = (byte)payload;
            f[21] = 64;
        }

        if (protocolOffset >= 0)
        {
            f[protocolOffset] = protocol;
        }

        return f;
    }

    [SkippableFact]
    public void SplitIngress_EachKindOfFrame_TakesItsRoad()
    {
        Root.Require();
        // BPF_PROG_TEST_RUN takes at most about a page of data, so the slot limit is scaled down to 1000 bytes here.
        using var program = BpfProgram.LoadSchedCls("vn_t_split", Programs.SplitIngress(pumpIndex: 1, maxRingFrame: 1000), "test");
        Assert.Equal((uint)Redirect, RunOnce(program, Frame(0x0800, 74, 23, 6)));        // TCP over IPv4
        Assert.Equal((uint)Redirect, RunOnce(program, Frame(0x86DD, 94, 20, 6)));        // TCP over IPv6
        Assert.Equal((uint)Drop, RunOnce(program, Frame(0x0800, 64, 23, 17)));           // UDP over IPv4: the ring's
        Assert.Equal((uint)Drop, RunOnce(program, Frame(0x86DD, 94, 20, 58)));           // ICMPv6
        Assert.Equal((uint)Drop, RunOnce(program, Frame(0x0806, 60)));                   // ARP
        Assert.Equal((uint)Redirect, RunOnce(program, Frame(0x0800, 1001, 23, 17)));     // too long for a slot
        Assert.Equal((uint)Drop, RunOnce(program, Frame(0x0800, 1000, 23, 17)));         // just fits
        Assert.Equal((uint)Drop, RunOnce(program, Frame(0x0806, 20)));                   // short, not IP: "other"
    }

    [SkippableFact]
    public void RingFilter_LoadsAsSocketFilter()
    {
        Root.Require();
        using var program = BpfProgram.LoadSocketFilter("vn_t_ring", Programs.RingFilter(PacketRing.MaxFrame), "test");
        Assert.True(program.Id > 0);
    }
}
