// The capture's end of the managed drops (Virtnet.Core's Datapaths/DropSink.cs): a Unix datagram socket in the
// control directory (root's alone), named for this process, to which the binding's forwarders send each frame they
// drop in managed code while the capture runs. Gone with the capture: its path is removed at the end, and a binding
// whose send is refused stops sending.
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Virtnet.Capture;
using Virtnet.Datapaths;
using Virtnet.Native;

namespace Virtnet.Cli.Service;

internal sealed unsafe class DropSocket : IDisposable
{
    private readonly FileDescriptor _fd;
    private readonly byte[] _buffer = GC.AllocateArray<byte>(DropSink.HeaderSize + DropSink.MaxReason + DropSink.MaxFrame + 64, pinned: true);
    private readonly string _ingressDevice;
    private readonly string _egressDevice;
    private int _lost;

    private DropSocket(FileDescriptor fd, string path, string ingressDevice, string egressDevice)
    {
        _fd = fd;
        Path = path;
        _ingressDevice = ingressDevice;
        _egressDevice = egressDevice;
    }

    public string Path { get; }

    public FileDescriptor Handle => _fd;

    /// <summary>Records the binding could not send because this socket was full (as the last record said).</summary>
    public ulong Lost => (ulong)_lost;

    /// <summary>
    /// A socket at DIR/PID.drops; frames coming in from <paramref name="ingressDevice"/> and going out from
    /// <paramref name="egressDevice"/> are named so in the records.
    /// </summary>
    public static DropSocket Bind(string directory, string ingressDevice, string egressDevice)
    {
        string path = System.IO.Path.Combine(directory, $"{Environment.ProcessId}.drops");
        File.Delete(path);
        var fd = DropSink.Datagram(path, bind: true);
        try
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            int size = 8 << 20;
            if (Libc.setsockopt(fd.Fd, Libc.SOL_SOCKET, Libc.SO_RCVBUFFORCE, &size, sizeof(int)) != 0)
            {
                Libc.setsockopt(fd.Fd, Libc.SOL_SOCKET, Libc.SO_RCVBUF, &size, sizeof(int));
            }

            return new DropSocket(fd, path, ingressDevice, egressDevice);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Hands every record that arrived to <paramref name="visit"/>; false when the visitor asked to stop.</summary>
    public bool Drain<T>(ref T state, CaptureRing.Visitor<T> visit)
    {
        fixed (byte* buffer = _buffer)
        {
            while (true)
            {
                nint n = Libc.recv(_fd.Fd, buffer, _buffer.Length, Libc.MSG_DONTWAIT);
                if (n < DropSink.HeaderSize)
                {
                    if (n < 0)
                    {
                        return true; // EAGAIN: no more for now
                    }

                    continue;
                }

                var h = new ReadOnlySpan<byte>(buffer, DropSink.HeaderSize);
                if (BinaryPrimitives.ReadUInt32LittleEndian(h) != DropSink.Magic)
                {
                    continue;
                }

                _lost = Math.Max(_lost, BinaryPrimitives.ReadInt32LittleEndian(h[4..]));
                long when = BinaryPrimitives.ReadInt64LittleEndian(h[8..]);
                int length = BinaryPrimitives.ReadInt32LittleEndian(h[16..]);
                bool egress = h[20] != 0;
                var cause = (DropCause)h[21];
                int reasonLength = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(h[22..]), (int)n - DropSink.HeaderSize);
                string reason = Encoding.UTF8.GetString(buffer + DropSink.HeaderSize, reasonLength);
                int captured = (int)n - DropSink.HeaderSize - reasonLength;
                var record = new DropRecord(reason.Length == 0 ? cause.Key() : $"{cause.Key()} ({reason})", egress ? _egressDevice : _ingressDevice, "virtnet's user datapath");
                var frame = new TappedFrame(buffer + DropSink.HeaderSize + reasonLength, captured, Math.Max(length, captured), when, egress, -1, record);
                if (!visit(ref state, frame))
                {
                    return false;
                }
            }
        }
    }

    public void Dispose()
    {
        _fd.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }
    }

    public override string ToString() => Path.ToString(CultureInfo.InvariantCulture);
}
