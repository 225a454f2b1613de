// The .NET runtime opens a diagnostics endpoint in every process: an IPC socket (dotnet-trace, dotnet-counters,
// dotnet-dump) and the debugger's pipes, as files in /tmp that a SIGKILL leaves behind. A root process that owns a
// NIC should not offer one unless asked. The runtime reads the switch (DOTNET_EnableDiagnostics) only from its
// environment, before Main, and not from runtimeconfig.json (measured: the endpoint opens whatever configProperties
// say). So when the variable is unset, virtnet removes the endpoint's files and executes itself again with it at
// 0: the same process (pid, fds, namespace), started once more without the endpoint: `virtnet --help` takes 0.2 s instead of 0.1 s.
// DOTNET_EnableDiagnostics=1 (or any value) set by the user is left as it is: the opt-in for troubleshooting.
using System.Text;
using Virtnet.Native;

namespace Virtnet.Cli;

internal static unsafe class Diagnostics
{
    public const string Variable = "DOTNET_EnableDiagnostics";

    /// <summary>Returns only if the endpoint stays (asked for, or the re-execution failed).</summary>
    public static void TurnOffUnlessAskedFor()
    {
        // A Native AOT build has no diagnostics endpoint at all (measured: no dotnet-diagnostic socket even with
        // DOTNET_EnableDiagnostics=1), so it skips the second start, which would cost it 37 ms of its 11.
        if (Environment.GetEnvironmentVariable(Variable) is not null || !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported)
        {
            return;
        }

        string[] argv;
        try
        {
            argv = File.ReadAllText("/proc/self/cmdline").Split('\0', StringSplitOptions.None)[..^1];
        }
        catch (IOException)
        {
            return;
        }

        if (argv.Length == 0)
        {
            return;
        }

        var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Select(e => $"{e.Key}={e.Value}")
            .Append($"{Variable}=0")
            .ToArray();
        RemoveEndpointFiles(Environment.ProcessId);
        Exec("/proc/self/exe", argv, env);
        // Still here: exec failed; carry on with the endpoint rather than not at all.
    }

    private static void RemoveEndpointFiles(int pid)
    {
        string tmp = Path.GetTempPath();
        foreach (var pattern in new[] { $"dotnet-diagnostic-{pid}-*", $"clr-debug-pipe-{pid}-*" })
        {
            foreach (var file in Directory.EnumerateFiles(tmp, pattern))
            {
                try
                {
                    File.Delete(file);
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }
    }

    private static void Exec(string path, string[] argv, string[] env)
    {
        static byte[] Z(string s) => Encoding.UTF8.GetBytes(s + "\0");

        var handles = new List<System.Runtime.InteropServices.GCHandle>();
        try
        {
            byte* Pin(byte[] b)
            {
                var h = System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned);
                handles.Add(h);
                return (byte*)h.AddrOfPinnedObject();
            }

            byte** args = stackalloc byte*[argv.Length + 1];
            for (int i = 0; i < argv.Length; i++)
            {
                args[i] = Pin(Z(argv[i]));
            }

            args[argv.Length] = null;
            var envs = new byte*[env.Length + 1];
            for (int i = 0; i < env.Length; i++)
            {
                envs[i] = Pin(Z(env[i]));
            }

            envs[env.Length] = null;
            fixed (byte** e = envs)
            {
                _ = Libc.execve(Pin(Z(path)), args, e);
            }
        }
        finally
        {
            foreach (var h in handles)
            {
                h.Free();
            }
        }
    }
}
