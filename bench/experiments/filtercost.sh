#!/usr/bin/env bash
# What a filter and a mirror cost, in one lab with the configurations alternated round after round (no TCP or ping
# phases in between, unlike bench/run.sh): the 64-byte UDP rate that reaches the receiving stack, and the machine's
# CPU per frame, for
#   none       no binding: the frames reach va's stack (the reference for nomatch10 and mirror)
#   kernel     the kernel passthru: they reach virtnet0's (the reference for filter10)
#   filter10   the kernel passthru with a 10-term filter the frames match (bench/run.sh's FILTER_MATCH10)
#   nomatch10  the kernel passthru with a 10-term filter they do not match: they go on to va's stack
#   mirror     a kernel mirror of both directions: va's stack gets them, the mirror a copy of each
#   tcmirred   the kernel's own SPAN for reference: tc u32 + mirred ingress mirror into a veth end, no virtnet
# usage: sudo bench/experiments/filtercost.sh [ROUNDS] [SECONDS]
rounds=${1:-5}; secs=${2:-4}
. "$(dirname "$0")/lab.sh" fc
match10="(udp dst port 9 or icmp or tcp port 5201) and host 10.200.50.2 and dst net 10.200.50.0/24 and ip and not arp and greater 40 and not ip6 and not vlan"
nomatch10="(udp dst port 9 or icmp or tcp) and (host 10.9.9.9 or net 10.8.0.0/16 or arp or less 40 or ip6 or icmp6 or vlan 7 or ether proto 0x88b5)"
ip -n $H link add mdum type veth peer name mdum2; ip -n $H link set mdum2 up; ip -n $H link set mdum up
measure() { # config -> "kpps cpu_ns_per_frame"
  start_flood; sleep 1
  local c0 c1 b0 b1
  c0=$(cnt); b0=$(busy); sleep "$secs"; c1=$(cnt); b1=$(busy)
  kill -TERM $tp; wait $tp 2>/dev/null; tp=""
  awk -v c=$((c1 - c0)) -v b=$((b1 - b0)) -v s="$secs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%d %d\n", c / s / 1000, (c ? b / hz * 1e9 / c : 0)}'
}
declare -A rate cpu
configs=${CONFIGS:-"none kernel filter10 nomatch10 mirror tcmirred"}
for r in $(seq 1 "$rounds"); do
  for c in $configs; do
    case $c in
      none) ;;
      kernel) attach ;;
      filter10) attach --filter "$match10" ;;
      nomatch10) attach --filter "$nomatch10" ;;
      mirror) attach --mirror ;;
      tcmirred) ip netns exec $H tc qdisc add dev va clsact
                ip netns exec $H tc filter add dev va ingress protocol all u32 match u32 0 0 action mirred ingress mirror dev mdum ;;
    esac
    read -r k n < <(measure)
    detach
    [ "$c" = tcmirred ] && { ip netns exec $H tc -s filter show dev va ingress | grep -m1 Sent | sed "s/^ */  tcmirred round $r: /"; ip netns exec $H tc qdisc del dev va clsact; }
    [ "$c" = mirror ] && grep -o 'ingress [0-9]* frames[^,]*' "$work/vn.out" | head -1 | sed "s/^/  mirror round $r: /"
    rate[$c]+="$k "; cpu[$c]+="$n "
    echo "round $r $c: $k kpps, $n ns of CPU a frame"
  done
done
echo "median (min..max) over $rounds rounds:"
for c in $configs; do echo "  $c: $(echo ${rate[$c]} | med) kpps, $(echo ${cpu[$c]} | med) ns CPU/frame"; done
m() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
awk -v k="$(m "${rate[kernel]:-0}")" -v f="$(m "${rate[filter10]:-0}")" -v n="$(m "${rate[none]:-0}")" -v nm="$(m "${rate[nomatch10]:-0}")" -v mi="$(m "${rate[mirror]:-0}")" -v tm="$(m "${rate[tcmirred]:-0}")" \
  'function r(a, b) { return b ? a / b : 0 } BEGIN {printf "filter10/kernel %.3f, nomatch10/none %.3f, mirror/none %.3f, tcmirred/none %.3f (medians; 0: not run)\n", r(f, k), r(nm, n), r(mi, n), r(tm, n)}'
