// The Virtnet meter as any System.Diagnostics.Metrics listener sees it (dotnet-counters, OpenTelemetry, a
// MeterListener in the host application): an in-process binding whose handler drops echo requests reports its
// frames and bytes per direction and its drops with the reason "handler", and leaves the meter when disposed.
using System.Diagnostics.Metrics;
using Virtnet.Datapaths;
using Virtnet.Namespaces;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Datapaths;

public class MeterTests
{
    /// <summary>Drops the echo requests that come in, with <paramref name="reason"/>.</summary>
    internal sealed class DropEchoRequests(string reason = "echo request") : IFrameHandler
    {
        public Verdict OnFrame(ref Frame frame)
        {
            if (HandlerTests.IsIncomingEchoRequest(ref frame))
            {
                frame.DropReason = reason;
                return Verdict.Consumed;
            }

            return Verdict.Pass;
        }
    }

    /// <summary>One collection of the Virtnet meter: (instrument, binding, direction, reason) → value.</summary>
    private static Dictionary<(string Instrument, string Binding, string Direction, string Reason), long> Collect()
    {
        var values = new Dictionary<(string, string, string, string), long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == VirtnetMeter.Name)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string binding = "", direction = "", reason = "";
            foreach (var t in tags)
            {
                string text = t.Value?.ToString() ?? "";
                switch (t.Key)
                {
                    case "binding": binding = text; break;
                    case "direction": direction = text; break;
                    case "reason": reason = text; break;
                }
            }

            values[(instrument.Name, binding, direction, reason)] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return values;
    }

    [SkippableFact]
    public void Binding_FramesBytesAndDropsByReason_UntilDisposed()
    {
        Root.Require();
        using var a = new TestNetns("mtra");
        using var b = new TestNetns("mtrb");
        TestNetns.AddVeth(a, "va", b, "vb");
        a.Exec("ip", "link", "set", "va", "up");
        b.Exec("ip", "link", "set", "vb", "up");
        b.Exec("ip", "addr", "add", "10.200.67.2/24", "dev", "vb");
        using var ns = NetNamespace.Open(a.Path);
        var attachment = ns.Run(() => Attachment.Create(new AttachOptions { RealDevice = "va", Name = "vmeter0", Datapath = DatapathKind.User, Handlers = [new DropEchoRequests()] }));
        try
        {
            a.Exec("ip", "addr", "add", "10.200.67.1/24", "dev", "vmeter0");
            Assert.Equal(0, a.Try("ping", "-c", "3", "-i", "0.2", "-W", "1", "10.200.67.2").ExitCode);
            Assert.NotEqual(0, b.Try("ping", "-c", "2", "-i", "0.2", "-W", "1", "10.200.67.1").ExitCode);

            var values = Collect();
            var counters = attachment.ReadCounters();
            Assert.True(values.GetValueOrDefault(("virtnet.frames", "vmeter0", "ingress", "")) >= 3, string.Join("; ", values));
            Assert.True(values.GetValueOrDefault(("virtnet.frames", "vmeter0", "egress", "")) >= 3, string.Join("; ", values));
            Assert.True(values.GetValueOrDefault(("virtnet.bytes", "vmeter0", "ingress", "")) >= 3 * 98, string.Join("; ", values));
            Assert.True(values.GetValueOrDefault(("virtnet.drops", "vmeter0", "ingress", "handler")) >= 2, string.Join("; ", values));
            Assert.InRange(values[("virtnet.frames", "vmeter0", "ingress", "")], 0, (long)counters.Ingress.Frames); // read after: never less
        }
        finally
        {
            attachment.Dispose();
        }

        Assert.DoesNotContain(Collect().Keys, k => k.Binding == "vmeter0");
    }
}
