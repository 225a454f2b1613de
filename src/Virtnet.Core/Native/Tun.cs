// linux/if_tun.h, linux/if.h (struct ifreq)
using System.Runtime.InteropServices;

namespace Virtnet.Native;

internal static class Tun
{
    public const nuint TUNSETIFF = 0x400454ca;
    public const nuint TUNSETPERSIST = 0x400454cb;
    public const nuint TUNSETOFFLOAD = 0x400454d0;
    public const nuint TUNGETIFF = 0x800454d2;
    public const nuint TUNSETSNDBUF = 0x400454d4;
    public const nuint TUNGETVNETHDRSZ = 0x800454d7;
    public const nuint TUNSETVNETHDRSZ = 0x400454d8;
    public const nuint TUNSETQUEUE = 0x400454d9;
    public const nuint TUNSETCARRIER = 0x400454e2;
    public const nuint TUNSETSTEERINGEBPF = 0x800454e0;

    public const short IFF_TUN = 0x0001;
    public const short IFF_TAP = 0x0002;
    public const short IFF_NAPI = 0x0010;
    public const short IFF_NAPI_FRAGS = 0x0020;
    public const short IFF_NO_CARRIER = 0x0040;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_ONE_QUEUE = 0x2000;
    public const short IFF_VNET_HDR = 0x4000;
    public const short IFF_TUN_EXCL = unchecked((short)0x8000);
    public const short IFF_MULTI_QUEUE = 0x0100;
    public const short IFF_ATTACH_QUEUE = 0x0200;
    public const short IFF_DETACH_QUEUE = 0x0400;

    public const uint TUN_F_CSUM = 0x01;
    public const uint TUN_F_TSO4 = 0x02;
    public const uint TUN_F_TSO6 = 0x04;
    public const uint TUN_F_TSO_ECN = 0x08;
    public const uint TUN_F_UFO = 0x10;
    public const uint TUN_F_USO4 = 0x20;
    public const uint TUN_F_USO6 = 0x40;

    public const int IFNAMSIZ = 16;
}

/// <summary>struct ifreq as TUNSETIFF uses it: the name, then ifr_flags; 40 bytes on 64-bit.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct IfReqFlags
{
    [FieldOffset(0)]
    public fixed byte Name[16];

    [FieldOffset(16)]
    public short Flags;
}
