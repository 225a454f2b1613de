// The drops that happen in managed code (a handler's drop, a handler that threw, a runt) never are skbs the kernel
// frees, so the drop point's tracepoint cannot see them: while a capture asks for them, the forwarders send each
// one, as a datagram, to the capture's Unix socket (a path under /run/virtnet, which crosses network namespaces).
//
// The frame path pays nothing while no capture runs (a null field). While one runs, a dropped frame costs one
// non-blocking sendmsg from buffers already there (header and reason on the stack, the frame where it lies): no
// allocation, no wait. A capture too slow for its socket loses records, which are counted and travel in the next
// record's header; a capture that went away (its socket refuses) turns the sink off.
//
// Record: magic "VNDR" (u32), lost so far (u32), when (u64 ns since the Unix epoch), the frame's length (u32),
// direction (u8, 0 ingress), cause (u8, DropCause), the reason's length (u16), then the reason (UTF-8: the handler's
// DropReason, the exception's type) and the frame.
using System.Buffers.Binary;
using System.Text;
using Virtnet.Native;

namespace Virtnet.Datapaths;

internal sealed unsafe class DropSink : IDisposable
{
    public const uint Magic = 0x52444e56; // "VNDR"
    public const int HeaderSize = 24;
    public const int MaxReason = 200;
    public const int MaxFrame = 65000;

    private const int AF_UNIX = 1;
    private const int SOCK_DGRAM = 2;
    private const int ECONNREFUSED = 111;

    private readonly FileDescriptor _fd;
    private volatile bool _dead;
    private int _lost;

    private DropSink(FileDescriptor fd, string path)
    {
        _fd = fd;
        Path = path;
    }

    /// <summary>The capture's socket.</summary>
    public string Path { get; }

    /// <summary>The capture went away: the forwarders stop offering.</summary>
    public bool Dead => _dead;

    /// <summary>Records its socket had no room for, so far.</summary>
    public int Lost => Volatile.Read(ref _lost);

    /// <summary>A datagram socket connected to the capture's socket at <paramref name="path"/>.</summary>
    public static DropSink Connect(string path) => new(Datagram(path, bind: false), path);

    /// <summary>
    /// A non-blocking Unix datagram socket connected to <paramref name="path"/>, or bound there with
    /// <paramref name="bind"/> (the capture's end, DropSocket in the CLI).
    /// </summary>
    internal static FileDescriptor Datagram(string path, bool bind)
    {
        var bytes = Encoding.UTF8.GetBytes(path);
        if (bytes.Length > 107)
        {
            throw new VirtnetException(FailureKind.InvalidName, bind ? "bind" : "connect", path, $"{path}: too long for a Unix socket path (108 bytes)", Errno.ENAMETOOLONG);
        }

        var fd = FileDescriptor.FromResult(Libc.socket(AF_UNIX, SOCK_DGRAM | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0), "socket(AF_UNIX)", path);
        try
        {
            // struct sockaddr_un: the family, then the path, NUL-terminated.
            byte* address = stackalloc byte[110];
            new Span<byte>(address, 110).Clear();
            *(ushort*)address = AF_UNIX;
            bytes.CopyTo(new Span<byte>(address + 2, 108));
            int length = 2 + bytes.Length + 1;
            if ((bind ? Libc.bind(fd.Fd, address, length) : Libc.connect(fd.Fd, address, length)) != 0)
            {
                VirtnetException.ThrowLastError(bind ? "bind(AF_UNIX)" : "connect(AF_UNIX)", path);
            }

            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>What a frame a handler dropped by sending it to a port that does not exist is recorded with.</summary>
    public const string NoSuchPort = "sent to a port that does not exist";

    /// <summary>What a frame a handler threw on is recorded with (the exception is in the binding's log).</summary>
    public const string Threw = "the handler threw (the exception is in the binding's log)";

    /// <summary>Sends one dropped frame's record; never blocks, allocates or throws.</summary>
    public void Offer(ReadOnlySpan<byte> frame, Direction direction, DropCause cause, string? reason)
    {
        if (_dead)
        {
            return;
        }

        byte* header = stackalloc byte[HeaderSize];
        byte* why = stackalloc byte[MaxReason];
        int reasonLength = 0;
        if (reason is not null)
        {
            // Cut at a character boundary: GetBytes writes whole characters only, into what room there is.
            var chars = reason.AsSpan(0, Math.Min(reason.Length, MaxReason / 4));
            reasonLength = Encoding.UTF8.GetBytes(chars, new Span<byte>(why, MaxReason));
        }

        int length = Math.Min(frame.Length, MaxFrame);
        var h = new Span<byte>(header, HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(h, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(h[4..], Volatile.Read(ref _lost));
        BinaryPrimitives.WriteInt64LittleEndian(h[8..], (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100);
        BinaryPrimitives.WriteInt32LittleEndian(h[16..], frame.Length);
        h[20] = direction == Direction.Ingress ? (byte)0 : (byte)1;
        h[21] = (byte)cause;
        BinaryPrimitives.WriteUInt16LittleEndian(h[22..], (ushort)reasonLength);
        fixed (byte* data = frame)
        {
            IoVec* iov = stackalloc IoVec[3];
            iov[0] = new IoVec { Base = header, Length = HeaderSize };
            iov[1] = new IoVec { Base = why, Length = (nuint)reasonLength };
            iov[2] = new IoVec { Base = data, Length = (nuint)length };
            var msg = new MsgHdr { Iov = iov, IovLength = 3 };
            if (Libc.sendmsg(_fd.Fd, &msg, Libc.MSG_DONTWAIT | Libc.MSG_NOSIGNAL) >= 0)
            {
                return;
            }

            var errno = LastError.Get();
            if (errno is (Errno)ECONNREFUSED or Errno.ENOENT)
            {
                _dead = true;
            }
            else
            {
                Interlocked.Increment(ref _lost);
            }
        }
    }

    public void Dispose() => _fd.Dispose();
}
