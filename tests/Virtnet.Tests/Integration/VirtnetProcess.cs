// One `virtnet attach` (or any virtnet command) running inside a test namespace, as the user would run it:
// `ip netns exec NS dotnet virtnet.dll ...`. ip netns exec execs the command (no fork), so the PID we hold is the
// virtnet process itself; signals go to that PID only.
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Virtnet.Tests.Infrastructure;

namespace Virtnet.Tests.Integration;

internal sealed class VirtnetProcess : IDisposable
{
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly object _lock = new();
    private readonly ManualResetEventSlim _readyOrExit = new();
    private string? _readyLine;

    private VirtnetProcess(Process process, string commandLine)
    {
        _process = process;
        CommandLine = commandLine;
    }

    /// <summary>virtnet.dll is copied next to the tests (the test project references the CLI).</summary>
    /// <summary>The CLI under test: this build's, or another one named by VIRTNET_UNDER_TEST (to show a test fails on an older build).</summary>
    public static string Dll => Environment.GetEnvironmentVariable("VIRTNET_UNDER_TEST") ?? Path.Combine(AppContext.BaseDirectory, "virtnet.dll");

    public string CommandLine { get; }

    public int Pid => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_lock)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_lock)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Whether it has ended; true once disposed (a test may dispose a process its lab also holds).</summary>
    public bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true; // disposed: "No process is associated with this object"
            }
        }
    }

    public int ExitCode => _process.ExitCode;

    /// <summary>The "... ready: ..." line, once seen.</summary>
    public string? ReadyLine => Volatile.Read(ref _readyLine);

    /// <summary>Starts `ip netns exec NS dotnet virtnet.dll ARGS...`; pass a prefix (capsh ...) through <paramref name="wrapper"/>.</summary>
    public static VirtnetProcess Start(TestNetns ns, params string[] args) => StartWrapped(ns, [], args);

    public static VirtnetProcess StartWrapped(TestNetns ns, string[] wrapper, string[] args) => StartArgv(ns, [.. wrapper, "dotnet", Dll, .. args]);

    /// <summary>Starts `ip netns exec NS FILE ARGS...`: another build of virtnet (the Native AOT one), say.</summary>
    public static VirtnetProcess StartCommand(TestNetns ns, string file, string[] args) => StartArgv(ns, [file, .. args]);

    /// <summary>Starts `ip netns exec NS COMMAND...`.</summary>
    public static VirtnetProcess StartArgv(TestNetns ns, string[] command)
    {
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        string[] all = ["netns", "exec", ns.Name, .. command];
        foreach (var a in all)
        {
            psi.ArgumentList.Add(a);
        }

        // Keep the child quiet and offline: no first-run experience, no telemetry.
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var vp = new VirtnetProcess(process, "ip " + string.Join(' ', all));
        process.OutputDataReceived += (_, e) => vp.OnLine(e.Data, stdout: true);
        process.ErrorDataReceived += (_, e) => vp.OnLine(e.Data, stdout: false);
        process.Exited += (_, _) => vp._readyOrExit.Set();
        // The event is never disposed: the Exited and output callbacks may still run after Dispose.
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return vp;
    }

    /// <summary>Runs to completion (for commands that must fail fast) and returns the exit code and output.</summary>
    public static RunResult RunToExit(TestNetns ns, TimeSpan timeout, params string[] args) => RunWrappedToExit(ns, [], args, timeout);

    public static RunResult RunWrappedToExit(TestNetns ns, string[] wrapper, string[] args, TimeSpan timeout)
    {
        using var p = StartWrapped(ns, wrapper, args);
        if (!p.WaitForExit(timeout))
        {
            p.Kill();
            p.WaitForExit(TimeSpan.FromSeconds(10));
            return new RunResult(-1, p.Stdout, p.Stderr + $"\n[still running after {timeout.TotalSeconds} s; killed]");
        }

        return new RunResult(p.ExitCode, p.Stdout, p.Stderr);
    }

    private void OnLine(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            (stdout ? _stdout : _stderr).AppendLine(line);
        }

        if (stdout && _readyLine is null && line.Contains("ready", StringComparison.Ordinal))
        {
            Volatile.Write(ref _readyLine, line);
            _readyOrExit.Set();
        }
    }

    /// <summary>Waits for the ready line; fails with everything the process said if it exits or times out first.</summary>
    public string WaitForReady() => WaitForReady(ReadyTimeout);

    public string WaitForReady(TimeSpan timeout)
    {
        _readyOrExit.Wait(timeout);
        if (ReadyLine is { } line)
        {
            return line;
        }

        if (_process.HasExited)
        {
            _process.WaitForExit();
            throw new VirtnetFailedException($"`{CommandLine}` exited {_process.ExitCode} before printing ready.\nstdout: {Stdout}\nstderr: {Stderr}");
        }

        throw new VirtnetFailedException($"`{CommandLine}` printed no ready line within {timeout.TotalSeconds} s.\nstdout: {Stdout}\nstderr: {Stderr}");
    }

    /// <summary>Sends a signal to our process (by its PID, nothing else).</summary>
    public void Signal(int signal)
    {
        if (TestLibc.kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}): errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>SIGKILL to our PID.</summary>
    public void Kill()
    {
        try
        {
            _process.Kill();
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
    }

    /// <summary>Waits for exit and for the end of its output.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        _process.WaitForExit();
        return true;
    }

    /// <summary>SigIgn/SigCgt of the process (/proc/PID/status): says whether a signal could be delivered at all.</summary>
    public string SignalMasks()
    {
        try
        {
            return string.Join(' ', File.ReadLines($"/proc/{Pid}/status").Where(l => l.StartsWith("SigIgn", StringComparison.Ordinal) || l.StartsWith("SigCgt", StringComparison.Ordinal)).Select(l => l.Replace("\t", " ", StringComparison.Ordinal)));
        }
        catch (IOException e)
        {
            return e.Message;
        }
    }

    public string Describe() => $"`{CommandLine}` (pid {Pid})\nstdout: {Stdout}\nstderr: {Stderr}";

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}

internal sealed class VirtnetFailedException(string message) : Exception(message);
