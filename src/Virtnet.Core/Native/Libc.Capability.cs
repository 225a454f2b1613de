// linux/capability.h (capget, capset), sys/prctl.h (the bounding and ambient sets), signal.h (sigaction, tgkill)
// and sys/mman.h (mprotect): what Capabilities.cs needs. glibc wraps all of them.
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static unsafe partial class Libc
{
    // linux/capability.h
    public const uint _LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    /// <summary>capget(2): the three sets of thread <c>pid</c> (0: the caller), two 32-bit words each with version 3.</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int capget(CapUserHeader* header, CapUserData* data);

    /// <summary>capset(2): only ever the calling thread's sets (pid 0).</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int capset(CapUserHeader* header, CapUserData* data);

    // linux/prctl.h
    public const int PR_CAPBSET_READ = 23;
    public const int PR_CAPBSET_DROP = 24;
    public const int PR_CAP_AMBIENT = 47;
    public const int PR_CAP_AMBIENT_IS_SET = 1;
    public const int PR_CAP_AMBIENT_CLEAR_ALL = 4;

    /// <summary>prctl(2), variadic in C; every option used here takes four unsigned long arguments (unused ones 0).</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

    // signal.h
    public const int SA_RESTART = 0x10000000;
    public const nint SIG_IGN = 1;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int sigaction(int signum, SigAction* act, SigAction* oldact);

    /// <summary>glibc's SIGRTMIN, which is a function: it reserves the first real-time signals for itself.</summary>
    [LibraryImport(Lib, EntryPoint = "__libc_current_sigrtmin")]
    public static partial int SigRtMin();

    [LibraryImport(Lib, EntryPoint = "__libc_current_sigrtmax")]
    public static partial int SigRtMax();

    /// <summary>tgkill(2): a signal to one thread of a thread group.</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int tgkill(int tgid, int tid, int sig);

    [LibraryImport(Lib)]
    public static partial int getpid();

    // sys/mman.h
    public const int PROT_EXEC = 0x4;
    public const int MAP_PRIVATE = 0x2;
    public const int MAP_ANONYMOUS = 0x20;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int mprotect(void* addr, nuint length, int prot);
}

// linux/capability.h: struct __user_cap_header_struct
[StructLayout(LayoutKind.Sequential)]
internal struct CapUserHeader
{
    public uint Version;
    public int Pid;
}

// linux/capability.h: struct __user_cap_data_struct (two of them with version 3: capabilities 0-31, then 32-63)
[StructLayout(LayoutKind.Sequential)]
internal struct CapUserData
{
    public uint Effective;
    public uint Permitted;
    public uint Inheritable;
}

// signal.h: glibc's struct sigaction on x86_64 and arm64 (152 bytes: a 1024-bit sa_mask)
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SigAction
{
    public nint Handler;
    public fixed ulong Mask[16];
    public int Flags;
    public nint Restorer;
}
