namespace Virtnet.Tests.Infrastructure;

/// <summary>
/// A named network namespace made for one test ("vn-TAG-RANDOM"), deleted on Dispose even when the test
/// failed. Devices are born inside with `ip link add NAME netns NS ...`; nothing is made in the root namespace.
/// </summary>
public sealed class TestNetns : IDisposable
{
    public TestNetns(string tag)
    {
        Name = $"vn-{tag}-{Guid.NewGuid().ToString("N")[..8]}";
        Run.Checked("ip", "netns", "add", Name);
        Exec("ip", "link", "set", "lo", "up");
    }

    public string Name { get; }

    public string Path => $"/run/netns/{Name}";

    /// <summary>ip link add A netns NS1 type veth peer name B netns NS2: both ends born in their namespaces.</summary>
    public static void AddVeth(TestNetns ns1, string name1, TestNetns ns2, string name2)
        => Run.Checked("ip", "link", "add", name1, "netns", ns1.Name, "type", "veth", "peer", "name", name2, "netns", ns2.Name);

    /// <summary>
    /// Two namespaces joined by a veth pair, both ends up: "va" in the first, "vb" in the second, with
    /// <paramref name="addressB"/> (CIDR) on vb when given. The usual start of an in-process binding test.
    /// </summary>
    public static NetnsPair Pair(string tag, string? addressB = null)
    {
        var a = new TestNetns($"{tag}a");
        TestNetns? b = null;
        try
        {
            b = new TestNetns($"{tag}b");
            AddVeth(a, "va", b, "vb");
            a.Exec("ip", "link", "set", "va", "up");
            b.Exec("ip", "link", "set", "vb", "up");
            if (addressB is not null)
            {
                b.Exec("ip", "addr", "add", addressB, "dev", "vb");
            }

            return new NetnsPair(a, b);
        }
        catch
        {
            b?.Dispose();
            a.Dispose();
            throw;
        }
    }

    public RunResult Try(params string[] args) => Run.Command("ip", ["netns", "exec", Name, .. args]);

    public RunResult Try(TimeSpan timeout, params string[] args) => Run.Command(timeout, "ip", ["netns", "exec", Name, .. args]);

    public string Exec(params string[] args) => Run.Checked("ip", ["netns", "exec", Name, .. args]);

    public void Dispose()
    {
        // Kill anything left running inside (only processes in our own namespace), then delete it.
        var pids = Run.Command("ip", "netns", "pids", Name).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (var pid in pids)
        {
            if (int.TryParse(pid.Trim(), out var n))
            {
                try { System.Diagnostics.Process.GetProcessById(n).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
            }
        }

        Run.Command("ip", "netns", "del", Name);
    }
}

/// <summary>Two test namespaces joined by a veth pair (va in A, vb in B); disposing it deletes both.</summary>
public sealed class NetnsPair(TestNetns a, TestNetns b) : IDisposable
{
    public TestNetns A => a;

    public TestNetns B => b;

    public void Deconstruct(out TestNetns first, out TestNetns second) => (first, second) = (a, b);

    public void Dispose()
    {
        try
        {
            b.Dispose();
        }
        finally
        {
            a.Dispose();
        }
    }
}
