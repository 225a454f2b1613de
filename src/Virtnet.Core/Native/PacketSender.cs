// linux/if_packet.h: an AF_PACKET socket that only transmits, on one device, each frame preceded by its
// virtio_net_hdr (PACKET_VNET_HDR), so checksum-offloaded frames and GSO super-frames go out with their metadata.
// Protocol 0: it receives nothing. Transmissions take the device's ordinary path (qdisc, tcx egress, driver).
namespace Virtnet.Native;

internal static unsafe class PacketSender
{
    /// <summary>A transmit-only packet socket bound to <paramref name="ifindex"/>.</summary>
    public static FileDescriptor Open(int ifindex, string device)
    {
        var fd = FileDescriptor.FromResult(Libc.socket(Packet.AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0), "socket(AF_PACKET)", device);
        try
        {
            int one = 1;
            if (Libc.setsockopt(fd.Fd, Packet.SOL_PACKET, Packet.PACKET_VNET_HDR, &one, sizeof(int)) < 0)
            {
                VirtnetException.ThrowLastError("PACKET_VNET_HDR", device);
            }

            var ll = new SockaddrLl { Family = Packet.AF_PACKET, Protocol = 0, Ifindex = ifindex };
            if (Libc.bind(fd.Fd, &ll, sizeof(SockaddrLl)) < 0)
            {
                VirtnetException.ThrowLastError("bind(AF_PACKET)", device);
            }

            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Sends one frame (virtio_net_hdr + Ethernet frame): OK, or the errno. Never throws.</summary>
    public static Errno Send(int fd, byte* frame, int length)
        => Libc.send(fd, frame, length, 0) >= 0 ? Errno.OK : LastError.Get();
}
