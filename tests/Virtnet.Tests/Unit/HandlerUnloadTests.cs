// Plugin handlers are unloaded when virtnet is done with them (HandlerPlugins.Unload): a started handler that holds
// a Meter with an observable instrument (the ProtocolCounter sample) is disposed, which ends its instrument, and its
// collectible context is then collected. No device, no root.
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Virtnet.Cli;
using Virtnet.Datapaths;
using Virtnet.Tests.Integration;
using Xunit;

namespace Virtnet.Tests.Unit;

public class HandlerUnloadTests
{
    [Fact]
    public void Unload_DisposesAStartedHandler_AndItsContextIsCollected()
    {
        var (context, ended) = LoadStartUnload();
        Assert.Equal(1, ended);
        for (int i = 0; i < 20 && context.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.False(context.IsAlive, "the handler's context is still loaded");
    }

    [Fact]
    public void Unload_LeavesHandlersNotFromAPlugin()
    {
        var mine = new Counting();
        Assert.False(HandlerPlugins.Unload([mine]));
        Assert.False(mine.Disposed);
    }

    // Apart, so that no local of the test keeps the handler (and with it the context) alive.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (WeakReference Context, int Ended) LoadStartUnload()
    {
        var handlers = HandlerPlugins.Load([SamplesTests.Sample("ProtocolCounter")], new Dictionary<string, string>());
        handlers[0].OnStart(new HandlerContext([new HandlerPort(0, "va", new byte[6]), new HandlerPort(1, "v0", new byte[6])], 1500, 2, _ => { }));
        int ended = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "virtnet.sample.protocol.frames")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
            MeasurementsCompleted = (instrument, _) => ended += instrument.Name == "virtnet.sample.protocol.frames" ? 1 : 0,
        };
        listener.Start();
        var context = new WeakReference(AssemblyLoadContext.GetLoadContext(handlers[0].GetType().Assembly));
        Assert.True(HandlerPlugins.Unload(handlers));
        Assert.False(HandlerPlugins.Unload(handlers)); // once
        return (context, ended);
    }

    private sealed class Counting : IFrameHandler, IDisposable
    {
        public bool Disposed { get; private set; }

        public Verdict OnFrame(ref Frame frame) => Verdict.Pass;

        public void Dispose() => Disposed = true;
    }
}
