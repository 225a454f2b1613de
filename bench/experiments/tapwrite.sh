#!/usr/bin/env bash
# The cost of injecting 64-byte frames into a TAP's receive path (nft drop behind it): write() per frame against
# io_uring, 64 writes per io_uring_enter (docs/performance.md). Needs root, gcc, liburing-dev. Build first:
# gcc -O2 -o bench/experiments/tapwrite bench/experiments/tapwrite.c -luring; usage: sudo bench/experiments/tapwrite.sh write|uring
set -u
work="$(mktemp -d)"
mode=$1; id=$RANDOM; N=tw-$id; p=""
cleanup() { [ -n "$p" ] && kill $p 2>/dev/null; wait 2>/dev/null; ip netns del $N; rm -rf "$work"; }
trap cleanup EXIT
ip netns add $N; ip -n $N link set lo up; ip netns exec $N sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
mac=02:00:00:00:00:01
ip netns exec $N "$(dirname "$0")"/tapwrite $mode 3 $mac > "$work"/tw.out 2>&1 & p=$!
for i in $(seq 50); do grep -q ready "$work"/tw.out && break; sleep 0.05; done
ip -n $N link set vtw0 address $mac; ip -n $N addr add 10.200.50.1/24 dev vtw0; ip -n $N link set vtw0 up
echo 'table inet vnb { chain pre { type filter hook prerouting priority -300; policy accept; udp dport 9 counter drop; }; }' | ip netns exec $N nft -f -
wait $p; p=""
tail -1 "$work"/tw.out; ip netns exec $N nft list chain inet vnb pre | grep -o "packets [0-9]*"
