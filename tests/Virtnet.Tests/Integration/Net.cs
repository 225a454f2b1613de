// What the tests observe, always from inside a test namespace: links (ip -j), neighbours, ping, tc filters, and
// the programs on a device's tcx hooks.
//
// Why our own BPF_PROG_QUERY for tcx: Debian 12's bpftool (7.1) predates tcx (bpftool 7.3 added tcx to `bpftool
// net`), and neither `ip -d link` nor `tc filter show` (iproute2 6.1) lists tcx programs. The query is a few lines,
// independent of the product's own BPF layer, and runs in the namespace of the device (the ifindex is resolved in
// the caller's network namespace).
using System.Runtime.InteropServices;
using System.Text.Json;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Integration;

internal static class Net
{
    public static readonly TimeSpan FollowDeadline = TimeSpan.FromSeconds(2);

    /// <summary>`ip -n NS ARGS` (always the namespace's full name: a bare letter would be read as an ip object).</summary>
    public static string Ip(TestNetns ns, params string[] args) => Run.Checked("ip", ["-n", ns.Name, .. args]);

    public static RunResult TryIp(TestNetns ns, params string[] args) => Run.Command("ip", ["-n", ns.Name, .. args]);

    /// <summary>`ip -d -j link show dev DEV`, or null when the device does not exist.</summary>
    public static JsonElement? Link(TestNetns ns, string device)
    {
        var r = TryIp(ns, "-d", "-j", "link", "show", "dev", device);
        if (r.ExitCode != 0)
        {
            return null;
        }

        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetArrayLength() == 0 ? null : doc.RootElement[0].Clone();
    }

    /// <summary>`ip -s -j link show dev DEV`'s stats64 (rx, tx: packets, bytes, dropped, ...).</summary>
    public static JsonElement RequireLinkStats(TestNetns ns, string device)
    {
        using var doc = JsonDocument.Parse(Ip(ns, "-s", "-j", "link", "show", "dev", device));
        return doc.RootElement[0].GetProperty("stats64").Clone();
    }

    public static JsonElement RequireLink(TestNetns ns, string device)
        => Link(ns, device) ?? throw new Xunit.Sdk.XunitException($"{device} does not exist in {ns.Name}; links: {string.Join(' ', LinkNames(ns))}");

    public static bool Exists(TestNetns ns, string device) => Link(ns, device) is not null;

    public static List<string> LinkNames(TestNetns ns)
    {
        using var doc = JsonDocument.Parse(Ip(ns, "-j", "link", "show"));
        return doc.RootElement.EnumerateArray().Select(l => l.GetProperty("ifname").GetString()!).Order(StringComparer.Ordinal).ToList();
    }

    public static int Mtu(TestNetns ns, string device) => RequireLink(ns, device).GetProperty("mtu").GetInt32();

    public static int Ifindex(TestNetns ns, string device) => RequireLink(ns, device).GetProperty("ifindex").GetInt32();

    public static string Mac(TestNetns ns, string device) => RequireLink(ns, device).GetProperty("address").GetString()!;

    public static byte[] MacBytes(TestNetns ns, string device) => Convert.FromHexString(Mac(ns, device).Replace(":", "", StringComparison.Ordinal));

    public static int Promiscuity(TestNetns ns, string device) => RequireLink(ns, device).GetProperty("promiscuity").GetInt32();

    public static IReadOnlyList<string> Flags(TestNetns ns, string device)
        => RequireLink(ns, device).GetProperty("flags").EnumerateArray().Select(f => f.GetString()!).ToList();

    /// <summary>Carrier as the kernel reports it: LOWER_UP present, NO-CARRIER absent.</summary>
    public static bool HasCarrier(TestNetns ns, string device)
    {
        var flags = Flags(ns, device);
        return flags.Contains("LOWER_UP") && !flags.Contains("NO-CARRIER");
    }

    public static string LinkText(TestNetns ns, string device) => TryIp(ns, "-d", "link", "show", "dev", device).All.Trim();

    /// <summary>Polls until <paramref name="condition"/> holds; returns how long it took, or throws with the description.</summary>
    public static TimeSpan WaitUntil(Func<bool> condition, TimeSpan deadline, Func<string> describe)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            if (condition())
            {
                return watch.Elapsed;
            }

            if (watch.Elapsed > deadline)
            {
                throw new Xunit.Sdk.XunitException($"not within {deadline.TotalSeconds} s: {describe()}");
            }

            Thread.Sleep(20);
        }
    }

    // ---- ping ----

    public static RunResult Ping(TestNetns ns, string from, string to, int count = 5, int? size = null, bool dontFragment = false, double interval = 0.2)
    {
        var args = new List<string> { "ping", "-n", "-c", count.ToString(), "-i", interval.ToString(System.Globalization.CultureInfo.InvariantCulture), "-W", "1", "-I", from };
        if (to.Contains(':', StringComparison.Ordinal))
        {
            args.Insert(1, "-6");
        }

        if (size is { } s)
        {
            args.AddRange(["-s", s.ToString()]);
        }

        if (dontFragment)
        {
            args.AddRange(["-M", "do"]);
        }

        args.Add(to);
        return ns.Try(TimeSpan.FromSeconds(30), [.. args]);
    }

    /// <summary>Every echo answered, exactly once.</summary>
    public static void AssertPing(TestNetns ns, string from, string to, int count = 5, int? size = null, bool dontFragment = false)
    {
        var r = Ping(ns, from, to, count, size, dontFragment);
        string what = $"ping {from} -> {to} in {ns.Name}{(size is null ? "" : $" size {size}")}:\n{r.All}";
        Assert.True(r.ExitCode == 0, $"{what}\nexit code {r.ExitCode}");
        Assert.DoesNotContain("DUP!", r.Stdout, StringComparison.Ordinal);
        Assert.True(r.Stdout.Contains($"{count} packets transmitted, {count} received", StringComparison.Ordinal), $"not every echo answered: {what}");
    }

    /// <summary>Single pings until one is answered (ND, carrier coming back), then nothing: the caller asserts.</summary>
    public static TimeSpan WaitForPing(TestNetns ns, string from, string to, TimeSpan deadline)
    {
        RunResult last = new(-1, "", "");
        return WaitUntil(() => (last = Ping(ns, from, to, count: 1)).ExitCode == 0, deadline, () => $"no answer to ping {from} -> {to} in {ns.Name}:\n{last.All}");
    }

    // ---- hooks ----

    /// <summary>BPF program ids on a device's tcx ingress and egress hooks (BPF_PROG_QUERY), queried in its namespace.</summary>
    public static (uint[] Ingress, uint[] Egress) TcxPrograms(TestNetns ns, string device)
    {
        int ifindex = Ifindex(ns, device);
        return InNetns.Run(ns.Name, () => (QueryTcx(ifindex, BpfTcxIngress, device), QueryTcx(ifindex, BpfTcxEgress, device)));
    }

    public static string DescribeHooks(TestNetns ns, string device)
    {
        var (ingress, egress) = TcxPrograms(ns, device);
        return $"tcx ingress [{string.Join(',', ingress)}] egress [{string.Join(',', egress)}]; tc filters: '{TcFilters(ns, device)}'";
    }

    /// <summary>True when no tcx program and no tc filter is left on either direction of <paramref name="device"/>.</summary>
    public static bool HooksEmpty(TestNetns ns, string device)
    {
        var (ingress, egress) = TcxPrograms(ns, device);
        return ingress.Length == 0 && egress.Length == 0 && TcFilters(ns, device).Length == 0;
    }

    /// <summary>tc filters (classic cls_bpf and friends) on ingress and egress; empty text when none.</summary>
    public static string TcFilters(TestNetns ns, string device)
        => (Run.Command("tc", "-n", ns.Name, "filter", "show", "dev", device, "ingress").Stdout
            + Run.Command("tc", "-n", ns.Name, "filter", "show", "dev", device, "egress").Stdout).Trim();

    private const int BpfProgQuery = 16;
    private const uint BpfTcxIngress = 46;
    private const uint BpfTcxEgress = 47;

    private static unsafe uint[] QueryTcx(int ifindex, uint attachType, string device)
    {
        // union bpf_attr, query part: target_ifindex @0, attach_type @4, query_flags @8, attach_flags @12,
        // prog_ids @16 (u64 pointer), count @24.
        const int Max = 64;
        uint* ids = stackalloc uint[Max];
        byte* attr = stackalloc byte[128];
        new Span<byte>(attr, 128).Clear();
        *(uint*)(attr + 0) = (uint)ifindex;
        *(uint*)(attr + 4) = attachType;
        *(ulong*)(attr + 16) = (ulong)ids;
        *(uint*)(attr + 24) = Max;
        nint rc = Libc.syscall(TestLibc.BpfSyscallNumber, BpfProgQuery, (nint)attr, 128);
        if (rc < 0)
        {
            throw new InvalidOperationException($"BPF_PROG_QUERY {(attachType == BpfTcxIngress ? "tcx ingress" : "tcx egress")} on {device}: errno {Marshal.GetLastPInvokeError()}");
        }

        uint count = *(uint*)(attr + 24);
        return new Span<uint>(ids, (int)Math.Min(count, Max)).ToArray();
    }
}
