#!/usr/bin/env bash
# Loss at paced rates: a soak that sends FRAMES 64-byte UDP frames at each RATE (frames a second, trafgen -b)
# into the real device of a binding, with a CPU-bound process on the receiving CPU, and counts what reached the
# virtual device's stack. Below the rate the datapath sustains, nothing may be lost (issue 8, item 2).
#
#   sudo bench/paced.sh                                  # user datapath, 20k/50k/100k/200k, 200,000 frames, hog on
#   sudo bench/paced.sh --datapath kernel --reps 3
#   sudo bench/paced.sh --no-virtnet                     # the plain veth, the reference
#
# The lab is bench/experiments/lab.sh's: G sends from vb (trafgen, pinned to CPU 0, PACKET_QDISC_BYPASS), H
# receives on va, where virtnet attaches; an nft rule in H's prerouting counts and drops the test frames after the
# virtual device. veth delivers on the sender's CPU, so CPU 0 is the receiving CPU: the hog is pinned there.
# Needs root, iproute2, nftables, jq, netsniff-ng (trafgen) and util-linux (taskset).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
rates="20000 50000 100000 200000"
frames=200000
datapath=user
hogcpus=0
reps=1
virtnet=1
extra=()
pin=(taskset -c 0)
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates="${2//,/ }"; shift ;;
    --frames) frames="$2"; shift ;;
    --datapath) datapath="$2"; shift ;;
    --busy-poll) extra+=(--busy-poll "$2"); shift ;;
    --no-hog) hogcpus="" ;;
    --hog-cpus) hogcpus="${2//,/ }"; shift ;;
    --no-virtnet) virtnet=0 ;;
    --trafgen-anywhere) pin=() ;;
    --reps) reps="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "paced: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v trafgen >/dev/null || { echo "paced: needs trafgen (apt-get install netsniff-ng)" >&2; exit 1; }
"$repo/virtnet" --help >/dev/null   # build once, outside the namespaces

. "$here/experiments/lab.sh" paced
hogpids=(); vpid=""
stop_extra() { for p in ${hogpids[@]+"${hogpids[@]}"}; do kill $p 2>/dev/null; done; [ -n "$vpid" ] && kill -INT $vpid 2>/dev/null; sleep 0.5; }
trap 'stop_extra; cleanup' EXIT

if [ $virtnet = 1 ]; then
  ip netns exec $H "$repo/virtnet" attach va --datapath $datapath "${extra[@]}" > "$work/virtnet.out" 2>&1 & vpid=$!
  for _ in $(seq 100); do grep -q ready "$work/virtnet.out" && break; sleep 0.1; done
  grep ready "$work/virtnet.out" || { cat "$work/virtnet.out"; exit 1; }
fi
hogpids=()
for cpu in $hogcpus; do
  taskset -c $cpu sh -c 'while :; do :; done' & hogpids+=($!)
done

frame="${rxmac//:/}${gmac//:/}0800$iph"
printf '{ %s }\n' "$(echo "$frame" | sed 's/../0x&, /g; s/, $//')" > "$work/frame.cfg"
printf 'config       rate/s  frames   delivered  lost   lost%%\n'
name=$([ $virtnet = 1 ] && echo $datapath || echo direct)$([ -n "$hogcpus" ] && echo "+hog${hogcpus// /,}" || true)
for rep in $(seq $reps); do
  for rate in $rates; do
    before=$(cnt)
    ip netns exec $G ${pin[@]+"${pin[@]}"} trafgen -o vb -c "$work/frame.cfg" -n $frames -b ${rate}pps -q >/dev/null 2>&1
    sleep 0.5
    got=$(( $(cnt) - before ))
    awk -v n="$name" -v r=$rate -v f=$frames -v g=$got 'BEGIN { printf "%-12s %-7s %-8s %-10s %-6s %.2f\n", n, r, f, g, f - g, (f - g) * 100 / f }'
  done
done
if [ $virtnet = 1 ]; then
  kill -INT $vpid; wait $vpid 2>/dev/null || true; vpid=""
  grep -E 'stopped|past' "$work/virtnet.out" | sed 's/^/# /'
fi
