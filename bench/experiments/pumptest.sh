#!/usr/bin/env bash
# The pump road's costs (docs/performance.md): a tcx redirect of every frame on va into a TAP, read on CPU 1.
# Needs root, gcc, libbpf-dev and .build/flood. Build first:
#   gcc -O2 -o bench/experiments/pumptest bench/experiments/pumptest.c -lbpf
# usage: sudo bench/experiments/pumptest.sh   (a 64-byte flood into va from CPU 0)
. "$(dirname "$0")/lab.sh" pt
ip netns exec $H "$(dirname "$0")"/pumptest va 1 6 > "$work"/out & rp=$!
sleep 0.5
start_flood
sleep 1; g0=$(txp); t0=$(date +%s.%N); sleep 3; g1=$(txp); t1=$(date +%s.%N)
drops=$(ip -n $H -s -j link show pt0 | jq '.[0].stats64.tx.dropped')
awk -v g=$g0 -v h=$g1 -v s=$t0 -v e=$t1 'BEGIN{printf "generator %.0f kpps", (h-g)/(e-s)/1000}'
wait $rp; echo ", pt0 tx_dropped $drops  ($(cat "$work"/out 2>/dev/null))"
