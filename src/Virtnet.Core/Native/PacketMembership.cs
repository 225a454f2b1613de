// linux/if_packet.h: PACKET_ADD_MEMBERSHIP with PACKET_MR_UNICAST / PACKET_MR_PROMISC on an AF_PACKET socket.
// A socket of protocol 0 receives no frames at all; it exists only to hold the membership, which the kernel
// drops when the socket closes (packet_release -> packet_flush_mclist): released even on SIGKILL.
namespace Virtnet.Native;

internal static unsafe class PacketMembership
{
    /// <summary>
    /// Makes <paramref name="ifindex"/> accept frames for <paramref name="mac"/>: a secondary unicast address
    /// (dev_uc_add), which the kernel turns into promiscuous mode on devices without a unicast filter.
    /// </summary>
    public static FileDescriptor AddUnicast(int ifindex, string device, ReadOnlySpan<byte> mac)
    {
        var fd = FileDescriptor.FromResult(Libc.socket(Packet.AF_PACKET, Libc.SOCK_RAW | Libc.SOCK_CLOEXEC, 0), "socket(AF_PACKET)", device);
        PacketMreq req = default;
        req.Ifindex = ifindex;
        req.Type = Packet.PACKET_MR_UNICAST;
        req.AddressLength = (ushort)mac.Length;
        mac.CopyTo(new Span<byte>(req.Address, 8));
        if (Libc.setsockopt(fd.Fd, Packet.SOL_PACKET, Packet.PACKET_ADD_MEMBERSHIP, &req, sizeof(PacketMreq)) < 0)
        {
            var errno = LastError.Get();
            fd.Dispose();
            throw new VirtnetException("PACKET_ADD_MEMBERSHIP(PACKET_MR_UNICAST)", device, errno);
        }

        return fd;
    }
}
