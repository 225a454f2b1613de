// The config file of `virtnet run --config FILE` (ConfigFile.cs, TomlReader.cs): the example of the docs parses into
// the attach options the same command line gives; every error is one sentence with the file, the line and the key;
// fingerprints are equal for entries that mean the same and differ for any change. Pure parsing: no device, no root.
using System.Text;
using Virtnet.Cli.Config;
using Virtnet.Datapaths;
using Virtnet.Filters;
using Xunit;

namespace Virtnet.Tests.Unit;

public class ConfigFileTests
{
    private const string File = "/etc/virtnet.toml";

    private const string Example = """
        # comments anywhere
        [[binding]]
        real = "eth1"
        name = "v1"
        mode = "bridge"
        mac = "02:00:00:00:01:01"
        netns = "c1"
        datapath = "user"
        vlan = 100
        filter = "udp port 4789"

        [[binding]]
        real = 'eth2'          # literal strings too
        name = "m1"
        mirror = "ingress"     # or mirror = true (both), false (not a mirror)
        busy-poll = 200
        stats = 1.5
        """;

    private static IReadOnlyList<ConfigBinding> Parse(string text) => ConfigFile.Parse(text, File);

    private static ConfigBinding One(string body) => Assert.Single(Parse($"[[binding]]\n{body}\n"));

    /// <summary>The message of the error <paramref name="text"/> gets; always one line.</summary>
    private static string Error(string text)
    {
        string message = Assert.Throws<ConfigException>(() => Parse(text)).Message;
        Assert.DoesNotContain('\n', message);
        Assert.DoesNotContain('\r', message);
        return message;
    }

    /// <summary>The message for <paramref name="line"/> as the third line of a binding with a real device.</summary>
    private static string ErrorOnLine3(string line) => Error($"[[binding]]\nreal = \"eth1\"\n{line}\n");

    [Fact]
    public void Example_ParsesIntoTheAttachOptions()
    {
        var bindings = Parse(Example);
        Assert.Equal(2, bindings.Count);

        var v1 = bindings[0];
        Assert.Equal(2, v1.Line);
        Assert.Equal("eth1", v1.Options.RealDevice);
        Assert.Equal("v1", v1.Options.Name);
        Assert.Equal(BindingMode.Bridge, v1.Options.Mode);
        Assert.Equal(MacMode.Explicit, v1.Options.MacMode);
        Assert.Equal("02:00:00:00:01:01", Virtnet.Cli.Cli.FormatMac(v1.Options.Mac!));
        Assert.Equal("/run/netns/c1", v1.Options.Netns);
        Assert.Equal(DatapathKind.User, v1.Options.Datapath);
        Assert.Equal(100, v1.Options.Vlan);
        Assert.Equal("udp port 4789", v1.Options.Filter?.Expression);
        Assert.Equal(MirrorDirections.None, v1.Options.Mirror);
        Assert.Null(v1.Options.BusyPoll);
        Assert.Equal(0, v1.StatsSeconds);
        Assert.Equal("c1/v1", v1.Identity);

        var m1 = bindings[1];
        Assert.Equal(12, m1.Line);
        Assert.Equal("eth2", m1.Options.RealDevice);
        Assert.Equal("m1", m1.Options.Name);
        Assert.Equal(MirrorDirections.Ingress, m1.Options.Mirror);
        Assert.Equal(TimeSpan.FromMicroseconds(200), m1.Options.BusyPoll);
        Assert.Equal(1.5, m1.StatsSeconds);
        Assert.Equal(BindingMode.Passthru, m1.Options.Mode);
        Assert.Equal(DatapathKind.Kernel, m1.Options.Datapath);
        Assert.Null(m1.Options.Netns);
        Assert.Null(m1.Options.Filter);
        Assert.Equal("m1", m1.Identity);
    }

    [Fact]
    public void Example_SameOptionsAsTheAttachCommandLine()
    {
        var v1 = Parse(Example)[0].Options;
        var cli = Virtnet.Cli.Cli.ParseAttach("eth1", "v1", "user", "02:00:00:00:01:01", null, "c1", "bridge", 100);
        Assert.Equal(cli with { Mac = v1.Mac, Filter = v1.Filter }, v1);
        Assert.Equal(cli.Mac, v1.Mac);
    }

    [Fact]
    public void Fingerprint_Example_EverySettingResolved()
    {
        var bindings = Parse(Example);
        Assert.Equal(
            "real=\"eth1\" name=\"v1\" netns=\"/run/netns/c1\" mode=bridge mac=02:00:00:00:01:01 datapath=user vlan=100 filter=\"udp port 4789\" mirror=none busy-poll=200 stats=0",
            bindings[0].Fingerprint);
        Assert.Equal(
            "real=\"eth2\" name=\"m1\" netns=host mode=passthru mac=inherit datapath=kernel vlan=0 filter=none mirror=ingress busy-poll=200 stats=1.5",
            bindings[1].Fingerprint);
    }

    [Fact]
    public void RealOnly_AttachDefaults()
    {
        var b = One("real = \"eth0\"");
        var o = b.Options;
        Assert.Equal(1, b.Line);
        Assert.Equal("eth0", o.RealDevice);
        Assert.Equal("virtnet0", o.Name);
        Assert.Equal(DatapathKind.Kernel, o.Datapath);
        Assert.Equal(BindingMode.Passthru, o.Mode);
        Assert.Null(o.MacMode);
        Assert.Equal(0, o.Vlan);
        Assert.Null(o.BusyPoll);
        Assert.Null(o.Netns);
        Assert.Null(o.Filter);
        Assert.Equal(MirrorDirections.None, o.Mirror);
        Assert.Equal(0, b.StatsSeconds);
        Assert.Equal("virtnet0", b.Identity);
    }

    [Theory]
    [InlineData("mirror = true", MirrorDirections.Both)]
    [InlineData("mirror = false", MirrorDirections.None)]
    [InlineData("mirror = \"both\"", MirrorDirections.Both)]
    [InlineData("mirror = \"ingress\"", MirrorDirections.Ingress)]
    [InlineData("mirror = 'egress'", MirrorDirections.Egress)]
    [InlineData("", MirrorDirections.None)]
    public void Mirror_StringOrBoolean(string line, MirrorDirections expected)
        => Assert.Equal(expected, One($"real = \"eth0\"\n{line}").Options.Mirror);

    [Theory]
    [InlineData("inherit", MacMode.Inherit, null)]
    [InlineData("random", MacMode.Random, null)]
    [InlineData("02:00:00:00:00:0a", MacMode.Explicit, new byte[] { 2, 0, 0, 0, 0, 10 })]
    [InlineData("aa-bb-cc-dd-ee-0f", MacMode.Explicit, new byte[] { 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f })]
    public void Mac_AsAttachReadsIt(string mac, MacMode mode, byte[]? bytes)
    {
        var o = One($"real = \"eth0\"\nmac = \"{mac}\"").Options;
        Assert.Equal(mode, o.MacMode);
        Assert.Equal(bytes, o.Mac);
    }

    [Theory]
    [InlineData("passthru", BindingMode.Passthru)]
    [InlineData("bridge", BindingMode.Bridge)]
    [InlineData("private", BindingMode.Private)]
    [InlineData("vepa", BindingMode.Vepa)]
    public void Mode_EveryMode(string mode, BindingMode expected)
        => Assert.Equal(expected, One($"real = \"eth0\"\nmode = \"{mode}\"").Options.Mode);

    [Theory]
    [InlineData("", null, "v1")]
    [InlineData("netns = \"c1\"", "/run/netns/c1", "c1/v1")]
    [InlineData("netns = \"/run/netns/c1\"", "/run/netns/c1", "c1/v1")]
    [InlineData("netns = \"/proc/42/ns/net\"", "/proc/42/ns/net", "/proc/42/ns/net/v1")]
    [InlineData("netns = \"./ns\"", "./ns", "./ns/v1")]
    public void Netns_NameOrPath_AndTheIdentity(string line, string? path, string identity)
    {
        var b = One($"real = \"eth0\"\nname = \"v1\"\n{line}");
        Assert.Equal(path, b.Options.Netns);
        Assert.Equal(identity, b.Identity);
    }

    [Theory]
    [InlineData("100")]
    [InlineData("+100")]
    [InlineData("1_00")]
    [InlineData("0x64")]
    [InlineData("0x6_4")]
    [InlineData("0o144")]
    [InlineData("0b110_0100")]
    public void Integer_EveryTomlForm(string text)
        => Assert.Equal(100, One($"real = \"eth0\"\nvlan = {text}").Options.Vlan);

    [Theory]
    [InlineData("1.5", 1.5)]
    [InlineData("15e-1", 1.5)]
    [InlineData("0.15E+1", 1.5)]
    [InlineData("1_0.2_5", 10.25)]
    [InlineData("3", 3)]
    [InlineData("+2e1", 20)]
    [InlineData("0.0", 0)]
    [InlineData("86400", 86400)]
    public void Stats_FloatOrInteger(string text, double seconds)
        => Assert.Equal(seconds, One($"real = \"eth0\"\nstats = {text}").StatsSeconds);

    [Fact]
    public void BusyPoll_Microseconds()
        => Assert.Equal(TimeSpan.FromMicroseconds(1000), One("real = \"eth0\"\nbusy-poll = 1_000").Options.BusyPoll);

    [Theory]
    [InlineData("1__0")]
    [InlineData("_1")]
    [InlineData("1_")]
    [InlineData("0100")]
    [InlineData("-0x1")]
    [InlineData("0x")]
    [InlineData("0X64")]
    [InlineData("0xG1")]
    [InlineData("0o8")]
    [InlineData("0b2")]
    [InlineData("1.")]
    [InlineData(".5")]
    [InlineData("1e")]
    [InlineData("1.5.1")]
    [InlineData("+")]
    public void Number_NotToml_Refused(string text)
        => Assert.Equal(
            $"{File}:3: vlan in binding 1: {text} is not a TOML number; write it like 100, 0x64, 1_000 or 1.5 (no leading zeros, '_' only between digits)",
            ErrorOnLine3($"vlan = {text}"));

    [Theory]
    [InlineData("9223372036854775808")]
    [InlineData("-9223372036854775809")]
    [InlineData("0x8000000000000000")]
    [InlineData("0o1000000000000000000000")]
    public void Integer_Beyond64Bits_Refused(string text)
        => Assert.Equal($"{File}:3: vlan in binding 1: {text} does not fit in a 64-bit integer; give a smaller number", ErrorOnLine3($"vlan = {text}"));

    [Theory]
    [InlineData("9223372036854775807")]
    [InlineData("-9223372036854775808")]
    [InlineData("0x7fff_ffff_ffff_ffff")]
    public void Integer_AtThe64BitLimits_ReadThenOutOfRange(string text)
        => Assert.Equal(
            $"{File}:3: vlan = {text} in binding 1: {text} is out of range; give a VLAN id from 1 to 4094",
            ErrorOnLine3($"vlan = {text}"));

    [Fact]
    public void BasicString_EveryEscape()
    {
        var o = One("""
            real = "eth1"
            netns = "/x/\"q\\b\n\t\r\b\f\u00e9\U0001F600"
            """).Options;
        Assert.Equal("/x/\"q\\b\n\t\r\b\f\u00e9\U0001F600", o.Netns);
    }

    [Fact]
    public void LiteralString_NoEscapes()
        => Assert.Equal(@"/x/a\nb\u00e9\", One(@"real = 'eth1'" + "\n" + @"netns = '/x/a\nb\u00e9\'").Options.Netns);

    [Fact]
    public void String_EscapedDeviceName_Decoded()
        => Assert.Equal("eth1", One("real = \"eth\\u0031\"").Options.RealDevice);

    [Fact]
    public void QuotedKeys_SameAsBare()
    {
        var o = One("\"real\" = \"eth1\"\n'mode' = \"bridge\"\n\"na\\u006de\" = \"v1\"").Options;
        Assert.Equal("eth1", o.RealDevice);
        Assert.Equal(BindingMode.Bridge, o.Mode);
        Assert.Equal("v1", o.Name);
    }

    [Theory]
    [InlineData(@"""a\x41""", @"\x is not a TOML escape; write \\ for a backslash, or use a literal string in '...'")]
    [InlineData(@"""a\ b""", @"\  is not a TOML escape; write \\ for a backslash, or use a literal string in '...'")]
    [InlineData(@"""a\u12""", @"\u needs 4 hex digits, like \u00e9")]
    [InlineData(@"""a\u12g4""", @"\u needs 4 hex digits, like \u00e9")]
    [InlineData(@"""a\U0001F60""", @"\U needs 8 hex digits, like \U0001f600")]
    [InlineData(@"""a\uD800""", @"\uD800 is not a Unicode scalar value; give a code point from 0 to 10FFFF, outside D800-DFFF")]
    [InlineData(@"""a\U00110000""", @"\U00110000 is not a Unicode scalar value; give a code point from 0 to 10FFFF, outside D800-DFFF")]
    [InlineData(@"""a\UFFFFFFFF""", @"\UFFFFFFFF is not a Unicode scalar value; give a code point from 0 to 10FFFF, outside D800-DFFF")]
    [InlineData("\"a\u0001b\"", @"the string holds the control character U+0001; write it as an escape, like \u0001, in a ""..."" string")]
    [InlineData("'a\u007fb'", @"the string holds the control character U+007F; write it as an escape, like \u007f, in a ""..."" string")]
    public void String_BadEscapeOrControlCharacter_Refused(string value, string reason)
        => Assert.Equal($"{File}:3: netns in binding 1: {reason}", ErrorOnLine3($"netns = {value}"));

    [Fact]
    public void String_TabInside_Kept()
        => Assert.Equal("/x\ty", One("real = \"eth1\"\nnetns = \"/x\ty\"").Options.Netns);

    [Fact]
    public void Comments_AfterValuesHeadersAndOnTheirOwn()
    {
        var b = Assert.Single(Parse("""
            # a comment
               # an indented one
            [[binding]]   # after the header
            real = "eth1"# right after a value
            	netns = "/x#y"   # a '#' in a string is not a comment
            vlan = 7 #
            mirror = true	# after a tab

            """));
        Assert.Equal(3, b.Line);
        Assert.Equal("/x#y", b.Options.Netns);
        Assert.Equal(7, b.Options.Vlan);
        Assert.Equal(MirrorDirections.Both, b.Options.Mirror);
    }

    [Theory]
    [InlineData("[[binding]]")]
    [InlineData("[[ binding ]]")]
    [InlineData("[[\tbinding\t]]")]
    [InlineData("  [[\"binding\"]]")]
    [InlineData("[[ 'binding' ]] # quoted")]
    public void Header_AsTomlAllowsIt(string header)
        => Assert.Equal("eth1", Assert.Single(Parse($"{header}\nreal = \"eth1\"")).Options.RealDevice);

    [Fact]
    public void CrlfLineEndings_SameBindingsAndLines()
    {
        var lf = Parse(Example);
        var crlf = Parse(Example.Replace("\n", "\r\n", StringComparison.Ordinal) + "\r\n");
        Assert.Equal(lf.Select(b => (b.Line, b.Fingerprint, b.StatsSeconds, b.Identity)), crlf.Select(b => (b.Line, b.Fingerprint, b.StatsSeconds, b.Identity)));
        Assert.Equal("c1", ConfigFile.NetnsName(crlf[0].Options.Netns!));
    }

    [Fact]
    public void CrlfLineEndings_ErrorLinesCounted()
        => Assert.StartsWith($"{File}:4: mode = \"brdge\" in binding 1: ", Error("# x\r\n[[binding]]\r\nreal = \"eth1\"\r\nmode = \"brdge\"\r\n"), StringComparison.Ordinal);

    [Fact]
    public void ByteOrderMark_Skipped()
        => Assert.Equal(1, Assert.Single(Parse("\uFEFF[[binding]]\nreal = \"eth1\"")).Line);

    [Theory]
    [InlineData("real = \"eth1\"", "real = \"eth1\"\nname = \"virtnet0\"\nmode = \"passthru\"\ndatapath = \"kernel\"\nmac = \"inherit\"\nmirror = false\nbusy-poll = 200\nstats = 0\n")]
    [InlineData("real = \"eth1\"\nmode = \"bridge\"", "mode = 'bridge'\nmac = \"random\"\nreal = 'eth1'")]
    [InlineData("real = \"eth1\"\nnetns = \"c1\"", "netns = \"/run/netns/c1\"\nreal = \"eth1\"")]
    [InlineData("real = \"eth1\"\nvlan = 100\nbusy-poll = 1000", "\"real\" = \"eth\\u0031\"\nvlan = 0x64\nbusy-poll = 1_000")]
    [InlineData("real = \"eth1\"\nmac = \"02:aa:00:00:00:01\"", "real = \"eth1\"\nmac = \"02-AA-0-0-0-1\"")]
    [InlineData("real = \"eth1\"\nfilter = \"udp port 4789\"", "real = \"eth1\"\nfilter = \"UDP  port   4789\"")]
    [InlineData("real = \"eth1\"\nmirror = true", "real = \"eth1\"\nmirror = \"both\"")]
    [InlineData("real = \"eth1\"\nstats = 2", "real = \"eth1\" # the device\n\nstats = 2.0 # seconds")]
    [InlineData("real = \"eth1\"", "real = \"eth1\"\nstats = -0.0")]
    public void Fingerprint_SameMeaning_Equal(string a, string b)
        => Assert.Equal(One(a).Fingerprint, One(b).Fingerprint);

    private const string Full = """
        real = "eth1"
        name = "v1"
        mode = "bridge"
        mac = "02:00:00:00:01:01"
        netns = "c1"
        datapath = "user"
        vlan = 100
        filter = "udp port 4789"
        mirror = "ingress"
        busy-poll = 200
        stats = 1.5
        """;

    [Theory]
    [InlineData("real", "real = \"eth2\"")]
    [InlineData("name", "name = \"v2\"")]
    [InlineData("name", null)]
    [InlineData("mode", "mode = \"vepa\"")]
    [InlineData("mode", null)]
    [InlineData("mac", "mac = \"02:00:00:00:01:02\"")]
    [InlineData("mac", "mac = \"random\"")]
    [InlineData("mac", "mac = \"inherit\"")]
    [InlineData("mac", null)]
    [InlineData("netns", "netns = \"c2\"")]
    [InlineData("netns", "netns = \"/proc/1/ns/net\"")]
    [InlineData("netns", null)]
    [InlineData("datapath", "datapath = \"kernel\"")]
    [InlineData("vlan", "vlan = 101")]
    [InlineData("vlan", null)]
    [InlineData("filter", "filter = \"udp port 4790\"")]
    [InlineData("filter", "filter = \"udp dst port 4789\"")]
    [InlineData("filter", null)]
    [InlineData("mirror", "mirror = \"egress\"")]
    [InlineData("mirror", "mirror = true")]
    [InlineData("mirror", "mirror = false")]
    [InlineData("mirror", null)]
    [InlineData("busy-poll", "busy-poll = 0")]
    [InlineData("busy-poll", "busy-poll = 201")]
    [InlineData("stats", "stats = 2")]
    [InlineData("stats", "stats = 1.50001")]
    [InlineData("stats", null)]
    public void Fingerprint_AnyKeyChanged_Different(string key, string? line)
    {
        string changed = string.Join('\n', Full.Split('\n')
            .Select(l => l.StartsWith($"{key} =", StringComparison.Ordinal) ? line : l)
            .Where(l => l is not null));
        Assert.NotEqual(One(Full).Fingerprint, One(changed).Fingerprint);
    }

    [Fact]
    public void ExtraDevice_OneOrAnArray_OnTheUserDatapath_InTheFingerprint()
    {
        var two = One("real = \"eth1\"\ndatapath = \"user\"\nextra-device = [\"mon1\", \"mon2\"]");
        Assert.Equal(["mon1", "mon2"], two.Options.ExtraDevices);
        var one = One("real = \"eth1\"\ndatapath = \"user\"\nextra-device = \"mon1\"");
        Assert.Equal(["mon1"], one.Options.ExtraDevices);
        Assert.NotEqual(one.Fingerprint, two.Fingerprint);
        Assert.NotEqual(One("real = \"eth1\"\ndatapath = \"user\"").Fingerprint, one.Fingerprint);
        Assert.Equal(one.Fingerprint, One("real = \"eth1\"\ndatapath = \"user\"\nextra-device = [\"mon1\"]").Fingerprint);
    }

    [Theory]
    [InlineData("extra-device = [\"mon1\"]", "binding 1: extra-device = mon1: further devices get frames from handlers, which run on the user datapath; add --datapath user or a --handler")]
    [InlineData("datapath = \"user\"\nextra-device = [\"v1\"]", "binding 1: extra-device = v1: the binding already has a device of that name; give each device a name of its own")]
    [InlineData("datapath = \"user\"\nextra-device = [\"a/b\"]", "extra-device = [\"a/b\"] in binding 1: a/b: not a valid interface name (no '/', ':' or spaces); choose another")]
    public void ExtraDevice_Refused_OneSentence(string lines, string reason)
        => Assert.EndsWith(reason, Error($"[[binding]]\nreal = \"eth1\"\nname = \"v1\"\n{lines}\n"), StringComparison.Ordinal);

    [Fact]
    public void Fingerprint_MacDefaultFollowsTheMode()
    {
        // Omitted, the MAC is inherited in passthru mode and random in the others, as attach does.
        Assert.Equal(One("real = \"eth1\"\nmac = \"inherit\"").Fingerprint, One("real = \"eth1\"").Fingerprint);
        Assert.NotEqual(One("real = \"eth1\"\nmode = \"bridge\"\nmac = \"inherit\"").Fingerprint, One("real = \"eth1\"\nmode = \"bridge\"").Fingerprint);
    }

    [Fact]
    public void UnknownMode_TheExampleSentence()
    {
        string text = Example.Replace("name = \"m1\"", "mode = \"brdge\"", StringComparison.Ordinal);
        Assert.Equal("/etc/virtnet.toml:14: mode = \"brdge\" in binding 2: unknown mode 'brdge'; use passthru, bridge, private or vepa", Error(text));
    }

    [Theory]
    [InlineData("busy_poll = 200", "busy_poll = 200 in binding 1: unknown key busy_poll; did you mean busy-poll?")]
    [InlineData("mdoe = \"bridge\"", "mdoe = \"bridge\" in binding 1: unknown key mdoe; did you mean mode?")]
    [InlineData("Name = \"v1\"", "Name = \"v1\" in binding 1: unknown key Name; did you mean name?")]
    [InlineData("netsn = \"c1\"", "netsn = \"c1\" in binding 1: unknown key netsn; did you mean netns?")]
    [InlineData("datapth = \"user\"", "datapth = \"user\" in binding 1: unknown key datapth; did you mean datapath?")]
    [InlineData("busypoll = 5", "busypoll = 5 in binding 1: unknown key busypoll; did you mean busy-poll?")]
    [InlineData("real-dev = \"eth2\"", "real-dev = \"eth2\" in binding 1: unknown key real-dev; did you mean real?")]
    [InlineData("colour = \"red\"", "colour = \"red\" in binding 1: unknown key colour; the keys are real, name, mode, mac, vlan, filter, mirror, datapath, netns, busy-poll, stats, handler, handler-arg and extra-device")]
    [InlineData("\"\" = 1", "\"\" = 1 in binding 1: unknown key \"\"; the keys are real, name, mode, mac, vlan, filter, mirror, datapath, netns, busy-poll, stats, handler, handler-arg and extra-device")]
    public void UnknownKey_DidYouMean(string line, string message)
        => Assert.Equal($"{File}:3: {message}", ErrorOnLine3(line));

    [Fact]
    public void MissingReal_NamesTheHeaderLine()
        => Assert.Equal(
            $"{File}:5: binding 2 has no real key, the real device to take over; add one under its [[binding]] line, like real = \"eth1\"",
            Error("[[binding]]\nreal = \"eth1\"\nname = \"a\"\n\n[[binding]]\nname = \"b\"\nmode = \"bridge\"\n"));

    [Theory]
    [InlineData("vlan = \"100\"", "vlan must be a number, like vlan = 100")]
    [InlineData("vlan = 1.5", "vlan must be a whole number, like vlan = 100")]
    [InlineData("vlan = true", "vlan must be a number, like vlan = 100")]
    [InlineData("busy-poll = \"200\"", "busy-poll must be a number of microseconds, like busy-poll = 200")]
    [InlineData("busy-poll = 2e2", "busy-poll must be a whole number of microseconds, like busy-poll = 200")]
    [InlineData("stats = \"1\"", "stats must be a number of seconds, like stats = 1.5")]
    [InlineData("stats = false", "stats must be a number of seconds, like stats = 1.5")]
    [InlineData("name = 5", "name must be a string in quotes, like name = \"v1\"")]
    [InlineData("mode = true", "mode must be a string in quotes, like mode = \"bridge\"")]
    [InlineData("mac = 2", "mac must be a string in quotes, like mac = \"02:00:00:00:00:01\"")]
    [InlineData("filter = 4789", "filter must be a string in quotes, like filter = \"udp port 4789\"")]
    [InlineData("datapath = false", "datapath must be a string in quotes, like datapath = \"user\"")]
    [InlineData("netns = 1", "netns must be a string in quotes, like netns = \"c1\"")]
    [InlineData("mirror = 1", "mirror must be \"ingress\", \"egress\", \"both\", true or false, like mirror = \"ingress\"")]
    public void WrongType_SaysTheTypeExpected(string line, string reason)
        => Assert.Equal($"{File}:3: {line} in binding 1: {reason}", ErrorOnLine3(line));

    [Fact]
    public void WrongType_RealSaysTheTypeExpected()
        => Assert.Equal($"{File}:2: real = 1 in binding 1: real must be a string in quotes, like real = \"eth1\"", Error("[[binding]]\nreal = 1\n"));

    [Theory]
    [InlineData("vlan = 0", "0 is out of range; give a VLAN id from 1 to 4094")]
    [InlineData("vlan = 4095", "4095 is out of range; give a VLAN id from 1 to 4094")]
    [InlineData("vlan = 0x1000", "0x1000 is out of range; give a VLAN id from 1 to 4094")]
    [InlineData("busy-poll = -1", "-1 is out of range; give microseconds from 0 to 1000000, e.g. 200")]
    [InlineData("busy-poll = 1_000_001", "1_000_001 is out of range; give microseconds from 0 to 1000000, e.g. 200")]
    [InlineData("stats = -1", "-1 is out of range; give seconds from 0 to 86400, e.g. 1")]
    [InlineData("stats = 86400.5", "86400.5 is out of range; give seconds from 0 to 86400, e.g. 1")]
    [InlineData("stats = inf", "inf is out of range; give seconds from 0 to 86400, e.g. 1")]
    [InlineData("stats = -nan", "-nan is out of range; give seconds from 0 to 86400, e.g. 1")]
    [InlineData("mac = \"01:00:5e:00:00:01\"", "01:00:5e:00:00:01 is a multicast address; a device needs a unicast MAC (first byte even)")]
    [InlineData("mac = \"02:00:00:00:00\"", "'02:00:00:00:00' is not a MAC address; use inherit, random or six hex bytes like 02:00:00:00:00:01")]
    [InlineData("datapath = \"fast\"", "unknown datapath 'fast'; use kernel or user")]
    [InlineData("netns = \"..\"", "'..' is not a network namespace; give a name from 'ip netns' or a path like /proc/PID/ns/net")]
    [InlineData("netns = ''", "'' is not a network namespace; give a name from 'ip netns' or a path like /proc/PID/ns/net")]
    [InlineData("mirror = \"sideways\"", "unknown mirror direction 'sideways'; use \"ingress\", \"egress\", \"both\" (or true), or false for a binding that is not a mirror")]
    [InlineData("name = \"virtnet-too-long\"", "virtnet-too-long: name is 16 bytes long, the limit is 15; choose a shorter one")]
    [InlineData("name = \"a/b\"", "a/b: not a valid interface name (no '/', ':' or spaces); choose another")]
    [InlineData("name = \"\"", "the device name is empty; choose another")]
    [InlineData("name = \"vn%d\"", "vn%d: '%' makes a name template for the kernel, not a name; choose another")]
    public void BadValue_TheAttachSentence_WithFileLineAndKey(string line, string reason)
        => Assert.Equal($"{File}:3: {line} in binding 1: {reason}", ErrorOnLine3(line));

    [Fact]
    public void BadReal_NamesTheKey()
        => Assert.Equal(
            $"{File}:3: real = \"eth 1\" in binding 1: eth 1: not a valid interface name (no '/', ':' or spaces); give the real device's name as 'ip link' shows it",
            Error("[[binding]]\n# the device\nreal = \"eth 1\"\n"));

    [Fact]
    public void Name_ControlCharacterFromAnEscape_MessageStaysOnOneLine()
        => Assert.Contains(@"a\u000ab: not a valid interface name", ErrorOnLine3(@"name = ""a\nb"""), StringComparison.Ordinal);

    [Theory]
    [InlineData("udp prot 53")]
    [InlineData("(tcp or udp")]
    [InlineData("host 10.0.0")]
    [InlineData("")]
    public void BadFilter_OneLineWithTheColumn(string expression)
    {
        var e = Assert.Throws<FilterSyntaxException>(() => PacketFilter.Parse(expression));
        string message = ErrorOnLine3($"filter = \"{expression}\"");
        Assert.Equal($"{File}:3: filter = \"{expression}\" in binding 1: bad filter '{expression}' at column {e.Column + 1}: {e.Reason}", message);
        Assert.Contains(Virtnet.Cli.Cli.FilterError(e).Split('\n')[0], message, StringComparison.Ordinal);
    }

    [Fact]
    public void DuplicateIdentity_NamesBothLines()
        => Assert.Equal(
            $"{File}:7: binding 3 makes the same virtual device as binding 1 on line 2 (v1 on the host); give one of them another name",
            Error("\n[[binding]]\nreal = \"eth1\"\nname = \"v1\"\n[[binding]]\nreal = \"eth2\"\n[[binding]]\nreal = \"eth3\"\nname = \"v1\"\n"));

    [Fact]
    public void DuplicateIdentity_DefaultNameTwice_Refused()
        => Assert.Equal(
            $"{File}:3: binding 2 makes the same virtual device as binding 1 on line 1 (virtnet0 on the host); give one of them another name",
            Error("[[binding]]\nreal = \"eth1\"\n[[binding]]\nreal = \"eth2\"\n"));

    [Fact]
    public void DuplicateIdentity_SameNamespaceNamedTwoWays_Refused()
        => Assert.Equal(
            $"{File}:5: binding 2 makes the same virtual device as binding 1 on line 1 (v1 in c1); give one of them another name",
            Error("[[binding]]\nreal = \"eth1\"\nname = \"v1\"\nnetns = \"c1\"\n[[binding]]\nreal = \"eth2\"\nname = \"v1\"\nnetns = \"/run/netns/c1\"\n"));

    [Fact]
    public void SameName_OtherNamespaces_Accepted()
    {
        var bindings = Parse("[[binding]]\nreal = \"eth1\"\nname = \"v1\"\n[[binding]]\nreal = \"eth2\"\nname = \"v1\"\nnetns = \"c1\"\n[[binding]]\nreal = \"eth3\"\nname = \"v1\"\nnetns = \"c2\"\n");
        Assert.Equal("v1 c1/v1 c2/v1", string.Join(' ', bindings.Select(b => b.Identity)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    [InlineData("# only a comment\n   \n")]
    [InlineData("\r\n")]
    public void NoBinding_Refused(string text)
        => Assert.Equal(
            $"{File} has no [[binding]] table; add one for each binding, a [[binding]] line followed by at least real = \"DEVICE\"",
            Error(text));

    [Fact]
    public void DuplicateKey_NamesBothLines()
        => Assert.Equal(
            $"{File}:5: mode = \"vepa\" in binding 1: mode is already set on line 3; keep one of them",
            Error("[[binding]]\nreal = \"eth1\"\nmode = \"bridge\"\n# again\nmode = \"vepa\"\n"));

    [Fact]
    public void DuplicateKey_QuotedAndBare_SameKey()
        => Assert.Equal(
            $"{File}:3: \"real\" = \"eth2\" in binding 1: real is already set on line 2; keep one of them",
            Error("[[binding]]\nreal = \"eth1\"\n\"real\" = \"eth2\"\n"));

    [Fact]
    public void DuplicateKey_InAnotherBinding_Fine()
        => Assert.Equal(2, Parse("[[binding]]\nreal = \"eth1\"\nname = \"a\"\n[[binding]]\nreal = \"eth1\"\nname = \"b\"\n").Count);

    [Fact]
    public void BindingKeyAtTheTop_Refused()
        => Assert.Equal(
            $"{File}:2: mode = \"bridge\": not a setting of the whole file; mode is a key of a binding; put it under a [[binding]] line",
            Error("# defaults?\nmode = \"bridge\"\n[[binding]]\nreal = \"eth1\"\n"));

    [Fact]
    public void UnknownKeyAtTheTop_Refused()
        => Assert.Equal(
            $"{File}:1: colour = \"red\": not a setting of the whole file; the top of the file takes only metrics = \"ADDR:PORT\"; a binding's keys go under its [[binding]] line",
            Error("colour = \"red\"\n[[binding]]\nreal = \"eth1\"\n"));

    [Fact]
    public void Metrics_AtTheTop()
    {
        var document = ConfigFile.ParseDocument("# Prometheus\nmetrics = \"127.0.0.1:9464\"\n[[binding]]\nreal = \"eth1\"\n", File);
        Assert.Equal("127.0.0.1:9464", document.Metrics);
        Assert.Equal(2, document.MetricsLine);
        Assert.Single(document.Bindings);
        Assert.Null(ConfigFile.ParseDocument("[[binding]]\nreal = \"eth1\"\n", File).Metrics);
    }

    [Theory]
    [InlineData("metrics = 9464", "metrics = 9464: metrics must be a string in quotes, like metrics = \"127.0.0.1:9464\"")]
    [InlineData("metrics = \"9464\"", "metrics = \"9464\": 9464: give ADDR:PORT, like 127.0.0.1:9464, [::1]:9464 or *:9464")]
    [InlineData("metrics = \"127.0.0.1:70000\"", "metrics = \"127.0.0.1:70000\": 127.0.0.1:70000: give ADDR:PORT, like 127.0.0.1:9464, [::1]:9464 or *:9464")]
    [InlineData("metrics = \"::1:9464\"", "metrics = \"::1:9464\": ::1:9464: put an IPv6 address in brackets, like [::1]:9464")]
    [InlineData("metrics = \"a b:9464\"", "metrics = \"a b:9464\": a b:9464: a b is not an address or a host name; give ADDR:PORT, like 127.0.0.1:9464")]
    public void Metrics_Invalid_Refused(string line, string message)
        => Assert.Equal($"{File}:1: {message}", Error($"{line}\n[[binding]]\nreal = \"eth1\"\n"));

    [Fact]
    public void Metrics_Twice_Refused()
        => Assert.Equal(
            $"{File}:2: metrics = \"[::1]:1\": metrics is already set on line 1; keep one of them",
            Error("metrics = \"127.0.0.1:1\"\nmetrics = \"[::1]:1\"\n[[binding]]\nreal = \"eth1\"\n"));

    [Theory]
    [InlineData("name = \"v1", "name in binding 1: the string has no closing \"; end it on the same line (a multi-line string is not supported in a virtnet config)")]
    [InlineData("name = \"v1\\\"", "name in binding 1: the string has no closing \"; end it on the same line (a multi-line string is not supported in a virtnet config)")]
    [InlineData("name = \"v1\\", "name in binding 1: the string has no closing \"; end it on the same line (a multi-line string is not supported in a virtnet config)")]
    [InlineData("name = 'v1", "name in binding 1: the string has no closing '; end it on the same line (a multi-line string is not supported in a virtnet config)")]
    [InlineData("\"name = 1", "the string has no closing \"; end it on the same line (a multi-line string is not supported in a virtnet config)")]
    public void UnterminatedString_Refused(string line, string reason)
        => Assert.Equal($"{File}:3: {reason}", ErrorOnLine3(line));

    [Theory]
    [InlineData("name = \"a\" \"b\"", "name in binding 1: unexpected '\"b\"' after the value \"a\"; write one value a line, and put a comment after a #")]
    [InlineData("vlan = 100 200", "vlan in binding 1: unexpected '200' after the value 100; write one value a line, and put a comment after a #")]
    [InlineData("name = 'a'b", "name in binding 1: unexpected 'b' after the value 'a'; write one value a line, and put a comment after a #")]
    [InlineData("mode = \"bridge\" // a comment", "mode in binding 1: unexpected '// a comment' after the value \"bridge\"; write one value a line, and put a comment after a #")]
    [InlineData("[[binding]] x", "[[binding]]: unexpected 'x' after the header; put a comment after a #")]
    public void JunkAfterAValue_Refused(string line, string reason)
        => Assert.Equal($"{File}:3: {reason}", ErrorOnLine3(line));

    [Theory]
    [InlineData("name = [\"a\", \"b\"]", "name = [\"a\", \"b\"] in binding 1: name takes one value, not an array; give one value (and one [[binding]] table per binding)")]
    [InlineData("handler = [\"a.dll\", 1]", "handler in binding 1: an array here holds strings in quotes only, like [\"a\", \"b\"]")]
    [InlineData("handler = [\"a.dll\"", "handler in binding 1: the array has no closing ]; write it on one line, like [\"a\", \"b\"]")]
    [InlineData("name = { x = 1 }", "name in binding 1: an inline table is not supported in a virtnet config; give one value")]
    [InlineData("[binding]", "[binding]: a [table] header is not supported in a virtnet config; start each binding with [[binding]], in double brackets")]
    [InlineData("[defaults] # x", "[defaults]: a [table] header is not supported in a virtnet config; start each binding with [[binding]], in double brackets")]
    [InlineData("[[bindings]]", "[[bindings]]: a table other than [[binding]] is not supported in a virtnet config; start each binding with [[binding]]")]
    [InlineData("[[binding.extra]]", "[[binding.…]]: a dotted table name is not supported in a virtnet config; start each binding with [[binding]]")]
    [InlineData("busy.poll = 1", "busy.… in binding 1: a dotted key is not supported in a virtnet config; write each setting as KEY = VALUE under its [[binding]]")]
    [InlineData("filter = \"\"\"udp\"\"\"", "filter in binding 1: a multi-line string is not supported in a virtnet config; write the value on one line, in \"...\" or '...'")]
    [InlineData("filter = '''udp'''", "filter in binding 1: a multi-line string is not supported in a virtnet config; write the value on one line, in \"...\" or '...'")]
    [InlineData("stats = 1979-05-27", "stats in binding 1: a date or time is not supported in a virtnet config; give a number or a string in quotes")]
    [InlineData("stats = 1979-05-27T07:32:00Z", "stats in binding 1: a date or time is not supported in a virtnet config; give a number or a string in quotes")]
    [InlineData("stats = 07:32:00", "stats in binding 1: a date or time is not supported in a virtnet config; give a number or a string in quotes")]
    public void NotSupportedInAVirtnetConfig_Refused(string line, string reason)
        => Assert.Equal($"{File}:3: {reason}", ErrorOnLine3(line));

    [Theory]
    [InlineData("mode = bridge", "mode in binding 1: bridge needs quotes to be a string; write mode = \"bridge\"")]
    [InlineData("mirror = True", "mirror in binding 1: True is not a TOML boolean; write true or false, in lower case")]
    [InlineData("mode =", "mode in binding 1: the value is missing; write mode = VALUE")]
    [InlineData("mode = # nothing", "mode in binding 1: the value is missing; write mode = VALUE")]
    [InlineData("mode", "mode in binding 1: the key has no = and no value; write mode = VALUE")]
    [InlineData("mode \"bridge\"", "mode in binding 1: expected = after the key, not '\"'; write mode = VALUE")]
    [InlineData("= 1", "a key is missing before the =; write KEY = VALUE")]
    [InlineData("$x = 1", "'$' cannot start a key; a key is letters, digits, '-' and '_', or a string in quotes")]
    [InlineData("[[binding]", "[[binding]: the header does not end with ]]; write [[binding]]")]
    [InlineData("[[binding] ]", "[[binding] ]: the header does not end with ]]; write [[binding]]")]
    public void TomlSyntax_OneSentenceWhatToDo(string line, string reason)
        => Assert.Equal($"{File}:3: {reason}", ErrorOnLine3(line));

    [Fact]
    public void Error_FirstOneInTheFile_TheOthersLeft()
        => Assert.StartsWith(
            $"{File}:3: vlan = 0 in binding 1: ",
            Error("[[binding]]\nreal = \"eth1\"\nvlan = 0\nmode = \"brdge\"\n"),
            StringComparison.Ordinal);

    [Fact]
    public void Load_ReadsTheFile_NamedByItsPath()
    {
        string path = Path.Combine(Path.GetTempPath(), $"virtnet-config-{Guid.NewGuid():N}.toml");
        try
        {
            System.IO.File.WriteAllText(path, Example);
            var bindings = ConfigFile.Load(path);
            Assert.Equal(Parse(Example).Select(b => b.Fingerprint), bindings.Select(b => b.Fingerprint));

            System.IO.File.WriteAllText(path, "[[binding]]\nreal = \"eth1\"\nvlan = 0\n");
            Assert.Equal($"{path}:3: vlan = 0 in binding 1: 0 is out of range; give a VLAN id from 1 to 4094", Assert.Throws<ConfigException>(() => ConfigFile.Load(path)).Message);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Fact]
    public void Load_NoSuchFile_OneSentence()
        => Assert.Equal(
            "virtnet can't read /nonexistent-virtnet/x.toml: no such file",
            Assert.Throws<ConfigException>(() => ConfigFile.Load("/nonexistent-virtnet/x.toml")).Message);

    [Fact]
    public void Load_Directory_OneSentence()
    {
        string dir = Path.GetTempPath().TrimEnd('/');
        Assert.Equal($"virtnet can't read {dir}: it is a directory", Assert.Throws<ConfigException>(() => ConfigFile.Load(dir)).Message);
    }

    [Fact]
    public void Load_NotUtf8_NamesTheLine()
    {
        string path = Path.Combine(Path.GetTempPath(), $"virtnet-config-{Guid.NewGuid():N}.toml");
        try
        {
            System.IO.File.WriteAllBytes(path, [.. Encoding.UTF8.GetBytes("[[binding]]\nreal = \"eth1\"\nname = \""), 0xff, .. "\"\n"u8]);
            Assert.Equal($"{path}:3: the file is not UTF-8 text; save it as UTF-8", Assert.Throws<ConfigException>(() => ConfigFile.Load(path)).Message);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    /// <summary>The test plugin (tests/Virtnet.TestHandlers), as HandlerPluginTests finds it.</summary>
    private static string Plugin => Path.Combine(Virtnet.Tests.Infrastructure.Repo.Root, "tests", "Virtnet.TestHandlers", "bin", new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name, "net10.0", "virtnet-testhandlers.dll");

    [Fact]
    public void Handler_MadeWhenRead_UserDatapathChosen_ArgumentsInTheFingerprint()
    {
        var b = One($"real = \"eth1\"\nhandler = [\"{Plugin}:DropPings\"]\nhandler-arg = [\"reason=one\"]");
        Assert.Equal("DropPings", Assert.Single(b.Options.Handlers).GetType().Name);
        Assert.Equal(Virtnet.Datapaths.DatapathKind.User, b.Options.Datapath);
        var other = One($"real = \"eth1\"\nhandler = \"{Plugin}:DropPings\"\nhandler-arg = \"reason=two\"");
        Assert.NotEqual(b.Fingerprint, other.Fingerprint);
        Assert.Equal(b.Fingerprint, One($"real = \"eth1\"\nhandler = '{Plugin}:DropPings'\nhandler-arg = ['reason=one', ]").Fingerprint);
    }

    [Fact]
    public void Handler_ThatCannotBeLoaded_RefusedWithFileAndLine()
    {
        Assert.Equal(
            $"{File}:3: handler = \"/nonexistent/h.dll\" in binding 1: /nonexistent/h.dll: /nonexistent/h.dll: no such file; give the path of a .NET assembly (.dll) with a class that implements Virtnet.Datapaths.IFrameHandler",
            ErrorOnLine3("handler = \"/nonexistent/h.dll\""));
        Assert.Equal(
            $"{File}:1: binding 1 has handler-arg but no handler; add handler = [\"PATH.dll\"] under its [[binding]] line",
            Error("[[binding]]\nreal = \"eth1\"\nhandler-arg = \"a=b\"\n"));
    }
}
