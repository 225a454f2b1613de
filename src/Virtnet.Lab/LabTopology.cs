// The demo's lab: two hosts in anonymous network namespaces joined by a veth pair, with virtnet attached to
// host A's end.
//
//   [host A: virtnet0 10.200.0.1] ~~ veth-a ====veth==== veth-b [host B: 10.200.0.2]
//
// Every device is born inside its namespace (RTM_NEWLINK with IFLA_NET_NS_FD for the peer, sent from a thread
// inside host A), and every netlink write is made from a thread inside the namespace it changes, so nothing ever
// touches the caller's namespace. The namespaces are held only by our fds (and by sockets and threads made
// inside them): once those are gone the kernel destroys both namespaces with every device in them, which is
// also what happens on SIGKILL.
using System.Net;
using Virtnet.Bpf;
using Virtnet.Datapaths;
using Virtnet.Datapaths.User;
using Virtnet.Namespaces;
using Virtnet.Netlink;

namespace Virtnet.Lab;

/// <summary>What <see cref="LabTopology.Teardown"/> found after removing virtnet and releasing the namespaces.</summary>
internal sealed record TeardownReport(bool VirtualDeviceGone, bool HooksEmpty, bool PumpGone, int HandlesLeft, IReadOnlyList<string> ThreadsLeft)
{
    /// <summary>Nothing of virtnet is left on veth-a, and nothing of this process keeps a lab namespace alive.</summary>
    public bool Clean => VirtualDeviceGone && HooksEmpty && PumpGone && HandlesLeft == 0 && ThreadsLeft.Count == 0;

    public override string ToString()
        => $"virtnet0 gone: {VirtualDeviceGone}, hooks empty: {HooksEmpty}, pump gone: {PumpGone}, "
            + $"fds left in a lab namespace: {HandlesLeft}, threads left there: [{string.Join(", ", ThreadsLeft)}]";
}

internal sealed class LabTopology : IDisposable
{
    public const string RealDevice = "veth-a";
    public const string PeerDevice = "veth-b";
    public const string VirtualDevice = "virtnet0";
    public const int Prefix4 = 24;
    public const int Prefix6 = 64;

    public static readonly IPAddress AddressA4 = IPAddress.Parse("10.200.0.1");
    public static readonly IPAddress AddressB4 = IPAddress.Parse("10.200.0.2");
    public static readonly IPAddress AddressA6 = IPAddress.Parse("fd00:200::1");
    public static readonly IPAddress AddressB6 = IPAddress.Parse("fd00:200::2");

    private RtNetlink? _netlinkA;
    private RtNetlink? _netlinkB;
    private bool _released;

    private LabTopology(NetNamespace hostA, NetNamespace hostB)
    {
        HostA = hostA;
        HostB = hostB;
    }

    public NetNamespace HostA { get; }

    public NetNamespace HostB { get; }

    /// <summary>veth-a: host A's "real NIC", which virtnet takes over.</summary>
    public LinkInfo Real { get; private set; } = null!;

    /// <summary>veth-b: host B's NIC, the other end of the cable.</summary>
    public LinkInfo Peer { get; private set; } = null!;

    public Attachment? Attachment { get; private set; }

    /// <summary>Builds both hosts and the cable; host B is addressed and up, veth-a is up with no address at all.</summary>
    public static LabTopology Build()
    {
        RuntimeThreads.Start();
        var hostA = NetNamespace.Create("host A");
        NetNamespace hostB;
        try
        {
            hostB = NetNamespace.Create("host B");
        }
        catch
        {
            hostA.Dispose();
            throw;
        }

        var lab = new LabTopology(hostA, hostB);
        try
        {
            lab._netlinkA = hostA.Run(() =>
            {
                var rtnl = RtNetlink.Open();
                try
                {
                    rtnl.AddVeth(RealDevice, null, PeerDevice, hostB.Handle.Fd);
                    rtnl.SetUp(rtnl.GetLink("lo").Index, true);
                    // veth-a plays a NIC handed over to virtnet: without IPv6 its own stack sends no router or
                    // neighbour solicitations of its own, and it has no link-local address that would shadow
                    // virtnet0's (both carry the same MAC, so they would derive the same fe80:: address).
                    DisableIpv6(RealDevice);
                    rtnl.SetUp(rtnl.GetLink(RealDevice).Index, true);
                    return rtnl;
                }
                catch
                {
                    rtnl.Dispose();
                    throw;
                }
            });

            lab._netlinkB = hostB.Run(() =>
            {
                var rtnl = RtNetlink.Open();
                try
                {
                    rtnl.SetUp(rtnl.GetLink("lo").Index, true);
                    var peer = rtnl.GetLink(PeerDevice);
                    rtnl.AddAddress(peer.Index, AddressB4, Prefix4);
                    rtnl.AddAddress(peer.Index, AddressB6, Prefix6);
                    rtnl.SetUp(peer.Index, true);
                    return rtnl;
                }
                catch
                {
                    rtnl.Dispose();
                    throw;
                }
            });

            lab.Real = lab._netlinkA.GetLink(RealDevice);
            lab.Peer = lab._netlinkB.GetLink(PeerDevice);
            return lab;
        }
        catch
        {
            lab.Dispose();
            throw;
        }
    }

    /// <summary>Attaches virtnet to veth-a inside host A and gives virtnet0 host A's addresses.</summary>
    public Attachment Attach(DatapathKind datapath)
    {
        if (Attachment is not null)
        {
            throw new InvalidOperationException("the lab is already attached");
        }

        Attachment = HostA.Run(() =>
        {
            var attachment = Attachment.Create(new AttachOptions { RealDevice = RealDevice, Name = VirtualDevice, Datapath = datapath });
            try
            {
                _netlinkA!.AddAddress(attachment.VirtualIndex, AddressA4, Prefix4);
                _netlinkA.AddAddress(attachment.VirtualIndex, AddressA6, Prefix6);
                return attachment;
            }
            catch
            {
                attachment.Dispose();
                throw;
            }
        });
        Real = _netlinkA!.GetLink(RealIndex);
        return Attachment;
    }

    public int RealIndex => Real.Index;

    /// <summary>ip neigh show dev virtnet0, in host A.</summary>
    public IReadOnlyList<NeighborInfo> NeighborsOfA()
        => Attachment is null ? [] : _netlinkA!.GetNeighbors(Attachment.VirtualIndex);

    /// <summary>ip neigh show dev veth-b, in host B.</summary>
    public IReadOnlyList<NeighborInfo> NeighborsOfB() => _netlinkB!.GetNeighbors(Peer.Index);

    /// <summary>
    /// Removes virtnet and checks, from inside host A, that virtnet0, the pump and every tcx program on veth-a are
    /// gone; then closes everything this process holds on the lab and checks that no fd or thread of ours still
    /// refers to either namespace, which leaves the kernel free to destroy them with their devices.
    /// </summary>
    public TeardownReport Teardown()
    {
        bool virtualGone = true, hooksEmpty = true, pumpGone = true;
        if (Attachment is { } attachment)
        {
            attachment.Dispose();
            // The TAPs and tcx links go when their last fd closes. A child this process forks at the same moment
            // (another test starting `ip`) holds copies of every fd until its exec, so allow that moment: a second.
            var deadline = Environment.TickCount64 + 1000;
            while (true)
            {
                (virtualGone, hooksEmpty, pumpGone) = HostA.Run(() =>
                {
                    bool virt = _netlinkA!.TryGetLink(VirtualDevice) is null;
                    bool hooks = Tcx.QueryProgramIds(RealIndex, TcxDirection.Ingress).Count == 0
                        && Tcx.QueryProgramIds(RealIndex, TcxDirection.Egress).Count == 0;
                    bool pump = _netlinkA.TryGetLink(UserDatapath.PumpNameFor(RealIndex)) is null;
                    return (virt, hooks, pump);
                });
                if ((virtualGone && hooksEmpty && pumpGone) || Environment.TickCount64 > deadline)
                {
                    break;
                }

                Thread.Sleep(5);
            }
        }

        var identities = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ns in new[] { HostA, HostB })
        {
            if (NamespaceIdentity(ns) is { } id)
            {
                identities.Add(id);
            }
        }

        Release();
        // A thread that ended has left /proc/self/task a moment after Join returned; give that moment too.
        var (handles, threads) = CountReferences(identities);
        for (var until = Environment.TickCount64 + 1000; threads.Count > 0 && Environment.TickCount64 < until; Thread.Sleep(5))
        {
            (handles, threads) = CountReferences(identities);
        }

        return new TeardownReport(virtualGone, hooksEmpty, pumpGone, handles, threads);
    }

    public void Dispose()
    {
        Attachment?.Dispose();
        Release();
    }

    private void Release()
    {
        if (_released)
        {
            return;
        }

        _released = true;
        _netlinkA?.Dispose();
        _netlinkB?.Dispose();
        HostA.Dispose();
        HostB.Dispose();
    }

    private static void DisableIpv6(string device)
    {
        // /proc/sys/net belongs to the network namespace of the opening thread: this one, inside host A.
        var path = $"/proc/sys/net/ipv6/conf/{device}/disable_ipv6";
        if (File.Exists(path))
        {
            File.WriteAllText(path, "1");
        }
    }

    /// <summary>"net:[4026532...]", the namespace's inode as /proc shows it.</summary>
    private static string? NamespaceIdentity(NetNamespace ns)
    {
        try
        {
            return new FileInfo($"/proc/self/fd/{ns.Handle.Fd}").LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// How many of this process's fds still refer to one of <paramref name="identities"/>, and the names of the
    /// threads still inside one.
    /// </summary>
    internal static (int Handles, IReadOnlyList<string> Threads) CountReferences(IReadOnlySet<string> identities)
    {
        int handles = Find("/proc/self/fd", entry => entry).Count;
        var threads = Find("/proc/self/task", entry => Path.Combine(entry, "ns", "net")).Select(ThreadName).ToList();
        return (handles, threads);

        List<string> Find(string root, Func<string, string> link)
        {
            var found = new List<string>();
            IEnumerable<string> entries;
            try
            {
                entries = Directory.EnumerateFileSystemEntries(root).ToList();
            }
            catch (IOException)
            {
                return found;
            }

            foreach (var entry in entries)
            {
                try
                {
                    if (new FileInfo(link(entry)).LinkTarget is { } target && identities.Contains(target))
                    {
                        found.Add(entry);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // The fd was closed or the thread ended while we looked: it holds nothing any more.
                }
            }

            return found;
        }

        static string ThreadName(string taskDirectory)
        {
            try
            {
                return $"{File.ReadAllText(Path.Combine(taskDirectory, "comm")).Trim()} ({Path.GetFileName(taskDirectory)})";
            }
            catch (IOException)
            {
                return Path.GetFileName(taskDirectory);
            }
        }
    }
}
