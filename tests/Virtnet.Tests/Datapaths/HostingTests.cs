// services.AddVirtnet(...): the hosted service makes the binding when started (in the caller's namespace, where the
// real device is), lists it in VirtnetBindings, forwards, stops the application when the real device goes, and
// undoes everything when stopped. Driven through the services directly, without a console lifetime that would take
// the test host's signals.
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Virtnet.Hosting;
using Virtnet.Namespaces;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Datapaths;

public class HostingTests
{
    private sealed class Lifetime : IHostApplicationLifetime
    {
        public ManualResetEventSlim Stopped { get; } = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication() => Stopped.Set();
    }

    [SkippableFact]
    public void AddVirtnet_StartMakesIt_ItForwards_RemovalStopsTheApp_StopUndoesIt()
    {
        Root.Require();
        using var pair = TestNetns.Pair("hs", "10.200.71.2/24");
        var (a, b) = pair;
        var lifetime = new Lifetime();
        using var services = new ServiceCollection()
            .AddLogging()
            .AddSingleton<IHostApplicationLifetime>(lifetime)
            .AddVirtnet(new AttachOptions { RealDevice = "va", Name = "vhost0" })
            .BuildServiceProvider();
        var hosted = Assert.Single(services.GetServices<IHostedService>());
        using var ns = NetNamespace.Open(a.Path);
        ns.Run(() => hosted.StartAsync(CancellationToken.None).GetAwaiter().GetResult());
        try
        {
            var live = Assert.Single(services.GetRequiredService<VirtnetBindings>().Live);
            Assert.Equal("vhost0", live.VirtualName);
            a.Exec("ip", "addr", "add", "10.200.71.1/24", "dev", "vhost0");
            var r = b.Try("ping", "-c", "2", "-i", "0.2", "-W", "2", "10.200.71.1");
            Assert.True(r.ExitCode == 0, r.All);

            a.Exec("ip", "link", "del", "va");
            Assert.True(lifetime.Stopped.Wait(TimeSpan.FromSeconds(10)), "the application was not asked to stop when the real device went");
        }
        finally
        {
            hosted.StopAsync(CancellationToken.None).GetAwaiter().GetResult();
        }

        Assert.Empty(services.GetRequiredService<VirtnetBindings>().Live);
        Assert.NotEqual(0, a.Try("ip", "link", "show", "vhost0").ExitCode);
    }
}
