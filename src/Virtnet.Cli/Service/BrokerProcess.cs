// The privilege broker of `run` (see Virtnet.Core's Namespaces/Privileged.cs): the same executable started again as
// `virtnet __broker FD` before run drops its capabilities, holding one end of a socketpair that it inherits (the
// only descriptor the parent leaves open across exec). It keeps CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_BPF, does
// nothing but the three operations it is asked for, and exits when run's end of the socket closes: when run exits,
// however it exits. run itself then holds CAP_SYS_ADMIN in no thread.
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Virtnet.Namespaces;
using Virtnet.Native;

namespace Virtnet.Cli.Service;

internal sealed unsafe class BrokerProcess : IDisposable
{
    private const int SIGHUP = 1;
    private const int SIGTERM = 15;
    private const nint SIG_IGN = 1;

    /// <summary>The hidden verb the child is started with.</summary>
    public const string Verb = "__broker";

    private readonly Process _process;
    private readonly BrokerClient _client;

    private BrokerProcess(Process process, BrokerClient client)
    {
        _process = process;
        _client = client;
    }

    /// <summary>The broker's pid (tests read its capability sets).</summary>
    public int Pid => _process.Id;

    /// <summary>What the broker keeps: setns and *_GET_FD_BY_ID need CAP_SYS_ADMIN; tcx links, CAP_NET_ADMIN and CAP_BPF.</summary>
    public static ulong Keeps { get; } = Capabilities.Mask(Capabilities.CAP_SYS_ADMIN, Capabilities.CAP_NET_ADMIN, Capabilities.CAP_BPF);

    /// <summary>Starts the broker and makes it this process's way to the privileged operations.</summary>
    public static BrokerProcess Start()
    {
        int* pair = stackalloc int[2];
        if (Libc.socketpair(Libc.AF_UNIX, Libc.SOCK_SEQPACKET | Libc.SOCK_CLOEXEC, 0, pair) != 0)
        {
            VirtnetException.ThrowLastError("socketpair(AF_UNIX)", "privilege broker");
        }

        var ours = new FileDescriptor(pair[0]);
        using var theirs = new FileDescriptor(pair[1]);
        try
        {
            // Only the child's end crosses exec.
            if (Libc.fcntl(theirs.Fd, Libc.F_SETFD, 0) != 0)
            {
                VirtnetException.ThrowLastError("fcntl(F_SETFD)", "privilege broker");
            }

            var start = new ProcessStartInfo(Environment.ProcessPath ?? "/proc/self/exe") { UseShellExecute = false };
            foreach (var arg in LauncherArguments())
            {
                start.ArgumentList.Add(arg);
            }

            start.ArgumentList.Add(Verb);
            start.ArgumentList.Add(theirs.Fd.ToString(CultureInfo.InvariantCulture));
            var process = Process.Start(start) ?? throw new VirtnetException("exec", "privilege broker", Errno.ENOENT);
            theirs.Dispose();
            if (!Hello(ours, TimeSpan.FromSeconds(30)))
            {
                process.Kill();
                process.Dispose();
                throw new VirtnetException(FailureKind.SystemCall, "start", "privilege broker", "the helper that keeps CAP_SYS_ADMIN for run did not start; see the lines above, or run with -v", Errno.EIO);
            }

            var broker = new BrokerProcess(process, new BrokerClient(ours));
            Privileged.Operations = broker._client;
            return broker;
        }
        catch
        {
            ours.Dispose();
            throw;
        }
    }

    /// <summary>The child's side: keeps what the operations need, then serves until the parent's end closes.</summary>
    public static int Serve(string fdText, ILogger log)
    {
        if (!int.TryParse(fdText, NumberStyles.None, CultureInfo.InvariantCulture, out int fd) || fd < 3)
        {
            Console.Error.WriteLine($"virtnet: {Verb} is virtnet's own helper, started by 'virtnet run'; not a command");
            return Cli.ExitUsage;
        }

        // It ends when run does, by its socket closing: never in the middle of a request, so a Ctrl-C or a
        // SIGTERM to the whole group (systemd's stop) or a SIGHUP (a closed terminal) leaves it to run to end it.
        foreach (int signal in (ReadOnlySpan<int>)[SIGHUP, Libc.SIGINT, SIGTERM])
        {
            _ = Libc.signal(signal, SIG_IGN);
        }

        Privileges.Drop(Keeps, log);
        return FdPassing.Send(fd, [BrokerWire.Hello], []) == Errno.OK ? BrokerServer.Serve(fd) : 0;
    }

    /// <summary>Waits for the broker's first message, sent once it has dropped what it does not keep.</summary>
    private static bool Hello(FileDescriptor socket, TimeSpan timeout)
    {
        var poll = new PollFd { Fd = socket.Fd, Events = Libc.POLLIN };
        if (Libc.poll(&poll, 1, (int)timeout.TotalMilliseconds) != 1)
        {
            return false;
        }

        Span<byte> message = stackalloc byte[16];
        var fds = new List<FileDescriptor>();
        int n = FdPassing.Receive(socket.Fd, message, fds);
        fds.ForEach(f => f.Dispose());
        return n == 1 && message[0] == BrokerWire.Hello;
    }

    public void Dispose()
    {
        if (ReferenceEquals(Privileged.Operations, _client))
        {
            Privileged.Operations = InProcessPrivileges.Instance;
        }

        // Closing our end is the broker's signal to exit.
        _client.Dispose();
        if (!_process.WaitForExit(TimeSpan.FromSeconds(5)))
        {
            _process.Kill();
        }

        _process.Dispose();
    }

    /// <summary>
    /// What comes before virtnet's own arguments on this process's command line: nothing for the native build,
    /// the assembly's path under `dotnet virtnet.dll`.
    /// </summary>
    private static string[] LauncherArguments()
    {
        string[] cmdline;
        try
        {
            cmdline = File.ReadAllText("/proc/self/cmdline").Split('\0')[..^1];
        }
        catch (IOException)
        {
            return [];
        }

        int own = Environment.GetCommandLineArgs().Length - 1;
        return cmdline.Length > own + 1 ? cmdline[1..^own] : [];
    }
}
