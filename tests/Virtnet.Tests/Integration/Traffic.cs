// Socket traffic between the namespaces: sockets are created inside a namespace (InNetns) and then used from
// ordinary threads with synchronous calls and timeouts (no async: nothing may start the socket engine while a
// thread is switched, and synchronous calls need none).
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Integration;

internal static class Traffic
{
    public sealed record TransferResult(long Bytes, TimeSpan Elapsed)
    {
        public double MegabytesPerSecond => Bytes / 1048576.0 / Elapsed.TotalSeconds;

        public override string ToString() => $"{Bytes / 1048576.0:F0} MiB in {Elapsed.TotalSeconds:F2} s ({MegabytesPerSecond:F0} MiB/s)";
    }

    /// <summary>
    /// Sends <paramref name="bytes"/> over TCP from (<paramref name="senderNs"/>, <paramref name="senderAddress"/>) to
    /// (<paramref name="receiverNs"/>, <paramref name="receiverAddress"/>) and asserts that exactly the bytes sent
    /// arrived, in order (SHA-256 of both sides; every 1 MiB chunk is distinct).
    /// </summary>
    public static TransferResult TcpTransfer(TestNetns senderNs, string senderAddress, TestNetns receiverNs, string receiverAddress, long bytes, TimeSpan timeout)
    {
        var from = IPAddress.Parse(senderAddress);
        var to = IPAddress.Parse(receiverAddress);
        using var listener = InNetns.Run(receiverNs.Name, () =>
        {
            var s = new Socket(to.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(to, 0));
            s.Listen(1);
            return s;
        });
        using var client = InNetns.Run(senderNs.Name, () =>
        {
            var s = new Socket(from.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(from, 0));
            return s;
        });
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        int stallMs = (int)Math.Min(timeout.TotalMilliseconds, 20_000);
        client.SendTimeout = stallMs;

        byte[]? receivedHash = null;
        long received = 0;
        Exception? receiveError = null;
        Socket? accepted = null;
        var receiver = new Thread(() =>
        {
            try
            {
                if (!listener.Poll(TimeSpan.FromMilliseconds(stallMs), SelectMode.SelectRead))
                {
                    throw new TimeoutException("no connection arrived");
                }

                accepted = listener.Accept();
                accepted.ReceiveTimeout = stallMs;
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[256 * 1024];
                int n;
                while ((n = accepted.Receive(buffer)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    received += n;
                }

                receivedHash = hash.GetHashAndReset();
            }
            catch (Exception e)
            {
                receiveError = e;
            }
        })
        { IsBackground = true, Name = "tcp receiver" };

        byte[]? sentHash = null;
        Exception? sendError = null;
        var sender = new Thread(() =>
        {
            try
            {
                client.Connect(new IPEndPoint(to, port));
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var chunk = new byte[1024 * 1024];
                new Random(12345).NextBytes(chunk);
                for (long offset = 0, i = 0; offset < bytes; i++)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(chunk, i);
                    int len = (int)Math.Min(chunk.Length, bytes - offset);
                    client.Send(chunk, 0, len, SocketFlags.None);
                    hash.AppendData(chunk, 0, len);
                    offset += len;
                }

                client.Shutdown(SocketShutdown.Send);
                sentHash = hash.GetHashAndReset();
            }
            catch (Exception e)
            {
                sendError = e;
            }
        })
        { IsBackground = true, Name = "tcp sender" };

        var watch = Stopwatch.StartNew();
        receiver.Start();
        sender.Start();
        bool done = sender.Join(timeout) & receiver.Join(timeout - watch.Elapsed > TimeSpan.Zero ? timeout - watch.Elapsed : TimeSpan.Zero);
        var elapsed = watch.Elapsed;
        if (!done)
        {
            // Unblock whatever is stuck before the sockets are disposed (Dispose can hang on a blocked receive).
            TryShutdown(client);
            TryShutdown(accepted);
            sender.Join(TimeSpan.FromSeconds(25));
            receiver.Join(TimeSpan.FromSeconds(25));
        }

        accepted?.Dispose();
        string what = $"TCP {senderAddress} -> {receiverAddress}:{port}";
        Assert.True(done, $"{what}: not finished within {timeout.TotalSeconds} s ({received} of {bytes} bytes arrived)");
        Assert.True(sendError is null, $"{what}: sender failed after {received} bytes arrived: {sendError}");
        Assert.True(receiveError is null, $"{what}: receiver failed after {received} bytes: {receiveError}");
        Assert.Equal(bytes, received);
        Assert.True(sentHash!.AsSpan().SequenceEqual(receivedHash), $"{what}: {bytes} bytes arrived but their SHA-256 differs from what was sent");
        return new TransferResult(bytes, elapsed);
    }

    /// <summary>A TCP stream that runs in the background until disposed (or broken), for stopping virtnet under load.</summary>
    public sealed class Blast : IDisposable
    {
        private readonly Socket _listener;
        private readonly Socket _client;
        private readonly Thread _sender;
        private readonly Thread _receiver;
        private Socket? _accepted;
        private volatile bool _stop;
        private long _received;

        public Blast(TestNetns senderNs, string senderAddress, TestNetns receiverNs, string receiverAddress)
        {
            var from = IPAddress.Parse(senderAddress);
            var to = IPAddress.Parse(receiverAddress);
            _listener = InNetns.Run(receiverNs.Name, () =>
            {
                var s = new Socket(to.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                s.Bind(new IPEndPoint(to, 0));
                s.Listen(1);
                return s;
            });
            _client = InNetns.Run(senderNs.Name, () =>
            {
                var s = new Socket(from.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { SendTimeout = 2000 };
                s.Bind(new IPEndPoint(from, 0));
                return s;
            });
            var endpoint = (IPEndPoint)_listener.LocalEndPoint!;
            _receiver = new Thread(() =>
            {
                try
                {
                    if (!_listener.Poll(TimeSpan.FromSeconds(10), SelectMode.SelectRead))
                    {
                        return;
                    }

                    _accepted = _listener.Accept();
                    _accepted.ReceiveTimeout = 2000;
                    var buffer = new byte[256 * 1024];
                    int n;
                    while (!_stop && (n = _accepted.Receive(buffer)) > 0)
                    {
                        Interlocked.Add(ref _received, n);
                    }
                }
                catch (SocketException)
                {
                }
            })
            { IsBackground = true, Name = "blast receiver" };
            _sender = new Thread(() =>
            {
                try
                {
                    _client.Connect(endpoint);
                    var chunk = new byte[256 * 1024];
                    while (!_stop)
                    {
                        _client.Send(chunk);
                    }
                }
                catch (SocketException)
                {
                }
            })
            { IsBackground = true, Name = "blast sender" };
            _receiver.Start();
            _sender.Start();
        }

        public long Received => Interlocked.Read(ref _received);

        public void Dispose()
        {
            _stop = true;
            TryShutdown(_client);
            TryShutdown(_accepted);
            _sender.Join(TimeSpan.FromSeconds(5));
            _receiver.Join(TimeSpan.FromSeconds(5));
            _client.Dispose();
            _accepted?.Dispose();
            _listener.Dispose();
        }
    }

    private static void TryShutdown(Socket? s)
    {
        try
        {
            s?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Sends a UDP datagram to a broadcast address from one namespace and asserts it is received in the other
    /// (a few tries: the first may wait for nothing, but we do not rely on timing).
    /// </summary>
    public static void AssertUdpBroadcast(TestNetns senderNs, string senderAddress, TestNetns receiverNs, string broadcast)
    {
        using var receiver = InNetns.Run(receiverNs.Name, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(IPAddress.Any, 0));
            return s;
        });
        int port = ((IPEndPoint)receiver.LocalEndPoint!).Port;
        using var sender = InNetns.Run(senderNs.Name, () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
            s.Bind(new IPEndPoint(IPAddress.Parse(senderAddress), 0));
            return s;
        });

        string marker = $"virtnet-broadcast-{Guid.NewGuid():N}";
        var payload = System.Text.Encoding.ASCII.GetBytes(marker);
        var buffer = new byte[2048];
        EndPoint source = new IPEndPoint(IPAddress.Any, 0);
        receiver.ReceiveTimeout = 500;
        for (int attempt = 0; attempt < 6; attempt++)
        {
            sender.SendTo(payload, new IPEndPoint(IPAddress.Parse(broadcast), port));
            try
            {
                while (true)
                {
                    int n = receiver.ReceiveFrom(buffer, ref source);
                    if (System.Text.Encoding.ASCII.GetString(buffer, 0, n) == marker)
                    {
                        Assert.Equal(senderAddress, ((IPEndPoint)source).Address.ToString());
                        return;
                    }
                }
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
            }
        }

        Assert.Fail($"UDP broadcast from {senderAddress} ({senderNs.Name}) to {broadcast}:{port} never arrived in {receiverNs.Name}");
    }
}
