#!/usr/bin/env bash
# TCP through a binding while CPU hogs compete for the CPUs (a stand-in for a noisy host: steal time, neighbours),
# against the plain veth under the same hogs. Usage: sudo bench/experiments/tcpnoise.sh [ROUNDS] [HOGCPUS] [-- attach options]
#   sudo bench/experiments/tcpnoise.sh 5 0 -- --datapath user --busy-poll 0
# HOGCPUS is a list like 0 or 0,1, or none. Each round: iperf3 -t 3 each way, direct (va's own stack) then through virtnet0 (H's address moved onto it).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rounds=${1:-5}; hogcpus=${2-0}; [ "$hogcpus" = none ] && hogcpus=""; shift 2 2>/dev/null || true; [ "${1:-}" = "--" ] && shift
. "$here/lab.sh" tn
repo="$here/../.."
"$repo/virtnet" --help >/dev/null
hogs=(); vpid=""
for c in ${hogcpus//,/ }; do taskset -c $c sh -c 'while :; do :; done' & hogs+=($!); done
finish() { # only what this script started: the hogs, virtnet, and whatever still runs inside its own namespaces
  for p in ${hogs[@]+"${hogs[@]}"}; do kill $p 2>/dev/null; done; [ -n "$vpid" ] && kill -INT $vpid 2>/dev/null; sleep 0.5
  for n in $G $H; do ip netns pids $n 2>/dev/null | xargs -r kill 2>/dev/null; done; cleanup; }
trap finish EXIT
ip -n $G addr add 10.200.50.2/24 dev vb
ip netns exec $H nft flush ruleset
tcp() { # $1: label; iperf3 server in H on 10.200.50.1, client in G: in = G->H (wire->virtual), out = H->G
  ip netns exec $H iperf3 -s -1 -B 10.200.50.1 >/dev/null 2>&1 & local s=$!; sleep 0.3
  local in=$(ip netns exec $G iperf3 -c 10.200.50.1 -t 3 -O 1 -J 2>/dev/null | jq '.end.sum_received.bits_per_second/1e9'); wait $s
  ip netns exec $H iperf3 -s -1 -B 10.200.50.1 >/dev/null 2>&1 & s=$!; sleep 0.3
  local out=$(ip netns exec $G iperf3 -c 10.200.50.1 -t 3 -O 1 -R -J 2>/dev/null | jq '.end.sum_received.bits_per_second/1e9'); wait $s
  printf '%-8s in %6.2f out %6.2f\n' "$1" "$in" "$out"
}
for r in $(seq $rounds); do
  [ -z "${NODIRECT:-}" ] && tcp direct
  ip -n $H addr del 10.200.50.1/24 dev va
  ip netns exec $H "$repo/virtnet" attach va "$@" > "$work/v.out" 2>&1 & vpid=$!
  for _ in $(seq 100); do grep -q ready "$work/v.out" && break; sleep 0.1; done
  ip -n $H addr add 10.200.50.1/24 dev virtnet0; sleep 0.2
  [ -n "${WARM:-}" ] && ip netns exec $G ping -c 100 -i 0.005 -q 10.200.50.1 >/dev/null
  tcp virtnet
  kill -INT $vpid; wait $vpid; vpid=""; grep -E "ready|stopped|process" "$work/v.out" | sed "s/^/#   /"
  ip -n $H addr add 10.200.50.1/24 dev va
done
