#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sl_net_parse_addr(const char *hostport, struct sl_addr *out)
{
	char host[64];
	const char *port_s;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		hlen = (size_t)(end - hostport - 1);
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, hostport + 1, hlen);
		port_s = end + 2;
	} else {
		const char *colon = strrchr(hostport, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - hostport);
		if (hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, hostport, hlen);
		port_s = colon + 1;
	}
	host[hlen] = '\0';

	char *endp;
	errno = 0;
	long port = strtol(port_s, &endp, 10);
	if (errno || *port_s == '\0' || *endp != '\0' || port < 0 || port > 65535)
		return -EINVAL;

	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");

	struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		out->len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}

void sl_net_set_port(struct sl_addr *addr, uint16_t port)
{
	if (addr->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&addr->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&addr->ss)->sin6_port = htons(port);
}

int sl_net_listen(const struct sl_addr *addr, int backlog)
{
	int one = 1;
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0)
		goto fail;
	if (listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

int sl_net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void sl_net_tune_conn(int fd)
{
	int one = 1;
	/* Acks are small and latency-bound; the sender already batches. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
