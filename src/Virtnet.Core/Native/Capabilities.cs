// Capabilities: reading them, and keeping only some once a binding stands (least privilege after setup).
//
// Linux keeps capabilities per thread, not per process: the effective, permitted, inheritable, bounding and
// ambient sets live in each thread's credentials, and capset(2), prctl(PR_CAPBSET_DROP) and
// prctl(PR_CAP_AMBIENT) change the calling thread's only. A new thread starts with a copy of its creator's. A .NET
// process has a dozen threads before Main runs (the finalizer, the thread pool, the timer, the signal handling
// thread, the runtime's native helpers), and none of them runs code of ours on request.
//
// glibc solves the same problem for setuid(2) and friends (POSIX wants those process-wide) by signalling every
// thread with its private SIGSETXID and having each make the call itself; it offers nothing of the kind for
// capset. libcap's libpsx does it for capset, but only for threads created through its pthread_create wrapper
// (linked with -Wl,-wrap,pthread_create), which the runtime's threads are not. So KeepOnly does what glibc
// does, itself: it installs, for a free real-time signal, a handler of a few dozen bytes of machine code (in an
// anonymous page mapped for it) that makes the same system calls as KeepOnlyInThisThread (ambient cleared, the
// bounding set cut, then capget and capset of the intersection) on whichever thread it runs, sends that signal
// with tgkill(2) to every thread of the process, and reads /proc/self/task/*/status until every thread holds no
// more than was kept. The handler calls nothing but system calls (async-signal-safe, errno untouched), so it may
// interrupt any thread anywhere; a blocking call it interrupts returns EINTR or restarts (SA_RESTART), which
// every loop here already handles, as the runtime does for its own signals. The code is x86_64's; other
// architectures get a VirtnetException (Unsupported) from KeepOnly, and may still use KeepOnlyInThisThread.
using System.Globalization;
using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>The five capability sets of one thread, a bit per capability (bit n: capability n).</summary>
internal readonly record struct CapabilitySets(ulong Effective, ulong Permitted, ulong Inheritable, ulong Bounding, ulong Ambient)
{
    /// <summary>Every capability in any of the sets.</summary>
    public ulong Any => Effective | Permitted | Inheritable | Bounding | Ambient;

    /// <summary>Whether no set holds a capability outside <paramref name="keep"/>.</summary>
    public bool Within(ulong keep) => (Any & ~keep) == 0;

    public override string ToString()
        => $"effective {Capabilities.Describe(Effective)}; permitted {Capabilities.Describe(Permitted)}; inheritable {Capabilities.Describe(Inheritable)}; bounding {Capabilities.Describe(Bounding)}; ambient {Capabilities.Describe(Ambient)}";
}

/// <summary>One thread of this process and its sets, as /proc/self/task/TID/status shows them.</summary>
internal sealed record ThreadCapabilities(int Tid, string Name, CapabilitySets Sets);

internal static unsafe class Capabilities
{
    public const int CAP_DAC_OVERRIDE = 1;
    public const int CAP_KILL = 5;
    public const int CAP_SETPCAP = 8;
    public const int CAP_NET_ADMIN = 12;
    public const int CAP_NET_RAW = 13;
    public const int CAP_IPC_LOCK = 14;
    public const int CAP_SYS_ADMIN = 21;
    public const int CAP_SYS_RESOURCE = 24;
    public const int CAP_PERFMON = 38;
    public const int CAP_BPF = 39;

    /// <summary>linux/capability.h's names, by number (CAP_LAST_CAP is 40 since Linux 5.9).</summary>
    private static readonly string[] s_names =
    [
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
        "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
        "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
        "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
        "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
        "checkpoint_restore",
    ];

    private static readonly object s_gate = new();
    private static Broadcast? s_broadcast;

    /// <summary>The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).</summary>
    public static int LastCap { get; } = ReadLastCap();

    /// <summary>The mask of the given capabilities.</summary>
    public static ulong Mask(params ReadOnlySpan<int> capabilities)
    {
        ulong mask = 0;
        foreach (int cap in capabilities)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(cap);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(cap, 63);
            mask |= 1UL << cap;
        }

        return mask;
    }

    /// <summary>Every capability this kernel knows.</summary>
    public static ulong All => LastCap >= 63 ? ulong.MaxValue : (1UL << (LastCap + 1)) - 1;

    /// <summary>A capability's name as capsh(1) writes it ("cap_net_admin"); "cap_41" past the known ones.</summary>
    public static string Name(int capability)
        => capability >= 0 && capability < s_names.Length ? $"cap_{s_names[capability]}" : $"cap_{capability.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>"cap_net_admin,cap_bpf": the names in <paramref name="mask"/>, lowest first; "none" for 0.</summary>
    public static string Describe(ulong mask)
    {
        if (mask == 0)
        {
            return "none";
        }

        var names = new List<string>();
        for (int cap = 0; cap < 64; cap++)
        {
            if ((mask & (1UL << cap)) != 0)
            {
                names.Add(Name(cap));
            }
        }

        return string.Join(',', names);
    }

    /// <summary>The mask of a list like "cap_net_admin,CAP_BPF,net_raw" (commas or spaces; "none" or "" for 0).</summary>
    public static ulong Parse(string names)
    {
        ArgumentNullException.ThrowIfNull(names);
        ulong mask = 0;
        foreach (var item in names.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (item.Equals("none", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            string bare = item.StartsWith("cap_", StringComparison.OrdinalIgnoreCase) ? item[4..] : item;
            int cap = Array.FindIndex(s_names, n => n.Equals(bare, StringComparison.OrdinalIgnoreCase));
            if (cap < 0 && !(int.TryParse(bare, NumberStyles.None, CultureInfo.InvariantCulture, out cap) && cap < 64))
            {
                throw new ArgumentException($"'{item}' is not a capability name (like cap_net_admin)", nameof(names));
            }

            mask |= 1UL << cap;
        }

        return mask;
    }

    /// <summary>Whether the calling thread has <paramref name="capability"/> in its effective set.</summary>
    public static bool HasEffective(int capability)
    {
        var header = new CapUserHeader { Version = Libc._LINUX_CAPABILITY_VERSION_3 };
        CapUserData* data = stackalloc CapUserData[2];
        if (Libc.capget(&header, data) != 0)
        {
            return false;
        }

        return (data[capability / 32].Effective & (1u << (capability % 32))) != 0;
    }

    /// <summary>The calling thread's sets: capget(2), and prctl(2) for the bounding and ambient ones.</summary>
    public static CapabilitySets Read()
    {
        var header = new CapUserHeader { Version = Libc._LINUX_CAPABILITY_VERSION_3 };
        CapUserData* data = stackalloc CapUserData[2];
        if (Libc.capget(&header, data) != 0)
        {
            VirtnetException.ThrowLastError("capget");
        }

        ulong bounding = 0, ambient = 0;
        for (int cap = 0; cap <= LastCap; cap++)
        {
            if (Libc.prctl(Libc.PR_CAPBSET_READ, (nuint)cap, 0, 0, 0) == 1)
            {
                bounding |= 1UL << cap;
            }

            // EINVAL before Linux 4.3 (no ambient set): nothing in it.
            if (Libc.prctl(Libc.PR_CAP_AMBIENT, Libc.PR_CAP_AMBIENT_IS_SET, (nuint)cap, 0, 0) == 1)
            {
                ambient |= 1UL << cap;
            }
        }

        return new CapabilitySets(
            Join(data[0].Effective, data[1].Effective),
            Join(data[0].Permitted, data[1].Permitted),
            Join(data[0].Inheritable, data[1].Inheritable),
            bounding,
            ambient);
    }

    /// <summary>Thread <paramref name="tid"/> of this process, from /proc/self/task/TID/status; null once it has ended.</summary>
    public static ThreadCapabilities? ReadThread(int tid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/self/task/{tid.ToString(CultureInfo.InvariantCulture)}/status");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return null;
        }

        return ParseStatus(tid, text);
    }

    /// <summary>Every thread of this process now, by thread id.</summary>
    public static IReadOnlyList<ThreadCapabilities> ReadThreads()
    {
        var threads = new List<ThreadCapabilities>();
        foreach (var dir in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int tid) && ReadThread(tid) is { } thread)
            {
                threads.Add(thread);
            }
        }

        threads.Sort((a, b) => a.Tid.CompareTo(b.Tid));
        return threads;
    }

    /// <summary>A status file's Name and Cap* lines (the sets in hex, as the kernel prints them).</summary>
    internal static ThreadCapabilities ParseStatus(int tid, string status)
    {
        string name = "";
        ulong inh = 0, prm = 0, eff = 0, bnd = 0, amb = 0;
        foreach (var line in status.Split('\n'))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                continue;
            }

            string key = line[..colon];
            string value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "Name":
                    name = value;
                    break;
                case "CapInh":
                    inh = Hex(value);
                    break;
                case "CapPrm":
                    prm = Hex(value);
                    break;
                case "CapEff":
                    eff = Hex(value);
                    break;
                case "CapBnd":
                    bnd = Hex(value);
                    break;
                case "CapAmb":
                    amb = Hex(value);
                    break;
            }
        }

        return new ThreadCapabilities(tid, name, new CapabilitySets(eff, prm, inh, bnd, amb));

        static ulong Hex(string s) => ulong.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Keeps, in the calling thread only, no capability outside <paramref name="keep"/>: clears the ambient set,
    /// drops the rest from the bounding set (which needs CAP_SETPCAP, so it goes first), then from the permitted,
    /// effective and inheritable sets. A capability in <paramref name="keep"/> the thread does not have stays
    /// absent. Threads started by this one afterwards inherit the result; no other thread changes.
    /// </summary>
    public static void KeepOnlyInThisThread(ulong keep)
    {
        // EINVAL: a kernel without ambient capabilities (before 4.3), where there is nothing to clear.
        if (Libc.prctl(Libc.PR_CAP_AMBIENT, Libc.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && LastError.Get() != Errno.EINVAL)
        {
            VirtnetException.ThrowLastError("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
        }

        for (int cap = 0; cap <= LastCap; cap++)
        {
            if ((keep & (1UL << cap)) == 0 && Libc.prctl(Libc.PR_CAPBSET_READ, (nuint)cap, 0, 0, 0) == 1
                && Libc.prctl(Libc.PR_CAPBSET_DROP, (nuint)cap, 0, 0, 0) != 0)
            {
                var errno = LastError.Get();
                throw new VirtnetException($"prctl(PR_CAPBSET_DROP, {Name(cap)})", null, errno, hint: errno == Errno.EPERM ? "dropping from the bounding set needs CAP_SETPCAP" : null);
            }
        }

        var header = new CapUserHeader { Version = Libc._LINUX_CAPABILITY_VERSION_3 };
        CapUserData* data = stackalloc CapUserData[2];
        if (Libc.capget(&header, data) != 0)
        {
            VirtnetException.ThrowLastError("capget");
        }

        for (int word = 0; word < 2; word++)
        {
            uint bits = (uint)(keep >> (32 * word));
            data[word].Effective &= bits;
            data[word].Permitted &= bits;
            data[word].Inheritable &= bits;
        }

        if (Libc.capset(&header, data) != 0)
        {
            VirtnetException.ThrowLastError("capset");
        }
    }

    /// <summary>
    /// Keeps no capability outside <paramref name="keep"/> in any thread of the process (see the top of this file
    /// for how): first the calling thread, then every other, each by itself. Returns once /proc/self/task shows every
    /// thread within <paramref name="keep"/>; throws, naming them, when some are not within
    /// <paramref name="timeout"/> (default 2 s), e.g. a thread that blocks every signal.
    /// </summary>
    public static void KeepOnly(ulong keep, TimeSpan? timeout = null)
    {
        lock (s_gate)
        {
            var broadcast = s_broadcast ??= Broadcast.Create();
            KeepOnlyInThisThread(keep);
            broadcast.Arm(keep, LastCap);
            try
            {
                int pid = Libc.getpid();
                long deadline = Environment.TickCount64 + (long)(timeout ?? TimeSpan.FromSeconds(2)).TotalMilliseconds;
                var sent = new Dictionary<int, long>();
                while (true)
                {
                    var over = ReadThreads().Where(t => !t.Sets.Within(keep)).ToList();
                    if (over.Count == 0)
                    {
                        return;
                    }

                    long now = Environment.TickCount64;
                    if (now > deadline)
                    {
                        string list = string.Join("; ", over.Select(t => $"{t.Tid} ({t.Name}): {Describe(t.Sets.Any & ~keep)}"));
                        throw new VirtnetException(FailureKind.NotPermitted, "capset", null, $"capabilities beyond {Describe(keep)} stayed in {over.Count} thread(s) after {broadcast.Done} handler run(s), {broadcast.Failed} failed: {list}", Errno.EPERM);
                    }

                    foreach (var thread in over)
                    {
                        // Again every 200 ms for a thread that has not run the handler yet (blocked, or just born).
                        if (!sent.TryGetValue(thread.Tid, out long last) || now - last >= 200)
                        {
                            sent[thread.Tid] = now;
                            if (Libc.tgkill(pid, thread.Tid, broadcast.Signal) != 0 && LastError.Get() != Errno.ESRCH)
                            {
                                VirtnetException.ThrowLastError($"tgkill {thread.Tid}");
                            }
                        }
                    }

                    Thread.Sleep(2);
                }
            }
            finally
            {
                broadcast.Disarm();
            }
        }
    }

    private static ulong Join(uint low, uint high) => low | ((ulong)high << 32);

    private static int ReadLastCap()
    {
        try
        {
            return int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return s_names.Length - 1;
        }
    }

    /// <summary>
    /// The signal handler that runs KeepOnlyInThisThread's system calls on the thread it interrupts, and the page of
    /// data it reads: made once per process and never unmapped (a late delivery may still be running it).
    /// </summary>
    private sealed class Broadcast
    {
        // Data page: 0 cap header (version, pid 0), 8 the mask kept, 16 CAP_LAST_CAP, 20 handler runs, 24 failed capget/capset.
        private const int DataKeep = 8;
        private const int DataLastCap = 16;
        private const int DataDone = 20;
        private const int DataFailed = 24;
        private const int CodeDataAddress = 9;

        /// <summary>
        /// x86_64, System V: saves rbx and r12, and uses 24 bytes of stack for the capget result. In order:
        /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL); for cap 0..63 not kept and at most CAP_LAST_CAP,
        /// prctl(PR_CAPBSET_DROP, cap); capget(header, stack); each set &amp;= kept; capset(header, stack); then
        /// lock inc the run counter (and the failed one when capget or capset failed). Assembled with GNU as from:
        /// <code>
        ///   push rbx; push r12; sub rsp,40; movabs rbx,DATA
        ///   mov eax,157; mov edi,47; mov esi,4; xor edx,edx; xor r10d,r10d; xor r8d,r8d; syscall
        ///   xor r12d,r12d
        /// 1: mov rax,[rbx+8]; bt rax,r12; jc 2f; cmp r12d,[rbx+16]; ja 2f
        ///   mov eax,157; mov edi,24; mov rsi,r12; xor edx,edx; xor r10d,r10d; xor r8d,r8d; syscall
        /// 2: inc r12d; cmp r12d,64; jb 1b
        ///   mov eax,125; mov rdi,rbx; mov rsi,rsp; syscall; test eax,eax; jnz 4f
        ///   mov eax,[rbx+8]; and [rsp],eax; and [rsp+4],eax; and [rsp+8],eax
        ///   mov eax,[rbx+12]; and [rsp+12],eax; and [rsp+16],eax; and [rsp+20],eax
        ///   mov eax,126; mov rdi,rbx; mov rsi,rsp; syscall; test eax,eax; jz 3f
        /// 4: lock inc dword [rbx+24]
        /// 3: lock inc dword [rbx+20]; add rsp,40; pop r12; pop rbx; ret
        /// </code>
        /// </summary>
        private static ReadOnlySpan<byte> X64Handler =>
        [
            0x53, 0x41, 0x54, 0x48, 0x83, 0xec, 0x28, 0x48, 0xbb, 0x88, 0x77, 0x66,
            0x55, 0x44, 0x33, 0x22, 0x11, 0xb8, 0x9d, 0x00, 0x00, 0x00, 0xbf, 0x2f,
            0x00, 0x00, 0x00, 0xbe, 0x04, 0x00, 0x00, 0x00, 0x31, 0xd2, 0x45, 0x31,
            0xd2, 0x45, 0x31, 0xc0, 0x0f, 0x05, 0x45, 0x31, 0xe4, 0x48, 0x8b, 0x43,
            0x08, 0x4c, 0x0f, 0xa3, 0xe0, 0x72, 0x1d, 0x44, 0x3b, 0x63, 0x10, 0x77,
            0x17, 0xb8, 0x9d, 0x00, 0x00, 0x00, 0xbf, 0x18, 0x00, 0x00, 0x00, 0x4c,
            0x89, 0xe6, 0x31, 0xd2, 0x45, 0x31, 0xd2, 0x45, 0x31, 0xc0, 0x0f, 0x05,
            0x41, 0xff, 0xc4, 0x41, 0x83, 0xfc, 0x40, 0x72, 0xd0, 0xb8, 0x7d, 0x00,
            0x00, 0x00, 0x48, 0x89, 0xdf, 0x48, 0x89, 0xe6, 0x0f, 0x05, 0x85, 0xc0,
            0x75, 0x2e, 0x8b, 0x43, 0x08, 0x21, 0x04, 0x24, 0x21, 0x44, 0x24, 0x04,
            0x21, 0x44, 0x24, 0x08, 0x8b, 0x43, 0x0c, 0x21, 0x44, 0x24, 0x0c, 0x21,
            0x44, 0x24, 0x10, 0x21, 0x44, 0x24, 0x14, 0xb8, 0x7e, 0x00, 0x00, 0x00,
            0x48, 0x89, 0xdf, 0x48, 0x89, 0xe6, 0x0f, 0x05, 0x85, 0xc0, 0x74, 0x04,
            0xf0, 0xff, 0x43, 0x18, 0xf0, 0xff, 0x43, 0x14, 0x48, 0x83, 0xc4, 0x28,
            0x41, 0x5c, 0x5b, 0xc3,
        ];

        private readonly byte* _code;
        private readonly byte* _data;

        private Broadcast(byte* code, byte* data, int signal)
        {
            _code = code;
            _data = data;
            Signal = signal;
        }

        public int Signal { get; }

        public int Done => Volatile.Read(ref *(int*)(_data + DataDone));

        public int Failed => Volatile.Read(ref *(int*)(_data + DataFailed));

        public static Broadcast Create()
        {
            if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
            {
                throw new VirtnetException(FailureKind.Unsupported, "capset", null, $"dropping capabilities in every thread is built for x86_64 only, not {RuntimeInformation.ProcessArchitecture}", Errno.EOPNOTSUPP);
            }

            int signal = FreeSignal();
            const nuint Page = 4096;
            var map = (byte*)Libc.mmap(null, 2 * Page, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
            if (map == (byte*)-1)
            {
                VirtnetException.ThrowLastError("mmap");
            }

            var code = new Span<byte>(map, (int)Page);
            X64Handler.CopyTo(code);
            *(ulong*)(map + CodeDataAddress) = (ulong)(map + Page);
            if (Libc.mprotect(map, Page, Libc.PROT_READ | Libc.PROT_EXEC) != 0)
            {
                VirtnetException.ThrowLastError("mprotect");
            }

            return new Broadcast(map, map + Page, signal);
        }

        /// <summary>Writes what to keep, zeroes the counters and installs the handler.</summary>
        public void Arm(ulong keep, int lastCap)
        {
            *(CapUserHeader*)_data = new CapUserHeader { Version = Libc._LINUX_CAPABILITY_VERSION_3, Pid = 0 };
            *(ulong*)(_data + DataKeep) = keep;
            *(int*)(_data + DataLastCap) = lastCap;
            *(int*)(_data + DataDone) = 0;
            *(int*)(_data + DataFailed) = 0;
            Thread.MemoryBarrier();
            var action = new SigAction { Handler = (nint)_code, Flags = Libc.SA_RESTART };
            if (Libc.sigaction(Signal, &action, null) != 0)
            {
                VirtnetException.ThrowLastError($"sigaction {Signal}");
            }
        }

        /// <summary>
        /// Ignores the signal from now on, which also discards deliveries still pending (a thread that blocks it):
        /// its default action would end the process.
        /// </summary>
        public void Disarm()
        {
            var action = new SigAction { Handler = Libc.SIG_IGN };
            _ = Libc.sigaction(Signal, &action, null);
        }

        /// <summary>The highest real-time signal nobody handles (SIGRTMIN itself is the runtime's, for its thread suspension).</summary>
        private static int FreeSignal()
        {
            for (int signal = Libc.SigRtMax(); signal > Libc.SigRtMin(); signal--)
            {
                SigAction old;
                if (Libc.sigaction(signal, null, &old) == 0 && old.Handler == Libc.SIG_DFL)
                {
                    return signal;
                }
            }

            throw new VirtnetException(FailureKind.Unsupported, "sigaction", null, "no free real-time signal to reach every thread with", Errno.EBUSY);
        }
    }
}
