#!/usr/bin/env bash
# Prints the table of a results file written by bench/run.sh: every figure as median, spread and ratio to direct.
set -euo pipefail
file="${1:?usage: table.sh results.json}"
[ -r "$file" ] || { echo "bench: cannot read $file" >&2; exit 1; }

jq -r '
  "virtnet benchmark, \(.started) .. \(.ended)",
  "machine: \(.machine.cpu), \(.machine.cores) cores, \(.machine.memory_gb) GB, \(.machine.virtualization), Linux \(.machine.kernel), .NET SDK \(.machine.dotnet), virtnet \(.machine.virtnet_commit)",
  "noise: background CPU \(.machine.background_cpu_percent_before)% of one core in a quiet second before the run; load average \(.machine.loadavg_before) before, \(.machine.loadavg_after) after",
  "settings: \(.settings.repetitions) repetition(s), \(.settings.phase_seconds) s per TCP direction and UDP window, \(.settings.ping_count) pings at \(.settings.ping_interval_ms) ms, \(.settings.frame_bytes)-byte frames",
  "cells: median  +-half the min..max range as % of the median  (ratio of the median to direct)"
' "$file"
echo

# Main table: TSV rows "label<TAB>unit<TAB>digits<TAB>cell..." with cell "median|spread|ratio" (or "-").
jq -r '
  . as $r
  | ($r.settings.configs) as $cfgs
  | (["metric", "unit", "0"] + $cfgs | @tsv),
    ($r.metrics[] as $m
     | [$m.label, $m.unit, ($m.digits | tostring)]
       + [$cfgs[] as $c | $r.configs[$c].metrics[$m.key]
          | if . == null then "-"
            else (($m.scale // 1) as $k
              | "\(.median * $k)|\(if .n > 1 and .median != 0 then ((.max - .min) / 2 / (.median | fabs) * 100) else "" end)|\(.ratio // "")")
            end]
     | @tsv),
    (["ping added vs direct", "ms", "3"] + [$cfgs[] as $c | $r.configs[$c].ping_added_ms | if . == null then "-" else "\(.)||" end] | @tsv),
    (["ping p99 added vs direct", "ms", "3"] + [$cfgs[] as $c | $r.configs[$c].ping_p99_added_ms | if . == null then "-" else "\(.)||" end] | @tsv)
' "$file" | awk -F'\t' '
  function cell(s, d,    p, v, out) {
    if (s == "-" || s == "") return "-"
    split(s, p, "|")
    out = (label ~ /added/) ? sprintf("%+.*f", d, p[1]) : sprintf("%.*f", d, p[1])
    if (p[2] != "") out = out sprintf(" +-%.0f%%", p[2])
    if (p[3] != "") out = out sprintf(" (%.2fx)", p[3])
    return out
  }
  NR == 1 { n = NF; for (i = 1; i <= NF; i++) { c[NR, i] = (i == 3 ? "" : $i) } ; rows = 1; next }
  {
    rows++; label = $1
    c[rows, 1] = $1; c[rows, 2] = $2; c[rows, 3] = ""
    for (i = 4; i <= NF; i++) c[rows, i] = cell($i, $3)
  }
  END {
    for (i = 1; i <= n; i++) { w[i] = 0; for (r = 1; r <= rows; r++) if (length(c[r, i]) > w[i]) w[i] = length(c[r, i]) }
    for (r = 1; r <= rows; r++) {
      line = sprintf("%-*s  %-*s", w[1], c[r, 1], w[2], c[r, 2])
      for (i = 4; i <= n; i++) line = line sprintf("   %-*s", w[i], c[r, i])
      sub(/ +$/, "", line); print line
    }
  }'
echo

# Where the 64-byte frames went, summed over all repetitions.
echo "UDP 64 B frame accounting, all repetitions (frames; see docs/benchmarks.md for each counter)"
jq -r '
  . as $r
  | (["config", "sent", "delivered", "lost", "veth drop", "pump ring full", "virtnet ring drop", "virt rx drop", "unexplained", "backlog drop (machine)"] | @tsv),
    ($r.settings.configs[] as $c | $r.configs[$c].pps_loss as $l
     | if $l == null then [$c, "-"] else
       [$c, $l.sent, $l.delivered, $l.lost,
        ([$l.gen_tx_dropped, $l.real_rx_dropped] | map(. // 0) | max),
        ($l.pump_tx_dropped // "-"), ($l.virtnet_dropped // "-"), ($l.virt_rx_dropped // "-"), $l.unexplained, $l.softnet_dropped_machine_wide] end
     | map(tostring) | @tsv)
' "$file" | awk -F'\t' '
  { rows++; for (i = 1; i <= NF; i++) { c[rows, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > n) n = NF }
  END { for (r = 1; r <= rows; r++) { line = sprintf("%-*s", w[1], c[r, 1]); for (i = 2; i <= n; i++) line = line sprintf("  %*s", w[i], c[r, i]); print line } }'

jq -r '
  ([.configs | to_entries[] | select(.value.pps_vn_threads_pct != null)
    | "  \(.key): " + (.value.pps_vn_threads_pct | to_entries | map("\(.key) \(.value)%") | join(", "))] as $t
   | if ($t | length) > 0 then "\nvirtnet threads during the UDP window (median, % of one CPU):\n" + ($t | join("\n")) else empty end),
  (if .soak != null then
    "\nsoak: \(.soak.frames_through_pump) 64-byte frames arrived on the real device and crossed the user datapath in \(.soak.seconds) s; the process moved \((.soak.vn.ingress_frames // 0) + (.soak.vn.egress_frames // 0)) frames in all: gc \(.soak.vn.gc_gen0)/\(.soak.vn.gc_gen1)/\(.soak.vn.gc_gen2) (gen0/gen1/gen2), peak rss \(.soak.vn.peak_rss_mb) MB, cpu \(.soak.vn.cpu_s) s"
   else empty end),
  ([.configs | to_entries[] | select((.value.errors | length) > 0) | "\(.key): \(.value.errors | unique | join("; "))"] as $e
   | if ($e | length) > 0 then "\nerrors:\n  " + ($e | join("\n  ")) else empty end)
' "$file"
