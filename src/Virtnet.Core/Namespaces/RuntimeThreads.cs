// The .NET runtime starts some of its threads lazily, on first use, from whichever thread first needs them, and a
// thread inherits the network namespace of the thread that creates it. Measured on .NET 10: merely constructing
// a System.Net.Sockets.Socket starts the socket engine thread (".NET Sockets"), which then lives for the rest of
// the process. Born on a NetNamespace.Run thread, it would sit in that namespace forever and keep it alive after
// every fd is closed. So before anything creates a socket inside another namespace, it starts these threads from
// the calling thread, which must be in the caller's own namespace.
using System.Net.Sockets;

namespace Virtnet.Namespaces;

internal static class RuntimeThreads
{
    private static int s_started;

    /// <summary>Starts the thread pool and the socket engine on the calling thread's namespace (once per process).</summary>
    public static void Start()
    {
        if (Interlocked.Exchange(ref s_started, 1) != 0)
        {
            return;
        }

        Task.Run(() => { }).Wait();
        // A socket that is never bound or used: its construction is what starts the engine.
        new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp).Dispose();
    }
}
