/*
 * A throw-away etcd for tests: one member on loopback, free ports, a temp
 * data dir. sl_test_etcd_start() returns once the member answers /health;
 * sl_test_etcd_stop() kills it and removes the dir. The member dies with
 * the process that started it (PR_SET_PDEATHSIG), so a test that crashes
 * before its teardown leaves no etcd behind (its dir then stays in /tmp).
 *
 * Threads: one thread starts and stops a given member.
 */
#ifndef SL_TEST_ETCD_SERVER_H
#define SL_TEST_ETCD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

struct sl_test_etcd {
	pid_t pid;
	int client_port;
	int peer_port;
	char dir[64];
	char url[64];      /* http://127.0.0.1:CLIENT_PORT */
	char peer_url[64]; /* http://127.0.0.1:PEER_PORT: HTTP, but not the gateway */
};

/* 0, or -errno with err saying why (no `etcd` in PATH names the Debian
 * package). */
int sl_test_etcd_start(struct sl_test_etcd *t, char *err, size_t errlen);
void sl_test_etcd_stop(struct sl_test_etcd *t);
/* A loopback port nobody listens on (bound, then closed). */
int sl_test_free_port(void);

#endif
