namespace Virtnet.Devices;

/// <summary>Per-device sysctls under /proc/sys/net, which resolve to the network namespace of the opening thread.</summary>
internal static class Sysctl
{
    /// <summary>
    /// net.ipv6.conf.DEVICE.disable_ipv6 = 1: a device that only carries frames (the pump, a veth peer) must not
    /// speak, or it would send its own ND and MLD through the real device. A no-op where IPv6 is absent.
    /// </summary>
    public static void DisableIpv6(string device)
    {
        var path = $"/proc/sys/net/ipv6/conf/{device}/disable_ipv6";
        if (File.Exists(path))
        {
            File.WriteAllText(path, "1");
        }
    }
}
