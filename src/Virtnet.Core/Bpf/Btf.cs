// The kernel's own type information (BTF, /sys/kernel/btf/vmlinux), read just far enough to find where a field of
// a kernel struct sits (sk_buff.dev, net_device.ifindex, ...) and the names of an enum's values (skb_drop_reason).
// A program that reads kernel memory with bpf_probe_read_kernel needs those offsets, and they change from build
// to build: reading them here, from the running kernel, is what CO-RE relocations do for C programs.
//
// Format (Documentation/bpf/btf.rst): a header (magic 0xeB9F, hdr_len, type_off/len, str_off/len), then the
// types, numbered from 1, each a btf_type {name_off, info (vlen, kind, kind_flag), size or type} followed by what
// its kind carries, then the strings.
using System.Buffers.Binary;
using System.Text;

namespace Virtnet.Bpf;

internal sealed class Btf
{
    public const string VmlinuxPath = "/sys/kernel/btf/vmlinux";

    private const int KindInt = 1, KindPtr = 2, KindArray = 3, KindStruct = 4, KindUnion = 5, KindEnum = 6, KindFwd = 7,
        KindTypedef = 8, KindVolatile = 9, KindConst = 10, KindRestrict = 11, KindFunc = 12, KindFuncProto = 13,
        KindVar = 14, KindDatasec = 15, KindFloat = 16, KindDeclTag = 17, KindTypeTag = 18, KindEnum64 = 19;

    private readonly byte[] _data;
    private readonly int _strings;
    private readonly List<int> _offsets = [0]; // type id -> offset of its btf_type in _data (id 0 is void)
    private readonly Dictionary<string, List<int>> _byName = new(StringComparer.Ordinal);

    private Btf(byte[] data)
    {
        _data = data;
        if (data.Length < 24 || BinaryPrimitives.ReadUInt16LittleEndian(data) != 0xeB9F)
        {
            throw new InvalidDataException("not BTF (no 0xeB9F magic)");
        }

        int header = (int)U32(4);
        int typeOff = header + (int)U32(8), typeLen = (int)U32(12);
        _strings = header + (int)U32(16);
        for (int at = typeOff; at < typeOff + typeLen;)
        {
            _offsets.Add(at);
            string name = String(U32(at));
            if (name.Length > 0)
            {
                if (!_byName.TryGetValue(name, out var ids))
                {
                    _byName[name] = ids = [];
                }

                ids.Add(_offsets.Count - 1);
            }

            at += 12 + Extra(at);
        }
    }

    /// <summary>The running kernel's BTF; throws a VirtnetException when it has none.</summary>
    public static Btf Kernel()
    {
        try
        {
            return new Btf(File.ReadAllBytes(VmlinuxPath));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new VirtnetException(FailureKind.Unsupported, "read BTF", VmlinuxPath, $"cannot read the kernel's type information ({VmlinuxPath}: {e.Message.TrimEnd('.')}); a kernel built with CONFIG_DEBUG_INFO_BTF has it");
        }
    }

    public static Btf Parse(byte[] data) => new(data);

    /// <summary>
    /// The byte offset of <paramref name="path"/> ("nd_net.net": members, dot-separated, through named and anonymous
    /// ones) in the struct <paramref name="structName"/>.
    /// </summary>
    public int Offset(string structName, string path)
    {
        int id = Find(structName, KindStruct) ?? throw Missing($"struct {structName}");
        int bits = 0;
        foreach (var member in path.Split('.'))
        {
            var (type, offset) = Member(id, member) ?? throw Missing($"{structName}.{path}");
            bits += offset;
            id = Resolve(type);
        }

        return bits % 8 == 0 ? bits / 8 : throw Missing($"{structName}.{path} (a bit-field)");
    }

    /// <summary>The values of the enum <paramref name="enumName"/>, by value.</summary>
    public Dictionary<long, string> Enum(string enumName)
    {
        int id = Find(enumName, KindEnum) ?? Find(enumName, KindEnum64) ?? throw Missing($"enum {enumName}");
        int at = _offsets[id];
        bool wide = Kind(at) == KindEnum64;
        var values = new Dictionary<long, string>();
        for (int i = 0, p = at + 12; i < Vlen(at); i++, p += wide ? 12 : 8)
        {
            long value = wide ? (long)((ulong)U32(p + 4) | ((ulong)U32(p + 8) << 32)) : (int)U32(p + 4);
            values.TryAdd(value, String(U32(p)));
        }

        return values;
    }

    private int? Find(string name, int kind)
        => _byName.TryGetValue(name, out var ids) ? ids.Where(i => Kind(_offsets[i]) == kind).Cast<int?>().FirstOrDefault() : null;

    /// <summary>The member's type and bit offset, looked for in anonymous struct and union members too.</summary>
    private (int Type, int BitOffset)? Member(int id, string name)
    {
        int at = _offsets[id];
        int kind = Kind(at);
        if (kind is not (KindStruct or KindUnion))
        {
            return null;
        }

        bool bitfields = (U32(at + 4) & 0x8000_0000) != 0;
        for (int i = 0, p = at + 12; i < Vlen(at); i++, p += 12)
        {
            int type = (int)U32(p + 4);
            int offset = (int)(bitfields ? U32(p + 8) & 0xffffff : U32(p + 8));
            string member = String(U32(p));
            if (member == name)
            {
                return (type, offset);
            }

            if (member.Length == 0 && Member(Resolve(type), name) is { } inner)
            {
                return (inner.Type, offset + inner.BitOffset);
            }
        }

        return null;
    }

    /// <summary>Through typedefs and qualifiers to the type itself.</summary>
    private int Resolve(int id)
    {
        for (int hops = 0; hops < 32 && id > 0 && id < _offsets.Count; hops++)
        {
            int kind = Kind(_offsets[id]);
            if (kind is not (KindTypedef or KindVolatile or KindConst or KindRestrict or KindTypeTag))
            {
                return id;
            }

            id = (int)U32(_offsets[id] + 8);
        }

        return id;
    }

    private int Extra(int at) => Kind(at) switch
    {
        KindInt or KindVar or KindDeclTag => 4,
        KindArray => 12,
        KindStruct or KindUnion or KindDatasec or KindEnum64 => 12 * Vlen(at),
        KindEnum or KindFuncProto => 8 * Vlen(at),
        KindPtr or KindFwd or KindTypedef or KindVolatile or KindConst or KindRestrict or KindFunc or KindFloat or KindTypeTag => 0,
        var k => throw new InvalidDataException($"BTF kind {k} unknown"),
    };

    private int Kind(int at) => (int)((U32(at + 4) >> 24) & 0x1f);

    private int Vlen(int at) => (int)(U32(at + 4) & 0xffff);

    private uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_data.AsSpan(at));

    private string String(uint offset)
    {
        var s = _data.AsSpan(_strings + (int)offset);
        return Encoding.ASCII.GetString(s[..s.IndexOf((byte)0)]);
    }

    private static VirtnetException Missing(string what)
        => new(FailureKind.Unsupported, "read BTF", VmlinuxPath, $"the kernel's type information has no {what}; this kernel's layout is not one virtnet knows");
}
