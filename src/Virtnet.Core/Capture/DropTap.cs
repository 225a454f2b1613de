// The drop point: every frame the kernel frees as dropped (the skb:kfree_skb tracepoint, which carries the skb, the
// code location and the reason, enum skb_drop_reason) on the devices of one binding, copied with why and where.
// A raw tracepoint program reads the skb with bpf_probe_read_kernel at offsets taken from the running kernel's BTF
// (Bpf/Btf.cs), keeps the frames of the devices it watches (by namespace inode and ifindex: an ifindex alone is
// ambiguous across namespaces) and, for each device, of the reasons that mean "the binding lost it" rather than
// "the stack behind the virtual device did not want it" (a UDP port with no socket is the user's business), and
// writes them with their metadata to the perf buffers. Devices that carry only the binding's frames (a veth peer,
// a pump, a ring device) keep every reason.
//
// Frames a virtnet program drops because a packet socket already holds them (the user datapath's receive path)
// carry a mark (Programs.ConsumedMark) and are skipped: taken, not lost.
//
// It costs nothing while no capture runs (nothing is attached), and while one runs only frees of dropped skbs pay:
// a forwarded frame is consumed, not dropped, and never enters the program.
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Capture;

/// <summary>Why, where and by whom a frame of the drop point was dropped.</summary>
/// <param name="Reason">The kernel's reason (enum skb_drop_reason without its prefix): TC_INGRESS, FULL_RING, ...</param>
/// <param name="Device">The device the skb was on when it was freed.</param>
/// <param name="Location">The kernel function that dropped it (from /proc/kallsyms), or its address.</param>
internal sealed record DropRecord(string Reason, string Device, string Location)
{
    /// <summary>The packet comment: "drop: TC_INGRESS on va in tcf_classify".</summary>
    public override string ToString() => $"drop: {Reason} on {Device}{(Location.Length == 0 ? "" : $" in {Location}")}";
}

/// <summary>A device the drop point watches.</summary>
/// <param name="NetnsInode">The inode of its network namespace (stat of /proc/PID/ns/net or /run/netns/NAME).</param>
/// <param name="Ifindex">Its index there.</param>
/// <param name="Name">Its name, for the records.</param>
/// <param name="EveryReason">It carries only the binding's frames: every drop there is the binding's.</param>
/// <param name="Unspecified">Drops with no reason given (NOT_SPECIFIED) are the binding's there too (a failed redirect on the real device).</param>
internal readonly record struct DropWatch(uint NetnsInode, int Ifindex, string Name, bool EveryReason, bool Unspecified);

internal sealed unsafe class DropTap : IDisposable, IPerfSamples
{
    public const string ProgramName = "virtnet_drop";

    /// <summary>The most of a frame a record carries (the per-CPU scratch value holds the metadata and this).</summary>
    public const int Snap = 16 * 1024 - MetaSize;

    // The record: when (ktime, 8), length (4), reason (4), ifindex (4), vlan_all (4), location (8), then the bytes.
    private const int MetaSize = 32;
    private const uint ClassDatapath = 1, ClassUnspecified = 2;

    /// <summary>Reasons that say a frame was lost on its way through a device, a queue or a program (not by a protocol behind it).</summary>
    private static readonly string[] s_datapathReasons =
    [
        "TC_EGRESS", "TC_INGRESS", "TC_COOKIE_ERROR", "TC_CHAIN_NOTFOUND", "TC_RECLASSIFY_LOOP", "QDISC_DROP",
        "QDISC_OVERLIMIT", "QDISC_CONGESTED", "CAKE_FLOOD", "FQ_BAND_LIMIT", "FQ_HORIZON_LIMIT", "FQ_FLOW_LIMIT",
        "CPU_BACKLOG", "XDP", "SKB_CSUM", "SKB_GSO_SEG", "SKB_UCOPY_FAULT", "DEV_HDR", "DEV_READY", "FULL_RING", "NOMEM",
        "HDR_TRUNC", "TAP_FILTER", "TAP_TXFILTER", "QUEUE_PURGE", "PACKET_SOCK_ERROR", "NO_TX_TARGET", "PFMEMALLOC",
        "RECURSION_LIMIT", "SKB_RX_HEADROOM",
    ];

    private readonly Cleanup _owned;
    private readonly PerfBuffers _buffers;
    private readonly Dictionary<long, string> _reasons;
    private readonly Dictionary<int, string> _devices;
    private readonly Kallsyms _symbols = new();

    private DropTap(Cleanup owned, PerfBuffers buffers, Dictionary<long, string> reasons, Dictionary<int, string> devices)
    {
        _owned = owned;
        _buffers = buffers;
        _reasons = reasons;
        _devices = devices;
    }

    public IEnumerable<FileDescriptor> Handles => _buffers.Handles;

    public ulong Lost => _buffers.Lost;

    /// <summary>Attaches to skb:kfree_skb for the drops on <paramref name="devices"/>.</summary>
    public static DropTap Open(IReadOnlyList<DropWatch> devices)
    {
        const string Where = "kfree_skb";
        var btf = Btf.Kernel();
        var layout = new SkbLayout(btf);
        var reasons = btf.Enum("skb_drop_reason").ToDictionary(kv => kv.Key, kv => kv.Value.Replace("SKB_DROP_REASON_", "", StringComparison.Ordinal));
        var owned = new Cleanup();
        try
        {
            var buffers = owned.Add(PerfBuffers.Open("virtnet_dropbuf", Where));
            var watched = owned.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_HASH, "virtnet_dropdev", 8, 4, Math.Max(1, devices.Count)));
            Span<byte> key = stackalloc byte[8];
            Span<byte> value = stackalloc byte[4];
            foreach (var d in devices)
            {
                BinaryPrimitives.WriteInt32LittleEndian(key, d.Ifindex);
                BinaryPrimitives.WriteUInt32LittleEndian(key[4..], d.NetnsInode);
                BinaryPrimitives.WriteUInt32LittleEndian(value, d.EveryReason ? uint.MaxValue : ClassDatapath | (d.Unspecified ? ClassUnspecified : 0));
                watched.Update(key, value);
            }

            int count = (int)Math.Min(4096, reasons.Keys.Where(k => k >= 0 && k < 4096).DefaultIfEmpty(0).Max() + 1);
            var why = owned.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_ARRAY, "virtnet_dropwhy", 4, 4, count));
            foreach (var (code, name) in reasons)
            {
                uint cls = s_datapathReasons.Contains(name) ? ClassDatapath : name == "NOT_SPECIFIED" ? ClassUnspecified : 0;
                if (cls != 0 && code >= 0 && code < count)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(key, (int)code);
                    BinaryPrimitives.WriteUInt32LittleEndian(value, cls);
                    why.Update(key[..4], value);
                }
            }

            var scratch = owned.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_PERCPU_ARRAY, "virtnet_dropscr", 4, MetaSize + Snap, 1));
            var program = owned.Add(BpfProgram.Load(Libc.BPF_PROG_TYPE_RAW_TRACEPOINT, ProgramName, Program(layout, watched, why, count, scratch, buffers.Map), Where));
            owned.Add(RawTracepoint.Open(program, Where));
            return new DropTap(owned, buffers, reasons, devices.GroupBy(d => d.Ifindex).ToDictionary(g => g.Key, g => string.Join("|", g.Select(d => d.Name))));
        }
        catch
        {
            owned.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The program, on the raw tracepoint's arguments (skb, location, reason, ...): the skb's device and its
    /// namespace; watched, and for a reason it keeps there; then the metadata and the frame from its MAC header
    /// (its linear part, at most <see cref="Snap"/> bytes) to the perf buffer.
    /// </summary>
    internal static BpfInsn[] Program(SkbLayout at, BpfMap watched, BpfMap why, int reasons, BpfMap scratch, BpfMap output)
    {
        var asm = new BpfAssembler();
        var done = asm.DefineLabel();
        var keep = asm.DefineLabel();
        var data = asm.DefineLabel();
        var clamp = asm.DefineLabel();
        var copy = asm.DefineLabel();

        // Reads size bytes at [src + off] into the stack at fp+dst (bpf_probe_read_kernel).
        void Read(short dst, int size, BpfReg src, int off)
        {
            asm.MovReg(BpfReg.R1, BpfReg.R10).AddImm(BpfReg.R1, dst)
               .MovImm(BpfReg.R2, size)
               .MovReg(BpfReg.R3, src).AddImm(BpfReg.R3, off)
               .Call(BpfHelper.ProbeReadKernel);
        }

        asm.MovReg(BpfReg.R6, BpfReg.R1)                       // R6: the tracepoint's arguments
           .LdxDW(BpfReg.R7, BpfReg.R6, 0);                    // R7: skb
        asm.StDW(BpfReg.R10, -8, 0);
        Read(-8, 8, BpfReg.R7, at.Dev);
        asm.LdxDW(BpfReg.R8, BpfReg.R10, -8)                   // R8: skb->dev
           .JeqImm(BpfReg.R8, 0, done);
        asm.StDW(BpfReg.R10, -16, 0);
        Read(-16, 4, BpfReg.R8, at.Ifindex);                   // key: ifindex at fp-16
        asm.StDW(BpfReg.R10, -24, 0);
        Read(-24, 8, BpfReg.R8, at.NetOfDevice);
        asm.LdxDW(BpfReg.R9, BpfReg.R10, -24)
           .JeqImm(BpfReg.R9, 0, done);
        Read(-12, 4, BpfReg.R9, at.NetInode);                  // key: inode at fp-12
        asm.LdMapFd(BpfReg.R1, watched.Handle.Fd)
           .MovReg(BpfReg.R2, BpfReg.R10).AddImm(BpfReg.R2, -16)
           .Call(BpfHelper.MapLookupElem)
           .JeqImm(BpfReg.R0, 0, done)
           .LdxW(BpfReg.R9, BpfReg.R0, 0);                     // R9: the classes kept on this device

        // A frame a virtnet program dropped only because a packet socket already took it: taken, not lost.
        asm.StDW(BpfReg.R10, -32, 0);
        Read(-32, 4, BpfReg.R7, at.Mark);
        asm.LdxW(BpfReg.R1, BpfReg.R10, -32)
           .Jmp32Imm(BpfCode.BPF_JEQ, BpfReg.R1, Programs.ConsumedMark, done)
           .Jmp32Imm(BpfCode.BPF_JEQ, BpfReg.R9, -1, keep)
           .LdxDW(BpfReg.R2, BpfReg.R6, 16)                    // reason
           .JmpImm(BpfCode.BPF_JGE, BpfReg.R2, reasons, done)
           .StxW(BpfReg.R10, BpfReg.R2, -32)
           .LdMapFd(BpfReg.R1, why.Handle.Fd)
           .MovReg(BpfReg.R2, BpfReg.R10).AddImm(BpfReg.R2, -32)
           .Call(BpfHelper.MapLookupElem)
           .JeqImm(BpfReg.R0, 0, done)
           .LdxW(BpfReg.R1, BpfReg.R0, 0)
           .Alu64Reg(BpfCode.BPF_AND, BpfReg.R1, BpfReg.R9)
           .JeqImm(BpfReg.R1, 0, done)
           .Mark(keep)
           .StW(BpfReg.R10, -32, 0)
           .LdMapFd(BpfReg.R1, scratch.Handle.Fd)
           .MovReg(BpfReg.R2, BpfReg.R10).AddImm(BpfReg.R2, -32)
           .Call(BpfHelper.MapLookupElem)
           .JeqImm(BpfReg.R0, 0, done)
           .MovReg(BpfReg.R9, BpfReg.R0)                       // R9: the record
           .Call(BpfHelper.KtimeGetNs)
           .StxDW(BpfReg.R9, BpfReg.R0, 0)
           .LdxDW(BpfReg.R1, BpfReg.R6, 16)
           .StxW(BpfReg.R9, BpfReg.R1, 12)                     // reason
           .LdxDW(BpfReg.R1, BpfReg.R6, 8)
           .StxDW(BpfReg.R9, BpfReg.R1, 24)                    // location
           .LdxW(BpfReg.R1, BpfReg.R10, -16)
           .StxW(BpfReg.R9, BpfReg.R1, 16);                    // ifindex

        // The skb's head, data, len, data_len, mac_header and vlan_all, onto the stack.
        Read(-40, 8, BpfReg.R7, at.Head);
        Read(-48, 8, BpfReg.R7, at.Data);
        Read(-56, 4, BpfReg.R7, at.Len);
        Read(-52, 4, BpfReg.R7, at.DataLen);
        asm.StDW(BpfReg.R10, -64, 0);
        Read(-64, 2, BpfReg.R7, at.MacHeader);
        asm.StDW(BpfReg.R10, -72, 0);
        Read(-72, 4, BpfReg.R7, at.VlanAll);
        asm.LdxW(BpfReg.R1, BpfReg.R10, -72)
           .StxW(BpfReg.R9, BpfReg.R1, 20)                     // vlan_all
           // Where the frame starts: head + mac_header when set (not 0xffff), else data.
           .LdxDW(BpfReg.R3, BpfReg.R10, -48)                  // R3: start = data
           .LdxW(BpfReg.R1, BpfReg.R10, -64)
           .JeqImm(BpfReg.R1, 0xffff, data)
           .LdxDW(BpfReg.R2, BpfReg.R10, -40)
           .AddReg(BpfReg.R2, BpfReg.R1)                       // head + mac_header
           .JmpReg(BpfCode.BPF_JGT, BpfReg.R2, BpfReg.R3, data) // after data: not a header of this frame
           .MovReg(BpfReg.R3, BpfReg.R2)
           .Mark(data)
           // The frame's length: (data - start) + len; bytes to copy: less data_len, the linear part, at most Snap.
           .LdxDW(BpfReg.R2, BpfReg.R10, -48)
           .Alu64Reg(BpfCode.BPF_SUB, BpfReg.R2, BpfReg.R3)
           .LdxW(BpfReg.R1, BpfReg.R10, -56)
           .AddReg(BpfReg.R2, BpfReg.R1)
           .StxW(BpfReg.R9, BpfReg.R2, 8)
           .LdxW(BpfReg.R1, BpfReg.R10, -52)
           .Alu64Reg(BpfCode.BPF_SUB, BpfReg.R2, BpfReg.R1)
           .JmpImm(BpfCode.BPF_JGT, BpfReg.R2, Snap, clamp)
           .Ja(copy)
           .Mark(clamp)
           .MovImm(BpfReg.R2, Snap)
           .Mark(copy)
           .StxDW(BpfReg.R10, BpfReg.R2, -80)                  // the copy's size, kept across the call
           .MovReg(BpfReg.R1, BpfReg.R9).AddImm(BpfReg.R1, MetaSize)
           .Call(BpfHelper.ProbeReadKernel)
           .LdxDW(BpfReg.R5, BpfReg.R10, -80)
           .JmpImm(BpfCode.BPF_JGT, BpfReg.R5, Snap, done)
           .AddImm(BpfReg.R5, MetaSize)
           .MovReg(BpfReg.R1, BpfReg.R6)
           .LdMapFd(BpfReg.R2, output.Handle.Fd)
           .LdImm64(BpfReg.R3, Libc.BPF_F_CURRENT_CPU)
           .MovReg(BpfReg.R4, BpfReg.R9)
           .Call(BpfHelper.PerfEventOutput)
           .Mark(done)
           .MovImm(BpfReg.R0, 0)
           .Exit();
        return asm.ToArray();
    }

    /// <summary>Hands every record written so far to <paramref name="visit"/>; false when the visitor asked to stop.</summary>
    public bool Drain<T>(ref T state, CaptureRing.Visitor<T> visit) => _buffers.Drain(this, ref state, visit);

    bool IPerfSamples.Sample<T>(byte* raw, int size, ref T state, CaptureRing.Visitor<T> visit)
    {
        if (size < MetaSize)
        {
            return true;
        }

        int length = *(int*)(raw + 8);
        // The raw sample is padded to 8 bytes (perf aligns it): the frame's own length bounds what was copied.
        int captured = Math.Min(Math.Min(size - MetaSize, Snap), Math.Max(length, 0));
        uint reasonCode = *(uint*)(raw + 12);
        int ifindex = *(int*)(raw + 16);
        uint vlanAll = *(uint*)(raw + 20);
        ulong location = *(ulong*)(raw + 24);
        int tag = vlanAll == 0 ? -1 : (BinaryPrimitives.ReverseEndianness((ushort)vlanAll) << 16) | (ushort)(vlanAll >> 16);
        var record = new DropRecord(
            _reasons.TryGetValue(reasonCode, out var reason) ? reason : reasonCode.ToString(CultureInfo.InvariantCulture),
            _devices.TryGetValue(ifindex, out var device) ? device : $"ifindex {ifindex}",
            _symbols.Name(location));
        var frame = new TappedFrame(raw + MetaSize, captured, Math.Max(length, captured), _buffers.UnixNanos(*(long*)raw), outgoing: false, tag, record);
        return visit(ref state, frame);
    }

    public void Dispose() => _owned.Dispose();

    /// <summary>Where the program reads: struct offsets from the running kernel's BTF.</summary>
    internal sealed class SkbLayout(Btf btf)
    {
        public int Dev { get; } = btf.Offset("sk_buff", "dev");
        public int Mark { get; } = btf.Offset("sk_buff", "mark");
        public int Head { get; } = btf.Offset("sk_buff", "head");
        public int Data { get; } = btf.Offset("sk_buff", "data");
        public int Len { get; } = btf.Offset("sk_buff", "len");
        public int DataLen { get; } = btf.Offset("sk_buff", "data_len");
        public int MacHeader { get; } = btf.Offset("sk_buff", "mac_header");
        public int VlanAll { get; } = btf.Offset("sk_buff", "vlan_all");
        public int Ifindex { get; } = btf.Offset("net_device", "ifindex");
        public int NetOfDevice { get; } = btf.Offset("net_device", "nd_net.net");
        public int NetInode { get; } = btf.Offset("net", "ns.inum");
    }
}

/// <summary>A BPF_RAW_TRACEPOINT_OPEN attachment: detached when its fd closes.</summary>
internal sealed unsafe class RawTracepoint : IDisposable
{
    private readonly FileDescriptor _fd;

    private RawTracepoint(FileDescriptor fd) => _fd = fd;

    public static RawTracepoint Open(BpfProgram program, string tracepoint)
    {
        var name = Marshal.StringToHGlobalAnsi(tracepoint);
        try
        {
            var attr = new BpfAttrRawTracepoint { Name = (ulong)name, ProgFd = (uint)program.Handle.Fd };
            int fd = Libc.bpf(Libc.BPF_RAW_TRACEPOINT_OPEN, &attr, (uint)sizeof(BpfAttrRawTracepoint));
            if (fd < 0)
            {
                var errno = LastError.Get();
                throw new VirtnetException("BPF_RAW_TRACEPOINT_OPEN", tracepoint, errno, hint: errno == Errno.EPERM ? "tracing drops needs CAP_BPF and CAP_PERFMON (run as root)" : null);
            }

            return new RawTracepoint(new FileDescriptor(fd));
        }
        finally
        {
            Marshal.FreeHGlobal(name);
        }
    }

    public void Dispose() => _fd.Dispose();
}

/// <summary>Kernel addresses to function names, from /proc/kallsyms (read once, when first asked).</summary>
internal sealed class Kallsyms
{
    private (ulong Address, string Name)[]? _symbols;

    /// <summary>The function at <paramref name="address"/> ("tcf_classify"), or the address in hex when unknown.</summary>
    public string Name(ulong address)
    {
        if (address == 0)
        {
            return "";
        }

        _symbols ??= Load();
        int lo = 0, hi = _symbols.Length - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) / 2;
            if (_symbols[mid].Address <= address)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found < 0 ? $"0x{address:x}" : _symbols[found].Name;
    }

    private static (ulong, string)[] Load()
    {
        var list = new List<(ulong, string)>();
        try
        {
            foreach (var line in File.ReadLines("/proc/kallsyms"))
            {
                // "ffffffff81000000 T _stext [module]": text symbols only.
                var parts = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 3 && parts[1] is "T" or "t" && ulong.TryParse(parts[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong address) && address != 0)
                {
                    list.Add((address, parts[2]));
                }
            }
        }
        catch (IOException)
        {
        }

        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return [.. list];
    }
}
