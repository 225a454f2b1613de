// The integration tests' own tools, checked on a plain veth pair without virtnet: when a virtnet test fails, this
// class says whether the harness (namespaces, sockets, packet capture, hook query) can be trusted.
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class HarnessTests(ITestOutputHelper output)
{
    private const int X = 9;

    [SkippableFact]
    public void Harness_PlainVeth_EveryTrafficCheckPasses()
    {
        Root.Require();
        using var lab = Lab.Create("harness", X, output);
        Net.Ip(lab.A, "addr", "add", $"{lab.A4}/24", "dev", Lab.Real);
        Net.Ip(lab.A, "addr", "add", $"{lab.A6}/64", "dev", Lab.Real, "nodad");

        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 2);
        Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));
        Traffic.AssertUdpBroadcast(lab.A, lab.A4, lab.B, lab.Broadcast4);
        Traffic.AssertUdpBroadcast(lab.B, lab.B4, lab.A, lab.Broadcast4);
        VlanTests.AssertTaggedFrameCrosses(lab.A, Lab.Real, lab.B, Lab.Peer, output);
        VlanTests.AssertTaggedFrameCrosses(lab.B, Lab.Peer, lab.A, Lab.Real, output);
        output.WriteLine(Traffic.TcpTransfer(lab.A, lab.A4, lab.B, lab.B4, 8L * 1024 * 1024, TimeSpan.FromSeconds(30)).ToString());
        Assert.True(Net.HooksEmpty(lab.A, Lab.Real), Net.DescribeHooks(lab.A, Lab.Real));
        Assert.Equal(0, Net.Promiscuity(lab.A, Lab.Real));
    }
}
