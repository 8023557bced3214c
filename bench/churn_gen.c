/* Connection-churn generator for bench/churn.ts: LANES connections at a time
 * against 127.0.0.1:PORT, each lane repeating connect, send SIZE bytes, read
 * SIZE bytes back, close, for SECS seconds. Prints one JSON line: completed
 * connections, seconds, errors and a uniform sample of per-connection times
 * in ms (from the connect call to the last reply byte). Non-blocking
 * connects on one epoll loop, so the generator's own cost stays small.
 * Source addresses rotate over 127.0.0.2-251 (IP_BIND_ADDRESS_NO_PORT, the
 * port chosen at connect): the client side of every closed connection waits
 * in TIME_WAIT, and one source address alone would run out of ports within
 * seconds at these rates, after which connects stall and the figures measure
 * the port allocator rather than the server.
 * Build: cc -O2 -o churn_gen churn_gen.c; run: ./churn_gen PORT LANES SECS [SIZE] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

struct lane { int fd, got, sent; double start; };
static struct sockaddr_in target;
static int ep, size;
static char req[65536], buf[65536];

/* Starts a new connection on lane i; returns 0, or -1 if socket() failed. */
static int start(struct lane *l, int i) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  static unsigned rotation;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(0x7f000002 + (rotation++ % 250));
  if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0) { close(fd); return -1; }
  l->fd = fd; l->got = 0; l->sent = 0; l->start = now_ms();
  if (connect(fd, (struct sockaddr *)&target, sizeof target) != 0 && errno != EINPROGRESS) {
    close(fd); l->fd = -1; return -1;
  }
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = i};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  int port = atoi(argv[1]), lanes = atoi(argv[2]);
  double secs = atof(argv[3]);
  size = argc > 4 ? atoi(argv[4]) : 64;
  memset(req, 'a', sizeof req);
  target.sin_family = AF_INET;
  target.sin_port = htons(port);
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct lane *ls = calloc(lanes, sizeof *ls);
  static double samples[MAX_SAMPLES];
  long sampled = 0, counted = 0;
  int errors = 0;
  double t0 = now_ms(), warm = t0 + 200, end = warm + secs * 1e3, t;
  for (int i = 0; i < lanes; i++) if (start(&ls[i], i)) errors++;
  struct epoll_event evs[512];
  while ((t = now_ms()) < end) {
    int n = epoll_wait(ep, evs, 512, 50);
    for (int k = 0; k < n; k++) {
      int i = evs[k].data.u32;
      struct lane *l = &ls[i];
      if (l->fd < 0) continue;
      int fail = (evs[k].events & (EPOLLERR | EPOLLHUP)) && !(evs[k].events & EPOLLIN);
      if (!fail && !l->sent && (evs[k].events & EPOLLOUT)) {
        if (write(l->fd, req, size) != size) fail = 1;
        else {
          l->sent = 1;
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
          epoll_ctl(ep, EPOLL_CTL_MOD, l->fd, &ev);
        }
      }
      if (!fail && (evs[k].events & EPOLLIN)) {
        ssize_t r = read(l->fd, buf, size - l->got);
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) fail = 1;
        else l->got += r;
      }
      if (!fail && l->got < size) continue;
      close(l->fd);
      l->fd = -1;
      if (fail) errors++;
      else {
        double done = now_ms();
        if (done >= warm) {
          counted++;
          double dt = done - l->start;
          if (sampled < MAX_SAMPLES) samples[sampled++] = dt;
          else { long j = random() % counted; if (j < MAX_SAMPLES) samples[j] = dt; }
        }
      }
      if (start(l, i)) errors++;
    }
  }
  printf("{\"connections\":%ld,\"seconds\":%.6f,\"errors\":%d,\"sample\":[", counted, (t - warm) / 1e3, errors);
  for (long s = 0; s < sampled; s++) printf(s ? ",%.4f" : "%.4f", samples[s]);
  printf("]}\n");
  return 0;
}
