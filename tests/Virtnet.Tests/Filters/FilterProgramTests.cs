// Compiled filters in the kernel: the verifier takes every primitive in both contexts (tc and socket filter), and
// hand-built frames get tcpdump's answer. The broad comparison with libpcap is FilterDifferentialTests.
using System.Buffers.Binary;
using Virtnet.Bpf;
using Virtnet.Filters;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Filters;

public class FilterProgramTests
{
    public static readonly TheoryData<string> Expressions = new()
    {
        "ether host 02:00:00:00:00:01", "ether src 02:00:00:00:00:01", "ether dst ff:ff:ff:ff:ff:ff", "ether proto 0x88cc",
        "ether proto 100", "ether proto 6", "vlan", "vlan 100", "vlan and vlan 10 and udp", "arp", "ip", "ip6", "tcp", "udp",
        "icmp", "icmp6", "host 10.200.0.1", "src host fd00::1", "dst net 10.200.0.0/16", "net fd00::/16", "port 53",
        "tcp src port 80", "udp dst portrange 4000-5000", "ip proto 47", "less 100", "greater 1000",
        "not (tcp or udp) and ! arp || vlan 4094 && ip6 and udp port 4789",
    };

    [SkippableTheory]
    [MemberData(nameof(Expressions))]
    public void EveryPrimitive_LoadsInBothContexts(string expression)
    {
        Root.Require();
        var filter = PacketFilter.Parse(expression);
        using var tc = BpfProgram.LoadSchedCls("vn_t_flt", filter.CompileMatchProgram(FilterContext.Tc), "test");
        using var socket = BpfProgram.LoadSocketFilter("vn_t_flt", filter.CompileMatchProgram(FilterContext.Socket), "test");
        Assert.True(tc.Id > 0 && socket.Id > 0);
    }

    private static byte[] Udp(int vlan, string src, string dst, int sport, int dport, int ihl = 5)
    {
        int l2 = vlan > 0 ? 18 : 14;
        var f = new byte[l2 + (ihl * 4) + 8 + 10];
        f[0] = 0x02; f[5] = 0x02; f[6] = 0x02; f[11] = 0x01;
        if (vlan > 0)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), (ushort)vlan);
        }

        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l2 - 2), 0x0800);
        f[l2] = (byte)(0x40 | ihl);
        f[l2 + 9] = 17;
        System.Net.IPAddress.Parse(src).GetAddressBytes().CopyTo(f, l2 + 12);
        System.Net.IPAddress.Parse(dst).GetAddressBytes().CopyTo(f, l2 + 16);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l2 + (ihl * 4)), (ushort)sport);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(l2 + (ihl * 4) + 2), (ushort)dport);
        return f;
    }

    [SkippableTheory]
    [InlineData("udp dst port 4789", 0, 5, 4789, true)]
    [InlineData("udp dst port 4789", 0, 5, 4788, false)]
    [InlineData("udp dst port 4789", 0, 9, 4789, true)]   // IPv4 options: the port is read after the real header
    [InlineData("udp dst port 4789", 100, 5, 4789, false)] // tagged in the frame: "vlan" is needed, as in tcpdump
    [InlineData("vlan 100 and udp dst port 4789", 100, 5, 4789, true)]
    [InlineData("vlan 101 and udp dst port 4789", 100, 5, 4789, false)]
    [InlineData("vlan and udp", 100, 6, 1, true)]
    [InlineData("not vlan and udp", 0, 5, 1, false)]        // libpcap: "not vlan" moves the offsets too
    public void HandBuiltFrames_GetTcpdumpsAnswer(string expression, int vlan, int ihl, int dport, bool match)
    {
        Root.Require();
        var filter = PacketFilter.Parse(expression);
        var frame = Udp(vlan, "10.200.0.1", "10.200.0.2", 1000, dport, ihl);
        // (A socket filter's test run starts the frame at its network header, not at the Ethernet header as on a
        // packet socket, so only the tc context can be run here; the socket context runs in the integration tests.)
        using var program = BpfProgram.LoadSchedCls("vn_t_flt", filter.CompileMatchProgram(), "test");
        Assert.Equal(match ? 1u : 0u, program.TestRun(frame).ReturnValue);
    }

    [SkippableFact]
    public void ShortFrame_FailsTheWholeFilter_AsInClassicBpf()
    {
        Root.Require();
        // "udp port 9 or less 1000": a UDP frame cut after its source port fails at the destination port's load,
        // before "less" is reached, as in tcpdump.
        var frame = Udp(0, "10.200.0.1", "10.200.0.2", 1, 2)[..36];
        using var program = BpfProgram.LoadSchedCls("vn_t_flt", PacketFilter.Parse("udp port 9 or less 1000").CompileMatchProgram(), "test");
        Assert.Equal(0u, program.TestRun(frame).ReturnValue);
        using var other = BpfProgram.LoadSchedCls("vn_t_flt", PacketFilter.Parse("less 1000 or udp port 9").CompileMatchProgram(), "test");
        Assert.Equal(1u, other.TestRun(frame).ReturnValue);
    }
}
