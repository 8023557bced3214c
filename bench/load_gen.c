/* Echo load generator in C for bench/echo_load.ts: CONNS connections each
 * doing SIZE-byte request/response for SECS seconds on 127.0.0.1:PORT.
 * Prints one JSON line like bench/load_gen.ts: messages, seconds, errors and
 * a uniform sample of latencies in ms. Using C keeps the generator's own CPU
 * cost small on a 2-core machine, so the servers get the rest. Connections
 * are opened one at a time, each completing one round trip before the next,
 * and the window opens 200 ms after all are up: it measures steady state,
 * not how a server weathers a connection storm.
 * Build: cc -O2 -o load_gen load_gen.c; run: ./load_gen PORT CONNS SECS [SIZE] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 200000
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int port = atoi(argv[1]), conns = atoi(argv[2]), size = argc > 4 ? atoi(argv[4]) : 64;
  double secs = atof(argv[3]);
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
      if (++tries > 50) { errors++; fd = -1; break; }
      usleep(20000);
      fd = socket(AF_INET, SOCK_STREAM, 0);
    }
    fds[i] = fd;
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* One blocking round trip: the server has accepted this connection. */
    if (write(fd, req, size) != size) { errors++; close(fd); fds[i] = -1; continue; }
    for (int r = 0; r < size;) {
      ssize_t n = read(fd, buf, size - r);
      if (n <= 0) { errors++; break; }
      r += n;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  double start = now_ms(), warm = start + 200, end = warm + secs * 1e3;
  for (int i = 0; i < conns; i++)
    if (fds[i] >= 0) { sent_at[i] = now_ms(); if (write(fds[i], req, size) != size) errors++; }
  struct epoll_event evs[512];
  double t;
  while ((t = now_ms()) < end) {
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
  printf("{\"messages\":%ld,\"seconds\":%.6f,\"errors\":%d,\"sample\":[", counted, (t - warm) / 1e3, errors);
  for (long s = 0; s < sampled; s++) printf(s ? ",%.4f" : "%.4f", samples[s]);
  printf("]}\n");
  return 0;
}
