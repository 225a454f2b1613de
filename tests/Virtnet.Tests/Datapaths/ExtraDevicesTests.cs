// A user-datapath binding with further virtual devices (AttachOptions.ExtraDevices): each is made like the first
// (random MAC, the real device's MTU and carrier) and follows the real device's MTU and carrier as the first does;
// a handler sees the ports in its context; deleting one ends the binding with a sentence that names it; all go with
// the binding. In process, through the library.
using System.Text.Json;
using Virtnet.Datapaths;
using Virtnet.Namespaces;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Datapaths;

public class ExtraDevicesTests
{
    private static readonly string[] Devices = ["xd0", "xd1", "xd2"];

    [SkippableFact]
    public void ExtraDevices_FollowMtuAndCarrier_SeenByHandlers_DeletionEndsTheBinding()
    {
        Root.Require();
        using var pair = TestNetns.Pair("xd");
        var (a, b) = pair;
        using var ns = NetNamespace.Open(a.Path);
        var ports = new Ports();
        var attachment = ns.Run(() => Attachment.Create(new AttachOptions
        {
            RealDevice = "va",
            Name = "xd0",
            Datapath = DatapathKind.User,
            ExtraDevices = ["xd1", "xd2"],
            Handlers = [ports],
        }));
        using var stop = new CancellationTokenSource();
        try
        {
            Assert.Equal(["xd0", "xd1", "xd2"], attachment.Ports.Select(p => p.Name));
            Assert.Equal(["va", "xd0", "xd1", "xd2"], ports.Seen!.Select(p => p.Name));
            Assert.Equal([0, 1, 2, 3], ports.Seen!.Select(p => p.Index));
            Assert.Equal(3, attachment.Ports.Select(p => Convert.ToHexString(p.Mac)).Distinct().Count());
            var running = ns.Run(() => attachment.RunAsync(stop.Token));

            JsonElement Link(string name) => JsonDocument.Parse(a.Exec("ip", "-j", "link", "show", name)).RootElement[0];
            bool Follows(Func<JsonElement, bool> check)
            {
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (DateTime.UtcNow < deadline)
                {
                    if (Devices.All(n => check(Link(n))))
                    {
                        return true;
                    }

                    Thread.Sleep(50);
                }

                return false;
            }

            Assert.True(Follows(l => Flag(l, "LOWER_UP")), a.Exec("ip", "link"));
            a.Exec("ip", "link", "set", "va", "mtu", "1400");
            Assert.True(Follows(l => l.GetProperty("mtu").GetInt32() == 1400), a.Exec("ip", "link"));
            b.Exec("ip", "link", "set", "vb", "down");
            Assert.True(Follows(l => Flag(l, "NO-CARRIER") && !Flag(l, "LOWER_UP")), a.Exec("ip", "link"));
            b.Exec("ip", "link", "set", "vb", "up");
            Assert.True(Follows(l => Flag(l, "LOWER_UP")), a.Exec("ip", "link"));

            a.Exec("ip", "link", "del", "xd2");
            Assert.True(running.Wait(TimeSpan.FromSeconds(10)), "the binding goes on without xd2");
            Assert.Equal("xd2 was deleted", running.Result);
        }
        finally
        {
            stop.Cancel();
            attachment.Dispose();
        }

        Assert.DoesNotContain("xd0", a.Exec("ip", "link"), StringComparison.Ordinal);
        Assert.DoesNotContain("xd1", a.Exec("ip", "link"), StringComparison.Ordinal);
    }

    [SkippableFact]
    public void ExtraDevices_OnTheKernelDatapath_RefusedWithNothingMade()
    {
        Root.Require();
        using var pair = TestNetns.Pair("xdk");
        var (a, b) = pair;
        using var ns = NetNamespace.Open(a.Path);
        string before = a.Exec("ip", "-o", "link");
        var e = Assert.Throws<VirtnetException>(() => ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Name = "xk0", ExtraDevices = ["xk1"] })));
        Assert.Contains("xk1: further virtual devices get frames from handlers, which run on the user datapath only", e.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<VirtnetException>(() => ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Name = "xk0", Datapath = DatapathKind.User, ExtraDevices = ["xk0"] })));
        Assert.Contains("xk0: named twice among the binding's devices", twice.Message, StringComparison.Ordinal);
        Assert.Equal(before, a.Exec("ip", "-o", "link"));
    }

    private static bool Flag(JsonElement link, string flag) => link.GetProperty("flags").EnumerateArray().Any(f => f.GetString() == flag);

    private sealed class Ports : IFrameHandler
    {
        public IReadOnlyList<HandlerPort>? Seen { get; private set; }

        public void OnStart(HandlerContext context) => Seen = context.Ports;

        public Verdict OnFrame(ref Frame frame) => Verdict.Pass;
    }
}
