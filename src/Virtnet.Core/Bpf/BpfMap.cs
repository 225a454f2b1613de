// A BPF map reached by its fd, with byte-span keys and values: the shared tables of a real device's switch.
// Maps made by one virtnet process are found by another through the programs that use them
// (BPF_OBJ_GET_INFO_BY_FD lists a program's map ids, BPF_MAP_GET_FD_BY_ID opens one): nothing is pinned, and a
// map lives exactly as long as some program or fd holds it.
using Virtnet.Native;

namespace Virtnet.Bpf;

internal sealed class BpfMap : IDisposable
{
    private BpfMap(FileDescriptor handle, string name)
    {
        Handle = handle;
        Name = name;
    }

    public FileDescriptor Handle { get; }

    public string Name { get; }

    /// <summary>BPF_MAP_CREATE.</summary>
    public static unsafe BpfMap Create(uint type, string name, int keySize, int valueSize, int maxEntries, uint flags = 0)
    {
        const string Op = "BPF_MAP_CREATE";
        var attr = new BpfAttrMapCreate { MapType = type, KeySize = (uint)keySize, ValueSize = (uint)valueSize, MaxEntries = (uint)maxEntries, MapFlags = flags };
        BpfNames.Write(name, new Span<byte>(attr.MapName, Libc.BPF_OBJ_NAME_LEN), Op, null);
        int fd = Libc.bpf(Libc.BPF_MAP_CREATE, &attr, (uint)sizeof(BpfAttrMapCreate));
        if (fd < 0)
        {
            var errno = LastError.Get();
            throw new VirtnetException($"{Op} {name}", null, errno, hint: errno == Errno.EPERM ? "creating BPF maps needs CAP_BPF (run as root)" : null);
        }

        return new BpfMap(new FileDescriptor(fd), name);
    }

    /// <summary>BPF_MAP_GET_FD_BY_ID: null when no map has that id any more.</summary>
    public static BpfMap? FromId(uint id, string name)
    {
        var handle = Tcx.ById(Libc.BPF_MAP_GET_FD_BY_ID, id, "BPF_MAP_GET_FD_BY_ID", name);
        return handle is null ? null : new BpfMap(handle, name);
    }

    /// <summary>The map's name (BPF_OBJ_GET_INFO_BY_FD).</summary>
    public static unsafe string NameOf(FileDescriptor handle)
    {
        var info = default(BpfMapInfo);
        var attr = new BpfAttrObjGetInfo { BpfFd = (uint)handle.Fd, InfoLen = (uint)sizeof(BpfMapInfo), Info = (ulong)&info };
        if (Libc.bpf(Libc.BPF_OBJ_GET_INFO_BY_FD, &attr, (uint)sizeof(BpfAttrObjGetInfo)) < 0)
        {
            VirtnetException.ThrowLastError("BPF_OBJ_GET_INFO_BY_FD", null);
        }

        return BpfNames.Read(new ReadOnlySpan<byte>(info.Name, Libc.BPF_OBJ_NAME_LEN));
    }

    /// <summary>BPF_MAP_UPDATE_ELEM with BPF_ANY.</summary>
    public unsafe void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)k, Value = (ulong)v, Flags = Libc.BPF_ANY };
            if (Libc.bpf(Libc.BPF_MAP_UPDATE_ELEM, &attr, (uint)sizeof(BpfAttrMapElem)) < 0)
            {
                VirtnetException.ThrowLastError($"BPF_MAP_UPDATE_ELEM {Name}", null);
            }
        }
    }

    /// <summary>BPF_MAP_LOOKUP_ELEM: false when the key is absent.</summary>
    public unsafe bool Lookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)k, Value = (ulong)v };
            if (Libc.bpf(Libc.BPF_MAP_LOOKUP_ELEM, &attr, (uint)sizeof(BpfAttrMapElem)) == 0)
            {
                return true;
            }

            var errno = LastError.Get();
            return errno == Errno.ENOENT ? false : throw new VirtnetException($"BPF_MAP_LOOKUP_ELEM {Name}", null, errno);
        }
    }

    /// <summary>BPF_MAP_DELETE_ELEM: false when the key was absent.</summary>
    public unsafe bool Delete(ReadOnlySpan<byte> key)
    {
        fixed (byte* k = key)
        {
            var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)k };
            if (Libc.bpf(Libc.BPF_MAP_DELETE_ELEM, &attr, (uint)sizeof(BpfAttrMapElem)) == 0)
            {
                return true;
            }

            var errno = LastError.Get();
            return errno == Errno.ENOENT ? false : throw new VirtnetException($"BPF_MAP_DELETE_ELEM {Name}", null, errno);
        }
    }

    /// <summary>Every key of a hash map (BPF_MAP_GET_NEXT_KEY from no key), as copies.</summary>
    public unsafe List<byte[]> Keys(int keySize)
    {
        var keys = new List<byte[]>();
        byte[]? current = null;
        while (true)
        {
            var next = new byte[keySize];
            fixed (byte* c = current)
            fixed (byte* n = next)
            {
                var attr = new BpfAttrMapElem { MapFd = (uint)Handle.Fd, Key = (ulong)c, Value = (ulong)n };
                if (Libc.bpf(Libc.BPF_MAP_GET_NEXT_KEY, &attr, (uint)sizeof(BpfAttrMapElem)) < 0)
                {
                    var errno = LastError.Get();
                    return errno == Errno.ENOENT ? keys : throw new VirtnetException($"BPF_MAP_GET_NEXT_KEY {Name}", null, errno);
                }
            }

            keys.Add(next);
            current = next;
        }
    }

    public void Dispose() => Handle.Dispose();
}
