using Virtnet.Native;

namespace Virtnet;

/// <summary>
/// The one exception type of setup and control-plane failures. It names the operation, the device it was
/// about, the errno and, for netlink, the kernel's extended-ack text. The per-frame path never throws.
/// </summary>
public sealed class VirtnetException : Exception
{
    public VirtnetException(string operation, string? device, Errno errno, string? extack = null, string? hint = null)
        : base(Compose(operation, device, errno, extack, hint))
    {
        Operation = operation;
        Device = device;
        Errno = errno;
        ExtAck = extack;
        Hint = hint;
    }

    /// <summary>A failure that is not an errno: a user error found by our own checks.</summary>
    public VirtnetException(string operation, string? device, string message, Errno errno = Errno.OK)
        : base(message)
    {
        Operation = operation;
        Device = device;
        Errno = errno;
    }

    /// <summary>What was being done, in the kernel's or the ip/tc tool's words: "TUNSETIFF", "RTM_NEWLINK".</summary>
    public string Operation { get; }

    public string? Device { get; }

    public Errno Errno { get; }

    public string? ExtAck { get; }

    public string? Hint { get; }

    private static string Compose(string operation, string? device, Errno errno, string? extack, string? hint)
    {
        var text = device is null ? $"{operation}: {errno.Format()}" : $"{operation} on {device}: {errno.Format()}";
        if (!string.IsNullOrEmpty(extack))
        {
            text += $": {extack}";
        }

        if (!string.IsNullOrEmpty(hint))
        {
            text += $"; {hint}";
        }

        return text;
    }

    /// <summary>Throws for the errno of the last failed native call. Kept out of line so callers stay small.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public static void ThrowLastError(string operation, string? device = null)
        => throw new VirtnetException(operation, device, LastError.Get());

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public static void Throw(string operation, string? device, Errno errno, string? extack = null)
        => throw new VirtnetException(operation, device, errno, extack);
}
