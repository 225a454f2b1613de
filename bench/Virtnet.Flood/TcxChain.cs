// The alternative to the switch that docs/design.md measures: one program per binding, chained on the real device's
// tcx ingress. Each program here is what such a binding's program must do at least for a frame that is not its
// own: load the destination MAC, compare it with its MAC, and pass the frame on (TCX_NEXT). Holding N of them in
// front of a binding shows what the N+1-th binding of a chain would pay per frame.
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Flood;

internal static class TcxChain
{
    /// <summary>tcx-chain DEVICE N: attaches N such programs to DEVICE's tcx ingress and holds them until SIGINT/SIGTERM.</summary>
    public static int Run(string device, int count, Func<bool> stopped)
    {
        int ifindex;
        using (var rt = Virtnet.Netlink.RtNetlink.Open())
        {
            ifindex = rt.GetLink(device).Index;
        }

        var held = new List<IDisposable>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                var program = BpfProgram.LoadSchedCls($"vnb_chain{i}", Miss(i), device);
                held.Add(program);
                held.Add(TcxLink.Attach(program, ifindex, device, TcxDirection.Ingress));
            }

            Console.WriteLine($"{count} programs on {device} tcx ingress");
            while (!stopped())
            {
                Thread.Sleep(100);
            }

            return 0;
        }
        finally
        {
            held.Reverse();
            held.ForEach(h => h.Dispose());
        }
    }

    /// <summary>if (frame's destination MAC == 02:00:5e:00:ff:i) redirect to ifindex 1, else TCX_NEXT (always, in the benchmark).</summary>
    private static BpfInsn[] Miss(int i)
    {
        var asm = new BpfAssembler();
        var next = asm.DefineLabel();
        uint low = 0x005e0002; // 02:00:5e:00 read little-endian
        int high = 0xff | ((i & 0xff) << 8);
        asm.LdxW(BpfReg.R2, BpfReg.R1, Programs.SkBuffDataOffset)
           .LdxW(BpfReg.R3, BpfReg.R1, Programs.SkBuffDataEndOffset)
           .MovReg(BpfReg.R4, BpfReg.R2)
           .AddImm(BpfReg.R4, 6)
           .JmpReg(BpfCode.BPF_JGT, BpfReg.R4, BpfReg.R3, next)
           .LdxW(BpfReg.R4, BpfReg.R2, 0)
           .LdImm64(BpfReg.R5, low)
           .JneReg(BpfReg.R4, BpfReg.R5, next)
           .LdxH(BpfReg.R4, BpfReg.R2, 4)
           .JneImm(BpfReg.R4, high, next)
           .MovImm(BpfReg.R1, 1)
           .MovImm(BpfReg.R2, 0)
           .Call(BpfHelper.Redirect)
           .Exit()
           .Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }
}
