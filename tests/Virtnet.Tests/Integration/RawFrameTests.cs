// Frame-level contract with raw frames (AF_PACKET): every frame arriving on the real device appears on the
// virtual device, and every frame sent on the virtual device leaves through the real one: each exactly once,
// byte for byte, whatever its destination (ours, broadcast, multicast, someone else's); and nothing else appears.
using System.Buffers.Binary;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class RawFrameTests(ITestOutputHelper output)
{
    private const int X = 11;
    private const int Frames = 100;
    private const ushort ExperimentalEtherType = 0x88B5;

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Ingress_BurstOfRawFrames_EachAppearsOnVirtualOnceUnchanged(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fri{datapath[0]}", X, output);
        lab.Attach(datapath, "--mac", "random");
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Virtual);

        AssertBurst(lab, lab.B, Lab.Peer, lab.A, Lab.Virtual, Net.MacBytes(lab.A, Lab.Virtual), [Net.MacBytes(lab.B, Lab.Peer)]);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Egress_BurstOfRawFrames_EachLeavesThroughRealOnceUnchanged(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"fre{datapath[0]}", X, output);
        lab.Attach(datapath, "--mac", "random");
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Virtual);

        // What reaches vb comes from virtnet0, or from va's own stack (its IPv6 link-local chatter).
        AssertBurst(lab, lab.A, Lab.Virtual, lab.B, Lab.Peer, Net.MacBytes(lab.B, Lab.Peer), [Net.MacBytes(lab.A, Lab.Virtual), Net.MacBytes(lab.A, Lab.Real)]);
    }

    /// <summary>
    /// Frames handed straight to virtnet0's transmit (PACKET_QDISC_BYPASS: no qdisc, no tcx egress) must leave
    /// too, as everything a driver's ndo_start_xmit is given does. The kernel datapath's egress program never sees
    /// them; they land in the TAP, where the slow path picks them up.
    /// </summary>
    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Egress_QdiscBypassBurst_EachLeavesThroughRealOnceUnchanged(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"frq{datapath[0]}", X, output);
        var virtnet = lab.Attach(datapath, "--mac", "random");
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Virtual);

        AssertBurst(lab, lab.A, Lab.Virtual, lab.B, Lab.Peer, Net.MacBytes(lab.B, Lab.Peer), [Net.MacBytes(lab.A, Lab.Virtual), Net.MacBytes(lab.A, Lab.Real)], bypassQdisc: true);
        virtnet.Signal(TestLibc.SIGINT);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)));
        if (datapath == "kernel")
        {
            // Counted apart, so a user can tell that something sends past the qdisc.
            Assert.Matches(@"egress \d+ frames \d+ bytes \d+ dropped \(\d+ past tcx, through the slow path\)", virtnet.Stdout);
        }
    }

    /// <summary>
    /// Frames an XDP program redirects into virtnet0 (XDP_REDIRECT: the TAP's ndo_xdp_xmit, never the qdisc or tcx)
    /// must leave too. Here a second veth pair, xb (B) == xa (A), carries them: B sends on xb, and an XDP program on
    /// xa redirects everything it receives into virtnet0; the frames must come out of va to vb, each once, unchanged.
    /// </summary>
    [SkippableTheory]
    [InlineData("kernel", 0u)]
    [InlineData("kernel", 2u)]
    [InlineData("user", 0u)]
    public void Egress_XdpRedirectIntoVirtual_EachLeavesThroughRealOnceUnchanged(string datapath, uint xdpFlags)
    {
        Root.Require();
        using var lab = Lab.Create($"frx{datapath[0]}{xdpFlags}", X, output);
        var virtnet = lab.Attach(datapath, "--mac", "random");
        TestNetns.AddVeth(lab.A, "xa", lab.B, "xb");
        Net.Ip(lab.A, "link", "set", "xa", "up");
        Net.Ip(lab.B, "link", "set", "xb", "up");
        int virtIndex = Net.Ifindex(lab.A, Lab.Virtual);
        int xaIndex = Net.Ifindex(lab.A, "xa");

        // r0 = bpf_redirect(virtnet0, 0) (XDP_REDIRECT); attached native (flags 0) or generic (XDP_FLAGS_SKB_MODE).
        var insns = new Virtnet.Bpf.BpfAssembler()
            .MovImm(Virtnet.Bpf.BpfReg.R1, virtIndex)
            .MovImm(Virtnet.Bpf.BpfReg.R2, 0)
            .Call(Virtnet.Bpf.BpfHelper.Redirect)
            .Exit()
            .ToArray();
        using var program = Virtnet.Bpf.BpfProgram.Load(BpfProgTypeXdp, "vn_t_xdp", insns, "xa", BpfXdp);
        using var link = Virtnet.Tests.Bpf.BpfNetns.In(lab.A, () => XdpLink(program, xaIndex, xdpFlags));
        output.WriteLine($"XDP program on xa, {(xdpFlags == 0 ? "native" : "generic")} mode, redirecting into {Lab.Virtual} (ifindex {virtIndex})");

        AssertBurst(lab, lab.B, "xb", lab.B, Lab.Peer, Net.MacBytes(lab.B, Lab.Peer), [Net.MacBytes(lab.B, "xb"), Net.MacBytes(lab.A, Lab.Virtual), Net.MacBytes(lab.A, Lab.Real)]);
        virtnet.Signal(TestLibc.SIGINT);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)));
        if (datapath == "kernel")
        {
            Assert.Matches(@"egress \d+ frames \d+ bytes \d+ dropped \(\d+ past tcx, through the slow path\)", virtnet.Stdout);
        }
    }

    private const uint BpfProgTypeXdp = 6;
    private const uint BpfXdp = 37;

    private static unsafe Virtnet.Native.FileDescriptor XdpLink(Virtnet.Bpf.BpfProgram program, int ifindex, uint flags)
    {
        var attr = new Virtnet.Native.BpfAttrLinkCreateTcx { ProgFd = (uint)program.Handle.Fd, TargetIfindex = (uint)ifindex, AttachType = BpfXdp, Flags = flags };
        int fd = Virtnet.Native.Libc.bpf(Virtnet.Native.Libc.BPF_LINK_CREATE, &attr, (uint)sizeof(Virtnet.Native.BpfAttrLinkCreateTcx));
        if (fd < 0)
        {
            throw new InvalidOperationException($"BPF_LINK_CREATE (XDP on ifindex {ifindex}, flags {flags}): {Virtnet.Native.ErrnoExtensions.Format(Virtnet.Native.LastError.Get())}");
        }

        return new Virtnet.Native.FileDescriptor(fd);
    }

    private void AssertBurst(Lab lab, TestNetns fromNs, string fromDev, TestNetns toNs, string toDev, byte[] receiverMac, byte[][] allowedSources, bool bypassQdisc = false)
    {
        byte[] src = Net.MacBytes(fromNs, fromDev);
        byte[][] destinations =
        [
            receiverMac,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x42],
            [0x02, 0x11, 0x22, 0x33, 0x44, 0x55],
        ];
        var tag = Guid.NewGuid().ToByteArray();
        var sent = new List<byte[]>();
        for (int i = 0; i < Frames; i++)
        {
            var frame = new byte[14 + 16 + 4 + (i * 13 % 1400) + 20];
            destinations[i % destinations.Length].CopyTo(frame, 0);
            src.CopyTo(frame, 6);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), ExperimentalEtherType);
            tag.CopyTo(frame, 14);
            BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(30), i);
            new Random(i).NextBytes(frame.AsSpan(34));
            sent.Add(frame);
        }

        using var capture = PacketSocket.Open(toNs, toDev);
        using var sender = PacketSocket.Open(fromNs, fromDev);
        if (bypassQdisc)
        {
            sender.BypassQdisc();
        }

        foreach (var frame in sent)
        {
            sender.Send(frame);
        }

        bool Ours(PacketSocket.Captured c) => c.Data.Length >= 34 && c.Data.AsSpan(14, 16).SequenceEqual(tag);
        var captured = capture.Capture(c => false, deadline: TimeSpan.FromSeconds(2), settle: TimeSpan.Zero);
        var ours = captured.Where(Ours).ToList();
        var others = captured.Where(c => !Ours(c)).ToList();
        output.WriteLine($"{fromDev} -> {toDev}: sent {Frames}, captured {ours.Count} of ours and {others.Count} other frames");

        var seen = new int[Frames];
        foreach (var c in ours)
        {
            int i = BinaryPrimitives.ReadInt32BigEndian(c.Data.AsSpan(30));
            Assert.InRange(i, 0, Frames - 1);
            seen[i]++;
            Assert.True(c.Data.AsSpan().SequenceEqual(sent[i]), $"frame {i} ({sent[i].Length} bytes to {Convert.ToHexString(sent[i], 0, 6)}) arrived changed: {c.Data.Length} bytes {Convert.ToHexString(c.Data.AsSpan(0, Math.Min(40, c.Data.Length)))}");
        }

        var missing = Enumerable.Range(0, Frames).Where(i => seen[i] == 0).ToList();
        var doubled = Enumerable.Range(0, Frames).Where(i => seen[i] > 1).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of {Frames} frames never appeared on {toDev}: {string.Join(',', missing.Take(20))} (destinations by i % 4: ours, broadcast, multicast, foreign)");
        Assert.True(doubled.Count == 0, $"frames appeared more than once on {toDev}: {string.Join(',', doubled.Take(20))}");
        var macs = new Dictionary<string, string>
        {
            ["va"] = Convert.ToHexString(Net.MacBytes(lab.A, Lab.Real)),
            ["vb"] = Convert.ToHexString(Net.MacBytes(lab.B, Lab.Peer)),
            ["virtnet0"] = Convert.ToHexString(Net.MacBytes(lab.A, Lab.Virtual)),
        };
        string Who(ReadOnlySpan<byte> mac)
        {
            string hex = Convert.ToHexString(mac);
            return macs.FirstOrDefault(kv => kv.Value == hex).Key ?? hex;
        }

        foreach (var c in others)
        {
            output.WriteLine($"other frame on {toDev} from {Who(c.Data.AsSpan(6, 6))}: {Convert.ToHexString(c.Data.AsSpan(0, Math.Min(80, c.Data.Length)))}");
        }

        foreach (var c in others)
        {
            Assert.True(c.Data.Length >= 12 && allowedSources.Any(m => c.Data.AsSpan(6, 6).SequenceEqual(m)),
                $"a frame from {Who(c.Data.AsSpan(6, 6))} appeared on {toDev} (only {string.Join(", ", allowedSources.Select(m => Who(m)))} may send there): {Convert.ToHexString(c.Data.AsSpan(0, Math.Min(80, c.Data.Length)))}");
        }
    }
}
