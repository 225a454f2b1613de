// The layout tier: our constants, struct sizes and field offsets against what a C compiler says.
//
// Every check is a C expression and the value our C# code uses for it. The fixture turns all checks into
// two C programs, compiles each once with gcc and runs it:
//   - "system": the installed userspace headers (glibc, linux-libc-dev). On Debian 12 those are Linux 6.1,
//     which predates tcx and a few TAP/virtio constants; checks for macros newer than the headers carry IfDef
//     and are reported as absent rather than failing.
//   - "btf": vmlinux.h dumped from the running kernel's BTF (bpftool btf dump file /sys/kernel/btf/vmlinux
//     format c). It has every enum and struct of the running kernel (tcx attach types, union bpf_attr with
//     the tcx and revision fields) but no #defines.
using System.Text;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Layout;

[Flags]
public enum CHeaders
{
    /// <summary>The installed userspace headers.</summary>
    System = 1,

    /// <summary>vmlinux.h from the running kernel's BTF.</summary>
    Btf = 2,

    Both = System | Btf,
}

/// <summary>A C expression, the value our C# code has for it, and where to evaluate it.</summary>
/// <param name="IfDef">A macro that older headers may lack; when it is undefined the check is reported, not failed.</param>
public sealed record CCheck(string Expr, long CSharp, CHeaders Headers = CHeaders.System, string? IfDef = null);

public sealed class CLayoutFixture : IDisposable
{
    private const string SystemPrelude = """
        #define _GNU_SOURCE
        #include <stddef.h>
        #include <stdio.h>
        #include <errno.h>
        #include <fcntl.h>
        #include <poll.h>
        #include <sched.h>
        #include <sys/eventfd.h>
        #include <sys/ioctl.h>
        #include <sys/mman.h>
        #include <sys/socket.h>
        #include <sys/syscall.h>
        #include <sys/uio.h>
        #include <net/if.h>
        #include <linux/if_tun.h>
        #include <linux/virtio_net.h>
        #include <linux/bpf.h>
        #include <linux/if_packet.h>
        #include <linux/if_ether.h>
        #include <linux/capability.h>
        #include <linux/io_uring.h>
        """;

    // vmlinux.h does not mix with libc headers (both define kernel-ish types), so declare what we use.
    private const string BtfPrelude = """
        #include "vmlinux.h"
        int printf(const char *, ...);
        #ifndef offsetof
        #define offsetof(T, m) __builtin_offsetof(T, m)
        #endif
        """;

    private const string Common = """

        #define END(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))
        #define MEMBER_SIZE(T, m) sizeof(((T *)0)->m)
        int main(void)
        {

        """;

    private readonly string _dir;

    public CLayoutFixture()
    {
        _dir = Directory.CreateTempSubdirectory("virtnet-layout-").FullName;
        Checks = LayoutChecks.All();

        string? gcc = Tools.Find("gcc");
        if (gcc is null)
        {
            SystemSkip = BtfSkip = "gcc is not installed (apt-get install gcc linux-libc-dev)";
            return;
        }

        (SystemValues, SystemError) = CompileAndRun(gcc, "system", SystemPrelude, CHeaders.System);

        string? bpftool = Tools.Find("bpftool");
        if (bpftool is null)
        {
            BtfSkip = "bpftool is not installed (apt-get install bpftool): needed to dump the running kernel's BTF as vmlinux.h";
        }
        else if (!File.Exists("/sys/kernel/btf/vmlinux"))
        {
            BtfSkip = "this kernel has no BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)";
        }
        else
        {
            string header = Path.Combine(_dir, "vmlinux.h");
            var dump = Run.Command(bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c");
            if (dump.ExitCode != 0)
            {
                BtfError = $"bpftool btf dump failed: {dump.Stderr}";
            }
            else
            {
                File.WriteAllText(header, dump.Stdout);
                (BtfValues, BtfError) = CompileAndRun(gcc, "btf", BtfPrelude, CHeaders.Btf);
            }
        }
    }

    public IReadOnlyList<CCheck> Checks { get; }

    /// <summary>Why the system-header program could not be built for lack of tools (then tests skip).</summary>
    public string? SystemSkip { get; }

    public string? BtfSkip { get; private set; }

    /// <summary>A compile or run failure: a real error, tests fail with it.</summary>
    public string? SystemError { get; }

    public string? BtfError { get; }

    /// <summary>Values by check index; null means the IfDef macro was undefined.</summary>
    public IReadOnlyDictionary<int, long?> SystemValues { get; } = new Dictionary<int, long?>();

    public IReadOnlyDictionary<int, long?> BtfValues { get; } = new Dictionary<int, long?>();

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private (Dictionary<int, long?> Values, string? Error) CompileAndRun(string gcc, string name, string prelude, CHeaders headers)
    {
        var source = new StringBuilder(prelude).Append(Common);
        for (int i = 0; i < Checks.Count; i++)
        {
            var check = Checks[i];
            if (!check.Headers.HasFlag(headers))
            {
                continue;
            }

            string print = $"    printf(\"{i}=%lld\\n\", (long long)({check.Expr}));\n";
            if (check.IfDef is not null && headers == CHeaders.System)
            {
                source.Append($"#ifdef {check.IfDef}\n{print}#else\n    printf(\"{i}=undefined\\n\");\n#endif\n");
            }
            else
            {
                source.Append(print);
            }
        }

        source.Append("    return 0;\n}\n");
        string c = Path.Combine(_dir, name + ".c");
        string exe = Path.Combine(_dir, name);
        File.WriteAllText(c, source.ToString());

        // -w: vmlinux.h carries clang-only pragmas that gcc warns about; errors still fail the build.
        var build = Run.Command(gcc, "-w", "-o", exe, c);
        if (build.ExitCode != 0)
        {
            return ([], $"gcc failed on {c}:\n{build.All}");
        }

        var run = Run.Command(exe);
        if (run.ExitCode != 0)
        {
            return ([], $"{exe} exited {run.ExitCode}: {run.All}");
        }

        var values = new Dictionary<int, long?>();
        foreach (var line in run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = line.IndexOf('=');
            int index = int.Parse(line.AsSpan(0, eq), System.Globalization.CultureInfo.InvariantCulture);
            var text = line.AsSpan(eq + 1);
            values[index] = text.SequenceEqual("undefined") ? null : long.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
        }

        return (values, null);
    }

    /// <summary>
    /// Asserts every check of the given area against one header set. Tools missing: skipped with the reason
    /// (a failure under CI=true, where the tools must be installed). Mismatches are listed all at once.
    /// </summary>
    public void Verify(IEnumerable<CCheck> area, CHeaders headers)
    {
        string? skip = headers == CHeaders.System ? SystemSkip : BtfSkip;
        if (skip is not null)
        {
            if (Environment.GetEnvironmentVariable("CI") == "true")
            {
                Assert.Fail($"layout test cannot run under CI: {skip}");
            }

            Skip.If(true, skip);
        }

        string? error = headers == CHeaders.System ? SystemError : BtfError;
        Assert.True(error is null, error);
        var values = headers == CHeaders.System ? SystemValues : BtfValues;

        var mismatches = new List<string>();
        int compared = 0;
        foreach (var check in area)
        {
            if (!check.Headers.HasFlag(headers))
            {
                continue;
            }

            int index = IndexOf(check);
            if (!values.TryGetValue(index, out long? value))
            {
                mismatches.Add($"{check.Expr}: no output from the C program");
            }
            else if (value is null)
            {
                // The installed headers predate this macro; nothing to compare against.
                continue;
            }
            else if (value != check.CSharp)
            {
                mismatches.Add($"{check.Expr}: C says {value} (0x{value:x}), C# has {check.CSharp} (0x{check.CSharp:x})");
            }
            else
            {
                compared++;
            }
        }

        Assert.True(mismatches.Count == 0, $"{headers} headers disagree with C#:\n" + string.Join('\n', mismatches));
        Assert.True(compared > 0, "no check of this area was compared");
    }

    private int IndexOf(CCheck check)
    {
        for (int i = 0; i < Checks.Count; i++)
        {
            if (ReferenceEquals(Checks[i], check) || Checks[i] == check)
            {
                return i;
            }
        }

        throw new InvalidOperationException($"check {check.Expr} is not in LayoutChecks.All()");
    }
}

internal static class Tools
{
    /// <summary>The full path of a program on PATH or in the sbin directories root's PATH has (bpftool is in /usr/sbin).</summary>
    public static string? Find(string name)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"]);
        foreach (var dir in dirs)
        {
            string path = Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }
}
