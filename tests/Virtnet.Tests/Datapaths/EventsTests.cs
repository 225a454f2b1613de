// Typed events and RunAsync: an in-process binding follows its real device on a thread of its own and says so
// through MtuChanged, CarrierChanged, RealDeviceRenamed and RealDeviceRemoved, and RunAsync completes with why it
// ended once the real device is gone.
using System.Collections.Concurrent;
using Virtnet.Datapaths;
using Virtnet.Namespaces;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Datapaths;

public class EventsTests
{
    [SkippableFact]
    public void Events_MtuCarrierRenameRemoval_AndRunAsyncEnds()
    {
        Root.Require();
        using var pair = TestNetns.Pair("ev");
        var (a, b) = pair;
        using var ns = NetNamespace.Open(a.Path);
        var attachment = ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Name = "vevents0" }));
        var seen = new BlockingCollection<string>();
        attachment.MtuChanged += mtu => seen.Add($"mtu {mtu}");
        attachment.CarrierChanged += on => seen.Add($"carrier {(on ? "on" : "off")}");
        attachment.RealDeviceRenamed += name => seen.Add($"renamed {name}");
        attachment.RealDeviceRemoved += () => seen.Add("removed");
        using var stop = new CancellationTokenSource();
        try
        {
            // Opened where the binding lives, so that its link notifications are that namespace's.
            var running = ns.Run(() => attachment.RunAsync(stop.Token));

            string Next()
            {
                Assert.True(seen.TryTake(out var e, TimeSpan.FromSeconds(10)), "no event within 10 s");
                return e!;
            }

            a.Exec("ip", "link", "set", "va", "mtu", "1400");
            Assert.Equal("mtu 1400", Next());
            b.Exec("ip", "link", "set", "vb", "down");
            Assert.Equal("carrier off", Next());
            b.Exec("ip", "link", "set", "vb", "up");
            Assert.Equal("carrier on", Next());
            a.Exec("ip", "link", "set", "va", "name", "vaev");
            Assert.Equal("renamed vaev", Next());
            a.Exec("ip", "link", "del", "vaev");
            string last = Next();
            if (last == "carrier off")
            {
                last = Next(); // a veth loses its carrier on its way out
            }

            Assert.Equal("removed", last);
            Assert.True(running.Wait(TimeSpan.FromSeconds(10)));
            Assert.Equal("vaev disappeared", running.Result);
        }
        finally
        {
            stop.Cancel();
            attachment.Dispose();
        }
    }
}
