#!/usr/bin/env bash
# Startup-to-ready and memory of the Native AOT build against the JIT build, alternated round after round, on
# both datapaths: the time from exec to the `ready` line (polled every 2 ms) and VmRSS 1 s after ready, in a lab
# of our own namespaces. Needs both builds: ./virtnet (JIT, .build/cli) and .build/aot/virtnet (.ci/run, or
#   dotnet publish src/Virtnet.Cli -c Release -r linux-x64 -p:PublishAot=true -o .build/aot).
# usage: sudo bench/experiments/startup.sh [ROUNDS]
rounds=${1:-10}
. "$(dirname "$0")/lab.sh" su
root="$here/../.."
jit=("dotnet" "$root/.build/cli/virtnet.dll"); aot=("$root/.build/aot/virtnet")
[ -x "${aot[0]}" ] && [ -f "${jit[1]}" ] || { echo "startup: build both first (see the top of this file)"; exit 1; }
now() { date +%s%N; }
one() { # build datapath -> "ms rss_mb"
  local -n cmd=$1
  local t0 t1 p
  : >"$work/out"
  t0=$(now)
  ip netns exec $H "${cmd[@]}" attach va --datapath "$2" >"$work/out" 2>&1 &
  p=$!
  while ! grep -q ' ready' "$work/out"; do sleep 0.002; kill -0 $p 2>/dev/null || { cat "$work/out" >&2; return 1; }; done
  t1=$(now)
  sleep 1
  local rss; rss=$(awk '/^VmRSS/{print $2}' /proc/$p/status)
  kill -TERM $p; wait $p 2>/dev/null
  awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN {printf "%.0f %.1f\n", (b - a) / 1e6, r / 1024}'
}
declare -A ms mb
for r in $(seq 1 "$rounds"); do
  for dp in kernel user; do
    for b in jit aot; do
      read -r t m < <(one $b $dp) || exit 1
      ms[$b-$dp]+="$t "; mb[$b-$dp]+="$m "
      echo "round $r $b $dp: ready after $t ms, rss $m MB"
    done
  done
done
med() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {printf "%s (%s..%s)", v[int((NR+1)/2)], v[1], v[NR]}'; }
echo "median (min..max) over $rounds rounds:"
for dp in kernel user; do for b in jit aot; do
  echo "  $b $dp: ready after $(echo ${ms[$b-$dp]} | med) ms, rss $(echo ${mb[$b-$dp]} | med) MB"
done; done
