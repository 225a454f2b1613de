// A real device's switch: the dispatcher on its tcx ingress, the host program on its tcx egress and the tables
// they share (Bpf/SwitchPrograms.cs), shared by every binding on the device that is not the whole-device
// passthru, whatever process it lives in.
//
// Ownership without pinning: the first binding makes the maps, the programs and the two tcx links; every later
// one, in any process, opens the same links and maps by id (BPF_LINK_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID). A tcx
// link stays attached while any fd for it is open, so the switch lives exactly as long as some binding does, and
// a killed process takes only its own fds with it. The callers serialize all of this (and every table change)
// with the registry lock (Bindings/SwitchRegistry.cs).
using System.Buffers.Binary;
using Virtnet.Bpf;
using Virtnet.Native;

namespace Virtnet.Datapaths;

/// <summary>A binding's key on its real device: a MAC (all zero for a VLAN's passthru binding) and a VLAN id (0: untagged).</summary>
internal readonly record struct SwitchKey(byte[] Mac, int Vlan)
{
    public byte[] ToBytes()
    {
        var key = new byte[SwitchPrograms.KeySize];
        Mac.CopyTo(key, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(key.AsSpan(6), (ushort)Vlan);
        return key;
    }

    public static SwitchKey Parse(ReadOnlySpan<byte> key) => new(key[..6].ToArray(), BinaryPrimitives.ReadUInt16LittleEndian(key[6..]));

    public bool IsPassthru => Mac.All(b => b == 0);
}

/// <summary>Where the switch sends a binding's frames: see SwitchPrograms for the layout.</summary>
internal readonly record struct SwitchEntry(int Ifindex, int Flags, int Vlan, SwitchMode Mode, int Slot, int Split = 0)
{
    public byte[] ToBytes()
    {
        var value = new byte[SwitchPrograms.EntrySize];
        Write(value);
        return value;
    }

    public void Write(Span<byte> value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(value[SwitchPrograms.EntryIfindex..], (uint)Ifindex);
        BinaryPrimitives.WriteUInt32LittleEndian(value[SwitchPrograms.EntryFlags..], (uint)Flags);
        BinaryPrimitives.WriteUInt16LittleEndian(value[SwitchPrograms.EntryVlan..], (ushort)Vlan);
        value[SwitchPrograms.EntryMode] = (byte)Mode;
        value[SwitchPrograms.EntrySlot] = (byte)Slot;
        BinaryPrimitives.WriteUInt32LittleEndian(value[SwitchPrograms.EntrySplit..], (uint)Split);
    }

    public static SwitchEntry Parse(ReadOnlySpan<byte> value) => new(
        (int)BinaryPrimitives.ReadUInt32LittleEndian(value[SwitchPrograms.EntryIfindex..]),
        (int)BinaryPrimitives.ReadUInt32LittleEndian(value[SwitchPrograms.EntryFlags..]),
        BinaryPrimitives.ReadUInt16LittleEndian(value[SwitchPrograms.EntryVlan..]),
        (SwitchMode)value[SwitchPrograms.EntryMode],
        value[SwitchPrograms.EntrySlot],
        (int)BinaryPrimitives.ReadUInt32LittleEndian(value[SwitchPrograms.EntrySplit..]));
}

internal sealed class RealSwitch : IDisposable
{
    private const string PortsName = "virtnet_ports";
    private const string GroupName = "virtnet_group";
    private const string CountsName = "virtnet_swcnt";
    private const int PortsCapacity = 4 * SwitchPrograms.MaxPorts;

    private readonly BpfMap _ports;
    private readonly BpfMap _group;
    private readonly FileDescriptor? _ingressLink;
    private readonly FileDescriptor? _egressLink;

    private RealSwitch(int realIndex, BpfMap ports, BpfMap group, CounterMap counts, FileDescriptor? ingressLink, FileDescriptor? egressLink, bool made)
    {
        RealIndex = realIndex;
        _ports = ports;
        _group = group;
        Counts = counts;
        _ingressLink = ingressLink;
        _egressLink = egressLink;
        Made = made;
    }

    public int RealIndex { get; }

    /// <summary>True when this process made the switch (it was the device's first binding).</summary>
    public bool Made { get; }

    public CounterMap Counts { get; }

    public int PortsFd => _ports.Handle.Fd;

    public int GroupFd => _group.Handle.Fd;

    /// <summary>
    /// The switch on <paramref name="realIndex"/>: the one already there (held by another binding), or a new one.
    /// The caller holds the registry lock.
    /// </summary>
    public static RealSwitch Open(int realIndex, string realName)
        => TryJoin(realIndex, realName) ?? Create(realIndex, realName);

    /// <summary>Whether a switch is attached to the device now.</summary>
    public static bool IsPresent(int realIndex)
        => FindLink(realIndex, TcxDirection.Ingress, SwitchPrograms.DispatchName) is not null;

    private static (uint Program, uint Link)? FindLink(int realIndex, TcxDirection direction, string name)
    {
        foreach (var (program, link) in Tcx.QueryAttachments(realIndex, direction))
        {
            using var fd = Tcx.ProgramById(program);
            if (fd is not null && link != 0 && BpfProgram.ReadName(BpfProgram.GetInfo(fd.Fd, null)) == name)
            {
                return (program, link);
            }
        }

        return null;
    }

    private static RealSwitch? TryJoin(int realIndex, string realName)
    {
        if (FindLink(realIndex, TcxDirection.Ingress, SwitchPrograms.DispatchName) is not { } dispatch
            || FindLink(realIndex, TcxDirection.Egress, SwitchPrograms.HostName) is not { } host)
        {
            return null;
        }

        using var cleanup = new Cleanup();
        var ingressLink = Tcx.LinkById(dispatch.Link);
        var egressLink = Tcx.LinkById(host.Link);
        using var program = Tcx.ProgramById(dispatch.Program);
        if (ingressLink is null || egressLink is null || program is null)
        {
            // Its last holder died since the query: make a new one.
            ingressLink?.Dispose();
            egressLink?.Dispose();
            return null;
        }

        cleanup.Add(ingressLink);
        cleanup.Add(egressLink);
        BpfMap? ports = null, group = null, counts = null;
        foreach (uint id in BpfProgram.MapIds(program.Fd, realName))
        {
            if (BpfMap.FromId(id, realName) is not { } map)
            {
                continue;
            }

            cleanup.Add(map);
            switch (BpfMap.NameOf(map.Handle))
            {
                case PortsName: ports = map; break;
                case GroupName: group = map; break;
                case CountsName: counts = map; break;
            }
        }

        if (ports is null || group is null || counts is null)
        {
            throw new VirtnetException(FailureKind.AlreadyAttached, "attach", realName, $"{realName}: its virtnet switch is from another version of virtnet; stop the bindings on it first", Errno.EBUSY);
        }

        cleanup.Commit();
        return new RealSwitch(realIndex, ports, group, CounterMap.Adopt(counts, SwitchPrograms.MaxPorts * SwitchPrograms.CountKinds), ingressLink, egressLink, made: false);
    }

    /// <summary>The tables alone, attached nowhere: for running the programs with BPF_PROG_TEST_RUN.</summary>
    internal static RealSwitch CreateUnattached()
    {
        using var cleanup = new Cleanup();
        var ports = cleanup.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_HASH, PortsName, SwitchPrograms.KeySize, SwitchPrograms.EntrySize, PortsCapacity, Libc.BPF_F_NO_PREALLOC));
        var group = cleanup.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_ARRAY, GroupName, sizeof(uint), SwitchPrograms.GroupValueSize, 1));
        var counts = cleanup.Add(CounterMap.Create(CountsName, SwitchPrograms.MaxPorts * SwitchPrograms.CountKinds));
        cleanup.Commit();
        return new RealSwitch(0, ports, group, counts, null, null, made: true);
    }

    private static RealSwitch Create(int realIndex, string realName)
    {
        using var cleanup = new Cleanup();
        var ports = cleanup.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_HASH, PortsName, SwitchPrograms.KeySize, SwitchPrograms.EntrySize, PortsCapacity, Libc.BPF_F_NO_PREALLOC));
        var group = cleanup.Add(BpfMap.Create(Libc.BPF_MAP_TYPE_ARRAY, GroupName, sizeof(uint), SwitchPrograms.GroupValueSize, 1));
        var counts = cleanup.Add(CounterMap.Create(CountsName, SwitchPrograms.MaxPorts * SwitchPrograms.CountKinds));
        using var host = BpfProgram.LoadSchedCls(SwitchPrograms.HostName, SwitchPrograms.Host(ports.Handle.Fd, group.Handle.Fd, counts.Handle.Fd), realName);
        using var dispatch = BpfProgram.LoadSchedCls(SwitchPrograms.DispatchName, SwitchPrograms.Dispatch(ports.Handle.Fd, group.Handle.Fd, counts.Handle.Fd), realName);

        // The host's way to the bindings first; then the wire's.
        var egress = cleanup.Add(TcxLink.Attach(host, realIndex, realName, TcxDirection.Egress));
        var ingress = cleanup.Add(TcxLink.Attach(dispatch, realIndex, realName, TcxDirection.Ingress));
        cleanup.Commit();
        return new RealSwitch(realIndex, ports, group, counts, ingress.Handle, egress.Handle, made: true);
    }

    /// <summary>Every key and entry in the ports table.</summary>
    public List<(SwitchKey Key, SwitchEntry Entry)> Entries()
    {
        var list = new List<(SwitchKey, SwitchEntry)>();
        Span<byte> value = stackalloc byte[SwitchPrograms.EntrySize];
        foreach (var key in _ports.Keys(SwitchPrograms.KeySize))
        {
            if (_ports.Lookup(key, value))
            {
                list.Add((SwitchKey.Parse(key), SwitchEntry.Parse(value)));
            }
        }

        return list;
    }

    /// <summary>Adds or replaces a key (a hash map element is replaced whole: a frame sees the old or the new entry).</summary>
    public void Put(SwitchKey key, SwitchEntry entry) => _ports.Update(key.ToBytes(), entry.ToBytes());

    public bool Remove(SwitchKey key) => _ports.Delete(key.ToBytes());

    /// <summary>
    /// Sets (or with null, frees) a slot of the group table. The table is one array value rewritten whole, so a
    /// slot becomes valid in two writes: first everything but the ifindex (which stays 0: "free"), then the ifindex;
    /// a frame reading it meanwhile sees a free slot or the complete entry. The header's private count is kept.
    /// </summary>
    public void SetGroupSlot(int slot, SwitchEntry? entry)
    {
        var table = ReadGroup();
        var at = table.AsSpan(SwitchPrograms.GroupHeaderSize + (slot * SwitchPrograms.EntrySize), SwitchPrograms.EntrySize);
        if (entry is { } e)
        {
            (e with { Ifindex = 0 }).Write(at);
            WriteGroup(table);
            e.Write(at);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(at, 0);
            WriteGroup(table);
            at.Clear();
        }

        WriteGroup(table);
    }

    /// <summary>The group table's slots that hold an entry.</summary>
    public List<SwitchEntry> GroupEntries()
    {
        var table = ReadGroup();
        var list = new List<SwitchEntry>();
        for (int slot = 0; slot < SwitchPrograms.MaxPorts; slot++)
        {
            var e = SwitchEntry.Parse(table.AsSpan(SwitchPrograms.GroupHeaderSize + (slot * SwitchPrograms.EntrySize), SwitchPrograms.EntrySize));
            if (e.Ifindex != 0)
            {
                list.Add(e);
            }
        }

        return list;
    }

    private byte[] ReadGroup()
    {
        var table = new byte[SwitchPrograms.GroupValueSize];
        Span<byte> zero = stackalloc byte[4];
        zero.Clear();
        _group.Lookup(zero, table);
        return table;
    }

    private void WriteGroup(byte[] table)
    {
        // The header: how many private bindings there are (0 spares every unicast frame the source lookup).
        int privates = 0;
        for (int slot = 0; slot < SwitchPrograms.MaxPorts; slot++)
        {
            var e = SwitchEntry.Parse(table.AsSpan(SwitchPrograms.GroupHeaderSize + (slot * SwitchPrograms.EntrySize), SwitchPrograms.EntrySize));
            if (e.Ifindex != 0 && e.Mode == SwitchMode.Private)
            {
                privates++;
            }
        }

        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(SwitchPrograms.HeaderPrivateCount), (uint)privates);
        Span<byte> zero = stackalloc byte[4];
        zero.Clear();
        _group.Update(zero, table);
    }

    /// <summary>A slot's counter, (frames, bytes).</summary>
    public (ulong Frames, ulong Bytes) Read(int slot, SwitchCount kind) => Counts.Read((slot * SwitchPrograms.CountKinds) + (int)kind);

    /// <summary>Zeroes a slot's counters for its new owner.</summary>
    public void ResetCounters(int slot)
    {
        for (int kind = 0; kind < SwitchPrograms.CountKinds; kind++)
        {
            Counts.Reset((slot * SwitchPrograms.CountKinds) + kind);
        }
    }

    public void Dispose()
    {
        _ingressLink?.Dispose();
        _egressLink?.Dispose();
        _ports.Dispose();
        _group.Dispose();
        Counts.Dispose();
    }
}
