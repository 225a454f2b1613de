using Virtnet.Native;

namespace Virtnet;

/// <summary>
/// What kind of failure a <see cref="VirtnetException"/> reports, so that a host (the CLI, a service) can say what
/// to do in its own words (a flag to change, a command to run) without parsing the message.
/// </summary>
public enum FailureKind
{
    /// <summary>A system call failed: see <see cref="VirtnetException.Errno"/> and <see cref="VirtnetException.Operation"/>.</summary>
    SystemCall,

    /// <summary>The device named in <see cref="VirtnetException.Device"/> does not exist.</summary>
    NoSuchDevice,

    /// <summary>A device of the name in <see cref="VirtnetException.Device"/> exists already.</summary>
    NameInUse,

    /// <summary>The name in <see cref="VirtnetException.Device"/> cannot be an interface name (empty, too long, a '/', ...).</summary>
    InvalidName,

    /// <summary>The name in <see cref="VirtnetException.Device"/> is one virtnet keeps for its own devices.</summary>
    ReservedName,

    /// <summary>The real device is bound already, by another virtnet.</summary>
    AlreadyAttached,

    /// <summary>The device cannot carry a binding (loopback, not Ethernet, a virtnet device).</summary>
    Unsuitable,

    /// <summary>The network namespace in <see cref="VirtnetException.Device"/> does not exist.</summary>
    NoNamespace,

    /// <summary>The process lacks a capability it needs.</summary>
    NotPermitted,

    /// <summary>The running kernel lacks a feature virtnet needs.</summary>
    Unsupported,

    /// <summary>A message from the kernel could not be decoded, or virtnet built an object the kernel's rules refuse: a bug to report.</summary>
    Malformed,

    /// <summary>Another binding on the real device already serves that MAC and VLAN (or the whole VLAN).</summary>
    KeyInUse,
}

/// <summary>
/// The one exception type of setup and control-plane failures. It names the operation, the device it was
/// about, the errno and, for netlink, the kernel's extended-ack text. The per-frame path never throws.
/// </summary>
public sealed class VirtnetException : Exception
{
    /// <summary>A failed system call or kernel request.</summary>
    /// <param name="operation">What was being done, in the kernel's or ip(8)'s words.</param>
    /// <param name="device">The object it was about, if any.</param>
    /// <param name="errno">Why it failed.</param>
    /// <param name="extack">Netlink's extended-ack text, if any.</param>
    /// <param name="hint">What might help, if known.</param>
    public VirtnetException(string operation, string? device, Errno errno, string? extack = null, string? hint = null)
        : base(Compose(operation, device, errno, extack, hint))
    {
        Operation = operation;
        Device = device;
        Errno = errno;
        ExtAck = extack;
        Hint = hint;
    }

    /// <summary>A failure found by our own checks: <paramref name="fact"/> says what is wrong, in one sentence.</summary>
    public VirtnetException(FailureKind kind, string operation, string? device, string fact, Errno errno = Errno.OK)
        : base(fact)
    {
        Kind = kind;
        Operation = operation;
        Device = device;
        Errno = errno;
    }

    /// <summary>What kind of failure this is; <see cref="FailureKind.SystemCall"/> for a failed system call.</summary>
    public FailureKind Kind { get; }

    /// <summary>What was being done, in the kernel's or the ip/tc tool's words: "TUNSETIFF", "RTM_NEWLINK".</summary>
    public string Operation { get; }

    /// <summary>The object it was about: a device, a namespace path; null for none.</summary>
    public string? Device { get; }

    /// <summary>The errno of the failed call, or the one that best describes a failed check.</summary>
    public Errno Errno { get; }

    /// <summary>Netlink's extended-ack text, when the kernel sent one.</summary>
    public string? ExtAck { get; }

    /// <summary>What might help, when the library knows (e.g. for an errno it can explain).</summary>
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
    internal static void ThrowLastError(string operation, string? device = null)
        => throw new VirtnetException(operation, device, LastError.Get());

    /// <summary>Throws a <see cref="VirtnetException"/> for <paramref name="errno"/>. Kept out of line so callers stay small.</summary>
    /// <param name="operation">What was being done.</param>
    /// <param name="device">The object it was about, if any.</param>
    /// <param name="errno">Why it failed.</param>
    /// <param name="extack">Netlink's extended-ack text, if any.</param>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    internal static void Throw(string operation, string? device, Errno errno, string? extack = null)
        => throw new VirtnetException(operation, device, errno, extack);
}
