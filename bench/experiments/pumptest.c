// pumptest DEV CPU SECONDS : the pump road's costs (docs/performance.md). Makes a TAP "pt0", puts a tcx
// program on DEV that redirects every frame into it (what the user datapath's pump does for TCP), and reads the TAP
// on CPU with a read() per frame. Prints frames read, and the reader's CPU
// time per frame (user + system), so the producer's rate and the reader's cost come from one run.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <time.h>
#include <poll.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/if_tun.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>

#define BATCH 64
static char bufs[BATCH][2048];

int main(int argc, char **argv) {
  int cpu = atoi(argv[2]), secs = atoi(argv[3]);
  cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set); sched_setaffinity(0, sizeof set, &set);
  int tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK);
  struct ifreq ifr = {0}; strcpy(ifr.ifr_name, "pt0"); ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (ioctl(tap, TUNSETIFF, &ifr)) { perror("TUNSETIFF"); return 1; }
  int s = socket(AF_INET, SOCK_DGRAM, 0); ioctl(s, SIOCGIFFLAGS, &ifr); ifr.ifr_flags |= IFF_UP; ioctl(s, SIOCSIFFLAGS, &ifr);
  int tapidx = if_nametoindex("pt0");
  struct bpf_insn prog[] = {
    { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 1, .imm = tapidx },
    { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 2, .imm = 0 },
    { .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect },
    { .code = BPF_JMP | BPF_EXIT },
  };
  int pfd = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "pump", "GPL", prog, 4, NULL);
  if (pfd < 0) { perror("prog"); return 1; }
  if (bpf_link_create(pfd, if_nametoindex(argv[1]), (enum bpf_attach_type)46 /* BPF_TCX_INGRESS; older headers lack it */, NULL) < 0) { perror("tcx"); return 1; }

  struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
  struct rusage u0, u1; getrusage(RUSAGE_THREAD, &u0);
  unsigned long frames = 0, empty = 0;
  for (;;) {
    int got = 0;
    for (int i = 0; i < BATCH; i++) { if (read(tap, bufs[0], 2048) > 0) got++; else break; }
    frames += got;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec >= secs) break; // every pass: a reader that falls behind must still end
    if (got == 0) {
      empty++;
      struct pollfd p = { .fd = tap, .events = POLLIN }; poll(&p, 1, 100);
    }
  }
  getrusage(RUSAGE_THREAD, &u1);
  double cpu_us = (u1.ru_utime.tv_sec - u0.ru_utime.tv_sec + u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) * 1e6 + (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec + u1.ru_stime.tv_usec - u0.ru_stime.tv_usec);
  printf("read(): %lu frames, %.2f us of reader CPU a frame, %lu empty passes", frames, frames ? cpu_us / frames : 0.0, empty);
  return 0;
}
