// A mirror port: a second virtual device of the binding gets a copy of every frame that crosses it, both ways,
// while the first device works as usual; a monitor (tcpdump, an IDS, a VM's NIC) reads the second.
//   virtnet attach eth1 --name v0 --extra-device mon0 --handler samples/MirrorPort/bin/Release/net10.0/MirrorPort.dll
//   tcpdump -i mon0
// A copy keeps the frame's offload metadata, so a TCP super-frame is copied whole, in one write (the monitor sees
// it as the kernel delivers super-frames to any tap: one large frame). What the mirror port itself sends is dropped
// with reason "mirror port is receive-only" (virtnet stats: dropped N by handlers); copies that could not be
// written (the port down, its queue full) are counted as emits that failed.
using System.Globalization;
using Virtnet.Datapaths;

namespace Virtnet.Samples;

/// <summary>--handler-arg port=N (default 2: the first --extra-device), direction=ingress|egress|both (default both).</summary>
public sealed class MirrorPort : IFrameHandler
{
    private const string ReceiveOnly = "mirror port is receive-only";
    private readonly int _port = 2;
    private readonly bool _ingress = true;
    private readonly bool _egress = true;

    /// <summary>Takes port= and direction=.</summary>
    public MirrorPort(IReadOnlyDictionary<string, string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.TryGetValue("port", out var port) && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out _port) || _port < 2))
        {
            throw new ArgumentException($"port={port}: give the mirror's port, 2 for the first --extra-device, 3 for the second, ...");
        }

        if (args.TryGetValue("direction", out var direction))
        {
            (_ingress, _egress) = direction switch
            {
                "ingress" => (true, false),
                "egress" => (false, true),
                "both" => (true, true),
                _ => throw new ArgumentException($"direction={direction}: use ingress, egress or both"),
            };
        }
    }

    /// <inheritdoc/>
    public void OnStart(HandlerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_port >= context.Ports.Count)
        {
            throw new ArgumentException($"the binding has no port {_port} to mirror to; add a device for it with --extra-device NAME");
        }

        context.Log($"copies of {(_ingress && _egress ? "both directions" : _ingress ? "ingress" : "egress")} to {context.Ports[_port].Name} (port {_port})");
    }

    /// <inheritdoc/>
    public Verdict OnFrame(ref Frame frame)
    {
        if (frame.Source == _port)
        {
            frame.DropReason = ReceiveOnly;
            return Verdict.Consumed;
        }

        if (frame.Direction == Direction.Ingress ? _ingress : _egress)
        {
            // Counted by the binding: emitted, or an emit that failed; the frame goes on either way.
            _ = frame.EmitCopy(_port);
        }

        return Verdict.Pass;
    }
}
