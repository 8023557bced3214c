/* Echo load generator in C for bench/echo_load.ts: CONNS connections each
 * doing SIZE-byte request/response for SECS seconds on 127.0.0.1:PORT.
 * Prints one JSON line like bench/load_gen.ts: messages, seconds, errors and
 * a uniform sample of latencies in ms. Using C keeps the generator's own CPU
 * cost small on a 2-core machine, so the servers get the rest. Connections
 * are opened one at a time, each completing one round trip before the next,
 * and the window opens 200 ms after all are up: it measures steady state,
 * not how a server weathers a connection storm. At the window's start it
 * writes "window" on stderr (bench/echo_load.ts reads the server's CPU time
 * then), and it reports its own CPU seconds over the window ("cpu"). It
 * raises its descriptor limit to the hard limit, and no setup read or write
 * waits more than 5 s, so a server that dies cannot hang it.
 * With a fifth argument "wait" it writes "ready" on stderr once its
 * connections are up and starts only when a line arrives on stdin, so that
 * several generators measure the same window with all their connections.
 * Build: cc -O2 -o load_gen load_gen.c; run: ./load_gen PORT CONNS SECS [SIZE [wait]] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 200000
static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int port = atoi(argv[1]), conns = atoi(argv[2]), size = argc > 4 ? atoi(argv[4]) : 64;
  double secs = atof(argv[3]);
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  struct timeval limit = {.tv_sec = 5};
  int ep = epoll_create1(0), one = 1, errors = 0;
  double *sent_at = calloc(conns, sizeof(double));
  int *got = calloc(conns, sizeof(int)), *fds = calloc(conns, sizeof(int));
  static double samples[MAX_SAMPLES];
  long sampled = 0, messages = 0, counted = 0;
  char req[65536], buf[65536];
  memset(req, 'a', sizeof req);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < conns; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int tries = 0;
    while (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      close(fd);
      if (++tries > 50) { fprintf(stderr, "load_gen: connection %d: %s\n", i, strerror(errno)); return 1; }
      usleep(20000);
      fd = socket(AF_INET, SOCK_STREAM, 0);
    }
    fds[i] = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    /* One blocking round trip: the server has accepted this connection. */
    int r = write(fd, req, size) == size ? 0 : -1;
    while (r >= 0 && r < size) {
      ssize_t n = read(fd, buf, size - r);
      r = n > 0 ? r + n : -1;
    }
    if (r < 0) { fprintf(stderr, "load_gen: connection %d: no echo\n", i); return 1; }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  if (argc > 5 && strcmp(argv[5], "wait") == 0) {
    fputs("ready\n", stderr);
    if (read(0, buf, 1) != 1) return 1;
  }
  double start = now_ms(), warm = start + 200, end = warm + secs * 1e3;
  for (int i = 0; i < conns; i++)
    if (fds[i] >= 0) { sent_at[i] = now_ms(); if (write(fds[i], req, size) != size) errors++; }
  struct epoll_event evs[512];
  double t, cpu0 = 0;
  int in_window = 0;
  while ((t = now_ms()) < end) {
    if (!in_window && t >= warm) {
      in_window = 1;
      cpu0 = cpu_s();
      fputs("window\n", stderr);
    }
    int n = epoll_wait(ep, evs, 512, 50);
    for (int k = 0; k < n; k++) {
      int i = evs[k].data.u32;
      ssize_t r = read(fds[i], buf, size - got[i]);
      if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; errors++; epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], 0); continue; }
      got[i] += r;
      if (got[i] < size) continue;
      got[i] = 0;
      double done = now_ms();
      if (done >= warm) {
        counted++;
        double dt = done - sent_at[i];
        if (sampled < MAX_SAMPLES) samples[sampled++] = dt;
        else { long j = random() % counted; if (j < MAX_SAMPLES) samples[j] = dt; }
      }
      messages++;
      sent_at[i] = done;
      if (write(fds[i], req, size) != size) errors++;
    }
  }
  printf("{\"messages\":%ld,\"seconds\":%.6f,\"cpu\":%.6f,\"errors\":%d,\"sample\":[", counted,
         (t - warm) / 1e3, cpu_s() - cpu0, errors);
  for (long s = 0; s < sampled; s++) printf(s ? ",%.4f" : "%.4f", samples[s]);
  printf("]}\n");
  return 0;
}
