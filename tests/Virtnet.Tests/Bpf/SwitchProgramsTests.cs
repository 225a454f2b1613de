// The switch's programs (Bpf/SwitchPrograms.cs), run in the kernel with BPF_PROG_TEST_RUN over tables attached to
// no device: where each kind of frame goes, and what is counted for which slot. Redirect targets are ifindexes
// that exist nowhere, so a redirect is only a verdict (TC_ACT_REDIRECT) and a copy (bpf_clone_redirect) fails and
// is counted as such: the counters then say which slots a group frame was copied to, and nothing leaves the test.
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Bpf;

public sealed class SwitchProgramsTests : IDisposable
{
    private const uint Redirect = 7;            // TC_ACT_REDIRECT
    private const uint Drop = 2;                // TCX_DROP
    private const uint Next = 0xffffffff;       // TCX_NEXT (-1)
    private const int Nowhere = 0x7ff0;         // ifindexes no device has
    private static readonly byte[] HostMac = [0x02, 0, 0, 0, 0, 0xaa];
    private static readonly byte[] WireMac = [0x02, 0, 0, 0, 0, 0xbb];

    private readonly RealSwitch? _sw;

    public SwitchProgramsTests()
    {
        if (Root.IsRoot)
        {
            _sw = RealSwitch.CreateUnattached();
        }
    }

    public void Dispose() => _sw?.Dispose();

    private static byte[] Mac(int n) => [0x02, 0, 0, 0, 0x11, (byte)n];

    private RealSwitch Sw => _sw!;

    private void Add(int slot, SwitchMode mode, int vlan = 0, int flags = SwitchPrograms.FlagIngress, byte[]? mac = null)
    {
        var entry = new SwitchEntry(Nowhere + slot, flags, vlan, mode, slot);
        Sw.Put(new SwitchKey(mac ?? (mode == SwitchMode.Passthru ? new byte[6] : Mac(slot)), vlan), entry);
        if (mode != SwitchMode.Passthru)
        {
            Sw.SetGroupSlot(slot, entry);
        }
    }

    private void AddHost() => Sw.Put(new SwitchKey(HostMac, 0), new SwitchEntry(Nowhere, SwitchPrograms.FlagIngress, 0, SwitchMode.Host, 0xff));

    private ulong Count(int slot, SwitchCount kind) => Sw.Read(slot, kind).Frames;

    /// <summary>Per slot: group-frame copies made for it (failed here, since their targets do not exist).</summary>
    private ulong[] Failed(params int[] slots) => [.. slots.Select(s => Count(s, SwitchCount.InDropFailed))];

    private BpfProgram Dispatch() => BpfProgram.LoadSchedCls("vn_t_dsp", SwitchPrograms.Dispatch(Sw.PortsFd, Sw.GroupFd, Sw.Counts.Handle.Fd), "test");

    private BpfProgram Host() => BpfProgram.LoadSchedCls("vn_t_hst", SwitchPrograms.Host(Sw.PortsFd, Sw.GroupFd, Sw.Counts.Handle.Fd), "test");

    private BpfProgram Out(int slot, SwitchMode mode, int vlan = 0)
        => BpfProgram.LoadSchedCls("vn_t_out", SwitchPrograms.Out(Sw.PortsFd, Sw.GroupFd, Sw.Counts.Handle.Fd, Nowhere - 1, vlan, mode, slot, atIngressHook: false), "test");

    private static byte[] Frame(byte[] dst, byte[] src)
    {
        var f = new byte[64];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        f[12] = 0x88;
        f[13] = 0xb5;
        return f;
    }

    private static readonly bool[] s_hooks = [false, true];

    private static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

    [SkippableFact]
    public void Dispatch_Unicast_GoesToItsBindingOrOnToTheStack()
    {
        Root.Require();
        AddHost();
        Add(1, SwitchMode.Bridge);
        Add(2, SwitchMode.Vepa);
        using var dispatch = Dispatch();

        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Mac(1), WireMac)));
        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Mac(2), WireMac)));
        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Mac(2), WireMac)));
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(Mac(9), WireMac)));   // nobody's: the stack
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(HostMac, WireMac)));  // the host's own
        Assert.Equal(1UL, Count(1, SwitchCount.In));
        Assert.Equal(2UL, Count(2, SwitchCount.In));
        Assert.Equal(0UL, Count(3, SwitchCount.In));
    }

    [SkippableFact]
    public void Dispatch_BindingDown_DroppedAndCountedWithItsReason()
    {
        Root.Require();
        Add(1, SwitchMode.Bridge, flags: SwitchPrograms.FlagIngress | SwitchPrograms.FlagDown);
        using var dispatch = Dispatch();

        Assert.Equal(Drop, BpfTestRun.Once(dispatch, Frame(Mac(1), WireMac)));
        Assert.Equal(1UL, Count(1, SwitchCount.InDropDown));
        Assert.Equal(0UL, Count(1, SwitchCount.In));
    }

    [SkippableFact]
    public void Dispatch_PrivateAndSibling_NeverReachEachOther()
    {
        Root.Require();
        Add(1, SwitchMode.Bridge);
        Add(2, SwitchMode.Private);
        Add(3, SwitchMode.Bridge);
        using var dispatch = Dispatch();

        // Hairpinned back from the wire: sibling -> private, private -> sibling: dropped, counted at the target.
        Assert.Equal(Drop, BpfTestRun.Once(dispatch, Frame(Mac(2), Mac(1))));
        Assert.Equal(Drop, BpfTestRun.Once(dispatch, Frame(Mac(3), Mac(2))));
        Assert.Equal(1UL, Count(2, SwitchCount.InDropPrivate));
        Assert.Equal(1UL, Count(3, SwitchCount.InDropPrivate));
        // Two bridge-mode siblings hairpinned: delivered (the switch did it, as vepa's would); the wire: delivered.
        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Mac(3), Mac(1))));
        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Mac(2), WireMac)));
    }

    [SkippableFact]
    public void Dispatch_Broadcast_CopiedToEveryBindingButItsSource_ThenTheStack()
    {
        Root.Require();
        AddHost();
        Add(1, SwitchMode.Bridge);
        Add(2, SwitchMode.Vepa);
        Add(3, SwitchMode.Private);
        Add(4, SwitchMode.Bridge, vlan: 10);   // another VLAN: no copy
        using var dispatch = Dispatch();

        // From the wire: every untagged binding gets a copy (here the copies fail: no such device), the stack the frame.
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(Broadcast, WireMac)));
        Assert.Equal([1UL, 1UL, 1UL, 0UL], Failed(1, 2, 3, 4));

        // From binding 1, hairpinned: not back to 1, not to the private binding.
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(Broadcast, Mac(1))));
        Assert.Equal([1UL, 2UL, 1UL, 0UL], Failed(1, 2, 3, 4));

        // From the private binding: no sibling at all.
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(Broadcast, Mac(3))));
        Assert.Equal([1UL, 2UL, 1UL, 0UL], Failed(1, 2, 3, 4));
    }

    [SkippableFact]
    public void Dispatch_PassthruOfAVlan_IsNotTheUntaggedOnes()
    {
        Root.Require();
        Add(1, SwitchMode.Passthru, vlan: 30);
        using var dispatch = Dispatch();

        // Untagged frames (a test run has no tag) are not VLAN 30's: the stack gets them.
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(Mac(5), WireMac)));
        Assert.Equal(Next, BpfTestRun.Once(dispatch, Frame(Broadcast, WireMac)));
        Assert.Equal(0UL, Count(1, SwitchCount.In));

        // An untagged passthru binding (key MAC 0, VLAN 0) would take every untagged frame.
        Add(2, SwitchMode.Passthru, vlan: 0);
        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Mac(5), WireMac)));
        Assert.Equal(Redirect, BpfTestRun.Once(dispatch, Frame(Broadcast, WireMac)));
        Assert.Equal(2UL, Count(2, SwitchCount.In));
    }

    [SkippableFact]
    public void Host_ToABridgeBinding_Directly_ElseTheWire()
    {
        Root.Require();
        AddHost();
        Add(1, SwitchMode.Bridge);
        Add(2, SwitchMode.Vepa);
        Add(3, SwitchMode.Bridge);
        using var host = Host();

        Assert.Equal(Redirect, BpfTestRun.Once(host, Frame(Mac(1), HostMac)));
        Assert.Equal(Next, BpfTestRun.Once(host, Frame(Mac(2), HostMac)));    // vepa: the host reaches it through the wire
        Assert.Equal(Next, BpfTestRun.Once(host, Frame(WireMac, HostMac)));
        Assert.Equal(Next, BpfTestRun.Once(host, Frame(Mac(1), Mac(2))));     // a sibling's frame on its way out: untouched
        Assert.Equal(1UL, Count(1, SwitchCount.In));

        // The host's broadcast: a copy for each bridge-mode binding, then the wire.
        Assert.Equal(Next, BpfTestRun.Once(host, Frame(Broadcast, HostMac)));
        Assert.Equal([1UL, 0UL, 1UL], Failed(1, 2, 3));
    }

    [SkippableFact]
    public void Out_Bridge_ToSiblingOrHost_ElseTheWire_AndCounted()
    {
        Root.Require();
        AddHost();
        Add(1, SwitchMode.Bridge);
        Add(2, SwitchMode.Bridge);
        Add(3, SwitchMode.Vepa);
        using var out1 = Out(1, SwitchMode.Bridge);

        Assert.Equal(Redirect, BpfTestRun.Once(out1, Frame(Mac(2), Mac(1))));   // sibling
        Assert.Equal(Redirect, BpfTestRun.Once(out1, Frame(HostMac, Mac(1))));  // host
        Assert.Equal(Redirect, BpfTestRun.Once(out1, Frame(Mac(3), Mac(1))));   // vepa sibling: the wire (a redirect too)
        Assert.Equal(Redirect, BpfTestRun.Once(out1, Frame(WireMac, Mac(1))));
        Assert.Equal(4UL, Count(1, SwitchCount.Out));
        Assert.Equal(1UL, Count(2, SwitchCount.In));   // only the frame for 2 reached 2
        Assert.Equal(0UL, Count(3, SwitchCount.In));   // the vepa sibling's went to the wire

        // Its broadcast: a copy for the other bridge-mode binding (not itself, not vepa), the host's copy, the wire.
        Assert.Equal(Redirect, BpfTestRun.Once(out1, Frame(Broadcast, Mac(1))));
        Assert.Equal([0UL, 1UL, 0UL], Failed(1, 2, 3));
    }

    [SkippableFact]
    public void Out_VepaAndPrivate_EverythingToTheWire()
    {
        Root.Require();
        AddHost();
        Add(1, SwitchMode.Bridge);
        Add(2, SwitchMode.Vepa);
        using var out2 = Out(2, SwitchMode.Vepa);

        Assert.Equal(Redirect, BpfTestRun.Once(out2, Frame(Mac(1), Mac(2))));
        Assert.Equal(Redirect, BpfTestRun.Once(out2, Frame(Broadcast, Mac(2))));
        Assert.Equal(0UL, Count(1, SwitchCount.In));
        Assert.Equal(0UL, Count(1, SwitchCount.InDropFailed));
        Assert.Equal(2UL, Count(2, SwitchCount.Out));
    }

    [SkippableTheory]
    [InlineData(2, 0)]
    [InlineData(2, 4094)]
    [InlineData(3, 7)]
    [InlineData(4, 0)]
    [InlineData(1, 10)]
    public void Out_EveryModeAndVlan_PassesTheVerifierAtBothHooks(int modeNumber, int vlan)
    {
        Root.Require();
        var mode = (SwitchMode)modeNumber;
        foreach (bool ingress in s_hooks)
        {
            using var p = BpfProgram.LoadSchedCls("vn_t_out", SwitchPrograms.Out(Sw.PortsFd, Sw.GroupFd, Sw.Counts.Handle.Fd, 1, vlan, mode, 63, ingress), "test");
            Assert.True(p.Id > 0);
        }
    }

    [SkippableFact]
    public void GroupTable_SlotWrites_KeepThePrivateCountAndFreeSlots()
    {
        Root.Require();
        Add(5, SwitchMode.Private);
        Add(6, SwitchMode.Bridge);
        Assert.Equal([5, 6], Sw.GroupEntries().Select(e => e.Slot));
        Sw.SetGroupSlot(5, null);
        Assert.Equal([6], Sw.GroupEntries().Select(e => e.Slot));
        Assert.Equal(SwitchMode.Bridge, Assert.Single(Sw.GroupEntries()).Mode);
    }
}
