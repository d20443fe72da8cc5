/*
 * A tiny blocking client of the native protocol for tests that drive an
 * in-process server over loopback (server.c, exactly_once.c): dial, send
 * whole buffers and messages, read whole frames. Every read has a receive
 * timeout as a safety net, never a sleep. Include after criterion.h.
 */
#ifndef SL_TEST_WIRE_CLIENT_H
#define SL_TEST_WIRE_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"
#include "server/server.h"

/* The options every in-process test server starts from (loopback, any
 * port, generous timeouts): TU_SERVER_OPTS(dir, reactors), then the test's
 * own fields, in a struct sl_server_opts initialiser. */
#define TU_SERVER_OPTS(dir, reactors)                                                              \
	.listen_native = "127.0.0.1:0", .data_dir = (dir), .n_reactors = (reactors),               \
	.max_connections = 64, .max_frame_bytes = 1 << 20, .handshake_timeout_ms = 5000,           \
	.idle_timeout_ms = 60000, .drain_timeout_ms = 10000

/* Drains and frees an in-process server; *srv becomes NULL. */
static inline void tu_server_halt(struct sl_server **srv)
{
	sl_server_stop(*srv);
	cr_assert_eq(sl_server_wait(*srv), 0);
	sl_server_destroy(*srv);
	*srv = NULL;
}

static inline void rm_dir(const char *dir)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static inline int dial(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s",
	             strerror(errno));
	/* Safety net only: a broken server fails the test instead of hanging. */
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static inline void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Reads the next frame, whatever it is; returns its type, or -1 on
 * EOF/close. body is malloc'd. */
static inline int read_frame_any(int fd, uint8_t **body, uint32_t *body_len)
{
	uint8_t hdr[5];
	size_t got = 0;
	while (got < 5) {
		ssize_t n = recv(fd, hdr + got, 5 - got, 0);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
	               (uint32_t)hdr[3] << 24;
	cr_assert_geq(len, 1);
	*body_len = len - 1;
	*body = malloc(len);
	got = 0;
	while (got < len - 1) {
		ssize_t n = recv(fd, *body + got, len - 1 - got, 0);
		cr_assert_gt(n, 0, "frame body cut short");
		got += (size_t)n;
	}
	return hdr[4];
}

/* Reads one frame; returns its type, or -1 on EOF/close. body is malloc'd.
 * Credit frames (the server grants credits as work becomes durable) are
 * not what most tests look at: they are skipped. */
static inline int read_frame(int fd, uint8_t **body, uint32_t *body_len)
{
	for (int skipped = 0; skipped < 1000000; skipped++) {
		int type = read_frame_any(fd, body, body_len);
		if (type != SLUICE__V1__FRAME_TYPE__FRAME_CREDIT)
			return type;
		free(*body);
	}
	cr_assert_fail("a million Credit frames and nothing else");
	return -1;
}

static inline void expect_closed(int fd)
{
	uint8_t b;
	ssize_t n = recv(fd, &b, 1, 0);
	cr_assert(n == 0 || (n < 0 && errno == ECONNRESET), "connection not closed (n=%zd)", n);
}

static inline void send_msg(int fd, uint8_t type, const ProtobufCMessage *m)
{
	uint8_t buf[4096];
	int n = sl_frame_encode_msg(type, m, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	send_all(fd, buf, (size_t)n);
}

#endif
