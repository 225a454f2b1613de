// The ring road of the forwarder: frames the kernel copied into a TPACKET_V2 receive ring (on the real device, or on a
// shared binding's ring device) are handed to the pipeline in place and written into their port, in batches through io_uring where it is available
// (one io_uring_enter per batch), else with one write() each.
using Virtnet.Devices;
using Virtnet.Native;

namespace Virtnet.Datapaths.User;

internal sealed unsafe partial class Forwarder
{
    /// <summary>
    /// Moves up to <see cref="Batch"/> frames from the receive ring, in place: the slot already holds the
    /// virtio_net_hdr right before the frame, which is exactly what a TAP write takes. An 802.1Q tag the device
    /// stripped (tp_vlan_tci) is put back in front of the EtherType (<see cref="VlanTag"/>). No system call unless
    /// a frame is written.
    /// </summary>
    private int DrainRing()
    {
        var ring = _ring!;
        int moved = 0;
        int queued = 0;
        _staging = _uring is not null;
        _staged = 0;
        Tpacket2Hdr* hdr;
        while (moved < Batch && (hdr = ring.Peek(moved)) != null)
        {
            // Slots are handed back together after the loop: a queued write still reads its slot until the batch
            // is submitted.
            moved++;
            byte* slot = (byte*)hdr;
            byte* mac = slot + hdr->Mac;
            int length = (int)hdr->Snaplen;
            uint status = hdr->Status;
            byte pkttype = ((SockaddrLl*)(slot + Packet.SockaddrOffset))->Pkttype;
            if (pkttype == Packet.PACKET_LOOPBACK || (pkttype == Packet.PACKET_OUTGOING && !_outgoing))
            {
                // The real device's own looped-back multicast (tcx leaves it to the device) or its own
                // transmissions (ours among them): not from the wire.
                continue;
            }

            if (length != hdr->Len || length < EthernetView.HeaderLength)
            {
                _ingress.Drops++;
                _dropSink?.Offer(new ReadOnlySpan<byte>(mac, length), Direction.Ingress, DropCause.SendFailed, length < EthernetView.HeaderLength ? "shorter than an Ethernet header" : "longer than a ring slot");
                continue;
            }

            if ((status & Packet.TP_STATUS_VLAN_VALID) != 0)
            {
                mac = VlanTag.Restore(mac, VlanTag.Tpid(status, hdr->VlanTpid), hdr->VlanTci);
                length += VlanTag.Length;
            }

            byte* p = mac - VirtioNetHdr.Size;
            int n = length + VirtioNetHdr.Size;
            var frame = new Frame(new Span<byte>(p, (int)(slot + PacketRing.SlotSize - p)), n, Direction.Ingress, this, _index);
            int output = Pipeline.Decide(_handlers, ref frame, FirstVirtualPort, _ports.Length, ref _ingress.HandlerDrops, Faults, ref _ingress.HandlerFaults);
            n = frame.Raw.Length; // a handler may have changed its length
            length = n - VirtioNetHdr.Size;
            if (output < 0)
            {
                if (output != Pipeline.Consumed)
                {
                    OnNotDelivered(output, frame, p + VirtioNetHdr.Size, length, Direction.Ingress);
                }

                continue;
            }

            if (_uring is not null)
            {
                _uring.PrepareWrite(output, p, n, (ulong)length);
                queued++;
            }
            else if (TapDevice.Write(_ports[output].Fd, p, n) != Errno.OK)
            {
                _ingress.Drops++;
            }
            else
            {
                _ingress.Frames++;
                _ingress.Bytes += length;
            }
        }

        _staging = false;
        if (queued + _staged > 0)
        {
            CompleteWrites(queued, _staged);
        }

        ring.ReleaseMany(moved);
        return moved;
    }

    /// <summary>
    /// One io_uring_enter for the batch: <paramref name="queued"/> frames and <paramref name="staged"/> copies that
    /// handlers emitted. Each frame's completion counts as a frame moved or a drop, each copy's as emitted or failed.
    /// </summary>
    private void CompleteWrites(int queued, int staged)
    {
        if (_uring!.SubmitAndWait() != Errno.OK)
        {
            // The enter itself failed (not one write): count the batch lost. Completions that did arrive are
            // still reaped below, so the queue stays in step.
            _ingress.Drops += queued;
            _emitFailed += staged;
            while (_uring.TryReap(out _, out _))
            {
            }

            return;
        }

        while (_uring.TryReap(out ulong length, out Errno result))
        {
            if ((length & EmitTag) != 0)
            {
                if (result == Errno.OK)
                {
                    _emitted++;
                }
                else
                {
                    _emitFailed++;
                }
            }
            else if (result != Errno.OK)
            {
                _ingress.Drops++;
            }
            else
            {
                _ingress.Frames++;
                _ingress.Bytes += (long)length;
            }
        }
    }
}
