// UDP through virtnet0: datagrams from tiny to fragmented, and UDP GSO (UDP_SEGMENT) super-datagrams, each way
// and over both IP versions. The user datapath carries these with virtio_net_hdr offload metadata (checksum
// offsets, gso_type UDP_L4): a mistake there shows up as a datagram dropped for a bad checksum or mis-segmented.
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Virtnet.Tests.Integration;

public class UdpTests(ITestOutputHelper output)
{
    private const int X = 10;
    // linux/udp.h
    private const int SOL_UDP = 17;
    private const int UDP_SEGMENT = 103;

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Udp_DatagramsSmallToFragmented_ArriveIntactBothWays(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"udp{datapath[0]}", X, output);
        lab.Up(datapath);
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 1);
        Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));

        int[] sizes = [1, 100, 1472, 1473, 8000, 30000, 65000];
        AssertDatagrams(lab.A, lab.A4, lab.B, lab.B4, sizes, gsoSize: 0);
        AssertDatagrams(lab.B, lab.B4, lab.A, lab.A4, sizes, gsoSize: 0);
        AssertDatagrams(lab.A, lab.A6, lab.B, lab.B6, sizes[..^1], gsoSize: 0);
        AssertDatagrams(lab.B, lab.B6, lab.A, lab.A6, sizes[..^1], gsoSize: 0);
    }

    [SkippableTheory]
    [InlineData("kernel")]
    [InlineData("user")]
    public void Udp_GsoSegmentedSend_ArrivesAsSeparateIntactDatagramsBothWays(string datapath)
    {
        Root.Require();
        using var lab = Lab.Create($"uso{datapath[0]}", X, output);
        lab.Up(datapath);
        Net.AssertPing(lab.A, lab.A4, lab.B4, count: 1);
        Net.WaitForPing(lab.A, lab.A6, lab.B6, TimeSpan.FromSeconds(5));

        // One send of 40 x 1000 bytes with UDP_SEGMENT 1000: 40 datagrams on the wire (or one GSO frame through
        // offload-capable devices, segmented before the receiving socket).
        int[] total = [40 * 1000, 7 * 1000 + 123];
        AssertDatagrams(lab.A, lab.A4, lab.B, lab.B4, total, gsoSize: 1000);
        AssertDatagrams(lab.B, lab.B4, lab.A, lab.A4, total, gsoSize: 1000);
        AssertDatagrams(lab.A, lab.A6, lab.B, lab.B6, total, gsoSize: 1000);
        AssertDatagrams(lab.B, lab.B6, lab.A, lab.A6, total, gsoSize: 1000);
    }

    /// <summary>
    /// Sends one buffer per size (with UDP_SEGMENT when <paramref name="gsoSize"/> &gt; 0) and asserts that what
    /// arrives is exactly the expected datagrams, in order, byte for byte.
    /// </summary>
    private void AssertDatagrams(TestNetns fromNs, string from, TestNetns toNs, string to, int[] sizes, int gsoSize)
    {
        var toAddress = IPAddress.Parse(to);
        var fromAddress = IPAddress.Parse(from);
        using var receiver = InNetns.Run(toNs.Name, () =>
        {
            var s = new Socket(toAddress.AddressFamily, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 2000, ReceiveBufferSize = 4 << 20 };
            s.Bind(new IPEndPoint(toAddress, 0));
            return s;
        });
        using var sender = InNetns.Run(fromNs.Name, () =>
        {
            var s = new Socket(fromAddress.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            s.Bind(new IPEndPoint(fromAddress, 0));
            return s;
        });
        if (gsoSize > 0)
        {
            // An int, though the kernel keeps a u16 (udp_lib_setsockopt).
            var value = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(value, gsoSize);
            sender.SetRawSocketOption(SOL_UDP, UDP_SEGMENT, value);
        }

        var destination = (IPEndPoint)receiver.LocalEndPoint!;
        var buffer = new byte[70000];
        var random = new Random(4242);
        foreach (int size in sizes)
        {
            var data = new byte[size];
            random.NextBytes(data);
            sender.SendTo(data, destination);

            var expected = new List<ArraySegment<byte>>();
            int step = gsoSize > 0 ? gsoSize : size;
            for (int offset = 0; offset < size; offset += step)
            {
                expected.Add(new ArraySegment<byte>(data, offset, Math.Min(step, size - offset)));
            }

            string what = $"UDP {from} -> {to}: {size} bytes{(gsoSize > 0 ? $" sent with UDP_SEGMENT {gsoSize}" : "")}";
            for (int i = 0; i < expected.Count; i++)
            {
                int n;
                try
                {
                    n = receiver.Receive(buffer);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
                {
                    Assert.Fail($"{what}: datagram {i + 1} of {expected.Count} never arrived");
                    return;
                }

                Assert.True(n == expected[i].Count, $"{what}: datagram {i + 1} of {expected.Count} is {n} bytes, expected {expected[i].Count}");
                Assert.True(buffer.AsSpan(0, n).SequenceEqual(expected[i]), $"{what}: datagram {i + 1} of {expected.Count} has other bytes than sent");
            }

            Assert.Equal(0, receiver.Available);
            output.WriteLine($"{what}: {expected.Count} datagram(s) intact");
        }
    }
}
