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

internal sealed unsafe class PerfTap : IDisposable
{
    public const string ProgramName = "virtnet_cap";

    /// <summary>The most of a frame a record carries: a perf record is at most 64 KB, header and all.</summary>
    public const int MaxCopy = 65000;

    // The record's own header: when (bpf_ktime_get_ns, CLOCK_MONOTONIC), the frame's length, and its skb VLAN tag.
    private const int MetaSize = 24;
    private const int PagesPerCpu = 1024;

    private readonly Cleanup _owned;
    private readonly CpuBuffer[] _buffers;
    private readonly bool _outgoing;
    private readonly long _realtimeOffset;
    private readonly byte[] _scratch = GC.AllocateArray<byte>(1 << 16, pinned: true);
    private ulong _lost;

    private PerfTap(Cleanup owned, CpuBuffer[] buffers, bool outgoing)
    {
        _owned = owned;
        _buffers = buffers;
        _outgoing = outgoing;

        // bpf_ktime_get_ns is CLOCK_MONOTONIC, as Stopwatch is on Linux: the offset to wall-clock time, once.
        long unixNanos = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
        _realtimeOffset = unixNanos - (long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1e9 / System.Diagnostics.Stopwatch.Frequency));
    }

    /// <summary>The perf buffers' fds, to poll: one per CPU.</summary>
    public IEnumerable<FileDescriptor> Handles => _buffers.Select(b => b.Fd);

    /// <summary>Records the kernel could not write because a buffer was full, so far.</summary>
    public ulong Lost => _lost;

    /// <summary>
    /// Taps <paramref name="hook"/> of the device <paramref name="ifindex"/> (of the calling thread's namespace),
    /// first on it, for the frames <paramref name="test"/> (a filter's test; null: every frame) passes.
    /// </summary>
    public static PerfTap Open(int ifindex, string device, TcxDirection hook, BpfTest? test)
    {
        var owned = new Cleanup();
        try
        {
            var cpus = Cpus.Possible();
            var map = owned.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_PERF_EVENT_ARRAY, "virtnet_capbuf", 4, 4, cpus.Max() + 1));
            var buffers = new List<CpuBuffer>();
            Span<byte> key = stackalloc byte[4];
            Span<byte> value = stackalloc byte[4];
            foreach (int cpu in Cpus.Online())
            {
                var buffer = owned.Add(CpuBuffer.Open(cpu, device));
                buffers.Add(buffer);
                BinaryPrimitives.WriteInt32LittleEndian(key, cpu);
                BinaryPrimitives.WriteInt32LittleEndian(value, buffer.Fd.Fd);
                map.Update(key, value);
            }

            var program = owned.Add(BpfProgram.LoadSchedCls(ProgramName, Program(map, test), device));
            owned.Add(TcxLink.Attach(program, ifindex, device, hook, first: true));
            return new PerfTap(owned, [.. buffers], hook == TcxDirection.Egress);
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
    public bool Drain<T>(ref T state, CaptureRing.Visitor<T> visit)
    {
        foreach (var buffer in _buffers)
        {
            if (!DrainOne(buffer, ref state, visit))
            {
                return false;
            }
        }

        return true;
    }

    private bool DrainOne<T>(CpuBuffer buffer, ref T state, CaptureRing.Visitor<T> visit)
    {
        byte* page = buffer.Base;
        ulong head = Volatile.Read(ref *(ulong*)(page + Libc.PerfDataHead));
        ulong tail = *(ulong*)(page + Libc.PerfDataTail);
        byte* data = page + *(ulong*)(page + Libc.PerfDataOffset);
        ulong size = *(ulong*)(page + Libc.PerfDataSize);
        bool go = true;
        while (tail < head && go)
        {
            byte* record = data + (tail % size);
            int length = *(ushort*)(record + 6);
            if ((tail % size) + (ulong)length > size)
            {
                // A record that wraps around the buffer's end: put it together first.
                int first = (int)(size - (tail % size));
                fixed (byte* scratch = _scratch)
                {
                    Buffer.MemoryCopy(record, scratch, _scratch.Length, first);
                    Buffer.MemoryCopy(data, scratch + first, _scratch.Length - first, length - first);
                    go = Record(scratch, ref state, visit);
                }
            }
            else
            {
                go = Record(record, ref state, visit);
            }

            tail += (ulong)length;
        }

        Volatile.Write(ref *(ulong*)(page + Libc.PerfDataTail), tail);
        return go;
    }

    private bool Record<T>(byte* record, ref T state, CaptureRing.Visitor<T> visit)
    {
        uint type = *(uint*)record;
        if (type == Libc.PERF_RECORD_LOST)
        {
            _lost += *(ulong*)(record + 16);
            return true;
        }

        if (type != Libc.PERF_RECORD_SAMPLE)
        {
            return true;
        }

        int raw = *(int*)(record + 8);
        byte* meta = record + 12;
        int captured = Math.Max(0, raw - MetaSize);
        int length = *(int*)(meta + 8);
        captured = Math.Min(captured, length);
        int tag = *(uint*)(meta + 12) == 0 ? -1 : (BinaryPrimitives.ReverseEndianness((ushort)*(uint*)(meta + 20)) << 16) | (*(ushort*)(meta + 16));
        var frame = new TappedFrame(meta + MetaSize, captured, length, *(long*)meta + _realtimeOffset, _outgoing, tag);
        return visit(ref state, frame);
    }

    public void Dispose() => _owned.Dispose();

    /// <summary>One CPU's BPF output event and its mapped buffer.</summary>
    private sealed class CpuBuffer : IDisposable
    {
        private readonly nuint _length;

        private CpuBuffer(FileDescriptor fd, byte* @base, nuint length)
        {
            Fd = fd;
            Base = @base;
            _length = length;
        }

        public FileDescriptor Fd { get; }

        public byte* Base { get; }

        public static CpuBuffer Open(int cpu, string device)
        {
            const int AttrSize = 128;
            byte* attr = stackalloc byte[AttrSize];
            new Span<byte>(attr, AttrSize).Clear();
            *(uint*)attr = Libc.PERF_TYPE_SOFTWARE;
            *(uint*)(attr + 4) = AttrSize;
            *(ulong*)(attr + 8) = Libc.PERF_COUNT_SW_BPF_OUTPUT;
            *(ulong*)(attr + 16) = 1; // sample_period
            *(ulong*)(attr + 24) = Libc.PERF_SAMPLE_RAW;
            *(ulong*)(attr + 40) = Libc.PerfAttrWatermark;

            // Woken when a quarter is full; the reader also looks every 200 ms, so a trickle is not held back long.
            nuint pageSize = (nuint)Environment.SystemPageSize;
            nuint dataBytes = pageSize * PagesPerCpu;
            *(uint*)(attr + 48) = (uint)(dataBytes / 4);
            var fd = FileDescriptor.FromResult(Libc.perf_event_open(attr, -1, cpu, -1, Libc.PERF_FLAG_FD_CLOEXEC), $"perf_event_open(BPF output, cpu {cpu})", device);
            nuint length = pageSize + dataBytes;
            byte* mapped = (byte*)Libc.mmap(null, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd.Fd, 0);
            if (mapped == (byte*)-1)
            {
                var errno = LastError.Get();
                fd.Dispose();
                throw new VirtnetException("mmap perf buffer", device, errno);
            }

            return new CpuBuffer(fd, mapped, length);
        }

        public void Dispose()
        {
            Libc.munmap(Base, _length);
            Fd.Dispose();
        }
    }
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
