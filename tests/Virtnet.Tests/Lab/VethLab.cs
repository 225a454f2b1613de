using System.Net;
using Virtnet.Lab;
using Virtnet.Tests.Infrastructure;
using Virtnet.Namespaces;

namespace Virtnet.Tests.Lab;

/// <summary>
/// Two test namespaces joined by a veth pair made with ip(8) (va in the first, vb in the second), addressed
/// 10.200.9.1/24 + fd00:200::9:1/64 and 10.200.9.2/24 + fd00:200::9:2/64. Tests the lab helpers without
/// depending on our own netlink code. Everything is deleted on Dispose.
/// </summary>
internal sealed class VethLab : IDisposable
{
    public static readonly IPAddress A4 = IPAddress.Parse("10.200.9.1");
    public static readonly IPAddress B4 = IPAddress.Parse("10.200.9.2");
    public static readonly IPAddress A6 = IPAddress.Parse("fd00:200::9:1");
    public static readonly IPAddress B6 = IPAddress.Parse("fd00:200::9:2");

    private readonly List<IDisposable> _owned = [];

    public VethLab(string tag)
    {
        try
        {
            NsA = Own(new TestNetns(tag + "a"));
            NsB = Own(new TestNetns(tag + "b"));
            TestNetns.AddVeth(NsA, "va", NsB, "vb");
            Configure(NsA, "va", A4, A6);
            Configure(NsB, "vb", B4, B6);
            A = Own(NetNamespace.Open(NsA.Path));
            B = Own(NetNamespace.Open(NsB.Path));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public TestNetns NsA { get; } = null!;

    public TestNetns NsB { get; } = null!;

    public NetNamespace A { get; } = null!;

    public NetNamespace B { get; } = null!;

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _owned.Clear();
    }

    private T Own<T>(T item)
        where T : IDisposable
    {
        _owned.Add(item);
        return item;
    }

    private static void Configure(TestNetns ns, string dev, IPAddress v4, IPAddress v6)
    {
        ns.Exec("ip", "addr", "add", $"{v4}/24", "dev", dev);
        ns.Exec("ip", "-6", "addr", "add", $"{v6}/64", "dev", dev, "nodad");
        ns.Exec("ip", "link", "set", dev, "up");
    }
}
