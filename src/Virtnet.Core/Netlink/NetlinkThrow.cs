using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Virtnet.Native;

namespace Virtnet.Netlink;

/// <summary>Throw sites of the netlink codec, kept out of line so the readers and writers stay small.</summary>
internal static class NetlinkThrow
{
    public const string Operation = "netlink";

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Malformed(string what)
        => throw new VirtnetException(FailureKind.Malformed, Operation, null, $"malformed netlink message: {what}", Errno.EBADMSG);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Overflow(int needed)
        => throw new VirtnetException(FailureKind.Malformed, Operation, null, $"netlink message too large for its buffer ({needed} bytes)", Errno.EMSGSIZE);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ShortAttribute(ushort type, int length, int needed)
        => throw new VirtnetException(FailureKind.Malformed, Operation, null, $"malformed netlink message: attribute {type} has {length} bytes, needs {needed}", Errno.EBADMSG);
}
