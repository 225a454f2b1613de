#!/usr/bin/env bash
# The pump road's costs (docs/performance.md): a tcx redirect of every frame on va into a TAP, read on CPU 1.
# Needs root, gcc, libbpf-dev and .build/flood. Build first:
#   gcc -O2 -o bench/experiments/pumptest bench/experiments/pumptest.c -lbpf
# usage: sudo bench/experiments/pumptest.sh   (a 64-byte flood into va from CPU 0)
set -u
work="$(mktemp -d)"
id=$RANDOM; G=pt-g-$id H=pt-h-$id; tp=""; rp=""
cleanup() { [ -n "$tp" ] && kill -TERM $tp 2>/dev/null; [ -n "$rp" ] && kill -TERM $rp 2>/dev/null; sleep 0.3; wait 2>/dev/null; ip netns del $G; ip netns del $H; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for n in $G $H; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
ip -n $H link add va type veth peer name vb netns $G; ip -n $G link set vb up; ip -n $H link set va up
rxmac=$(ip -n $H -j link show va | jq -r '.[0].address'); gmac=$(ip -n $G -j link show vb | jq -r '.[0].address')
txp() { ip -n $G -s -j link show vb | jq '.[0].stats64.tx.packets'; }
iph=45000032000040004011c1280ac832020ac8320100090009001e0000$(printf '%044d' 0)
ip netns exec $H "$(dirname "$0")"/pumptest va 1 6 > "$work"/out & rp=$!
sleep 0.5
ip netns exec $G dotnet "$(dirname "$0")"/../../.build/flood/virtnet-flood.dll vb ${rxmac//:/}${gmac//:/}0800$iph 0 >/dev/null 2>&1 & tp=$!
sleep 1; g0=$(txp); t0=$(date +%s.%N); sleep 3; g1=$(txp); t1=$(date +%s.%N)
drops=$(ip -n $H -s -j link show pt0 | jq '.[0].stats64.tx.dropped')
awk -v g=$g0 -v h=$g1 -v s=$t0 -v e=$t1 'BEGIN{printf "generator %.0f kpps", (h-g)/(e-s)/1000}'
wait $rp; echo ", pt0 tx_dropped $drops  ($(cat "$work"/out 2>/dev/null))"
