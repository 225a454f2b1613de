// BPF_PROG_TEST_RUN of a tc program over one frame, for the tests that check where programs send frames.
using System.Runtime.InteropServices;
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Tests.Bpf;

internal static class BpfTestRun
{
    [StructLayout(LayoutKind.Explicit, Size = 80)]
    private struct Attr
    {
        [FieldOffset(0)] public uint ProgFd;
        [FieldOffset(4)] public uint Retval;
        [FieldOffset(8)] public uint DataSizeIn;
        [FieldOffset(16)] public ulong DataIn;
        [FieldOffset(32)] public uint Repeat;
    }

    /// <summary>Runs the program once over <paramref name="frame"/>; returns its return value.</summary>
    public static unsafe uint Once(BpfProgram program, byte[] frame)
    {
        fixed (byte* data = frame)
        {
            var attr = new Attr { ProgFd = (uint)program.Handle.Fd, DataSizeIn = (uint)frame.Length, DataIn = (ulong)data, Repeat = 1 };
            const int BPF_PROG_TEST_RUN = 10;
            if (Libc.bpf(BPF_PROG_TEST_RUN, &attr, (uint)sizeof(Attr)) < 0)
            {
                throw new InvalidOperationException($"BPF_PROG_TEST_RUN: {LastError.Get().Format()}");
            }

            return attr.Retval;
        }
    }
}
