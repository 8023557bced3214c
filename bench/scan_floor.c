/*
 * The floor of a connect scan of 127.0.0.1 ports 1-65535: blocking
 * connects, the socket reused after each refusal, on THREADS threads that
 * take ports in turn (port p goes to thread p % THREADS). Prints the ports
 * that accepted a connection and the wall time.
 *
 * Usage: scan_floor THREADS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int threads;

static void *scan(void *arg) {
  long first = (long)arg, open = 0;
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = -1;
  for (int p = 1 + (int)first; p <= 65535; p += threads) {
    if (fd < 0) fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sa.sin_port = htons((unsigned short)p);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) open++;
    else if (errno == ECONNREFUSED) continue; /* unconnected again: reuse */
    close(fd);
    fd = -1;
  }
  if (fd >= 0) close(fd);
  return (void *)open;
}

int main(int argc, char **argv) {
  threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 64) return 2;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t th[64];
  for (long i = 0; i < threads; i++) pthread_create(&th[i], NULL, scan, (void *)i);
  long open = 0;
  for (int i = 0; i < threads; i++) {
    void *r;
    pthread_join(th[i], &r);
    open += (long)r;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%ld open, %.3f s\n", open,
         (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
