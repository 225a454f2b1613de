// The cost of each ingress program alone, in the kernel, without a device: BPF_PROG_TEST_RUN with a repeat count
// over one 64-byte frame. The kernel returns the mean run time per repetition (the program, plus the test harness's
// own per-run work, the same for every program; a redirect is only a verdict here). Used to tell the switch's
// dispatcher from the whole-device passthru program (docs/performance.md).
//   virtnet-flood prog-bench [REPEAT]
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Flood;

internal static class ProgBench
{
    public static int Run(int repeat)
    {
        byte[] mine = [0x02, 0, 0, 0, 0x11, 1];
        var frame = new byte[64];
        mine.CopyTo(frame, 0);
        frame[6] = 0x02;
        frame[11] = 0xbb;
        frame[12] = 0x08;
        frame[14] = 0x45;
        frame[23] = 17;

        using var counters = CounterMap.Create("vnb_cnt", 3);
        using var down = FlagMap.Create("vnb_down");
        using var sw = RealSwitch.CreateUnattached();
        sw.Put(new SwitchKey([0x02, 0, 0, 0, 0, 0xaa], 0), new SwitchEntry(1, SwitchPrograms.FlagIngress, 0, SwitchMode.Host, 0xff));
        for (int slot = 0; slot < 16; slot++)
        {
            byte[] mac = [0x02, 0, 0, 0, 0x11, (byte)(slot + 1)];
            var entry = new SwitchEntry(0x7000 + slot, SwitchPrograms.FlagIngress, 0, SwitchMode.Bridge, slot);
            sw.Put(new SwitchKey(mac, 0), entry);
            sw.SetGroupSlot(slot, entry);
        }

        // The bench lab's 64-byte flood frame (10.200.50.2:9 -> 10.200.50.1:9), for the filters (bench/run.sh's).
        var flood = (byte[])frame.Clone();
        flood[16] = 0; flood[17] = 50;
        flood[22] = 64;
        byte[] gen = [10, 200, 50, 2], host = [10, 200, 50, 1];
        gen.CopyTo(flood, 26);
        host.CopyTo(flood, 30);
        flood[35] = 9; flood[37] = 9;
        var match10 = Filters.PacketFilter.Parse("(udp dst port 9 or icmp or tcp port 5201) and host 10.200.50.2 and dst net 10.200.50.0/24 and ip and not arp and greater 40 and not ip6 and not vlan");
        var nomatch10 = Filters.PacketFilter.Parse("(udp dst port 9 or icmp or tcp) and (host 10.9.9.9 or net 10.8.0.0/16 or arp or less 40 or ip6 or icmp6 or vlan 7 or ether proto 0x88b5)");
        BpfTest Test(Filters.PacketFilter f) => (asm, yes, no) => f.Emit(asm, Filters.FilterContext.Tc, yes, no);

        var programs = new (string Name, BpfInsn[] Insns, byte[] Frame)[]
        {
            ("redirect only", Programs.Redirect(0x7000, 1), frame),
            ("passthru (virtnet_in)", Programs.TakeIngress(counters, 0, 0x7000, 1, peer: false, down, 2), flood),
            ("passthru, 10-term filter, match", Programs.TakeIngress(counters, 0, 0x7000, 1, peer: false, down, 2, Test(match10)), flood),
            ("passthru, 10-term filter, no match", Programs.TakeIngress(counters, 0, 0x7000, 1, peer: false, down, 2, Test(nomatch10)), flood),
            ("switch (virtnet_dsp), 16 bindings", SwitchPrograms.Dispatch(sw.PortsFd, sw.GroupFd, sw.Counts.Handle.Fd), frame),
        };
        foreach (var (name, insns, input) in programs)
        {
            using var program = BpfProgram.LoadSchedCls("vnb_prog", insns, "bench");
            var runs = new List<double>();
            for (int round = 0; round < 5; round++)
            {
                runs.Add(RunMany(program, input, repeat));
            }

            runs.Sort();
            Console.WriteLine($"{name,-36} {runs[2],6:F1} ns a frame (median of 5 x {repeat}; {runs[0]:F1}..{runs[4]:F1})");
        }

        return 0;
    }

    private static double RunMany(BpfProgram program, byte[] frame, int repeat) => program.TestRun(frame, repeat).DurationNs;
}
