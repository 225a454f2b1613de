// sd_notify(3) without libsystemd: with NOTIFY_SOCKET set (Type=notify units), each state change is one datagram
// of newline-separated VAR=value lines to that AF_UNIX socket; a leading '@' names an abstract socket. Without the
// variable every call does nothing. The protocol: https://www.freedesktop.org/software/systemd/man/sd_notify.html
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Virtnet.Cli.Service;

internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;
    private readonly ILogger _log;

    public SystemdNotifier(ILogger log, string? notifySocket = null)
    {
        _log = log;
        string? path = notifySocket ?? Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path) || (path[0] != '/' && path[0] != '@'))
        {
            return;
        }

        _endpoint = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>Whether a service manager listens.</summary>
    public bool Enabled => _socket is not null;

    /// <summary>READY=1 with a status line: every binding is up.</summary>
    public void Ready(string status) => Send($"READY=1\nSTATUS={status}");

    /// <summary>STATUS= alone.</summary>
    public void Status(string status) => Send($"STATUS={status}");

    /// <summary>RELOADING=1 with the monotonic clock, as Type=notify-reload wants it too.</summary>
    public void Reloading() => Send($"RELOADING=1\nMONOTONIC_USEC={MonotonicMicroseconds()}\nSTATUS=reloading the configuration");

    /// <summary>STOPPING=1: the bindings are being undone.</summary>
    public void Stopping() => Send("STOPPING=1\nSTATUS=stopping");

    private void Send(string message)
    {
        if (_socket is null)
        {
            return;
        }

        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(message), _endpoint!);
        }
        catch (SocketException e)
        {
            _log.Warn($"could not notify the service manager on NOTIFY_SOCKET: {e.Message}");
        }
    }

    private static long MonotonicMicroseconds()
        => System.Diagnostics.Stopwatch.GetTimestamp() / (System.Diagnostics.Stopwatch.Frequency / 1_000_000);

    public void Dispose() => _socket?.Dispose();
}
