// --metrics ADDR:PORT: the Virtnet meter (every binding's frames, bytes and drops by reason) and the runtime's own
// (process CPU time and memory, from the "System.Runtime" meter) in Prometheus' text format at
// http://ADDR:PORT/metrics.
//
// OpenTelemetry's exporter rather than prometheus-net: virtnet's counters are System.Diagnostics.Metrics
// instruments already (VirtnetMeter, what dotnet-counters reads), and OpenTelemetry exports those as they are,
// where prometheus-net has its own metric types and would need them copied across. Its stand-alone HttpListener
// host needs no ASP.NET Core, and the whole stays clean under the trim and AOT analyzers. A scrape runs on the
// listener's thread and reads the bindings' counters then: nothing happens per frame.
using System.Globalization;
using System.Net;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Virtnet.Cli.Service;

internal sealed class MetricsEndpoint : IDisposable
{
    /// <summary>The runtime's own meter: the process's CPU time and memory, and its GC, JIT and thread pool.</summary>
    private const string RuntimeMeter = "System.Runtime";

    private readonly MeterProvider _provider;

    private MetricsEndpoint(MeterProvider provider, string address)
    {
        _provider = provider;
        Address = address;
    }

    /// <summary>ADDR:PORT as given.</summary>
    public string Address { get; }

    /// <summary>The scrape URL, for the log.</summary>
    public string Url => $"http://{Address}/metrics";

    /// <summary>ADDR:PORT (an IPv4 address, [IPv6], a host name, or * for every address) and a port from 1 to 65535; a usage error otherwise.</summary>
    public static (string Host, int Port) Parse(string value)
    {
        int colon = value.LastIndexOf(':');
        string host = colon > 0 ? value[..colon] : "";
        string portText = colon > 0 ? value[(colon + 1)..] : "";
        if (host.Length == 0 || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            throw new UsageException($"--metrics {value}: give ADDR:PORT, like 127.0.0.1:9464, [::1]:9464 or *:9464");
        }

        bool bracketed = host.StartsWith('[') && host.EndsWith(']');
        if (host.Contains(':', StringComparison.Ordinal) && !bracketed)
        {
            throw new UsageException($"--metrics {value}: put an IPv6 address in brackets, like [::1]:{port}");
        }

        if (host != "*" && !(bracketed ? IPAddress.TryParse(host[1..^1], out _) : IPAddress.TryParse(host, out _) || Uri.CheckHostName(host) == UriHostNameType.Dns))
        {
            throw new UsageException($"--metrics {value}: {host} is not an address or a host name; give ADDR:PORT, like 127.0.0.1:9464");
        }

        return (host, port);
    }

    /// <summary>Listens at <paramref name="value"/> (ADDR:PORT); a <see cref="VirtnetException"/> with one sentence if it cannot.</summary>
    public static MetricsEndpoint Start(string value)
    {
        var (host, port) = Parse(value);
        string listen = host is "0.0.0.0" or "[::]" ? "*" : host;
        MeterProvider? provider = null;
        try
        {
            provider = Sdk.CreateMeterProviderBuilder()
                .ConfigureResource(r => r.AddService("virtnet", serviceVersion: typeof(MetricsEndpoint).Assembly.GetName().Version?.ToString(3)))
                .AddMeter(VirtnetMeter.Name, RuntimeMeter)
                .AddPrometheusHttpListener(o =>
                {
                    o.Host = listen;
                    o.Port = port;
                    o.ScrapeEndpointPath = "/metrics";
                })
                .Build();
            return new MetricsEndpoint(provider, value);
        }
        catch (Exception e) when (e is HttpListenerException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            provider?.Dispose();
            var inner = e.InnerException ?? e;
            throw new VirtnetException(FailureKind.Unsuitable, "metrics", null, $"--metrics {value}: cannot listen there ({inner.Message.TrimEnd('.')}); choose another address or port", Native.Errno.EADDRINUSE);
        }
    }

    public void Dispose() => _provider.Dispose();
}
