#!/usr/bin/env bash
# The producer-side cost of a receive ring, TPACKET_V2 against V3 (docs/performance.md). Needs root, gcc, and
# .build/flood (bench/run.sh builds it). Build the consumer first: gcc -O2 -o bench/experiments/ringtest bench/experiments/ringtest.c
# usage: sudo bench/experiments/ringtest.sh VERSION   (0: no ring, 2, 3); a 64-byte flood into va (nft drop) from CPU 0,
# a consumer that only hands slots back on CPU 1; prints the delivered rate, which the producing CPU bounds.
ver=$1
. "$(dirname "$0")/lab.sh" rt
ip netns exec $H "$(dirname "$0")"/ringtest va $ver 1 6 > "$work"/out.$ver & rp=$!
sleep 0.3
start_flood
sleep 1; c0=$(cnt); t0=$(date +%s.%N); sleep 3; c1=$(cnt); t1=$(date +%s.%N)
awk -v a=$c0 -v b=$c1 -v s=$t0 -v e=$t1 -v m=$ver 'BEGIN{printf "ring v%s: %.0f kpps", m, (b-a)/(e-s)/1000}'
wait $rp; echo "  ($(cat "$work"/out.$ver 2>/dev/null))"
