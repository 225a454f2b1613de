// The programs of a real device's switch: several virtual devices on one real device, each with its own key
// (MAC, VLAN), in macvlan's modes. Three programs share two tables:
//
//   ports  (hash)  key {mac[6], vlan u16} -> SwitchEntry   one per binding, plus the real device's own MAC (Host)
//   group  (array) one value: a header and MaxPorts SwitchEntry slots, the fan-out list for broadcast/multicast
//   counts (per-CPU array) (frames, bytes) per slot and SwitchCount kind
//
//   wire -> real --[tcx ingress: virtnet_dsp]--> the binding whose key the destination is (one hash lookup),
//                                                copies of group frames to every binding of that VLAN, and the
//                                                real device's stack for everything else (TCX_NEXT)
//   host stack -> real transmit --[tcx egress: virtnet_hst]--> a bridge-mode binding whose MAC it is, else the wire
//   binding -> its transmit --[virtnet_out, one per binding]--> a bridge-mode sibling or the host directly, else
//                                                               the wire (tagged with the binding's VLAN)
//
// The cost of a frame does not grow with the number of bindings except for group frames, which are copied to each.
using Virtnet.Native;

namespace Virtnet.Bpf;

/// <summary>How a binding shares its real device (macvlan's modes), as the programs see it.</summary>
internal enum SwitchMode : byte
{
    /// <summary>Not a binding.</summary>
    None = 0,

    /// <summary>Every frame of its VLAN.</summary>
    Passthru = 1,

    /// <summary>Its MAC's frames; reaches bridge-mode siblings and the host directly.</summary>
    Bridge = 2,

    /// <summary>Its MAC's frames; never reaches a sibling, not even through the wire.</summary>
    Private = 3,

    /// <summary>Its MAC's frames; everything it sends goes out on the wire.</summary>
    Vepa = 4,

    /// <summary>The real device's own MAC: its stack.</summary>
    Host = 5,
}

/// <summary>What a switch counter slot counts, per binding slot.</summary>
internal enum SwitchCount
{
    /// <summary>Frames delivered to the binding.</summary>
    In = 0,

    /// <summary>Frames the binding sent.</summary>
    Out = 1,

    /// <summary>Frames for the binding dropped because its device was down.</summary>
    InDropDown = 2,

    /// <summary>Frames between a private binding and a sibling, dropped.</summary>
    InDropPrivate = 3,

    /// <summary>Copies of group frames the kernel could not make or deliver (bpf_clone_redirect failed).</summary>
    InDropFailed = 4,

    /// <summary>Frames that reached the binding's device but that its filter does not match, dropped there.</summary>
    InDropFilter = 5,
}

internal static class SwitchPrograms
{
    public const string DispatchName = "virtnet_dsp";
    public const string HostName = "virtnet_hst";
    public const string OutName = "virtnet_out";

    /// <summary>How many bindings a real device can carry (the group table's slots).</summary>
    public const int MaxPorts = 64;

    /// <summary>Counter kinds per slot (room to grow).</summary>
    public const int CountKinds = 8;

    public const int KeySize = 8;
    public const int EntrySize = 16;
    public const int GroupHeaderSize = 16;
    public const int GroupValueSize = GroupHeaderSize + (MaxPorts * EntrySize);

    // SwitchEntry: u32 ifindex, u32 flags, u16 vlan, u8 mode, u8 slot, u32 split ifindex.
    public const short EntryIfindex = 0;
    public const short EntryFlags = 4;
    public const short EntryVlan = 8;
    public const short EntryMode = 10;
    public const short EntrySlot = 11;
    public const short EntrySplit = 12;

    /// <summary>Entry flag: redirect with BPF_F_INGRESS (a TAP: the frame is received by the device).</summary>
    public const int FlagIngress = 1;

    /// <summary>Entry flag: the target is a veth peer; at an ingress hook bpf_redirect_peer() may be used.</summary>
    public const int FlagPeer = 2;

    /// <summary>Entry flag: the binding's device is down; its frames are dropped and counted.</summary>
    public const int FlagDown = 4;

    /// <summary>
    /// Entry flag (user datapath): TCP and frames longer than a ring slot go to the entry's ifindex (the pump, whose
    /// reads carry GSO super-frames); every other frame is received (BPF_F_INGRESS) by the split ifindex, a private
    /// device whose packet rings the forwarders drain in batches. The same split as the whole-device user datapath's.
    /// </summary>
    public const int FlagSplit = 8;

    /// <summary>Group header: u32 number of private-mode bindings (0: no frame needs the source check).</summary>
    public const short HeaderPrivateCount = 0;

    /// <summary>
    /// skb->cb[0] set to this on a binding's broadcast copied to the host stack through the real device's receive,
    /// so that the dispatcher lets it go on instead of copying it to the bindings a second time.
    /// </summary>
    public const int HostCopyMark = 0x766e6574; // "vnet"

    private const short SkBuffLen = 0;
    private const short SkBuffPktType = 4;
    private const short SkBuffVlanPresent = 20;
    private const short SkBuffVlanTci = 24;
    private const short SkBuffVlanProto = 28;
    private const short SkBuffCb0 = 48;
    private const short SkBuffData = 76;
    private const short SkBuffDataEnd = 80;

    // The stack frame.
    private const short DstKey = -8;
    private const short SrcKey = -16;
    private const short PassthruKey = -24;
    private const short ZeroKey = -28;
    private const short SavedTci = -32;
    private const short SavedProto = -36;
    private const short SrcSlot = -40;
    private const short SrcMode = -44;
    private const short CountKey = -48;
    private const short EntryCopy = -64;   // 16 bytes: the looked-up ports entry, copied

    private const int NoSlot = 0xffff;

    /// <summary>htons(ETH_P_8021Q) as bpf_skb_vlan_push() takes it.</summary>
    private const int Vlan8021QBigEndian = 0x0081;

    /// <summary>
    /// The real device's tcx ingress. Its own looped-back frames and the bindings' broadcasts for the host go on;
    /// a unicast frame goes to the binding whose (MAC, VLAN) it is addressed to, or to the passthru binding of its
    /// VLAN, or on to the stack; a group frame is copied to every binding of its VLAN and goes on to the stack
    /// (a passthru binding of its VLAN takes it instead). Frames between a private binding and a sibling (a
    /// switch hairpinning them back) are dropped.
    /// </summary>
    public static BpfInsn[] Dispatch(int portsFd, int groupFd, int countsFd)
    {
        var asm = new BpfAssembler();
        var next = asm.DefineLabel();
        var go = asm.DefineLabel();
        var group = asm.DefineLabel();
        var found = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1)
           .LdxW(BpfReg.R2, BpfReg.R6, SkBuffPktType)
           .JeqImm(BpfReg.R2, Packet.PACKET_LOOPBACK, next)
           .LdxW(BpfReg.R2, BpfReg.R6, SkBuffCb0)
           .JneImm(BpfReg.R2, HostCopyMark, go)
           .MovImm(BpfReg.R2, 0)
           .StxW(BpfReg.R6, BpfReg.R2, SkBuffCb0)
           .Ja(next)
           .Mark(go);
        EmitBoundsAndVlan(asm, next, fixedVlan: null);
        EmitKeys(asm, withSource: true, fixedVlan: null);
        asm.JneImm(BpfReg.R9, 0, group);

        // Unicast: its binding, else the passthru binding of its VLAN, else the stack.
        EmitLookup(asm, portsFd, DstKey)
           .JneImm(BpfReg.R0, 0, found);
        EmitPassthruLookup(asm, portsFd)
           .JeqImm(BpfReg.R0, 0, next)
           .Mark(found);
        EmitTakeEntry(asm);
        asm.LdxB(BpfReg.R2, BpfReg.R8, EntryMode)
           .JeqImm(BpfReg.R2, (int)SwitchMode.Host, next);
        var allowed = asm.DefineLabel();
        var blocked = asm.DefineLabel();
        EmitPrivateCheck(asm, portsFd, groupFd, allowed, blocked);
        asm.Mark(blocked);
        EmitCount(asm, countsFd, BpfReg.R8, EntrySlot, SwitchCount.InDropPrivate);
        asm.MovImm(BpfReg.R0, Libc.TCX_DROP).Exit();
        asm.Mark(allowed);
        EmitDeliver(asm, countsFd, atIngressHook: true, popVlan: true);

        // Group: the passthru binding of its VLAN takes it all; otherwise a copy for each binding of the VLAN.
        asm.Mark(group);
        EmitPassthruLookup(asm, portsFd)
           .JneImm(BpfReg.R0, 0, found);
        EmitSourceInfo(asm, portsFd);
        EmitFanOut(asm, groupFd, countsFd, FanOutRule.FromWire, ownSlot: -1, fixedVlan: null, done: next);
        asm.Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>
    /// The real device's tcx egress: what its own stack sends to a bridge-mode binding goes straight to it (a
    /// group frame is copied to each bridge-mode binding of its VLAN and goes on to the wire). Frames a binding
    /// sends pass here on their way out and go on untouched.
    /// </summary>
    public static BpfInsn[] Host(int portsFd, int groupFd, int countsFd)
    {
        var asm = new BpfAssembler();
        var next = asm.DefineLabel();
        var group = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1);
        EmitDestinationEntry(asm, portsFd, next, group, withSource: true, fixedVlan: null);
        asm.JneImm(BpfReg.R2, (int)SwitchMode.Bridge, next);
        EmitFromSibling(asm, portsFd, next);
        EmitDeliver(asm, countsFd, atIngressHook: false, popVlan: true);

        asm.Mark(group);
        EmitFromSibling(asm, portsFd, next);
        asm.StW(BpfReg.R10, SrcSlot, NoSlot);
        EmitFanOut(asm, groupFd, countsFd, FanOutRule.BridgeOnly, ownSlot: -1, fixedVlan: null, done: next);
        asm.Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>
    /// One binding's transmit (its TAP's tcx egress, or its veth peer's or pump's tcx ingress when
    /// <paramref name="atIngressHook"/>): counted, then in bridge mode to a bridge-mode sibling or the host
    /// directly (group frames copied to each, and to the host's stack through the real device's receive); every
    /// other frame leaves through the real device, tagged with <paramref name="vlan"/> when it is not 0.
    /// </summary>
    public static BpfInsn[] Out(int portsFd, int groupFd, int countsFd, int realIndex, int vlan, SwitchMode mode, int slot, bool atIngressHook)
    {
        var asm = new BpfAssembler();
        var wire = asm.DefineLabel();
        var group = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1);
        EmitCount(asm, countsFd, slot, SwitchCount.Out);
        if (mode == SwitchMode.Bridge)
        {
            var notHost = asm.DefineLabel();
            var hostCopy = asm.DefineLabel();
            EmitDestinationEntry(asm, portsFd, wire, group, withSource: false, fixedVlan: vlan);
            asm.JneImm(BpfReg.R2, (int)SwitchMode.Host, notHost)
               .MovImm(BpfReg.R1, realIndex)
               .MovImm(BpfReg.R2, (int)Libc.BPF_F_INGRESS)
               .Call(BpfHelper.Redirect)
               .Exit()
               .Mark(notHost)
               .JneImm(BpfReg.R2, (int)SwitchMode.Bridge, wire);
            EmitDeliver(asm, countsFd, atIngressHook, popVlan: false);

            asm.Mark(group);
            EmitFanOut(asm, groupFd, countsFd, FanOutRule.BridgeOnly, slot, vlan, hostCopy);
            asm.Mark(hostCopy);
            if (vlan == 0)
            {
                asm.MovImm(BpfReg.R2, HostCopyMark)
                   .StxW(BpfReg.R6, BpfReg.R2, SkBuffCb0)
                   .MovReg(BpfReg.R1, BpfReg.R6)
                   .MovImm(BpfReg.R2, realIndex)
                   .MovImm(BpfReg.R3, (int)Libc.BPF_F_INGRESS)
                   .Call(BpfHelper.CloneRedirect)
                   .MovImm(BpfReg.R2, 0)
                   .StxW(BpfReg.R6, BpfReg.R2, SkBuffCb0);
            }
        }

        asm.Mark(wire);
        if (vlan != 0)
        {
            asm.MovReg(BpfReg.R1, BpfReg.R6)
               .MovImm(BpfReg.R2, Vlan8021QBigEndian)
               .MovImm(BpfReg.R3, vlan)
               .Call(BpfHelper.SkbVlanPush);
        }

        asm.MovImm(BpfReg.R1, realIndex)
           .MovImm(BpfReg.R2, 0)
           .Call(BpfHelper.Redirect)
           .Exit();
        return asm.ToArray();
    }

    private enum FanOutRule
    {
        /// <summary>From the wire: every binding of the VLAN but the source, none between a private one and a sibling.</summary>
        FromWire,

        /// <summary>From the host or a bridge-mode binding: bridge-mode bindings of the VLAN but the source.</summary>
        BridgeOnly,
    }

    /// <summary>
    /// R6 = ctx. The destination's entry in R8 and its mode in R2; to <paramref name="other"/> when the frame is too
    /// short or its destination no binding's, to <paramref name="group"/> for a group destination (keys on the stack).
    /// </summary>
    private static void EmitDestinationEntry(BpfAssembler asm, int portsFd, BpfLabel other, BpfLabel group, bool withSource, int? fixedVlan)
    {
        EmitBoundsAndVlan(asm, other, fixedVlan);
        EmitKeys(asm, withSource, fixedVlan);
        asm.JneImm(BpfReg.R9, 0, group);
        EmitLookup(asm, portsFd, DstKey)
           .JeqImm(BpfReg.R0, 0, other);
        EmitTakeEntry(asm);
        asm.LdxB(BpfReg.R2, BpfReg.R8, EntryMode);
    }

    /// <summary>
    /// R8 = a copy on the stack of the ports entry R0 points to. A hash map element that another process replaces or
    /// deletes may be reused at once; what the program goes on to read (across helper calls) is its own copy.
    /// </summary>
    private static void EmitTakeEntry(BpfAssembler asm)
        => asm.LdxDW(BpfReg.R1, BpfReg.R0, 0)
              .StxDW(BpfReg.R10, BpfReg.R1, EntryCopy)
              .LdxDW(BpfReg.R1, BpfReg.R0, 8)
              .StxDW(BpfReg.R10, BpfReg.R1, (short)(EntryCopy + 8))
              .MovReg(BpfReg.R8, BpfReg.R10)
              .AddImm(BpfReg.R8, EntryCopy);

    /// <summary>R6 = ctx. Jumps to <paramref name="fail"/> if the frame has no Ethernet addresses; R2 = data. R7 = VLAN id (0 untagged) unless fixed.</summary>
    private static void EmitBoundsAndVlan(BpfAssembler asm, BpfLabel fail, int? fixedVlan)
    {
        if (fixedVlan is null)
        {
            var untagged = asm.DefineLabel();
            asm.MovImm(BpfReg.R7, 0)
               .LdxW(BpfReg.R4, BpfReg.R6, SkBuffVlanPresent)
               .JeqImm(BpfReg.R4, 0, untagged)
               .LdxW(BpfReg.R7, BpfReg.R6, SkBuffVlanTci)
               .Alu64Imm(BpfCode.BPF_AND, BpfReg.R7, 0x0fff)
               .Mark(untagged);
        }

        asm.LdxW(BpfReg.R2, BpfReg.R6, SkBuffData)
           .LdxW(BpfReg.R3, BpfReg.R6, SkBuffDataEnd)
           .MovReg(BpfReg.R4, BpfReg.R2)
           .AddImm(BpfReg.R4, 12)
           .JmpReg(BpfCode.BPF_JGT, BpfReg.R4, BpfReg.R3, fail);
    }

    /// <summary>The destination key (and source key) on the stack; R9 = the destination's group bit. R2 = data.</summary>
    private static void EmitKeys(BpfAssembler asm, bool withSource, int? fixedVlan)
    {
        EmitKey(asm, 0, DstKey, fixedVlan);
        if (withSource)
        {
            EmitKey(asm, 6, SrcKey, fixedVlan);
        }

        asm.LdxB(BpfReg.R9, BpfReg.R2, 0)
           .Alu64Imm(BpfCode.BPF_AND, BpfReg.R9, 1);
    }

    private static void EmitKey(BpfAssembler asm, short macOffset, short key, int? fixedVlan)
    {
        asm.LdxW(BpfReg.R4, BpfReg.R2, macOffset)
           .StxW(BpfReg.R10, BpfReg.R4, key)
           .LdxH(BpfReg.R4, BpfReg.R2, (short)(macOffset + 4))
           .StxH(BpfReg.R10, BpfReg.R4, (short)(key + 4));
        if (fixedVlan is { } vlan)
        {
            asm.StH(BpfReg.R10, (short)(key + 6), vlan);
        }
        else
        {
            asm.StxH(BpfReg.R10, BpfReg.R7, (short)(key + 6));
        }
    }

    /// <summary>r0 = map_lookup(map, fp + key).</summary>
    private static BpfAssembler EmitLookup(BpfAssembler asm, int mapFd, short key)
        => asm.LdMapFd(BpfReg.R1, mapFd)
              .MovReg(BpfReg.R2, BpfReg.R10)
              .AddImm(BpfReg.R2, key)
              .Call(BpfHelper.MapLookupElem);

    /// <summary>r0 = the passthru entry of the VLAN in R7 (key: MAC 0).</summary>
    private static BpfAssembler EmitPassthruLookup(BpfAssembler asm, int portsFd)
    {
        asm.StW(BpfReg.R10, PassthruKey, 0)
           .StH(BpfReg.R10, PassthruKey + 4, 0)
           .StxH(BpfReg.R10, BpfReg.R7, PassthruKey + 6);
        return EmitLookup(asm, portsFd, PassthruKey);
    }

    /// <summary>Source info on the stack for the fan-out: its slot (NoSlot if not a binding) and mode (0).</summary>
    private static void EmitSourceInfo(BpfAssembler asm, int portsFd)
    {
        var done = asm.DefineLabel();
        asm.StW(BpfReg.R10, SrcSlot, NoSlot)
           .StW(BpfReg.R10, SrcMode, 0);
        EmitLookup(asm, portsFd, SrcKey)
           .JeqImm(BpfReg.R0, 0, done)
           .LdxB(BpfReg.R2, BpfReg.R0, EntryMode)
           .JeqImm(BpfReg.R2, (int)SwitchMode.Host, done)
           .StxW(BpfReg.R10, BpfReg.R2, SrcMode)
           .LdxB(BpfReg.R2, BpfReg.R0, EntrySlot)
           .StxW(BpfReg.R10, BpfReg.R2, SrcSlot)
           .Mark(done);
    }

    /// <summary>Jumps to <paramref name="sibling"/> if the frame's source MAC is a binding's (a sibling's frame on its way out).</summary>
    private static void EmitFromSibling(BpfAssembler asm, int portsFd, BpfLabel sibling)
    {
        var no = asm.DefineLabel();
        EmitLookup(asm, portsFd, SrcKey)
           .JeqImm(BpfReg.R0, 0, no)
           .LdxB(BpfReg.R2, BpfReg.R0, EntryMode)
           .JneImm(BpfReg.R2, (int)SwitchMode.Host, sibling)
           .Mark(no);
    }

    /// <summary>
    /// For a unicast frame to the binding in R8: blocked when the source is a sibling and either is private.
    /// Costs nothing more than one array lookup while no private binding exists.
    /// </summary>
    private static void EmitPrivateCheck(BpfAssembler asm, int portsFd, int groupFd, BpfLabel allowed, BpfLabel blocked)
    {
        asm.StW(BpfReg.R10, ZeroKey, 0);
        EmitLookup(asm, groupFd, ZeroKey)
           .JeqImm(BpfReg.R0, 0, allowed)
           .LdxW(BpfReg.R2, BpfReg.R0, HeaderPrivateCount)
           .JeqImm(BpfReg.R2, 0, allowed);
        EmitLookup(asm, portsFd, SrcKey)
           .JeqImm(BpfReg.R0, 0, allowed)
           .LdxB(BpfReg.R2, BpfReg.R0, EntryMode)
           .JeqImm(BpfReg.R2, (int)SwitchMode.Host, allowed)
           .JeqImm(BpfReg.R2, (int)SwitchMode.Private, blocked)
           .LdxB(BpfReg.R3, BpfReg.R8, EntryMode)
           .JeqImm(BpfReg.R3, (int)SwitchMode.Private, blocked)
           .Ja(allowed);
    }

    /// <summary>Delivers the frame to the entry in R8 (down: dropped and counted), popping the VLAN tag in R7 if asked.</summary>
    private static void EmitDeliver(BpfAssembler asm, int countsFd, bool atIngressHook, bool popVlan)
    {
        var up = asm.DefineLabel();
        asm.LdxW(BpfReg.R2, BpfReg.R8, EntryFlags)
           .Alu64Imm(BpfCode.BPF_AND, BpfReg.R2, FlagDown)
           .JeqImm(BpfReg.R2, 0, up);
        EmitCount(asm, countsFd, BpfReg.R8, EntrySlot, SwitchCount.InDropDown);
        asm.MovImm(BpfReg.R0, Libc.TCX_DROP).Exit();
        asm.Mark(up);
        EmitCount(asm, countsFd, BpfReg.R8, EntrySlot, SwitchCount.In);
        if (popVlan)
        {
            var untagged = asm.DefineLabel();
            asm.JeqImm(BpfReg.R7, 0, untagged)
               .MovReg(BpfReg.R1, BpfReg.R6)
               .Call(BpfHelper.SkbVlanPop)
               .Mark(untagged);
        }

        // The split test overwrites R7 and the stack's first 8 bytes (DstKey); every path from here exits.
        var whole = asm.DefineLabel();
        var small = asm.DefineLabel();
        asm.LdxW(BpfReg.R2, BpfReg.R8, EntryFlags)
           .Alu64Imm(BpfCode.BPF_AND, BpfReg.R2, FlagSplit)
           .JeqImm(BpfReg.R2, 0, whole)
           .MovReg(BpfReg.R1, BpfReg.R6);
        Programs.EmitIsTcpOrLarge(asm, PacketRing.MaxFrame, whole, small);
        asm.Mark(small)
           .LdxW(BpfReg.R1, BpfReg.R8, EntrySplit)
           .MovImm(BpfReg.R2, (int)Libc.BPF_F_INGRESS)
           .Call(BpfHelper.Redirect)
           .Exit()
           .Mark(whole)
           .LdxW(BpfReg.R2, BpfReg.R8, EntryFlags)
           .LdxW(BpfReg.R1, BpfReg.R8, EntryIfindex);
        if (atIngressHook)
        {
            var plain = asm.DefineLabel();
            asm.MovReg(BpfReg.R3, BpfReg.R2)
               .Alu64Imm(BpfCode.BPF_AND, BpfReg.R3, FlagPeer)
               .JeqImm(BpfReg.R3, 0, plain)
               .MovImm(BpfReg.R2, 0)
               .Call(BpfHelper.RedirectPeer)
               .Exit()
               .Mark(plain);
        }

        asm.Alu64Imm(BpfCode.BPF_AND, BpfReg.R2, FlagIngress)
           .Call(BpfHelper.Redirect)
           .Exit();
    }

    /// <summary>
    /// Copies the frame to each entry of the group table that <paramref name="rule"/> admits, on the VLAN in R7 (or
    /// <paramref name="fixedVlan"/>), other than the source slot on the stack; then jumps to <paramref name="done"/>.
    /// The table is walked whole, unrolled (a free slot costs a load and a compare); a tag in R7 is taken off for
    /// the copies and put back afterwards.
    /// </summary>
    private static void EmitFanOut(BpfAssembler asm, int groupFd, int countsFd, FanOutRule rule, int ownSlot, int? fixedVlan, BpfLabel done)
    {
        asm.StW(BpfReg.R10, ZeroKey, 0);
        EmitLookup(asm, groupFd, ZeroKey)
           .JeqImm(BpfReg.R0, 0, done)
           .MovReg(BpfReg.R8, BpfReg.R0);
        if (fixedVlan is null)
        {
            var untagged = asm.DefineLabel();
            asm.JeqImm(BpfReg.R7, 0, untagged)
               .LdxW(BpfReg.R2, BpfReg.R6, SkBuffVlanTci)
               .StxW(BpfReg.R10, BpfReg.R2, SavedTci)
               .LdxW(BpfReg.R2, BpfReg.R6, SkBuffVlanProto)
               .StxW(BpfReg.R10, BpfReg.R2, SavedProto)
               .MovReg(BpfReg.R1, BpfReg.R6)
               .Call(BpfHelper.SkbVlanPop)
               .Mark(untagged);
        }

        for (int i = 0; i < MaxPorts; i++)
        {
            short e = (short)(GroupHeaderSize + (i * EntrySize));
            var skip = asm.DefineLabel();
            var send = asm.DefineLabel();
            var up = asm.DefineLabel();
            asm.LdxW(BpfReg.R2, BpfReg.R8, (short)(e + EntryIfindex))
               .JeqImm(BpfReg.R2, 0, skip)
               .LdxH(BpfReg.R3, BpfReg.R8, (short)(e + EntryVlan));
            if (fixedVlan is { } vlan)
            {
                asm.JneImm(BpfReg.R3, vlan, skip);
            }
            else
            {
                asm.JneReg(BpfReg.R3, BpfReg.R7, skip);
            }

            asm.LdxB(BpfReg.R4, BpfReg.R8, (short)(e + EntrySlot));
            if (ownSlot >= 0)
            {
                asm.JeqImm(BpfReg.R4, ownSlot, skip);
            }
            else
            {
                asm.LdxW(BpfReg.R5, BpfReg.R10, SrcSlot)
                   .JmpReg(BpfCode.BPF_JEQ, BpfReg.R4, BpfReg.R5, skip);
            }

            asm.LdxB(BpfReg.R4, BpfReg.R8, (short)(e + EntryMode));
            if (rule == FanOutRule.BridgeOnly)
            {
                asm.JneImm(BpfReg.R4, (int)SwitchMode.Bridge, skip);
            }
            else
            {
                // A private source reaches no sibling; a sibling source reaches no private binding.
                asm.LdxW(BpfReg.R5, BpfReg.R10, SrcMode)
                   .JeqImm(BpfReg.R5, (int)SwitchMode.Private, skip)
                   .JeqImm(BpfReg.R5, 0, send)
                   .JeqImm(BpfReg.R4, (int)SwitchMode.Private, skip);
            }

            asm.Mark(send)
               .LdxW(BpfReg.R3, BpfReg.R8, (short)(e + EntryFlags))
               .MovReg(BpfReg.R4, BpfReg.R3)
               .Alu64Imm(BpfCode.BPF_AND, BpfReg.R4, FlagDown)
               .JeqImm(BpfReg.R4, 0, up);
            EmitCount(asm, countsFd, BpfReg.R8, (short)(e + EntrySlot), SwitchCount.InDropDown);
            var whole = asm.DefineLabel();
            var copy = asm.DefineLabel();
            asm.Ja(skip)
               .Mark(up)
               .MovReg(BpfReg.R4, BpfReg.R3)
               .Alu64Imm(BpfCode.BPF_AND, BpfReg.R4, FlagSplit)
               .JeqImm(BpfReg.R4, 0, whole)
               .LdxW(BpfReg.R4, BpfReg.R6, SkBuffLen)
               .JmpImm(BpfCode.BPF_JGT, BpfReg.R4, PacketRing.MaxFrame, whole)
               .LdxW(BpfReg.R2, BpfReg.R8, (short)(e + EntrySplit))
               .MovImm(BpfReg.R3, (int)Libc.BPF_F_INGRESS)
               .Ja(copy)
               .Mark(whole)
               .LdxW(BpfReg.R2, BpfReg.R8, (short)(e + EntryIfindex))
               .Alu64Imm(BpfCode.BPF_AND, BpfReg.R3, FlagIngress)
               .Mark(copy)
               .MovReg(BpfReg.R1, BpfReg.R6)
               .Call(BpfHelper.CloneRedirect);
            var failed = asm.DefineLabel();
            asm.JneImm(BpfReg.R0, 0, failed);
            EmitCount(asm, countsFd, BpfReg.R8, (short)(e + EntrySlot), SwitchCount.In);
            asm.Ja(skip).Mark(failed);
            EmitCount(asm, countsFd, BpfReg.R8, (short)(e + EntrySlot), SwitchCount.InDropFailed);
            asm.Mark(skip);
        }

        if (fixedVlan is null)
        {
            asm.JeqImm(BpfReg.R7, 0, done)
               .MovReg(BpfReg.R1, BpfReg.R6)
               .LdxW(BpfReg.R2, BpfReg.R10, SavedProto)
               .LdxW(BpfReg.R3, BpfReg.R10, SavedTci)
               .Call(BpfHelper.SkbVlanPush);
        }

        asm.Ja(done);
    }

    /// <summary>counts[slot * CountKinds + kind] += (1, skb->len) with the slot read from a map value (u8 at base + offset).</summary>
    private static void EmitCount(BpfAssembler asm, int countsFd, BpfReg @base, short slotOffset, SwitchCount kind)
    {
        asm.LdxB(BpfReg.R2, @base, slotOffset)
           .Alu64Imm(BpfCode.BPF_LSH, BpfReg.R2, 3)
           .AddImm(BpfReg.R2, (int)kind)
           .StxW(BpfReg.R10, BpfReg.R2, CountKey);
        EmitCountAtKey(asm, countsFd);
    }

    /// <summary>
    /// A shared binding's filter, where its frames arrive (its device's tcx ingress, its pump's tcx egress or, with
    /// <paramref name="socket"/>, its ring device's packet sockets): a frame the filter matches goes on (TCX_NEXT; a
    /// socket takes it whole), any other is counted (<see cref="SwitchCount.InDropFilter"/>) and dropped (a socket
    /// takes nothing, and the ring device's own drop program ends it).
    /// </summary>
    public static BpfInsn[] FilterAtTarget(int countsFd, int slot, BpfTest test, bool socket)
    {
        var asm = new BpfAssembler();
        var match = asm.DefineLabel();
        var refuse = asm.DefineLabel();
        test(asm, match, refuse);
        asm.Mark(refuse);
        EmitCount(asm, countsFd, slot, SwitchCount.InDropFilter);
        asm.MovImm(BpfReg.R0, socket ? 0 : Libc.TCX_DROP)
           .Exit()
           .Mark(match)
           .MovImm(BpfReg.R0, socket ? -1 : Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }

    private static void EmitCount(BpfAssembler asm, int countsFd, int slot, SwitchCount kind)
    {
        asm.StW(BpfReg.R10, CountKey, (slot * CountKinds) + (int)kind);
        EmitCountAtKey(asm, countsFd);
    }

    private static void EmitCountAtKey(BpfAssembler asm, int countsFd)
    {
        var skip = asm.DefineLabel();
        EmitLookup(asm, countsFd, CountKey)
           .JeqImm(BpfReg.R0, 0, skip)
           .LdxDW(BpfReg.R1, BpfReg.R0, 0)
           .AddImm(BpfReg.R1, 1)
           .StxDW(BpfReg.R0, BpfReg.R1, 0)
           .LdxW(BpfReg.R3, BpfReg.R6, SkBuffLen)
           .LdxDW(BpfReg.R1, BpfReg.R0, 8)
           .AddReg(BpfReg.R1, BpfReg.R3)
           .StxDW(BpfReg.R0, BpfReg.R1, 8)
           .Mark(skip);
    }
}
