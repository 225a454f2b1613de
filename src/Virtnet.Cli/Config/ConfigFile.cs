// The config file of `virtnet run --config FILE`: TOML, one [[binding]] table per binding, whose keys are the long
// options of `virtnet attach` (name, mode, mac, vlan, filter, mirror, datapath, netns, busy-poll, stats) plus real,
// the real device. TomlReader.cs reads the syntax; the values go through attach's own parsers (Cli.ParseAttach and
// its parts, PacketFilter.Parse), so a binding means what the attach command line with the same values means.
// Every error is one sentence, "FILE:LINE: ...", naming the key and saying what to do; a file with an error is
// refused whole, so a reload never applies half a file.
using System.Globalization;
using System.Text;
using Virtnet.Datapaths;
using Virtnet.Devices;
using Virtnet.Native;

namespace Virtnet.Cli.Config;

/// <summary>One binding of a config file: what <c>virtnet attach</c> would be given for it, and where it is.</summary>
/// <param name="Options">The attach options, as the attach command line with the same values gives them.</param>
/// <param name="StatsSeconds">The <c>stats</c> key: print the counters every this many seconds; 0 (also when absent): only on exit.</param>
/// <param name="Line">The line of the binding's <c>[[binding]]</c> header, 1-based.</param>
/// <param name="Fingerprint">
/// Every setting with its default resolved, on one line, e.g. <c>real="eth1" name="v1" netns="/run/netns/c1"
/// mode=bridge mac=random datapath=user vlan=100 filter="udp port 4789" mirror=none busy-poll=200 stats=0</c>:
/// equal for two entries that mean the same thing (an omitted default or a written one, any key order, any
/// spelling of the same value), different when any setting differs. A reload keeps a binding whose fingerprint is
/// unchanged and re-creates one whose fingerprint changed.
/// </param>
public sealed record ConfigBinding(AttachOptions Options, double StatsSeconds, int Line, string Fingerprint)
{
    /// <summary>
    /// The binding's identity across reloads, its virtual device: the name on the host (<c>v1</c>), or
    /// <c>NETNS/NAME</c> in a namespace (<c>c1/v1</c>), where NETNS is the name for a namespace of <c>ip netns</c>
    /// (whether written as <c>c1</c> or <c>/run/netns/c1</c>) and the path for any other (<c>/proc/42/ns/net/v1</c>).
    /// A device name holds no '/': the last one separates the two.
    /// </summary>
    public string Identity => Options.Netns is { } netns ? $"{ConfigFile.NetnsName(netns)}/{Options.Name}" : Options.Name;
}

/// <summary>A config file that cannot be used: the message is one sentence, <c>FILE:LINE: ...</c>, saying what to do.</summary>
/// <param name="message">The sentence.</param>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>A config file: its settings for the whole process, and its bindings.</summary>
/// <param name="Metrics">metrics = "ADDR:PORT" (the Prometheus endpoint), or null.</param>
/// <param name="MetricsLine">The line of that setting, 0 without it.</param>
/// <param name="Bindings">The bindings, in file order.</param>
public sealed record ConfigDocument(string? Metrics, int MetricsLine, IReadOnlyList<ConfigBinding> Bindings);

/// <summary>Reads the bindings of a config file.</summary>
public static class ConfigFile
{
    /// <summary>The keys of a [[binding]] table: <c>real</c> and the long options of <c>virtnet attach</c>.</summary>
    private static readonly string[] s_keys = ["real", "name", "mode", "mac", "vlan", "filter", "mirror", "datapath", "netns", "busy-poll", "stats", "handler", "handler-arg", "extra-device"];

    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private const string NetnsDirectory = "/run/netns/";

    /// <summary>Reads and parses the file at <paramref name="path"/>; throws <see cref="ConfigException"/> if it cannot be read or used.</summary>
    /// <param name="path">The file, named as the messages will name it.</param>
    /// <returns>The bindings, in file order.</returns>
    public static IReadOnlyList<ConfigBinding> Load(string path) => LoadDocument(path).Bindings;

    /// <summary>Reads and parses the file at <paramref name="path"/>, settings and bindings; throws <see cref="ConfigException"/> if it cannot be read or used.</summary>
    public static ConfigDocument LoadDocument(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            string why = e switch
            {
                FileNotFoundException or DirectoryNotFoundException => "no such file",
                UnauthorizedAccessException when Directory.Exists(path) => "it is a directory",
                UnauthorizedAccessException => "permission denied",
                ArgumentException or NotSupportedException => "not a valid path",
                _ => e.Message,
            };
            throw new ConfigException($"virtnet can't read {path}: {why}");
        }

        string text;
        try
        {
            text = s_utf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            int line = 1 + bytes.AsSpan(0, Math.Clamp(e.Index, 0, bytes.Length)).Count((byte)'\n');
            throw new ConfigException($"{path}:{line}: the file is not UTF-8 text; save it as UTF-8");
        }

        return ParseDocument(text, path);
    }

    /// <summary>Parses a config file's text; throws <see cref="ConfigException"/> at its first error.</summary>
    /// <param name="text">The file's text, with LF or CRLF line endings.</param>
    /// <param name="fileName">The file's name, for the messages.</param>
    /// <returns>The bindings, in file order: at least one, no two with the same <see cref="ConfigBinding.Identity"/>.</returns>
    public static IReadOnlyList<ConfigBinding> Parse(string text, string fileName) => ParseDocument(text, fileName).Bindings;

    /// <summary>Parses a config file's text, settings and bindings; throws <see cref="ConfigException"/> at its first error.</summary>
    public static ConfigDocument ParseDocument(string text, string fileName)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(fileName);
        var (top, tables) = TomlReader.ReadDocument(text, fileName);
        string? metrics = null;
        int metricsLine = 0;
        foreach (var entry in top)
        {
            ConfigException Error(string reason) => new($"{fileName}:{entry.Line}: {entry.KeyText} = {entry.Value.Raw}: {OneLine(reason)}");
            if (entry.Key != "metrics")
            {
                string hint = s_keys.Contains(entry.Key) ? $"{entry.Key} is a key of a binding; put it under a [[binding]] line" : "the top of the file takes only metrics = \"ADDR:PORT\"; a binding's keys go under its [[binding]] line";
                throw Error($"not a setting of the whole file; {hint}");
            }

            if (entry.Value.Kind != TomlKind.String)
            {
                throw Error("metrics must be a string in quotes, like metrics = \"127.0.0.1:9464\"");
            }

            try
            {
                Service.MetricsEndpoint.Parse(entry.Value.Text);
            }
            catch (UsageException e)
            {
                throw Error(e.Message.Replace("--metrics ", "", StringComparison.Ordinal));
            }

            (metrics, metricsLine) = (entry.Value.Text, entry.Line);
        }

        if (tables.Count == 0)
        {
            throw new ConfigException($"{fileName} has no [[binding]] table; add one for each binding, a [[binding]] line followed by at least real = \"DEVICE\"");
        }

        var bindings = new List<ConfigBinding>(tables.Count);
        try
        {
            foreach (var table in tables)
            {
                bindings.Add(Bind(table, fileName));
            }

            var seen = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < bindings.Count; i++)
            {
                var binding = bindings[i];
                if (seen.TryGetValue(binding.Identity, out int first))
                {
                    var o = binding.Options;
                    string where = o.Netns is { } netns ? $"{o.Name} in {NetnsName(netns)}" : $"{o.Name} on the host";
                    throw new ConfigException($"{fileName}:{binding.Line}: binding {i + 1} makes the same virtual device as binding {first + 1} on line {bindings[first].Line} ({where}); give one of them another name");
                }

                seen.Add(binding.Identity, i);
            }
        }
        catch
        {
            // A file refused: the handlers its earlier bindings loaded are not used.
            HandlerPlugins.Unload(bindings.SelectMany(b => b.Options.Handlers));
            throw;
        }

        return new ConfigDocument(metrics, metricsLine, bindings);
    }

    /// <summary>The name of a namespace of <c>ip netns</c> (/run/netns/NAME), or the path of any other.</summary>
    internal static string NetnsName(string path)
        => path.StartsWith(NetnsDirectory, StringComparison.Ordinal) && path.Length > NetnsDirectory.Length && path.IndexOf('/', NetnsDirectory.Length) < 0
            ? path[NetnsDirectory.Length..]
            : path;

    private static ConfigBinding Bind(TomlTable table, string file)
    {
        string? real = null, name = null, mode = null, mac = null, datapath = null, netns = null;
        long? vlan = null, busyPoll = null;
        double stats = 0;
        Filters.PacketFilter? filter = null;
        var mirror = MirrorDirections.None;
        IReadOnlyList<string> handlerSpecs = [];
        string[] extraDevices = [];
        Dictionary<string, string> handlerArgs = new(StringComparer.Ordinal);
        int handlerLine = 0;
        string handlerText = "";
        foreach (var entry in table.Entries)
        {
            var value = entry.Value;
            ConfigException Error(string reason)
                => new($"{file}:{entry.Line}: {entry.KeyText} = {value.Raw} in binding {table.Number}: {OneLine(reason)}");

            string String(string example) => value.Kind switch
            {
                TomlKind.String => value.Text,
                TomlKind.Array => throw Error($"{entry.Key} takes one value, not an array; give one value (and one [[binding]] table per binding)"),
                _ => throw Error($"{entry.Key} must be a string in quotes, like {entry.Key} = \"{example}\""),
            };

            IReadOnlyList<string> Strings(string example) => value.Kind switch
            {
                TomlKind.String => [value.Text],
                TomlKind.Array => value.Items ?? [],
                _ => throw Error($"{entry.Key} must be a string or an array of strings, like {entry.Key} = [\"{example}\"]"),
            };

            long Whole(string unit, string example) => value.Kind switch
            {
                TomlKind.Integer => value.Integer,
                TomlKind.Float => throw Error($"{entry.Key} must be a whole number{unit}, like {entry.Key} = {example}"),
                _ => throw Error($"{entry.Key} must be a number{unit}, like {entry.Key} = {example}"),
            };

            void Check(Action check)
            {
                try
                {
                    check();
                }
                catch (UsageException e)
                {
                    throw Error(e.Message);
                }
            }

            void CheckDeviceName(string device, string hint)
            {
                try
                {
                    DeviceName.Validate(device);
                }
                catch (VirtnetException e)
                {
                    throw Error($"{e.Message}; {(e.Errno == Errno.ENAMETOOLONG ? "choose a shorter one" : hint)}");
                }
            }

            switch (entry.Key)
            {
                case "real":
                    real = String("eth1");
                    CheckDeviceName(real, "give the real device's name as 'ip link' shows it");
                    break;
                case "name":
                    name = String("v1");
                    CheckDeviceName(name, "choose another");
                    break;
                case "mode":
                    string m = String("bridge");
                    Check(() => Cli.ParseMode(m));
                    mode = m;
                    break;
                case "mac":
                    string a = String("02:00:00:00:00:01");
                    Check(() => Cli.ParseMac(a));
                    mac = a;
                    break;
                case "datapath":
                    string d = String("user");
                    Check(() => Cli.ParseDatapath(d));
                    datapath = d;
                    break;
                case "netns":
                    string n = String("c1");
                    Check(() => Cli.ParseNetns(n));
                    netns = n;
                    break;
                case "vlan":
                    long id = Whole("", "100");
                    Check(() => Cli.CheckVlan(id, value.Raw));
                    vlan = id;
                    break;
                case "busy-poll":
                    long us = Whole(" of microseconds", "200");
                    Check(() => Cli.CheckBusyPoll(us, value.Raw));
                    busyPoll = us;
                    break;
                case "stats":
                    double seconds = value.Kind switch
                    {
                        TomlKind.Integer => value.Integer,
                        TomlKind.Float => value.Float,
                        _ => throw Error("stats must be a number of seconds, like stats = 1.5"),
                    };
                    Check(() => Cli.CheckStats(seconds, value.Raw));
                    stats = seconds;
                    break;
                case "filter":
                    try
                    {
                        filter = Filters.PacketFilter.Parse(String("udp port 4789"));
                    }
                    catch (Filters.FilterSyntaxException e)
                    {
                        throw Error(Cli.FilterSentence(e));
                    }

                    break;
                case "mirror":
                    mirror = value.Kind switch
                    {
                        TomlKind.Boolean => value.Boolean ? MirrorDirections.Both : MirrorDirections.None,
                        TomlKind.String => ParseMirror(value.Text, Error),
                        _ => throw Error("mirror must be \"ingress\", \"egress\", \"both\", true or false, like mirror = \"ingress\""),
                    };
                    break;
                case "handler":
                    handlerSpecs = Strings("/opt/handlers/MyHandler.dll");
                    handlerLine = entry.Line;
                    handlerText = $"{entry.KeyText} = {value.Raw}";
                    break;
                case "extra-device":
                    extraDevices = [.. Strings("mon1")];
                    foreach (var device in extraDevices)
                    {
                        CheckDeviceName(device, "choose another");
                    }

                    break;
                case "handler-arg":
                    var pairs = Strings("rate=1000");
                    Check(() => handlerArgs = HandlerPlugins.ParseArgs(pairs));
                    break;
                default:
                    throw Error($"unknown key {entry.KeyText}; {Suggest(entry.Key)}");
            }
        }

        if (real is null)
        {
            throw new ConfigException($"{file}:{table.Line}: binding {table.Number} has no real key, the real device to take over; add one under its [[binding]] line, like real = \"eth1\"");
        }

        if (handlerArgs.Count > 0 && handlerSpecs.Count == 0)
        {
            throw new ConfigException($"{file}:{table.Line}: binding {table.Number} has handler-arg but no handler; add handler = [\"PATH.dll\"] under its [[binding]] line");
        }

        // Made now, so that a handler that cannot be loaded refuses the file before anything is created.
        IFrameHandler[] handlers;
        try
        {
            handlers = HandlerPlugins.Load(handlerSpecs, handlerArgs);
        }
        catch (HandlerLoadException e)
        {
            throw new ConfigException($"{file}:{handlerLine}: {handlerText} in binding {table.Number}: {OneLine(e.Message.Replace("--handler ", "", StringComparison.Ordinal))}");
        }

        AttachOptions options;
        try
        {
            // Handlers run on the user datapath: with no datapath given, it is the one chosen.
            options = Cli.ParseAttach(real, name ?? "virtnet0", datapath ?? (handlers.Length > 0 ? "user" : "kernel"), mac, (int?)busyPoll, netns, mode ?? "passthru", (int?)vlan) with
            {
                Filter = filter,
                Mirror = mirror,
                Handlers = handlers,
            };
            options = options with { ExtraDevices = Cli.CheckExtraDevices(options, extraDevices, "extra-device =") };
        }
        catch (UsageException e)
        {
            // Every value was checked above, key by key; this is the net under a combination attach would refuse.
            HandlerPlugins.Unload(handlers);
            throw new ConfigException($"{file}:{table.Line}: binding {table.Number}: {OneLine(e.Message)}");
        }

        return new ConfigBinding(options, stats, table.Line, Fingerprint(options, stats) + HandlerFingerprint(handlerSpecs, handlerArgs));
    }

    private static MirrorDirections ParseMirror(string text, Func<string, ConfigException> error)
    {
        try
        {
            return Cli.ParseMirror(text);
        }
        catch (UsageException)
        {
            throw error($"unknown mirror direction '{text}'; use \"ingress\", \"egress\", \"both\" (or true), or false for a binding that is not a mirror");
        }
    }

    /// <summary>The canonical line of <see cref="ConfigBinding.Fingerprint"/>.</summary>
    internal static string Fingerprint(AttachOptions o, double stats)
    {
        string mac = o.MacMode switch
        {
            MacMode.Explicit => Cli.FormatMac(o.Mac!),
            MacMode.Inherit => "inherit",
            MacMode.Random => "random",
            _ => o.Mode == BindingMode.Passthru ? "inherit" : "random", // attach's default for the mode
        };
        string mirror = o.Mirror switch
        {
            MirrorDirections.None => "none",
            MirrorDirections.Ingress => "ingress",
            MirrorDirections.Egress => "egress",
            _ => "both",
        };
        long busyPoll = (o.BusyPoll ?? AttachOptions.DefaultBusyPoll).Ticks / TimeSpan.TicksPerMicrosecond;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"real={Quote(o.RealDevice)} name={Quote(o.Name)} netns={(o.Netns is { } netns ? Quote(netns) : "host")} mode={o.Mode.ToString().ToLowerInvariant()} mac={mac} datapath={(o.Datapath == DatapathKind.Kernel ? "kernel" : "user")} vlan={o.Vlan} filter={(o.Filter is { } f ? Quote(f.Grouped) : "none")} mirror={mirror} busy-poll={busyPoll} stats={(stats == 0 ? 0 : stats):R}{(o.ExtraDevices.Count == 0 ? "" : $" extra-device=[{string.Join(",", o.ExtraDevices.Select(Quote))}]")}");
    }

    /// <summary>
    /// The handlers' part of the fingerprint: each assembly's full path and when it was last written (a rebuilt
    /// handler re-creates its binding on reload), and the arguments, sorted.
    /// </summary>
    private static string HandlerFingerprint(IReadOnlyList<string> specs, Dictionary<string, string> args)
    {
        if (specs.Count == 0)
        {
            return "";
        }

        var parts = specs.Select(spec =>
        {
            var (path, type) = HandlerPlugins.Split(spec);
            string full = Path.GetFullPath(path);
            return $"{Quote(full)}:{type}@{File.GetLastWriteTimeUtc(full).Ticks}";
        });
        var pairs = args.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => Quote($"{kv.Key}={kv.Value}"));
        return $" handler=[{string.Join(",", parts)}] handler-arg=[{string.Join(",", pairs)}]";
    }

    /// <summary>"did you mean KEY?" for a close known key, else the list of keys.</summary>
    private static string Suggest(string key)
    {
        string wanted = key.ToLowerInvariant().Replace('_', '-');
        if (wanted is "real-dev" or "device" or "dev")
        {
            return "did you mean real?";
        }

        var (best, distance) = s_keys.Select(k => (k, Filters.FilterParser.Distance(wanted, k))).MinBy(x => x.Item2);
        return distance <= (wanted.Length <= 4 ? 1 : 2)
            ? $"did you mean {best}?"
            : $"the keys are {string.Join(", ", s_keys[..^1])} and {s_keys[^1]}";
    }

    /// <summary>A string in double quotes, with quotes, backslashes and control characters escaped.</summary>
    private static string Quote(string text) => $"\"{OneLine(text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal))}\"";

    /// <summary>Control characters (from a string's escapes) written as escapes: a message stays on one line.</summary>
    private static string OneLine(string text)
    {
        if (!text.Any(c => char.IsControl(c)))
        {
            return text;
        }

        var line = new StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            if (char.IsControl(c))
            {
                line.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                line.Append(c);
            }
        }

        return line.ToString();
    }
}
