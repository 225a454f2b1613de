// asm-generic/errno-base.h, asm-generic/errno.h (x86_64 and arm64 share these values).
namespace Virtnet.Native;

/// <summary>A Linux errno value, with the kernel's names.</summary>
public enum Errno
{
    /// <summary>No error.</summary>
    OK = 0,

    /// <summary>Operation not permitted.</summary>
    EPERM = 1,

    /// <summary>No such file or directory.</summary>
    ENOENT = 2,

    /// <summary>No such process.</summary>
    ESRCH = 3,

    /// <summary>Interrupted system call.</summary>
    EINTR = 4,

    /// <summary>Input/output error.</summary>
    EIO = 5,

    /// <summary>No such device or address.</summary>
    ENXIO = 6,

    /// <summary>Argument list too long.</summary>
    E2BIG = 7,

    /// <summary>Bad file descriptor.</summary>
    EBADF = 9,

    /// <summary>Resource temporarily unavailable.</summary>
    EAGAIN = 11,

    /// <summary>Cannot allocate memory.</summary>
    ENOMEM = 12,

    /// <summary>Permission denied.</summary>
    EACCES = 13,

    /// <summary>Bad address.</summary>
    EFAULT = 14,

    /// <summary>Device or resource busy.</summary>
    EBUSY = 16,

    /// <summary>File exists.</summary>
    EEXIST = 17,

    /// <summary>No such device.</summary>
    ENODEV = 19,

    /// <summary>Not a directory.</summary>
    ENOTDIR = 20,

    /// <summary>Invalid argument.</summary>
    EINVAL = 22,

    /// <summary>Too many open files in system.</summary>
    ENFILE = 23,

    /// <summary>Too many open files.</summary>
    EMFILE = 24,

    /// <summary>Inappropriate ioctl for device.</summary>
    ENOTTY = 25,

    /// <summary>No space left on device.</summary>
    ENOSPC = 28,

    /// <summary>Numerical result out of range.</summary>
    ERANGE = 34,

    /// <summary>File name too long.</summary>
    ENAMETOOLONG = 36,

    /// <summary>Function not implemented.</summary>
    ENOSYS = 38,

    /// <summary>Too many levels of symbolic links.</summary>
    ELOOP = 40,

    /// <summary>No message of desired type.</summary>
    ENOMSG = 42,

    /// <summary>No data available.</summary>
    ENODATA = 61,

    /// <summary>Link has been severed.</summary>
    ENOLINK = 67,

    /// <summary>Protocol error.</summary>
    EPROTO = 71,

    /// <summary>Value too large for defined data type.</summary>
    EOVERFLOW = 75,

    /// <summary>Bad message.</summary>
    EBADMSG = 74,

    /// <summary>File descriptor in bad state.</summary>
    EBADFD = 77,

    /// <summary>Socket operation on non-socket.</summary>
    ENOTSOCK = 88,

    /// <summary>Message too long.</summary>
    EMSGSIZE = 90,

    /// <summary>Protocol not supported.</summary>
    EPROTONOSUPPORT = 93,

    /// <summary>Operation not supported.</summary>
    EOPNOTSUPP = 95,

    /// <summary>Address family not supported by protocol.</summary>
    EAFNOSUPPORT = 97,

    /// <summary>Address already in use.</summary>
    EADDRINUSE = 98,

    /// <summary>Cannot assign requested address.</summary>
    EADDRNOTAVAIL = 99,

    /// <summary>Network is down.</summary>
    ENETDOWN = 100,

    /// <summary>No buffer space available.</summary>
    ENOBUFS = 105,

    /// <summary>Connection timed out.</summary>
    ETIMEDOUT = 110,

    /// <summary>Connection refused.</summary>
    ECONNREFUSED = 111,

    /// <summary>Operation already in progress.</summary>
    EALREADY = 114,

    /// <summary>Stale file handle.</summary>
    ESTALE = 116,

    /// <summary>Operation not supported (the kernel-internal ENOTSUPP that bpf() can return).</summary>
    ENOTSUPP = 524,
}

/// <summary>Text for an <see cref="Errno"/>.</summary>
public static class ErrnoExtensions
{
    /// <summary>The C library's description, e.g. "Device or resource busy".</summary>
    public static unsafe string Describe(this Errno errno)
    {
        if (errno == Errno.ENOTSUPP)
        {
            return "Operation not supported by this kernel";
        }

        byte* text = Libc.strerror((int)errno);
        return text == null ? $"errno {(int)errno}" : new string((sbyte*)text);
    }

    /// <summary>"EBUSY (Device or resource busy)"; unknown values print as their number.</summary>
    public static string Format(this Errno errno)
    {
        string name = Enum.IsDefined(errno) ? errno.ToString() : $"errno {(int)errno}";
        return $"{name} ({errno.Describe()})";
    }
}

internal static class LastError
{
    /// <summary>The errno of the last failed native call made with SetLastError = true.</summary>
    public static Errno Get() => (Errno)System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
}
