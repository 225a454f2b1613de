namespace Virtnet.Datapaths;

/// <summary>Why a frame that entered a binding did not leave it.</summary>
public enum DropCause
{
    /// <summary>The device it was going to was down (noticed by virtnet, which dropped it).</summary>
    DeviceDown,

    /// <summary>
    /// The device it was handed to dropped it (its rx_dropped or tx_dropped): too big for it, down before virtnet
    /// noticed, its queue full, or (on the kernel datapath) no protocol there takes it.
    /// </summary>
    Refused,

    /// <summary>Between a private-mode binding and a sibling, which never reach each other.</summary>
    Private,

    /// <summary>A copy of a broadcast or multicast frame could not be made or delivered.</summary>
    CopyFailed,

    /// <summary>User datapath: a receive ring had no free slot.</summary>
    RingFull,

    /// <summary>User datapath: a TAP's queue was full (the pump's toward the process, or the virtual device's toward its stack).</summary>
    QueueFull,

    /// <summary>A C# handler dropped it (with its <see cref="Frame.DropReason"/>).</summary>
    Handler,

    /// <summary>The process could not write it out, or it was too short to be a frame.</summary>
    SendFailed,

    /// <summary>Sent by a mirror binding's device, which only receives copies.</summary>
    MirrorReceiveOnly,

    /// <summary>A shared binding's frame (for its MAC and VLAN) that its filter does not match.</summary>
    Filter,

    /// <summary>User datapath: a C# handler threw while deciding it.</summary>
    HandlerFault,
}

/// <summary>How many frames of one direction were lost for one cause.</summary>
/// <param name="Direction">Which way they were going.</param>
/// <param name="Cause">Why they were lost.</param>
/// <param name="Frames">How many (since the binding was made; never goes down).</param>
public readonly record struct DropCount(Direction Direction, DropCause Cause, ulong Frames);

/// <summary>The stable names of drop causes, as `virtnet stats -j` and the metrics' <c>reason</c> label give them.</summary>
public static class DropCauseNames
{
    /// <summary>snake_case, never changed once given: device_down, refused, ring_full, handler, ...</summary>
    public static string Key(this DropCause cause) => cause switch
    {
        DropCause.DeviceDown => "device_down",
        DropCause.Refused => "refused",
        DropCause.Private => "private_mode",
        DropCause.CopyFailed => "copy_failed",
        DropCause.RingFull => "ring_full",
        DropCause.QueueFull => "queue_full",
        DropCause.Handler => "handler",
        DropCause.MirrorReceiveOnly => "mirror_receive_only",
        DropCause.Filter => "filter",
        DropCause.HandlerFault => "handler_fault",
        _ => "send_failed",
    };
}
