// Walking a batch of received frames the way a batched reader would, and running each through the pipeline.
// Two layouts:
//   - slots: a preallocated, pinned array of fixed-size slots plus a length per slot, as a reader that fills many
//     buffers per system call (readv/recvmmsg-style, or a TAP read loop with a slot array) would leave them;
//   - block: a TPACKET_V3-style block, frames packed one after another, each behind a small header that gives the
//     offset of the next, handed back with a volatile status write at the end.
// The figure is per frame (256 frames per walk: a 64-byte, a VLAN-tagged 64-byte and a 1514-byte frame in turn)
// and isolates the managed cost of a batched datapath from the system calls.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Benchmarks;

[MemoryDiagnoser]
public unsafe class RingWalkBenchmarks
{
    private const int SlotSize = 2048;
    private const int BlockFrameHeader = 16; // next_offset (4), length (4), padding to 16 like tpacket3_hdr's alignment

    private const int Ports = 2;
    private IFrameHandler[] _handlers = [];
    private byte[] _slots = [];
    private int[] _lengths = [];
    private byte[] _block = [];
    private int _blockStatus;
    private long _drops;

    private const int Frames = 256;

    [GlobalSetup]
    public void Setup()
    {
        _handlers = [new CountingHandler()];
        var frames = new[] { Benchmarks.Frames.Make(FrameKind.Untagged), Benchmarks.Frames.Make(FrameKind.Vlan), Benchmarks.Frames.Make(FrameKind.Untagged, 1514) };

        _slots = GC.AllocateArray<byte>(Frames * SlotSize, pinned: true);
        _lengths = new int[Frames];
        for (int i = 0; i < Frames; i++)
        {
            var f = frames[i % frames.Length];
            f.CopyTo(_slots.AsSpan(i * SlotSize));
            _lengths[i] = f.Length;
        }

        int blockSize = 0;
        for (int i = 0; i < Frames; i++)
        {
            blockSize += Align(BlockFrameHeader + frames[i % frames.Length].Length);
        }

        _block = GC.AllocateArray<byte>(blockSize, pinned: true);
        int offset = 0;
        for (int i = 0; i < Frames; i++)
        {
            var f = frames[i % frames.Length];
            int size = Align(BlockFrameHeader + f.Length);
            MemoryMarshal.Write(_block.AsSpan(offset), i == Frames - 1 ? 0 : size);
            MemoryMarshal.Write(_block.AsSpan(offset + 4), f.Length);
            f.CopyTo(_block.AsSpan(offset + BlockFrameHeader));
            offset += size;
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Frames)]
    public long WalkSlots()
    {
        long bytes = 0;
        byte* basePtr = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_slots));
        for (int i = 0; i < _lengths.Length; i++)
        {
            var frame = new Frame(new Span<byte>(basePtr + (i * SlotSize), _lengths[i]), Direction.Ingress);
            if (Pipeline.Decide(_handlers, ref frame, 1, Ports, ref _drops) >= 0)
            {
                bytes += _lengths[i] - VirtioNetHdr.Size;
            }
        }

        return bytes;
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public long WalkBlock()
    {
        long bytes = 0;
        byte* p = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_block));
        while (true)
        {
            int next = *(int*)p;
            int length = *(int*)(p + 4);
            var frame = new Frame(new Span<byte>(p + BlockFrameHeader, length), Direction.Ingress);
            if (Pipeline.Decide(_handlers, ref frame, 1, Ports, ref _drops) >= 0)
            {
                bytes += length - VirtioNetHdr.Size;
            }

            if (next == 0)
            {
                break;
            }

            p += next;
        }

        // Hand the block back to the "kernel" (TP_STATUS_KERNEL = 0) as a TPACKET_V3 reader must.
        Volatile.Write(ref _blockStatus, 0);
        return bytes;
    }

    private static int Align(int n) => (n + 15) & ~15;
}
