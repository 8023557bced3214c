/* The C reference for bench/udp_echo.ts: one blocking recvfrom/sendto loop on
 * 127.0.0.1:PORT, every datagram back to its sender.
 * Build: cc -O2 -o udp_echo_server udp_echo_server.c; run: ./udp_echo_server PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); return 1; }
  fprintf(stderr, "listening on 127.0.0.1:%s\n", argv[1]);
  char buf[65536];
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n >= 0) sendto(fd, buf, n, 0, (struct sockaddr *)&from, len);
  }
}
