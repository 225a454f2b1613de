// Design: a non-blocking NETLINK_ROUTE socket bound to RTNLGRP_LINK, polled together with an eventfd.
// Wake() writes the eventfd; Read() drains it and returns null. Dispose() wakes first and then disposes the
// SafeHandles: a Read() in progress holds a reference (DangerousAddRef) on both, so the descriptors are
// closed only after it returns, and their numbers can never be reused under a running poll().
// One datagram may carry several notifications; they are handed out one per Read() from the saved buffer.
using Virtnet.Native;

namespace Virtnet.Netlink;

/// <summary>
/// A subscription to RTNLGRP_LINK (ip monitor link). Read() blocks until a notification or until the
/// monitor is woken by Dispose/Wake from another thread, in which case it returns null.
/// </summary>
/// <remarks>
/// When notifications arrive faster than they are read, the kernel drops some and the next receive fails with
/// ENOBUFS. The monitor then simply carries on: a notification says what a link looks like now, so a caller that
/// must not miss a change re-reads the state it cares about (RtNetlink.GetLink) after each wake-up anyway.
/// Notifications of other address families on the group (AF_BRIDGE port events) are skipped.
/// </remarks>
internal sealed unsafe class LinkMonitor : IDisposable
{
    private readonly NetlinkSocket _socket;
    private readonly FileDescriptor _wake;
    private readonly Lock _readGate = new();
    private byte[] _pending = [];
    private int _pendingOffset;
    private int _pendingLength;
    private volatile bool _disposed;

    private LinkMonitor(NetlinkSocket socket, FileDescriptor wake)
    {
        _socket = socket;
        _wake = wake;
    }

    /// <summary>Equivalent to: <c>ip monitor link</c>, in the calling thread's network namespace.</summary>
    public static LinkMonitor Open()
    {
        var socket = NetlinkSocket.Open(groups: Rtnl.RTMGRP_LINK, nonBlocking: true);
        try
        {
            var wake = FileDescriptor.FromResult(Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK), "eventfd");
            return new LinkMonitor(socket, wake);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The next link notification (new or deleted), null on timeout or when woken.</summary>
    /// <remarks>A Wake() with no Read() waiting makes the next Read() return null at once. One reader at a time.</remarks>
    public LinkInfo? Read(TimeSpan timeout)
    {
        if (_disposed)
        {
            return null;
        }

        bool socketRef = false;
        bool wakeRef = false;
        lock (_readGate)
        {
            try
            {
                _socket.Handle.DangerousAddRef(ref socketRef);
                _wake.DangerousAddRef(ref wakeRef);
                return ReadLocked(timeout);
            }
            catch (ObjectDisposedException)
            {
                // Dispose raced with us: as good as a wake-up.
                return null;
            }
            finally
            {
                if (wakeRef)
                {
                    _wake.DangerousRelease();
                }

                if (socketRef)
                {
                    _socket.Handle.DangerousRelease();
                }
            }
        }
    }

    /// <summary>Makes a blocked Read return null; safe from any thread.</summary>
    public void Wake()
    {
        bool added = false;
        try
        {
            _wake.DangerousAddRef(ref added);
            ulong one = 1;
            Libc.write(_wake.Fd, (byte*)&one, sizeof(ulong));
        }
        catch (ObjectDisposedException)
        {
            // Already disposed: nothing can be waiting.
        }
        finally
        {
            if (added)
            {
                _wake.DangerousRelease();
            }
        }
    }

    /// <summary>Wakes a blocked Read, then closes the socket and the eventfd once no Read uses them.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Wake();
        _socket.Dispose();
        _wake.Dispose();
    }

    private LinkInfo? ReadLocked(TimeSpan timeout)
    {
        long ms = timeout == Timeout.InfiniteTimeSpan ? -1 : (long)Math.Ceiling(Math.Max(0, timeout.TotalMilliseconds));
        long deadline = ms < 0 ? long.MaxValue : Environment.TickCount64 + ms;
        while (true)
        {
            if (TakePending() is { } queued)
            {
                return queued;
            }

            if (_disposed)
            {
                return null;
            }

            int wait = ms < 0 ? -1 : (int)Math.Min(int.MaxValue, Math.Max(0, deadline - Environment.TickCount64));
            int ready = _socket.Wait(wait, _wake.Fd);
            if (ready == 0)
            {
                return null;
            }

            if (ready == 2)
            {
                ulong count;
                Libc.read(_wake.Fd, (byte*)&count, sizeof(ulong));
                return null;
            }

            Errno e = _socket.Receive();
            if (e == Errno.OK)
            {
                Save(_socket.Received);
            }
            else if (e is not (Errno.EAGAIN or Errno.ENOBUFS))
            {
                // ENOBUFS: the kernel dropped notifications (overrun); carry on, see remarks.
                VirtnetException.Throw("recv(RTNLGRP_LINK)", null, e);
            }
        }
    }

    private void Save(ReadOnlySpan<byte> datagram)
    {
        if (_pending.Length < datagram.Length)
        {
            _pending = new byte[Math.Max(datagram.Length, 32 * 1024)];
        }

        datagram.CopyTo(_pending);
        _pendingOffset = 0;
        _pendingLength = datagram.Length;
    }

    /// <summary>The next link notification left in the saved datagram, skipping everything else.</summary>
    private LinkInfo? TakePending()
    {
        while (_pendingOffset < _pendingLength)
        {
            var reader = new NetlinkMessageReader(_pending.AsSpan(_pendingOffset, _pendingLength - _pendingOffset));
            NetlinkMessage m;
            try
            {
                if (!reader.TryRead(out m))
                {
                    break;
                }
            }
            catch (VirtnetException)
            {
                // Drop the rest of a datagram that does not parse, so the next Read starts clean.
                _pendingOffset = _pendingLength = 0;
                throw;
            }

            int consumed = NlMsgHdr.Size + m.Payload.Length;
            _pendingOffset = Math.Min(_pendingLength, _pendingOffset + Nl.Align(consumed));
            if ((m.Type == Rtnl.RTM_NEWLINK || m.Type == Rtnl.RTM_DELLINK)
                && m.ReadHeader<IfInfoMsg>().Family == Rtnl.AF_UNSPEC)
            {
                return RtnlCodec.DecodeLink(m);
            }
        }

        _pendingOffset = _pendingLength = 0;
        return null;
    }
}
