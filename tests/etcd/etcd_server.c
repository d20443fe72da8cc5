#include "etcd_server.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int sl_test_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int port = -EADDRNOTAVAIL;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int find_etcd(char *path, size_t n)
{
	const char *env = getenv("PATH");
	char *dirs = strdup(env && *env ? env : "/usr/bin:/bin");
	int found = 0;
	if (!dirs)
		return 0;
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(path, n, "%s/etcd", d);
		if (access(path, X_OK) == 0) {
			found = 1;
			break;
		}
	}
	free(dirs);
	return found;
}

static size_t discard(char *p, size_t s, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return s * n;
}

/* etcd has said it serves clients (its log at info level). */
static int log_says_ready(const char *logp)
{
	FILE *f = fopen(logp, "r");
	char line[1024];
	int ready = 0;
	if (!f)
		return 0;
	while (!ready && fgets(line, sizeof(line), f))
		ready = strstr(line, "ready to serve client requests") != NULL;
	fclose(f);
	return ready;
}

static int healthy(const char *url)
{
	char u[128];
	snprintf(u, sizeof(u), "%s/health", url);
	CURL *h = curl_easy_init();
	if (!h)
		return 0;
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 500L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status == 200;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

static void log_tail(const char *dir, char *err, size_t errlen)
{
	char p[128], buf[512];
	snprintf(p, sizeof(p), "%s/etcd.log", dir);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, "; its log ends: %s", buf);
	}
}

/* One attempt with two fresh ports. -EAGAIN: etcd exited (a port taken
 * between our probe and its bind): try again with others. */
static int start_once(struct sl_test_etcd *t, const char *bin, char *err, size_t errlen)
{
	t->client_port = sl_test_free_port();
	t->peer_port = sl_test_free_port();
	if (t->client_port < 0 || t->peer_port < 0 || t->client_port == t->peer_port)
		return -EAGAIN;
	char listen_c[64], listen_p[64], cluster[96], logp[128];
	snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d", t->client_port);
	snprintf(t->peer_url, sizeof(t->peer_url), "http://127.0.0.1:%d", t->peer_port);
	snprintf(listen_c, sizeof(listen_c), "%s", t->url);
	snprintf(listen_p, sizeof(listen_p), "%s", t->peer_url);
	snprintf(cluster, sizeof(cluster), "t=%s", t->peer_url);
	snprintf(logp, sizeof(logp), "%s/etcd.log", t->dir);
	char datadir[96];
	snprintf(datadir, sizeof(datadir), "%s/data", t->dir);
	/* Readiness is an event: etcd writes "ready to serve client requests"
	 * to its log (watched with inotify), or exits (its pidfd). The log
	 * exists before the fork so the watch sees every write. */
	int lfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ino = inotify_init1(IN_CLOEXEC);
	if (lfd < 0 || ino < 0 || inotify_add_watch(ino, logp, IN_MODIFY) < 0) {
		int e = -errno;
		if (lfd >= 0)
			close(lfd);
		if (ino >= 0)
			close(ino);
		snprintf(err, errlen, "log %s: %s", logp, strerror(-e));
		return e;
	}
	close(lfd);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* dies with the test process, even one that crashes */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/* heartbeat 10 ms / election 100 ms: etcd's lease minimum TTL is
		 * 1.5 election timeouts, so this lets tests use 1 s leases */
		execl(bin, bin, "--name", "t", "--data-dir", datadir, "--listen-client-urls",
		      listen_c, "--advertise-client-urls", listen_c, "--listen-peer-urls", listen_p,
		      "--initial-advertise-peer-urls", listen_p, "--initial-cluster", cluster,
		      "--heartbeat-interval", "10", "--election-timeout", "100", "--log-level",
		      "info", (char *)NULL);
		_exit(127);
	}
	t->pid = pid;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int ret = -ETIMEDOUT;
	/* ready "in well under a second" here; 15 s covers a loaded machine */
	int64_t deadline = now_ms() + 15000;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			t->pid = 0;
			snprintf(err, errlen, "etcd exited (status %d) before it answered", st);
			log_tail(t->dir, err, errlen);
			ret = -EAGAIN;
			break;
		}
		/* Said ready: its listener serves; a few health checks (each
		 * an answer or a refusal, no waiting between) confirm it. */
		int ok = 0;
		for (int k = 0; k < 50 && !ok && log_says_ready(logp); k++)
			ok = healthy(t->url);
		if (ok) {
			ret = 0;
			break;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			snprintf(err, errlen, "etcd at %s did not answer /health within 15 s",
			         t->url);
			log_tail(t->dir, err, errlen);
			break;
		}
		/* Wakes on a write to the log or the child's exit. */
		struct pollfd fds[2] = {{.fd = ino, .events = POLLIN},
		                        {.fd = pfd, .events = POLLIN}};
		if (poll(fds, pfd >= 0 ? 2 : 1, (int)left) > 0 && (fds[0].revents & POLLIN)) {
			char ev[4096];
			(void)!read(ino, ev, sizeof(ev));
		}
	}
	close(ino);
	if (pfd >= 0)
		close(pfd);
	return ret;
}

int sl_test_etcd_start(struct sl_test_etcd *t, char *err, size_t errlen)
{
	char bin[512];
	memset(t, 0, sizeof(*t));
	if (!find_etcd(bin, sizeof(bin))) {
		snprintf(err, errlen,
		         "no `etcd` in PATH: install the Debian package etcd-server "
		         "(./ops/deps installs it)");
		return -ENOENT;
	}
	snprintf(t->dir, sizeof(t->dir), "/tmp/sl-etcd-XXXXXX");
	if (!mkdtemp(t->dir)) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		t->dir[0] = 0;
		return -errno;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int r = -EAGAIN;
	for (int i = 0; i < 5 && r == -EAGAIN; i++)
		r = start_once(t, bin, err, errlen);
	if (r < 0)
		sl_test_etcd_stop(t);
	return r;
}

void sl_test_etcd_stop(struct sl_test_etcd *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
		t->pid = 0;
	}
	if (t->dir[0]) {
		nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		t->dir[0] = 0;
	}
}
