// virtnet demo: the first command a newcomer runs. It builds a throwaway two-host lab (LabTopology), attaches
// virtnet to host A's "real" NIC, proves that traffic crosses both ways (ping over IPv4 and IPv6, the ARP and ND
// entries it left behind, a verified TCP transfer each way), shows the datapath's counters, and tears it all down,
// checking that nothing is left. No ip, ping or iperf: netlink and sockets only.
//
// Threads: the calling thread never enters a lab namespace. Work that must happen inside one runs on a fresh
// NetNamespace.Run thread, which only creates sockets or makes netlink calls and then ends. The runtime's lazy
// threads (thread pool, socket engine) are started first so that none of them is born inside a lab namespace
// (RuntimeThreads.cs); the teardown step checks that no thread of ours is left in one.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Virtnet.Datapaths;
using Virtnet.Native;
using Virtnet.Netlink;
using Virtnet.Namespaces;

namespace Virtnet.Lab;

internal static class Demo
{
    public const string ReadyMarker = "virtnet0 ready";

    private const int PingCount = 4;
    private static readonly TimeSpan PingInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromMilliseconds(400);
    private const int ResolveAttempts = 5;
    private static readonly TimeSpan TransferDuration = TimeSpan.FromSeconds(1.5);
    private const long TransferMaxBytes = 2L << 30;
    private static readonly TimeSpan TransferTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(30);

    /// <summary>Builds the lab, shows traffic crossing, tears down. Returns the process exit code.</summary>
    public static int Run(DatapathKind datapath, TextWriter output)
    {
        var clock = Stopwatch.StartNew();
        CheckPrivileges();
        RuntimeThreads.Start();

        var steps = new Steps(output);
        WriteIntro(output, datapath);
        var linksBefore = LinkNamesHere();

        LabTopology lab = steps.Setup("build the lab", LabTopology.Build);
        try
        {
            steps.Ok($"lab built: host A and host B in private network namespaces, {LabTopology.RealDevice} <-> {LabTopology.PeerDevice} born inside them");

            var attachment = steps.Setup($"attach virtnet to {LabTopology.RealDevice}", () => lab.Attach(datapath));
            steps.Ok($"{ReadyMarker}: {attachment.RealName} <-> {attachment.VirtualName}, {Describe(datapath)} datapath, mtu {attachment.Mtu}, mac {FormatMac(attachment.VirtualMac)}");
            output.WriteLine($"    host A: {LabTopology.VirtualDevice} {LabTopology.AddressA4}/{LabTopology.Prefix4} {LabTopology.AddressA6}/{LabTopology.Prefix6}; {LabTopology.RealDevice} has no address");
            output.WriteLine($"    host B: {LabTopology.PeerDevice} {LabTopology.AddressB4}/{LabTopology.Prefix4} {LabTopology.AddressB6}/{LabTopology.Prefix6}, mac {FormatMac(lab.Peer.Mac)}");

            output.WriteLine();
            output.WriteLine("  ping (ICMP echo from a raw socket in one host to the other):");
            Ping(steps, lab.HostA, "A -> B", LabTopology.AddressB4);
            Ping(steps, lab.HostA, "A -> B", LabTopology.AddressB6);
            Ping(steps, lab.HostB, "B -> A", LabTopology.AddressA4);
            Ping(steps, lab.HostB, "B -> A", LabTopology.AddressA6);

            output.WriteLine();
            output.WriteLine("  neighbours (what ARP and IPv6 neighbour discovery learned on the way):");
            Neighbours(steps, "host A", LabTopology.VirtualDevice, lab.NeighborsOfA(), [LabTopology.AddressB4, LabTopology.AddressB6], lab.Peer.Mac);
            Neighbours(steps, "host B", LabTopology.PeerDevice, lab.NeighborsOfB(), [LabTopology.AddressA4, LabTopology.AddressA6], attachment.VirtualMac);

            output.WriteLine();
            output.WriteLine($"  TCP (one connection per direction, {TransferDuration.TotalSeconds:0.#} s each, every byte checked):");
            Transfer(steps, "A -> B", lab.HostB, LabTopology.AddressB4, lab.HostA);
            Transfer(steps, "B -> A", lab.HostA, LabTopology.AddressA4, lab.HostB);

            var counters = attachment.ReadCounters();
            output.WriteLine();
            output.WriteLine($"  counters of the {Describe(datapath)} datapath:");
            output.WriteLine($"    ingress  {LabTopology.RealDevice} -> {LabTopology.VirtualDevice} (from the wire): {FormatDirection(counters.Ingress)}");
            output.WriteLine($"    egress   {LabTopology.VirtualDevice} -> {LabTopology.RealDevice} (to the wire):   {FormatDirection(counters.Egress)}");
            steps.Check(counters.Ingress.Frames > 0 && counters.Egress.Frames > 0,
                "frames crossed virtnet in both directions",
                counters.Ingress.Frames == 0 ? "no frame came in from the wire through virtnet" : "no frame went out to the wire through virtnet");

            output.WriteLine();
            var report = lab.Teardown();
            TeardownStep(steps, report, datapath);
        }
        finally
        {
            lab.Dispose();
        }

        var linksAfter = LinkNamesHere();
        var added = linksAfter.Except(linksBefore).ToList();
        steps.Check(added.Count == 0,
            $"your namespace is untouched: the same {linksAfter.Count} devices as before ({string.Join(", ", linksAfter)})",
            $"new devices appeared in your namespace: {string.Join(", ", added)}");

        var elapsed = clock.Elapsed;
        output.WriteLine();
        if (steps.Failed == 0)
        {
            output.WriteLine($"All {steps.Passed} checks passed in {elapsed.TotalSeconds:0.0} s.{OverBudget(elapsed)}");
            return 0;
        }

        output.WriteLine($"{steps.Failed} of {steps.Passed + steps.Failed} checks failed in {elapsed.TotalSeconds:0.0} s; the first: {steps.FirstFailure}.{OverBudget(elapsed)}");
        return 1;
    }

    private static void WriteIntro(TextWriter output, DatapathKind datapath)
    {
        output.WriteLine($"virtnet demo, {Describe(datapath)} datapath");
        output.WriteLine();
        output.WriteLine("  Two hosts, each in a private network namespace, joined by a veth pair (a virtual cable).");
        output.WriteLine($"  {LabTopology.RealDevice} plays host A's real NIC. virtnet takes it over and gives host A {LabTopology.VirtualDevice} instead:");
        output.WriteLine($"  every frame arriving on {LabTopology.RealDevice} appears on {LabTopology.VirtualDevice}, everything {LabTopology.VirtualDevice} sends leaves through {LabTopology.RealDevice}.");
        output.WriteLine(datapath == DatapathKind.Kernel
            ? "  Kernel datapath: two BPF programs on tcx hooks redirect the frames; they never leave the kernel."
            : "  User datapath: every frame crosses this process and passes through C# code.");
        output.WriteLine();
        string picture = $"    [host A: {LabTopology.VirtualDevice} {LabTopology.AddressA4}] ~~ {LabTopology.RealDevice} ====veth==== {LabTopology.PeerDevice} [host B: {LabTopology.AddressB4}]";
        int columnA = picture.IndexOf(LabTopology.AddressA4.ToString(), StringComparison.Ordinal);
        int columnB = picture.IndexOf(LabTopology.AddressB4.ToString(), StringComparison.Ordinal);
        output.WriteLine(picture);
        output.WriteLine(new string(' ', columnA) + LabTopology.AddressA6.ToString().PadRight(columnB - columnA) + LabTopology.AddressB6);
        output.WriteLine();
    }

    private static void Ping(Steps steps, NetNamespace from, string direction, IPAddress target)
    {
        string family = target.AddressFamily == AddressFamily.InterNetwork ? "IPv4" : "IPv6";
        string what = $"ping {direction} {family} {target}";
        using var pinger = Pinger.Open(from, target.AddressFamily);

        // The first request may wait for ARP or neighbour discovery; give it a few short tries.
        int attempt = pinger.WaitForReply(target, ResolveAttempts, ResolveTimeout);
        if (attempt == 0)
        {
            steps.Fail(what, $"{ResolveAttempts} requests got no reply");
            return;
        }

        var result = pinger.Ping(target, PingCount, PingInterval, PingTimeout);
        string text = $"{what,-34} {result.Received}/{result.Sent} replies, rtt min/avg/max {Ms(result.Min)}/{Ms(result.Average)}/{Ms(result.Max)} ms";
        if (attempt > 1)
        {
            text += $" (first answer on try {attempt})";
        }

        if (result.Duplicates > 0)
        {
            text += $", {result.Duplicates} DUPLICATE replies";
        }

        if (result.Corrupt > 0)
        {
            text += $", {result.Corrupt} replies with a wrong payload";
        }

        steps.Check(result.Complete, text, text);
    }

    private static void Neighbours(Steps steps, string host, string device, IReadOnlyList<NeighborInfo> entries, IPAddress[] expected, byte[] expectedMac)
    {
        foreach (var address in expected)
        {
            string protocol = address.AddressFamily == AddressFamily.InterNetwork ? "ARP" : "ND ";
            var entry = entries.FirstOrDefault(e => e.Address.Equals(address));
            if (entry is null)
            {
                steps.Fail($"{protocol} {host}: {address}", $"no neighbour entry on {device}");
                continue;
            }

            string where = entry.Mac.Length == 0 ? "is not resolved" : $"is at {FormatMac(entry.Mac)}";
            string text = $"{protocol} {host}: {address} {where} ({device}, {NeighbourState(entry.State)})";
            bool resolved = (entry.State & (NudIncomplete | NudFailed)) == 0 && entry.Mac.AsSpan().SequenceEqual(expectedMac);
            steps.Check(resolved, text, $"{text}; expected {FormatMac(expectedMac)}");
        }
    }

    private static void Transfer(Steps steps, string direction, NetNamespace server, IPAddress serverAddress, NetNamespace client)
    {
        var result = TcpTransfer.Run(server, serverAddress, client, TransferDuration, TransferMaxBytes, TransferTimeout);
        string amount = $"{result.BytesReceived / 1e6:0} MB in {result.Elapsed.TotalSeconds:0.00} s";
        if (result.Ok)
        {
            steps.Ok($"TCP {direction}: {amount} = {result.MegabytesPerSecond:0} MB/s ({result.GigabitsPerSecond:0.0} Gbit/s), every byte verified");
        }
        else
        {
            steps.Fail(result.BytesReceived == 0 ? $"TCP {direction}" : $"TCP {direction}: {amount}", result.Error ?? "the bytes did not match");
        }
    }

    private static void TeardownStep(Steps steps, TeardownReport report, DatapathKind datapath)
    {
        if (report.Clean)
        {
            string pump = datapath == DatapathKind.User ? ", its pump device" : string.Empty;
            steps.Ok($"teardown: {LabTopology.VirtualDevice}{pump} and the BPF programs on {LabTopology.RealDevice} removed; " +
                "no handle or thread of ours is left in host A or host B, so the kernel deletes both with their devices");
            return;
        }

        var problems = new List<string>();
        if (!report.VirtualDeviceGone)
        {
            problems.Add($"{LabTopology.VirtualDevice} still exists");
        }

        if (!report.HooksEmpty)
        {
            problems.Add($"programs are still attached to {LabTopology.RealDevice}");
        }

        if (!report.PumpGone)
        {
            problems.Add("the pump device still exists");
        }

        if (report.HandlesLeft > 0)
        {
            problems.Add($"{report.HandlesLeft} fds still hold a lab namespace");
        }

        if (report.ThreadsLeft.Count > 0)
        {
            problems.Add($"threads still inside a lab namespace: {string.Join(", ", report.ThreadsLeft)}");
        }

        steps.Fail("teardown", string.Join("; ", problems));
    }

    private static void CheckPrivileges()
    {
        if (!Capabilities.HasEffective(Capabilities.CAP_SYS_ADMIN) || !Capabilities.HasEffective(Capabilities.CAP_NET_ADMIN))
        {
            throw new VirtnetException(FailureKind.NotPermitted, "demo", null,
                "the demo builds private network namespaces and attaches BPF programs, which needs root; run it with sudo", Errno.EPERM);
        }
    }

    /// <summary>The device names of the caller's own namespace (a read-only netlink dump).</summary>
    private static List<string> LinkNamesHere()
    {
        using var rtnl = RtNetlink.Open();
        return rtnl.GetLinks().Select(l => l.Name).Order(StringComparer.Ordinal).ToList();
    }

    private static string OverBudget(TimeSpan elapsed)
        => elapsed <= Budget ? string.Empty : $" That took longer than the {Budget.TotalSeconds:0} s it should; the machine may be busy.";

    private static string Describe(DatapathKind datapath) => datapath == DatapathKind.Kernel ? "kernel" : "user";

    private static string Ms(TimeSpan t) => t.TotalMilliseconds.ToString("0.000");

    private static string FormatDirection(DirectionCounters c) => $"{c.Frames,9:N0} frames {c.Bytes,15:N0} bytes {c.Drops:N0} dropped";

    internal static string FormatMac(ReadOnlySpan<byte> mac)
    {
        if (mac.IsEmpty)
        {
            return "(none)";
        }

        var parts = new string[mac.Length];
        for (int i = 0; i < mac.Length; i++)
        {
            parts[i] = mac[i].ToString("x2");
        }

        return string.Join(':', parts);
    }

    // linux/neighbour.h
    private const ushort NudIncomplete = 0x01;
    private const ushort NudReachable = 0x02;
    private const ushort NudStale = 0x04;
    private const ushort NudDelay = 0x08;
    private const ushort NudProbe = 0x10;
    private const ushort NudFailed = 0x20;
    private const ushort NudNoArp = 0x40;
    private const ushort NudPermanent = 0x80;

    internal static string NeighbourState(ushort state)
    {
        var names = new List<string>();
        foreach (var (bit, name) in new[]
        {
            (NudIncomplete, "INCOMPLETE"), (NudReachable, "REACHABLE"), (NudStale, "STALE"), (NudDelay, "DELAY"),
            (NudProbe, "PROBE"), (NudFailed, "FAILED"), (NudNoArp, "NOARP"), (NudPermanent, "PERMANENT"),
        })
        {
            if ((state & bit) != 0)
            {
                names.Add(name);
            }
        }

        return names.Count == 0 ? "NONE" : string.Join('|', names);
    }

    /// <summary>Prints each step with a tick or a cross and remembers the first failure.</summary>
    private sealed class Steps(TextWriter output)
    {
        public int Passed { get; private set; }

        public int Failed { get; private set; }

        public string? FirstFailure { get; private set; }

        public void Ok(string text)
        {
            Passed++;
            output.WriteLine($"  \u2713 {text}");
            output.Flush();
        }

        public void Fail(string what, string why)
        {
            Failed++;
            FirstFailure ??= $"{what}: {why}";
            output.WriteLine($"  \u2717 {what}: {why}");
            output.Flush();
        }

        public void Check(bool ok, string okText, string failText)
        {
            if (ok)
            {
                Ok(okText);
            }
            else
            {
                Failed++;
                FirstFailure ??= failText;
                output.WriteLine($"  \u2717 {failText}");
                output.Flush();
            }
        }

        /// <summary>A step the rest cannot do without: on failure it is marked and the exception goes to the caller.</summary>
        public T Setup<T>(string what, Func<T> step)
        {
            try
            {
                return step();
            }
            catch (Exception)
            {
                Failed++;
                output.WriteLine($"  \u2717 {what}");
                output.Flush();
                throw;
            }
        }
    }
}
