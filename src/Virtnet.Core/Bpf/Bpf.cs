// CONTRACT STUB: the BPF helper replaces the bodies; callers rely on these signatures.
using Virtnet.Native;

namespace Virtnet.Bpf;

public enum TcxDirection
{
    Ingress,
    Egress,
}

/// <summary>A loaded BPF program, owned by its fd.</summary>
public sealed class BpfProgram : IDisposable
{
    public FileDescriptor Handle => throw new NotImplementedException();
    public uint Id => throw new NotImplementedException();
    public string Name => throw new NotImplementedException();

    /// <summary>
    /// BPF_PROG_LOAD of a SCHED_CLS program, license "GPL". On a verifier failure the exception carries the
    /// verifier log. Name is at most 15 bytes (BPF_OBJ_NAME_LEN - 1).
    /// </summary>
    public static BpfProgram LoadSchedCls(string name, ReadOnlySpan<BpfInsn> instructions, string device) => throw new NotImplementedException();

    public void Dispose() => throw new NotImplementedException();
}

/// <summary>A BPF_MAP_TYPE_PERCPU_ARRAY of (frames, bytes) counters, u64 pairs, one slot per key.</summary>
public sealed class CounterMap : IDisposable
{
    public static CounterMap Create(string name, int slots) => throw new NotImplementedException();
    public FileDescriptor Handle => throw new NotImplementedException();
    /// <summary>Sum over all possible CPUs of slot key: (frames, bytes).</summary>
    public (ulong Frames, ulong Bytes) Read(int key) => throw new NotImplementedException();
    public void Dispose() => throw new NotImplementedException();
}

/// <summary>A tcx link (BPF_LINK_CREATE, attach type BPF_TCX_INGRESS/EGRESS). Never pinned: it detaches when its fd closes.</summary>
public sealed class TcxLink : IDisposable
{
    public static TcxLink Attach(BpfProgram program, int ifindex, string device, TcxDirection direction) => throw new NotImplementedException();
    public void Dispose() => throw new NotImplementedException();
}

public static class Tcx
{
    /// <summary>BPF_PROG_QUERY on a tcx hook: the ids of attached programs (empty when none).</summary>
    public static IReadOnlyList<uint> QueryProgramIds(int ifindex, TcxDirection direction) => throw new NotImplementedException();

    /// <summary>The names of the programs attached to a tcx hook (BPF_PROG_GET_FD_BY_ID + BPF_OBJ_GET_INFO_BY_FD).</summary>
    public static IReadOnlyList<string> QueryProgramNames(int ifindex, TcxDirection direction) => throw new NotImplementedException();

    /// <summary>Whether the running kernel has tcx (Linux 6.6+). Probed, not guessed from the version.</summary>
    public static bool IsSupported() => throw new NotImplementedException();
}

/// <summary>The programs virtnet attaches, emitted with <see cref="BpfAssembler"/>.</summary>
public static class Programs
{
    /// <summary>
    /// Counts the frame in counters[key] (frames += 1, bytes += skb->len), then returns
    /// bpf_redirect(ifindex, flags) (TCX_REDIRECT). flags 1 = BPF_F_INGRESS.
    /// </summary>
    public static BpfInsn[] CountAndRedirect(CounterMap counters, int key, int ifindex, ulong flags) => throw new NotImplementedException();

    public static BpfInsn[] Redirect(int ifindex, ulong flags) => throw new NotImplementedException();
}
