// tcx (Linux 6.6): BPF programs on a device's ingress and egress, attached as BPF links.
//
// A tcx link is owned by its fd: it detaches when the last fd closes, including when the process is killed,
// so virtnet never pins links and never leaves a datapath behind. BPF_LINK_CREATE and BPF_PROG_QUERY name
// the device by ifindex in the calling thread's network namespace.
using Virtnet.Namespaces;
using Virtnet.Native;

namespace Virtnet.Bpf;

internal enum TcxDirection
{
    Ingress,
    Egress,
}

/// <summary>A tcx link (BPF_LINK_CREATE, attach type BPF_TCX_INGRESS/EGRESS). Never pinned: it detaches when its fd closes.</summary>
internal sealed class TcxLink : IDisposable
{
    private TcxLink(FileDescriptor handle, int ifindex, string device, TcxDirection direction)
    {
        Handle = handle;
        Ifindex = ifindex;
        Device = device;
        Direction = direction;
    }

    public FileDescriptor Handle { get; }

    public int Ifindex { get; }

    public string Device { get; }

    public TcxDirection Direction { get; }

    /// <summary>linux/bpf.h BPF_F_BEFORE (1U &lt;&lt; 3, Linux 6.6; newer than Debian 12's headers, and a macro BTF does not hold).</summary>
    private const uint BpfFBefore = 1u << 3;

    /// <summary>
    /// Appends the program to the device's tcx hook (flags 0: after the programs already there).
    /// The link holds its own reference to the program: disposing the <see cref="BpfProgram"/> afterwards is fine.
    /// </summary>
    /// <param name="program">The program to run.</param>
    /// <param name="ifindex">The device's index in the calling thread's network namespace.</param>
    /// <param name="device">The device's name, for error messages.</param>
    /// <param name="direction">Its ingress or egress hook.</param>
    /// <param name="first">Put it before every program already there (BPF_F_BEFORE with no anchor), e.g. a mirror
    /// that must see frames before a binding takes them.</param>
    public static TcxLink Attach(BpfProgram program, int ifindex, string device, TcxDirection direction, bool first = false)
        => Made(InProcessPrivileges.LinkCreate(program.Handle, ifindex, Tcx.AttachType(direction), first ? BpfFBefore : 0, out var errno), errno, ifindex, device, direction);

    /// <summary>
    /// <see cref="Attach"/> on a device of another namespace, whose <paramref name="ifindex"/> is counted there:
    /// the link is made inside it (by this process, or by the privilege broker when this one may not enter).
    /// </summary>
    public static TcxLink AttachIn(NetNamespace netns, BpfProgram program, int ifindex, string device, TcxDirection direction, bool first = false, IPrivilegedOperations? via = null)
        => Made((via ?? Privileged.Operations).LinkCreateIn(netns, program.Handle, ifindex, Tcx.AttachType(direction), first ? BpfFBefore : 0, out var errno), errno, ifindex, device, direction);

    private static TcxLink Made(FileDescriptor? fd, Errno errno, int ifindex, string device, TcxDirection direction)
        => fd is null
            ? throw new VirtnetException($"BPF_LINK_CREATE tcx {Tcx.Name(direction)}", device, errno, hint: Hint(errno, ifindex))
            : new TcxLink(fd, ifindex, device, direction);

    public void Dispose() => Handle.Dispose();

    private static string? Hint(Errno errno, int ifindex) => errno switch
    {
        Errno.EINVAL or Errno.EOPNOTSUPP or Errno.ENOTSUPP when !Tcx.IsSupported() => Tcx.NotSupportedHint,
        Errno.ENODEV => $"no device with ifindex {ifindex} in this network namespace",
        Errno.EPERM => "attaching tcx programs needs CAP_NET_ADMIN and CAP_BPF (run as root)",
        Errno.EEXIST => "this program is already attached to that hook",
        _ => null,
    };
}

internal static class Tcx
{
    internal const string NotSupportedHint = "tcx needs Linux 6.6 or newer";

    /// <summary>BPF_PROG_QUERY on a tcx hook: the ids of attached programs (empty when none), in run order.</summary>
    public static unsafe IReadOnlyList<uint> QueryProgramIds(int ifindex, TcxDirection direction)
    {
        int capacity = 16;
        while (true)
        {
            var ids = new uint[capacity];
            var errno = Query(ifindex, direction, ids, out uint count);
            if (errno == Errno.OK)
            {
                return ids.AsSpan(0, (int)Math.Min(count, (uint)capacity)).ToArray();
            }

            // ENOSPC: more programs than room; count holds the total. Programs may come and go in between.
            if (errno == Errno.ENOSPC && count > capacity && capacity < 65536)
            {
                capacity = (int)Math.Max(count, (uint)capacity * 2);
                continue;
            }

            throw new VirtnetException($"BPF_PROG_QUERY tcx {Name(direction)}", $"ifindex {ifindex}", errno, hint: QueryHint(errno));
        }
    }

    /// <summary>BPF_PROG_QUERY on a tcx hook with link ids: (program id, link id) of each attachment, in run order (link id 0: not a link).</summary>
    public static unsafe IReadOnlyList<(uint Program, uint Link)> QueryAttachments(int ifindex, TcxDirection direction)
    {
        const int Capacity = 64;
        var progs = new uint[Capacity];
        var links = new uint[Capacity];
        fixed (uint* p = progs)
        fixed (uint* l = links)
        {
            var attr = new BpfAttrQuery
            {
                TargetIfindex = (uint)ifindex,
                AttachType = AttachType(direction),
                ProgIds = (ulong)p,
                LinkIds = (ulong)l,
                ProgCnt = Capacity,
            };
            if (Libc.bpf(Libc.BPF_PROG_QUERY, &attr, (uint)sizeof(BpfAttrQuery)) < 0)
            {
                var errno = LastError.Get();
                throw new VirtnetException($"BPF_PROG_QUERY tcx {Name(direction)}", $"ifindex {ifindex}", errno, hint: QueryHint(errno));
            }

            int count = (int)Math.Min(attr.ProgCnt, Capacity);
            var result = new (uint, uint)[count];
            for (int i = 0; i < count; i++)
            {
                result[i] = (progs[i], links[i]);
            }

            return result;
        }
    }

    /// <summary>BPF_PROG_GET_FD_BY_ID: null when the program is gone.</summary>
    public static unsafe FileDescriptor? ProgramById(uint id)
        => ById(Libc.BPF_PROG_GET_FD_BY_ID, id, "BPF_PROG_GET_FD_BY_ID");

    /// <summary>
    /// BPF_LINK_GET_FD_BY_ID: a new fd for an existing link, null when it is gone. A link stays attached while any
    /// fd for it is open, in any process: holding one is holding the attachment.
    /// </summary>
    public static unsafe FileDescriptor? LinkById(uint id)
        => ById(Libc.BPF_LINK_GET_FD_BY_ID, id, "BPF_LINK_GET_FD_BY_ID");

    private static FileDescriptor? ById(int command, uint id, string op)
        => ById(command, id, op, $"id {id}");

    /// <summary>BPF_*_GET_FD_BY_ID, by this process or its privilege broker: null when no object has that id any more.</summary>
    internal static FileDescriptor? ById(int command, uint id, string op, string subject)
    {
        var fd = Privileged.Operations.ById(command, id, out var errno);
        return fd is not null || errno == Errno.ENOENT ? fd : throw new VirtnetException(op, subject, errno);
    }

    /// <summary>The names of the programs attached to a tcx hook (BPF_PROG_GET_FD_BY_ID + BPF_OBJ_GET_INFO_BY_FD).</summary>
    public static unsafe IReadOnlyList<string> QueryProgramNames(int ifindex, TcxDirection direction)
    {
        var names = new List<string>();
        foreach (uint id in QueryProgramIds(ifindex, direction))
        {
            using var handle = ById(Libc.BPF_PROG_GET_FD_BY_ID, id, "BPF_PROG_GET_FD_BY_ID", $"ifindex {ifindex}");
            if (handle is null)
            {
                continue; // detached and freed since the query
            }

            names.Add(BpfProgram.ReadName(BpfProgram.GetInfo(handle.Fd, $"ifindex {ifindex}")));
        }

        return names;
    }

    /// <summary>
    /// Whether the running kernel has tcx (Linux 6.6+). Probed, not guessed from the version.
    /// </summary>
    /// <remarks>
    /// The probe is BPF_PROG_QUERY for BPF_TCX_INGRESS on ifindex 1, read-only. It is sound because
    /// (1) bpf_prog_query() ends its switch over attach types with "default: return -EINVAL", so a kernel that
    /// does not know BPF_TCX_INGRESS (46) answers EINVAL before looking at the device; (2) a kernel that knows it
    /// calls tcx_prog_query(), which only resolves the ifindex and reports the hook, 0 programs when nothing is
    /// attached; (3) ifindex 1 is the loopback device of every network namespace (LOOPBACK_IFINDEX), which always
    /// exists, so ENODEV cannot blur the answer. EPERM (no CAP_NET_ADMIN) says nothing about the kernel; then the
    /// release is compared with 6.6 as a fallback.
    /// </remarks>
    public static bool IsSupported()
    {
        var errno = Query(1, TcxDirection.Ingress, [], out _);
        return errno switch
        {
            Errno.OK => true,
            Errno.EPERM or Errno.EACCES => Environment.OSVersion.Version >= new Version(6, 6),
            _ => false,
        };
    }

    internal static uint AttachType(TcxDirection direction)
        => direction == TcxDirection.Ingress ? Libc.BPF_TCX_INGRESS : Libc.BPF_TCX_EGRESS;

    internal static string Name(TcxDirection direction) => direction == TcxDirection.Ingress ? "ingress" : "egress";

    private static unsafe Errno Query(int ifindex, TcxDirection direction, Span<uint> ids, out uint count)
    {
        fixed (uint* p = ids)
        {
            var attr = new BpfAttrQuery
            {
                TargetIfindex = (uint)ifindex,
                AttachType = AttachType(direction),
                ProgIds = (ulong)p,
                ProgCnt = (uint)ids.Length,
            };
            int rc = Libc.bpf(Libc.BPF_PROG_QUERY, &attr, (uint)sizeof(BpfAttrQuery));
            count = attr.ProgCnt;
            return rc < 0 ? LastError.Get() : Errno.OK;
        }
    }

    private static string? QueryHint(Errno errno) => errno switch
    {
        Errno.EINVAL when !IsSupported() => NotSupportedHint,
        Errno.ENODEV => "no such device in this network namespace",
        Errno.EPERM => "querying tcx needs CAP_NET_ADMIN (run as root)",
        _ => null,
    };
}
