namespace Virtnet.Datapaths;

/// <summary>One port of a binding, as a handler sees it.</summary>
/// <param name="Index">Its index: what <see cref="Frame.Target"/> and <see cref="Frame.Emit"/> take.</param>
/// <param name="Name">The device: the real device for port 0, then the virtual devices.</param>
/// <param name="Mac">Its MAC.</param>
public sealed record HandlerPort(int Index, string Name, byte[] Mac);

/// <summary>What a handler is told once, before its first frame (<see cref="IFrameHandler.OnStart"/>).</summary>
public sealed class HandlerContext
{
    private readonly Action<string> _log;

    internal HandlerContext(IReadOnlyList<HandlerPort> ports, int mtu, int forwarders, Action<string> log)
    {
        Ports = ports;
        Mtu = mtu;
        ForwarderCount = forwarders;
        _log = log;
    }

    /// <summary>The binding's ports: 0 the real side, then its virtual devices.</summary>
    public IReadOnlyList<HandlerPort> Ports { get; }

    /// <summary>The real device's MTU when the binding was made.</summary>
    public int Mtu { get; }

    /// <summary>
    /// How many forwarders (threads, one per CPU) run the handler at once: size per-forwarder state with it and
    /// index it with <see cref="Frame.Forwarder"/>, and it needs no lock.
    /// </summary>
    public int ForwarderCount { get; }

    /// <summary>Writes a line to the binding's log (virtnet's own, or what Run was given), prefixed with the handler's name. Not for the frame path.</summary>
    public void Log(string message) => _log(message);
}
