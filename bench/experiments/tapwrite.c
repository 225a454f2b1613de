// tapwrite MODE SECONDS MAC : writes one 64-byte frame (with a zero virtio_net_hdr) into a new TAP "vtw0" over and
// over, from CPU 1, with write() per frame or io_uring (64 writes per io_uring_enter); prints frames per second.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <liburing.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  const char *mode = argv[1]; int secs = atoi(argv[2]);
  cpu_set_t set; CPU_ZERO(&set); CPU_SET(1, &set); sched_setaffinity(0, sizeof set, &set);
  int fd = open("/dev/net/tun", O_RDWR);
  struct ifreq ifr = {0}; strcpy(ifr.ifr_name, "vtw0"); ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(fd, TUNSETIFF, &ifr)) { perror("TUNSETIFF"); return 1; }
  unsigned char buf[74] = {0}; unsigned char *f = buf + 10;
  sscanf(argv[3], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", f, f + 1, f + 2, f + 3, f + 4, f + 5);
  unsigned char src[6] = {2, 0, 0, 0, 0, 2}; memcpy(f + 6, src, 6);
  unsigned char ip[] = {0x08, 0x00, 0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0xc1, 0x28, 10, 200, 50, 2, 10, 200, 50, 1, 0, 9, 0, 9, 0, 30, 0, 0};
  memcpy(f + 12, ip, sizeof ip);
  printf("ready\n"); fflush(stdout); sleep(2); // the script brings the device up and adds the address meanwhile
  unsigned long n = 0; double t0 = now(), t;
  if (!strcmp(mode, "write")) {
    do { for (int i = 0; i < 1024; i++) if (write(fd, buf, sizeof buf) == sizeof buf) n++; t = now(); } while (t - t0 < secs);
  } else {
    struct io_uring ring; io_uring_queue_init(64, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    io_uring_register_files(&ring, &fd, 1);
    do {
      for (int i = 0; i < 64; i++) { struct io_uring_sqe *s = io_uring_get_sqe(&ring); io_uring_prep_write(s, 0, buf, sizeof buf, 0); s->flags |= IOSQE_FIXED_FILE; }
      io_uring_submit_and_wait(&ring, 64);
      struct io_uring_cqe *c; unsigned head, k = 0;
      io_uring_for_each_cqe(&ring, head, c) { if (c->res == sizeof buf) n++; k++; }
      io_uring_cq_advance(&ring, k);
      t = now();
    } while (t - t0 < secs);
  }
  printf("%s %.0f kfps\n", mode, n / (t - t0) / 1000);
  return 0;
}
