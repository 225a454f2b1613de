#!/usr/bin/env bash
# The floor of a kernel mirror's cost on the real device's CPU (docs/performance.md, "Filters and mirrors"): the
# mirror program's own run time per frame (bpf_clone_redirect: the clone, the copy of the original's head it makes
# writable again, the copy's queueing on the backlog), against the same program when its filter refuses the frame
# (no clone), during a 64-byte flood into va; and the rates and CPU per frame without a binding and with the mirror.
# The copy's receive on the mirror's device comes on top of the first figure. And the alternative, a copy as a perf
# record (bpf_perf_event_output of the frame's bytes, `virtnet-flood perf-mirror`): drained on CPU 1 (perf), or
# drained and written into a TAP there (perftap, the copy's receive on CPU 1).
# usage: sudo bench/experiments/mirrorfloor.sh [ROUNDS] [SECONDS]   (needs gcc, bpftool, jq, .build/flood)
rounds=${1:-5}; secs=${2:-3}
dir="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${VIRTNET_BPFSTATS:-}" ]; then
  gcc -O2 -o "$dir/bpfstats" "$dir/bpfstats.c" || exit 1
  VIRTNET_BPFSTATS=1 exec "$dir/bpfstats" bash "$0" "$@"
fi
. "$dir/lab.sh" mf
runstats() { bpftool prog show id "$1" | head -1 | grep -o 'run_time_ns [0-9]* run_cnt [0-9]*' | awk '{print $2, $4}'; }
perfmirror() { # [TAP]
  ip netns exec $H dotnet "$dir"/../../.build/flood/virtnet-flood.dll perf-mirror va 1 "$@" >"$work/vn.out" 2>&1 & rp=$!
  for t in $(seq 1 600); do grep -q 'perf-mirror on' "$work/vn.out" && break; sleep 0.05; done
}
measure() { # -> "kpps cpu_ns_per_frame prog_ns_per_frame" (prog: the mirror's program on va's ingress; 0 without)
  start_flood; sleep 1
  local id c0 c1 b0 b1 t0=0 n0=0 t1=0 n1=0
  id=$(bpftool prog show | grep -m1 -E 'name virtnet_(mir|cap) ' | cut -d: -f1)
  c0=$(cnt); b0=$(busy); [ -n "$id" ] && read -r t0 n0 < <(runstats "$id")
  sleep "$secs"
  c1=$(cnt); b1=$(busy); [ -n "$id" ] && read -r t1 n1 < <(runstats "$id")
  kill -TERM $tp; wait $tp 2>/dev/null; tp=""
  awk -v c=$((c1 - c0)) -v b=$((b1 - b0)) -v s="$secs" -v hz="$(getconf CLK_TCK)" -v t=$((t1 - t0)) -v n=$((n1 - n0)) \
    'BEGIN {printf "%d %d %d\n", c / s / 1000, (c ? b / hz * 1e9 / c : 0), (n ? t / n : 0)}'
}
declare -A rate cpu prog
configs=${CONFIGS:-"none mirror unmatched perf perftap"}
for r in $(seq 1 "$rounds"); do
  for c in $configs; do
    case $c in
      mirror) attach --mirror ingress ;;
      unmatched) attach --mirror ingress --filter arp ;;
      perf) perfmirror ;;
      perftap) perfmirror vnmon0 ;;
    esac
    read -r k n p < <(measure)
    detach
    rate[$c]+="$k "; cpu[$c]+="$n "; prog[$c]+="$p "
    echo "round $r $c: $k kpps, $n ns of CPU a frame, mirror program $p ns a frame"
  done
done
echo "median (min..max) over $rounds rounds:"
for c in $configs; do echo "  $c: $(echo ${rate[$c]} | med) kpps, $(echo ${cpu[$c]} | med) ns CPU/frame, program $(echo ${prog[$c]} | med) ns/frame"; done
