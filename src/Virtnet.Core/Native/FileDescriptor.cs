using System.Runtime.InteropServices;

namespace Virtnet.Native;

/// <summary>An owned file descriptor. Only <see cref="ReleaseHandle"/> closes it.</summary>
internal sealed class FileDescriptor : SafeHandle
{
    public FileDescriptor(int fd, bool ownsHandle = true)
        : base(new nint(-1), ownsHandle)
    {
        SetHandle(fd);
    }

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The raw number, for native calls made while this object is alive.</summary>
    public int Fd => (int)handle;

    /// <summary>Wraps the result of a native call that returns a descriptor or -1 with errno.</summary>
    public static FileDescriptor FromResult(int fd, string operation, string? device = null)
    {
        if (fd < 0)
        {
            VirtnetException.ThrowLastError(operation, device);
        }

        return new FileDescriptor(fd);
    }

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
