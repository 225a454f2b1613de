// Per-CPU perf buffers for BPF output (bpf_perf_event_output into a PERF_EVENT_ARRAY map): one BPF-output perf
// event per online CPU, each with a mapped ring, and the reader that walks their records. What a sample holds is
// the program's business: a parser (IPerfSamples) turns each into a frame. A reader too slow for the buffers loses
// records, which the kernel counts (PERF_RECORD_LOST).
using System.Buffers.Binary;
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Capture;

/// <summary>Turns one sample's raw bytes into a frame for a visitor.</summary>
internal unsafe interface IPerfSamples
{
    bool Sample<T>(byte* raw, int size, ref T state, CaptureRing.Visitor<T> visit);
}

internal sealed unsafe class PerfBuffers : IDisposable
{
    private const int PagesPerCpu = 1024;

    private readonly Cleanup _owned;
    private readonly CpuBuffer[] _buffers;
    private readonly long _realtimeOffset;
    private readonly byte[] _scratch = GC.AllocateArray<byte>(1 << 16, pinned: true);
    private ulong _lost;

    private PerfBuffers(Cleanup owned, BpfMap map, CpuBuffer[] buffers)
    {
        _owned = owned;
        Map = map;
        _buffers = buffers;

        // bpf_ktime_get_ns is CLOCK_MONOTONIC, as Stopwatch is on Linux: the offset to wall-clock time, once.
        long unixNanos = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
        _realtimeOffset = unixNanos - (long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1e9 / System.Diagnostics.Stopwatch.Frequency));
    }

    /// <summary>The PERF_EVENT_ARRAY a program writes to (bpf_perf_event_output with BPF_F_CURRENT_CPU).</summary>
    public BpfMap Map { get; }

    /// <summary>The buffers' fds, to poll: one per CPU.</summary>
    public IEnumerable<FileDescriptor> Handles => _buffers.Select(b => b.Fd);

    /// <summary>Records the kernel could not write because a buffer was full, so far.</summary>
    public ulong Lost => _lost;

    /// <summary>The map (named <paramref name="mapName"/>) and a buffer for each online CPU.</summary>
    public static PerfBuffers Open(string mapName, string device)
    {
        var owned = new Cleanup();
        try
        {
            var cpus = Cpus.Possible();
            var map = owned.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_PERF_EVENT_ARRAY, mapName, 4, 4, cpus.Max() + 1));
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

            return new PerfBuffers(owned, map, [.. buffers]);
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    /// <summary>A bpf_ktime_get_ns time as nanoseconds since the Unix epoch.</summary>
    public long UnixNanos(long monotonic) => monotonic + _realtimeOffset;

    /// <summary>Hands every sample written so far to <paramref name="parser"/>; false when the visitor asked to stop.</summary>
    public bool Drain<T>(IPerfSamples parser, ref T state, CaptureRing.Visitor<T> visit)
    {
        foreach (var buffer in _buffers)
        {
            if (!DrainOne(buffer, parser, ref state, visit))
            {
                return false;
            }
        }

        return true;
    }

    public void Dispose() => _owned.Dispose();

    private bool DrainOne<T>(CpuBuffer buffer, IPerfSamples parser, ref T state, CaptureRing.Visitor<T> visit)
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
                    go = Record(scratch, parser, ref state, visit);
                }
            }
            else
            {
                go = Record(record, parser, ref state, visit);
            }

            tail += (ulong)length;
        }

        Volatile.Write(ref *(ulong*)(page + Libc.PerfDataTail), tail);
        return go;
    }

    private bool Record<T>(byte* record, IPerfSamples parser, ref T state, CaptureRing.Visitor<T> visit)
    {
        uint type = *(uint*)record;
        if (type == Libc.PERF_RECORD_LOST)
        {
            _lost += *(ulong*)(record + 16);
            return true;
        }

        // PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW: header (8), raw size (4), the program's bytes.
        return type != Libc.PERF_RECORD_SAMPLE || parser.Sample(record + 12, *(int*)(record + 8), ref state, visit);
    }

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
