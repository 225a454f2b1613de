# The two lines virtnet attach prints on exit:
#   virtnet0 stopped: ingress N frames B bytes D dropped, egress N frames B bytes D dropped
#   virtnet0 process: cpu X s, peak rss Y MB, gc a/b/c (gen0/gen1/gen2)
def num: if . == null or . == "?" then null else tonumber end;
($stopped | capture("ingress (?<if>[0-9]+) frames (?<ib>[0-9]+) bytes (?<id>[0-9]+) dropped, egress (?<ef>[0-9]+) frames (?<eb>[0-9]+) bytes (?<ed>[0-9]+) dropped")? // {}) as $s
| ($process | capture("cpu (?<cpu>[0-9.]+) s, peak rss (?<rss>[0-9.?]+) MB, gc (?<g0>[0-9]+)/(?<g1>[0-9]+)/(?<g2>[0-9]+)")? // {}) as $p
| .vn = {
    ingress_frames: ($s.if | num), ingress_bytes: ($s.ib | num), ingress_dropped: ($s.id | num),
    egress_frames: ($s.ef | num), egress_bytes: ($s.eb | num), egress_dropped: ($s.ed | num),
    cpu_s: ($p.cpu | num), peak_rss_mb: ($p.rss | num),
    gc_gen0: ($p.g0 | num), gc_gen1: ($p.g1 | num), gc_gen2: ($p.g2 | num),
    stopped_line: $stopped, process_line: $process
  }
| if ($p | length) == 0 then .errors += ["could not parse: \($process)"] else . end
