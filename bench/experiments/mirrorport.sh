#!/usr/bin/env bash
# The MirrorPort sample on a second device against the plain user passthru, alternated round after round in one lab:
# the rate the generator (CPU 0) offers, and each CPU's busy ticks over 3 s (docs/performance.md, "The SDK's costs").
# usage: sudo bench/experiments/mirrorport.sh [ROUNDS]   (needs the sample built: dotnet build samples/MirrorPort -c Release)
rounds=${1:-3}
. "$(dirname "$0")/lab.sh" mpu
cpus() { awk '/^cpu[01] /{printf "%s %d %d ", $1, $2+$3+$4, $7+$8}' /proc/stat; echo; }
run() { # label args...
  local label=$1; shift
  ip netns exec $H "$here"/../../virtnet attach va --datapath user "$@" >"$work/vn.out" 2>&1 & rp=$!
  for t in $(seq 1 600); do grep -q ' ready' "$work/vn.out" && break; sleep 0.05; done
  ip -n $H link set virtnet0 up
  start_flood; sleep 1
  local t0=$(txp); local a=($(cpus)); sleep 3; local t1=$(txp); local b=($(cpus))
  kill -TERM $tp; wait $tp 2>/dev/null; tp=""
  kill -TERM $rp; wait $rp 2>/dev/null; rp=""
  echo "$label: offered $(( (t1-t0)/3000 )) kpps; cpu0 user+sys $(( b[1]-a[1] )) softirq $(( b[2]-a[2] )); cpu1 user+sys $(( b[4]-a[4] )) softirq $(( b[5]-a[5] )) (ticks in 3 s)"
}
for r in $(seq 1 "$rounds"); do
  run user
  run mirrorport --extra-device vnbmon0 --handler "$here"/../../samples/MirrorPort/bin/Release/net10.0/MirrorPort.dll
done
