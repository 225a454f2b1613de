// Least privilege: once a binding is made, virtnet keeps only the capabilities it still needs and drops the rest
// from every thread's effective, permitted, inheritable, ambient and bounding sets (Capabilities.KeepOnly). What
// each binding needs after setup was measured operation by operation (docs/service.md, "Privileges"):
//   CAP_NET_ADMIN  follow the real device: the virtual device's MTU, MAC and alias, a veth peer's carrier, set a
//                  private device (pump, peer) up again, delete a veth pair at exit, sweep a dead sibling's.
//   CAP_SYS_ADMIN  --netns only, for now: setns() into the virtual device's namespace to follow MTU, MAC and alias
//                  there, and to read its counters (the fix, reaching it by IFLA_TARGET_NETNSID, is not done).
//   CAP_BPF        --netns on the kernel datapath: a MAC change loads a new classify program.
// Closing what setup made (TAPs, tcx links, sockets) needs nothing. `run` makes bindings on reload too, so it keeps
// what setup needs (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, and CAP_SYS_ADMIN for --netns and for joining a shared
// device another process holds: *_GET_FD_BY_ID).
using Microsoft.Extensions.Logging;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Cli.Service;

internal static class Privileges
{
    /// <summary>What an attach keeps once its binding is made.</summary>
    public static ulong ForAttach(AttachOptions options)
    {
        ulong keep = Capabilities.Mask(Capabilities.CAP_NET_ADMIN);
        if (options.Netns is not null)
        {
            keep |= Capabilities.Mask(Capabilities.CAP_SYS_ADMIN);
            if (options.Datapath == DatapathKind.Kernel)
            {
                keep |= Capabilities.Mask(Capabilities.CAP_BPF);
            }
        }

        return keep;
    }

    /// <summary>What run keeps from the start: what making any binding needs, on reload too.</summary>
    public static ulong ForRun { get; } = Capabilities.Mask(Capabilities.CAP_NET_ADMIN, Capabilities.CAP_NET_RAW, Capabilities.CAP_BPF, Capabilities.CAP_SYS_ADMIN);

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
