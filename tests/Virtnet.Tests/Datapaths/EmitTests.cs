// The handler API beyond verdicts: OnStart's context (ports, MTU, forwarders, log), per-forwarder state, frames
// emitted to any port from inside OnFrame, lengths that change, VLAN tags pushed and popped with the offload
// metadata kept pointing at the same headers. End to end: a responder that answers ARP and ping for an address no
// device holds, with new frames (ARP, by Emit) and in place (ICMP, to the port it came from).
using System.Buffers.Binary;
using System.Collections.Concurrent;
using Virtnet.Datapaths;
using Virtnet.Namespaces;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Datapaths;

public class EmitTests
{
    private static readonly byte[] Answered = [10, 200, 70, 9];

    /// <summary>Answers ARP requests for <see cref="Answered"/> with a new frame, and pings to it in place.</summary>
    private sealed class Responder : IFrameHandler
    {
        private byte[] _mac = [];
        private long[] _answered = [];

        public HandlerContext? Context { get; private set; }

        public long Answers => _answered.Sum();

        public void OnStart(HandlerContext context)
        {
            Context = context;
            _mac = context.Ports[1].Mac;
            _answered = new long[context.ForwarderCount];
            context.Log($"answering for {string.Join('.', Answered)} as {Convert.ToHexString(_mac)}");
        }

        public Verdict OnFrame(ref Frame frame)
        {
            if (frame.Direction != Direction.Ingress)
            {
                return Verdict.Pass;
            }

            if (frame.TryArp(out var arp) && arp.Operation == ArpView.OpRequest && arp.TargetIp.SequenceEqual(Answered))
            {
                Span<byte> reply = stackalloc byte[42];
                frame.Data[6..12].CopyTo(reply);          // to the asker
                _mac.CopyTo(reply[6..]);
                BinaryPrimitives.WriteUInt16BigEndian(reply[12..], EthernetView.EtherTypeArp);
                frame.Data[14..22].CopyTo(reply[14..]);   // htype, ptype, hlen, plen, (op below)
                reply[21] = (byte)ArpView.OpReply;
                _mac.CopyTo(reply[22..]);
                Answered.CopyTo(reply[28..]);
                arp.SenderMac.CopyTo(reply[32..]);
                arp.SenderIp.CopyTo(reply[38..]);
                _answered[frame.Forwarder]++;
                frame.Emit(0, reply);
                return Verdict.Consumed;               // taken, not dropped: no DropReason
            }

            if (frame.TryIpv4(out var ip) && ip.Destination.SequenceEqual(Answered) && ip.Protocol == 1
                && IcmpView.TryRead(ip.Payload[..(ip.TotalLength - ip.HeaderLength)], out var icmp) && icmp.Type == IcmpView.EchoRequest)
            {
                Span<byte> mac = stackalloc byte[6];
                var data = frame.Data;
                data[..6].CopyTo(mac);
                data[6..12].CopyTo(data);
                _mac.CopyTo(data[6..]);
                Span<byte> address = stackalloc byte[4];
                ip.Source.CopyTo(address);
                ip.Destination.CopyTo(ip.Source);
                address.CopyTo(ip.Destination);
                icmp.Type = IcmpView.EchoReply;
                icmp.Checksum = InternetChecksum.Update(icmp.Checksum, (ushort)(IcmpView.EchoRequest << 8), (ushort)(IcmpView.EchoReply << 8));
                _answered[frame.Forwarder]++;
                frame.Target = 0;
                return Verdict.Another;
            }

            return Verdict.Pass;
        }
    }

    [SkippableFact]
    public void Responder_AnswersArpAndPing_WithNewAndRewrittenFrames()
    {
        Root.Require();
        using var pair = TestNetns.Pair("em", "10.200.70.2/24");
        var (a, b) = pair;
        var responder = new Responder();
        using var ns = NetNamespace.Open(a.Path);
        var attachment = ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Name = "vresp0", Datapath = DatapathKind.User, Handlers = [responder] }));
        var log = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        try
        {
            var running = ns.Run(() => attachment.RunAsync(stop.Token, log.Enqueue));
            var context = Assert.IsType<HandlerContext>(responder.Context);
            Assert.Equal(["va", "vresp0"], context.Ports.Select(p => p.Name));
            Assert.Equal(1500, context.Mtu);
            Assert.InRange(context.ForwarderCount, 1, Environment.ProcessorCount);

            // What vb's own stack sent while the binding was being made (its IPv6 router solicitation, say) may have
            // met the virtual device not up yet: the ping's frames are counted from here.
            var before = attachment.ReadCounters();
            var r = b.Try("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.200.70.9");
            Assert.True(r.ExitCode == 0, r.All);
            Assert.True(responder.Answers >= 4, $"{responder.Answers} answers");
            var counters = attachment.ReadCounters();
            Assert.True(counters.HandlerEmitted >= 1, $"{counters.HandlerEmitted} emitted");
            string causes = string.Join(", ", counters.DropCauses.Select(c => $"{c.Direction} {c.Cause} {c.Frames}"));
            Assert.True(counters.HandlerEmitFailed == before.HandlerEmitFailed, $"{counters.HandlerEmitFailed - before.HandlerEmitFailed} emits failed ({counters.HandlerEmitted} sent); drops: {causes}");
            Assert.True(counters.Ingress.Drops == before.Ingress.Drops, $"{counters.Ingress.Drops - before.Ingress.Drops} ingress drops: {causes}");
            Assert.True(SpinWait.SpinUntil(() => log.Any(l => l.Contains("handler Responder: answering for 10.200.70.9", StringComparison.Ordinal)), TimeSpan.FromSeconds(5)), string.Join("\n", log));
            stop.Cancel();
            Assert.True(running.Wait(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            stop.Cancel();
            attachment.Dispose();
        }
    }

    private static byte[] Tagged(bool partial)
    {
        var bytes = new byte[VirtioNetHdr.Size + 14 + 40 + 64];
        var d = bytes.AsSpan(VirtioNetHdr.Size);
        for (int i = 0; i < d.Length; i++)
        {
            d[i] = (byte)i;
        }

        BinaryPrimitives.WriteUInt16BigEndian(d[12..], EthernetView.EtherTypeIPv4);
        if (partial)
        {
            bytes[0] = VirtioNetHdr.VIRTIO_NET_HDR_F_NEEDS_CSUM;
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2), 54);  // hdr_len
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), 34);  // csum_start
        }

        return bytes;
    }

    [Fact]
    public void PushThenPopVlan_RoundTrips_OffloadsFollow_WithinCapacityOnly()
    {
        var bytes = Tagged(partial: true);
        var original = bytes.ToArray();
        var space = new byte[bytes.Length + 8];
        bytes.CopyTo(space, 0);
        var frame = new Frame(space, bytes.Length, Direction.Egress, null, 0);
        int length = frame.Length;

        Assert.True(frame.TryPushVlan(100));
        Assert.Equal(length + 4, frame.Length);
        Assert.Equal(100, frame.Ethernet.VlanId);
        Assert.Equal(EthernetView.EtherTypeIPv4, frame.Ethernet.InnerEtherType);
        Assert.Equal(38, frame.VirtioHeader.CsumStart);
        Assert.Equal(58, frame.VirtioHeader.HdrLen);

        Assert.True(frame.TryPopVlan(out ushort tci));
        Assert.Equal(100, tci);
        Assert.Equal(original, frame.Raw.ToArray());
        Assert.False(frame.TryPopVlan(out _));

        Assert.True(frame.TryPushVlan(1));
        Assert.True(frame.TryPushVlan(2, EthernetView.EtherTypeQinQ));
        Assert.False(frame.TryPushVlan(3)); // 8 bytes of room, used
        Assert.False(frame.TrySetLength(frame.Capacity + 1));
        Assert.True(frame.TrySetLength(60));
        Assert.Equal(60, frame.Data.Length);
        Assert.False(frame.Emit(0, frame.Data)); // not in a forwarder: nowhere to send
        Assert.Equal(0, frame.PortCount);
    }

    [Fact]
    public void PushVlan_WithoutOffloads_LeavesTheHeaderAlone()
    {
        var bytes = Tagged(partial: false);
        var space = new byte[bytes.Length + 4];
        bytes.CopyTo(space, 0);
        var frame = new Frame(space, bytes.Length, Direction.Ingress, null, 0);
        Assert.True(frame.TryPushVlan(7));
        Assert.Equal(0, frame.VirtioHeader.CsumStart);
        Assert.Equal(0, frame.VirtioHeader.HdrLen);
    }
}
