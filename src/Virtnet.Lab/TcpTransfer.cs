// A bounded TCP bulk transfer between two namespaces, the iperf of the demo.
//
// The listener is created inside the server's namespace and the client socket inside the client's (each on a
// NetNamespace.Run thread); sockets keep their namespace, so the transfer itself runs on two plain threads
// born in the caller's namespace. All I/O is synchronous with timeouts, so a broken datapath makes the
// transfer fail within the timeout instead of hanging, and no thread-pool or socket-engine thread is involved.
//
// The stream carries byte (offset mod 251) at every offset: 251 is prime and does not divide the chunk sizes,
// so a lost, repeated or reordered chunk changes the bytes at the receiver, which compares every byte (a
// vectorized SequenceEqual against a precomputed pattern) and the total count.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Virtnet.Namespaces;

namespace Virtnet.Lab;

/// <summary>What a transfer achieved. <see cref="Elapsed"/> runs at the receiver from the first byte to the end of stream.</summary>
internal sealed record TransferResult(long BytesSent, long BytesReceived, TimeSpan Elapsed, bool Verified, string? Error)
{
    public bool Ok => Error is null && Verified && BytesReceived > 0 && BytesReceived == BytesSent;

    /// <summary>Megabytes (10^6 bytes) per second.</summary>
    public double MegabytesPerSecond => Elapsed <= TimeSpan.Zero ? 0 : BytesReceived / Elapsed.TotalSeconds / 1e6;

    public double GigabitsPerSecond => Elapsed <= TimeSpan.Zero ? 0 : BytesReceived * 8 / Elapsed.TotalSeconds / 1e9;
}

internal static class TcpTransfer
{
    private const int Modulus = 251;
    private const int ChunkSize = 128 * 1024;

    // pattern[i] = i mod 251; the bytes expected at stream offset o start at pattern[o mod 251].
    private static readonly byte[] Pattern = BuildPattern();

    /// <summary>
    /// Sends from <paramref name="clientNs"/> to a listener on <paramref name="serverAddress"/> in
    /// <paramref name="serverNs"/> for <paramref name="duration"/> or <paramref name="maxBytes"/>, whichever ends
    /// first. Every blocking step gives up after <paramref name="timeout"/>. Never throws for network failures:
    /// they come back in <see cref="TransferResult.Error"/>.
    /// </summary>
    /// <param name="connectTo">Where the client connects, when not <paramref name="serverAddress"/> (an address translated on the way).</param>
    public static TransferResult Run(NetNamespace serverNs, IPAddress serverAddress, NetNamespace clientNs, TimeSpan duration, long maxBytes, TimeSpan timeout, IPAddress? connectTo = null)
    {
        RuntimeThreads.Start();
        using var listener = serverNs.Run(() =>
        {
            var socket = new Socket(serverAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(serverAddress, 0));
                socket.Listen(1);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        });
        var endpoint = new IPEndPoint(connectTo ?? serverAddress, ((IPEndPoint)listener.LocalEndPoint!).Port);
        using var client = clientNs.Run(() => new Socket(serverAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp));

        var receiver = new Receiver(listener, timeout);
        var thread = new Thread(receiver.Run) { IsBackground = true, Name = "tcp transfer receiver" };
        thread.Start();

        var (sent, sendError) = Send(client, endpoint, duration, maxBytes, timeout);

        // The receiver ends at end of stream, or after its own timeout if the stream stalls.
        if (!thread.Join(timeout + timeout))
        {
            return new TransferResult(sent, receiver.Received, receiver.Elapsed, false, sendError ?? "the receiver did not finish");
        }

        string? error = sendError ?? receiver.Error;
        if (error is null && receiver.Received != sent)
        {
            error = $"sent {sent} bytes but {receiver.Received} arrived";
        }

        return new TransferResult(sent, receiver.Received, receiver.Elapsed, receiver.Verified, error);
    }

    private static (long Sent, string? Error) Send(Socket client, IPEndPoint endpoint, TimeSpan duration, long maxBytes, TimeSpan timeout)
    {
        long sent = 0;
        try
        {
            ConnectWithTimeout(client, endpoint, timeout);
        }
        catch (SocketException e)
        {
            return (0, $"connecting to {endpoint}: {Describe(e)}");
        }

        try
        {
            client.NoDelay = true;
            client.SendTimeout = (int)timeout.TotalMilliseconds;
            long end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            while (sent < maxBytes && Stopwatch.GetTimestamp() < end)
            {
                int length = (int)Math.Min(ChunkSize, maxBytes - sent);
                sent += client.Send(Pattern.AsSpan((int)(sent % Modulus), length), SocketFlags.None);
            }

            client.Shutdown(SocketShutdown.Send);
            return (sent, null);
        }
        catch (SocketException e)
        {
            return (sent, $"sending: {Describe(e)}");
        }
    }

    /// <summary>A connect that gives up: a non-blocking connect(2) then poll(2) for writability.</summary>
    private static void ConnectWithTimeout(Socket socket, IPEndPoint endpoint, TimeSpan timeout)
    {
        socket.Blocking = false;
        try
        {
            socket.Connect(endpoint);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            if (!socket.Poll(timeout, SelectMode.SelectWrite))
            {
                throw new SocketException((int)SocketError.TimedOut);
            }

            int error = (int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
            if (error != 0)
            {
                throw new SocketException(error);
            }
        }

        socket.Blocking = true;
    }

    private static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.TimedOut or SocketError.WouldBlock => "timed out",
        SocketError.ConnectionRefused => "connection refused",
        SocketError.ConnectionReset => "connection reset",
        _ => e.Message,
    };

    private static byte[] BuildPattern()
    {
        var pattern = new byte[Modulus + ChunkSize];
        for (int i = 0; i < pattern.Length; i++)
        {
            pattern[i] = (byte)(i % Modulus);
        }

        return pattern;
    }

    private sealed class Receiver(Socket listener, TimeSpan timeout)
    {
        public long Received { get; private set; }

        public TimeSpan Elapsed { get; private set; }

        public bool Verified { get; private set; } = true;

        public string? Error { get; private set; }

        public void Run()
        {
            try
            {
                if (!listener.Poll(timeout, SelectMode.SelectRead))
                {
                    Error = "no connection arrived";
                    Verified = false;
                    return;
                }

                using var connection = listener.Accept();
                connection.ReceiveTimeout = (int)timeout.TotalMilliseconds;
                var buffer = new byte[ChunkSize];
                long start = 0;
                while (true)
                {
                    int n = connection.Receive(buffer, SocketFlags.None);
                    if (n == 0)
                    {
                        break;
                    }

                    if (start == 0)
                    {
                        start = Stopwatch.GetTimestamp();
                    }

                    if (Verified && !buffer.AsSpan(0, n).SequenceEqual(Pattern.AsSpan((int)(Received % Modulus), n)))
                    {
                        Verified = false;
                        Error = $"the bytes at offset {Received} differ from what was sent";
                    }

                    Received += n;
                }

                Elapsed = start == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(start);
            }
            catch (SocketException e)
            {
                Verified = false;
                Error = $"receiving: {Describe(e)}";
            }
            catch (Exception e)
            {
                // This runs on its own thread: an escaping exception would end the process.
                Verified = false;
                Error = $"receiving: {e.Message}";
            }
        }
    }
}
