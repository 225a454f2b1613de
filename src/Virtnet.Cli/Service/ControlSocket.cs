// The control socket: every virtnet process that runs bindings answers on /run/virtnet/PID.sock (directory 0700,
// socket 0600, both root's), one JSON request line in, one JSON reply line out. show, stats and detach are clients
// that ask every socket there; a socket nobody answers on (its process died) is removed by whoever finds it.
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Virtnet.Cli.Service;

/// <summary>Where the sockets are, and the one sentence for a caller who may not reach them.</summary>
internal static class ControlPaths
{
    /// <summary>The directory; VIRTNET_RUN_DIR moves it (tests that must not see the host's bindings).</summary>
    public static string Directory => Environment.GetEnvironmentVariable("VIRTNET_RUN_DIR") ?? AttachGuard.RuntimeDirectory;

    public static string SocketOf(int pid) => Path.Combine(Directory, $"{pid}.sock");

    public static string NotRoot(string command)
        => $"{command} needs root: the control sockets in {Directory} are root's alone; run 'sudo virtnet {command}'";
}

/// <summary>The server side, in each process that runs bindings.</summary>
internal sealed class ControlServer : IDisposable
{
    private static readonly TimeSpan DetachTimeout = TimeSpan.FromSeconds(30);
    private readonly BindingHost _host;
    private readonly ILogger _log;
    private readonly Socket _listener;
    private readonly Thread _thread;
    private readonly string _path;
    private volatile bool _closing;

    private ControlServer(BindingHost host, ILogger log, Socket listener, string path)
    {
        _host = host;
        _log = log;
        _listener = listener;
        _path = path;
        _thread = new Thread(AcceptLoop) { Name = "virtnet control", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Listens on /run/virtnet/PID.sock; a process that cannot (not root, read-only /run) logs why and runs without one.</summary>
    public static ControlServer? TryStart(BindingHost host, ILogger log)
    {
        string dir = ControlPaths.Directory;
        string path = ControlPaths.SocketOf(Environment.ProcessId);
        Socket? listener = null;
        try
        {
            System.IO.Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.Delete(path); // a dead process's, with our pid
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(16);
            return new ControlServer(host, log, listener, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException)
        {
            listener?.Dispose();
            string said = $"no control socket at {path} ({e.Message}): show, stats and detach will not see this process";
            if (e is UnauthorizedAccessException)
            {
                // Not root: the command fails on its own account, in one sentence; this is only a detail.
                log.Debug(said);
            }
            else
            {
                log.Warn(said);
            }

            return null;
        }
    }

    private void AcceptLoop()
    {
        while (!_closing)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }

            using (client)
            {
                try
                {
                    client.ReceiveTimeout = 5000;
                    client.SendTimeout = 5000;
                    var request = JsonSerializer.Deserialize(ReadLine(client), ControlJson.Default.ControlRequest);
                    var reply = request is null ? new ControlReply { Error = "empty request" } : Answer(request);
                    client.Send(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(reply, ControlJson.Default.ControlReply) + "\n"));
                }
                catch (Exception e) when (e is SocketException or JsonException or IOException)
                {
                    _log.Debug($"control request failed: {e.Message}");
                }
                catch (Exception e)
                {
                    // A bug in answering must not take the bindings down with it.
                    _log.Error($"internal error answering a control request, please report it: {e}");
                }
            }
        }
    }

    private ControlReply Answer(ControlRequest request)
    {
        switch (request.Command)
        {
            case "show":
                return new ControlReply { Bindings = _host.Bindings.Select(_host.Status).ToList() };
            case "stats":
                return new ControlReply { Bindings = _host.Find(request.Name ?? "").Select(_host.Status).ToList() };
            case "detach":
                var found = _host.Find(request.Name ?? "");
                if (found.Count != 1)
                {
                    // None here, or more than one: the client decides with every process's answer.
                    return new ControlReply { Bindings = found.Select(_host.Status).ToList() };
                }

                var status = _host.Status(found[0]);
                _log.Info($"{found[0].Attachment.VirtualName}: detach asked on the control socket");
                string? stopped = BindingHost.Stop(found[0], DetachTimeout);
                return stopped is null
                    ? new ControlReply { Bindings = [status], Error = $"{status.Name} did not stop within {DetachTimeout.TotalSeconds} s" }
                    : new ControlReply { Bindings = [status], Stopped = stopped };
            case "drops":
                return SendDrops(request);
            default:
                return new ControlReply { Error = $"unknown command '{request.Command}'" };
        }
    }

    /// <summary>drops: the binding's managed drops to a capture's socket, which must be one in the control directory.</summary>
    private ControlReply SendDrops(ControlRequest request)
    {
        var found = _host.Find(request.Name ?? "");
        if (found.Count != 1)
        {
            return new ControlReply { Bindings = found.Select(_host.Status).ToList() };
        }

        var binding = found[0];
        if (request.Socket is { } path && Path.GetDirectoryName(Path.GetFullPath(path)) != Path.GetFullPath(ControlPaths.Directory))
        {
            return new ControlReply { Error = $"{path}: a capture's socket must be in {ControlPaths.Directory}" };
        }

        try
        {
            bool sends = binding.Attachment.SendDropsTo(request.Socket);
            _log.Debug($"{binding.Attachment.VirtualName}: managed drops {(request.Socket is null ? "no longer sent" : sends ? $"sent to {request.Socket}" : "none (its datapath drops nothing in managed code)")}");
            return new ControlReply { Bindings = [_host.Status(binding)] };
        }
        catch (VirtnetException e)
        {
            return new ControlReply { Error = e.Message };
        }
    }

    internal static string ReadLine(Socket socket)
    {
        var buffer = new byte[4096];
        var line = new List<byte>();
        while (line.Count < 1 << 20)
        {
            int n = socket.Receive(buffer);
            if (n == 0)
            {
                break;
            }

            int newline = Array.IndexOf(buffer, (byte)'\n', 0, n);
            line.AddRange(buffer.AsSpan(0, newline < 0 ? n : newline).ToArray());
            if (newline >= 0)
            {
                break;
            }
        }

        return Encoding.UTF8.GetString([.. line]);
    }

    public void Dispose()
    {
        _closing = true;
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }

        // shutdown() wakes a thread blocked in accept(); close alone does not on Linux.
        try
        {
            _listener.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }

        _listener.Dispose();
        _thread.Join(TimeSpan.FromSeconds(5));
    }
}

/// <summary>One process's answer, for the client.</summary>
internal sealed record ProcessReply(int Pid, ControlReply Reply);

/// <summary>The client side: asks every virtnet process on the host.</summary>
internal static class ControlClient
{
    /// <summary>
    /// Sends <paramref name="request"/> to every live socket and returns the replies; removes sockets whose process
    /// is gone. Throws <see cref="UnauthorizedAccessException"/> when the caller may not reach them.
    /// </summary>
    public static List<ProcessReply> AskAll(ControlRequest request, TimeSpan? timeout = null)
    {
        string dir = ControlPaths.Directory;
        var replies = new List<ProcessReply>();
        if (!Directory.Exists(dir))
        {
            // A non-root caller cannot tell a missing directory from one it may not enter: say the same either way.
            return Caller.IsRoot ? replies : throw new UnauthorizedAccessException(dir);
        }

        var sockets = Directory.EnumerateFiles(dir, "*.sock")
            .Select(path => (Path: path, Pid: int.TryParse(Path.GetFileNameWithoutExtension(path), out int pid) ? pid : 0))
            .Where(s => s.Pid > 0)
            .OrderBy(s => s.Pid)
            .ToList();
        foreach (var (path, pid) in sockets)
        {
            if (Ask(path, request, timeout ?? TimeSpan.FromSeconds(10)) is { } reply)
            {
                replies.Add(new ProcessReply(pid, reply));
            }
        }

        return replies;
    }

    /// <summary>Sends <paramref name="request"/> to one process; null if it does not answer.</summary>
    public static ControlReply? AskOne(int pid, ControlRequest request, TimeSpan? timeout = null)
        => Ask(ControlPaths.SocketOf(pid), request, timeout ?? TimeSpan.FromSeconds(60));

    private static ControlReply? Ask(string path, ControlRequest request, TimeSpan timeout)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            // Nobody listens: the process died without removing it.
            TryDelete(path);
            return null;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AccessDenied)
        {
            throw new UnauthorizedAccessException(path, e);
        }

        socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        socket.SendTimeout = (int)timeout.TotalMilliseconds;
        try
        {
            socket.Send(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(request, ControlJson.Default.ControlRequest) + "\n"));
            string line = ControlServer.ReadLine(socket);
            return line.Length == 0 ? null : JsonSerializer.Deserialize(line, ControlJson.Default.ControlReply);
        }
        catch (Exception e) when (e is SocketException or JsonException)
        {
            return null;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>The caller's privilege, as the client needs it.</summary>
internal static class Caller
{
    public static bool IsRoot => Virtnet.Native.Libc.geteuid() == 0;
}
