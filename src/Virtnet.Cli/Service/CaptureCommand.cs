// virtnet capture NAME -w FILE: a running binding's frames at its capture points, to pcapng, from any shell.
//
// The points are packet taps (Capture/CaptureRing.cs) that this process opens on the binding's devices, in their
// namespaces, found from what the binding's process reports on its control socket: wire-in and wire-out on the
// real device (in the binding process's namespace), virtual-in and virtual-out on the virtual device (in its
// own). The same on both datapaths, nothing asked of the binding's process, nothing on its frames' path but the
// kernel's copy into our rings while a capture runs; a reader too slow for the rings loses captures, counted, and
// never slows the binding.
//
// On a real device other bindings share (bridge, private, vepa), the wire points keep the binding's frames: to its
// MAC (and broadcast and multicast) coming in, from its MAC going out, on its VLAN or untagged.
using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Virtnet.Bpf;
using Virtnet.Capture;
using Virtnet.Filters;
using Virtnet.Namespaces;
using Virtnet.Native;
using Virtnet.Netlink;

namespace Virtnet.Cli.Service;

internal static class CaptureCommand
{
    /// <summary>The capture points, in the order a frame crosses them.</summary>
    public static readonly string[] Points = ["wire-in", "virtual-in", "virtual-out", "wire-out", "drop"];

    private static readonly string[] DefaultPoints = ["virtual-in", "virtual-out"];

    public static Command Build()
    {
        var name = new Argument<string>("name") { Description = "the binding's virtual device, or NETNS/NAME" };
        var write = new Option<string>("--write", "-w") { Description = "the pcapng file to write; - for standard output (e.g. | wireshark -k -i -)", Required = true };
        var count = new Option<long?>("--count", "-c") { Description = "stop after this many frames" };
        var point = new Option<string?>("--point") { Description = $"where to capture, comma-separated: {string.Join(",", Points)} (default virtual-in,virtual-out: what tcpdump -i <virtual> shows)" };
        var filter = new Option<string?>("--filter") { Description = "keep only frames that match this tcpdump-style expression (pcap-filter(7) subset)" };
        var command = new Command("capture", "Capture a running binding's frames at its capture points to a pcapng file, from any shell; SIGINT stops with a valid file.")
        {
            name, write, count, point, filter,
        };
        command.SetAction(parse =>
        {
            long? limit = parse.GetValue(count);
            if (limit is <= 0)
            {
                Console.Error.WriteLine($"virtnet: -c {limit}: give a number of frames above 0, e.g. -c 100");
                return Cli.ExitUsage;
            }

            string[] points;
            try
            {
                points = ParsePoints(parse.GetValue(point));
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"virtnet: {e.Message}");
                return Cli.ExitUsage;
            }

            PacketFilter? compiled = null;
            if (parse.GetValue(filter) is { } expression)
            {
                try
                {
                    compiled = PacketFilter.Parse(expression);
                }
                catch (FilterSyntaxException e)
                {
                    Console.Error.WriteLine($"virtnet: {Cli.FilterError(e)}");
                    return Cli.ExitUsage;
                }
            }

            string target = parse.GetValue(name)!;
            return ClientGuard(() => Run(target, parse.GetValue(write)!, limit, points, compiled, Console.Error));
        });
        return command;
    }

    /// <summary>--point's list, checked and in crossing order; a usage error names the one that is not a point.</summary>
    internal static string[] ParsePoints(string? list)
    {
        if (list is null)
        {
            return DefaultPoints;
        }

        var given = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (given.Length == 0)
        {
            throw new UsageException($"--point '{list}' names no capture point; give some of {string.Join(",", Points)}");
        }

        foreach (var p in given)
        {
            if (!Points.Contains(p))
            {
                throw new UsageException($"--point {p}: not a capture point; give some of {string.Join(",", Points)}");
            }
        }

        return Points.Where(given.Contains).ToArray();
    }

    private static int ClientGuard(Func<int> body)
    {
        try
        {
            return Cli.Guard(Console.Error, null, body);
        }
        catch (UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"virtnet: {ControlPaths.NotRoot("capture")}");
            return Cli.ExitFailure;
        }
    }

    internal static int Run(string name, string path, long? limit, string[] points, PacketFilter? filter, TextWriter error)
    {
        if (!Caller.IsRoot)
        {
            error.WriteLine($"virtnet: {ControlPaths.NotRoot("capture")}");
            return Cli.ExitFailure;
        }

        if (ServiceCommands.Resolve(name, error) is not { } found)
        {
            return Cli.ExitFailure;
        }

        var (pid, binding) = found;
        string processNs = $"/proc/{pid}/ns/net";
        string? virtualNs = NetnsNames.PathOf(binding.NetnsId, processNs);
        if (virtualNs is null && points.Any(p => p.StartsWith("virtual-", StringComparison.Ordinal) || p == "drop"))
        {
            error.WriteLine($"virtnet: {name}: cannot find its namespace ({binding.NetnsId}) from here; run capture where /proc and /run/netns show it, or capture wire-in,wire-out");
            return Cli.ExitFailure;
        }

        Stream output;
        try
        {
            output = path == "-" ? Console.OpenStandardOutput() : new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"virtnet: {path}: cannot write the capture there ({e.Message.TrimEnd('.')}); give a writable path, or -w - for standard output");
            return Cli.ExitFailure;
        }

        string exact = $"{binding.NetnsId}/{binding.Name}";
        bool askedForDrops = false;
        using (output)
        {
            var taps = new List<Tap>();
            try
            {
                var writer = new PcapNgWriter(output, $"virtnet {typeof(CaptureCommand).Assembly.GetName().Version?.ToString(3)}");
                bool shared = binding.Mode is "bridge" or "private" or "vepa";
                byte[] mac = Convert.FromHexString(binding.Mac.Replace(":", "", StringComparison.Ordinal));
                string netnsText = binding.Netns is { } n ? $", namespace {n}" : "";
                int Iface(string point, string what) => points.Contains(point) ? writer.AddInterface(point, $"{binding.Name}{netnsText}: {what}") : -1;
                int wireIn = Iface("wire-in", $"frames {binding.Real} received (before the binding)");
                int virtualIn = Iface("virtual-in", $"frames {binding.Name} received (from the binding)");
                int virtualOut = Iface("virtual-out", $"frames {binding.Name} sent (into the binding)");
                int wireOut = Iface("wire-out", $"frames {binding.Real} sent (after the binding)");
                int drop = Iface("drop", $"frames the binding lost (on {binding.Real}, {binding.Name}{string.Concat(binding.PrivateDevices.Select(d => $", {d}"))}), each with why as its comment");
                if (drop >= 0)
                {
                    taps.Add(Tap.OpenDrops(processNs, virtualNs!, binding, drop, filter, shared ? mac : null));
                    if (binding.Datapath == "user")
                    {
                        // What the user datapath drops in managed code (handlers) comes from the binding's process.
                        var managed = Tap.OpenManagedDrops(binding, drop, taps[^1]);
                        taps.Add(managed);
                        var reply = ControlClient.AskOne(pid, new ControlRequest { Command = "drops", Name = exact, Socket = managed.Managed!.Path });
                        if (reply?.Error is { } refused)
                        {
                            error.WriteLine($"virtnet: {name}: the frames its handlers drop are not captured ({refused}); the kernel's drops are");
                        }
                        else
                        {
                            askedForDrops = true;
                        }
                    }
                }

                if (wireIn >= 0 || wireOut >= 0)
                {
                    taps.Add(Tap.Open(processNs, binding.Real, true, wireIn, wireOut, filter, shared ? mac : null, shared || binding.Vlan is not null ? binding.Vlan ?? 0 : -1));
                }

                if (binding.Datapath == "kernel" && virtualOut >= 0)
                {
                    // What the kernel datapath's virtual device sends is redirected from its tcx egress, out of its
                    // packet taps' sight: a capture program first on that hook sees it.
                    taps.Add(Tap.OpenProgram(virtualNs!, binding.Name, virtualOut, filter));
                    virtualOut = -1;
                }

                if (virtualIn >= 0 || virtualOut >= 0)
                {
                    taps.Add(Tap.Open(virtualNs!, binding.Name, false, virtualIn, virtualOut, filter, null, -1));
                }

                writer.Flush();
                error.WriteLine($"virtnet: capturing {name} at {string.Join(",", points)}{(limit is { } c ? $", {c} frames" : "")} to {(path == "-" ? "standard output" : path)}; Ctrl-C stops");
                return Loop(name, pid, writer, taps, limit, points, error);
            }
            catch (IOException e)
            {
                error.WriteLine($"virtnet: {path}: writing the capture failed ({e.Message.TrimEnd('.')}); the binding is not affected");
                return Cli.ExitFailure;
            }
            finally
            {
                if (askedForDrops)
                {
                    _ = ControlClient.AskOne(pid, new ControlRequest { Command = "drops", Name = exact, Socket = null });
                }

                foreach (var tap in taps)
                {
                    tap.Dispose();
                }
            }
        }
    }

    private static unsafe int Loop(string name, int pid, PcapNgWriter writer, List<Tap> taps, long? limit, string[] points, TextWriter error)
    {
        using var stop = new CancellationTokenSource();
        using var signals = new StopOnSignals(stop, hangupToo: true);
        var state = new DrainState { Writer = writer, Limit = limit ?? long.MaxValue };
        var fds = taps.SelectMany(t => t.Handles).ToArray();
        var polls = stackalloc PollFd[fds.Length];
        for (int i = 0; i < fds.Length; i++)
        {
            polls[i] = new PollFd { Fd = fds[i].Fd, Events = Libc.POLLIN };
        }

        string ended = "";
        long lastCheck = Environment.TickCount64;
        while (!stop.IsCancellationRequested && state.Written < state.Limit)
        {
            DrainAll(taps, ref state);
            if (state.Written >= state.Limit)
            {
                break;
            }

            if (Environment.TickCount64 - lastCheck >= 1000)
            {
                lastCheck = Environment.TickCount64;
                if (!Directory.Exists($"/proc/{pid}"))
                {
                    ended = $"; {name} has stopped";
                    break;
                }
            }

            _ = Libc.poll(polls, (nuint)fds.Length, 200);
        }

        if (state.Written < state.Limit)
        {
            // Stopped by a signal or the binding's end: a ring hands a block over once it is full or 20 ms old,
            // so what the last moments filled is taken after that long.
            Thread.Sleep(60);
            DrainAll(taps, ref state);
        }

        ulong lost = 0;
        foreach (var tap in taps)
        {
            lost += tap.Lost();
        }

        var perPoint = new StringBuilder();
        foreach (var p in points)
        {
            perPoint.Append(perPoint.Length == 0 ? "" : ", ").Append(CultureInfo.InvariantCulture, $"{p} {state.PerPoint[Array.IndexOf(Points, p)]}");
        }

        string notCaptured = lost == 0 ? "" : $"; {lost} frames not captured (the capture could not keep up; the binding forwarded them)";
        error.WriteLine($"virtnet: {state.Written} frames captured ({perPoint}){notCaptured}{ended}");
        return Cli.ExitOk;
    }

    private static void DrainAll(List<Tap> taps, ref DrainState state)
    {
        foreach (var tap in taps)
        {
            state.Tap = tap;
            if (!tap.Drain(ref state))
            {
                break;
            }
        }

        state.Writer.Flush();
    }

    internal struct DrainState
    {
        public PcapNgWriter Writer;
        public Tap Tap;
        public long Written;
        public long Limit;
        public long[] PerPoint;

        public DrainState()
        {
            Writer = null!;
            Tap = null!;
            PerPoint = new long[Points.Length];
        }
    }

    private static bool Visit(ref DrainState state, in TappedFrame frame)
    {
        var tap = state.Tap;
        int iface = frame.Outgoing ? tap.OutIface : tap.InIface;
        if (iface < 0 || !tap.Keeps(frame))
        {
            return true;
        }

        var direction = frame.Drop is not null ? CaptureDirection.Unknown : frame.Outgoing ? CaptureDirection.Outbound : CaptureDirection.Inbound;
        var comment = frame.Drop is { } why ? Encoding.UTF8.GetBytes(why.ToString()) : [];
        if (frame.VlanTag >= 0 && frame.Data.Length >= 12)
        {
            // The tag the skb carried beside the frame (VLAN offload) goes back between the MACs, as libpcap does.
            Span<byte> head = stackalloc byte[16];
            frame.Data[..12].CopyTo(head);
            head[12] = (byte)(frame.VlanTag >> 24);
            head[13] = (byte)(frame.VlanTag >> 16);
            head[14] = (byte)(frame.VlanTag >> 8);
            head[15] = (byte)frame.VlanTag;
            state.Writer.WritePacket(iface, frame.UnixNanos, head, frame.Data[12..], frame.Length + 4, direction, comment);
        }
        else
        {
            state.Writer.WritePacket(iface, frame.UnixNanos, frame.Data, [], frame.Length, direction, comment);
        }

        state.PerPoint[frame.Outgoing ? tap.OutPoint : tap.InPoint]++;
        state.Written++;
        return state.Written < state.Limit;
    }

    /// <summary>One device's tap and the points it feeds.</summary>
    internal sealed class Tap : IDisposable
    {
        private readonly byte[]? _mac;
        private readonly int _vlan;

        private Tap(CaptureRing? ring, PerfTap? program, int inIface, int outIface, byte[]? mac, int vlan, bool real, DropTap? drops = null, DropSocket? managed = null)
        {
            Ring = ring;
            Program = program;
            Drops = drops;
            Managed = managed;
            InIface = inIface;
            OutIface = outIface;
            _mac = mac;
            _vlan = vlan;
            InPoint = Array.IndexOf(Points, drops is not null || managed is not null ? "drop" : real ? "wire-in" : "virtual-in");
            OutPoint = Array.IndexOf(Points, managed is not null ? "drop" : real ? "wire-out" : "virtual-out");
        }

        /// <summary>A packet tap, or null for a capture program.</summary>
        public CaptureRing? Ring { get; }

        /// <summary>A capture program on the device's tcx egress, or null for a packet tap.</summary>
        public PerfTap? Program { get; }

        /// <summary>The drop point's tracepoint program, or null.</summary>
        public DropTap? Drops { get; }

        /// <summary>The socket the binding's process sends its managed drops to, or null.</summary>
        public DropSocket? Managed { get; }

        public IEnumerable<FileDescriptor> Handles => Ring is { } r ? [r.Handle] : Managed is { } m ? [m.Handle] : Program?.Handles ?? Drops!.Handles;

        public int InIface { get; }

        public int OutIface { get; }

        public int InPoint { get; }

        public int OutPoint { get; }

        /// <summary>
        /// A tap on <paramref name="device"/> in the namespace at <paramref name="nsPath"/>; with <paramref name="mac"/>,
        /// only the frames to or from it; with <paramref name="vlan"/> 0 or more, only that VLAN's (0: untagged).
        /// <paramref name="real"/>: it feeds the wire points, else the virtual ones.
        /// </summary>
        public static Tap Open(string nsPath, string device, bool real, int inIface, int outIface, PacketFilter? filter, byte[]? mac, int vlan)
        {
            using var program = filter is null ? null : BpfProgram.LoadSocketFilter("virtnet_cap", Compile(filter), device);
            var directions = (inIface >= 0 ? TapDirections.Incoming : 0) | (outIface >= 0 ? TapDirections.Outgoing : 0);
            using var ns = NetNamespace.Open(nsPath);
            var ring = ns.Run(() =>
            {
                using var rtnl = RtNetlink.Open();
                int ifindex = rtnl.GetLink(device).Index;
                return CaptureRing.Open(ifindex, device, directions, program?.Handle);
            });
            return new Tap(ring, null, inIface, outIface, mac, vlan, real);
        }

        /// <summary>A capture program on the tcx egress of the virtual device <paramref name="device"/>: its virtual-out.</summary>
        public static Tap OpenProgram(string nsPath, string device, int outIface, PacketFilter? filter)
        {
            using var ns = NetNamespace.Open(nsPath);
            var program = ns.Run(() =>
            {
                using var rtnl = RtNetlink.Open();
                int ifindex = rtnl.GetLink(device).Index;
                BpfTest? test = filter is null ? null : (asm, yes, no) => filter.Emit(asm, FilterContext.Tc, yes, no);
                return PerfTap.Open(ifindex, device, TcxDirection.Egress, test);
            });
            return new Tap(null, program, -1, outIface, null, -1, real: false);
        }

        /// <summary>
        /// The drop point: drops on the binding's real device (in <paramref name="processNs"/>), its virtual device
        /// (in <paramref name="virtualNs"/>) and its private devices; on a shared real device, with
        /// <paramref name="mac"/>, only frames to or from the binding's MAC (and broadcast and multicast).
        /// </summary>
        public static Tap OpenDrops(string processNs, string virtualNs, BindingStatus binding, int iface, PacketFilter? filter, byte[]? mac)
        {
            var watch = new List<DropWatch>();
            void Add(string nsPath, string device, bool every, bool unspecified)
            {
                using var ns = NetNamespace.Open(nsPath);
                int ifindex = ns.Run(() =>
                {
                    using var rtnl = RtNetlink.Open();
                    return rtnl.TryGetLink(device)?.Index ?? 0;
                });
                if (ifindex > 0)
                {
                    watch.Add(new DropWatch(Inode(ns), ifindex, device, every, unspecified));
                }
            }

            Add(processNs, binding.Real, every: false, unspecified: true);
            Add(virtualNs, binding.Name, every: false, unspecified: false);
            foreach (var device in binding.PrivateDevices)
            {
                Add(processNs, device, every: true, unspecified: true);
            }

            var program = filter is null ? null : BpfProgram.LoadSchedCls("virtnet_capdrop", filter.CompileMatchProgram(FilterContext.Tc), binding.Real);
            try
            {
                return new Tap(null, null, iface, -1, mac, -1, real: false, DropTap.Open(watch)) { DropFilter = program };
            }
            catch
            {
                program?.Dispose();
                throw;
            }
        }

        /// <summary>
        /// The drop point's filter, run here on each record (BPF_PROG_TEST_RUN of its tc form, which sees the frame
        /// from its MAC header as the kernel hands it over): the kernel program keeps every drop of the devices it
        /// watches. A frame the test run refuses (cut inside its IP header) does not match.
        /// </summary>
        public BpfProgram? DropFilter { get; private init; }

        private static unsafe uint Inode(NetNamespace ns)
        {
            string id = NamespaceByPath.Identity(ns); // "net:[4026531840]"
            return uint.TryParse(id.AsSpan(5, Math.Max(0, id.Length - 6)), NumberStyles.None, CultureInfo.InvariantCulture, out uint inode) ? inode : 0;
        }

        /// <summary>
        /// The managed half of the drop point on the user datapath: a socket the binding's process sends the frames
        /// its handlers drop to, filtered as <paramref name="kernel"/> (the kernel half) filters.
        /// </summary>
        public static Tap OpenManagedDrops(BindingStatus binding, int iface, Tap kernel)
            => new(null, null, iface, iface, kernel._mac, -1, real: false, managed: DropSocket.Bind(ControlPaths.Directory, binding.Real, binding.Name)) { DropFilter = kernel.DropFilter, SharesFilter = true };

        /// <summary>Its <see cref="DropFilter"/> belongs to another tap, which disposes it.</summary>
        private bool SharesFilter { get; init; }

        public bool Drain(ref DrainState state) => Ring is { } ring ? ring.Drain(ref state, Visit) : Managed is { } m ? m.Drain(ref state, Visit) : Program is { } program ? program.Drain(ref state, Visit) : Drops!.Drain(ref state, Visit);

        /// <summary>Frames the kernel had no room for, so far (reading a packet tap's count resets it: call once).</summary>
        public ulong Lost() => Ring is { } ring ? ring.TakeStatistics().Drops : Managed is { } m ? m.Lost : Program?.Lost ?? Drops!.Lost;

        public bool Keeps(in TappedFrame frame)
        {
            var data = frame.Data;
            if (frame.Drop is not null)
            {
                // Either way through the real device: to the binding's MAC (or everyone), or from it.
                bool ours = _mac is null || data.Length < 12 || (data[0] & 1) != 0 || data[..6].SequenceEqual(_mac) || data.Slice(6, 6).SequenceEqual(_mac);
                return ours && (DropFilter is null || Matches(DropFilter, data));
            }

            if (data.Length < 14)
            {
                return _mac is null && _vlan < 0;
            }

            if (_mac is not null)
            {
                bool mine = frame.Outgoing ? data.Slice(6, 6).SequenceEqual(_mac) : (data[0] & 1) != 0 || data[..6].SequenceEqual(_mac);
                if (!mine)
                {
                    return false;
                }
            }

            if (_vlan < 0)
            {
                return true;
            }

            int vid = frame.VlanTag >= 0 ? frame.VlanTag & 0xfff
                : data[12] == 0x81 && data[13] == 0x00 && data.Length >= 16 ? ((data[14] << 8) | data[15]) & 0xfff : 0;
            return vid == _vlan;
        }

        private static bool Matches(BpfProgram filter, ReadOnlySpan<byte> frame)
        {
            try
            {
                return filter.TestRun(frame.ToArray()).ReturnValue != 0;
            }
            catch (VirtnetException)
            {
                return false;
            }
        }

        public void Dispose()
        {
            if (!SharesFilter)
            {
                DropFilter?.Dispose();
            }

            Managed?.Dispose();
            Ring?.Dispose();
            Program?.Dispose();
            Drops?.Dispose();
        }

        private static BpfInsn[] Compile(PacketFilter filter)
        {
            var asm = new BpfAssembler();
            var take = asm.DefineLabel();
            var none = asm.DefineLabel();
            filter.Emit(asm, FilterContext.Socket, take, none);
            asm.Mark(take).MovImm(BpfReg.R0, -1).Exit()
               .Mark(none).MovImm(BpfReg.R0, 0).Exit();
            return asm.ToArray();
        }
    }
}
