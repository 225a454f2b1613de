// Btf: offsets through named, typedef'd and anonymous members, and an enum's names, in a blob made here; then the
// running kernel's: the fields the drop point reads exist where they must (any user: /sys/kernel/btf/vmlinux is
// world-readable).
using System.Buffers.Binary;
using System.Text;
using Virtnet.Bpf;
using Xunit;

namespace Virtnet.Tests.Bpf;

public class BtfTests
{
    [Fact]
    public void Offset_ThroughTypedefsAndAnonymousMembers_AndEnumNames()
    {
        // [1] int; [2] struct inner { int a @0; int b @32 }; [3] typedef inner_t = [2];
        // [4] union (anonymous) { int x @0; [3] named @0 }; [5] struct outer { int first @0; [4] (anon) @64; [3] deep @128 }
        // [6] enum colour { RED = 0, BLUE = 7 }
        var strings = new List<byte> { 0 };
        int Str(string s)
        {
            int at = strings.Count;
            strings.AddRange(Encoding.ASCII.GetBytes(s));
            strings.Add(0);
            return at;
        }

        var types = new List<byte>();
        void U32(uint v)
        {
            var b = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, v);
            types.AddRange(b);
        }

        void Type(int name, int kind, int vlen, uint sizeOrType)
        {
            U32((uint)name);
            U32((uint)((kind << 24) | vlen));
            U32(sizeOrType);
        }

        Type(Str("int"), 1, 0, 4); U32(0x01000020);
        Type(Str("inner"), 4, 2, 8); U32((uint)Str("a")); U32(1); U32(0); U32((uint)Str("b")); U32(1); U32(32);
        Type(Str("inner_t"), 8, 0, 2);
        Type(0, 5, 2, 8); U32((uint)Str("x")); U32(1); U32(0); U32((uint)Str("named")); U32(3); U32(0);
        Type(Str("outer"), 4, 3, 24); U32((uint)Str("first")); U32(1); U32(0); U32(0); U32(4); U32(64); U32((uint)Str("deep")); U32(3); U32(128);
        Type(Str("colour"), 6, 2, 4); U32((uint)Str("RED")); U32(0); U32((uint)Str("BLUE")); U32(7);

        var blob = new byte[24 + types.Count + strings.Count];
        BinaryPrimitives.WriteUInt16LittleEndian(blob, 0xeB9F);
        blob[2] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(4), 24);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(8), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(12), (uint)types.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(16), (uint)types.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(20), (uint)strings.Count);
        types.CopyTo(blob, 24);
        strings.CopyTo(blob, 24 + types.Count);

        var btf = Btf.Parse(blob);
        Assert.Equal(0, btf.Offset("outer", "first"));
        Assert.Equal(8, btf.Offset("outer", "x"));          // in the anonymous union at byte 8
        Assert.Equal(12, btf.Offset("outer", "named.b"));   // through the union, then a typedef
        Assert.Equal(20, btf.Offset("outer", "deep.b"));
        var missing = Assert.Throws<VirtnetException>(() => btf.Offset("outer", "nothere"));
        Assert.Equal(FailureKind.Unsupported, missing.Kind);
        Assert.Equal(new Dictionary<long, string> { [0] = "RED", [7] = "BLUE" }, btf.Enum("colour"));
    }

    [SkippableFact]
    public void RunningKernel_HasWhatTheDropPointReads()
    {
        Skip.IfNot(File.Exists(Btf.VmlinuxPath), "this kernel has no BTF");
        var btf = Btf.Kernel();
        var layout = new Virtnet.Capture.DropTap.SkbLayout(btf);
        foreach (int offset in new[] { layout.Dev, layout.Mark, layout.Head, layout.Data, layout.Len, layout.DataLen, layout.MacHeader, layout.VlanAll })
        {
            Assert.InRange(offset, 0, 511);
        }

        Assert.Equal(layout.Len + 4, layout.DataLen); // unsigned int len, data_len: side by side in every kernel since 2.6
        var reasons = btf.Enum("skb_drop_reason");
        Assert.Contains("SKB_DROP_REASON_TC_INGRESS", reasons.Values);
        Assert.Contains("SKB_DROP_REASON_NOT_SPECIFIED", reasons.Values);
    }
}
