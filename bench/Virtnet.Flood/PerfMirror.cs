// An experiment for the mirror's cost (docs/performance.md, "Filters and mirrors"): what a copy costs the real
// device's CPU when it is a perf-buffer record (bpf_perf_event_output of the frame's bytes from the real device's
// tcx ingress) rather than an skb (bpf_clone_redirect), with the records drained on another CPU. With a TAP named,
// the drainer also writes each copy into it, as a mirror would deliver it (the copy's receive then runs on the
// drainer's CPU). Prints what it drained, wrote and lost when stopped.
using System.Runtime.InteropServices;
using Virtnet.Capture;
using Virtnet.Devices;
using Virtnet.Native;

namespace Virtnet.Flood;

internal static unsafe class PerfMirror
{
    /// <summary>perf-mirror DEVICE CPU [TAP]: until SIGINT/SIGTERM.</summary>
    public static int Run(string device, int cpu, string? tap, Func<bool> stopped)
    {
        int ifindex;
        using (var rt = Virtnet.Netlink.RtNetlink.Open())
        {
            ifindex = rt.GetLink(device).Index;
        }

        using var perf = PerfTap.Open(ifindex, device, Virtnet.Bpf.TcxDirection.Ingress, null);
        using var target = tap is null ? null : TapDevice.Create(tap, queues: 1);
        if (target is not null)
        {
            using var rt = Virtnet.Netlink.RtNetlink.Open();
            rt.SetUp(rt.GetLink(tap!).Index, true);
        }

        ulong* mask = stackalloc ulong[16];
        new Span<ulong>(mask, 16).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
        _ = Libc.sched_setaffinity(0, 16 * sizeof(ulong), mask);
        var handles = perf.Handles.ToArray();
        var fds = new PollFd[handles.Length];
        for (int i = 0; i < fds.Length; i++)
        {
            fds[i] = new PollFd { Fd = handles[i].Fd, Events = Libc.POLLIN };
        }

        var state = new State { Fd = target?.Queues[0].Fd ?? -1, Buffer = (byte*)NativeMemory.AllocZeroed(70000) };
        Console.WriteLine($"perf-mirror on {device} ingress, drained on CPU {cpu}{(tap is null ? "" : $", written into {tap}")}");
        while (!stopped())
        {
            fixed (PollFd* p = fds)
            {
                Libc.poll(p, (nuint)fds.Length, 100);
            }

            perf.Drain(ref state, Visit);
        }

        Console.WriteLine($"drained {state.Drained}, written {state.Written}, write failures {state.Failed}, lost {perf.Lost}");
        NativeMemory.Free(state.Buffer);
        return 0;
    }

    private static bool Visit(ref State state, in TappedFrame frame)
    {
        state.Drained++;
        if (state.Fd < 0)
        {
            return true;
        }

        // A zeroed virtio header, then the frame.
        frame.Data.CopyTo(new Span<byte>(state.Buffer + VirtioNetHdr.Size, frame.Data.Length));
        if (TapDevice.Write(state.Fd, state.Buffer, VirtioNetHdr.Size + frame.Data.Length) == Errno.OK)
        {
            state.Written++;
        }
        else
        {
            state.Failed++;
        }

        return true;
    }

    private struct State
    {
        public int Fd;
        public byte* Buffer;
        public long Drained;
        public long Written;
        public long Failed;
    }
}
