// A virtual IP without a device: answers ARP requests and pings for it from inside the datapath.
//   virtnet attach eth1 --handler samples/ArpIcmpResponder/bin/Release/net10.0/ArpIcmpResponder.dll --handler-arg ip=192.0.2.9
// ARP replies are new frames (Frame.Emit to the real side); echo replies are the requests rewritten in place and
// sent back where they came from (Verdict.Another to port 0). Everything else passes.
using System.Buffers.Binary;
using System.Net;
using Virtnet.Datapaths;

namespace Virtnet.Samples;

/// <summary>Answers ARP and ICMP echo for the address in --handler-arg ip=A.B.C.D, with the virtual device's MAC.</summary>
public sealed class ArpIcmpResponder : IFrameHandler
{
    private readonly byte[] _ip;
    private byte[] _mac = new byte[6];

    /// <summary>Takes ip=A.B.C.D (required).</summary>
    public ArpIcmpResponder(IReadOnlyDictionary<string, string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (!args.TryGetValue("ip", out var text) || !IPAddress.TryParse(text, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            throw new ArgumentException("give the IPv4 address to answer for: --handler-arg ip=A.B.C.D");
        }

        _ip = address.GetAddressBytes();
    }

    /// <inheritdoc/>
    public void OnStart(HandlerContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _mac = context.Ports[1].Mac;
        context.Log($"answering ARP and ping for {new IPAddress(_ip)}");
    }

    /// <inheritdoc/>
    public Verdict OnFrame(ref Frame frame)
    {
        if (frame.Direction != Direction.Ingress)
        {
            return Verdict.Pass;
        }

        if (frame.TryArp(out var arp))
        {
            if (arp.Operation != ArpView.OpRequest || !arp.TargetIp.SequenceEqual(_ip))
            {
                return Verdict.Pass;
            }

            Span<byte> reply = stackalloc byte[14 + ArpView.Length];
            arp.SenderMac.CopyTo(reply);
            _mac.CopyTo(reply[6..]);
            BinaryPrimitives.WriteUInt16BigEndian(reply[12..], EthernetView.EtherTypeArp);
            BinaryPrimitives.WriteUInt32BigEndian(reply[14..], 0x0001_0800);      // Ethernet, IPv4
            BinaryPrimitives.WriteUInt32BigEndian(reply[18..], 0x0604_0000 | ArpView.OpReply);
            _mac.CopyTo(reply[22..]);
            _ip.CopyTo(reply[28..]);
            arp.SenderMac.CopyTo(reply[32..]);
            arp.SenderIp.CopyTo(reply[38..]);
            frame.Emit(0, reply);
            return Verdict.Consumed;
        }

        if (!frame.TryIpv4(out var ip) || ip.Protocol != 1 || !ip.Destination.SequenceEqual(_ip) || ip.IsFragment
            || !IcmpView.TryRead(ip.Payload[..Math.Min(ip.Payload.Length, ip.TotalLength - ip.HeaderLength)], out var icmp) || icmp.Type != IcmpView.EchoRequest)
        {
            return Verdict.Pass;
        }

        var data = frame.Data;
        data[6..12].CopyTo(data);            // back to the sender
        _mac.CopyTo(data[6..]);
        ip.Source.CopyTo(ip.Destination);     // the request's source becomes the destination
        _ip.CopyTo(ip.Source);
        ip.Ttl = 64;
        ip.UpdateChecksum();
        icmp.Type = IcmpView.EchoReply;
        icmp.Checksum = InternetChecksum.Update(icmp.Checksum, IcmpView.EchoRequest << 8, IcmpView.EchoReply << 8);
        frame.Target = 0;
        return Verdict.Another;
    }
}
