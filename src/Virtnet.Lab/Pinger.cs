// ICMP echo without ping(8): a raw socket per address family (RFC 792 for IPv4, RFC 4443 for IPv6).
//
// The socket is created on a thread inside the namespace (NetNamespace.Run) and stays bound to that namespace
// for its whole life, so the sends and receives can then happen on any thread. Everything is synchronous:
// Socket.Poll with a deadline, no async, no timers, so nothing here can start thread-pool or socket-engine
// threads (see NetNamespace.cs for why that matters).
//
// A raw ICMP socket receives a copy of every ICMP message of its family in the namespace, including replies
// meant for other pingers; replies are matched on identifier, sequence, source address and payload.
// IPv4 raw sockets hand over the IP header too and leave the checksum to us; for ICMPv6 the kernel always
// computes the checksum (RFC 3542 section 3.1) and strips the IPv6 header.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Virtnet.Namespaces;

namespace Virtnet.Lab;

/// <summary>The outcome of one round of echo requests to one address.</summary>
internal sealed record PingResult(IPAddress Target, int Sent, IReadOnlyList<TimeSpan> RoundTrips, int Duplicates, int Corrupt)
{
    public int Received => RoundTrips.Count;

    /// <summary>Every request answered exactly once with its own payload.</summary>
    public bool Complete => Sent > 0 && Received == Sent && Duplicates == 0 && Corrupt == 0;

    public TimeSpan Min => Received == 0 ? TimeSpan.Zero : RoundTrips.Min();

    public TimeSpan Max => Received == 0 ? TimeSpan.Zero : RoundTrips.Max();

    public TimeSpan Average => Received == 0 ? TimeSpan.Zero : TimeSpan.FromTicks((long)RoundTrips.Average(t => t.Ticks));
}

/// <summary>Sends ICMP echo requests and collects the replies (ping(8) without the process).</summary>
internal sealed class Pinger : IDisposable
{
    private const byte Icmp4EchoRequest = 8;
    private const byte Icmp4EchoReply = 0;
    private const byte Icmp6EchoRequest = 128;
    private const byte Icmp6EchoReply = 129;
    private const int HeaderLength = 8;
    private const int PayloadLength = 56;

    private static readonly TimeSpan DuplicateLinger = TimeSpan.FromMilliseconds(20);

    private readonly Socket _socket;
    private readonly byte[] _send = new byte[HeaderLength + PayloadLength];
    private readonly byte[] _receive = new byte[2048];
    private ushort _nextSequence = 1;

    private Pinger(Socket socket)
    {
        _socket = socket;
        Identifier = (ushort)RandomNumberGenerator.GetInt32(1, ushort.MaxValue);
    }

    /// <summary>The ICMP identifier of this pinger's requests (random, so concurrent pingers do not mix).</summary>
    public ushort Identifier { get; }

    public AddressFamily Family => _socket.AddressFamily;

    /// <summary>A pinger whose socket lives in <paramref name="ns"/>.</summary>
    public static Pinger Open(NetNamespace ns, AddressFamily family)
    {
        RuntimeThreads.Start();
        return ns.Run(() => Open(family));
    }

    /// <summary>A pinger in the network namespace of the calling thread.</summary>
    public static Pinger Open(AddressFamily family) => family switch
    {
        AddressFamily.InterNetwork => new Pinger(new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Icmp)),
        AddressFamily.InterNetworkV6 => new Pinger(new Socket(AddressFamily.InterNetworkV6, SocketType.Raw, ProtocolType.IcmpV6)),
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "ICMP echo needs IPv4 or IPv6"),
    };

    /// <summary>
    /// Sends <paramref name="count"/> requests <paramref name="interval"/> apart and waits up to
    /// <paramref name="timeout"/> after the last one. Blocks the calling thread for at most
    /// (count - 1) * interval + timeout.
    /// </summary>
    public PingResult Ping(IPAddress target, int count, TimeSpan interval, TimeSpan timeout)
    {
        if (target.AddressFamily != Family)
        {
            throw new ArgumentException($"{target} is not an {Family} address", nameof(target));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ushort first = _nextSequence;
        _nextSequence = unchecked((ushort)(_nextSequence + count));
        var sentAt = new long[count];
        var answered = new bool[count];
        var roundTrips = new List<TimeSpan>(count);
        var round = new Round(target, first, count, sentAt, answered, roundTrips);
        var destination = new IPEndPoint(target, 0);

        for (int i = 0; i < count; i++)
        {
            ushort sequence = unchecked((ushort)(first + i));
            int length = BuildRequest(sequence);
            sentAt[i] = Stopwatch.GetTimestamp();
            try
            {
                _socket.SendTo(_send.AsSpan(0, length), SocketFlags.None, destination);
            }
            catch (SocketException)
            {
                // Unreachable network or no route: the request is lost, which the result shows as a missing reply.
            }

            bool last = i == count - 1;
            long deadline = sentAt[i] + Ticks(last ? timeout : interval);
            Collect(round, deadline, stopWhenComplete: last);
        }

        return new PingResult(target, count, roundTrips, round.Duplicates, round.Corrupt);
    }

    /// <summary>
    /// Pings once per attempt until one reply comes back, giving ARP/ND time to resolve.
    /// Returns the attempt that was answered (1 = the first), or 0 if none was.
    /// </summary>
    public int WaitForReply(IPAddress target, int attempts, TimeSpan timeoutEach)
    {
        for (int attempt = 1; attempt <= attempts; attempt++)
        {
            if (Ping(target, 1, TimeSpan.Zero, timeoutEach).Received > 0)
            {
                return attempt;
            }
        }

        return 0;
    }

    public void Dispose() => _socket.Dispose();

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private int BuildRequest(ushort sequence)
    {
        var packet = _send.AsSpan();
        packet[0] = Family == AddressFamily.InterNetwork ? Icmp4EchoRequest : Icmp6EchoRequest;
        packet[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(packet[2..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(packet[4..], Identifier);
        BinaryPrimitives.WriteUInt16BigEndian(packet[6..], sequence);
        FillPayload(packet[HeaderLength..], sequence);
        if (Family == AddressFamily.InterNetwork)
        {
            BinaryPrimitives.WriteUInt16BigEndian(packet[2..], Datapaths.InternetChecksum.Compute(packet));
        }

        return packet.Length;
    }

    /// <summary>A payload that differs per sequence, so a reply carrying another request's bytes is caught.</summary>
    private static void FillPayload(Span<byte> payload, ushort sequence)
    {
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] = unchecked((byte)(sequence * 7 + i));
        }
    }

    private static bool PayloadMatches(ReadOnlySpan<byte> payload, ushort sequence)
    {
        if (payload.Length != PayloadLength)
        {
            return false;
        }

        for (int i = 0; i < payload.Length; i++)
        {
            if (payload[i] != unchecked((byte)(sequence * 7 + i)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Reads replies until <paramref name="deadline"/> (a Stopwatch timestamp).</summary>
    private void Collect(Round round, long deadline, bool stopWhenComplete)
    {
        EndPoint from = Family == AddressFamily.InterNetwork ? new IPEndPoint(IPAddress.Any, 0) : new IPEndPoint(IPAddress.IPv6Any, 0);
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (stopWhenComplete && round.AllAnswered)
            {
                // Everything is in; stay a moment longer so that a duplicate of the last reply is still seen.
                deadline = Math.Min(deadline, now + Ticks(DuplicateLinger));
                stopWhenComplete = false;
            }

            if (now >= deadline)
            {
                return;
            }

            var wait = TimeSpan.FromSeconds((double)(deadline - now) / Stopwatch.Frequency);
            if (!_socket.Poll(wait, SelectMode.SelectRead))
            {
                continue;
            }

            int length;
            try
            {
                length = _socket.ReceiveFrom(_receive, SocketFlags.None, ref from);
            }
            catch (SocketException)
            {
                // An ICMP error queued on the socket (e.g. host unreachable): not a reply.
                continue;
            }

            long received = Stopwatch.GetTimestamp();
            Accept(round, _receive.AsSpan(0, length), ((IPEndPoint)from).Address, received);
        }
    }

    private void Accept(Round round, ReadOnlySpan<byte> packet, IPAddress source, long receivedAt)
    {
        byte replyType = Icmp6EchoReply;
        if (Family == AddressFamily.InterNetwork)
        {
            if (packet.Length < 20)
            {
                return;
            }

            int ipHeaderLength = (packet[0] & 0x0F) * 4;
            if (packet.Length < ipHeaderLength)
            {
                return;
            }

            packet = packet[ipHeaderLength..];
            replyType = Icmp4EchoReply;
        }

        if (packet.Length < HeaderLength || packet[0] != replyType || packet[1] != 0
            || BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) != Identifier || !source.Equals(round.Target))
        {
            return;
        }

        ushort sequence = BinaryPrimitives.ReadUInt16BigEndian(packet[6..]);
        int index = unchecked((ushort)(sequence - round.First));
        if (index >= round.Count)
        {
            return; // a late answer to an earlier round
        }

        if (!PayloadMatches(packet[HeaderLength..], sequence))
        {
            round.Corrupt++;
            return;
        }

        if (round.Answered[index])
        {
            round.Duplicates++;
            return;
        }

        round.Answered[index] = true;
        round.AnsweredCount++;
        round.RoundTrips.Add(TimeSpan.FromSeconds((double)(receivedAt - round.SentAt[index]) / Stopwatch.Frequency));
    }

    private sealed class Round(IPAddress target, ushort first, int count, long[] sentAt, bool[] answered, List<TimeSpan> roundTrips)
    {
        public IPAddress Target { get; } = target;
        public ushort First { get; } = first;
        public int Count { get; } = count;
        public long[] SentAt { get; } = sentAt;
        public bool[] Answered { get; } = answered;
        public List<TimeSpan> RoundTrips { get; } = roundTrips;
        public int AnsweredCount { get; set; }
        public int Duplicates { get; set; }
        public int Corrupt { get; set; }

        public bool AllAnswered => AnsweredCount == Count;
    }
}
