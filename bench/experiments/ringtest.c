// ringtest DEV VERSION(2|3|0) CPU SECONDS : an RX ring consumer that only hands slots back (no other work).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include <time.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
int main(int argc, char **argv) {
  int ver = atoi(argv[2]), cpu = atoi(argv[3]), secs = atoi(argv[4]);
  cpu_set_t set; CPU_ZERO(&set); CPU_SET(cpu, &set); sched_setaffinity(0, sizeof set, &set);
  if (ver == 0) { sleep(secs); return 0; }
  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  int v = ver == 2 ? TPACKET_V2 : TPACKET_V3; setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v);
  int one = 1; setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one);
  size_t len; char *ring; unsigned nblocks = 0, block = 0;
  if (ver == 2) {
    struct tpacket_req r = { .tp_block_size = 4096, .tp_block_nr = 2048, .tp_frame_size = 2048, .tp_frame_nr = 4096 };
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &r, sizeof r)) { perror("ring"); return 1; }
    len = 4096UL * 2048;
  } else {
    // BLOCK (environment): the V3 block size, 65536 unless set; always 8 MB of blocks.
    unsigned bs = getenv("BLOCK") ? (unsigned)atoi(getenv("BLOCK")) : 65536;
    if (bs < 4096 || bs > (8u << 20) || (bs & (bs - 1))) { fprintf(stderr, "BLOCK: a power of two from 4096 to 8 MiB\n"); return 1; }
    nblocks = (8u << 20) / bs; block = bs;
    struct tpacket_req3 r = { .tp_block_size = bs, .tp_block_nr = nblocks, .tp_frame_size = 2048, .tp_frame_nr = bs / 2048 * nblocks, .tp_retire_blk_tov = 1 };
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &r, sizeof r)) { perror("ring3"); return 1; }
    len = (size_t)bs * nblocks;
  }
  ring = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = if_nametoindex(argv[1]) };
  if (bind(fd, (void *)&ll, sizeof ll)) { perror("bind"); return 1; }
  struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned long frames = 0; unsigned idx = 0;
  for (;;) {
    if (ver == 2) {
      struct tpacket2_hdr *h = (void *)(ring + (size_t)idx * 2048);
      if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) {
        __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE); idx = (idx + 1) % 4096; frames++; continue;
      }
    } else {
      struct tpacket_block_desc *b = (void *)(ring + (size_t)idx * block);
      if (__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) {
        frames += b->hdr.bh1.num_pkts;
        __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE); idx = (idx + 1) % nblocks; continue;
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec >= secs) break;
  }
  struct tpacket_stats_v3 st; socklen_t sl = sizeof st; getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
  printf("v%d consumed %lu frames, drops %u\n", ver, frames, st.tp_drops);
  return 0;
}
