// asm-generic/errno-base.h, asm-generic/errno.h (x86_64 and arm64 share these values).
namespace Virtnet.Native;

/// <summary>A Linux errno value, with the kernel's names.</summary>
public enum Errno
{
    OK = 0,
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    ENODEV = 19,
    ENOTDIR = 20,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    ENOSPC = 28,
    ERANGE = 34,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ELOOP = 40,
    ENOMSG = 42,
    ENODATA = 61,
    ENOLINK = 67,
    EPROTO = 71,
    EOVERFLOW = 75,
    EBADMSG = 74,
    EBADFD = 77,
    ENOTSOCK = 88,
    EMSGSIZE = 90,
    EPROTONOSUPPORT = 93,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETDOWN = 100,
    ENOBUFS = 105,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EALREADY = 114,
    ESTALE = 116,
    ENOTSUPP = 524,
}

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
