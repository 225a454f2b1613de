// A one-slot BPF_MAP_TYPE_ARRAY holding a u32 that user space sets and programs read: a switch the datapath can
// flip without reloading anything (the steering program's "spread" flag).
using Virtnet.Native;

namespace Virtnet.Bpf;

internal sealed class FlagMap : IDisposable
{
    private uint _value;

    private FlagMap(FileDescriptor handle) => Handle = handle;

    public FileDescriptor Handle { get; }

    /// <summary>The last value written (the map starts at 0).</summary>
    public uint Value => Volatile.Read(ref _value);

    public static unsafe FlagMap Create(string name)
    {
        const string Op = "BPF_MAP_CREATE";
        var attr = new BpfAttrMapCreate { MapType = Libc.BPF_MAP_TYPE_ARRAY, KeySize = sizeof(uint), ValueSize = sizeof(uint), MaxEntries = 1 };
        BpfNames.Write(name, new Span<byte>(attr.MapName, Libc.BPF_OBJ_NAME_LEN), Op, null);
        int fd = Libc.bpf(Libc.BPF_MAP_CREATE, &attr, (uint)sizeof(BpfAttrMapCreate));
        if (fd < 0)
        {
            VirtnetException.ThrowLastError(Op);
        }

        return new FlagMap(new FileDescriptor(fd));
    }

    /// <summary>BPF_MAP_UPDATE_ELEM of slot 0. Returns false instead of throwing: it is called from a datapath thread.</summary>
    public unsafe bool Set(uint value)
    {
        uint key = 0;
        var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)&key, Value = (ulong)&value, Flags = Libc.BPF_ANY };
        if (Libc.bpf(Libc.BPF_MAP_UPDATE_ELEM, &attr, (uint)sizeof(BpfAttrMapElem)) < 0)
        {
            return false;
        }

        Volatile.Write(ref _value, value);
        return true;
    }

    public void Dispose() => Handle.Dispose();
}
