#!/usr/bin/env bash
# The producer-side cost of AF_XDP copy mode on a veth (docs/performance.md), next to ringtest.sh. Needs root, gcc,
# libbpf-dev and .build/flood (bench/run.sh builds it). Build first:
#   gcc -O2 -o bench/experiments/xdptest bench/experiments/xdptest.c -lbpf
# usage: sudo bench/experiments/xdptest.sh MODE   (0: stack only, 1: XDP redirect into an AF_XDP socket, 2: XDP_DROP)
# A 64-byte flood into va from CPU 0, the consumer on CPU 1. Prints what reached the stack (nft) or the socket,
# the generator's rate, and whether vb kept TSO while va has an XDP program.
set -u
work="$(mktemp -d)"
mode=$1; id=$RANDOM; G=xt-g-$id H=xt-h-$id; tp=""; rp=""
cleanup() { [ -n "$tp" ] && kill -TERM $tp 2>/dev/null; [ -n "$rp" ] && kill -TERM $rp 2>/dev/null; sleep 0.3; wait 2>/dev/null; ip netns del $G; ip netns del $H; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for n in $G $H; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
ip -n $H link add va type veth peer name vb netns $G; ip -n $G link set vb up; ip -n $H link set va up
ip -n $H addr add 10.200.50.1/24 dev va
rxmac=$(ip -n $H -j link show va | jq -r '.[0].address'); gmac=$(ip -n $G -j link show vb | jq -r '.[0].address')
ip -n $G neigh replace 10.200.50.1 lladdr $rxmac dev vb nud permanent
echo 'table inet vnb { chain pre { type filter hook prerouting priority -300; policy accept; udp dport 9 counter drop; }; }' | ip netns exec $H nft -f -
cnt() { ip netns exec $H nft list chain inet vnb pre | awk '/packets/{for(i=1;i<NF;i++) if($i=="packets") print $(i+1)}'; }
txp() { ip -n $G -s -j link show vb | jq '.[0].stats64.tx.packets'; }
iph=45000032000040004011c1280ac832020ac8320100090009001e0000$(printf '%044d' 0)
ip netns exec $H "$(dirname "$0")"/xdptest va $mode 1 6 > "$work"/out & rp=$!
sleep 0.5
tso=$(ip netns exec $G ethtool -k vb | awk '/tcp-segmentation-offload:/{print $2}')
ip netns exec $G dotnet "$(dirname "$0")"/../../.build/flood/virtnet-flood.dll vb ${rxmac//:/}${gmac//:/}0800$iph 0 >/dev/null 2>&1 & tp=$!
sleep 1; c0=$(cnt); g0=$(txp); t0=$(date +%s.%N); sleep 3; c1=$(cnt); g1=$(txp); t1=$(date +%s.%N)
awk -v a=$c0 -v b=$c1 -v g=$g0 -v h=$g1 -v s=$t0 -v e=$t1 -v m=$mode -v tso=$tso \
  'BEGIN{printf "mode %s: stack %.0f kpps, generator %.0f kpps, vb tso %s", m, (b-a)/(e-s)/1000, (h-g)/(e-s)/1000, tso}'
wait $rp; echo "  ($(cat "$work"/out 2>/dev/null))"
