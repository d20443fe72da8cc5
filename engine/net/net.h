/*
 * net: sockets — address parsing and listening sockets.
 *
 * Every reactor owns its own listening socket on the same address
 * (SO_REUSEPORT), so the kernel spreads new connections across cores and no
 * accept queue is shared.
 *
 * Ownership: returned fds belong to the caller. Threads: any.
 */
#ifndef SL_NET_H
#define SL_NET_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct sl_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* Parse "host:port" or "[v6]:port"; host must be a numeric address or
 * "localhost". 0 or -EINVAL. */
int sl_net_parse_addr(const char *hostport, struct sl_addr *out);

/* A non-blocking listening socket with SO_REUSEPORT on `addr`. When the port
 * is 0 the kernel picks one; pass the bound address (sl_net_local_port) to the
 * next call so every reactor listens on the same port. fd or -errno. */
int sl_net_listen(const struct sl_addr *addr, int backlog);

/* The port an fd is bound to, or -errno. */
int sl_net_local_port(int fd);

void sl_net_set_port(struct sl_addr *addr, uint16_t port);

/* TCP_NODELAY and buffer sizes for an accepted connection. */
void sl_net_tune_conn(int fd);

#endif
