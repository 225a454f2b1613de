// libpcap through P/Invoke, as the reference compiler of the filter tests: pcap_compile on a dead Ethernet handle
// (DLT_EN10MB, no live-capture VLAN offload tricks) gives the classic BPF program tcpdump would run on a capture
// file; ClassicBpf runs it. libpcap comes with tcpdump (Debian: libpcap0.8, whose soname is libpcap.so.0.8).
using System.Runtime.InteropServices;
using System.Text;
using Xunit;

namespace Virtnet.Tests.Filters;

/// <summary>pcap_compile failed; <see cref="Exception.Message"/> is pcap_geterr's text.</summary>
internal sealed class PcapCompileException(string expression, string error)
    : Exception($"pcap_compile(\"{expression}\"): {error}")
{
    /// <summary>The expression that failed.</summary>
    public string Expression { get; } = expression;

    /// <summary>pcap_geterr's text, e.g. "expression rejects all packets".</summary>
    public string Error { get; } = error;

    /// <summary>
    /// The optimizer proved that nothing can match. That is an error of pcap_compile with optimization only; the
    /// expression itself is valid (tcpdump -O compiles it), and means "match nothing".
    /// </summary>
    public bool RejectsAllPackets => Error.Contains("rejects all packets", StringComparison.Ordinal);
}

/// <summary>Compiles filter expressions with libpcap and runs classic BPF with libpcap's own interpreter.</summary>
internal static unsafe partial class PcapReference
{
    private const string Library = "libpcap.so.0.8";
    private const int DLT_EN10MB = 1;
    private const int SnapLength = 262144;
    private const uint PCAP_NETMASK_UNKNOWN = 0xffffffff;

    private static readonly Lazy<string?> s_missing = new(Probe);

    // Older libpcaps keep the parser's state in globals; one compilation at a time.
    private static readonly Lock s_lock = new();

    /// <summary>Why libpcap cannot be used, or null when it can.</summary>
    public static string? Missing => s_missing.Value;

    /// <summary>
    /// Tests that need libpcap call this first. Without it they are skipped with a reason, unless
    /// VIRTNET_REQUIRE_ROOT_TESTS=1 (CI), where a missing libpcap is a failure: .ci/run installs tcpdump.
    /// </summary>
    public static void Require()
    {
        if (Missing is null)
        {
            return;
        }

        if (Environment.GetEnvironmentVariable("VIRTNET_REQUIRE_ROOT_TESTS") == "1")
        {
            Assert.Fail($"{Missing}, but VIRTNET_REQUIRE_ROOT_TESTS=1 demands every test run");
        }

        Skip.If(true, Missing);
    }

    private static string? Probe()
    {
        if (!NativeLibrary.TryLoad(Library, out nint handle))
        {
            return $"libpcap ({Library}) is not installed; the filter tests compile their reference programs with it: "
                + "apt-get install tcpdump (it brings libpcap0.8)";
        }

        NativeLibrary.Free(handle);
        return null;
    }

    /// <summary>
    /// pcap_compile of <paramref name="expression"/> for Ethernet frames, optimized or not (tcpdump's default is
    /// optimized; tcpdump -O is not). Throws <see cref="PcapCompileException"/> when libpcap refuses it.
    /// </summary>
    /// <param name="live">A handle from <see cref="OpenLive"/>: compile as tcpdump does on a Linux device, where the
    /// first "vlan" also looks at the skb's VLAN metadata (BPF_SPECIAL_VLAN_HANDLING); 0: an offline handle.</param>
    public static ClassicInsn[] Compile(string expression, bool optimize = true, nint live = 0)
    {
        byte[] text = Encoding.UTF8.GetBytes(expression + "\0");
        lock (s_lock)
        {
            nint pcap = live != 0 ? live : pcap_open_dead(DLT_EN10MB, SnapLength);
            if (pcap == 0)
            {
                throw new InvalidOperationException("pcap_open_dead(DLT_EN10MB) returned NULL");
            }

            try
            {
                PcapProgram program;
                int status;
                fixed (byte* str = text)
                {
                    status = pcap_compile(pcap, &program, str, optimize ? 1 : 0, PCAP_NETMASK_UNKNOWN);
                }

                if (status != 0)
                {
                    throw new PcapCompileException(expression, Marshal.PtrToStringUTF8(pcap_geterr(pcap)) ?? "(no error text)");
                }

                try
                {
                    var result = new ClassicInsn[program.Length];
                    for (int i = 0; i < result.Length; i++)
                    {
                        PcapInsn insn = program.Instructions[i];
                        result[i] = new ClassicInsn(insn.Code, insn.Jt, insn.Jf, insn.K);
                    }

                    return result;
                }
                finally
                {
                    pcap_freecode(&program);
                }
            }
            finally
            {
                if (live == 0)
                {
                    pcap_close(pcap);
                }
            }
        }
    }

    /// <summary>An activated capture handle on the loopback device of <paramref name="netns"/>, for live compiles; close it with <see cref="Close"/>.</summary>
    public static nint OpenLive(string netns) => Infrastructure.InNetns.Run(netns, () =>
    {
        byte* error = stackalloc byte[256];
        byte[] device = Encoding.UTF8.GetBytes("lo\0");
        nint pcap;
        fixed (byte* name = device)
        {
            pcap = pcap_create(name, error);
        }

        if (pcap == 0 || pcap_activate(pcap) < 0)
        {
            string why = pcap == 0 ? Marshal.PtrToStringUTF8((nint)error) ?? "?" : Marshal.PtrToStringUTF8(pcap_geterr(pcap)) ?? "?";
            if (pcap != 0)
            {
                pcap_close(pcap);
            }

            throw new InvalidOperationException($"pcap_create/pcap_activate(lo) in {netns}: {why}");
        }

        return pcap;
    });

    public static void Close(nint pcap) => pcap_close(pcap);

    /// <summary>
    /// The program that decides what <paramref name="expression"/> matches: the optimized one, or, where the
    /// optimizer found that nothing can match (an error, see <see cref="PcapCompileException.RejectsAllPackets"/>),
    /// the unoptimized one, which returns 0 for every frame.
    /// </summary>
    public static ClassicInsn[] CompileReference(string expression, nint live = 0, bool optimize = true)
    {
        try
        {
            return Compile(expression, optimize, live);
        }
        catch (PcapCompileException e) when (e.RejectsAllPackets)
        {
            return Compile(expression, optimize: false, live);
        }
    }

    /// <summary>libpcap's own interpreter (bpf_filter) over <paramref name="frame"/>: to check <see cref="ClassicBpf"/>.</summary>
    public static uint Filter(ClassicInsn[] program, byte[] frame)
    {
        var native = new PcapInsn[program.Length];
        for (int i = 0; i < program.Length; i++)
        {
            native[i] = new PcapInsn { Code = program[i].Code, Jt = program[i].Jt, Jf = program[i].Jf, K = program[i].K };
        }

        fixed (PcapInsn* insns = native)
        fixed (byte* data = frame)
        {
            return bpf_filter(insns, data, (uint)frame.Length, (uint)frame.Length);
        }
    }

    // pcap/pcap.h
    [LibraryImport(Library)]
    private static partial nint pcap_open_dead(int linktype, int snaplen);

    [LibraryImport(Library)]
    private static partial int pcap_compile(nint p, PcapProgram* fp, byte* str, int optimize, uint netmask);

    [LibraryImport(Library)]
    private static partial nint pcap_geterr(nint p);

    [LibraryImport(Library)]
    private static partial nint pcap_create(byte* source, byte* errbuf);

    [LibraryImport(Library)]
    private static partial int pcap_activate(nint p);

    [LibraryImport(Library)]
    private static partial void pcap_freecode(PcapProgram* fp);

    [LibraryImport(Library)]
    private static partial void pcap_close(nint p);

    // pcap/bpf.h: u_int bpf_filter(const struct bpf_insn *, const u_char *, u_int wirelen, u_int buflen)
    [LibraryImport(Library)]
    private static partial uint bpf_filter(PcapInsn* pc, byte* p, uint wirelen, uint buflen);
}

/// <summary>
/// pcap/bpf.h struct bpf_program { u_int bf_len; struct bpf_insn *bf_insns; }: 16 bytes on 64-bit, the pointer at 8
/// (after 4 bytes of padding).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct PcapProgram
{
    public uint Length;
    public PcapInsn* Instructions;
}

/// <summary>pcap/bpf.h struct bpf_insn { u_short code; u_char jt; u_char jf; bpf_u_int32 k; }: 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct PcapInsn
{
    public ushort Code;
    public byte Jt;
    public byte Jf;
    public uint K;
}
