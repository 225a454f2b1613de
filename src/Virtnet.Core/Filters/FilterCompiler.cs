// The code generator: a parsed filter becomes eBPF that jumps to "match" or "no match", with libpcap's meaning
// of every primitive (its gencode.c, as `tcpdump -d` on a Linux device shows it):
//  - a load past the frame's end makes the whole filter fail, as in classic BPF;
//  - IPv4 ports are read only from first fragments, after the IPv4 header's real length (IHL);
//  - tcp/udp/icmp6 over IPv6 also match behind one fragment header; ports over IPv6 only without one;
//  - host/net over IPv4 also match ARP and RARP sender and target addresses;
//  - the first "vlan" takes the skb's VLAN metadata if there is a tag there (where Linux puts the outer tag on
//    receive), else the frame's own tag, and then moves later offsets by 4 at run time; later "vlan"s read tags
//    in the frame and move the offsets by 4 for good.
//
// Two contexts: tc (SCHED_CLS; direct packet access with a bounds check per load, the frame's headers pulled
// into the linear area first if they are not there) and socket (SOCKET_FILTER; LD_ABS/LD_IND loads, which
// return 0 from the program past the end, as the filter must).
//
// Registers: R6 the skb (on entry R1), R9 the run-time VLAN shift, tc: R7 data, R8 data_end, R4 the IPv4
// header length; socket: R7 the IPv4 header length. R0-R5 are scratch.
using System.Net;
using System.Net.Sockets;
using Virtnet.Bpf;
using static Virtnet.Bpf.BpfCode;

namespace Virtnet.Filters;

/// <summary>Where a compiled filter runs: which loads it may use.</summary>
internal enum FilterContext
{
    /// <summary>A tc/tcx program (SCHED_CLS): direct packet access.</summary>
    Tc,

    /// <summary>A socket filter (SOCKET_FILTER): LD_ABS/LD_IND.</summary>
    Socket,
}

internal sealed class FilterCompiler
{
    private const short SkbLen = 0;
    private const short SkbVlanPresent = 20;
    private const short SkbVlanTci = 24;
    private const short SkbData = 76;
    private const short SkbDataEnd = 80;

    private const int EtherIpv4 = 0x0800;
    private const int EtherIpv6 = 0x86DD;
    private const int EtherArp = 0x0806;
    private const int EtherRarp = 0x8035;
    private const int Ipv6Fragment = 44;

    private static readonly int[] s_vlanTypes = [0x8100, 0x88A8, 0x9100];

    private readonly BpfAssembler _asm;
    private readonly FilterContext _context;
    private readonly BpfLabel _fail;

    private FilterCompiler(BpfAssembler asm, FilterContext context, BpfLabel fail)
    {
        _asm = asm;
        _context = context;
        _fail = fail;
    }

    private BpfReg HeaderLength => _context == FilterContext.Tc ? BpfReg.R4 : BpfReg.R7;

    /// <summary>
    /// Emits <paramref name="root"/>: R1 is the skb on entry; the code jumps to <paramref name="match"/> or
    /// <paramref name="noMatch"/> with R6 = the skb (every other register clobbered).
    /// </summary>
    public static void Emit(BpfAssembler asm, FilterNode root, FilterContext context, BpfLabel match, BpfLabel noMatch)
    {
        var compiler = new FilterCompiler(asm, context, noMatch);
        compiler.Prologue(root);
        compiler.Node(root, match, noMatch);
    }

    private void Prologue(FilterNode root)
    {
        _asm.MovReg(BpfReg.R6, BpfReg.R1);
        if (Any(root, n => n is VlanNode))
        {
            _asm.MovImm(BpfReg.R9, 0);
        }

        int reach = Reach(root);
        if (_context != FilterContext.Tc || reach == 0)
        {
            return;
        }

        // The headers the filter reads must be in the linear area for direct access; pull them there when a
        // driver left them in pages (rare: it costs a copy). A frame shorter than that is pulled whole.
        var linear = _asm.DefineLabel();
        _asm.LdxW(BpfReg.R7, BpfReg.R6, SkbData)
            .LdxW(BpfReg.R8, BpfReg.R6, SkbDataEnd)
            .LdxW(BpfReg.R2, BpfReg.R6, SkbLen);
        var shortFrame = _asm.DefineLabel();
        _asm.JmpImm(BPF_JLE, BpfReg.R2, reach, shortFrame)
            .MovImm(BpfReg.R2, reach)
            .Mark(shortFrame)
            .MovReg(BpfReg.R3, BpfReg.R7)
            .AddReg(BpfReg.R3, BpfReg.R2)
            .JmpReg(BPF_JLE, BpfReg.R3, BpfReg.R8, linear)
            .MovReg(BpfReg.R1, BpfReg.R6)
            .Call(BpfHelper.SkbPullData)
            .LdxW(BpfReg.R7, BpfReg.R6, SkbData)
            .LdxW(BpfReg.R8, BpfReg.R6, SkbDataEnd)
            .Mark(linear);
    }

    /// <summary>How far into the frame the filter may read: what the prologue makes linear.</summary>
    private static int Reach(FilterNode node) => node switch
    {
        AndNode a => Math.Max(Reach(a.Left), Reach(a.Right)),
        OrNode o => Math.Max(Reach(o.Left), Reach(o.Right)),
        NotNode n => Reach(n.Operand),
        LengthNode => 0,
        EtherHostNode => 12,
        VlanNode v => Far(v.At) + 4,
        EtherProtoNode p => Far(p.At) + 2,
        TransportNode t => Far(t.At) + 41,
        HostNode h => Far(h.At) + (h.Address.AddressFamily == AddressFamily.InterNetwork ? 28 : 40),
        PortNode p => Far(p.At) + 64,
        _ => throw new ArgumentOutOfRangeException(nameof(node)),
    };

    private static int Far(LinkOffset at) => at.Payload + (at.Variable ? 4 : 0);

    private static bool Any(FilterNode node, Func<FilterNode, bool> test) => test(node) || node switch
    {
        AndNode a => Any(a.Left, test) || Any(a.Right, test),
        OrNode o => Any(o.Left, test) || Any(o.Right, test),
        NotNode n => Any(n.Operand, test),
        _ => false,
    };

    private void Node(FilterNode node, BpfLabel yes, BpfLabel no)
    {
        switch (node)
        {
            case AndNode a:
            {
                var right = _asm.DefineLabel();
                Node(a.Left, right, no);
                _asm.Mark(right);
                Node(a.Right, yes, no);
                break;
            }

            case OrNode o:
            {
                var right = _asm.DefineLabel();
                Node(o.Left, yes, right);
                _asm.Mark(right);
                Node(o.Right, yes, no);
                break;
            }

            case NotNode n:
                Node(n.Operand, no, yes);
                break;
            case EtherHostNode e:
                EtherHost(e, yes, no);
                break;
            case EtherProtoNode p:
                EtherProto(p, yes, no);
                break;
            case VlanNode v:
                Vlan(v, yes, no);
                break;
            case TransportNode t:
                Transport(t, yes, no);
                break;
            case HostNode h:
                Host(h, yes, no);
                break;
            case PortNode p:
                Port(p, yes, no);
                break;
            case LengthNode l:
                _asm.LdxW(BpfReg.R0, BpfReg.R6, SkbLen);
                if (l.Greater)
                {
                    _asm.JmpImm(BPF_JGE, BpfReg.R0, l.Value, yes).Ja(no);
                }
                else
                {
                    _asm.JmpImm(BPF_JGT, BpfReg.R0, l.Value, no).Ja(yes);
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(node));
        }
    }

    /// <summary>R0 = the big-endian value of <paramref name="size"/> bytes at <paramref name="offset"/> (+ the VLAN shift, + the IPv4 header length).</summary>
    private void Load(byte size, int offset, bool vlanShift = false, bool headerLength = false)
    {
        int bytes = size switch { BPF_B => 1, BPF_H => 2, _ => 4 };
        if (_context == FilterContext.Socket)
        {
            if (!vlanShift && !headerLength)
            {
                _asm.LdAbs(size, offset);
                return;
            }

            var index = vlanShift ? BpfReg.R9 : HeaderLength;
            if (vlanShift && headerLength)
            {
                _asm.MovReg(BpfReg.R2, BpfReg.R9).AddReg(BpfReg.R2, HeaderLength);
                index = BpfReg.R2;
            }

            _asm.LdInd(size, index, offset);
            return;
        }

        _asm.MovReg(BpfReg.R3, BpfReg.R7);
        if (vlanShift)
        {
            _asm.AddReg(BpfReg.R3, BpfReg.R9);
        }

        if (headerLength)
        {
            _asm.AddReg(BpfReg.R3, HeaderLength);
        }

        _asm.MovReg(BpfReg.R5, BpfReg.R3)
            .AddImm(BpfReg.R5, offset + bytes)
            .JmpReg(BPF_JGT, BpfReg.R5, BpfReg.R8, _fail)
            .Emit((byte)(BPF_LDX | BPF_MEM | size), BpfReg.R0, BpfReg.R3, checked((short)offset), 0);
        if (bytes > 1)
        {
            _asm.ToBigEndian(BpfReg.R0, bytes * 8);
        }
    }

    private void Load(byte size, LinkOffset at, int offset, bool headerLength = false) => Load(size, offset, at.Variable, headerLength);

    private void JumpIfEqual(int value, BpfLabel target) => _asm.Jmp32Imm(BPF_JEQ, BpfReg.R0, value, target);

    private void JumpIfNotEqual(int value, BpfLabel target) => _asm.Jmp32Imm(BPF_JNE, BpfReg.R0, value, target);

    private void EtherHost(EtherHostNode e, BpfLabel yes, BpfLabel no)
    {
        int high = (e.Mac[0] << 8) | e.Mac[1];
        int low = (e.Mac[2] << 24) | (e.Mac[3] << 16) | (e.Mac[4] << 8) | e.Mac[5];
        void Test(int offset, BpfLabel miss)
        {
            Load(BPF_W, offset + 2);
            JumpIfNotEqual(low, miss);
            Load(BPF_H, offset);
            JumpIfEqual(high, yes);
            _asm.Ja(miss);
        }

        if (e.Direction == FilterDirection.SrcOrDst)
        {
            var dst = _asm.DefineLabel();
            Test(6, dst);
            _asm.Mark(dst);
            Test(0, no);
        }
        else
        {
            Test(e.Direction == FilterDirection.Src ? 6 : 0, no);
        }
    }

    private void EtherProto(EtherProtoNode p, BpfLabel yes, BpfLabel no)
    {
        Load(BPF_H, p.At, p.At.Type);
        if (p.Value > 1500)
        {
            JumpIfEqual(p.Value, yes);
            _asm.Ja(no);
            return;
        }

        // An 802.3 length, not an EtherType: the value is an 802.2 LLC SAP (libpcap's gen_llc_linktype).
        _asm.Jmp32Imm(BPF_JGT, BpfReg.R0, 1500, no);
        if (p.Value is 0x06 or 0xF0 or 0xFE)
        {
            Load(BPF_H, p.At, p.At.Payload);
            JumpIfEqual((p.Value << 8) | p.Value, yes);
        }
        else
        {
            Load(BPF_B, p.At, p.At.Payload);
            JumpIfEqual(p.Value, yes);
        }

        _asm.Ja(no);
    }

    private void Vlan(VlanNode v, BpfLabel yes, BpfLabel no)
    {
        if (v.First)
        {
            var inFrame = _asm.DefineLabel();
            _asm.LdxW(BpfReg.R0, BpfReg.R6, SkbVlanPresent)
                .JeqImm(BpfReg.R0, 0, inFrame);
            if (v.Id is { } id)
            {
                _asm.LdxW(BpfReg.R0, BpfReg.R6, SkbVlanTci)
                    .Alu64Imm(BPF_AND, BpfReg.R0, 0xFFF);
                JumpIfEqual(id, yes);
                _asm.Ja(no);
            }
            else
            {
                _asm.Ja(yes);
            }

            // No tag in the metadata: look in the frame, and read everything after it 4 bytes further on.
            _asm.Mark(inFrame).MovImm(BpfReg.R9, 4);
            VlanInFrame(v.Id, 12, false, yes, no);
            return;
        }

        VlanInFrame(v.Id, v.At.Type, v.At.Variable, yes, no);
    }

    private void VlanInFrame(int? id, int typeOffset, bool shift, BpfLabel yes, BpfLabel no)
    {
        var tagged = _asm.DefineLabel();
        Load(BPF_H, typeOffset, shift);
        foreach (var type in s_vlanTypes)
        {
            JumpIfEqual(type, tagged);
        }

        _asm.Ja(no).Mark(tagged);
        if (id is { } vid)
        {
            Load(BPF_H, typeOffset + 2, shift);
            _asm.Alu64Imm(BPF_AND, BpfReg.R0, 0xFFF);
            JumpIfEqual(vid, yes);
            _asm.Ja(no);
        }
        else
        {
            _asm.Ja(yes);
        }
    }

    private void Transport(TransportNode t, BpfLabel yes, BpfLabel no)
    {
        var ipv6 = _asm.DefineLabel();
        Load(BPF_H, t.At, t.At.Type);
        if (t.V4 >= 0)
        {
            JumpIfNotEqual(EtherIpv4, t.V6 >= 0 ? ipv6 : no);
            Load(BPF_B, t.At, t.At.Payload + 9);
            JumpIfEqual(t.V4, yes);
            _asm.Ja(no);
        }

        if (t.V6 >= 0)
        {
            _asm.Mark(ipv6);
            JumpIfNotEqual(EtherIpv6, no);
            Load(BPF_B, t.At, t.At.Payload + 6);
            JumpIfEqual(t.V6, yes);
            if (t.V6FragmentHeader)
            {
                JumpIfNotEqual(Ipv6Fragment, no);
                Load(BPF_B, t.At, t.At.Payload + 40);
                JumpIfEqual(t.V6, yes);
            }

            _asm.Ja(no);
        }
    }

    private void Host(HostNode h, BpfLabel yes, BpfLabel no)
    {
        var bytes = h.Address.GetAddressBytes();
        if (h.Address.AddressFamily == AddressFamily.InterNetwork)
        {
            int address = (bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3];
            int mask = h.PrefixLength == 0 ? 0 : (int)(0xFFFFFFFFu << (32 - h.PrefixLength));
            var arp = _asm.DefineLabel();
            var arpTest = _asm.DefineLabel();
            Load(BPF_H, h.At, h.At.Type);
            JumpIfNotEqual(EtherIpv4, arp);
            Addresses(h.Direction, [address], [mask], h.At, h.At.Payload + 12, h.At.Payload + 16, yes, no);
            _asm.Mark(arp);
            JumpIfEqual(EtherArp, arpTest);
            JumpIfEqual(EtherRarp, arpTest);
            _asm.Ja(no).Mark(arpTest);
            Addresses(h.Direction, [address], [mask], h.At, h.At.Payload + 14, h.At.Payload + 24, yes, no);
            return;
        }

        var words = new int[4];
        var masks = new int[4];
        for (int i = 0; i < 4; i++)
        {
            words[i] = (bytes[4 * i] << 24) | (bytes[(4 * i) + 1] << 16) | (bytes[(4 * i) + 2] << 8) | bytes[(4 * i) + 3];
            int bits = Math.Clamp(h.PrefixLength - (32 * i), 0, 32);
            masks[i] = bits == 0 ? 0 : (int)(0xFFFFFFFFu << (32 - bits));
        }

        Load(BPF_H, h.At, h.At.Type);
        JumpIfNotEqual(EtherIpv6, no);
        Addresses(h.Direction, words, masks, h.At, h.At.Payload + 8, h.At.Payload + 24, yes, no);
    }

    /// <summary>Tests the source and/or destination address (one word per entry; words with a zero mask are skipped).</summary>
    private void Addresses(FilterDirection direction, int[] words, int[] masks, LinkOffset at, int source, int destination, BpfLabel yes, BpfLabel no)
    {

        void Test(int offset, BpfLabel miss)
        {
            for (int i = 0; i < words.Length; i++)
            {
                // Every word is loaded, even one whose bits are all masked off (a /0, the tail of an IPv6 prefix), as
                // in libpcap's program before its optimizer: on a frame cut short that load is what ends the filter.
                Load(BPF_W, at, offset + (4 * i));
                if (masks[i] != -1)
                {
                    _asm.Emit((byte)(BPF_ALU | BPF_AND | BPF_K), BpfReg.R0, BpfReg.R0, 0, masks[i]);
                }

                JumpIfNotEqual(words[i] & masks[i], miss);
            }

            _asm.Ja(yes);
        }

        if (direction == FilterDirection.SrcOrDst)
        {
            var dst = _asm.DefineLabel();
            Test(source, dst);
            _asm.Mark(dst);
            Test(destination, no);
        }
        else
        {
            Test(direction == FilterDirection.Src ? source : destination, no);
        }
    }

    private void Port(PortNode p, BpfLabel yes, BpfLabel no)
    {
        var ipv4 = _asm.DefineLabel();
        var v6Ports = _asm.DefineLabel();
        var v4Ports = _asm.DefineLabel();
        Load(BPF_H, p.At, p.At.Type);
        JumpIfNotEqual(EtherIpv6, ipv4);
        Load(BPF_B, p.At, p.At.Payload + 6);
        foreach (var protocol in p.Protocols)
        {
            JumpIfEqual(protocol, v6Ports);
        }

        _asm.Ja(no).Mark(v6Ports);
        Ports(p, p.At.Payload + 40, headerLength: false, yes, no);

        _asm.Mark(ipv4);
        JumpIfNotEqual(EtherIpv4, no);
        Load(BPF_B, p.At, p.At.Payload + 9);
        foreach (var protocol in p.Protocols)
        {
            JumpIfEqual(protocol, v4Ports);
        }

        _asm.Ja(no).Mark(v4Ports);
        Load(BPF_H, p.At, p.At.Payload + 6);
        _asm.Jmp32Imm(BPF_JSET, BpfReg.R0, 0x1FFF, no); // not a first fragment: no ports to read
        Load(BPF_B, p.At, p.At.Payload);
        _asm.MovReg(HeaderLength, BpfReg.R0)
            .Alu64Imm(BPF_AND, HeaderLength, 0xF)
            .Alu64Imm(BPF_LSH, HeaderLength, 2);
        Ports(p, p.At.Payload, headerLength: true, yes, no);
    }

    private void Ports(PortNode p, int l4, bool headerLength, BpfLabel yes, BpfLabel no)
    {
        void Test(int offset, BpfLabel miss)
        {
            Load(BPF_H, offset, p.At.Variable, headerLength);
            if (p.Low == p.High)
            {
                JumpIfEqual(p.Low, yes);
            }
            else
            {
                _asm.Jmp32Imm(BPF_JLT, BpfReg.R0, p.Low, miss)
                    .Jmp32Imm(BPF_JLE, BpfReg.R0, p.High, yes);
            }

            _asm.Ja(miss);
        }

        if (p.Direction == FilterDirection.SrcOrDst)
        {
            var dst = _asm.DefineLabel();
            Test(l4, dst);
            _asm.Mark(dst);
            Test(l4 + 2, no);
        }
        else
        {
            Test(p.Direction == FilterDirection.Src ? l4 : l4 + 2, no);
        }
    }
}
