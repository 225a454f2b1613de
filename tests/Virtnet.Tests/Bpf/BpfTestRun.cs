// BPF_PROG_TEST_RUN of a tc program over one frame, for the tests that check where programs send frames.
using Virtnet.Bpf;

namespace Virtnet.Tests.Bpf;

internal static class BpfTestRun
{
    /// <summary>Runs the program once over <paramref name="frame"/>; returns its return value.</summary>
    public static uint Once(BpfProgram program, byte[] frame) => program.TestRun(frame).ReturnValue;
}
