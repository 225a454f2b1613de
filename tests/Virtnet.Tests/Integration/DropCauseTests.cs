// Every frame lost on its way to a device that is down is counted, with its cause, on every shape of binding:
// the whole-device passthru with a TAP or (with --netns) a veth pair, and a shared bridge-mode binding. A veth
// peer's redirect to a down device is freed by the kernel without any counter (skb_do_redirect), so without
// virtnet's own "device down" drop those frames would vanish; the user datapath's forwarder finds the TAP down
// when it writes ("send failed").
using System.Text.RegularExpressions;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public partial class DropCauseTests(ITestOutputHelper output)
{
    private const int X = 48;
    private const int Frames = 200;

    [SkippableTheory]
    [InlineData("kernel", "passthru", false, "device down")]
    [InlineData("kernel", "passthru", true, "device down")]
    [InlineData("kernel", "bridge", false, "device down")]
    [InlineData("kernel", "bridge", true, "device down")]
    [InlineData("user", "passthru", false, "send failed")]
    [InlineData("user", "bridge", true, "send failed")]
    public void VirtualDeviceDown_EveryFrameCountedWithItsCause(string datapath, string mode, bool netns, string cause)
    {
        Root.Require();
        string tag = $"dc{datapath[0]}{mode[0]}{(netns ? "n" : "t")}";
        using var c = new TestNetns(tag + "c");
        using var lab = Lab.Create(tag, X, output);
        string[] extra = netns ? ["--mode", mode, "--netns", c.Name] : ["--mode", mode];
        var virtnet = lab.Attach(datapath, extra);
        var where = netns ? c : lab.A;
        byte[] mac = Net.MacBytes(where, Lab.Virtual);

        Net.Ip(where, "link", "set", Lab.Virtual, "down");
        if (datapath == "kernel")
        {
            // The kernel datapath says when it has seen the device go down; from then on the drops are its own.
            Net.WaitUntil(() => virtnet.Stderr.Contains($"{Lab.Virtual}: down;", StringComparison.Ordinal), TimeSpan.FromSeconds(3), virtnet.Describe);
        }

        PacketSocket.Burst(lab.B, Lab.Peer, mac, Frames);
        Thread.Sleep(300);
        virtnet.Signal(TestLibc.SIGINT);
        Assert.True(virtnet.WaitForExit(TimeSpan.FromSeconds(10)), virtnet.Describe());
        output.WriteLine(virtnet.Stdout);
        var stopped = StoppedLine().Match(virtnet.Stdout);
        Assert.True(stopped.Success, virtnet.Describe());
        ulong dropped = ulong.Parse(stopped.Groups["dropped"].Value);
        var byCause = Regex.Match(stopped.Groups["causes"].Value, $@"ingress (?:[^;]*?, )?(\d+) {Regex.Escape(cause)}");
        Assert.True(byCause.Success, $"no ingress '{cause}' drops in: {stopped.Value}");
        ulong counted = ulong.Parse(byCause.Groups[1].Value);
        Assert.True(counted >= Frames, $"{Frames} frames sent to a down {Lab.Virtual}, {counted} counted as '{cause}': {stopped.Value}");
        Assert.True(dropped >= counted, $"the causes add up to more than the drops: {stopped.Value}");
    }

    [GeneratedRegex(@"stopped: ingress \d+ frames \d+ bytes (?<dropped>\d+) dropped, egress [^;\n]*(?<causes>;[^\n]*)?")]
    private static partial Regex StoppedLine();
}
