#!/usr/bin/env bash
# The CPU that idle bindings on one real device cost between them (no traffic): what N-1 siblings take from the
# binding being measured in bench/run.sh's BASE-bridgeN configurations (docs/performance.md).
# usage: sudo bench/experiments/idlecost.sh kernel|user COUNT
dp=$1; count=$2
. "$(dirname "$0")/lab.sh" ic
pids=()
for i in $(seq 1 "$count"); do
  ip netns exec $H "$here"/../../virtnet attach va --datapath "$dp" --mode bridge --name "vs$i" >"$work/s$i.out" 2>&1 &
  pids+=($!)
done
for t in $(seq 1 600); do [ "$(cat "$work"/s*.out | grep -c ready)" -ge "$count" ] && break; sleep 0.05; done
sleep 5   # past the start (JIT tiering)
ticks() { local s=0 p; for p in "${pids[@]}"; do s=$((s + $(sed 's/^.*) //' /proc/$p/stat | awk '{print $12 + $13}'))); done; echo $s; }
a=$(ticks); sleep 10; b=$(ticks)
echo "$dp x$count: $(( (b - a) * 1000 / $(getconf CLK_TCK) )) ms of CPU in 10 s, all of them together"
kill -TERM "${pids[@]}"; sleep 3
