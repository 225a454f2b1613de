#!/usr/bin/env bash
# The producer-side cost of a receive ring, TPACKET_V2 against V3 (docs/performance.md). Needs root, gcc, and
# .build/flood (bench/run.sh builds it). Build the consumer first: gcc -O2 -o bench/experiments/ringtest bench/experiments/ringtest.c
# usage: sudo bench/experiments/ringtest.sh VERSION   (0: no ring, 2, 3); a 64-byte flood into va (nft drop) from CPU 0,
# a consumer that only hands slots back on CPU 1; prints the delivered rate, which the producing CPU bounds.
set -u
work="$(mktemp -d)"
ver=$1; id=$RANDOM; G=rt-g-$id H=rt-h-$id; tp=""; rp=""
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
iph=45000032000040004011c1280ac832020ac8320100090009001e0000$(printf '%044d' 0)
ip netns exec $H "$(dirname "$0")"/ringtest va $ver 1 6 > "$work"/out.$ver & rp=$!
sleep 0.3
ip netns exec $G dotnet "$(dirname "$0")"/../../.build/flood/virtnet-flood.dll vb ${rxmac//:/}${gmac//:/}0800$iph 0 >/dev/null 2>&1 & tp=$!
sleep 1; c0=$(cnt); t0=$(date +%s.%N); sleep 3; c1=$(cnt); t1=$(date +%s.%N)
awk -v a=$c0 -v b=$c1 -v s=$t0 -v e=$t1 -v m=$ver 'BEGIN{printf "ring v%s: %.0f kpps", m, (b-a)/(e-s)/1000}'
wait $rp; echo "  ($(cat "$work"/out.$ver 2>/dev/null))"
