#!/usr/bin/env bash
# Where a kernel mirror's CPU goes: perf over the 64-byte flood with no binding, with a virtnet mirror, and with
# the kernel's own tc mirred into a TAP-like target for reference.
# usage: sudo bench/experiments/mirrorprof.sh SECS OUTDIR
secs=${1:-3}; out=${2:-/tmp/mirrorprof}; mkdir -p "$out"
. "$(dirname "$0")/lab.sh" mp
run() { # name
  start_flood; sleep 1
  local c0 c1 b0 b1; c0=$(cnt); b0=$(busy)
  perf record -q -a -g -o "$out/$1.data" -- sleep "$secs" >/dev/null 2>&1
  c1=$(cnt); b1=$(busy)
  kill -TERM $tp; wait $tp 2>/dev/null; tp=""
  awk -v n="$1" -v c=$((c1 - c0)) -v b=$((b1 - b0)) -v s="$secs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%s: %d kpps, %d ns CPU/frame\n", n, c / s / 1000, (c ? b / hz * 1e9 / c : 0)}'
}
run none
ip netns exec $H "$here"/../../virtnet attach va --mirror >"$work/vn.out" 2>&1 & rp=$!
for t in $(seq 1 600); do grep -q ' ready' "$work/vn.out" && break; sleep 0.05; done
ip -n $H link set virtnet0 up
run mirror
kill -TERM $rp; wait $rp; rp=""
ip -n $H link add mdum type veth peer name mdum2; ip -n $H link set mdum2 up; ip -n $H link set mdum up
ip netns exec $H tc qdisc add dev va clsact
ip netns exec $H tc filter add dev va ingress protocol all u32 match u32 0 0 action mirred ingress mirror dev mdum
run tcmirred
ip netns exec $H tc -s filter show dev va ingress | grep -m1 -i "sent"; ip -n $H -s link show mdum | sed -n 3,4p
