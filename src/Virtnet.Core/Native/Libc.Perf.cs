// linux/perf_event.h: perf_event_open(2), for the BPF output events a capture program writes frames into.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static unsafe partial class Libc
{
    public const nint SYS_perf_event_open_x86_64 = 298;
    public const nint SYS_perf_event_open_arm64 = 241;
    public const uint PERF_TYPE_SOFTWARE = 1;
    public const ulong PERF_COUNT_SW_BPF_OUTPUT = 10;
    public const ulong PERF_SAMPLE_RAW = 1 << 10;
    public const ulong PerfAttrWatermark = 1 << 14;
    public const nint PERF_FLAG_FD_CLOEXEC = 8;
    public const uint PERF_RECORD_LOST = 2;
    public const uint PERF_RECORD_SAMPLE = 9;

    // struct perf_event_mmap_page: data_head, data_tail, data_offset, data_size.
    public const int PerfDataHead = 1024;
    public const int PerfDataTail = 1032;
    public const int PerfDataOffset = 1040;
    public const int PerfDataSize = 1048;

    /// <summary>perf_event_open(attr, pid, cpu, group_fd, flags): a fd, or -1 with errno (ENOSYS on an unknown architecture).</summary>
    public static int perf_event_open(void* attr, int pid, int cpu, int groupFd, nint flags)
    {
        nint nr = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => SYS_perf_event_open_x86_64,
            Architecture.Arm64 => SYS_perf_event_open_arm64,
            _ => -1,
        };
        if (nr < 0)
        {
            Marshal.SetLastPInvokeError((int)Errno.ENOSYS);
            return -1;
        }

        return (int)syscall(nr, (nint)attr, pid, cpu, groupFd, flags, 0);
    }
}
