// linux/io_uring.h: a minimal io_uring for batched writes. One ring per forwarder thread (SINGLE_ISSUER), the
// forwarder's TAP queue fds registered as fixed files, IORING_OP_WRITE entries submitted and waited for in one
// io_uring_enter. A TAP write never blocks, so each completes inline during the enter, in submission order; our
// own measurement (bench/experiments/tapwrite.sh): ~1.0 µs a 64-byte frame against ~1.4 µs with write().
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>struct io_sqring_offsets (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoSqringOffsets
{
    public uint Head;
    public uint Tail;
    public uint RingMask;
    public uint RingEntries;
    public uint Flags;
    public uint Dropped;
    public uint Array;
    public uint Resv1;
    public ulong UserAddr;
}

/// <summary>struct io_cqring_offsets (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoCqringOffsets
{
    public uint Head;
    public uint Tail;
    public uint RingMask;
    public uint RingEntries;
    public uint Overflow;
    public uint Cqes;
    public uint Flags;
    public uint Resv1;
    public ulong UserAddr;
}

/// <summary>struct io_uring_params (120 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoUringParams
{
    public uint SqEntries;
    public uint CqEntries;
    public uint Flags;
    public uint SqThreadCpu;
    public uint SqThreadIdle;
    public uint Features;
    public uint WqFd;
    public fixed uint Resv[3];
    public IoSqringOffsets SqOff;
    public IoCqringOffsets CqOff;
}

/// <summary>struct io_uring_sqe (64 bytes), the fields a write uses.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct IoUringSqe
{
    [FieldOffset(0)] public byte Opcode;
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public ushort IoPrio;
    [FieldOffset(4)] public int Fd;
    [FieldOffset(8)] public ulong Off;
    [FieldOffset(16)] public ulong Addr;
    [FieldOffset(24)] public uint Len;
    [FieldOffset(28)] public uint RwFlags;
    [FieldOffset(32)] public ulong UserData;
    [FieldOffset(40)] public ushort BufIndex;
    [FieldOffset(42)] public ushort Personality;
    [FieldOffset(44)] public int SpliceFdIn;
    [FieldOffset(48)] public ulong Addr3;
    [FieldOffset(56)] public ulong Pad2;
}

/// <summary>struct io_uring_cqe (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringCqe
{
    public ulong UserData;
    public int Res;
    public uint Flags;
}

internal sealed unsafe class IoUring : IDisposable
{
    internal const int SYS_io_uring_setup = 425;
    internal const int SYS_io_uring_enter = 426;
    internal const int SYS_io_uring_register = 427;
    internal const uint IORING_SETUP_SINGLE_ISSUER = 1u << 12;
    internal const uint IORING_SETUP_DEFER_TASKRUN = 1u << 13;
    internal const uint IORING_FEAT_SINGLE_MMAP = 1u << 0;
    internal const long IORING_OFF_SQ_RING = 0;
    internal const long IORING_OFF_SQES = 0x10000000;
    internal const uint IORING_ENTER_GETEVENTS = 1u << 0;
    internal const uint IORING_REGISTER_FILES = 2;
    internal const uint IORING_UNREGISTER_FILES = 3;
    internal const byte IORING_OP_WRITE = 23;
    internal const byte IOSQE_FIXED_FILE = 1 << 0;

    private readonly FileDescriptor _fd;
    private readonly byte* _rings;
    private readonly nuint _ringsLength;
    private readonly IoUringSqe* _sqes;
    private readonly nuint _sqesLength;
    private readonly uint* _sqTail;
    private readonly uint* _sqHead;
    private readonly uint _sqMask;
    private readonly uint _sqEntries;
    private readonly uint* _cqHead;
    private readonly uint* _cqTail;
    private readonly uint _cqMask;
    private readonly IoUringCqe* _cqes;
    private uint _pending;

    private IoUring(FileDescriptor fd, byte* rings, nuint ringsLength, IoUringSqe* sqes, nuint sqesLength, in IoUringParams p)
    {
        _fd = fd;
        _rings = rings;
        _ringsLength = ringsLength;
        _sqes = sqes;
        _sqesLength = sqesLength;
        _sqHead = (uint*)(rings + p.SqOff.Head);
        _sqTail = (uint*)(rings + p.SqOff.Tail);
        _sqMask = *(uint*)(rings + p.SqOff.RingMask);
        _sqEntries = *(uint*)(rings + p.SqOff.RingEntries);
        _cqHead = (uint*)(rings + p.CqOff.Head);
        _cqTail = (uint*)(rings + p.CqOff.Tail);
        _cqMask = *(uint*)(rings + p.CqOff.RingMask);
        _cqes = (IoUringCqe*)(rings + p.CqOff.Cqes);

        // The submission array maps slot i to entry i, once and for all.
        uint* array = (uint*)(rings + p.SqOff.Array);
        for (uint i = 0; i < _sqEntries; i++)
        {
            array[i] = i;
        }
    }

    /// <summary>The environment variable that turns io_uring off (value 0): a write() per frame instead.</summary>
    public const string SwitchVariable = "VIRTNET_IO_URING";

    /// <summary>
    /// Whether rings can be made here: not turned off by <see cref="SwitchVariable"/>=0, and the kernel lets us
    /// (io_uring exists and kernel.io_uring_disabled allows it). Probed with a throwaway ring.
    /// </summary>
    public static bool IsAvailable()
    {
        if (Environment.GetEnvironmentVariable(SwitchVariable) == "0")
        {
            return false;
        }

        using var probe = TryCreate(2, []);
        return probe is not null;
    }

    /// <summary>
    /// A ring of <paramref name="entries"/> with <paramref name="files"/> registered (write to them by index), or
    /// null where io_uring is not available (an old kernel, or kernel.io_uring_disabled): callers fall back to write().
    /// </summary>
    public static IoUring? TryCreate(uint entries, ReadOnlySpan<int> files)
    {
        var p = default(IoUringParams);
        p.Flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        int fd = (int)Libc.syscall(SYS_io_uring_setup, (nint)entries, (nint)(&p), 0);
        if (fd < 0)
        {
            return null;
        }

        var handle = new FileDescriptor(fd);
        byte* rings = null;
        nuint ringsLength = 0;
        try
        {
            if ((p.Features & IORING_FEAT_SINGLE_MMAP) == 0)
            {
                return null; // before Linux 5.4; not worth a second mapping here
            }

            ringsLength = Math.Max(p.SqOff.Array + (p.SqEntries * sizeof(uint)), p.CqOff.Cqes + (p.CqEntries * (uint)sizeof(IoUringCqe)));
            rings = (byte*)Libc.mmap(null, ringsLength, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, (nint)IORING_OFF_SQ_RING);
            if (rings == (byte*)-1)
            {
                rings = null;
                return null;
            }

            nuint sqesLength = p.SqEntries * (nuint)sizeof(IoUringSqe);
            var sqes = (IoUringSqe*)Libc.mmap(null, sqesLength, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_POPULATE, fd, (nint)IORING_OFF_SQES);
            if (sqes == (IoUringSqe*)-1)
            {
                return null;
            }

            if (files.Length > 0)
            {
                fixed (int* f = files)
                {
                    if (Libc.syscall(SYS_io_uring_register, fd, (nint)IORING_REGISTER_FILES, (nint)f, files.Length, 0, 0) < 0)
                    {
                        Libc.munmap(sqes, sqesLength);
                        return null;
                    }
                }
            }

            var ring = new IoUring(handle, rings, ringsLength, sqes, sqesLength, p);
            rings = null;
            handle = null!;
            return ring;
        }
        finally
        {
            if (rings is not null)
            {
                Libc.munmap(rings, ringsLength);
            }

            handle?.Dispose();
        }
    }

    /// <summary>Queues a write of <paramref name="length"/> bytes at <paramref name="data"/> to registered file <paramref name="file"/>.</summary>
    public void PrepareWrite(int file, byte* data, int length, ulong userData)
    {
        uint tail = *_sqTail;
        ref IoUringSqe sqe = ref _sqes[tail & _sqMask];
        sqe = default;
        sqe.Opcode = IORING_OP_WRITE;
        sqe.Flags = IOSQE_FIXED_FILE;
        sqe.Fd = file;
        sqe.Addr = (ulong)data;
        sqe.Len = (uint)length;
        sqe.UserData = userData;
        Volatile.Write(ref *_sqTail, tail + 1);
        _pending++;
    }

    /// <summary>
    /// Submits what <see cref="PrepareWrite"/> queued and waits until all of it has completed; returns 0 or a
    /// <see cref="Errno"/> of io_uring_enter itself (the writes' own results come with <see cref="TryReap"/>).
    /// </summary>
    public Errno SubmitAndWait()
    {
        uint toSubmit = _pending;
        uint waitFor = _pending;
        while (toSubmit > 0 || Completed() < waitFor)
        {
            nint r = Libc.syscall(SYS_io_uring_enter, _fd.Fd, (nint)toSubmit, (nint)waitFor, (nint)IORING_ENTER_GETEVENTS, 0, 0);
            if (r < 0)
            {
                var errno = LastError.Get();
                if (errno == Errno.EINTR)
                {
                    continue;
                }

                _pending = 0;
                return errno;
            }

            toSubmit -= (uint)r;
        }

        _pending = 0;
        return Errno.OK;
    }

    /// <summary>The next completion, if any: its user data and how its write ended (OK, or the write's errno).</summary>
    public bool TryReap(out ulong userData, out Errno result)
    {
        uint head = *_cqHead;
        if (head == Volatile.Read(ref *_cqTail))
        {
            userData = 0;
            result = Errno.OK;
            return false;
        }

        ref IoUringCqe cqe = ref _cqes[head & _cqMask];
        userData = cqe.UserData;
        result = cqe.Res < 0 ? (Errno)(-cqe.Res) : Errno.OK;
        Volatile.Write(ref *_cqHead, head + 1);
        return true;
    }

    private uint Completed() => Volatile.Read(ref *_cqTail) - *_cqHead;

    /// <summary>
    /// Gives the registered files back before closing. Closing a ring frees it later, from a kernel worker, and
    /// until then its fixed-file references keep the TAP queues open: the TAP devices would outlive the attach
    /// for a moment (CI saw virtnet0 still present right after teardown). Unregistering drops them now.
    /// </summary>
    public void Dispose()
    {
        Libc.syscall(SYS_io_uring_register, _fd.Fd, (nint)IORING_UNREGISTER_FILES, 0, 0, 0, 0);
        Libc.munmap(_sqes, _sqesLength);
        Libc.munmap(_rings, _ringsLength);
        _fd.Dispose();
    }
}
