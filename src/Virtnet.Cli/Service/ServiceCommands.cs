// The commands that see and steer bindings from any shell (show, stats, detach), and run, which hosts the bindings
// of a config file in one process and re-reads it on SIGHUP.
using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Virtnet.Cli.Config;

namespace Virtnet.Cli.Service;

internal static class ServiceCommands
{
    public static Command BuildShow()
    {
        var json = JsonOption();
        var command = new Command("show", "List every binding running on this host, from any virtnet process: devices, namespace, datapath, mode, MAC, VLAN, filter, pid, since, and counters per direction.")
        {
            json,
        };
        command.SetAction(parse => Client("show", Console.Error, () => Show(parse.GetValue(json), Console.Out)));
        return command;
    }

    public static Command BuildStats()
    {
        var name = new Argument<string>("name") { Description = "the binding's virtual device, or NETNS/NAME when the name is in use in several namespaces" };
        var json = JsonOption();
        var watch = new Option<double?>("--watch") { Description = "print again every this many seconds until interrupted, with the rates over each interval" };
        var command = new Command("stats", "Print a binding's counters per direction, its drops by reason, and its current rates.")
        {
            name, json, watch,
        };
        command.SetAction(parse =>
        {
            double? every = parse.GetValue(watch);
            if (every is { } s && !(s >= 0.1 && s <= 86400))
            {
                Console.Error.WriteLine($"virtnet: --watch {s.ToString(CultureInfo.InvariantCulture)} is out of range; give seconds from 0.1 to 86400, e.g. 1");
                return Cli.ExitUsage;
            }

            return Client("stats", Console.Error, () => Stats(parse.GetValue(name)!, parse.GetValue(json), every, Console.Out, Console.Error));
        });
        return command;
    }

    public static Command BuildDetach()
    {
        var name = new Argument<string>("name") { Description = "the binding's virtual device, or NETNS/NAME" };
        var command = new Command("detach", "Stop a binding cleanly, in whichever process runs it; a process left with no binding exits 0.")
        {
            name,
        };
        command.SetAction(parse => Client("detach", Console.Error, () => Detach(parse.GetValue(name)!, Console.Out, Console.Error)));
        return command;
    }

    public static Command BuildRun()
    {
        var config = new Option<string>("--config", "-c") { Description = "a TOML file with one [[binding]] table per binding (keys: real, and attach's long option names)", Required = true };
        var command = new Command("run", "Run the bindings of a config file in this process until SIGINT or SIGTERM; SIGHUP re-reads the file and adds, removes or re-creates what changed.")
        {
            config,
        };
        command.SetAction(parse =>
        {
            using var logs = Cli.Logs(parse);
            return Run(parse.GetValue(config)!, Console.Out, Console.Error, logs);
        });
        return command;
    }

    private static Option<bool> JsonOption() => new("--json", "-j") { Description = "JSON, with the field names of docs/service.md" };

    /// <summary>Runs a client command: the one sentence for a caller who may not read the sockets.</summary>
    private static int Client(string command, TextWriter error, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (UnauthorizedAccessException)
        {
            error.WriteLine($"virtnet: {ControlPaths.NotRoot(command)}");
            return Cli.ExitFailure;
        }
    }

    /// <summary>Every binding of every process, with namespace names as this shell sees them.</summary>
    internal static List<(int Pid, BindingStatus Binding)> All()
        => ControlClient.AskAll(new ControlRequest { Command = "show" })
            .SelectMany(r => r.Reply.Bindings.Select(b => (r.Pid, Binding: b with { Netns = NetnsNames.NameFor(b.Netns, b.NetnsId) })))
            .ToList();

    internal static int Show(bool json, TextWriter output)
    {
        var bindings = All()
            .Select(x => x.Binding)
            .OrderBy(b => b.Netns ?? "", StringComparer.Ordinal)
            .ThenBy(b => b.Name, StringComparer.Ordinal)
            .ToList();
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new ShowOutput { Bindings = bindings }, ControlJson.Indented.ShowOutput));
            return Cli.ExitOk;
        }

        output.Write(Table(bindings));
        return Cli.ExitOk;
    }

    /// <summary>show's columns, aligned like `ip -br`: a header, then one line a binding; nothing when there is none.</summary>
    internal static string Table(IReadOnlyList<BindingStatus> bindings)
    {
        if (bindings.Count == 0)
        {
            return "";
        }

        string[] header = ["NAME", "REAL", "NETNS", "DATAPATH", "MODE", "MAC", "VLAN", "PID", "SINCE", "RX-FRAMES", "RX-BYTES", "RX-DROPS", "TX-FRAMES", "TX-BYTES", "TX-DROPS", "FILTER"];
        var rows = new List<string[]> { header };
        rows.AddRange(bindings.Select(b => new[]
        {
            b.Name, b.Real, b.Netns ?? "-", b.Datapath, b.Mirror is { } m ? $"mirror:{m}" : b.Mode, b.Mac, b.Vlan?.ToString(CultureInfo.InvariantCulture) ?? "-",
            b.Pid.ToString(CultureInfo.InvariantCulture), b.Since.Length > 19 ? b.Since[..19] + "Z" : b.Since,
            N(b.Ingress.Frames), N(b.Ingress.Bytes), N(b.Ingress.Drops), N(b.Egress.Frames), N(b.Egress.Bytes), N(b.Egress.Drops),
            b.Filter ?? "-",
        }));
        var widths = Enumerable.Range(0, header.Length).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var text = new StringBuilder();
        foreach (var row in rows)
        {
            // The last column (the filter) is not padded: no trailing blanks.
            text.AppendJoin("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).Append('\n');
        }

        return text.ToString();

        static string N(ulong value) => value.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The one binding <paramref name="name"/> names, with its process; a sentence when there is none or several.</summary>
    internal static (int Pid, BindingStatus Binding)? Resolve(string name, TextWriter error)
    {
        int slash = name.LastIndexOf('/');
        var found = All().Where(x => slash < 0
            ? x.Binding.Name == name
            : x.Binding.Name == name[(slash + 1)..] && name[..slash] is var ns && (ns == (x.Binding.Netns ?? "-") || ns == x.Binding.NetnsId)).ToList();
        if (found.Count == 1)
        {
            return found[0];
        }

        if (found.Count == 0)
        {
            error.WriteLine($"virtnet: {name}: no such binding; 'virtnet show' lists the bindings running on this host");
            return null;
        }

        string where = string.Join(", ", found.Select(f => $"{f.Binding.Netns ?? "-"}/{f.Binding.Name} (pid {f.Pid})"));
        error.WriteLine($"virtnet: {name} names {found.Count} bindings: {where}; name one as NETNS/NAME ('-' for the host's namespace)");
        return null;
    }

    internal static int Stats(string name, bool json, double? watch, TextWriter output, TextWriter error)
    {
        if (Resolve(name, error) is not { } first)
        {
            return Cli.ExitFailure;
        }

        if (watch is null)
        {
            output.Write(json ? JsonSerializer.Serialize(first.Binding, ControlJson.Indented.BindingStatus) + "\n" : StatsText(first.Binding));
            return Cli.ExitOk;
        }

        // Watching: one line of JSON (or one block of text) per interval, with the rates over that interval.
        using var stop = new CancellationTokenSource();
        using var signals = new StopOnSignals(stop);
        string exact = $"{first.Binding.NetnsId}/{first.Binding.Name}";
        var last = first.Binding;
        long lastTicks = System.Diagnostics.Stopwatch.GetTimestamp();
        output.Write(json ? JsonSerializer.Serialize(last, ControlJson.Default.BindingStatus) + "\n" : StatsText(last));
        output.Flush();
        while (!stop.Token.WaitHandle.WaitOne(TimeSpan.FromSeconds(watch.Value)))
        {
            var now = ControlClient.AskOne(first.Pid, new ControlRequest { Command = "stats", Name = exact })?.Bindings
                .Select(b => b with { Netns = first.Binding.Netns })
                .FirstOrDefault(b => b.Since == first.Binding.Since);
            if (now is null)
            {
                error.WriteLine($"virtnet: {name} has stopped");
                return Cli.ExitFailure;
            }

            long ticks = System.Diagnostics.Stopwatch.GetTimestamp();
            double seconds = (ticks - lastTicks) / (double)System.Diagnostics.Stopwatch.Frequency;
            now = now with { Ingress = WithRates(now.Ingress, last.Ingress, seconds), Egress = WithRates(now.Egress, last.Egress, seconds) };
            output.Write(json ? JsonSerializer.Serialize(now, ControlJson.Default.BindingStatus) + "\n" : StatsText(now));
            output.Flush();
            (last, lastTicks) = (now, ticks);
        }

        return Cli.ExitOk;
    }

    private static DirectionStatus WithRates(DirectionStatus now, DirectionStatus last, double seconds) => now with
    {
        FramesPerSecond = Math.Round((now.Frames - Math.Min(now.Frames, last.Frames)) / seconds, 1),
        BitsPerSecond = Math.Round((now.Bytes - Math.Min(now.Bytes, last.Bytes)) * 8 / seconds, 0),
    };

    /// <summary>stats' text: a title line, then per direction the counters, the rates, and the drops by reason.</summary>
    internal static string StatsText(BindingStatus b)
    {
        var text = new StringBuilder();
        string where = b.Netns is { } ns ? $" in {ns}" : "";
        text.Append(CultureInfo.InvariantCulture, $"{b.Name}{where}: {b.Real} <-> {b.Name}, {b.Datapath} datapath, {(b.Mirror is { } m ? $"mirror of {m}" : b.Mode)}, pid {b.Pid}, since {b.Since}\n");
        foreach (var (label, d) in new[] { ("ingress", b.Ingress), ("egress", b.Egress) })
        {
            text.Append(CultureInfo.InvariantCulture, $"  {label,-7} {d.Frames} frames {d.Bytes} bytes {d.Drops} dropped; now {d.FramesPerSecond:0.#} frames/s {d.BitsPerSecond / 1e6:0.###} Mbit/s\n");
            foreach (var (reason, frames) in d.DropReasons)
            {
                text.Append(CultureInfo.InvariantCulture, $"          dropped {frames} {BindingStatus.ReasonText(reason)}\n");
                if (reason == BindingStatus.ReasonKey(Virtnet.Datapaths.DropCause.Handler))
                {
                    foreach (var (why, n) in d.HandlerReasons)
                    {
                        text.Append(CultureInfo.InvariantCulture, $"            {n} {why}\n");
                    }
                }
            }
        }

        if (b.HandlerEmitted + b.HandlerEmitFailed > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"  handlers emitted {b.HandlerEmitted} frames; {b.HandlerEmitFailed} more could not be sent\n");
        }

        return text.ToString();
    }

    internal static int Detach(string name, TextWriter output, TextWriter error)
    {
        if (Resolve(name, error) is not { } target)
        {
            return Cli.ExitFailure;
        }

        string exact = $"{target.Binding.NetnsId}/{target.Binding.Name}";
        var reply = ControlClient.AskOne(target.Pid, new ControlRequest { Command = "detach", Name = exact });
        if (reply is null)
        {
            error.WriteLine($"virtnet: {name}: its process (pid {target.Pid}) did not answer; it may have stopped meanwhile ('virtnet show' lists what runs)");
            return Cli.ExitFailure;
        }

        if (reply.Error is { } e)
        {
            error.WriteLine($"virtnet: {name}: {e}");
            return Cli.ExitFailure;
        }

        output.WriteLine(reply.Stopped ?? $"{target.Binding.Name} stopped");
        return Cli.ExitOk;
    }

    private static BrokerProcess StartBroker(ILogger log)
    {
        var broker = BrokerProcess.Start();
        log.Debug($"privilege broker started (pid {broker.Pid}); it keeps {Native.Capabilities.Describe(BrokerProcess.Keeps)}");
        return broker;
    }

    /// <summary>run --config: every binding of the file, SIGHUP to re-read it, until SIGINT/SIGTERM or none is left.</summary>
    internal static int Run(string file, TextWriter output, TextWriter error, ILoggerFactory logs)
    {
        var log = logs.CreateLogger("virtnet");
        using var stop = new CancellationTokenSource();
        using var hangup = new AutoResetEvent(false);
        void OnStop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStop);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            hangup.Set();
        });

        ConfigDocument document;
        try
        {
            document = ConfigFile.LoadDocument(file);
        }
        catch (ConfigException e)
        {
            error.WriteLine($"virtnet: {e.Message}");
            return Cli.ExitUsage;
        }

        var entries = document.Bindings;
        using var notifier = new SystemdNotifier(log);
        var metrics = new MetricsHolder();
        using var ownsMetrics = metrics;
        return Cli.Guard(error, null, () =>
        {
            // The endpoint before any binding: an address in use is refused with nothing made.
            if (document.Metrics is { } address)
            {
                try
                {
                    metrics.Endpoint = MetricsEndpoint.Start(address);
                    log.Info($"metrics for Prometheus at {metrics.Endpoint.Url}");
                }
                catch (VirtnetException e)
                {
                    error.WriteLine($"virtnet: {file}:{document.MetricsLine}: {e.Message}");
                    return Cli.ExitFailure;
                }
            }

            // run makes bindings now and on every reload: it keeps what setup needs, and no more, from the start;
            // what needs CAP_SYS_ADMIN (entering a namespace, opening BPF objects by id) it asks its broker for.
            using var broker = StartBroker(log);
            Privileges.Drop(Privileges.ForRun, log);
            using var host = new BindingHost(output, log);
            using var control = ControlServer.TryStart(host, log);
            foreach (var entry in entries)
            {
                try
                {
                    host.Start(entry.Options, entry.Identity, entry.Fingerprint, TimeSpan.FromSeconds(entry.StatsSeconds));
                }
                catch (VirtnetException e)
                {
                    host.StopAll(TimeSpan.FromSeconds(30));
                    error.WriteLine($"virtnet: {file}:{entry.Line}: {Cli.Sentence(e, entry.Options.Name)}; the bindings made before it were undone");
                    return Cli.ExitFailure;
                }

                if (stop.IsCancellationRequested)
                {
                    break;
                }
            }

            notifier.Ready(Summary(host));
            WaitHandle[] waits = [stop.Token.WaitHandle, hangup, host.Changed];
            while (!stop.IsCancellationRequested && host.Count > 0)
            {
                if (WaitHandle.WaitAny(waits) == 1 && !stop.IsCancellationRequested)
                {
                    notifier.Reloading();
                    Reload(file, host, log, metrics);
                    notifier.Ready(Summary(host));
                }
            }

            notifier.Stopping();
            host.StopAll(TimeSpan.FromSeconds(30));
            output.WriteLine($"virtnet process: {Cli.ProcessCost()}");
            return host.Failures > 0 ? Cli.ExitFailure : Cli.ExitOk;
        });
    }

    /// <summary>
    /// Re-reads the file: removes the bindings gone from it, re-creates the changed ones, adds the new ones, and leaves
    /// the unchanged ones forwarding. An invalid file changes nothing.
    /// </summary>
    internal static void Reload(string file, BindingHost host, ILogger log, MetricsHolder? metrics = null)
    {
        ConfigDocument document;
        try
        {
            document = ConfigFile.LoadDocument(file);
        }
        catch (ConfigException e)
        {
            log.Error($"{e.Message}; nothing was changed, the running bindings go on");
            return;
        }

        var entries = document.Bindings;
        if (metrics is not null && document.Metrics != metrics.Endpoint?.Address)
        {
            // The new endpoint first, then the old one goes: a new address that cannot be used keeps the old.
            try
            {
                var endpoint = document.Metrics is { } address ? MetricsEndpoint.Start(address) : null;
                metrics.Endpoint?.Dispose();
                metrics.Endpoint = endpoint;
                log.Info(endpoint is null ? "metrics endpoint closed" : $"metrics for Prometheus at {endpoint.Url}");
            }
            catch (VirtnetException e)
            {
                log.Error($"{file}:{document.MetricsLine}: {e.Message}; the metrics stay at {metrics.Endpoint?.Url ?? "no address"}");
            }
        }

        var running = host.Bindings.ToDictionary(b => b.Identity, StringComparer.Ordinal);
        var wanted = entries.ToDictionary(e => e.Identity, StringComparer.Ordinal);
        var removed = running.Values.Where(b => !wanted.ContainsKey(b.Identity)).ToList();
        var changed = running.Values.Where(b => wanted.TryGetValue(b.Identity, out var e) && e.Fingerprint != b.Fingerprint).ToList();
        int kept = running.Count - removed.Count - changed.Count;
        foreach (var b in removed.Concat(changed))
        {
            BindingHost.Stop(b, TimeSpan.FromSeconds(30));
        }

        int added = 0, recreated = 0, failed = 0;
        foreach (var entry in entries.Where(e => !running.TryGetValue(e.Identity, out var b) || changed.Contains(b)))
        {
            try
            {
                host.Start(entry.Options, entry.Identity, entry.Fingerprint, TimeSpan.FromSeconds(entry.StatsSeconds));
                if (running.ContainsKey(entry.Identity))
                {
                    recreated++;
                }
                else
                {
                    added++;
                }
            }
            catch (VirtnetException e)
            {
                failed++;
                log.Error($"{file}:{entry.Line}: {Cli.Sentence(e, entry.Options.Name)}; that binding is not running");
            }
        }

        // The handlers made to read the file for the unchanged bindings are not used: their plugins go, and so do those
        // of the bindings stopped above (unloaded as each was undone).
        bool unloaded = HandlerPlugins.Unload(entries.Where(e => running.TryGetValue(e.Identity, out var b) && !changed.Contains(b)).SelectMany(e => e.Options.Handlers));
        if (unloaded || removed.Concat(changed).Any(b => b.Handlers.Count > 0))
        {
            HandlerPlugins.Collect();
        }

        log.Info($"reloaded {file}: {added} added, {removed.Count} removed, {recreated} re-created, {kept} unchanged{(failed > 0 ? $", {failed} failed" : "")}");
    }

    /// <summary>systemd's STATUS= line: how many bindings and which.</summary>
    internal static string Summary(BindingHost host)
    {
        var names = host.Bindings.Select(b => $"{b.Attachment.VirtualName}<->{b.Attachment.RealName}").ToList();
        return names.Count == 1 ? $"1 binding: {names[0]}" : $"{names.Count} bindings: {string.Join(", ", names)}";
    }
}

/// <summary>run's metrics endpoint, which a reload may move.</summary>
internal sealed class MetricsHolder : IDisposable
{
    public MetricsEndpoint? Endpoint { get; set; }

    public void Dispose() => Endpoint?.Dispose();
}
