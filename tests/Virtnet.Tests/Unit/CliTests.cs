using Virtnet.Cli;
using Virtnet.Datapaths;
using Virtnet.Devices;
using Virtnet.Native;
using Xunit;

namespace Virtnet.Tests.Unit;

public class CliTests
{
    [Fact]
    public void ParseAttach_Defaults_KernelInheritVirtnet0()
    {
        var result = Virtnet.Cli.Cli.Build().Parse(["attach", "eth9"]);
        Assert.Empty(result.Errors);
        var o = Virtnet.Cli.Cli.ParseAttach("eth9", "virtnet0", "kernel", "inherit");
        Assert.Equal("eth9", o.RealDevice);
        Assert.Equal("virtnet0", o.Name);
        Assert.Equal(DatapathKind.Kernel, o.Datapath);
        Assert.Equal(MacMode.Inherit, o.MacMode);
        Assert.Equal(BindingMode.Passthru, o.Mode);
        Assert.Equal(0, o.Vlan);
    }

    [Theory]
    [InlineData(null, "passthru", null, BindingMode.Passthru, 0, null)]
    [InlineData(null, "bridge", null, BindingMode.Bridge, 0, null)]
    [InlineData("inherit", "bridge", 10, BindingMode.Bridge, 10, MacMode.Inherit)]
    [InlineData("random", "vepa", 4094, BindingMode.Vepa, 4094, MacMode.Random)]
    [InlineData(null, "private", 1, BindingMode.Private, 1, null)]
    public void ParseAttach_ModeVlanMac_AsGiven_MacDefaultLeftToTheMode(string? mac, string mode, int? vlan, BindingMode expectedMode, int expectedVlan, MacMode? expectedMac)
    {
        var o = Virtnet.Cli.Cli.ParseAttach("eth9", "v1", "kernel", mac, null, null, mode, vlan);
        Assert.Equal(expectedMode, o.Mode);
        Assert.Equal(expectedVlan, o.Vlan);
        Assert.Equal(expectedMac, o.MacMode);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4095)]
    [InlineData(-3)]
    public void ParseAttach_VlanOutOfRange_UsageError(int vlan)
    {
        var e = Assert.Throws<UsageException>(() => Virtnet.Cli.Cli.ParseAttach("eth9", "v1", "kernel", null, null, null, "bridge", vlan));
        Assert.Contains("1 to 4094", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Attach_Help_NamesTheContractsFlags()
    {
        var output = new StringWriter();
        var config = new System.CommandLine.InvocationConfiguration { Output = output };
        _ = Virtnet.Cli.Cli.Build().Parse(["attach", "--help"]).Invoke(config);
        foreach (string flag in new[] { "--name", "--mode", "--mac", "--vlan", "--netns", "--datapath", "passthru", "bridge", "private", "vepa" })
        {
            Assert.Contains(flag, output.ToString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Attach_UnknownMode_Refused()
    {
        var result = Virtnet.Cli.Cli.Build().Parse(["attach", "eth9", "--mode", "macvtap"]);
        Assert.NotEmpty(result.Errors);
    }

    [Theory]
    [InlineData("02:00:00:00:00:01", new byte[] { 2, 0, 0, 0, 0, 1 })]
    [InlineData("aa-bb-cc-dd-ee-0f", new byte[] { 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f })]
    [InlineData("2:0:0:0:0:a", new byte[] { 2, 0, 0, 0, 0, 10 })]
    public void ParseMac_Address_Explicit(string text, byte[] expected)
    {
        var (mode, mac) = Virtnet.Cli.Cli.ParseMac(text);
        Assert.Equal(MacMode.Explicit, mode);
        Assert.Equal(expected, mac);
    }

    [Theory]
    [InlineData("02:00:00:00:00")]
    [InlineData("02:00:00:00:00:zz")]
    [InlineData("020000000001")]
    [InlineData("01:00:5e:00:00:01")]
    [InlineData("00:00:00:00:00:00")]
    [InlineData("randomly")]
    public void ParseMac_Bad_UsageErrorSaysWhatToDo(string text)
    {
        var e = Assert.Throws<UsageException>(() => Virtnet.Cli.Cli.ParseMac(text));
        Assert.Contains("MAC", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1_000_001)]
    public void ParseAttach_BusyPollOutOfRange_UsageError(int us)
    {
        var e = Assert.Throws<UsageException>(() => Virtnet.Cli.Cli.ParseAttach("eth0", "virtnet0", "user", "inherit", us));
        Assert.Contains("--busy-poll", e.Message);
    }

    [Theory]
    [InlineData("c1", "/run/netns/c1")]
    [InlineData("/proc/4242/ns/net", "/proc/4242/ns/net")]
    [InlineData("./ns", "./ns")]
    public void ParseAttach_Netns_NameOrPath(string given, string path)
        => Assert.Equal(path, Virtnet.Cli.Cli.ParseAttach("eth0", "virtnet0", "kernel", "inherit", null, given).Netns);

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    public void ParseAttach_NetnsNotAName_UsageError(string given)
    {
        var e = Assert.Throws<UsageException>(() => Virtnet.Cli.Cli.ParseAttach("eth0", "virtnet0", "kernel", "inherit", null, given));
        Assert.Contains("ip netns", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseAttach_NoNetns_TheRealDevicesNamespace()
        => Assert.Null(Virtnet.Cli.Cli.ParseAttach("eth0", "virtnet0", "kernel", "inherit").Netns);

    [Fact]
    public void ParseAttach_BusyPoll_Microseconds()
    {
        Assert.Equal(TimeSpan.FromMicroseconds(50), Virtnet.Cli.Cli.ParseAttach("eth0", "virtnet0", "user", "inherit", 50).BusyPoll);
        Assert.Null(Virtnet.Cli.Cli.ParseAttach("eth0", "virtnet0", "user", "inherit").BusyPoll);
    }

    [Fact]
    public void StatsLine_TwoSamples_CountersAndRates()
    {
        var last = new DatapathCounters(new DirectionCounters(100, 10_000, 0), new DirectionCounters(0, 0, 0));
        var now = new DatapathCounters(new DirectionCounters(1100, 1_260_000, 2), new DirectionCounters(50, 5000, 0));
        string line = StatsReporter.Line("virtnet0", now, last, seconds: 2);
        Assert.Equal("virtnet0 stats: ingress 1100 frames 1260000 bytes 2 dropped, egress 50 frames 5000 bytes 0 dropped; now ingress 500 fps 5.0 Mbit/s, egress 25 fps 0.0 Mbit/s", line);
    }

    [Fact]
    public void ParseMac_RandomAndInherit_Modes()
    {
        Assert.Equal(MacMode.Random, Virtnet.Cli.Cli.ParseMac("random").Item1);
        Assert.Equal(MacMode.Inherit, Virtnet.Cli.Cli.ParseMac("inherit").Item1);
    }

    [Fact]
    public void Parse_UnknownDatapath_IsAParseError()
    {
        var result = Virtnet.Cli.Cli.Build().Parse(["attach", "eth0", "--datapath", "fast"]);
        Assert.NotEmpty(result.Errors);
    }

    [Fact]
    public void Invoke_AttachWithoutDevice_ExitsNonZero()
    {
        var result = Virtnet.Cli.Cli.Build().Parse(["attach"]);
        Assert.NotEmpty(result.Errors);
    }

    [Fact]
    public void Guard_VirtnetException_OneSentenceAndExit1()
    {
        var err = new StringWriter();
        int code = Virtnet.Cli.Cli.Guard(err, null, () => throw new VirtnetException(FailureKind.NoSuchDevice, "RTM_GETLINK", "eth9", "eth9: no such device", Errno.ENODEV));
        Assert.Equal(1, code);
        Assert.Equal("virtnet: eth9: no such device", err.ToString().TrimEnd());
    }

    [Fact]
    public void Guard_Eperm_AddsWhatToDo()
    {
        var err = new StringWriter();
        Virtnet.Cli.Cli.Guard(err, null, () => throw new VirtnetException("BPF_PROG_LOAD", "eth0", Errno.EPERM));
        Assert.Contains("run virtnet as root", err.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("sixteen-bytes-xx")]
    [InlineData("a/b")]
    [InlineData("a b")]
    [InlineData("a:b")]
    [InlineData("..")]
    public void DeviceName_Invalid_Throws(string name)
    {
        var e = Assert.Throws<VirtnetException>(() => DeviceName.Validate(name));
        Assert.Equal(FailureKind.InvalidName, e.Kind);
        Assert.DoesNotContain("--", e.Message); // the library states facts; the flag is the CLI's to name
        Assert.Contains("--name", Virtnet.Cli.Cli.Sentence(e, name));
    }

    [Fact]
    public void DeviceName_FifteenBytes_Accepted()
    {
        DeviceName.Validate("fifteen-bytes-x");
    }

    [Fact]
    public void DeviceName_SixteenBytes_MessageGivesTheLimit()
    {
        var e = Assert.Throws<VirtnetException>(() => DeviceName.Validate("virtnet-too-long"));
        Assert.Equal("virtnet-too-long: name is 16 bytes long, the limit is 15", e.Message);
        Assert.Equal("virtnet-too-long: name is 16 bytes long, the limit is 15; choose a shorter one with --name", Virtnet.Cli.Cli.Sentence(e, "virtnet-too-long"));
    }

    [Fact]
    public void Sentence_NameInUse_PointsAtNameOnlyForTheChosenName()
    {
        var chosen = new VirtnetException(FailureKind.NameInUse, "TUNSETIFF", "virtnet0", "virtnet0: name already in use", Errno.EBUSY);
        Assert.Equal("virtnet0: name already in use; choose another with --name", Virtnet.Cli.Cli.Sentence(chosen, "virtnet0"));

        // virtnet's private pump: changing --name cannot help, so the sentence must not say so.
        var pump = new VirtnetException(FailureKind.NameInUse, "TUNSETIFF", "vnpump3", "vnpump3: name already in use", Errno.EBUSY);
        string sentence = Virtnet.Cli.Cli.Sentence(pump, "virtnet0");
        Assert.DoesNotContain("--name", sentence);
        Assert.Contains("delete or rename that device", sentence);
    }

    [Fact]
    public void RandomMac_IsLocallyAdministeredUnicast()
    {
        for (int i = 0; i < 100; i++)
        {
            var mac = Attachment.RandomMac();
            Assert.Equal(6, mac.Length);
            Assert.Equal(0, mac[0] & 1);
            Assert.Equal(2, mac[0] & 2);
        }
    }
}
