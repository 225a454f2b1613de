// linux/capability.h: capget(2) with _LINUX_CAPABILITY_VERSION_3 (two 32-bit words per set).
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static unsafe class Capabilities
{
    public const int CAP_NET_ADMIN = 12;
    public const int CAP_NET_RAW = 13;
    public const int CAP_SYS_ADMIN = 21;
    public const int CAP_BPF = 39;
    private const uint LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    private static nint CapgetSyscall => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 90 : 125;

    /// <summary>Whether the calling thread has <paramref name="capability"/> in its effective set.</summary>
    public static bool HasEffective(int capability)
    {
        CapHeader header = new() { Version = LINUX_CAPABILITY_VERSION_3, Pid = 0 };
        CapData* data = stackalloc CapData[2];
        if (Libc.syscall(CapgetSyscall, (nint)(&header), (nint)data, 0) != 0)
        {
            return false;
        }

        return (data[capability / 32].Effective & (1u << (capability % 32))) != 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapHeader
    {
        public uint Version;
        public int Pid;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }
}
