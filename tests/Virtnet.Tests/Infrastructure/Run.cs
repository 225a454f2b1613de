using System.Diagnostics;

namespace Virtnet.Tests.Infrastructure;

public sealed record RunResult(int ExitCode, string Stdout, string Stderr)
{
    public string All => Stdout + Stderr;
}

/// <summary>Runs a command line (tests may use ip, ping, ...; the product never does).</summary>
public static class Run
{
    public static RunResult Command(string file, params string[] args) => Command(TimeSpan.FromSeconds(60), file, args);

    public static RunResult Command(TimeSpan timeout, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            return new RunResult(-1, stdout.Result, stderr.Result + $"\n[timed out after {timeout.TotalSeconds}s]");
        }

        p.WaitForExit();
        return new RunResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs and throws with the output when the exit code is not 0.</summary>
    public static string Checked(string file, params string[] args)
    {
        var r = Command(file, args);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {r.ExitCode}: {r.All}");
        }

        return r.Stdout;
    }
}
