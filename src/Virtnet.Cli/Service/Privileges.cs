// Least privilege: once a binding is made, virtnet keeps only the capabilities it still needs and drops the rest
// from every thread's effective, permitted, inheritable, ambient and bounding sets (Capabilities.KeepOnly). What
// a binding needs after setup was measured operation by operation (docs/service.md, "Privileges"): CAP_NET_ADMIN
// alone, to follow the real device (the virtual device's MTU, MAC and alias, in another namespace through a netlink
// socket made there during setup, so no setns; a veth peer's carrier; a private device set up again; a veth pair
// deleted at exit). A MAC change on the kernel datapath's --netns is a map update; closing what setup made needs
// nothing. `run` makes bindings on reload too, so it keeps what setup needs but CAP_SYS_ADMIN: CAP_NET_ADMIN,
// CAP_NET_RAW, CAP_BPF. What needs CAP_SYS_ADMIN (setns for --netns; *_GET_FD_BY_ID to join a shared device another
// process holds) run asks its privilege broker for (BrokerProcess), a child that keeps it and passes back descriptors.
using Microsoft.Extensions.Logging;
using Virtnet.Native;

namespace Virtnet.Cli.Service;

internal static class Privileges
{
    /// <summary>What an attach keeps once its binding is made, whatever its kind.</summary>
    public static ulong ForAttach { get; } = Capabilities.Mask(Capabilities.CAP_NET_ADMIN);

    /// <summary>What run keeps from the start: what making any binding needs, on reload too.</summary>
    public static ulong ForRun { get; } = Capabilities.Mask(Capabilities.CAP_NET_ADMIN, Capabilities.CAP_NET_RAW, Capabilities.CAP_BPF);

    /// <summary>
    /// Keeps only <paramref name="keep"/> in every thread; on an architecture KeepOnly is not built for, says so and
    /// keeps them all. Other failures throw: a binding that could not drop what it should is not started.
    /// </summary>
    public static void Drop(ulong keep, ILogger log)
    {
        try
        {
            Capabilities.KeepOnly(keep);
            log.Debug($"capabilities kept: {Capabilities.Describe(keep)}; every other one dropped from every thread");
        }
        catch (VirtnetException e) when (e.Kind == FailureKind.Unsupported)
        {
            log.Warn($"keeping every capability: {e.Message}");
        }
    }
}
