/* UDP load generator in C for bench/udp_echo.ts: keeps INFLIGHT datagrams of
 * SIZE bytes outstanding against 127.0.0.1:PORT for SECS seconds, sending one
 * more for each reply; when nothing comes back for 50 ms (a lost datagram
 * shrinks the window) it sends INFLIGHT more. Prints one JSON line like
 * bench/_udp_peer.ts: {"datagrams":N,"ms":T}. In C, so that the generator is
 * not what limits the servers.
 * Build: cc -O2 -o udp_gen udp_gen.c; run: ./udp_gen PORT SECS SIZE INFLIGHT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 5) return 2;
  int port = atoi(argv[1]), size = atoi(argv[3]), inflight = atoi(argv[4]);
  double secs = atof(argv[2]);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Connected: only the server's replies are received. */
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return 1;
  char out[65536], in[65536];
  memset(out, 'A', sizeof out);
  long received = 0;
  for (int i = 0; i < inflight; i++) send(fd, out, size, 0);
  double t0 = now_ms(), end = t0 + secs * 1e3, t = t0;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (t < end) {
    if (poll(&p, 1, 50) == 0) {
      for (int i = 0; i < inflight; i++) send(fd, out, size, 0);
    } else if (recv(fd, in, sizeof in, 0) > 0) {
      received++;
      send(fd, out, size, 0);
    }
    if ((received & 255) == 0 || p.revents == 0) t = now_ms();
  }
  printf("{\"datagrams\":%ld,\"ms\":%.3f}\n", received, now_ms() - t0);
  return 0;
}
