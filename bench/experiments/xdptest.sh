#!/usr/bin/env bash
# The producer-side cost of AF_XDP copy mode on a veth (docs/performance.md), next to ringtest.sh. Needs root, gcc,
# libbpf-dev and .build/flood (bench/run.sh builds it). Build first:
#   gcc -O2 -o bench/experiments/xdptest bench/experiments/xdptest.c -lbpf
# usage: sudo bench/experiments/xdptest.sh MODE   (0: stack only, 1: XDP redirect into an AF_XDP socket, 2: XDP_DROP)
# A 64-byte flood into va from CPU 0, the consumer on CPU 1. Prints what reached the stack (nft) or the socket,
# the generator's rate, and whether vb kept TSO while va has an XDP program.
mode=$1
. "$(dirname "$0")/lab.sh" xt
ip netns exec $H "$(dirname "$0")"/xdptest va $mode 1 6 > "$work"/out & rp=$!
sleep 0.5
tso=$(ip netns exec $G ethtool -k vb | awk '/tcp-segmentation-offload:/{print $2}')
start_flood
sleep 1; c0=$(cnt); g0=$(txp); t0=$(date +%s.%N); sleep 3; c1=$(cnt); g1=$(txp); t1=$(date +%s.%N)
awk -v a=$c0 -v b=$c1 -v g=$g0 -v h=$g1 -v s=$t0 -v e=$t1 -v m=$mode -v tso=$tso \
  'BEGIN{printf "mode %s: stack %.0f kpps, generator %.0f kpps, vb tso %s", m, (b-a)/(e-s)/1000, (h-g)/(e-s)/1000, tso}'
wait $rp; echo "  ($(cat "$work"/out 2>/dev/null))"
