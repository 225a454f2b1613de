// The programs virtnet attaches. Each is a handful of instructions, small enough to read here whole.
using Virtnet.Native;

namespace Virtnet.Bpf;

/// <summary>
/// A test emitted into a program (a compiled filter): R1 is the skb on entry; it jumps to <paramref name="yes"/> or
/// <paramref name="no"/> with R6 = the skb and every other register clobbered.
/// </summary>
internal delegate void BpfTest(BpfAssembler asm, BpfLabel yes, BpfLabel no);

/// <summary>The programs virtnet attaches, emitted with <see cref="BpfAssembler"/>.</summary>
internal static class Programs
{
    /// <summary>offsetof(struct __sk_buff, len): the frame's length including the link-layer header at tc/tcx.</summary>
    public const short SkBuffLenOffset = 0;

    /// <summary>offsetof(struct __sk_buff, pkt_type).</summary>
    public const short SkBuffPktTypeOffset = 4;

    /// <summary>__sk_buff.mark.</summary>
    public const short SkBuffMarkOffset = 8;

    /// <summary>
    /// The mark a program leaves on a frame it drops only because a packet socket already holds its copy (the user
    /// datapath's receive path): such a drop is how a frame is taken, not lost, and the drop point (Capture/DropTap)
    /// skips it. ("vncd", virtnet consumed; the skb is freed right after, so no one else sees the mark.)
    /// </summary>
    public const int ConsumedMark = 0x766e_6364;


    /// <summary>
    /// Counts the frame in counters[key] (frames += 1, bytes += skb->len), then returns
    /// bpf_redirect(ifindex, flags) (TCX_REDIRECT). flags 1 = BPF_F_INGRESS.
    /// </summary>
    public static BpfInsn[] CountAndRedirect(CounterMap counters, int key, int ifindex, ulong flags)
        => CountAndRedirect(counters.Handle.Fd, key, ifindex, flags);

    /// <summary>
    /// For a real device's ingress: like <see cref="CountAndRedirect(CounterMap, int, int, ulong)"/>, but frames
    /// the real device's own stack looped back to itself (skb->pkt_type == PACKET_LOOPBACK: its multicast sent with
    /// loopback on, e.g. its own MLD reports) are left alone (TCX_NEXT). They never came from the wire, so they
    /// must not appear on the virtual device.
    /// </summary>
    public static BpfInsn[] TakeIngress(CounterMap? counters, int key, int ifindex, ulong flags)
        => TakeIngress(counters, key, ifindex, flags, peer: false);

    /// <summary>linux/if_packet.h: what a frame's destination MAC is to the device that received it.</summary>
    public const int PACKET_HOST = 0;

    public const int PACKET_BROADCAST = 1;

    public const int PACKET_MULTICAST = 2;

    public const int PACKET_OTHERHOST = 3;

    /// <summary>offsetof(struct __sk_buff, data) and data_end: direct packet access for tc programs.</summary>
    public const short SkBuffDataOffset = 76;

    public const short SkBuffDataEndOffset = 80;

    /// <summary>
    /// <see cref="TakeIngress(CounterMap?, int, int, ulong)"/> with <paramref name="peer"/>: the frame goes by
    /// bpf_redirect_peer(ifindex) to the peer of a veth in this namespace, a device in another namespace, without
    /// a second pass through the backlog (the receive loop goes round again, as after RX_HANDLER_ANOTHER).
    /// Such a redirect marks every frame PACKET_HOST (skb_scrub_packet); <see cref="ClassifyFrames"/> on the
    /// receiving device puts the right type back.
    /// </summary>
    public static BpfInsn[] TakeIngress(CounterMap? counters, int key, int ifindex, ulong flags, bool peer)
        => TakeIngress(counters, key, ifindex, flags, peer, down: null, downKey: 0);

    /// <summary>
    /// <see cref="TakeIngress(CounterMap?, int, int, ulong, bool)"/> that, while slot 0 of <paramref name="down"/>
    /// is non-zero (the target device is down), drops frames and counts them in counters[<paramref name="downKey"/>]
    /// instead of redirecting them to a device that would drop them (a veth peer's, without counting them).
    /// </summary>
    /// <remarks>With a <c>test</c> (a filter), the frames it does not match go on to the real device's stack (TCX_NEXT).</remarks>
    public static BpfInsn[] TakeIngress(CounterMap? counters, int key, int ifindex, ulong flags, bool peer, FlagMap? down, int downKey, BpfTest? test = null)
    {
        var asm = new BpfAssembler();
        var take = asm.DefineLabel();
        var next = asm.DefineLabel();
        asm.LdxW(BpfReg.R2, BpfReg.R1, SkBuffPktTypeOffset)
           .JneImm(BpfReg.R2, Packet.PACKET_LOOPBACK, take)
           .Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit()
           .Mark(take);
        EmitTest(asm, test, next);
        if (down is not null)
        {
            var up = asm.DefineLabel();
            asm.MovReg(BpfReg.R6, BpfReg.R1)
               .StW(BpfReg.R10, -8, 0)
               .MovReg(BpfReg.R2, BpfReg.R10)
               .AddImm(BpfReg.R2, -8)
               .LdMapFd(BpfReg.R1, down.Handle.Fd)
               .Call(BpfHelper.MapLookupElem)
               .JeqImm(BpfReg.R0, 0, up)
               .LdxW(BpfReg.R2, BpfReg.R0, 0)
               .JeqImm(BpfReg.R2, 0, up)
               .MovReg(BpfReg.R1, BpfReg.R6);
            if (counters is not null)
            {
                EmitCount(asm, counters.Handle.Fd, downKey);
            }

            asm.MovImm(BpfReg.R0, Libc.TCX_DROP)
               .Exit()
               .Mark(up)
               .MovReg(BpfReg.R1, BpfReg.R6);
        }

        if (counters is not null)
        {
            EmitCount(asm, counters.Handle.Fd, key);
        }

        EmitRedirect(asm, ifindex, flags, peer ? BpfHelper.RedirectPeer : BpfHelper.Redirect);
        return asm.ToArray();
    }

    /// <summary>
    /// The instructions, for a map fd:
    /// <code>
    ///   r6 = r1                      ; ctx (struct __sk_buff *), kept across calls
    ///   r7 = *(u32 *)(r6 + 0)        ; skb->len
    ///   *(u32 *)(r10 - 4) = key
    ///   r2 = r10
    ///   r2 += -4                     ; &amp;key
    ///   r1 = map fd (ld_imm64, BPF_PSEUDO_MAP_FD)
    ///   call bpf_map_lookup_elem
    ///   if r0 == 0 goto redirect     ; the verifier insists on the NULL check
    ///   r1 = *(u64 *)(r0 + 0); r1 += 1;  *(u64 *)(r0 + 0) = r1   ; frames, this CPU's copy
    ///   r1 = *(u64 *)(r0 + 8); r1 += r7; *(u64 *)(r0 + 8) = r1   ; bytes
    /// redirect:
    ///   r1 = ifindex; r2 = flags
    ///   call bpf_redirect            ; TC_ACT_REDIRECT (= TCX_REDIRECT 7), or TC_ACT_SHOT for bad flags
    ///   exit
    /// </code>
    /// </summary>
    internal static BpfInsn[] CountAndRedirect(int mapFd, int key, int ifindex, ulong flags)
    {
        var asm = new BpfAssembler();
        EmitCount(asm, mapFd, key);
        EmitRedirect(asm, ifindex, flags);
        return asm.ToArray();
    }

    /// <summary>
    /// For the tcx ingress of a device that frames reach by bpf_redirect_peer(), which marks them all PACKET_HOST:
    /// sets skb->pkt_type from the destination MAC as eth_type_trans() would (PACKET_HOST for <paramref name="mac"/>,
    /// PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST for another host's), then lets the frame go on
    /// (TCX_NEXT). Without it, the stack would take another host's frames as its own, and broadcasts as unicast.
    /// A frame addressed to <paramref name="mac"/> costs the loads and compares only (no helper call).
    /// <code>
    ///   r2 = skb->data; r3 = skb->data_end; r4 = r2 + 6; if r4 > r3 goto next
    ///   r4 = *(u8 *)(r2 + 0); r4 &amp;= 1; if r4 != 0 goto group     ; the I/G bit
    ///   r4 = *(u32 *)(r2 + 0); r5 = mac[0..3]; if r4 != r5 goto other
    ///   r4 = *(u16 *)(r2 + 4); if r4 != mac[4..5] goto other
    ///   goto next                                               ; ours: PACKET_HOST already
    /// other: r2 = PACKET_OTHERHOST; goto set
    /// group: r4 = *(u32 *)(r2 + 0); r5 = 0xffffffff; if r4 != r5 goto mcast
    ///   r4 = *(u16 *)(r2 + 4); if r4 != 0xffff goto mcast; r2 = PACKET_BROADCAST; goto set
    /// mcast: r2 = PACKET_MULTICAST
    /// set: call bpf_skb_change_type        ; r1 is still the skb
    /// next: r0 = TCX_NEXT; exit
    /// </code>
    /// </summary>
    public static BpfInsn[] ClassifyFrames(BpfMap mac)
    {
        ArgumentNullException.ThrowIfNull(mac);

        // The MAC is read from slot 0 of the map (<see cref="ClassifyMacValue"/>): a change of the device's MAC is
        // one map update, with no program to load or attach (no CAP_BPF, no setns into the device's namespace).
        var asm = new BpfAssembler();
        var next = asm.DefineLabel();
        var other = asm.DefineLabel();
        var group = asm.DefineLabel();
        var mcast = asm.DefineLabel();
        var set = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1)
           .StW(BpfReg.R10, -4, 0)
           .MovReg(BpfReg.R2, BpfReg.R10)
           .AddImm(BpfReg.R2, -4)
           .LdMapFd(BpfReg.R1, mac.Handle.Fd)
           .Call(BpfHelper.MapLookupElem)
           .JeqImm(BpfReg.R0, 0, next)
           .LdxW(BpfReg.R8, BpfReg.R0, 0)
           .LdxW(BpfReg.R9, BpfReg.R0, 4)
           .MovReg(BpfReg.R1, BpfReg.R6)
           .LdxW(BpfReg.R2, BpfReg.R1, SkBuffDataOffset)
           .LdxW(BpfReg.R3, BpfReg.R1, SkBuffDataEndOffset)
           .MovReg(BpfReg.R4, BpfReg.R2)
           .AddImm(BpfReg.R4, 6)
           .JmpReg(BpfCode.BPF_JGT, BpfReg.R4, BpfReg.R3, next)
           .LdxB(BpfReg.R4, BpfReg.R2, 0)
           .Alu64Imm(BpfCode.BPF_AND, BpfReg.R4, 1)
           .JneImm(BpfReg.R4, 0, group)
           .LdxW(BpfReg.R4, BpfReg.R2, 0)
           .JneReg(BpfReg.R4, BpfReg.R8, other)
           .LdxH(BpfReg.R4, BpfReg.R2, 4)
           .JneReg(BpfReg.R4, BpfReg.R9, other)
           .Ja(next)
           .Mark(other)
           .MovImm(BpfReg.R2, PACKET_OTHERHOST)
           .Ja(set)
           .Mark(group)
           .LdxW(BpfReg.R4, BpfReg.R2, 0)
           .LdImm64(BpfReg.R5, 0xffffffff)
           .JneReg(BpfReg.R4, BpfReg.R5, mcast)
           .LdxH(BpfReg.R4, BpfReg.R2, 4)
           .JneImm(BpfReg.R4, 0xffff, mcast)
           .MovImm(BpfReg.R2, PACKET_BROADCAST)
           .Ja(set)
           .Mark(mcast)
           .MovImm(BpfReg.R2, PACKET_MULTICAST)
           .Mark(set)
           .Call(BpfHelper.SkbChangeType)
           .Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>The map <see cref="ClassifyFrames"/> reads: a one-slot array of 8 bytes.</summary>
    public static BpfMap CreateClassifyMac(byte[] mac)
    {
        var map = BpfMap.Create(Libc.BPF_MAP_TYPE_ARRAY, "virtnet_mac", sizeof(uint), 8, 1);
        try
        {
            SetClassifyMac(map, mac);
            return map;
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    /// <summary>Points <see cref="ClassifyFrames"/> at another MAC: one map update, effective for the next frame.</summary>
    public static void SetClassifyMac(BpfMap map, byte[] mac)
    {
        ArgumentNullException.ThrowIfNull(map);
        map.Update(stackalloc byte[4], ClassifyMacValue(mac));
    }

    /// <summary>
    /// Slot 0's value for <paramref name="mac"/>: its first four bytes and its last two, each as the program's
    /// little-endian loads of the frame read them (a u32 and a u16 in a u32).
    /// </summary>
    public static byte[] ClassifyMacValue(byte[] mac)
    {
        ArgumentNullException.ThrowIfNull(mac);
        if (mac.Length != 6)
        {
            throw new ArgumentException("a MAC address has 6 bytes", nameof(mac));
        }

        return [mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0];
    }

    private static void EmitCount(BpfAssembler asm, int mapFd, int key)
    {
        var redirect = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1)
           .LdxW(BpfReg.R7, BpfReg.R6, SkBuffLenOffset)
           .StW(BpfReg.R10, -4, key)
           .MovReg(BpfReg.R2, BpfReg.R10)
           .AddImm(BpfReg.R2, -4)
           .LdMapFd(BpfReg.R1, mapFd)
           .Call(BpfHelper.MapLookupElem)
           .JeqImm(BpfReg.R0, 0, redirect)
           .LdxDW(BpfReg.R1, BpfReg.R0, 0)
           .AddImm(BpfReg.R1, 1)
           .StxDW(BpfReg.R0, BpfReg.R1, 0)
           .LdxDW(BpfReg.R1, BpfReg.R0, 8)
           .AddReg(BpfReg.R1, BpfReg.R7)
           .StxDW(BpfReg.R0, BpfReg.R1, 8)
           .Mark(redirect);
    }

    /// <summary>return bpf_redirect(ifindex, flags): mov r1, ifindex; mov r2, flags; call 23; exit.</summary>
    public static BpfInsn[] Redirect(int ifindex, ulong flags)
    {
        var asm = new BpfAssembler();
        EmitRedirect(asm, ifindex, flags);
        return asm.ToArray();
    }

    /// <summary>
    /// A TAP steering program (TUNSETSTEERINGEBPF): returns this CPU's number plus the flag in
    /// <paramref name="spread"/> slot 0; the TAP takes it modulo its queue count. With the flag at 0 a frame goes
    /// to the queue whose forwarder runs on the CPU that produced it (no cross-CPU wake-up); at 1, to the next
    /// CPU's queue (the work moves off the producing CPU).
    /// <code>
    ///   call bpf_get_smp_processor_id ; r6 = r0
    ///   *(u32 *)(r10 - 4) = 0; r2 = r10 - 4; r1 = map; call bpf_map_lookup_elem
    ///   if r0 == 0 goto out; r1 = *(u32 *)(r0 + 0); r6 += r1
    /// out: r0 = r6; exit
    /// </code>
    /// </summary>
    public static BpfInsn[] SteerByCpu(FlagMap spread, int queues = 0) => SteerByCpuFor(spread.Handle.Fd, queues);

    internal static BpfInsn[] SteerByCpuFor(int mapFd, int queues = 0)
    {
        var asm = new BpfAssembler();
        var done = asm.DefineLabel();
        asm.Call(BpfHelper.GetSmpProcessorId)
           .MovReg(BpfReg.R6, BpfReg.R0)
           .StW(BpfReg.R10, -4, 0)
           .MovReg(BpfReg.R2, BpfReg.R10)
           .AddImm(BpfReg.R2, -4)
           .LdMapFd(BpfReg.R1, mapFd)
           .Call(BpfHelper.MapLookupElem)
           .JeqImm(BpfReg.R0, 0, done)
           .LdxW(BpfReg.R1, BpfReg.R0, 0)
           .AddReg(BpfReg.R6, BpfReg.R1)
           .Mark(done)
           .MovReg(BpfReg.R0, BpfReg.R6);
        if (queues > 0)
        {
            // Packet fanout wants an index below the group size; a TAP takes the modulo itself.
            asm.Alu64Imm(BpfCode.BPF_MOD, BpfReg.R0, queues);
        }

        asm.Exit();
        return asm.ToArray();
    }


    /// <summary>
    /// The user datapath's split of the real device's ingress, for tcx: the device's own looped-back copies go on
    /// (TCX_NEXT); TCP (IPv4 protocol 6, IPv6 next header 6) and any frame too long for a ring slot are redirected
    /// to the pump TAP, whose GSO-aware read carries 64 KB super-frames best; everything else is dropped, because the receive ring (whose filter,
    /// <see cref="RingFilter"/>, makes the same decision the other way round) already holds its copy.
    /// One flow always takes one path, so no flow is reordered.
    /// </summary>
    /// <remarks>With a <c>test</c> (a filter), the frames it does not match go on to the real device's stack (TCX_NEXT); the ring filter must then have the same test.</remarks>
    public static BpfInsn[] SplitIngress(int pumpIndex, int maxRingFrame, BpfTest? test = null)
    {
        var asm = new BpfAssembler();
        var take = asm.DefineLabel();
        var tcp = asm.DefineLabel();
        var other = asm.DefineLabel();
        var next = asm.DefineLabel();
        asm.MovReg(BpfReg.R6, BpfReg.R1)
           .LdxW(BpfReg.R2, BpfReg.R1, SkBuffPktTypeOffset)
           .JneImm(BpfReg.R2, Packet.PACKET_LOOPBACK, take)
           .Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit()
           .Mark(take);
        EmitTest(asm, test, next);

        EmitIsTcpOrLarge(asm, maxRingFrame, tcp, other);
        asm.Mark(tcp);
        EmitRedirect(asm, pumpIndex, 0);
        asm.Mark(other);
        EmitConsumed(asm, BpfReg.R6);
        return asm.ToArray();
    }

    /// <summary>
    /// The receive ring's socket filter: TCP is left to the pump (0 bytes taken), everything else is taken whole.
    /// </summary>
    /// <remarks>With a <c>test</c> (the filter compiled for sockets), what it does not match is left alone too.</remarks>
    public static BpfInsn[] RingFilter(int maxRingFrame, BpfTest? test = null)
    {
        var asm = new BpfAssembler();
        var tcp = asm.DefineLabel();
        var other = asm.DefineLabel();
        EmitTest(asm, test, tcp);

        EmitIsTcpOrLarge(asm, maxRingFrame, tcp, other);
        asm.Mark(tcp)
           .MovImm(BpfReg.R0, 0)
           .Exit()
           .Mark(other)
           .MovImm(BpfReg.R0, -1)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>
    /// Jumps to <paramref name="tcp"/> (TCP, or a frame longer than <paramref name="maxRingFrame"/>) or
    /// <paramref name="other"/>. R1 is the skb on entry; the frame is read with
    /// bpf_skb_load_bytes from the Ethernet header on (tc and socket filters both see it from L2; an 802.1Q tag has
    /// been moved to skb metadata by then). A frame too short to tell is "other".
    /// </summary>
    internal static void EmitIsTcpOrLarge(BpfAssembler asm, int maxRingFrame, BpfLabel tcp, BpfLabel other)
    {
        var ipv6 = asm.DefineLabel();
        var load = asm.DefineLabel();
        var small = asm.DefineLabel();
        asm.LdxW(BpfReg.R2, BpfReg.R1, SkBuffLenOffset)   // larger than a ring slot (a GSO super-frame): the pump
           .JmpImm(BpfCode.BPF_JLE, BpfReg.R2, maxRingFrame, small)
           .Ja(tcp)
           .Mark(small)
           .MovReg(BpfReg.R6, BpfReg.R1)
           .MovImm(BpfReg.R2, 12)                    // EtherType
           .MovReg(BpfReg.R3, BpfReg.R10)
           .AddImm(BpfReg.R3, -8)
           .MovImm(BpfReg.R4, 2)
           .Call(BpfHelper.SkbLoadBytes)
           .JneImm(BpfReg.R0, 0, other)
           .LdxH(BpfReg.R7, BpfReg.R10, -8)          // network order read as little-endian
           .MovImm(BpfReg.R2, 23)                    // IPv4 protocol
           .JeqImm(BpfReg.R7, 0x0008, load)
           .JeqImm(BpfReg.R7, 0xDD86, ipv6)
           .Ja(other)
           .Mark(ipv6)
           .MovImm(BpfReg.R2, 20)                    // IPv6 next header
           .Mark(load)
           .MovReg(BpfReg.R1, BpfReg.R6)
           .MovReg(BpfReg.R3, BpfReg.R10)
           .AddImm(BpfReg.R3, -8)
           .MovImm(BpfReg.R4, 1)
           .Call(BpfHelper.SkbLoadBytes)
           .JneImm(BpfReg.R0, 0, other)
           .LdxB(BpfReg.R7, BpfReg.R10, -8)
           .JeqImm(BpfReg.R7, 6, tcp)
           .Ja(other);
    }

    /// <summary>
    /// A mirror: on a real device's tcx ingress (<paramref name="skipLoopback"/>: not the frames its own stack loops
    /// back) or egress, each frame <paramref name="test"/> matches is counted in counters[<paramref name="key"/>] and
    /// copied by bpf_clone_redirect(<paramref name="ifindex"/>, <paramref name="flags"/>); a copy that fails is
    /// counted in counters[<paramref name="failedKey"/>]. The frame itself always goes on unchanged (TCX_NEXT).
    /// </summary>
    public static BpfInsn[] Mirror(CounterMap counters, int key, int failedKey, int ifindex, ulong flags, bool skipLoopback, BpfTest? test)
    {
        var asm = new BpfAssembler();
        var next = asm.DefineLabel();
        if (skipLoopback)
        {
            asm.LdxW(BpfReg.R2, BpfReg.R1, SkBuffPktTypeOffset)
               .JeqImm(BpfReg.R2, Packet.PACKET_LOOPBACK, next);
        }

        EmitTest(asm, test, next);

        EmitCount(asm, counters.Handle.Fd, key);
        asm.MovReg(BpfReg.R1, BpfReg.R6)
           .MovImm(BpfReg.R2, ifindex)
           .MovImm(BpfReg.R3, (int)flags)
           .Call(BpfHelper.CloneRedirect)
           .JeqImm(BpfReg.R0, 0, next)
           .MovReg(BpfReg.R1, BpfReg.R6);
        EmitCount(asm, counters.Handle.Fd, failedKey);
        asm.Mark(next)
           .MovImm(BpfReg.R0, Libc.TCX_NEXT)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>
    /// A user-datapath mirror's receive-ring filter (a socket filter on the real device): takes whole the frames the
    /// device receives (<paramref name="ingress"/>) and/or sends (<paramref name="egress"/>, PACKET_OUTGOING) that
    /// <paramref name="test"/> matches; nothing of the device's own looped-back frames.
    /// </summary>
    public static BpfInsn[] MirrorRingFilter(bool ingress, bool egress, BpfTest? test)
    {
        var asm = new BpfAssembler();
        var none = asm.DefineLabel();
        var check = asm.DefineLabel();
        var take = asm.DefineLabel();
        var sent = asm.DefineLabel();
        asm.LdxW(BpfReg.R2, BpfReg.R1, SkBuffPktTypeOffset)
           .JeqImm(BpfReg.R2, Packet.PACKET_LOOPBACK, none)
           .JeqImm(BpfReg.R2, Packet.PACKET_OUTGOING, sent);
        asm.Ja(ingress ? check : none)
           .Mark(sent)
           .Ja(egress ? check : none)
           .Mark(check);
        if (test is not null)
        {
            test(asm, take, none);
        }

        asm.Mark(take)
           .MovImm(BpfReg.R0, -1)
           .Exit()
           .Mark(none)
           .MovImm(BpfReg.R0, 0)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>With a test: jumps to <paramref name="no"/> unless it matches, and goes on with R1 = the skb.</summary>
    private static void EmitTest(BpfAssembler asm, BpfTest? test, BpfLabel no)
    {
        if (test is null)
        {
            return;
        }

        var matched = asm.DefineLabel();
        test(asm, matched, no);
        asm.Mark(matched).MovReg(BpfReg.R1, BpfReg.R6);
    }

    /// <summary>Counts the frame in counters[<paramref name="key"/>] and drops it (a mirror's device is receive-only).</summary>
    public static BpfInsn[] CountAndDrop(CounterMap counters, int key)
    {
        var asm = new BpfAssembler();
        EmitCount(asm, counters.Handle.Fd, key);
        asm.MovImm(BpfReg.R0, Libc.TCX_DROP).Exit();
        return asm.ToArray();
    }

    /// <summary>return TCX_DROP: mov r0, 2; exit.</summary>
    public static BpfInsn[] Drop()
        => new BpfAssembler().MovImm(BpfReg.R0, Libc.TCX_DROP).Exit().ToArray();

    /// <summary>Drops a frame a packet socket already took (marked <see cref="ConsumedMark"/>): the user datapath's ring device.</summary>
    public static BpfInsn[] DropConsumed()
    {
        var asm = new BpfAssembler();
        EmitConsumed(asm, BpfReg.R1);
        return asm.ToArray();
    }

    /// <summary>skb->mark = ConsumedMark; return TCX_DROP.</summary>
    private static void EmitConsumed(BpfAssembler asm, BpfReg skb)
        => asm.MovImm(BpfReg.R2, ConsumedMark)
              .StxW(skb, BpfReg.R2, SkBuffMarkOffset)
              .MovImm(BpfReg.R0, Libc.TCX_DROP)
              .Exit();

    private static void EmitRedirect(BpfAssembler asm, int ifindex, ulong flags, BpfHelper helper = BpfHelper.Redirect)
    {
        asm.MovImm(BpfReg.R1, ifindex);
        if (flags <= int.MaxValue)
        {
            asm.MovImm(BpfReg.R2, (int)flags);
        }
        else
        {
            asm.LdImm64(BpfReg.R2, flags);
        }

        asm.Call(helper).Exit();
    }
}
