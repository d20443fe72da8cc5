/*
 * net: sockets — address parsing, listening sockets, and the count of
 * connections per client address (iplimit.c).
 *
 * Every reactor owns its own listening socket on the same address
 * (SO_REUSEPORT), so the kernel spreads new connections across cores and no
 * accept queue is shared.
 *
 * Per-address limits (`limits.max_connections_per_ip`): one struct
 * sl_iplimit per port, shared by every thread that accepts on it (the
 * reactors for the native port, libmicrohttpd's threads for HTTP). A
 * client address is its IPv4 address, or the /64 prefix of its IPv6
 * address: one host is normally given a whole /64, so counting single
 * IPv6 addresses would let it open 2^64 times the limit. The table holds
 * at most `max_addrs` addresses (the port's connection limit: an address
 * with no connection is not kept), so its memory is fixed at create.
 *
 * Ownership: returned fds belong to the caller; an sl_iplimit to its
 * creator. Threads: any; sl_iplimit_acquire/release take the table's
 * mutex (accept and close only, never the data path).
 */
#ifndef SL_NET_H
#define SL_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
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

/* A client address as counted: IPv4 as ::ffff:a.b.c.d, IPv6 cut to /64. */
struct sl_ipkey {
	uint8_t b[16];
};

/* The key of a peer address (AF_INET or AF_INET6; an IPv4-mapped IPv6
 * address counts as its IPv4 one). 0 or -EAFNOSUPPORT. */
int sl_ipkey_of(const struct sockaddr *sa, socklen_t len, struct sl_ipkey *out);
/* The key of fd's peer (getpeername). 0 or -errno. */
int sl_ipkey_of_peer(int fd, struct sl_ipkey *out);
/* "127.0.0.3" or "2001:db8::/64", for messages. */
void sl_ipkey_str(const struct sl_ipkey *k, char *buf, size_t cap);

struct sl_iplimit;

/* A table for up to max_addrs addresses with connections. 0 or -ENOMEM. */
int sl_iplimit_create(uint32_t max_addrs, struct sl_iplimit **out);
void sl_iplimit_destroy(struct sl_iplimit *t);
/* Counts one more connection of k if it holds fewer than `limit`: true.
 * False (nothing counted) at the limit, or when the table already holds
 * max_addrs other addresses (then the port's own limit is reached too). */
bool sl_iplimit_acquire(struct sl_iplimit *t, const struct sl_ipkey *k, uint32_t limit);
/* One connection of k fewer (each successful acquire is released once). */
void sl_iplimit_release(struct sl_iplimit *t, const struct sl_ipkey *k);
/* Connections k holds now. */
uint32_t sl_iplimit_count(struct sl_iplimit *t, const struct sl_ipkey *k);

#endif
