using Virtnet.Bpf;

namespace Virtnet.Datapaths;

/// <summary>
/// A binding's place on its real device's switch: its slot (group table and counters), key and mode. The datapath
/// publishes it once its device can take frames, and withdraws it before its device goes.
/// </summary>
internal sealed class SwitchPort(RealSwitch @switch, int slot, int vlan, SwitchMode mode, byte[] mac)
{
    private SwitchEntry? _published;

    public RealSwitch Switch { get; } = @switch;

    public int Slot { get; } = slot;

    public int Vlan { get; } = vlan;

    public SwitchMode Mode { get; } = mode;

    public byte[] Mac { get; private set; } = mac;

    /// <summary>The binding's key: its MAC and VLAN, or MAC 0 for a VLAN's passthru binding.</summary>
    public SwitchKey Key => new(Mode == SwitchMode.Passthru ? new byte[6] : Mac, Vlan);

    /// <summary>
    /// Frames for the key go to <paramref name="ifindex"/> (redirected with the entry <paramref name="flags"/>; with
    /// SwitchPrograms.FlagSplit, small non-TCP ones to <paramref name="split"/>) from now on.
    /// </summary>
    public void Publish(int ifindex, int flags, int split = 0)
    {
        var entry = new SwitchEntry(ifindex, flags, Vlan, Mode, Slot, split);
        _published = entry; // first: if a write below fails, Withdraw still takes back what was written
        Switch.Put(Key, entry);
        if (Mode != SwitchMode.Passthru)
        {
            Switch.SetGroupSlot(Slot, entry);
        }
    }

    /// <summary>Sets or clears the entry's down flag (frames for a device that is down are counted as dropped).</summary>
    public void SetDown(bool down)
    {
        if (_published is not { } e)
        {
            return;
        }

        int flags = down ? e.Flags | SwitchPrograms.FlagDown : e.Flags & ~SwitchPrograms.FlagDown;
        if (flags != e.Flags)
        {
            Publish(e.Ifindex, flags, e.Split);
        }
    }

    /// <summary>The binding's MAC changed: the old key goes, the new one comes.</summary>
    public void ChangeMac(byte[] mac)
    {
        var old = Key;
        Mac = mac;
        if (_published is { } e)
        {
            Switch.Put(Key, e);
            if (!old.Mac.AsSpan().SequenceEqual(Key.Mac))
            {
                Switch.Remove(old);
            }
        }
    }

    /// <summary>No frame goes to the binding any more.</summary>
    public void Withdraw()
    {
        if (_published is null)
        {
            return;
        }

        if (Mode != SwitchMode.Passthru)
        {
            Switch.SetGroupSlot(Slot, null);
        }

        Switch.Remove(Key);
        _published = null;
    }
}
