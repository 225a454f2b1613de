// The filter language's parser: what it accepts, how it groups, and the column and sentence of each refusal.
using Virtnet.Filters;
using Xunit;

namespace Virtnet.Tests.Filters;

public class FilterParserTests
{
    [Theory]
    [InlineData("ip or vlan and tcp", "(ip or vlan) and tcp")]                       // one precedence, left to right
    [InlineData("ip or (vlan and tcp)", "ip or (vlan and tcp)")]
    [InlineData("not ip and udp", "not ip and udp")]
    [InlineData("! ip && udp || arp", "(not ip and udp) or arp")]
    [InlineData("tcp dst port 80", "tcp dst port 80")]
    [InlineData("udp portrange 60-50", "udp portrange 50-60")]                       // swapped, as libpcap does
    [InlineData("src net 10.200.0.0/16", "src net 10.200.0.0/16")]
    [InlineData("host fd00::1", "host fd00::1")]
    [InlineData("ether src host 02:00:00:00:00:01", "ether src host 02:00:00:00:00:01")]
    [InlineData("ether proto 0x88cc", "ether proto 0x88cc")]
    [InlineData("ip proto 47", "ip proto 47")]
    [InlineData("vlan 0144", "vlan 100")]                                            // 0-prefixed: octal, like libpcap
    [InlineData("less 100 or greater 1000", "less 100 or greater 1000")]
    [InlineData("net 10.0.0.0/32", "host 10.0.0.0")]
    public void Parse_Groups(string expression, string grouped)
        => Assert.Equal(grouped, PacketFilter.Parse(expression).Grouped);

    [Theory]
    [InlineData("", 0, "empty")]
    [InlineData("udp prot 53", 4, "did you mean 'port'")]
    [InlineData("udp port", 8, "ends where a port number")]
    [InlineData("udp port 70000", 9, "out of range")]
    [InlineData("host 10.0.0", 5, "not an IPv4 or IPv6 address")]
    [InlineData("host example.com", 5, "not an IPv4 or IPv6 address")]
    [InlineData("net 10.200.1.0/16", 4, "host bits")]
    [InlineData("(tcp or udp", 11, "never closed")]
    [InlineData("tcp)", 3, "no '('")]
    [InlineData("tcp and", 7, "ends where a primitive")]
    [InlineData("tcp & udp", 4, "'&&'")]
    [InlineData("ether host 02:00:00:00:01", 11, "not a MAC address")]
    [InlineData("port http", 5, "names are not looked up")]
    [InlineData("vlan 5000", 5, "out of range")]
    [InlineData("tcp host 10.0.0.1", 4, "cannot follow a transport")]
    [InlineData("hots 10.0.0.1", 0, "did you mean 'host'")]
    [InlineData("udp port 53;", 11, "';' has no meaning")]
    public void Parse_Refuses_WithTheColumn(string expression, int column, string reason)
    {
        var e = Assert.Throws<FilterSyntaxException>(() => PacketFilter.Parse(expression));
        Assert.Equal(column, e.Column);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{expression}'", e.Message, StringComparison.Ordinal);
    }
}
