using Xunit;

namespace Virtnet.Tests.Layout;

/// <summary>Our native constants and structs against gcc with the system headers and the running kernel's BTF.</summary>
public class LayoutTests(CLayoutFixture c) : IClassFixture<CLayoutFixture>
{
    [SkippableFact]
    public void Tun_IfreqAndIoctls_MatchLinuxIfTun() => c.Verify(LayoutChecks.Tun, CHeaders.System);

    [SkippableFact]
    public void VirtioNetHdr_SizeOffsetsAndFlags_MatchLinuxVirtioNet() => c.Verify(LayoutChecks.Virtio, CHeaders.System);

    [SkippableFact]
    public void Libc_PollfdIovecAndFlags_MatchGlibc() => c.Verify(LayoutChecks.LibcAbi, CHeaders.System);

    [SkippableFact]
    public void Packet_RingStructsAndConstants_MatchLinuxIfPacket() => c.Verify(LayoutChecks.PacketAbi, CHeaders.System);

    [SkippableFact]
    public void Errno_Values_MatchErrnoH() => c.Verify(LayoutChecks.Errnos, CHeaders.System);

    [SkippableFact]
    public void IoUring_StructsSyscallsAndFlags_MatchLinuxIoUring() => c.Verify(LayoutChecks.IoUringAbi, CHeaders.System);

    [SkippableFact]
    public void BpfCodes_InsnOpcodesHelpersCommands_MatchLinuxBpf() => c.Verify(LayoutChecks.BpfCodes, CHeaders.System);

    [SkippableFact]
    public void BpfAttr_Members_MatchLinuxBpf() => c.Verify(LayoutChecks.BpfAttr, CHeaders.System);

    [SkippableFact]
    public void BpfCodes_TcxAttachTypesAndActions_MatchKernelBtf() => c.Verify(LayoutChecks.BpfCodes, CHeaders.Btf);

    [SkippableFact]
    public void BpfAttr_QueryRevisionAndLinkCreateTcx_MatchKernelBtf() => c.Verify(LayoutChecks.BpfAttr, CHeaders.Btf);
}
