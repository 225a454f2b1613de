// The topology every integration test uses: two namespaces joined by a veth pair, virtnet attached to the "real"
// end va inside A, addresses on virtnet0 (in A) and on vb (in B):
//
//   [A: virtnet0 10.200.X.1, fd00:200:X::1] ~ virtnet ~ [A: va] ==veth== [B: vb 10.200.X.2, fd00:200:X::2]
//
// Every device is born inside its namespace; nothing touches the root namespace. Dispose stops virtnet and deletes
// both namespaces, even when the test failed.
using Virtnet.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

internal sealed class Lab : IDisposable
{
    public const string Real = "va";
    public const string Peer = "vb";
    public const string Virtual = "virtnet0";

    private readonly List<VirtnetProcess> _processes = [];
    private readonly ITestOutputHelper? _log;

    private Lab(TestNetns a, TestNetns b, int x, ITestOutputHelper? log)
    {
        A = a;
        B = b;
        X = x;
        _log = log;
    }

    /// <summary>Namespace holding the real device va and virtnet's devices.</summary>
    public TestNetns A { get; }

    /// <summary>Namespace holding the peer vb: "the wire".</summary>
    public TestNetns B { get; }

    public int X { get; }

    public string A4 => $"10.200.{X}.1";
    public string B4 => $"10.200.{X}.2";
    public string Broadcast4 => $"10.200.{X}.255";
    public string A6 => $"fd00:200:{X}::1";
    public string B6 => $"fd00:200:{X}::2";

    /// <summary>The attach started by <see cref="Attach"/> (the first one).</summary>
    public VirtnetProcess? Virtnet => _processes.Count > 0 ? _processes[0] : null;

    /// <summary>Namespaces, veth va/vb (both up) and vb's addresses. <paramref name="tag"/> names the namespaces.</summary>
    public static Lab Create(string tag, int x, ITestOutputHelper? log = null, int? mtu = null)
    {
        var a = new TestNetns(tag + "a");
        TestNetns? b = null;
        try
        {
            b = new TestNetns(tag + "b");
            var lab = new Lab(a, b, x, log);
            TestNetns.AddVeth(a, Real, b, Peer);
            if (mtu is { } m)
            {
                Net.Ip(a, "link", "set", Real, "mtu", m.ToString());
                Net.Ip(b, "link", "set", Peer, "mtu", m.ToString());
            }

            Net.Ip(a, "link", "set", Real, "up");
            Net.Ip(b, "link", "set", Peer, "up");
            Net.Ip(b, "addr", "add", $"{lab.B4}/24", "dev", Peer);
            Net.Ip(b, "addr", "add", $"{lab.B6}/64", "dev", Peer, "nodad");
            return lab;
        }
        catch
        {
            b?.Dispose();
            a.Dispose();
            throw;
        }
    }

    /// <summary>Starts `virtnet attach va --datapath D EXTRA...` in A and waits for its ready line.</summary>
    public VirtnetProcess Attach(string datapath, params string[] extra) => AttachTo(Real, datapath, extra);

    public VirtnetProcess AttachTo(string real, string datapath, params string[] extra)
    {
        var p = StartAttach(real, datapath, extra);
        var line = p.WaitForReady();
        _log?.WriteLine($"[{A.Name}] {line}");
        return p;
    }

    /// <summary>Starts an attach without waiting for ready; the lab kills it on Dispose.</summary>
    public VirtnetProcess StartAttach(string real, string datapath, params string[] extra)
    {
        var p = VirtnetProcess.Start(A, ["attach", real, "--datapath", datapath, .. extra]);
        _processes.Add(p);
        return p;
    }

    /// <summary>Gives virtnet0 its addresses (after ready: the device exists only then).</summary>
    public void AddressVirtual(string device = Virtual)
    {
        Net.Ip(A, "addr", "add", $"{A4}/24", "dev", device);
        Net.Ip(A, "addr", "add", $"{A6}/64", "dev", device, "nodad");
    }

    /// <summary>Attach + addresses: the usual start of a traffic test.</summary>
    public VirtnetProcess Up(string datapath, params string[] extra)
    {
        var p = Attach(datapath, extra);
        AddressVirtual();
        return p;
    }

    public void Log(string line) => _log?.WriteLine(line);

    public void Dispose()
    {
        // The namespaces go whatever happens to the processes: a throw here once left two labs' behind.
        try
        {
            foreach (var p in _processes)
            {
                if (!p.HasExited)
                {
                    _log?.WriteLine($"[{A.Name}] test over, SIGKILL to the attach; its output: {p.Describe()}");
                }

                p.Dispose();
            }
        }
        finally
        {
            try
            {
                B.Dispose();
            }
            finally
            {
                A.Dispose();
            }
        }
    }
}
