# The probes' lab, sourced with a name prefix: `. "$(dirname "$0")/lab.sh" rt`. Two namespaces of our own,
# G (the generator's end, vb) and H (va, 10.200.50.1/24, with an nft rule that counts and drops the test frames),
# both removed on exit, with whatever the probe started ($rp its consumer, $tp the generator). Defines cnt (the nft
# count), txp (vb's tx packets) and start_flood (64-byte frames into va from CPU 0, .build/flood from bench/run.sh);
# busy (the machine's busy CPU ticks), attach ARGS / detach (a virtnet attach to va in H, as $rp), med (median (min..max)).
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
id=$RANDOM; G=$1-g-$id H=$1-h-$id; tp=""; rp=""
cleanup() { [ -n "$tp" ] && kill -TERM $tp 2>/dev/null; [ -n "$rp" ] && kill -TERM $rp 2>/dev/null; sleep 0.3; wait 2>/dev/null; ip netns del $G; ip netns del $H; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for n in $G $H; do ip netns add $n; ip -n $n link set lo up; ip netns exec $n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; done
ip -n $H link add va type veth peer name vb netns $G; ip -n $G link set vb up; ip -n $H link set va up
ip -n $H addr add 10.200.50.1/24 dev va
rxmac=$(ip -n $H -j link show va | jq -r '.[0].address'); gmac=$(ip -n $G -j link show vb | jq -r '.[0].address')
ip -n $G neigh replace 10.200.50.1 lladdr $rxmac dev vb nud permanent
echo 'table inet vnb { chain pre { type filter hook prerouting priority -300; policy accept; iifname "va" udp dport 9 counter drop; }; }' | ip netns exec $H nft -f -
cnt() { ip netns exec $H nft list chain inet vnb pre | awk '/packets/{for(i=1;i<NF;i++) if($i=="packets") print $(i+1)}'; }
txp() { ip -n $G -s -j link show vb | jq '.[0].stats64.tx.packets'; }
iph=45000032000040004011c1280ac832020ac8320100090009001e0000$(printf '%044d' 0)
start_flood() { ip netns exec $G dotnet "$here"/../../.build/flood/virtnet-flood.dll vb ${rxmac//:/}${gmac//:/}0800$iph 0 >/dev/null 2>&1 & tp=$!; }
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
attach() { # args...
  ip netns exec $H "$here"/../../virtnet attach va "$@" >"$work/vn.out" 2>&1 &
  rp=$!
  for t in $(seq 1 600); do grep -q ' ready' "$work/vn.out" && break; sleep 0.05; done
  ip -n $H link set virtnet0 up
}
detach() { [ -n "$rp" ] && { kill -TERM $rp; wait $rp 2>/dev/null; rp=""; grep -h '^drained' "$work/vn.out" | sed 's/^/    /'; }; }
med() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {printf "%d (%d..%d)", v[int((NR+1)/2)], v[1], v[NR]}'; }
