using Virtnet.Devices;
using Virtnet.Lab;
using Virtnet.Native;
using Virtnet.Tests.Infrastructure;
using Xunit;
using Virtnet.Namespaces;

namespace Virtnet.Tests.Devices;

public class TapDeviceTests
{
    [SkippableFact]
    public void Create_InNamespace_DeviceExistsUntilDisposed()
    {
        Root.Require();
        using var ns = new TestNetns("tap");
        using var handle = NetNamespace.Open(ns.Path);
        var tap = handle.Run(() => TapDevice.Create("vt0"));
        try
        {
            Assert.Contains("vt0", ns.Exec("ip", "-o", "link", "show", "vt0"));
        }
        finally
        {
            tap.Dispose();
        }

        Assert.NotEqual(0, ns.Try("ip", "link", "show", "vt0").ExitCode);
    }

    [SkippableFact]
    public void Create_NameTaken_SaysNameInUse()
    {
        Root.Require();
        using var ns = new TestNetns("tapdup");
        using var handle = NetNamespace.Open(ns.Path);
        using var first = handle.Run(() => TapDevice.Create("vt0"));
        var e = Assert.Throws<VirtnetException>(() => handle.Run(() => TapDevice.Create("vt0")));
        Assert.Equal("vt0: name already in use", e.Message);
        Assert.Equal(FailureKind.NameInUse, e.Kind);
        Assert.Equal("vt0", e.Device);
        ns.Exec("ip", "link", "add", "dm0", "type", "veth", "peer", "name", "dm1");
        e = Assert.Throws<VirtnetException>(() => handle.Run(() => TapDevice.Create("dm0")));
        Assert.Contains("name already in use", e.Message);
    }

    [SkippableFact]
    public void EnableOffloads_ThisKernel_AcceptsChecksumTsoAndUso()
    {
        Root.Require();
        using var ns = new TestNetns("tapoff");
        using var handle = NetNamespace.Open(ns.Path);
        using var tap = handle.Run(() => TapDevice.Create("vt0"));
        uint accepted = tap.EnableOffloads();
        Assert.Equal(TapDevice.WantedOffloads, accepted);
        var features = ns.Exec("ethtool", "-k", "vt0");
        Assert.Contains("tcp-segmentation-offload: on", features);
    }

    [SkippableFact]
    public void SetCarrier_Off_ShowsNoCarrier()
    {
        Root.Require();
        using var ns = new TestNetns("tapcar");
        using var handle = NetNamespace.Open(ns.Path);
        using var tap = handle.Run(() => TapDevice.Create("vt0"));
        ns.Exec("ip", "link", "set", "vt0", "up");
        tap.SetCarrier(false);
        Assert.Contains("NO-CARRIER", ns.Exec("ip", "link", "show", "vt0"));
        tap.SetCarrier(true);
        Assert.DoesNotContain("NO-CARRIER", ns.Exec("ip", "link", "show", "vt0"));
    }

    [SkippableFact]
    public unsafe void ReadWrite_NonBlocking_EagainIsAValue()
    {
        Root.Require();
        using var ns = new TestNetns("taprw");
        using var handle = NetNamespace.Open(ns.Path);
        using var tap = handle.Run(() => TapDevice.Create("vt0"));
        var buffer = new byte[VirtioNetHdr.Size + 2048];
        fixed (byte* p = buffer)
        {
            Assert.Equal(Errno.EAGAIN, TapDevice.Read(tap.Handle.Fd, p, buffer.Length, out _));
            // A write while the link is down fails with EIO, as a value.
            Assert.Equal(Errno.EIO, TapDevice.Write(tap.Handle.Fd, p, VirtioNetHdr.Size + 60));
        }
    }

    [SkippableFact]
    public void Create_TwoQueues_OneFdPerQueueAndSteeringAccepted()
    {
        Root.Require();
        using var ns = new TestNetns("tapmq");
        using var handle = NetNamespace.Open(ns.Path);
        using var tap = handle.Run(() => TapDevice.Create("vt0", queues: 2));
        Assert.Equal(2, tap.Queues.Count);
        Assert.Contains("numtxqueues 2", ns.Exec("ip", "-d", "link", "show", "vt0"));
        using var flag = Virtnet.Bpf.FlagMap.Create("vt_flag");
        using var steer = Virtnet.Bpf.BpfProgram.LoadSocketFilter("vt_steer", Virtnet.Bpf.Programs.SteerByCpu(flag), "vt0");
        tap.SetSteeringProgram(steer.Handle);
        Assert.True(flag.Set(1));
        Assert.Equal(1u, flag.Value);
    }
}
