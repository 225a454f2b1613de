// A capture point that packet taps cannot see: a tcx program, first on its hook, that copies each frame (with when,
// its length and its VLAN tag) into a per-CPU perf buffer (bpf_perf_event_output with the skb's bytes) and
// passes it on unchanged (TCX_NEXT). Needed where a device's own transmissions never reach its packet taps: the
// kernel datapath redirects what the virtual device sends from its tcx egress, before dev_queue_xmit_nit would
// show it to `tcpdump -i`.
//
// The program and its link belong to the capturing process alone: they exist while it runs and vanish with it,
// whatever way it ends. A reader too slow for the buffers loses records, which the kernel counts for it
// (PERF_RECORD_LOST): the frame itself goes on as if nothing were there.
using System.Buffers.Binary;
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Capture;

internal sealed unsafe class PerfTap : IDisposable, IPerfSamples
{
    public const string ProgramName = "virtnet_cap";

    /// <summary>The most of a frame a record carries: a perf record is at most 64 KB, header and all.</summary>
    public const int MaxCopy = 65000;

    // The record's own header: when (bpf_ktime_get_ns, CLOCK_MONOTONIC), the frame's length, and its skb VLAN tag.
    private const int MetaSize = 24;

    private readonly Cleanup _owned;
    private readonly PerfBuffers _buffers;
    private readonly bool _outgoing;

    private PerfTap(Cleanup owned, PerfBuffers buffers, bool outgoing)
    {
        _owned = owned;
        _buffers = buffers;
        _outgoing = outgoing;
    }

    /// <summary>The perf buffers' fds, to poll: one per CPU.</summary>
    public IEnumerable<FileDescriptor> Handles => _buffers.Handles;

    /// <summary>Records the kernel could not write because a buffer was full, so far.</summary>
    public ulong Lost => _buffers.Lost;

    /// <summary>
    /// Taps <paramref name="hook"/> of the device <paramref name="ifindex"/> (of the calling thread's namespace),
    /// first on it, for the frames <paramref name="test"/> (a filter's test; null: every frame) passes.
    /// </summary>
    public static PerfTap Open(int ifindex, string device, TcxDirection hook, BpfTest? test)
    {
        var owned = new Cleanup();
        try
        {
            var buffers = owned.Add(PerfBuffers.Open("virtnet_capbuf", device));
            var program = owned.Add(BpfProgram.LoadSchedCls(ProgramName, Program(buffers.Map, test), device));
            owned.Add(TcxLink.Attach(program, ifindex, device, hook, first: true));
            return new PerfTap(owned, buffers, hook == TcxDirection.Egress);
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    /// <summary>The capture program: (test,) then perf_event_output(skb, map, CURRENT_CPU | min(len, MaxCopy) &lt;&lt; 32, meta, 24); TCX_NEXT.</summary>
    internal static BpfInsn[] Program(BpfMap map, BpfTest? test)
    {
        var asm = new BpfAssembler();
        var copy = asm.DefineLabel();
        var next = asm.DefineLabel();
        var clamp = asm.DefineLabel();
        var shift = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1);
        if (test is not null)
        {
            test(asm, copy, next); // leaves R6 = the skb
            asm.Mark(copy);
        }

        asm.Call(BpfHelper.KtimeGetNs)
           .StxDW(BpfReg.R10, BpfReg.R0, -24)
           .LdxW(BpfReg.R2, BpfReg.R6, 0) // skb->len
           .StxW(BpfReg.R10, BpfReg.R2, -16)
           .LdxW(BpfReg.R3, BpfReg.R6, 20) // vlan_present
           .StxW(BpfReg.R10, BpfReg.R3, -12)
           .LdxW(BpfReg.R3, BpfReg.R6, 24) // vlan_tci
           .StxW(BpfReg.R10, BpfReg.R3, -8)
           .LdxW(BpfReg.R3, BpfReg.R6, 28) // vlan_proto (network order)
           .StxW(BpfReg.R10, BpfReg.R3, -4)
           .MovReg(BpfReg.R3, BpfReg.R2)
           .JmpImm(BpfCode.BPF_JGT, BpfReg.R3, MaxCopy, clamp)
           .Ja(shift)
           .Mark(clamp)
           .MovImm(BpfReg.R3, MaxCopy)
           .Mark(shift)
           .Alu64Imm(BpfCode.BPF_LSH, BpfReg.R3, 32)
           .LdImm64(BpfReg.R4, Libc.BPF_F_CURRENT_CPU)
           .Alu64Reg(BpfCode.BPF_OR, BpfReg.R3, BpfReg.R4)
           .MovReg(BpfReg.R1, BpfReg.R6)
           .LdMapFd(BpfReg.R2, map.Handle.Fd)
           .MovReg(BpfReg.R4, BpfReg.R10)
           .AddImm(BpfReg.R4, -MetaSize)
           .MovImm(BpfReg.R5, MetaSize)
           .Call(BpfHelper.PerfEventOutput)
           .Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>Hands every record written so far to <paramref name="visit"/>; false when the visitor asked to stop.</summary>
    public bool Drain<T>(ref T state, CaptureRing.Visitor<T> visit) => _buffers.Drain(this, ref state, visit);

    bool IPerfSamples.Sample<T>(byte* raw, int size, ref T state, CaptureRing.Visitor<T> visit)
    {
        int captured = Math.Max(0, size - MetaSize);
        int length = *(int*)(raw + 8);
        captured = Math.Min(captured, length);
        int tag = *(uint*)(raw + 12) == 0 ? -1 : (BinaryPrimitives.ReverseEndianness((ushort)*(uint*)(raw + 20)) << 16) | (*(ushort*)(raw + 16));
        var frame = new TappedFrame(raw + MetaSize, captured, length, _buffers.UnixNanos(*(long*)raw), _outgoing, tag);
        return visit(ref state, frame);
    }

    public void Dispose() => _owned.Dispose();
}

/// <summary>The machine's CPUs as /sys/devices/system/cpu lists them ("0-3,5").</summary>
internal static class Cpus
{
    public static int[] Possible() => Read("possible");

    public static int[] Online() => Read("online");

    internal static int[] Parse(string list)
    {
        var cpus = new List<int>();
        foreach (var part in list.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int dash = part.IndexOf('-');
            int first = int.Parse(dash < 0 ? part : part[..dash], System.Globalization.CultureInfo.InvariantCulture);
            int last = dash < 0 ? first : int.Parse(part[(dash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            for (int c = first; c <= last; c++)
            {
                cpus.Add(c);
            }
        }

        return [.. cpus];
    }

    private static int[] Read(string which) => Parse(File.ReadAllText($"/sys/devices/system/cpu/{which}"));
}
