# The small-packet phase. $b before the generator starts, $w0..$w1 the measured window (steady state, after a 1 s
# warm-up), $a after the generator stopped and the queues drained; $sent its own count; $rx the device that
# holds the address (va, mv0 or virtnet0); $pump the user datapath's private TAP ("" otherwise); $cfg the
# configuration.
#
# Rates come from the window. The loss breakdown uses the whole run ($b..$a), so every frame the generator sent is
# either delivered, in a named drop counter, or "unexplained" — nothing is lost to in-flight frames at the edges.
def link($s; $dev): $s.links[$dev] // null;
def delta($x; $y; f): if ($x == null or $y == null) then null else ($y | f) - ($x | f) end;
def d(f; $dev): delta(link($b; $dev); link($a; $dev); f);
($w1.t - $w0.t) as $dt
| ($w1.nft - $w0.nft) as $win_delivered
| .pps_delivered = ($win_delivered / $dt)
| .pps_offered = (delta(link($w0; "vb"); link($w1; "vb"); .tx.packets) / $dt)
| .pps_vn_cpu_s = ($w1.vn_cpu - $w0.vn_cpu)
| .pps_host_cpu_s = ($w1.host_busy - $w0.host_busy)
# Per thread of the virtnet process, in % of one CPU over the window (the user datapath's workers are named
# "virtnet Ingress" and "virtnet Egress"; everything else is summed as "other").
| .pps_vn_threads_pct = (if ($w0.vn_threads | length) == 0 then null else
    [$w1.vn_threads | to_entries[] | {name: (if (.key | startswith("virtnet ")) then .key else "other" end),
                                      pct: ((.value - ($w0.vn_threads[.key] // 0)) / $dt * 100)}]
    | group_by(.name) | map({key: .[0].name, value: (map(.pct) | add | . * 10 | round / 10)}) | from_entries end)
| .pps_window_delivered = $win_delivered
| .pps_window_seconds = $dt
| ($a.nft - $b.nft) as $delivered
| ($sent // ((d(.tx.packets; "vb") // 0) + (d(.tx.dropped; "vb") // 0))) as $sent_n
| {
    sent_by_generator: $sent,
    gen_tx_packets: d(.tx.packets; "vb"),
    gen_tx_dropped: d(.tx.dropped; "vb"),
    real_rx_packets: d(.rx.packets; "va"),
    real_rx_dropped: d(.rx.dropped; "va"),
    pump_tx_packets: (if $pump == "" then null else d(.tx.packets; $pump) end),
    pump_tx_dropped: (if $pump == "" then null else d(.tx.dropped; $pump) end),
    # A TAP counts rx_packets only for frames its fd writes (tun_get_user); the kernel datapath's
    # bpf_redirect(BPF_F_INGRESS) into it is not counted there, so that stage has no counter.
    virt_rx_packets: (if $rx == "va" or $cfg == "kernel" then null else d(.rx.packets; $rx) end),
    virt_rx_dropped: (if $rx == "va" then null else d(.rx.dropped; $rx) end),
    softnet_dropped_machine_wide: ($a.softnet_drops - $b.softnet_drops),
    delivered: $delivered
  } as $c
| .pps_loss = ($c + {
    sent: $sent_n,
    lost: ($sent_n - $delivered),
    # Where frames went missing, stage by stage (null where the stage has no counter).
    lost_before_real: ($sent_n - ($c.real_rx_packets // 0)),
    lost_real_to_virtual: (if $c.virt_rx_packets == null then null else ($c.real_rx_packets - $c.virt_rx_packets) end),
    lost_virtual_to_ip: (if $c.virt_rx_packets == null then ($c.real_rx_packets - $delivered) else ($c.virt_rx_packets - $delivered) end),
    # Drop counters that name a cause. veth counts one enqueue failure both as vb tx_dropped and va rx_dropped,
    # so the larger of the two is taken, not the sum.
    explained: (([$c.gen_tx_dropped, $c.real_rx_dropped] | map(. // 0) | max)
                + ($c.pump_tx_dropped // 0) + ($c.virt_rx_dropped // 0))
  })
| .pps_loss.unexplained = (.pps_loss.lost - .pps_loss.explained)
