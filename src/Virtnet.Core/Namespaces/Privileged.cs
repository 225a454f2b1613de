// What making a binding needs CAP_SYS_ADMIN for, and nothing else, in one place:
//   - entering another network namespace (setns) to make something that belongs there: a netlink socket, whose
//     requests then name that namespace's devices; a tcx link, whose ifindex is counted there;
//   - opening a BPF object by id (BPF_{PROG,MAP,LINK}_GET_FD_BY_ID): joining a shared real device whose maps and
//     links another process made, and reading the names of the programs on a hook.
// By default this process does them itself. A process that must make bindings long after it started (`run`, on
// every reload) hands them instead to a broker: a small child process that keeps CAP_SYS_ADMIN, does only these
// operations, and passes back the descriptor it made (SCM_RIGHTS); the parent then drops CAP_SYS_ADMIN. What the
// descriptor lets one do afterwards needs no more than CAP_NET_ADMIN/CAP_BPF: the kernel checks namespaces and ids
// when the object is made or opened, not on each use.
using System.Buffers.Binary;
using System.Text;
using Virtnet.Native;

namespace Virtnet.Namespaces;

/// <summary>
/// The operations that need CAP_SYS_ADMIN (see the file's header), in the kernel's terms: each returns a new owned
/// descriptor, or null and the errno of the call that failed, for the layer that knows what it means to say so.
/// Failing to enter the namespace throws.
/// </summary>
internal interface IPrivilegedOperations
{
    /// <summary>socket(<paramref name="domain"/>, <paramref name="type"/>|SOCK_CLOEXEC, <paramref name="protocol"/>) made inside <paramref name="netns"/>.</summary>
    FileDescriptor SocketIn(NetNamespace netns, int domain, int type, int protocol, string operation);

    /// <summary>BPF_LINK_CREATE (tcx: <paramref name="attachType"/>, <paramref name="flags"/>) made inside <paramref name="netns"/>, where <paramref name="ifindex"/> is counted.</summary>
    FileDescriptor? LinkCreateIn(NetNamespace netns, FileDescriptor program, int ifindex, uint attachType, uint flags, out Errno errno);

    /// <summary>BPF_*_GET_FD_BY_ID (<paramref name="command"/>).</summary>
    FileDescriptor? ById(int command, uint id, out Errno errno);
}

internal static class Privileged
{
    private static IPrivilegedOperations s_operations = InProcessPrivileges.Instance;

    /// <summary>Who does the privileged operations: this process (the default), or a broker.</summary>
    public static IPrivilegedOperations Operations
    {
        get => Volatile.Read(ref s_operations);
        set => Volatile.Write(ref s_operations, value);
    }
}

/// <summary>This process does them itself: it must hold CAP_SYS_ADMIN.</summary>
internal sealed class InProcessPrivileges : IPrivilegedOperations
{
    public static InProcessPrivileges Instance { get; } = new();

    public FileDescriptor SocketIn(NetNamespace netns, int domain, int type, int protocol, string operation)
        => netns.Run(() => FileDescriptor.FromResult(Libc.socket(domain, type | Libc.SOCK_CLOEXEC, protocol), operation));

    public FileDescriptor? LinkCreateIn(NetNamespace netns, FileDescriptor program, int ifindex, uint attachType, uint flags, out Errno errno)
    {
        var (fd, failed) = netns.Run(() => (LinkCreate(program, ifindex, attachType, flags, out var e), e));
        errno = failed;
        return fd;
    }

    public unsafe FileDescriptor? ById(int command, uint id, out Errno errno)
    {
        var attr = new BpfAttrGetId { ProgId = id };
        return Result(Libc.bpf(command, &attr, (uint)sizeof(BpfAttrGetId)), out errno);
    }

    /// <summary>BPF_LINK_CREATE for a tcx hook in the calling thread's namespace.</summary>
    public static unsafe FileDescriptor? LinkCreate(FileDescriptor program, int ifindex, uint attachType, uint flags, out Errno errno)
    {
        var attr = new BpfAttrLinkCreateTcx { ProgFd = (uint)program.Fd, TargetIfindex = (uint)ifindex, AttachType = attachType, Flags = flags };
        return Result(Libc.bpf(Libc.BPF_LINK_CREATE, &attr, (uint)sizeof(BpfAttrLinkCreateTcx)), out errno);
    }

    private static FileDescriptor? Result(int fd, out Errno errno)
    {
        errno = fd < 0 ? LastError.Get() : Errno.OK;
        return fd < 0 ? null : new FileDescriptor(fd);
    }
}

/// <summary>
/// The wire format between a process and its broker, over a SOCK_SEQPACKET socketpair (one message each way per
/// operation). Request: op (1 byte), three int32 and one uint32, then NUL-separated UTF-8 strings; descriptors
/// ride along (the namespace, the program). Reply: status (1 byte: 0 a descriptor follows, 1 none, with the errno, 2 a
/// VirtnetException), kind, errno, then operation, device, extack, hint, message; the descriptor rides along.
/// </summary>
internal static class BrokerWire
{
    public const byte OpSocketIn = 1;
    public const byte OpLinkCreateIn = 2;
    public const byte OpById = 3;

    public const byte StatusFd = 0;
    public const byte StatusNone = 1;
    public const byte StatusError = 2;

    /// <summary>The broker's first message: it keeps only what it should, and serves.</summary>
    public const byte Hello = 0x7f;

    public const int MaxMessage = 4096;
    public const int RequestHeader = 1 + 4 * 4;
    public const int ReplyHeader = 1 + 4 + 4;

    public static int WriteRequest(Span<byte> buffer, byte op, int a, int b, int c, uint d, params ReadOnlySpan<string> strings)
    {
        buffer[0] = op;
        BinaryPrimitives.WriteInt32LittleEndian(buffer[1..], a);
        BinaryPrimitives.WriteInt32LittleEndian(buffer[5..], b);
        BinaryPrimitives.WriteInt32LittleEndian(buffer[9..], c);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[13..], d);
        return RequestHeader + WriteStrings(buffer[RequestHeader..], strings);
    }

    public static int WriteReply(Span<byte> buffer, byte status, VirtnetException? error = null, Errno errno = Errno.OK)
    {
        buffer[0] = status;
        BinaryPrimitives.WriteInt32LittleEndian(buffer[1..], error is null ? 0 : (int)error.Kind);
        BinaryPrimitives.WriteInt32LittleEndian(buffer[5..], (int)(error?.Errno ?? errno));
        return error is null
            ? ReplyHeader
            : ReplyHeader + WriteStrings(buffer[ReplyHeader..], error.Operation, error.Device ?? "", error.ExtAck ?? "", error.Hint ?? "", error.Message);
    }

    /// <summary>The exception a reply carries, made again on this side with the same fields.</summary>
    public static VirtnetException ReadError(ReadOnlySpan<byte> reply)
    {
        var kind = (FailureKind)BinaryPrimitives.ReadInt32LittleEndian(reply[1..]);
        var errno = (Errno)BinaryPrimitives.ReadInt32LittleEndian(reply[5..]);
        var s = ReadStrings(reply[ReplyHeader..], 5);
        string? Or(string v) => v.Length == 0 ? null : v;
        return kind == FailureKind.SystemCall
            ? new VirtnetException(s[0], Or(s[1]), errno, Or(s[2]), Or(s[3]))
            : new VirtnetException(kind, s[0], Or(s[1]), s[4], errno);
    }

    public static string[] ReadStrings(ReadOnlySpan<byte> data, int count)
    {
        var result = new string[count];
        for (int i = 0; i < count; i++)
        {
            int end = data.IndexOf((byte)0);
            if (end < 0)
            {
                result[i] = "";
                data = default;
                continue;
            }

            result[i] = Encoding.UTF8.GetString(data[..end]);
            data = data[(end + 1)..];
        }

        return result;
    }

    private static int WriteStrings(Span<byte> buffer, params ReadOnlySpan<string> strings)
    {
        int at = 0;
        foreach (var s in strings)
        {
            // A string too long for the message is cut: these are names and sentences, never data.
            int room = buffer.Length - at - 1;
            var bytes = Encoding.UTF8.GetBytes(s);
            int n = Math.Min(bytes.Length, Math.Max(0, room));
            bytes.AsSpan(0, n).CopyTo(buffer[at..]);
            at += n;
            buffer[at++] = 0;
        }

        return at;
    }
}

/// <summary>This process asks its broker, one operation at a time, over the socket it holds.</summary>
internal sealed class BrokerClient : IPrivilegedOperations, IDisposable
{
    private const string Op = "privilege broker";
    private readonly FileDescriptor _socket;
    private readonly Lock _gate = new();

    public BrokerClient(FileDescriptor socket) => _socket = socket;

    public FileDescriptor SocketIn(NetNamespace netns, int domain, int type, int protocol, string operation)
    {
        Span<byte> request = stackalloc byte[BrokerWire.MaxMessage];
        int n = BrokerWire.WriteRequest(request, BrokerWire.OpSocketIn, domain, type, protocol, 0, operation, netns.Description);
        return Ask(request[..n], [netns.Handle.Fd], out var errno) ?? throw new VirtnetException(operation, netns.Description, errno);
    }

    public FileDescriptor? LinkCreateIn(NetNamespace netns, FileDescriptor program, int ifindex, uint attachType, uint flags, out Errno errno)
    {
        Span<byte> request = stackalloc byte[BrokerWire.MaxMessage];
        int n = BrokerWire.WriteRequest(request, BrokerWire.OpLinkCreateIn, ifindex, (int)attachType, (int)flags, 0, "", netns.Description);
        return Ask(request[..n], [netns.Handle.Fd, program.Fd], out errno);
    }

    public FileDescriptor? ById(int command, uint id, out Errno errno)
    {
        Span<byte> request = stackalloc byte[BrokerWire.MaxMessage];
        int n = BrokerWire.WriteRequest(request, BrokerWire.OpById, command, 0, 0, id);
        return Ask(request[..n], [], out errno);
    }

    public void Dispose() => _socket.Dispose();

    private FileDescriptor? Ask(ReadOnlySpan<byte> request, ReadOnlySpan<int> fds, out Errno errno)
    {
        errno = Errno.OK;
        var reply = new byte[BrokerWire.MaxMessage];
        var received = new List<FileDescriptor>(1);
        int n;
        lock (_gate)
        {
            var sent = FdPassing.Send(_socket.Fd, request, fds);
            if (sent != Errno.OK)
            {
                throw Gone(sent);
            }

            n = FdPassing.Receive(_socket.Fd, reply, received);
        }

        if (n <= 0)
        {
            throw Gone(n == 0 ? Errno.EIO : (Errno)(-n));
        }

        switch (reply[0])
        {
            case BrokerWire.StatusFd when received.Count == 1:
                return received[0];
            case BrokerWire.StatusNone:
                received.ForEach(f => f.Dispose());
                errno = (Errno)BinaryPrimitives.ReadInt32LittleEndian(reply.AsSpan(5));
                return null;
            case BrokerWire.StatusError:
                received.ForEach(f => f.Dispose());
                throw BrokerWire.ReadError(reply.AsSpan(0, n));
            default:
                received.ForEach(f => f.Dispose());
                throw new VirtnetException(Op, null, Errno.EIO, hint: "its answer was malformed");
        }
    }

    private static VirtnetException Gone(Errno errno)
        => new(Op, null, errno, hint: "the helper that enters namespaces and opens BPF objects by id for this process has exited; restart virtnet");
}

/// <summary>The broker's side: answers its parent's requests until the parent closes the socket.</summary>
internal static class BrokerServer
{
    /// <summary>Serves on <paramref name="socket"/> until its other end closes; returns the process's exit code.</summary>
    public static int Serve(int socket)
    {
        var request = new byte[BrokerWire.MaxMessage];
        var reply = new byte[BrokerWire.MaxMessage];
        var fds = new List<FileDescriptor>(FdPassing.MaxFds);
        while (true)
        {
            fds.Clear();
            int n = FdPassing.Receive(socket, request, fds);
            if (n == 0 || n == -(int)Errno.EBADF || n == -107 /* ENOTCONN */)
            {
                return 0; // the parent is gone
            }

            FileDescriptor? made = null;
            int length;
            try
            {
                made = n < BrokerWire.RequestHeader ? throw new VirtnetException("privilege broker", null, Errno.EINVAL, hint: "a short request")
                    : Do(request.AsSpan(0, n), fds, out var errno);
                length = BrokerWire.WriteReply(reply, made is null ? BrokerWire.StatusNone : BrokerWire.StatusFd, errno: errno);
            }
            catch (VirtnetException e)
            {
                length = BrokerWire.WriteReply(reply, BrokerWire.StatusError, e);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException)
            {
                length = BrokerWire.WriteReply(reply, BrokerWire.StatusError, new VirtnetException("privilege broker", null, Errno.EINVAL, hint: e.Message));
            }
            finally
            {
                foreach (var f in fds)
                {
                    f.Dispose();
                }
            }

            using (made)
            {
                // Sent, the descriptor is the parent's; this copy closes here.
                var sent = made is null ? FdPassing.Send(socket, reply.AsSpan(0, length), []) : FdPassing.Send(socket, reply.AsSpan(0, length), [made.Fd]);
                if (sent != Errno.OK)
                {
                    return 0; // the parent is gone
                }
            }
        }
    }

    private static FileDescriptor? Do(ReadOnlySpan<byte> request, List<FileDescriptor> fds, out Errno errno)
    {
        byte op = request[0];
        int a = BinaryPrimitives.ReadInt32LittleEndian(request[1..]);
        int b = BinaryPrimitives.ReadInt32LittleEndian(request[5..]);
        int c = BinaryPrimitives.ReadInt32LittleEndian(request[9..]);
        uint d = BinaryPrimitives.ReadUInt32LittleEndian(request[13..]);
        var s = BrokerWire.ReadStrings(request[BrokerWire.RequestHeader..], 2);
        var operations = InProcessPrivileges.Instance;
        errno = Errno.OK;
        switch (op)
        {
            case BrokerWire.OpSocketIn when fds.Count == 1:
            {
                using var netns = NetNamespace.Adopt(Take(fds, 0), s[1]);
                return operations.SocketIn(netns, a, b, c, s[0]);
            }

            case BrokerWire.OpLinkCreateIn when fds.Count == 2:
            {
                using var netns = NetNamespace.Adopt(Take(fds, 0), s[1]);
                return operations.LinkCreateIn(netns, fds[1], a, (uint)b, (uint)c, out errno);
            }

            case BrokerWire.OpById when a is Libc.BPF_PROG_GET_FD_BY_ID or Libc.BPF_MAP_GET_FD_BY_ID or Libc.BPF_LINK_GET_FD_BY_ID:
                return operations.ById(a, d, out errno);
            default:
                throw new VirtnetException("privilege broker", null, Errno.EINVAL, hint: $"request {op} with {fds.Count} descriptors is not one it does");
        }
    }

    /// <summary>Moves a received descriptor out of the list, which then no longer closes it.</summary>
    private static FileDescriptor Take(List<FileDescriptor> fds, int i)
    {
        var fd = fds[i];
        fds[i] = new FileDescriptor(-1);
        return fd;
    }
}
