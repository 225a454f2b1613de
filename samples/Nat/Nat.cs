// A stateless 1:1 NAT between the wire and the virtual device: the wire talks to the outside address, the virtual
// device's stack has the inside one.
//   virtnet attach eth1 --handler samples/Nat/bin/Release/net10.0/Nat.dll --handler-arg inside=10.0.0.2 --handler-arg outside=192.0.2.50
// Ingress: to outside becomes to inside; egress: from inside becomes from outside; ARP is translated the same way,
// so the virtual device's own stack answers for the outside address. FrameViews.RewriteIpv4Address keeps the IP,
// TCP and UDP checksums right, in place, in both forms a frame holds them: TCP super-frames of 64 KB (GSO), whose
// checksum is partial, come out right when the kernel cuts them.
using System.Net;
using Virtnet.Datapaths;

namespace Virtnet.Samples;

/// <summary>1:1 NAT: --handler-arg inside=A.B.C.D --handler-arg outside=E.F.G.H.</summary>
public sealed class Nat : IFrameHandler
{
    private readonly byte[] _inside;
    private readonly byte[] _outside;

    /// <summary>Takes inside= and outside= (IPv4 addresses, both required).</summary>
    public Nat(IReadOnlyDictionary<string, string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        _inside = Address(args, "inside");
        _outside = Address(args, "outside");
    }

    /// <inheritdoc/>
    public void OnStart(HandlerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Log($"1:1 NAT: {new IPAddress(_outside)} on the wire is {new IPAddress(_inside)} on {context.Ports[1].Name}");
    }

    /// <inheritdoc/>
    public Verdict OnFrame(ref Frame frame)
    {
        bool ingress = frame.Direction == Direction.Ingress;
        if (frame.TryArp(out var arp))
        {
            var field = ingress ? arp.TargetIp : arp.SenderIp;
            if (field.SequenceEqual(ingress ? _outside : _inside))
            {
                (ingress ? _inside : _outside).CopyTo(field);
            }

            return Verdict.Pass;
        }

        if (frame.TryIpv4(out var ip))
        {
            if (ingress && ip.Destination.SequenceEqual(_outside))
            {
                frame.RewriteIpv4Address(source: false, _inside);
            }
            else if (!ingress && ip.Source.SequenceEqual(_inside))
            {
                frame.RewriteIpv4Address(source: true, _outside);
            }
        }

        return Verdict.Pass;
    }

    private static byte[] Address(IReadOnlyDictionary<string, string> args, string key)
        => args.TryGetValue(key, out var text) && IPAddress.TryParse(text, out var address) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? address.GetAddressBytes()
            : throw new ArgumentException($"give the {key} IPv4 address: --handler-arg {key}=A.B.C.D");
}
