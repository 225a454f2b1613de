using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Virtnet.Cli.Service;
using Virtnet.Datapaths;
using Virtnet.Lab;
using Virtnet.Native;

namespace Virtnet.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        // A shell that starts a job with '&' without job control sets SIGINT (and SIGQUIT) to SIG_IGN, and the
        // runtime then leaves it ignored: scripts' `kill -INT` would do nothing. virtnet stops on SIGINT wherever
        // it was started, so the inherited disposition goes before any handler is registered.
        if (args is [BrokerProcess.Verb, var fd])
        {
            // run's privilege broker: never a user's command, so before the parser (and it is not in --help).
            using var logs = Logging.Create(verbose: false, quiet: true);
            return BrokerProcess.Serve(fd, logs.CreateLogger("virtnet broker"));
        }

        _ = Libc.signal(Libc.SIGINT, Libc.SIG_DFL);
        Diagnostics.TurnOffUnlessAskedFor();
        var parse = Cli.Build().Parse(args);
        if (parse.Errors.Count > 0)
        {
            // A usage error: two lines, the first error and where to look, never the whole help text; exit code 2.
            foreach (var error in parse.Errors.Take(1))
            {
                // One line: the parser lists an enum's values one a line ("Must be one of:\n\t'kernel'\n\t'user'").
                string message = System.Text.RegularExpressions.Regex.Replace(error.Message, @"\s*\n\s*", " ").Replace("' '", "', '", StringComparison.Ordinal);
                Console.Error.WriteLine($"virtnet: {message}");
            }

            string command = parse.CommandResult.Command is { } c && c.Name != "virtnet" && c.Parents.Any() ? $" {c.Name}" : "";
            Console.Error.WriteLine($"Try 'virtnet{command} --help'.");
            return Cli.ExitUsage;
        }

        return parse.Invoke();
    }
}

/// <summary>The command line: parsing here, work in the library, every failure one sentence on stderr.</summary>
internal static class Cli
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;
    public const int ExitInternal = 70;

    /// <summary>-v: debug messages too (every command).</summary>
    internal static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "log debug messages too", Recursive = true };

    /// <summary>-q: only warnings and errors (every command).</summary>
    internal static readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "log only warnings and errors", Recursive = true };

    public static RootCommand Build()
    {
        var root = new RootCommand("virtnet: bind a virtual network device to a real one, with a BPF (tcx) or a managed (C#) datapath.");
        root.Options.Add(Verbose);
        root.Options.Add(Quiet);
        root.Subcommands.Add(BuildAttach());
        root.Subcommands.Add(ServiceCommands.BuildRun());
        root.Subcommands.Add(ServiceCommands.BuildShow());
        root.Subcommands.Add(ServiceCommands.BuildStats());
        root.Subcommands.Add(ServiceCommands.BuildDetach());
        root.Subcommands.Add(CaptureCommand.Build());
        root.Subcommands.Add(BuildFilter());
        root.Subcommands.Add(BuildDemo());
        return root;
    }

    /// <summary>The log of a command, at the verbosity -v/-q ask for.</summary>
    internal static ILoggerFactory Logs(ParseResult parse) => Logging.Create(parse.GetValue(Verbose), parse.GetValue(Quiet));

    private static Option<string> DatapathOption()
    {
        var option = new Option<string>("--datapath", "-d")
        {
            Description = "kernel: BPF programs on tcx hooks redirect frames with no copy; user: every frame crosses this process through the C# handler pipeline",
            DefaultValueFactory = _ => "kernel",
        };
        option.AcceptOnlyFromAmong("kernel", "user");
        return option;
    }

    private static Command BuildAttach()
    {
        var real = new Argument<string>("real-dev") { Description = "the real device to take over (its frames appear on the virtual device)" };
        var name = new Option<string>("--name", "-n") { Description = "name of the virtual device (1-15 bytes)", DefaultValueFactory = _ => "virtnet0" };
        var datapath = DatapathOption();
        var mac = new Option<string?>("--mac") { Description = "inherit (the real device's MAC; the default in passthru mode), random (locally administered; the default in the other modes), or an address like 02:00:00:00:00:01" };
        var mode = new Option<string>("--mode", "-m")
        {
            Description = "passthru: every frame (of its VLAN), exclusively; bridge, private, vepa: the frames for its MAC and copies of broadcast and multicast, sharing the real device with other bindings and its own stack, with macvlan's meaning of each mode (bridge also reaches the host)",
            DefaultValueFactory = _ => "passthru",
        };
        mode.AcceptOnlyFromAmong("passthru", "bridge", "private", "vepa");
        var vlan = new Option<int?>("--vlan") { Description = "take only the frames tagged with this VLAN id (1-4094), delivered untagged; what the virtual device sends leaves tagged" };
        var stats = new Option<double>("--stats") { Description = "print per-direction counters and rates every this many seconds (0: only on exit)", DefaultValueFactory = _ => 0 };
        var busyPoll = new Option<int>("--busy-poll") { Description = "user datapath: microseconds the forwarder keeps polling after a frame before it sleeps, yielding to any other thread runnable on its CPU meanwhile, and not at all for 0.1 s after a yield lasted a time slice, i.e. next to a CPU-bound neighbour (0 sleeps at once)", DefaultValueFactory = _ => (int)AttachOptions.DefaultBusyPoll.TotalMicroseconds };
        var netns = new Option<string?>("--netns") { Description = "make the virtual device in this network namespace: a name from 'ip netns' or a path like /proc/PID/ns/net (default: the real device's)" };
        var filter = new Option<string?>("--filter") { Description = "take only the frames this tcpdump-style expression matches (e.g. 'udp dst port 4789'); the rest stay with the real device's stack. See 'virtnet filter --explain EXPR'" };
        var mirror = new Option<string?>("--mirror")
        {
            Description = "receive copies of the real device's frames instead of taking them: ingress (what it receives), egress (what it sends), or both (the default); the virtual device is receive-only",
            Arity = ArgumentArity.ZeroOrOne,
        };
        mirror.AcceptOnlyFromAmong("ingress", "egress", "both");
        var metrics = new Option<string?>("--metrics") { Description = "serve the binding's counters (and the process's CPU and memory) for Prometheus at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9464" };
        var handler = new Option<string[]>("--handler") { Description = "run every frame through this C# handler: PATH.dll, or PATH.dll:TYPE when the assembly has several (repeat for a pipeline, in order); implies --datapath user" };
        var handlerArg = new Option<string[]>("--handler-arg") { Description = "KEY=VALUE for the handlers' constructor (IReadOnlyDictionary<string, string>); repeat for more" };
        var extraDevice = new Option<string[]>("--extra-device") { Description = "user datapath: one more virtual device for the binding, port 2, 3, ... in the order given (repeat for more); it gets only what a handler sends it, and what it sends goes out through the real device unless a handler says otherwise" };
        var command = new Command("attach", "Create a virtual device bound to <real-dev>; runs in the foreground until SIGINT or SIGTERM, then removes everything it made.")
        {
            real, name, mode, mac, vlan, filter, mirror, datapath, netns, busyPoll, stats, metrics, handler, handlerArg, extraDevice,
        };
        command.SetAction(parse =>
        {
            AttachOptions options;
            double interval = parse.GetValue(stats);
            try
            {
                var handlers = parse.GetValue(handler) ?? [];
                // Handlers run on the user datapath: asked for without a datapath, it is the one chosen.
                string chosen = handlers.Length > 0 && parse.GetResult(datapath) is null ? "user" : parse.GetValue(datapath)!;
                options = ParseAttach(parse.GetValue(real)!, parse.GetValue(name)!, chosen, parse.GetValue(mac), parse.GetValue(busyPoll), parse.GetValue(netns), parse.GetValue(mode)!, parse.GetValue(vlan));
                var handlerArgs = HandlerPlugins.ParseArgs(parse.GetValue(handlerArg) ?? []);
                if (handlerArgs.Count > 0 && handlers.Length == 0)
                {
                    throw new UsageException("--handler-arg without --handler: give the handler too, e.g. --handler ./MyHandler.dll --handler-arg KEY=VALUE");
                }

                try
                {
                    options = options with { Handlers = HandlerPlugins.Load(handlers, handlerArgs) };
                }
                catch (HandlerLoadException e)
                {
                    Console.Error.WriteLine($"virtnet: {e.Message}");
                    return ExitFailure;
                }
                options = options with
                {
                    ExtraDevices = CheckExtraDevices(options, parse.GetValue(extraDevice) ?? [], "--extra-device"),
                    Filter = parse.GetValue(filter) is { } expression ? Filters.PacketFilter.Parse(expression) : null,
                    Mirror = parse.GetResult(mirror) is null ? MirrorDirections.None : ParseMirror(parse.GetValue(mirror)),
                };
                CheckStats(interval, $"--stats {interval}");
                if (parse.GetValue(metrics) is { } address)
                {
                    MetricsEndpoint.Parse(address);
                }
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"virtnet: {e.Message}");
                return ExitUsage;
            }
            catch (Filters.FilterSyntaxException e)
            {
                Console.Error.WriteLine($"virtnet: {FilterError(e)}");
                return ExitUsage;
            }

            using var logs = Logs(parse);
            return RunAttach(options, Console.Out, Console.Error, TimeSpan.FromSeconds(interval), logs, parse.GetValue(metrics));
        });
        return command;
    }

    private static Command BuildFilter()
    {
        var expression = new Argument<string>("expression") { Description = "a tcpdump-style filter, e.g. 'udp dst port 4789' (quote it for the shell)" };
        var explain = new Option<bool>("--explain") { Description = "print the expression with its grouping made explicit, and the eBPF program it compiles to (like tcpdump -d)" };
        var command = new Command("filter", "Check a filter expression (pcap-filter(7) subset) and show what it compiles to; touches no device.")
        {
            expression, explain,
        };
        command.SetAction(parse =>
        {
            string text = parse.GetValue(expression)!;
            try
            {
                var filter = Filters.PacketFilter.Parse(text);
                Console.Out.Write(parse.GetValue(explain) ? filter.Explain() : $"filter: {filter.Grouped}\n");
                return ExitOk;
            }
            catch (Filters.FilterSyntaxException e)
            {
                Console.Error.WriteLine($"virtnet: {FilterError(e)}");
                return ExitUsage;
            }
        });
        return command;
    }

    /// <summary>One sentence that quotes the expression and points at the column, with the column marked under it.</summary>
    internal static string FilterError(Filters.FilterSyntaxException e)
        => $"{FilterSentence(e)}\n  {e.Expression}\n  {new string(' ', e.Column)}^";

    /// <summary>The sentence of <see cref="FilterError"/> alone, on one line: the expression, the column and why.</summary>
    internal static string FilterSentence(Filters.FilterSyntaxException e)
        => $"bad filter '{e.Expression}' at column {e.Column + 1}: {e.Reason}";

    private static Command BuildDemo()
    {
        var datapath = DatapathOption();
        var command = new Command("demo", "Build a two-host lab in private network namespaces, attach virtnet to its real device, show traffic crossing, and tear it all down.")
        {
            datapath,
        };
        command.SetAction(parse => Guard(Console.Error, null, () => Demo.Run(ParseDatapath(parse.GetValue(datapath)!), Console.Out)));
        return command;
    }

    internal static MirrorDirections ParseMirror(string? value) => value switch
    {
        null or "both" => MirrorDirections.Both,
        "ingress" => MirrorDirections.Ingress,
        "egress" => MirrorDirections.Egress,
        _ => throw new UsageException($"--mirror {value}: use ingress, egress or both"),
    };

    internal static AttachOptions ParseAttach(string real, string name, string datapath, string? mac, int? busyPollMicroseconds = null, string? netns = null, string mode = "passthru", int? vlan = null)
    {
        var (macMode, bytes) = mac is null ? ((MacMode?)null, (byte[]?)null) : ParseMac(mac);
        var bindingMode = ParseMode(mode);
        if (vlan is { } id)
        {
            CheckVlan(id, $"--vlan {id}");
        }

        if (busyPollMicroseconds is { } poll)
        {
            CheckBusyPoll(poll, $"--busy-poll {poll}");
        }

        return new AttachOptions
        {
            RealDevice = real,
            Name = name,
            Datapath = ParseDatapath(datapath),
            Mode = bindingMode,
            Vlan = vlan ?? 0,
            MacMode = macMode,
            Mac = bytes,
            BusyPoll = busyPollMicroseconds is { } us ? TimeSpan.FromMicroseconds(us) : null,
            Netns = ParseNetns(netns),
        };
    }

    /// <summary>
    /// The further devices of --extra-device (and of a config file's extra-device key): on the user datapath only,
    /// each a valid name, none twice; <paramref name="given"/> names the option in the sentence.
    /// </summary>
    internal static string[] CheckExtraDevices(AttachOptions options, string[] names, string given)
    {
        if (names.Length == 0)
        {
            return names;
        }

        if (options.Datapath == DatapathKind.Kernel)
        {
            throw new UsageException($"{given} {names[0]}: further devices get frames from handlers, which run on the user datapath; add --datapath user or a --handler");
        }

        foreach (var n in names)
        {
            try
            {
                Devices.DeviceName.Validate(n);
            }
            catch (VirtnetException e)
            {
                throw new UsageException($"{given} {n}: {e.Message}; choose another name");
            }
        }

        if (names.Prepend(options.Name).GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new UsageException($"{given} {twice.Key}: the binding already has a device of that name; give each device a name of its own");
        }

        return names;
    }

    /// <summary>The mode of --mode (and of a config file's mode key), with macvlan's names.</summary>
    internal static BindingMode ParseMode(string value) => value switch
    {
        "passthru" => BindingMode.Passthru,
        "bridge" => BindingMode.Bridge,
        "private" => BindingMode.Private,
        "vepa" => BindingMode.Vepa,
        _ => throw new UsageException($"unknown mode '{value}'; use passthru, bridge, private or vepa"),
    };

    /// <summary>Refuses a VLAN id outside 1-4094; <paramref name="given"/> is how the sentence names it (here "--vlan 5000").</summary>
    internal static void CheckVlan(long vlan, string given)
    {
        if (vlan is < 1 or > 4094)
        {
            throw new UsageException($"{given} is out of range; give a VLAN id from 1 to 4094");
        }
    }

    /// <summary>Refuses a busy-poll outside 0-1000000 microseconds; <paramref name="given"/> names it in the sentence.</summary>
    internal static void CheckBusyPoll(long microseconds, string given)
    {
        if (microseconds is < 0 or > 1_000_000)
        {
            throw new UsageException($"{given} is out of range; give microseconds from 0 to 1000000, e.g. 200");
        }
    }

    /// <summary>Refuses a stats interval outside 0-86400 seconds, and NaN; <paramref name="given"/> names it in the sentence.</summary>
    internal static void CheckStats(double seconds, string given)
    {
        if (!(seconds >= 0 && seconds <= 86400)) // NaN too
        {
            throw new UsageException($"{given} is out of range; give seconds from 0 to 86400, e.g. 1");
        }
    }

    /// <summary>A name as `ip netns` keeps them (/run/netns/NAME), or a path to a namespace file.</summary>
    internal static string? ParseNetns(string? value)
    {
        if (value is null)
        {
            return null;
        }

        if (value.Length == 0 || value is "." or "..")
        {
            throw new UsageException($"'{value}' is not a network namespace; give a name from 'ip netns' or a path like /proc/PID/ns/net");
        }

        return value.Contains('/') ? value : $"/run/netns/{value}";
    }

    internal static DatapathKind ParseDatapath(string value) => value switch
    {
        "kernel" => DatapathKind.Kernel,
        "user" => DatapathKind.User,
        _ => throw new UsageException($"unknown datapath '{value}'; use kernel or user"),
    };

    internal static (MacMode, byte[]?) ParseMac(string value)
    {
        if (value == "inherit")
        {
            return (MacMode.Inherit, null);
        }

        if (value == "random")
        {
            return (MacMode.Random, null);
        }

        var parts = value.Split(':', '-');
        var mac = new byte[6];
        if (parts.Length != 6 || !parts.Select((p, i) => p.Length is 1 or 2 && byte.TryParse(p, System.Globalization.NumberStyles.HexNumber, null, out mac[i])).All(ok => ok))
        {
            throw new UsageException($"'{value}' is not a MAC address; use inherit, random or six hex bytes like 02:00:00:00:00:01");
        }

        if ((mac[0] & 1) != 0)
        {
            throw new UsageException($"{value} is a multicast address; a device needs a unicast MAC (first byte even)");
        }

        if (mac.All(b => b == 0))
        {
            throw new UsageException("00:00:00:00:00:00 is not a usable MAC address");
        }

        return (MacMode.Explicit, mac);
    }

    internal static int RunAttach(AttachOptions options, TextWriter output, TextWriter error, TimeSpan statsInterval = default, ILoggerFactory? logs = null, string? metrics = null)
    {
        // Signals first: a SIGTERM or SIGINT from here on stops the attach cleanly, even one that comes while the
        // binding is being made (it is then undone as soon as it stands).
        using var stop = new CancellationTokenSource();
        using var signals = new StopOnSignals(stop);
        using var ownLogs = logs is null ? Logging.Create(verbose: false, quiet: false, error) : null;
        var log = (logs ?? ownLogs!).CreateLogger("virtnet");
        using var notifier = new SystemdNotifier(log);
        return Guard(error, options.Name, () =>
        {
            // The endpoint before the binding: an address in use is refused with nothing made.
            using var endpoint = metrics is null ? null : MetricsEndpoint.Start(metrics);
            if (endpoint is not null)
            {
                log.Info($"metrics for Prometheus at {endpoint.Url}");
            }

            // Once the binding is made, only what it still needs: "ready" means dropped.
            using var host = new BindingHost(output, log, statsInterval) { BeforeReady = _ => Privileges.Drop(Privileges.ForAttach, log) };

            // The socket first: by the ready line, show, stats and detach can reach the binding.
            using (ControlServer.TryStart(host, log))
            {
                var binding = host.Start(options);
                notifier.Ready(ServiceCommands.Summary(host));

                // Until a signal, a detach from another shell, or the binding's end (its real device gone).
                WaitHandle[] waits = [stop.Token.WaitHandle, host.Changed];
                while (!stop.IsCancellationRequested && host.Count > 0)
                {
                    WaitHandle.WaitAny(waits);
                }

                notifier.Stopping();
                host.StopAll(TimeSpan.FromSeconds(30));
                output.WriteLine($"{binding.Attachment.VirtualName} process: {ProcessCost()}");
                return binding.Failure is null ? ExitOk : ExitFailure;
            }
        });
    }

    /// <summary>The one line with the word "ready" that scripts wait for.</summary>
    internal static string ReadyLine(Attachment attachment)
    {
        string kind = attachment.Datapath == DatapathKind.Kernel ? "kernel" : "user";
        string details = attachment.DatapathDetails is { } d ? $", {d}" : "";
        string where = attachment.Namespace is { } ns ? $", in {ns}" : "";
        string peer = attachment.PeerName is { } p ? $", peer {p}" : "";
        // The whole-device passthru says nothing more; a binding that shares the device says how.
        string mode = attachment.Mode == BindingMode.Passthru && attachment.Vlan == 0 ? ""
            : $", mode {attachment.Mode.ToString().ToLowerInvariant()}{(attachment.Vlan != 0 ? $" vlan {attachment.Vlan}" : "")}";
        string filter = attachment.Filter is { } f ? $", filter '{f}'" : "";
        string extra = attachment.Ports.Count > 1
            ? $", further devices {string.Join(", ", attachment.Ports.Skip(1).Select((d, i) => $"{d.Name} (port {i + 2}, mac {FormatMac(d.Mac)})"))}"
            : "";
        return $"{attachment.VirtualName} ready: {attachment.RealName} <-> {attachment.VirtualName}{where}, {kind} datapath, mtu {attachment.Mtu}, mac {FormatMac(attachment.VirtualMac)}{details}{peer}{mode}{filter}{extra}";
    }

    internal static string FormatCounters(DatapathCounters c)
    {
        string slow = c.EgressSlowPath > 0 ? $" ({c.EgressSlowPath} past tcx, through the slow path)" : "";
        return $"ingress {c.Ingress.Frames} frames {c.Ingress.Bytes} bytes {c.Ingress.Drops} dropped, egress {c.Egress.Frames} frames {c.Egress.Bytes} bytes {c.Egress.Drops} dropped{slow}";
    }

    /// <summary>"; dropped: ingress 3 device down, 2 refused by the device; egress 1 send failed", or "" without drops.</summary>
    internal static string FormatCauses(DatapathCounters c)
    {
        string Side(Direction d)
            => string.Join(", ", c.DropCauses.Where(x => x.Direction == d).Select(x => $"{x.Frames} {CauseText(x.Cause)}"));
        var parts = new[] { (Name: "ingress", Text: Side(Direction.Ingress)), (Name: "egress", Text: Side(Direction.Egress)) }
            .Where(p => p.Text.Length > 0)
            .Select(p => $"{p.Name} {p.Text}")
            .ToArray();
        return parts.Length == 0 ? "" : $"; dropped: {string.Join("; ", parts)}";
    }

    internal static string CauseText(DropCause cause) => cause switch
    {
        DropCause.DeviceDown => "device down",
        DropCause.Refused => "refused by the device (too big, down, its queue full, or no protocol there takes it)",
        DropCause.Private => "private mode",
        DropCause.CopyFailed => "copies failed",
        DropCause.RingFull => "ring full",
        DropCause.QueueFull => "queue full",
        DropCause.Handler => "by handlers",
        DropCause.MirrorReceiveOnly => "mirror is receive-only",
        DropCause.Filter => "not matched by the filter",
        DropCause.HandlerFault => "handler fault (a handler threw)",
        _ => "send failed",
    };

    /// <summary>What the process cost: CPU seconds, peak RSS, and GC collections (the per-frame path must not allocate).</summary>
    internal static string ProcessCost()
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        string peak = "?";
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = (long.Parse(line[6..].Trim().Split(' ')[0]) / 1024.0).ToString("0.0");
            }
        }

        return $"cpu {self.TotalProcessorTime.TotalSeconds:0.00} s, peak rss {peak} MB, gc {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)} (gen0/gen1/gen2), allocated {GC.GetTotalAllocatedBytes(precise: true)} bytes";
    }

    internal static string FormatMac(byte[] mac) => string.Join(':', mac.Select(b => b.ToString("x2")));

    /// <summary>Maps exceptions to one sentence and an exit code.</summary>
    /// <param name="error">Where the sentence goes.</param>
    /// <param name="virtualName">The virtual device the command names with --name, for the hints that point at it.</param>
    /// <param name="body">The command.</param>
    internal static int Guard(TextWriter error, string? virtualName, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (VirtnetException e)
        {
            Fail(error, Sentence(e, virtualName));
            return ExitFailure;
        }
        catch (UsageException e)
        {
            Fail(error, e.Message);
            return ExitUsage;
        }
        catch (Exception e)
        {
            Fail(error, $"internal error, please report it: {e}");
            return ExitInternal;
        }
    }

    /// <summary>
    /// A failure's sentence on stderr, "virtnet: ...": under systemd (JOURNAL_STREAM set) with journald's error
    /// priority in front, "&lt;3&gt;virtnet: ...", as the log's lines carry theirs.
    /// </summary>
    internal static void Fail(TextWriter error, string sentence)
    {
        bool journal = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM"));
        error.WriteLine($"{(journal ? "<3>" : "")}virtnet: {sentence}");
    }

    /// <summary>
    /// The library's facts, plus what to do in this command line's terms: the flag to change when the failure is
    /// about a name the user chose, a command when it is about a device virtnet keeps for itself.
    /// </summary>
    internal static string Sentence(VirtnetException e, string? virtualName = null)
    {
        bool chosen = e.Device is not null && e.Device == virtualName;
        string hint = e.Kind switch
        {
            FailureKind.NameInUse when chosen => "; choose another with --name",
            FailureKind.NameInUse => "; virtnet needs this name for a device of its own: delete or rename that device",
            FailureKind.InvalidName when e.Device is "" => "; give one with --name",
            FailureKind.InvalidName when e.Errno == Errno.ENAMETOOLONG => "; choose a shorter one with --name",
            FailureKind.InvalidName or FailureKind.ReservedName => "; choose another with --name",
            FailureKind.KeyInUse => " (--mac, --vlan)",
            _ when e.Errno == Errno.EPERM && !e.Message.Contains("root", StringComparison.Ordinal) => "; run virtnet as root (it needs CAP_NET_ADMIN and CAP_BPF)",
            _ => "",
        };
        return e.Message + hint;
    }
}

internal sealed class UsageException(string message) : Exception(message);

/// <summary>SIGINT and SIGTERM (and SIGHUP, if asked) cancel a token instead of ending the process, until disposed.</summary>
internal sealed class StopOnSignals : IDisposable
{
    private readonly PosixSignalRegistration[] _registrations;

    public StopOnSignals(CancellationTokenSource stop, bool hangupToo = false)
    {
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        PosixSignal[] signals = hangupToo ? [PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP] : [PosixSignal.SIGINT, PosixSignal.SIGTERM];
        _registrations = [.. signals.Select(signal => PosixSignalRegistration.Create(signal, OnSignal))];
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
    }
}

/// <summary>Prints the counters and the rates since the last line, every interval (attach --stats).</summary>
internal sealed class StatsReporter : IDisposable
{
    private readonly Attachment _attachment;
    private readonly TextWriter _output;
    private readonly Timer _timer;
    private readonly object _gate = new();
    private DatapathCounters _last;
    private long _lastTicks = System.Diagnostics.Stopwatch.GetTimestamp();
    private bool _disposed;

    public StatsReporter(Attachment attachment, TextWriter output, TimeSpan interval)
    {
        _attachment = attachment;
        _output = output;
        _timer = new Timer(_ => Report(), null, interval, interval);
    }

    public static string Line(string device, DatapathCounters now, DatapathCounters last, double seconds)
    {
        string Rate(DirectionCounters n, DirectionCounters l)
            => $"{(n.Frames - l.Frames) / seconds:0} fps {(n.Bytes - l.Bytes) * 8 / seconds / 1e6:0.0} Mbit/s";
        return $"{device} stats: {Cli.FormatCounters(now)}; now ingress {Rate(now.Ingress, last.Ingress)}, egress {Rate(now.Egress, last.Egress)}";
    }

    private void Report()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                var now = _attachment.ReadCounters();
                long ticks = System.Diagnostics.Stopwatch.GetTimestamp();
                double seconds = Math.Max(1e-6, (ticks - _lastTicks) / (double)System.Diagnostics.Stopwatch.Frequency);
                _output.WriteLine(Line(_attachment.VirtualName, now, _last, seconds));
                _output.Flush();
                _last = now;
                _lastTicks = ticks;
            }
            catch (VirtnetException)
            {
                // The attachment is going away; the exit line has the final counters.
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
        }

        _timer.Dispose();
    }
}
