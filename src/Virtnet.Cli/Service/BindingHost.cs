// The bindings one virtnet process runs (one for attach, several for run --config): each on a thread of its own
// that follows the real device until it is stopped, then undoes it and prints its last lines. The host also keeps a
// one-second sample of every binding's counters, so show and stats give current rates without waiting.
using Microsoft.Extensions.Logging;
using Virtnet.Datapaths;
using Virtnet.Netlink;

namespace Virtnet.Cli.Service;

/// <summary>One running binding.</summary>
internal sealed class HostedBinding : IDisposable
{
    private readonly CancellationTokenSource _stop = new();

    public HostedBinding(Attachment attachment, string identity, string? fingerprint, (string? Name, string Id) netns)
    {
        Attachment = attachment;
        Identity = identity;
        Fingerprint = fingerprint;
        (Netns, NetnsId) = netns;
        Since = DateTimeOffset.UtcNow;
    }

    public Attachment Attachment { get; }

    /// <summary>What a config entry calls it across reloads.</summary>
    public string Identity { get; }

    /// <summary>The config entry's settings, to tell a changed entry on reload; null outside run.</summary>
    public string? Fingerprint { get; }

    /// <summary>Its namespace as show prints it (null: the host's).</summary>
    public string? Netns { get; }

    /// <summary>Its namespace's identity, "net:[inode]".</summary>
    public string NetnsId { get; }

    public DateTimeOffset Since { get; }

    public Thread? Thread { get; set; }

    /// <summary>Its handlers (those loaded from plugins are unloaded once it is undone).</summary>
    public IReadOnlyList<Virtnet.Datapaths.IFrameHandler> Handlers { get; init; } = [];

    /// <summary>Set once it has stopped: null for a requested stop, else why it could not go on.</summary>
    public string? Failure { get; set; }

    /// <summary>Its last line ("... stopped: counters"), once stopped.</summary>
    public string? StoppedLine { get; set; }

    public ManualResetEventSlim Stopped { get; } = new();

    public CancellationToken Token => _stop.Token;

    // The last one-second sample, for rates.
    public DatapathCounters Sample { get; set; }

    public long SampleTicks { get; set; } = System.Diagnostics.Stopwatch.GetTimestamp();

    public DatapathCounters PreviousSample { get; set; }

    public long PreviousSampleTicks { get; set; } = System.Diagnostics.Stopwatch.GetTimestamp();

    public void RequestStop() => _stop.Cancel();

    public void Dispose()
    {
        _stop.Dispose();
        Stopped.Dispose();
    }

    /// <summary>True if <paramref name="name"/> (NAME, or NETNS/NAME with the namespace's name, its identity, or - for the host's) names this binding.</summary>
    public bool IsNamed(string name)
    {
        int slash = name.LastIndexOf('/');
        if (slash < 0)
        {
            return name == Attachment.VirtualName;
        }

        string ns = name[..slash];
        return name[(slash + 1)..] == Attachment.VirtualName && (ns == NetnsId || ns == (Netns ?? "-"));
    }
}

/// <summary>The bindings of this process, what show/stats/detach see, and when the process has none left.</summary>
internal sealed class BindingHost : IDisposable
{
    private readonly object _gate = new();
    private readonly List<HostedBinding> _bindings = [];
    private readonly TextWriter _output;
    private readonly ILogger _log;
    private readonly Timer _sampler;
    private readonly TimeSpan _statsInterval;
    private readonly int _pid = Environment.ProcessId;
    private int _failures;

    public BindingHost(TextWriter output, ILogger log, TimeSpan statsInterval = default)
    {
        _output = output;
        _log = log;
        _statsInterval = statsInterval;
        _sampler = new Timer(_ => SampleAll(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Runs on each new binding before its ready line (attach drops capabilities there); throwing undoes it.</summary>
    public Action<Attachment>? BeforeReady { get; init; }

    /// <summary>Set whenever a binding has stopped (the process may have none left).</summary>
    public AutoResetEvent Changed { get; } = new(false);

    /// <summary>How many bindings stopped because they could not go on.</summary>
    public int Failures => Volatile.Read(ref _failures);

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _bindings.Count;
            }
        }
    }

    public IReadOnlyList<HostedBinding> Bindings
    {
        get
        {
            lock (_gate)
            {
                return [.. _bindings];
            }
        }
    }

    /// <summary>Makes a binding (throws, having undone it, if it cannot be made), prints its ready line and starts it.</summary>
    public HostedBinding Start(AttachOptions options, string? identity = null, string? fingerprint = null, TimeSpan statsInterval = default)
    {
        Attachment attachment;
        try
        {
            attachment = Attachment.Create(options);
        }
        catch
        {
            HandlerPlugins.Unload(options.Handlers);
            throw;
        }

        HostedBinding binding;
        LinkMonitor? monitor = null;
        try
        {
            // Subscribed before the ready line: a change made the moment after it is seen.
            monitor = LinkMonitor.Open();
            binding = new HostedBinding(attachment, identity ?? attachment.VirtualName, fingerprint, NetnsNames.Identify(options.Netns)) { Handlers = options.Handlers };
            binding.Sample = binding.PreviousSample = attachment.ReadCounters();
            BeforeReady?.Invoke(attachment);
        }
        catch
        {
            monitor?.Dispose();
            attachment.Dispose();
            HandlerPlugins.Unload(options.Handlers);
            throw;
        }

        lock (_gate)
        {
            _bindings.Add(binding);
            lock (_output)
            {
                _output.WriteLine(Cli.ReadyLine(attachment));
                _output.Flush();
            }
        }

        var interval = statsInterval > TimeSpan.Zero ? statsInterval : _statsInterval;
        binding.Thread = new Thread(() => Follow(binding, monitor, interval)) { Name = $"virtnet {attachment.VirtualName}", IsBackground = true };
        binding.Thread.Start();
        return binding;
    }

    /// <summary>Stops one binding and waits until it is undone; its last line, or null if it was not ours.</summary>
    public static string? Stop(HostedBinding binding, TimeSpan timeout)
    {
        binding.RequestStop();
        return binding.Stopped.Wait(timeout) ? binding.StoppedLine : null;
    }

    /// <summary>Stops every binding, in parallel, and waits for them.</summary>
    public void StopAll(TimeSpan timeout)
    {
        var all = Bindings;
        foreach (var b in all)
        {
            b.RequestStop();
        }

        foreach (var b in all)
        {
            b.Stopped.Wait(timeout);
        }
    }

    /// <summary>The bindings <paramref name="name"/> names (NAME or NETNS/NAME).</summary>
    public IReadOnlyList<HostedBinding> Find(string name) => Bindings.Where(b => b.IsNamed(name)).ToList();

    /// <summary>What show says of a binding now.</summary>
    public BindingStatus Status(HostedBinding binding)
    {
        var a = binding.Attachment;
        DatapathCounters sample, earlier;
        double seconds;
        lock (binding)
        {
            sample = binding.Sample;
            earlier = binding.PreviousSample;
            seconds = (binding.SampleTicks - binding.PreviousSampleTicks) / (double)System.Diagnostics.Stopwatch.Frequency;
        }

        // Totals as of now; rates over the last one-second sample.
        DatapathCounters now;
        try
        {
            now = a.ReadCounters();
        }
        catch (VirtnetException)
        {
            now = sample;
        }

        DirectionStatus Side(Direction d)
        {
            var rates = BindingStatus.Direction(sample, d, d == Direction.Ingress ? earlier.Ingress : earlier.Egress, seconds);
            return BindingStatus.Direction(now, d, default, 0) with { FramesPerSecond = rates.FramesPerSecond, BitsPerSecond = rates.BitsPerSecond };
        }

        return new BindingStatus
        {
            Name = a.VirtualName,
            Real = a.RealName,
            Netns = binding.Netns,
            NetnsId = binding.NetnsId,
            Datapath = a.Datapath == DatapathKind.Kernel ? "kernel" : "user",
            Mode = a.Mirror != MirrorDirections.None ? "mirror" : a.Mode.ToString().ToLowerInvariant(),
            Mirror = a.Mirror switch
            {
                MirrorDirections.None => null,
                MirrorDirections.Ingress => "ingress",
                MirrorDirections.Egress => "egress",
                _ => "both",
            },
            Mac = Cli.FormatMac(a.VirtualMac),
            Vlan = a.Vlan == 0 ? null : a.Vlan,
            Filter = a.Filter,
            PrivateDevices = a.PrivateDevices,
            ExtraDevices = [.. a.Ports.Skip(1).Select((d, i) => new ExtraDeviceStatus(i + 2, d.Name, Cli.FormatMac(d.Mac)))],
            HandlerEmitted = now.HandlerEmitted,
            HandlerEmitFailed = now.HandlerEmitFailed,
            Pid = _pid,
            Since = binding.Since.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
            Ingress = Side(Direction.Ingress),
            Egress = Side(Direction.Egress),
        };
    }

    private void SampleAll()
    {
        foreach (var b in Bindings)
        {
            try
            {
                var counters = b.Attachment.ReadCounters();
                long ticks = System.Diagnostics.Stopwatch.GetTimestamp();
                lock (b)
                {
                    b.PreviousSample = b.Sample;
                    b.PreviousSampleTicks = b.SampleTicks;
                    b.Sample = counters;
                    b.SampleTicks = ticks;
                }
            }
            catch (VirtnetException)
            {
                // Going away: its last line has the final counters.
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private void Follow(HostedBinding binding, LinkMonitor monitor, TimeSpan statsInterval)
    {
        var a = binding.Attachment;
        string? failure;
        try
        {
            using (statsInterval > TimeSpan.Zero ? new StatsReporter(a, _output, statsInterval) : null)
            {
                failure = a.Run(monitor, binding.Token, line => _log.Info(line));
            }
        }
        catch (VirtnetException e)
        {
            failure = Cli.Sentence(e);
        }
        catch (Exception e)
        {
            failure = $"internal error, please report it: {e}";
        }

        DatapathCounters counters = default;
        try
        {
            counters = a.ReadCounters();
        }
        catch (VirtnetException)
        {
        }

        lock (_gate)
        {
            _bindings.Remove(binding);
        }

        try
        {
            a.Dispose();
        }
        catch (Exception e)
        {
            failure ??= $"could not undo everything: {e.Message}";
        }

        // Its forwarders are gone: nothing runs its handlers' code any more.
        HandlerPlugins.Unload(binding.Handlers);

        binding.StoppedLine = $"{a.VirtualName} stopped: {Cli.FormatCounters(counters)}{Cli.FormatCauses(counters)}";
        binding.Failure = failure;
        lock (_output)
        {
            _output.WriteLine(binding.StoppedLine);
            _output.Flush();
        }

        if (failure is not null)
        {
            Interlocked.Increment(ref _failures);
            _log.Error($"{failure}; {a.VirtualName} removed and {a.RealName} given back");
        }

        binding.Stopped.Set();
        Changed.Set();
    }

    public void Dispose()
    {
        _sampler.Dispose();
        StopAll(TimeSpan.FromSeconds(30));
    }
}
