// xdptest DEV MODE CPU SECONDS : the producer-side cost of AF_XDP (copy mode) against the stack (docs/performance.md).
// MODE 0: nothing attached (frames go to the stack). MODE 1: an XDP program on DEV redirects every frame into one
// AF_XDP socket on queue 0; a consumer on CPU only hands frames back to the fill ring (no other work).
// MODE 2: the same program, but XDP_DROP (the cost of veth's XDP mode alone). Prints frames consumed per second.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include <time.h>
#include <poll.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/if_xdp.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

#define NFRAMES 4096
#define FRAME 2048
#define RING 2048

struct ring { __u32 *prod, *cons; void *desc; __u32 mask; };

static void map_ring(int fd, struct xdp_ring_offset *o, size_t n, size_t sz, off_t pg, struct ring *r) {
  char *m = mmap(0, o->desc + n * sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pg);
  if (m == MAP_FAILED) { perror("mmap ring"); exit(1); }
  r->prod = (void *)(m + o->producer); r->cons = (void *)(m + o->consumer); r->desc = m + o->desc; r->mask = n - 1;
}

int main(int argc, char **argv) {
  int mode = atoi(argv[2]), cpu = atoi(argv[3]), secs = atoi(argv[4]);
  int ifindex = if_nametoindex(argv[1]);
  cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set); sched_setaffinity(0, sizeof set, &set);
  if (mode == 0) { sleep(secs); return 0; }
  int map = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "xsks", 4, 4, 1, NULL);
  if (map < 0) { perror("map"); return 1; }
  struct bpf_insn redirect[] = {
    { .code = BPF_LDX | BPF_W | BPF_MEM, .dst_reg = 2, .src_reg = 1, .off = 16 },      // r2 = ctx->rx_queue_index
    { .code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = 1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = map }, {0},
    { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 3, .imm = XDP_PASS },             // fallback
    { .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map },
    { .code = BPF_JMP | BPF_EXIT },
  };
  struct bpf_insn drop[] = {
    { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_DROP },
    { .code = BPF_JMP | BPF_EXIT },
  };
  char log[4096] = "";
  LIBBPF_OPTS(bpf_prog_load_opts, po, .log_buf = log, .log_size = sizeof log, .log_level = 1);
  int prog = mode == 1 ? bpf_prog_load(BPF_PROG_TYPE_XDP, "xsk_redirect", "GPL", redirect, 6, &po)
                       : bpf_prog_load(BPF_PROG_TYPE_XDP, "xdp_drop", "GPL", drop, 2, &po);
  if (prog < 0) { perror("prog"); fprintf(stderr, "%s\n", log); return 1; }

  int fd = -1; struct ring rx = {0}, fill = {0}; char *umem = NULL;
  if (mode == 1) {
    fd = socket(AF_XDP, SOCK_RAW, 0);
    if (fd < 0) { perror("socket"); return 1; }
    umem = mmap(0, (size_t)NFRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    struct xdp_umem_reg ur = { .addr = (__u64)(unsigned long)umem, .len = (__u64)NFRAMES * FRAME, .chunk_size = FRAME };
    if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &ur, sizeof ur)) { perror("umem"); return 1; }
    int n = RING;
    setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof n);
    setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof n);
    setsockopt(fd, SOL_XDP, XDP_RX_RING, &n, sizeof n);
    struct xdp_mmap_offsets off; socklen_t ol = sizeof off;
    if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol)) { perror("offsets"); return 1; }
    map_ring(fd, &off.rx, RING, sizeof(struct xdp_desc), XDP_PGOFF_RX_RING, &rx);
    map_ring(fd, &off.fr, RING, sizeof(__u64), XDP_UMEM_PGOFF_FILL_RING, &fill);
    for (__u32 i = 0; i < RING; i++) ((__u64 *)fill.desc)[i] = (__u64)i * FRAME;
    __atomic_store_n(fill.prod, RING, __ATOMIC_RELEASE);
    struct sockaddr_xdp sx = { .sxdp_family = AF_XDP, .sxdp_ifindex = ifindex, .sxdp_queue_id = 0, .sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP };
    if (bind(fd, (void *)&sx, sizeof sx)) { perror("bind"); return 1; }
    int key = 0;
    if (bpf_map_update_elem(map, &key, &fd, 0)) { perror("map update"); return 1; }
  }
  if (bpf_link_create(prog, ifindex, BPF_XDP, NULL) < 0) { perror("link"); return 1; }

  struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned long frames = 0;
  if (mode == 2) { sleep(secs); printf("attached %d s", secs); return 0; }
  for (;;) {
    __u32 prod = __atomic_load_n(rx.prod, __ATOMIC_ACQUIRE), cons = *rx.cons;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec >= secs) break; // every pass: a consumer that falls behind must still end
    if (prod == cons) {
      if (!getenv("SPIN")) { struct pollfd p = { .fd = fd, .events = POLLIN }; poll(&p, 1, 100); }
      continue;
    }
    __u32 fp = *fill.prod;
    for (__u32 i = cons; i != prod; i++, fp++)
      ((__u64 *)fill.desc)[fp & fill.mask] = ((struct xdp_desc *)rx.desc)[i & rx.mask].addr & ~(__u64)(FRAME - 1);
    __atomic_store_n(fill.prod, fp, __ATOMIC_RELEASE);
    __atomic_store_n(rx.cons, prod, __ATOMIC_RELEASE);
    frames += prod - cons;
  }
  struct xdp_statistics st; socklen_t sl = sizeof st;
  getsockopt(fd, SOL_XDP, XDP_STATISTICS, &st, &sl);
  printf("consumed %lu in %d s (%.0f kpps), rx_dropped %llu, rx_ring_full %llu, fill_empty %llu", frames, secs,
         frames / (double)secs / 1000, st.rx_dropped, st.rx_ring_full, st.rx_fill_ring_empty_descs);
  return 0;
}
