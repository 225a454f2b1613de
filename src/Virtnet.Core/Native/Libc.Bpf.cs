// linux/bpf.h: the bpf() system call and the constants of the commands virtnet uses.
// glibc has no bpf() wrapper, so it goes through syscall(2) with the architecture's number.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static unsafe partial class Libc
{
    // asm/unistd_64.h (x86_64), asm-generic/unistd.h (arm64)
    public const int SYS_bpf_x86_64 = 321;
    public const int SYS_bpf_arm64 = 280;

    // enum bpf_cmd
    public const int BPF_MAP_CREATE = 0;
    public const int BPF_MAP_LOOKUP_ELEM = 1;
    public const int BPF_MAP_UPDATE_ELEM = 2;
    public const int BPF_MAP_DELETE_ELEM = 3;
    public const int BPF_MAP_GET_NEXT_KEY = 4;
    public const int BPF_PROG_LOAD = 5;
    public const int BPF_PROG_TEST_RUN = 10;
    public const int BPF_PROG_GET_FD_BY_ID = 13;
    public const int BPF_MAP_GET_FD_BY_ID = 14;
    public const int BPF_OBJ_GET_INFO_BY_FD = 15;
    public const int BPF_PROG_QUERY = 16;
    public const int BPF_LINK_CREATE = 28;
    public const int BPF_RAW_TRACEPOINT_OPEN = 17;
    public const int BPF_LINK_GET_FD_BY_ID = 30;

    // enum bpf_map_type
    public const uint BPF_MAP_TYPE_HASH = 1;
    public const uint BPF_MAP_TYPE_ARRAY = 2;
    public const uint BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4;
    public const uint BPF_MAP_TYPE_PERCPU_ARRAY = 6;
    public const ulong BPF_F_CURRENT_CPU = 0xffffffff;

    // enum bpf_prog_type
    public const uint BPF_PROG_TYPE_SOCKET_FILTER = 1;
    public const uint BPF_PROG_TYPE_SCHED_CLS = 3;
    public const uint BPF_PROG_TYPE_RAW_TRACEPOINT = 17;

    // enum bpf_attach_type (tcx: Linux 6.6, absent from linux-libc-dev 6.1 headers)
    public const uint BPF_TCX_INGRESS = 46;
    public const uint BPF_TCX_EGRESS = 47;

    // enum tcx_action_base (Linux 6.6)
    public const int TCX_NEXT = -1;
    public const int TCX_PASS = 0;
    public const int TCX_DROP = 2;
    public const int TCX_REDIRECT = 7;

    // BPF_MAP_UPDATE_ELEM flags
    public const ulong BPF_ANY = 0;

    // BPF_MAP_CREATE map_flags
    public const uint BPF_F_NO_PREALLOC = 1;

    // bpf_redirect() flags
    public const ulong BPF_F_INGRESS = 1;

    // ld_imm64 src_reg: imm is a map fd
    public const byte BPF_PSEUDO_MAP_FD = 1;

    public const int BPF_OBJ_NAME_LEN = 16;

    /// <summary>The bpf() system call number of this architecture, or -1 where virtnet does not know it.</summary>
    public static nint SysBpf => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => SYS_bpf_x86_64,
        Architecture.Arm64 => SYS_bpf_arm64,
        _ => -1,
    };

    /// <summary>bpf(cmd, attr, size): returns a fd or 0, or -1 with errno (ENOSYS on an unknown architecture).</summary>
    public static int bpf(int cmd, void* attr, uint size)
    {
        nint nr = SysBpf;
        if (nr < 0)
        {
            Marshal.SetLastPInvokeError((int)Errno.ENOSYS);
            return -1;
        }

        return (int)syscall(nr, cmd, (nint)attr, (nint)size);
    }
}
