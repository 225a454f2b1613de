# One iperf3 run: $r[0] the client's JSON, $s0/$s1 the counter snapshots around it, $n "tcp_in" or "tcp_out".
# Throughput is what the receiver got (after the omitted first second). Bytes moved are counted on the real
# device (va), both directions (data and ACKs), so that CPU per GB is measured against what crossed the binding.
def link($s; $dev): $s.links[$dev] // {rx: {bytes: 0, packets: 0}, tx: {bytes: 0, packets: 0}};
($r[0]) as $j
| if ($j.error // null) != null then .errors += ["iperf3 \($n): \($j.error)"]
  else
    .[$n + "_gbps"] = ($j.end.sum_received.bits_per_second / 1e9)
    | .[$n + "_retransmits"] = ($j.end.sum_sent.retransmits // null)
    | .[$n + "_bytes"] = ((link($s1; "va").rx.bytes - link($s0; "va").rx.bytes) + (link($s1; "va").tx.bytes - link($s0; "va").tx.bytes))
    | .[$n + "_vn_cpu_s"] = ($s1.vn_cpu - $s0.vn_cpu)
    | .[$n + "_host_cpu_s"] = ($s1.host_busy - $s0.host_busy)
    | .[$n + "_seconds"] = ($s1.t - $s0.t)
  end
