// Runs a command with BPF run-time statistics on (BPF_ENABLE_STATS: on while the returned fd is open, so no
// sysctl is written and nothing is left on when the command ends): bpftool then shows run_time_ns and run_cnt.
// gcc -O2 -o bench/experiments/bpfstats bench/experiments/bpfstats.c
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: bpfstats COMMAND [ARG...]\n"); return 2; }
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.enable_stats.type = BPF_STATS_RUN_TIME;
    int fd = syscall(__NR_bpf, BPF_ENABLE_STATS, &attr, sizeof attr);
    if (fd < 0) { perror("BPF_ENABLE_STATS"); return 1; }
    fcntl(fd, F_SETFD, 0); // bpf() fds are close-on-exec; this one must live as long as the command
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 1;
}
