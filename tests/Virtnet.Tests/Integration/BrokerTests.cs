// The privilege broker in process: a BrokerServer on a thread at one end of a socketpair, a BrokerClient at the
// other. What it makes is what this process would have made itself (a socket in the namespace asked for, a tcx
// link there, an object by id), and what fails fails with the same errno or exception, field for field.
using Virtnet.Bpf;
using Virtnet.Filters;
using Virtnet.Namespaces;
using Virtnet.Native;
using Virtnet.Netlink;
using Virtnet.Tests.Infrastructure;
using Xunit;

namespace Virtnet.Tests.Integration;

public sealed unsafe class BrokerTests : IDisposable
{
    private readonly BrokerClient _client;
    private readonly Thread _server;
    private int _served = -1;

    public BrokerTests()
    {
        int* pair = stackalloc int[2];
        Assert.Equal(0, Libc.socketpair(Libc.AF_UNIX, Libc.SOCK_SEQPACKET | Libc.SOCK_CLOEXEC, 0, pair));
        int theirs = pair[1];
        _client = new BrokerClient(new FileDescriptor(pair[0]));
        _server = new Thread(() =>
        {
            using var fd = new FileDescriptor(theirs);
            _served = BrokerServer.Serve(fd.Fd);
        }) { IsBackground = true, Name = "broker under test" };
        _server.Start();
    }

    [Fact]
    public void Wire_CarriesAnException_FieldForField()
    {
        var reply = new byte[BrokerWire.MaxMessage];
        var sent = new VirtnetException("BPF_LINK_CREATE tcx ingress", "v1", Errno.ENODEV, "an extack", "no device with ifindex 9 in this network namespace");
        int n = BrokerWire.WriteReply(reply, BrokerWire.StatusError, sent);
        var got = BrokerWire.ReadError(reply.AsSpan(0, n));
        Assert.Equal((sent.Kind, sent.Operation, sent.Device, sent.Errno, sent.ExtAck, sent.Hint, sent.Message), (got.Kind, got.Operation, got.Device, got.Errno, got.ExtAck, got.Hint, got.Message));

        var fact = new VirtnetException(FailureKind.NoNamespace, "attach", "/run/netns/x", "no network namespace /run/netns/x; create it first", Errno.ENOENT);
        n = BrokerWire.WriteReply(reply, BrokerWire.StatusError, fact);
        got = BrokerWire.ReadError(reply.AsSpan(0, n));
        Assert.Equal((fact.Kind, fact.Operation, fact.Device, fact.Errno, fact.Message), (got.Kind, got.Operation, got.Device, got.Errno, got.Message));
    }

    [SkippableFact]
    public void SocketIn_IsMadeInThatNamespace()
    {
        Root.Require();
        using var netns = NetNamespace.Create("broker test");
        netns.Run(() => Run.Checked("ip", "link", "add", "brk0", "type", "veth", "peer", "name", "brk1"));
        using var there = RtNetlink.OpenIn(netns, _client);
        var names = there.GetLinks().Select(l => l.Name).Order().ToArray();
        Assert.Equal(["brk0", "brk1", "lo"], names);
    }

    [SkippableFact]
    public void TcxLinkIn_AttachesThere_AndFailsAsInProcess()
    {
        Root.Require();
        using var netns = NetNamespace.Create("broker test");
        netns.Run(() => Run.Checked("ip", "link", "add", "brk0", "type", "veth", "peer", "name", "brk1"));
        int index = netns.Run(() =>
        {
            using var rtnl = RtNetlink.Open();
            return rtnl.GetLink("brk0").Index;
        });
        var instructions = PacketFilter.Parse("ip").CompileMatchProgram(FilterContext.Tc);
        using var program = BpfProgram.LoadSchedCls("vn_t_brk", instructions, "brk0");
        using (var link = TcxLink.AttachIn(netns, program, index, "brk0", TcxDirection.Ingress, via: _client))
        {
            Assert.Equal([program.Id], netns.Run(() => Tcx.QueryProgramIds(index, TcxDirection.Ingress)));
        }

        Assert.Empty(netns.Run(() => Tcx.QueryProgramIds(index, TcxDirection.Ingress)));

        // A link that cannot be made: the same errno either way, and the same sentence from TcxLink.
        using var none = InProcessPrivileges.Instance.LinkCreateIn(netns, program.Handle, 9999, Libc.BPF_TCX_EGRESS, 0, out var ownErrno);
        using var noneAsked = _client.LinkCreateIn(netns, program.Handle, 9999, Libc.BPF_TCX_EGRESS, 0, out var askedErrno);
        Assert.Null(none);
        Assert.Null(noneAsked);
        Assert.Equal(Errno.ENODEV, ownErrno);
        Assert.Equal(ownErrno, askedErrno);
        var own = Assert.Throws<VirtnetException>(() => TcxLink.AttachIn(netns, program, 9999, "nothere", TcxDirection.Egress, via: InProcessPrivileges.Instance));
        var asked = Assert.Throws<VirtnetException>(() => TcxLink.AttachIn(netns, program, 9999, "nothere", TcxDirection.Egress, via: _client));
        Assert.Equal((own.Operation, own.Device, own.Errno, own.Hint, own.Message), (asked.Operation, asked.Device, asked.Errno, asked.Hint, asked.Message));
        Assert.Contains("no device with ifindex 9999", asked.Message, StringComparison.Ordinal);

        // Failing to enter the namespace is thrown, as in process.
        using var gone = NetNamespace.Adopt(new FileDescriptor(Libc.open("/proc/self/stat", Libc.O_RDONLY | Libc.O_CLOEXEC)), "not a namespace");
        var notNs = Assert.Throws<VirtnetException>(() => _client.SocketIn(gone, 16, Libc.SOCK_RAW, 0, "socket(AF_NETLINK)"));
        Assert.Equal(("setns(CLONE_NEWNET)", "not a namespace", Errno.EINVAL), (notNs.Operation, notNs.Device, notNs.Errno));
    }

    [SkippableFact]
    public void ById_OpensTheSameObject_AndNullForNone()
    {
        Root.Require();
        using var program = BpfProgram.LoadSchedCls("vn_t_brkid", PacketFilter.Parse("arp").CompileMatchProgram(FilterContext.Tc), "test");
        using var opened = _client.ById(Libc.BPF_PROG_GET_FD_BY_ID, program.Id, out var errno);
        Assert.NotNull(opened);
        Assert.Equal("vn_t_brkid", BpfProgram.ReadName(BpfProgram.GetInfo(opened.Fd, "vn_t_brkid")));
        Assert.Equal(Errno.OK, errno);
        Assert.Null(_client.ById(Libc.BPF_PROG_GET_FD_BY_ID, uint.MaxValue - 7, out errno));
        Assert.Equal(Errno.ENOENT, errno);
    }

    [Fact]
    public void Server_EndsWhenTheClientCloses()
    {
        _client.Dispose();
        Assert.True(_server.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, _served);
    }

    public void Dispose()
    {
        _client.Dispose();
        _server.Join(TimeSpan.FromSeconds(10));
    }

}
