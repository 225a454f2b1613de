#!/usr/bin/env bash
# The virtnet benchmark: one command, one run, the configurations interleaved so that machine noise cancels.
#
#   sudo ./bench/run.sh                 # 5 repetitions x 4 configurations, ~7 minutes
#   sudo ./bench/run.sh --quick         # 1 repetition, 2 s phases: a smoke run (~1 minute)
#   ./bench/run.sh --table FILE.json    # print the table of an earlier run again
#
# Every repetition builds each configuration from scratch in two fresh network namespaces (GEN and HOST, unique
# names, devices born inside them), measures ping latency, TCP each way and the 64-byte UDP rate, and tears it
# all down. The order of the configurations rotates from one repetition to the next. The method, the figures
# and how drops are explained: docs/benchmarks.md.
#
# Needs root, iproute2, iperf3, nft (nftables), ping, jq, awk and the .NET SDK (virtnet and the frame generator,
# bench/Virtnet.Flood, are built before the run, outside the namespaces). Nothing is touched outside the
# namespaces this script makes: no device, address, route or sysctl of the root namespace, no global sysctl. On
# exit, even on failure or Ctrl-C, it kills only the processes it started (by PID) and deletes only its own
# namespaces.
set -euo pipefail
shopt -s lastpipe

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
lib="$here/lib"

reps=5
secs=4
ping_count=300
configs="direct macvlan kernel kernel-ns user"
out="$here/results/latest.json"
table_only=""
soak_frames=0

usage() {
  cat <<'EOF'
usage: sudo bench/run.sh [options]
  --quick            1 repetition, 2 s phases, 100 pings (a smoke run)
  --reps N           repetitions of every configuration (default 5; at least 3 for a spread)
  --time S           seconds per TCP direction and for the small-packet window (default 4)
  --configs LIST     comma-separated subset of direct,macvlan,kernel,kernel-ns,user (default all; direct is the
                     reference; kernel-ns: the kernel datapath with virtnet0 in a third namespace, --netns), and
                     of the shared-device configurations BASE-bridgeN[-bcast] with BASE kernel, user or macvlan:
                     N bridge-mode bindings (macvlan devices) on va, measured on one of them; -bcast floods
                     broadcast frames instead (the fan-out to all N), e.g. kernel-bridge16,macvlan-bridge16-bcast;
                     kernel-chainN: the kernel passthru behind N-1 non-matching tcx programs (the design the
                     switch replaced: one program per binding, chained); kernel-filter10: the kernel passthru
                     with a 10-term --filter that the lab's traffic matches; kernel-nomatch10: with a 10-term
                     filter it does not match, measured on va's own stack (compare with direct); mirror: a
                     --mirror binding on va, measured on va's own stack (its copies in the virtnet columns);
                     BASE-capture: the passthru (BASE kernel or user) while `virtnet capture` records its
                     virtual-in (to /dev/null); BASE-metrics: with --metrics, scraped by curl every second;
                     user-samples: the user passthru with the ProtocolCounter, Nat and RateLimiter samples chained
                     (NAT addresses the lab does not use, a rate far above the flood: every frame is parsed, none
                     changed or dropped); user-mirrorport: the user passthru with a second virtual device
                     (--extra-device) that the MirrorPort sample gives a copy of every frame both ways
  --soak FRAMES      afterwards, push FRAMES 64-byte frames through the user datapath; report its GC counts
  --out FILE         where to write the JSON (default bench/results/latest.json)
  --table FILE       print the table of an existing results file and exit
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) reps=1; secs=2; ping_count=100 ;;
    --reps) reps="$2"; shift ;;
    --time) secs="$2"; shift ;;
    --configs) configs="${2//,/ }"; shift ;;
    --soak) soak_frames="$2"; shift ;;
    --out) out="$2"; shift ;;
    --table) table_only="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$table_only" ]; then
  exec "$lib/table.sh" "$table_only"
fi

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, packet sockets, BPF); run: sudo $0"
for tool in ip iperf3 nft ping jq awk dotnet; do
  command -v "$tool" >/dev/null || die "$tool not found; on Debian/Ubuntu: apt-get install -y iproute2 iperf3 nftables iputils-ping jq gawk (and the .NET SDK)"
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "--time wants a positive integer number of seconds"
for c in $configs; do
  case "$c" in
    direct|macvlan|kernel|kernel-ns|user|kernel-filter10|kernel-nomatch10|mirror) ;;
    kernel-capture|user-capture|kernel-metrics|user-metrics|user-samples|user-mirrorport) ;;
    kernel-chain[0-9]*) [[ "$c" =~ ^kernel-chain([0-9]+)$ ]] || die "unknown configuration '$c'" ;;
    kernel-bridge[0-9]*|user-bridge[0-9]*|macvlan-bridge[0-9]*)
      [[ "$c" =~ ^(kernel|user|macvlan)-bridge([0-9]+)(-bcast)?$ ]] && [ "${BASH_REMATCH[2]}" -ge 1 ] && [ "${BASH_REMATCH[2]}" -le 64 ] \
        || die "unknown configuration '$c'; a shared one is kernel-bridgeN, user-bridgeN or macvlan-bridgeN (N 1-64), optionally ending in -bcast" ;;
    *) die "unknown configuration '$c'; use direct, macvlan, kernel, kernel-ns, user, kernel-filter10, kernel-nomatch10, mirror, kernel-capture, user-capture, kernel-metrics, user-metrics, user-samples, user-mirrorport, or BASE-bridgeN[-bcast]" ;;
  esac
done
[[ " $configs " == *" direct "* ]] || die "the direct configuration is the reference for every ratio; keep it in --configs"

# ---------------------------------------------------------------------------------------------------------------
# Bookkeeping: everything we start or make, so the trap can undo exactly that.
run_id="$(printf '%04x%04x' $$ $RANDOM)"
work="$(mktemp -d /tmp/vnb-"$run_id".XXXXXX)"
declare -a our_pids=()
declare -a our_ns=()

stop_pid() { # pid [signal] — ask politely, then insist. Only ever a PID this script started, and that process's
  # own direct children (a process may fork helpers that stop only on their own signal; in a terminal ^C would
  # reach the whole group).
  local pid="$1" sig="${2:-TERM}" i kids
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kids="$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)"
  [ -n "$kids" ] && kill -"$sig" $kids 2>/dev/null
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    [ -n "$kids" ] && kill -KILL $kids 2>/dev/null
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

forget_pid() { local p="$1" keep=() x; for x in "${our_pids[@]}"; do [ "$x" = "$p" ] || keep+=("$x"); done; our_pids=("${keep[@]}"); }

delete_ns() { local ns="$1" keep=() x; ip netns del "$ns" 2>/dev/null || true; for x in "${our_ns[@]}"; do [ "$x" = "$ns" ] || keep+=("$x"); done; our_ns=("${keep[@]}"); }

cleanup() {
  local pid ns
  for pid in "${our_pids[@]}"; do stop_pid "$pid"; done
  for ns in "${our_ns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; log "interrupted; cleaning up"; exit 130' INT
trap 'log "terminated; cleaning up"; exit 143' TERM

# ---------------------------------------------------------------------------------------------------------------
# Counters. A snapshot is one JSON object: monotonic time, the nft counter of delivered test frames, the link
# statistics of both namespaces, the virtnet process's CPU ticks, the machine's busy CPU ticks and the
# machine-wide backlog drops (softnet_stat column 2).
clk_tck="$(getconf CLK_TCK)"

proc_ticks() { # pid -> utime+stime in clock ticks (0 without a process)
  if [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ]; then
    # The command name (field 2) may hold spaces: cut after its closing parenthesis.
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
  else
    echo 0
  fi
}

thread_ticks() { # pid -> JSON object {thread name: clock ticks}, summed by name (the datapath workers are named)
  if [ -n "${1:-}" ] && [ -d "/proc/$1/task" ]; then
    awk '{
        l = index($0, "("); r = 0
        for (i = length($0); i > 0; i--) if (substr($0, i, 1) == ")") { r = i; break }
        name = substr($0, l + 1, r - l - 1); split(substr($0, r + 2), f, " ")
        gsub(/["\\]/, "", name); t[name] += f[12] + f[13]
      } END { printf "{"; sep = ""; for (n in t) { printf "%s\"%s\": %d", sep, n, t[n]; sep = ", " } print "}" }' /proc/"$1"/task/*/stat 2>/dev/null || echo '{}'
  else
    echo '{}'
  fi
}

host_busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }

softnet_drops() {
  local total=0 line
  while read -r _ d _; do total=$((total + 16#$d)); done </proc/net/softnet_stat
  echo "$total"
}

nft_delivered() { # ns -> packets counted by the test-frame rule
  # awk reads to the end (no early exit): nft writing into a closed pipe dies of SIGPIPE, which pipefail and set -e
  # turn into the end of the whole run (seen with nftables 1.1).
  ip netns exec "$1" nft list chain inet vnb pre 2>/dev/null | awk '/counter packets/ && !done {for (i = 1; i < NF; i++) if ($i == "packets") {print $(i + 1); done = 1; break}}' | { read -r n || true; echo "${n:-0}"; }
}

snapshot() { # gen host vnpid -> JSON (the receiving side is $rxns; a kernel-ns lab's virtnet0 lives in $cont)
  local gen="$1" host="$2" pid="${3:-}" t nft links_h links_g links_c vn hb sd th
  t="$(date +%s.%N)"
  nft="$(nft_delivered "$rxns")"
  vn="$(proc_ticks "$pid")"
  th="$(thread_ticks "$pid")"
  hb="$(host_busy_ticks)"
  sd="$(softnet_drops)"
  links_h="$(ip -n "$host" -s -j link show)"
  links_g="$(ip -n "$gen" -s -j link show)"
  links_c="$(ip -n "$cont" -s -j link show | jq -c '[.[] | select(.ifname != "lo")]')"
  jq -nc --argjson t "$t" --argjson nft "$nft" --argjson vn "$vn" --argjson hb "$hb" --argjson sd "$sd" --argjson th "$th" \
    --argjson h "$links_h" --argjson g "$links_g" --argjson c "$links_c" --argjson hz "$clk_tck" \
    '{t: $t, nft: $nft, vn_cpu: ($vn / $hz), vn_threads: ($th | map_values(. / $hz)), host_busy: ($hb / $hz), softnet_drops: $sd,
      links: ([$h[] | {key: .ifname, value: .stats64}] + [$g[] | {key: .ifname, value: .stats64}] + [$c[] | {key: .ifname, value: .stats64}] | from_entries)}'
}

# ---------------------------------------------------------------------------------------------------------------
# One lab: two namespaces, a veth pair born inside them (va in HOST plays the real NIC; vb in GEN is the wire's
# far end), and the configuration under test on va; a third namespace, CONT, a container's, where kernel-ns puts
# virtnet0.
GEN_IP=10.200.50.2
HOST_IP=10.200.50.1
FILTER_MATCH10="(udp dst port 9 or icmp or tcp port 5201) and host $GEN_IP and dst net 10.200.50.0/24 and ip and not arp and greater 40 and not ip6 and not vlan"
FILTER_NOMATCH10="(udp dst port 9 or icmp or tcp) and (host 10.9.9.9 or net 10.8.0.0/16 or arp or less 40 or ip6 or icmp6 or vlan 7 or ether proto 0x88b5)"

make_lab() { # index -> sets gen host
  gen="vnb-gen-$run_id-$1"
  host="vnb-host-$run_id-$1"
  cont="vnb-cont-$run_id-$1"
  rxns="$host"
  ip netns add "$gen"; our_ns+=("$gen")
  ip netns add "$host"; our_ns+=("$host")
  ip netns add "$cont"; our_ns+=("$cont")
  local ns
  for ns in "$gen" "$host" "$cont"; do
    ip -n "$ns" link set lo up
    # No IPv6 in the lab: no DAD, ND or MLD frames mixed into the counts. Namespace-local sysctls.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  # Run inside HOST so that nothing, even by mistake, is created in the root namespace.
  ip -n "$host" link add va type veth peer name vb netns "$gen"
  ip -n "$gen" addr add "$GEN_IP/24" dev vb
  ip -n "$gen" link set vb up
  ip -n "$host" link set va up
}

vn_pid=""
vn_out=""
declare -a extra_pids=()

start_virtnet() { # datapath [attach options...]
  vn_out="$work/virtnet-$cfg-$rep.out"
  local datapath="$1"; shift
  ip netns exec "$host" "$repo/virtnet" attach va --datapath "$datapath" "$@" >"$vn_out" 2>"$vn_out.err" &
  vn_pid=$!
  our_pids+=("$vn_pid")
  local i
  for i in $(seq 1 600); do   # 30 s: a .NET start on a loaded 2-CPU machine can take several
    grep -q ' ready' "$vn_out" 2>/dev/null && return 0
    kill -0 "$vn_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "virtnet attach did not become ready: $(head -c 600 "$vn_out.err" | tr '\n' ' ')" >&2
  return 1
}

start_siblings() { # datapath count — COUNT more bridge-mode bindings on va (TAPs, up, no address), started together
  local datapath="$1" count="$2" i pid
  for i in $(seq 1 "$count"); do
    ip netns exec "$host" "$repo/virtnet" attach va --datapath "$datapath" --mode bridge --name "vs$i" >"$work/sibling-$i.out" 2>&1 &
    pid=$!
    our_pids+=("$pid"); extra_pids+=("$pid")
  done
  for i in $(seq 1 600); do
    [ "$(cat "$work"/sibling-*.out 2>/dev/null | grep -c ' ready')" -ge "$count" ] && return 0
    sleep 0.05
  done
  echo "the sibling bindings did not all become ready: $(grep -L ' ready' "$work"/sibling-*.out | head -1 | xargs cat | head -c 300)" >&2
  return 1
}

stop_siblings() {
  local pid
  for pid in "${extra_pids[@]}"; do stop_pid "$pid" TERM; forget_pid "$pid"; done
  extra_pids=()
  rm -f "$work"/sibling-*.out
}

stop_virtnet() { # -> the two summary lines in vn_out
  [ -n "$vn_pid" ] || return 0
  stop_pid "$vn_pid" TERM
  forget_pid "$vn_pid"
  vn_pid=""
}

setup_config() { # cfg -> sets rxdev rxmac gmac; says why on stderr and returns 1 on failure
  # Called in an if-condition, where set -e does not apply: every step checks for itself.
  case "$1" in
    direct) rxdev=va ;;
    macvlan)
      ip -n "$host" link add mv0 link va type macvlan mode passthru || return 1
      rxdev=mv0 ;;
    kernel|user)
      start_virtnet "$1" || return 1
      rxdev=virtnet0 ;;
    kernel-ns)
      start_virtnet kernel --netns "$cont" || return 1
      rxdev=virtnet0; rxns="$cont" ;;
    kernel-filter10)
      # Ten primitives, nearly all of them evaluated for each flood frame; the lab's ping and TCP match too.
      start_virtnet kernel --filter "$FILTER_MATCH10" || return 1
      rxdev=virtnet0 ;;
    kernel-nomatch10)
      # Ten primitives, all evaluated (the first matches, the nine alternatives do not): every frame goes on to va.
      start_virtnet kernel --filter "$FILTER_NOMATCH10" || return 1
      rxdev=va ;;
    mirror)
      start_virtnet kernel --mirror || return 1
      rxdev=va ;;
    kernel-capture|user-capture)
      # A capture of virtual-in runs through the whole measurement, from another process (writing to /dev/null:
      # what is measured is the binding's rate while its frames are copied, not a disk).
      start_virtnet "${1%-capture}" || return 1
      ip netns exec "$host" "$repo/virtnet" capture virtnet0 --point virtual-in -w /dev/null >/dev/null 2>"$work/capture.err" &
      local kpid=$!; our_pids+=("$kpid"); extra_pids+=("$kpid")
      local i; for i in $(seq 1 600); do grep -q "capturing" "$work/capture.err" && break; sleep 0.05; done
      grep -q "capturing" "$work/capture.err" || { echo "capture: $(head -c 300 "$work/capture.err")" >&2; return 1; }
      rxdev=virtnet0 ;;
    kernel-metrics|user-metrics)
      # The Prometheus endpoint, scraped once a second for the whole measurement.
      start_virtnet "${1%-metrics}" --metrics 127.0.0.1:9464 || return 1
      ip netns exec "$host" sh -c 'while :; do curl -s -o /dev/null http://127.0.0.1:9464/metrics; sleep 1; done' >/dev/null 2>&1 &
      local spid=$!; our_pids+=("$spid"); extra_pids+=("$spid")
      rxdev=virtnet0 ;;
    user-samples)
      # Three handlers from samples/, chained: each frame is classified, checked for NAT (10.201.0.0/16 is not the
      # lab's: nothing is rewritten) and paid for by a token bucket whose rate no flood reaches.
      start_virtnet user \
        --handler "$repo/samples/ProtocolCounter/bin/Release/net10.0/ProtocolCounter.dll" \
        --handler "$repo/samples/Nat/bin/Release/net10.0/Nat.dll" --handler-arg inside=10.201.0.1 --handler-arg outside=10.201.0.2 \
        --handler "$repo/samples/RateLimiter/bin/Release/net10.0/RateLimiter.dll" --handler-arg rate=1000000000 --handler-arg burst=1000000000 \
        || return 1
      rxdev=virtnet0 ;;
    user-mirrorport)
      # A second virtual device, vnbmon0, with a copy of every frame both ways (its own stack drops them: another MAC).
      start_virtnet user --extra-device vnbmon0 --handler "$repo/samples/MirrorPort/bin/Release/net10.0/MirrorPort.dll" || return 1
      rxdev=virtnet0 ;;
    kernel-chain*)
      # The alternative design: the kernel passthru program behind N-1 per-binding programs that do not match.
      local n="${1#kernel-chain}"
      if [ "$n" -gt 1 ]; then
        ip netns exec "$host" dotnet "$flood" tcx-chain va $((n - 1)) >"$work/chain.out" 2>&1 &
        local cpid=$!; our_pids+=("$cpid"); extra_pids+=("$cpid")
        local i; for i in $(seq 1 600); do grep -q "programs on" "$work/chain.out" && break; sleep 0.05; done
        grep -q "programs on" "$work/chain.out" || { echo "tcx chain holder: $(head -c 300 "$work/chain.out")" >&2; return 1; }
      fi
      start_virtnet kernel || return 1
      rxdev=virtnet0 ;;
    *-bridge*)
      # N bridge-mode bindings on va, measured on the last one made; the others are siblings that take nothing.
      [[ "$1" =~ ^(kernel|user|macvlan)-bridge([0-9]+) ]] || return 1
      local base="${BASH_REMATCH[1]}" n="${BASH_REMATCH[2]}" i
      if [ "$base" = macvlan ]; then
        for i in $(seq 1 $((n - 1))); do
          ip -n "$host" link add "mvs$i" link va type macvlan mode bridge || return 1
          ip -n "$host" link set "mvs$i" up || return 1
        done
        ip -n "$host" link add mv0 link va type macvlan mode bridge || return 1
        rxdev=mv0
      else
        if [ "$n" -gt 1 ]; then start_siblings "$base" $((n - 1)) || return 1; fi
        start_virtnet "$base" --mode bridge --name vm || return 1
        rxdev=vm
      fi ;;
  esac
  ip -n "$rxns" addr add "$HOST_IP/24" dev "$rxdev" || return 1
  ip -n "$rxns" link set "$rxdev" up || return 1
  rxmac="$(ip -n "$rxns" -j link show "$rxdev" | jq -r '.[0].address')" || return 1
  gmac="$(ip -n "$gen" -j link show vb | jq -r '.[0].address')" || return 1
  # Static neighbours: no ARP in the middle of a measurement.
  ip -n "$gen" neigh replace "$HOST_IP" lladdr "$rxmac" dev vb nud permanent || return 1
  ip -n "$rxns" neigh replace "$GEN_IP" lladdr "$gmac" dev "$rxdev" nud permanent || return 1
  # The small-packet sink: count and drop the test frames at the virtual side's IP layer, before conntrack and
  # routing, the same way for every configuration.
  # Only what arrives on the measured device: with broadcast frames every sibling (and va's stack) gets a copy too.
  ip netns exec "$rxns" nft -f - <<EOF || return 1
table inet vnb {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    iifname "$rxdev" udp dport 9 counter drop
  }
}
EOF
  ip netns exec "$gen" ping -c 3 -i 0.2 -W 1 -q "$HOST_IP" >/dev/null 2>&1 || { echo "no ping through $1" >&2; return 1; }
}

teardown_lab() {
  stop_virtnet
  stop_siblings
  [ -n "${iperf_pid:-}" ] && { stop_pid "$iperf_pid"; forget_pid "$iperf_pid"; iperf_pid=""; }
  delete_ns "$gen"
  delete_ns "$host"
  delete_ns "$cont"
}

# ---------------------------------------------------------------------------------------------------------------
# The measurements. Each appends fields to the sample file "$sample" (a JSON object being built up).
put() { # jq-filter [jq-args...] — update the sample
  local filter="$1"; shift
  jq -c "$@" "$filter" "$sample" >"$sample.tmp" && mv "$sample.tmp" "$sample"
}

putf() { # jq-file [jq-args...] — update the sample with a filter from bench/lib
  local file="$1"; shift
  jq -c "$@" -f "$file" "$sample" >"$sample.tmp" && mv "$sample.tmp" "$sample"
}

measure_ping() {
  # Light load: one echo every 5 ms. Per-reply RTTs, so we get a p99 and not just ping's own summary.
  local rtts="$work/rtt-$cfg-$rep"
  # Warm-up first, as iperf3 leaves out slow start (-O 1) and the rate leaves out its first second: 100 echoes
  # (0.5 s), not counted, so a just-started virtnet is measured after its first frames, not while its .NET code
  # is still being compiled. The same for every configuration.
  ip netns exec "$gen" ping -c 100 -i 0.005 -W 1 -q -n "$HOST_IP" >/dev/null 2>&1 || true
  ip netns exec "$gen" ping -c "$ping_count" -i 0.005 -W 1 -n "$HOST_IP" 2>/dev/null | sed -nE 's/.*time=([0-9.]+) ms.*/\1/p' >"$rtts" || true
  local stats
  stats="$(sort -g "$rtts" | awk -v sent="$ping_count" '{v[NR] = $1; s += $1} END {
    if (NR == 0) {print "null null " sent; exit}
    k = int(0.99 * NR); if (k < 0.99 * NR) k++;   # nearest rank
    printf "%.4f %.4f %d\n", s / NR, v[k], sent - NR }')"
  read -r avg p99 lost <<<"$stats"
  put '.ping_avg_ms = $a | .ping_p99_ms = $p | .ping_lost = $l' --argjson a "$avg" --argjson p "$p99" --argjson l "$lost"
}

iperf_pid=""
start_iperf_server() {
  ip netns exec "$rxns" iperf3 -s -B "$HOST_IP" -p 5201 >/dev/null 2>&1 &
  iperf_pid=$!
  our_pids+=("$iperf_pid")
  local i
  for i in $(seq 1 100); do
    ip netns exec "$rxns" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  return 1
}

measure_tcp() { # name reverse-flag
  local name="$1" flag="$2" json="$work/iperf-$cfg-$rep-$1.json" s0 s1
  s0="$(snapshot "$gen" "$host" "$vn_pid")"
  # -O 1: leave slow start out of the figure; -t secs measured after it.
  if ! ip netns exec "$gen" iperf3 -c "$HOST_IP" -p 5201 -t "$secs" -O 1 -J $flag >"$json" 2>&1; then
    put ".errors += [\$e]" --arg e "iperf3 $name: $(jq -r '.error // empty' "$json" 2>/dev/null | head -c 200)"
    return 0
  fi
  s1="$(snapshot "$gen" "$host" "$vn_pid")"
  putf "$lib/tcp.jq" --slurpfile r "$json" --argjson s0 "$s0" --argjson s1 "$s1" --arg n "$name"
}

measure_pps() {
  local tlog="$work/flood-$cfg-$rep.log" b w0 w1 a tpid sent
  b="$(snapshot "$gen" "$host" "$vn_pid")"
  # One generator process, pinned to CPU 0 (see start_flood).
  start_flood "$tlog"
  tpid=$!
  our_pids+=("$tpid")
  sleep 1
  w0="$(snapshot "$gen" "$host" "$vn_pid")"
  # The window in quarter-second slices as well: this machine's vCPUs are now and then taken away for seconds
  # (a fixed spin loop then runs 3-4 times slower), which makes the window's mean bimodal across repetitions. The
  # 90th percentile of the slices is the rate while the CPU was ours (docs/benchmarks.md).
  local slices="$work/slices-$cfg-$rep" k c0 c1 t0 t1
  : >"$slices"
  c0="$(nft_delivered "$rxns")"; t0="$(date +%s.%N)"
  for k in $(seq 1 $((secs * 4))); do
    sleep 0.25
    c1="$(nft_delivered "$rxns")"; t1="$(date +%s.%N)"
    awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN {printf "%.0f\n", (b - a) / (e - s)}' >>"$slices"
    c0="$c1"; t0="$t1"
  done
  w1="$(snapshot "$gen" "$host" "$vn_pid")"
  stop_pid "$tpid" TERM
  forget_pid "$tpid"
  sleep 0.5 # let queues drain before the final count
  a="$(snapshot "$gen" "$host" "$vn_pid")"
  # The generator's own count of frames the kernel accepted: "N packets outgoing".
  sent="$(sed -nE 's/^[[:space:]]*([0-9]+) packets outgoing.*/\1/p' "$tlog" | tail -1)"
  put '.pps_delivered_p90 = $p' --argjson p "$(sort -n "$slices" | awk '{v[NR] = $1} END {k = int(0.9 * NR); if (k < 0.9 * NR) k++; print (NR ? v[k] : "null")}')"
  putf "$lib/pps.jq" --argjson b "$b" --argjson w0 "$w0" --argjson w1 "$w1" --argjson a "$a" --argjson sent "${sent:-null}" \
    --arg rx "$rxdev" --arg pump "$(pump_name)" --arg cfg "$cfg"
}

flood="$repo/.build/flood/virtnet-flood.dll"

start_flood() { # log — starts the frame generator in GEN, in the background ($! is its PID)
  # bench/Virtnet.Flood: sendmmsg() of one 64-byte frame, 64 per call, from CPU 0, until SIGTERM. Each frame
  # becomes an ordinary linear skb, as a NIC driver's would, and a full send buffer makes it wait rather than
  # fail. (trafgen's TX ring sends zero-copy fragments of the ring, which any packet socket on the receiving
  # device must copy first, and it exits on the first EAGAIN: docs/benchmarks.md.)
  ip netns exec "$gen" dotnet "$flood" vb "$(frame_hex)" 0 >"$1" 2>&1 &
  our_pids+=("$!")
}

ip_hex() { local IFS=.; set -- $1; printf '%02x%02x%02x%02x' "$1" "$2" "$3" "$4"; }

frame_hex() { # the test frame, from rxmac (destination) and gmac, as hex
  # 64 bytes of frame (no FCS on a veth): Ethernet 14 + IPv4 20 + UDP 8 + 22 bytes of payload. UDP checksum 0
  # (none, allowed on IPv4); the IPv4 header checksum computed here.
  local src dst sum=0 w
  src="$(ip_hex "$GEN_IP")"; dst="$(ip_hex "$HOST_IP")"
  for w in 4500 0032 0000 4000 4011 "${src:0:4}" "${src:4:4}" "${dst:0:4}" "${dst:4:4}"; do sum=$((sum + 16#$w)); done
  while [ $((sum >> 16)) -ne 0 ]; do sum=$(( (sum & 0xffff) + (sum >> 16) )); done
  local dmac="${rxmac//:/}"
  [[ "$cfg" == *-bcast ]] && dmac=ffffffffffff   # the fan-out: every binding gets a copy
  printf '%s%s0800%s%04x%s%s%s' "$dmac" "${gmac//:/}" 45000032000040004011 $(( ~sum & 0xffff )) "$src" "$dst" \
    "00090009001e0000$(printf '%044d' 0)"
}

pump_name() { # the measured binding's private TAP (user datapath), as its ready line names it, if there is one
  [ -n "$vn_out" ] && sed -nE 's/.* ready: .*, pump (vnpump[0-9s]+),.*/\1/p' "$vn_out" | head -1
}

collect_virtnet() {
  [ -n "$vn_out" ] || return 0
  stop_virtnet
  local stopped process
  stopped="$(grep -m1 ' stopped: ' "$vn_out" || true)"
  process="$(grep -m1 ' process: ' "$vn_out" || true)"
  if [ -z "$process" ]; then
    put '.errors += [$e]' --arg e "virtnet printed no exit summary: $(head -c 300 "$vn_out.err" | tr '\n' ' ')"
    return 0
  fi
  putf "$lib/virtnet.jq" --arg stopped "$stopped" --arg process "$process"
  # virtnet's own ingress drop count names the frames its receive rings or pump had no room for (it includes the
  # pump's tx_dropped, already counted): those are explained. The UDP phase is where they happen.
  put 'if .pps_loss != null and .vn.ingress_dropped != null then
         .pps_loss.virtnet_dropped = ([.vn.ingress_dropped - (.pps_loss.pump_tx_dropped // 0), 0] | max)
         | .pps_loss.explained += .pps_loss.virtnet_dropped
         | .pps_loss.unexplained = ([.pps_loss.lost - .pps_loss.explained, 0] | max)
       else . end'
  vn_out=""
}

# ---------------------------------------------------------------------------------------------------------------
machine_json() {
  local cpu mem virt busy0 busy1 commit dirty
  cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  mem="$(awk '/^MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)"
  virt="$(systemd-detect-virt 2>/dev/null || echo unknown)"
  # Background noise: how busy the machine was during one quiet second before the run.
  busy0="$(host_busy_ticks)"; sleep 1; busy1="$(host_busy_ticks)"
  commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  dirty="$(git -C "$repo" status --porcelain -- src 2>/dev/null | head -1)"
  jq -nc --arg cpu "$cpu" --argjson cores "$(nproc)" --argjson mem "$mem" --arg virt "$virt" \
    --arg kernel "$(uname -r)" --arg dotnet "$(dotnet --version 2>/dev/null || echo none)" \
    --arg commit "$commit${dirty:+ (src modified)}" --argjson idle_busy "$(( (busy1 - busy0) * 100 / clk_tck ))" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg host "$(hostname)" \
    '{cpu: $cpu, cores: $cores, memory_gb: $mem, virtualization: $virt, kernel: $kernel, dotnet: $dotnet,
      virtnet_commit: $commit, background_cpu_percent_before: $idle_busy, loadavg_before: $load, hostname: $host}'
}

main() {
  mkdir -p "$(dirname "$out")"
  if [[ "$configs" == *kernel* || "$configs" == *user* ]]; then
    log "building virtnet (outside the namespaces)"
    "$repo/virtnet" --help >/dev/null || die "./virtnet does not build"
  fi
  if [[ " $configs " == *" user-samples "* || " $configs " == *" user-mirrorport "* ]]; then
    log "building the samples (outside the namespaces)"
    for sample in ProtocolCounter Nat RateLimiter MirrorPort; do
      dotnet build "$repo/samples/$sample/$sample.csproj" -c Release -nologo -v quiet >"$work/samples-build.log" 2>&1 \
        || die "samples/$sample does not build: $(grep -m3 error "$work/samples-build.log")"
    done
  fi
  log "building the frame generator (outside the namespaces)"
  dotnet build "$repo/bench/Virtnet.Flood/Virtnet.Flood.csproj" -c Release -o "$repo/.build/flood" -nologo -v quiet >"$work/flood-build.log" 2>&1 \
    || die "bench/Virtnet.Flood does not build: $(grep -m3 error "$work/flood-build.log")"
  log "run $run_id: $reps repetition(s) of [$configs], ${secs} s phases, $ping_count pings"
  local machine started samples="$work/samples.jsonl" n=0 order
  machine="$(machine_json)"
  started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  : >"$samples"
  read -r -a order <<<"$configs"
  for rep in $(seq 1 "$reps"); do
    # Rotate the order each repetition so no configuration always runs first (or right after a heavy one).
    local k rot=$(( (rep - 1) % ${#order[@]} ))
    for k in $(seq 0 $(( ${#order[@]} - 1 ))); do
      cfg="${order[$(( (k + rot) % ${#order[@]} ))]}"
      n=$((n + 1))
      sample="$work/sample-$n.json"
      jq -nc --arg c "$cfg" --argjson r "$rep" '{config: $c, rep: $r, errors: []}' >"$sample"
      log "rep $rep/$reps $cfg"
      vn_out=""; vn_pid=""; iperf_pid=""
      make_lab "$n"
      if setup_config "$cfg" 2>"$work/setup.err"; then
        measure_ping
        if start_iperf_server; then
          measure_tcp tcp_in ""
          measure_tcp tcp_out "-R"
        else
          put '.errors += ["iperf3 server did not start"]'
        fi
        stop_pid "$iperf_pid"; forget_pid "$iperf_pid"; iperf_pid=""
        measure_pps
      else
        put '.errors += [$e]' --arg e "setup $cfg: $(tail -3 "$work/setup.err" | tr '\n' ' ')"
      fi
      collect_virtnet
      teardown_lab
      jq -c . "$sample" >>"$samples"
      jq -r '"  " + ([
        (if .tcp_in_gbps then "tcp in \(.tcp_in_gbps | . * 100 | round / 100) Gb/s" else empty end),
        (if .tcp_out_gbps then "out \(.tcp_out_gbps | . * 100 | round / 100) Gb/s" else empty end),
        (if .pps_delivered then "udp64 \(.pps_delivered / 1000 | round) kpps" else empty end),
        (if .ping_avg_ms then "ping \(.ping_avg_ms) ms" else empty end)] | join(", "))
        + (if (.errors | length) > 0 then "  ERRORS: " + (.errors | join("; ")) else "" end)' "$sample" >&2
    done
  done

  local soak="null"
  if [ "$soak_frames" -gt 0 ]; then
    # Not $(run_soak): a command substitution is a subshell, and what it starts (virtnet, the generator, namespaces)
    # would be unknown to this shell's EXIT trap if the run were interrupted.
    run_soak >"$work/soak.json"
    soak="$(cat "$work/soak.json")"
  fi

  local ended
  ended="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  jq -s --argjson machine "$machine" --arg started "$started" --arg ended "$ended" \
    --argjson settings "$(jq -nc --argjson reps "$reps" --argjson secs "$secs" --argjson pings "$ping_count" --arg configs "$configs" \
      '{repetitions: $reps, phase_seconds: $secs, ping_count: $pings, ping_interval_ms: 5, frame_bytes: 64, configs: ($configs | split(" "))}')" \
    --argjson soak "$soak" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
    -f "$lib/summarize.jq" "$samples" >"$out"
  log "wrote $out"
  "$lib/table.sh" "$out"
}

# A long run of 64-byte frames through the user datapath: does steady state allocate? The generator runs until
# the real device has received FRAMES frames (va's rx_packets: every one of them crosses the datapath, by the
# receive rings for UDP), then the process's GC counts are read.
run_soak() {
  cfg=user; rep=soak
  sample="$work/sample-soak.json"
  jq -nc '{config: "user", rep: "soak", errors: []}' >"$sample"
  log "soak: $soak_frames frames through the user datapath"
  make_lab soak
  if setup_config user 2>"$work/setup.err"; then
    local t0 t1 pump moved=0 tpid
    pump="$(pump_name)"
    local base
    base="$(ip -n "$host" -s -j link show va | jq '.[0].stats64.rx.packets')"
    t0="$(date +%s.%N)"
    start_flood "$work/flood-soak.log"
    tpid=$!
    while [ "$moved" -lt "$soak_frames" ] && kill -0 "$tpid" 2>/dev/null; do
      sleep 0.5
      moved="$(( $(ip -n "$host" -s -j link show va | jq '.[0].stats64.rx.packets') - base ))"
    done
    stop_pid "$tpid" TERM
    forget_pid "$tpid"
    t1="$(date +%s.%N)"
    sleep 0.5
    put '.soak_frames = $n | .soak_seconds = $s | .soak_pump = $p' --argjson n "$moved" \
      --argjson s "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
      --argjson p "$(ip -n "$host" -s -j link show "$pump" | jq -c '.[0].stats64')"
  else
    put '.errors += [$e]' --arg e "setup user: $(tail -3 "$work/setup.err" | tr '\n' ' ')"
  fi
  collect_virtnet
  teardown_lab
  jq -c . "$sample"
}

main
