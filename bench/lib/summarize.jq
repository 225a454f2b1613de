# All samples of a run (an array, one per repetition x configuration) -> the results document:
# per configuration and metric the median, min, max and every sample, and the ratio of the median to direct's.
def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def div($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;
def sum_or_null: if length == 0 or any(. == null) then null else add end;

# The metrics, in table order. ratio: whether a ratio to direct means anything; virtnet: only for a virtnet process.
def metrics: [
  {key: "tcp_in_gbps", label: "TCP wire->virtual", unit: "Gbit/s", digits: 2, ratio: true},
  {key: "tcp_out_gbps", label: "TCP virtual->wire", unit: "Gbit/s", digits: 2, ratio: true},
  {key: "pps_delivered", label: "UDP 64 B delivered", unit: "kpps", scale: 0.001, digits: 0, ratio: true},
  {key: "pps_delivered_p90", label: "UDP 64 B, p90 of 0.25 s", unit: "kpps", scale: 0.001, digits: 0, ratio: true},
  {key: "pps_offered", label: "UDP 64 B offered", unit: "kpps", scale: 0.001, digits: 0, ratio: true},
  {key: "pps_loss_pct", label: "UDP 64 B lost", unit: "%", digits: 1, ratio: false},
  {key: "ping_avg_ms", label: "ping RTT avg", unit: "ms", digits: 3, ratio: true},
  {key: "ping_p99_ms", label: "ping RTT p99", unit: "ms", digits: 3, ratio: true},
  {key: "host_cpu_s_per_gb", label: "machine CPU per GB (TCP)", unit: "s/GB", digits: 2, ratio: true},
  {key: "host_cpu_ns_per_frame", label: "machine CPU per frame (UDP)", unit: "ns", digits: 0, ratio: true},
  {key: "vn_cpu_s_per_gb", label: "virtnet CPU per GB (TCP)", unit: "s/GB", digits: 2, ratio: false, virtnet: true},
  {key: "vn_cpu_ns_per_frame", label: "virtnet CPU per frame (UDP)", unit: "ns", digits: 0, ratio: false, virtnet: true},
  {key: "vn_peak_rss_mb", label: "virtnet peak RSS", unit: "MB", digits: 1, ratio: false, virtnet: true},
  {key: "vn_gc_gen0", label: "virtnet GC gen0", unit: "count", digits: 0, ratio: false, virtnet: true},
  {key: "vn_gc_gen2", label: "virtnet GC gen2", unit: "count", digits: 0, ratio: false, virtnet: true},
  {key: "vn_frames_m", label: "virtnet frames moved", unit: "M", digits: 2, ratio: false, virtnet: true}
];


def derived:
  . + {
    host_cpu_s_per_gb: div((.tcp_in_host_cpu_s // null) as $a | (.tcp_out_host_cpu_s // null) as $b | if $a == null or $b == null then null else $a + $b end;
                           (.tcp_in_bytes // null) as $a | (.tcp_out_bytes // null) as $b | if $a == null or $b == null then null else ($a + $b) / 1e9 end),
    vn_cpu_s_per_gb: (if .vn == null then null else
                        div((.tcp_in_vn_cpu_s // null) as $a | (.tcp_out_vn_cpu_s // null) as $b | if $a == null or $b == null then null else $a + $b end;
                            (.tcp_in_bytes // null) as $a | (.tcp_out_bytes // null) as $b | if $a == null or $b == null then null else ($a + $b) / 1e9 end) end),
    host_cpu_ns_per_frame: div((.pps_host_cpu_s // null) | if . == null then null else . * 1e9 end; .pps_window_delivered // null),
    vn_cpu_ns_per_frame: (if .vn == null then null else div((.pps_vn_cpu_s // null) | if . == null then null else . * 1e9 end; .pps_window_delivered // null) end),
    pps_loss_pct: (if .pps_loss == null then null else div(.pps_loss.lost * 100; .pps_loss.sent) end),
    vn_peak_rss_mb: (.vn.peak_rss_mb // null),
    vn_gc_gen0: (.vn.gc_gen0 // null),
    vn_gc_gen1: (.vn.gc_gen1 // null),
    vn_gc_gen2: (.vn.gc_gen2 // null),
    vn_frames_m: (if .vn == null or .vn.ingress_frames == null then null else (.vn.ingress_frames + .vn.egress_frames) / 1e6 end)
  };

(map(select(.rep != "soak") | derived)) as $samples
| $settings.configs as $configs
| (reduce $configs[] as $c ({};
    .[$c] = (
      [$samples[] | select(.config == $c)] as $mine
      | {
          samples_ok: ([$mine[] | select((.errors | length) == 0)] | length),
          errors: [$mine[] | .errors[] ],
          metrics: (reduce metrics[] as $m ({};
            .[$m.key] = ([$mine[] | .[$m.key] // empty | select(type == "number")] as $v
              | if ($v | length) == 0 then null
                else {median: ($v | median), min: ($v | min), max: ($v | max), n: ($v | length), samples: $v} end))),
          # CPU of the virtnet process's threads during the small-packet window, % of one CPU, median per thread.
          pps_vn_threads_pct: ([$mine[] | .pps_vn_threads_pct // empty] as $t
            | if ($t | length) == 0 then null
              else reduce ([$t[] | keys[]] | unique[]) as $k ({}; .[$k] = ([$t[] | .[$k] // 0] | median)) end),
          # The small-packet loss accounting, summed over repetitions.
          pps_loss: ([$mine[] | .pps_loss // empty] as $l
            | if ($l | length) == 0 then null
              else reduce ($l[0] | keys_unsorted[]) as $k ({}; .[$k] = ([$l[] | .[$k]] | sum_or_null)) end)
        })
  )) as $by
| ($by.direct.metrics) as $ref
| {
    schema: "virtnet-bench/1",
    started: $started, ended: $ended,
    machine: ($machine + {loadavg_after: $load_after}),
    settings: $settings,
    metrics: metrics,
    configs: ($by | with_entries(
      .value.metrics |= with_entries(
        .key as $k
        | if .value == null then . else
            .value.ratio = (if (metrics[] | select(.key == $k) | .ratio) then div(.value.median; $ref[$k].median // null) else null end)
          end)
      | .value.ping_added_ms = (if .value.metrics.ping_avg_ms == null or $ref.ping_avg_ms == null then null
                                else .value.metrics.ping_avg_ms.median - $ref.ping_avg_ms.median end)
      | .value.ping_p99_added_ms = (if .value.metrics.ping_p99_ms == null or $ref.ping_p99_ms == null then null
                                else .value.metrics.ping_p99_ms.median - $ref.ping_p99_ms.median end))),
    soak: (if $soak == null then null else ($soak | {frames_through_pump: .soak_frames, seconds: .soak_seconds, pump: .soak_pump, vn, errors}) end),
    samples: .
  }
