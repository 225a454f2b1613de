// BPF_PROG_LOAD of SCHED_CLS programs (the type tcx runs), and what BPF_OBJ_GET_INFO_BY_FD says about them.
//
// The first load runs without a verifier log: that is the fast path, and a log buffer makes the verifier
// do more work. Only when the load fails is it repeated with log_level 1, so the exception carries the
// verifier's own explanation ("R0 !read_ok", "invalid mem access 'scalar'", ...). Since Linux 6.4 the log is
// rotating by default: when the text does not fit, ENOSPC comes back with the log's last part, which is the
// part that names the failing instruction, so the error of the first attempt is the one reported.
//
// expected_attach_type is left 0: for SCHED_CLS the kernel checks the attach type only at BPF_LINK_CREATE
// (bpf_prog_attach_check_attach_type accepts BPF_TCX_INGRESS/EGRESS for any SCHED_CLS program), so one
// loaded program can be linked to either direction.
using System.Text;
using Virtnet.Native;

namespace Virtnet.Bpf;

/// <summary>A loaded BPF program, owned by its fd.</summary>
internal sealed class BpfProgram : IDisposable
{
    private const int LogSize = 1 << 18;

    private BpfProgram(FileDescriptor handle, uint id, string name)
    {
        Handle = handle;
        Id = id;
        Name = name;
    }

    public FileDescriptor Handle { get; }

    /// <summary>The kernel's program id (what BPF_PROG_QUERY reports), stable while any fd or link holds the program.</summary>
    public uint Id { get; }

    /// <summary>The name as the kernel stored it (bpf_prog_info.name).</summary>
    public string Name { get; }

    /// <summary>
    /// BPF_PROG_LOAD of a SCHED_CLS program, license "GPL". On a verifier failure the exception carries the
    /// verifier log. Name is at most 15 bytes (BPF_OBJ_NAME_LEN - 1) of letters, digits, '_' and '.'.
    /// </summary>
    /// <param name="name">The program's name, as bpftool shows it.</param>
    /// <param name="instructions">The program.</param>
    /// <param name="device">The device the program is meant for; only used in error messages.</param>
    public static BpfProgram LoadSchedCls(string name, ReadOnlySpan<BpfInsn> instructions, string device)
        => Load(Libc.BPF_PROG_TYPE_SCHED_CLS, name, instructions, device);

    /// <summary>BPF_PROG_LOAD of a SOCKET_FILTER program (also the type of a TAP's steering program).</summary>
    public static BpfProgram LoadSocketFilter(string name, ReadOnlySpan<BpfInsn> instructions, string device)
        => Load(Libc.BPF_PROG_TYPE_SOCKET_FILTER, name, instructions, device);

    /// <summary>BPF_PROG_LOAD of any program type (e.g. XDP, for the tests that redirect into a virtual device).</summary>
    internal static unsafe BpfProgram Load(uint type, string name, ReadOnlySpan<BpfInsn> instructions, string device, uint expectedAttachType = 0)
    {
        const string Op = "BPF_PROG_LOAD";
        if (instructions.IsEmpty)
        {
            throw new VirtnetException(FailureKind.Malformed, Op, device, "BPF_PROG_LOAD: the program has no instructions", Errno.EINVAL);
        }

        var attr = default(BpfAttrProgLoad);
        BpfNames.Write(name, new Span<byte>(attr.ProgName, Libc.BPF_OBJ_NAME_LEN), Op, device);
        ReadOnlySpan<byte> license = "GPL\0"u8;

        int fd;
        Errno error;
        string? log = null;
        fixed (BpfInsn* insns = instructions)
        fixed (byte* lic = license)
        {
            attr.ProgType = type;
            attr.InsnCnt = (uint)instructions.Length;
            attr.Insns = (ulong)insns;
            attr.License = (ulong)lic;
            attr.ExpectedAttachType = expectedAttachType;
            fd = Libc.bpf(Libc.BPF_PROG_LOAD, &attr, (uint)sizeof(BpfAttrProgLoad));
            if (fd >= 0)
            {
                return FromFd(new FileDescriptor(fd), device);
            }

            error = LastError.Get();
            if (error != Errno.EPERM)
            {
                // Load again, this time asking the verifier to explain itself.
                byte[] buffer = new byte[LogSize];
                fixed (byte* logBuf = buffer)
                {
                    attr.LogLevel = 1;
                    attr.LogSize = LogSize;
                    attr.LogBuf = (ulong)logBuf;
                    fd = Libc.bpf(Libc.BPF_PROG_LOAD, &attr, (uint)sizeof(BpfAttrProgLoad));
                }

                if (fd >= 0)
                {
                    return FromFd(new FileDescriptor(fd), device);
                }

                log = BpfNames.Read(buffer).Trim();
            }
        }

        string? hint = error == Errno.EPERM ? "loading BPF programs needs CAP_BPF and CAP_NET_ADMIN (run as root)" : null;
        throw new VirtnetException(Op, device, error, string.IsNullOrEmpty(log) ? null : "rejected by the BPF verifier; verifier log:\n" + log, hint);
    }

    /// <summary>
    /// BPF_PROG_TEST_RUN: runs the program <paramref name="repeat"/> times over <paramref name="frame"/>, attached to
    /// nothing (a redirect is only a verdict). Returns its return value and the mean run time in ns. For tests and
    /// benchmarks.
    /// </summary>
    internal unsafe (uint ReturnValue, uint DurationNs) TestRun(byte[] frame, int repeat = 1)
    {
        fixed (byte* data = frame)
        {
            var attr = new BpfAttrTestRun { ProgFd = (uint)Handle.Fd, DataSizeIn = (uint)frame.Length, DataIn = (ulong)data, Repeat = (uint)repeat };
            if (Libc.bpf(Libc.BPF_PROG_TEST_RUN, &attr, (uint)sizeof(BpfAttrTestRun)) < 0)
            {
                VirtnetException.ThrowLastError("BPF_PROG_TEST_RUN", Name);
            }

            return (attr.Retval, attr.Duration);
        }
    }

    public void Dispose() => Handle.Dispose();

    private static BpfProgram FromFd(FileDescriptor handle, string? device)
    {
        try
        {
            var info = GetInfo(handle.Fd, device);
            return new BpfProgram(handle, info.Id, ReadName(info));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>BPF_OBJ_GET_INFO_BY_FD on a program fd.</summary>
    internal static unsafe BpfProgInfo GetInfo(int fd, string? device)
    {
        var info = default(BpfProgInfo);
        var attr = new BpfAttrObjGetInfo { BpfFd = (uint)fd, InfoLen = (uint)sizeof(BpfProgInfo), Info = (ulong)&info };
        if (Libc.bpf(Libc.BPF_OBJ_GET_INFO_BY_FD, &attr, (uint)sizeof(BpfAttrObjGetInfo)) < 0)
        {
            VirtnetException.ThrowLastError("BPF_OBJ_GET_INFO_BY_FD", device);
        }

        return info;
    }

    /// <summary>The ids of the maps a program uses (BPF_OBJ_GET_INFO_BY_FD with map_ids), in the order the kernel keeps them.</summary>
    internal static unsafe uint[] MapIds(int fd, string? device)
    {
        var ids = new uint[16];
        fixed (uint* p = ids)
        {
            var info = default(BpfProgInfo);
            info.NrMapIds = (uint)ids.Length;
            info.MapIds = (ulong)p;
            var attr = new BpfAttrObjGetInfo { BpfFd = (uint)fd, InfoLen = (uint)sizeof(BpfProgInfo), Info = (ulong)&info };
            if (Libc.bpf(Libc.BPF_OBJ_GET_INFO_BY_FD, &attr, (uint)sizeof(BpfAttrObjGetInfo)) < 0)
            {
                VirtnetException.ThrowLastError("BPF_OBJ_GET_INFO_BY_FD", device);
            }

            return ids.AsSpan(0, (int)Math.Min(info.NrMapIds, (uint)ids.Length)).ToArray();
        }
    }

    internal static unsafe string ReadName(in BpfProgInfo info)
    {
        fixed (byte* name = info.Name)
        {
            return BpfNames.Read(new ReadOnlySpan<byte>(name, Libc.BPF_OBJ_NAME_LEN));
        }
    }
}

/// <summary>Object names (prog_name, map_name) as the kernel's bpf_obj_name_cpy() accepts them.</summary>
internal static class BpfNames
{
    /// <summary>Writes name NUL-terminated into a BPF_OBJ_NAME_LEN field, or throws a user error the kernel would answer with EINVAL.</summary>
    public static void Write(string name, Span<byte> field, string operation, string? device)
    {
        if (name.Length > field.Length - 1)
        {
            throw new VirtnetException(FailureKind.Malformed, operation, device, $"{operation}: BPF object name \"{name}\" is longer than {field.Length - 1} bytes", Errno.EINVAL);
        }

        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '.'))
            {
                throw new VirtnetException(FailureKind.Malformed, operation, device, $"{operation}: BPF object name \"{name}\" may only hold letters, digits, '_' and '.'", Errno.EINVAL);
            }
        }

        field.Clear();
        Encoding.ASCII.GetBytes(name, field);
    }

    /// <summary>The text before the first NUL.</summary>
    public static string Read(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }
}
