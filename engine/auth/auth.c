/* The token file, constant-time checks, the Bearer header (auth.h). */
#include "auth/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"

struct sl__tokens {
	size_t n;
	char tok[SL_AUTH_MAX_TOKENS][SL_AUTH_MAX_LEN + 1];
	size_t len[SL_AUTH_MAX_TOKENS];
	struct sl__tokens *older; /* kept until sl_auth_free (auth.h) */
};

struct sl_auth {
	char *path;
	_Atomic(struct sl__tokens *) cur;
};

/* A token file is small; anything larger is not one. */
#define SL__FILE_MAX 4096

static bool sl__token_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f;
}

/* Parses the file's text into t; 0 or -SL_ECONFIG with err set. */
static int sl__parse(const char *path, char *text, struct sl__tokens *t, char *err, size_t errlen)
{
	unsigned line = 0;
	char *save = NULL;

	memset(t, 0, sizeof(*t));
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		while (*l && isspace((unsigned char)*l))
			l++;
		size_t len = strlen(l);
		while (len && isspace((unsigned char)l[len - 1]))
			len--;
		if (!len)
			continue;
		for (size_t i = 0; i < len; i++)
			if (!sl__token_char((unsigned char)l[i])) {
				sl_errf(
				    err, errlen,
				    "%s:%u: a token is printable ASCII without spaces (byte %zu "
				    "is not)",
				    path, line, i + 1);
				return -SL_ECONFIG;
			}
		if (len < SL_AUTH_MIN_LEN || len > SL_AUTH_MAX_LEN) {
			sl_errf(err, errlen, "%s:%u: a token is %d to %d characters, this one %zu",
			        path, line, SL_AUTH_MIN_LEN, SL_AUTH_MAX_LEN, len);
			return -SL_ECONFIG;
		}
		if (t->n == SL_AUTH_MAX_TOKENS) {
			sl_errf(err, errlen,
			        "%s:%u: at most %d tokens (the current one and, while rotating, "
			        "the next)",
			        path, line, SL_AUTH_MAX_TOKENS);
			return -SL_ECONFIG;
		}
		memcpy(t->tok[t->n], l, len);
		t->len[t->n++] = len;
	}
	if (!t->n) {
		sl_errf(err, errlen, "%s: no token in the file", path);
		return -SL_ECONFIG;
	}
	return 0;
}

/* Reads and checks the file: owned by nobody else's eyes, small. */
static int sl__read(const char *path, bool check_mode, struct sl__tokens *t, char *err,
                    size_t errlen)
{
	char text[SL__FILE_MAX + 1];
	struct stat st;
	int ret, fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		ret = -errno;
		sl_errf(err, errlen, "token file %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		sl_errf(err, errlen, "token file %s: %s", path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -SL_ECONFIG;
		sl_errf(err, errlen, "token file %s: not a regular file", path);
		goto out;
	}
	if (check_mode && (st.st_mode & 077)) {
		ret = -SL_ECONFIG;
		sl_errf(err, errlen,
		        "token file %s: group or others may access it (mode %04o): chmod 600 it",
		        path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > SL__FILE_MAX) {
		ret = -SL_ECONFIG;
		sl_errf(err, errlen, "token file %s: %lld bytes, more than a token file holds",
		        path, (long long)st.st_size);
		goto out;
	}
	ssize_t n = read(fd, text, SL__FILE_MAX);
	if (n < 0) {
		ret = -errno;
		sl_errf(err, errlen, "token file %s: %s", path, strerror(-ret));
		goto out;
	}
	text[n] = 0;
	if (memchr(text, 0, (size_t)n)) {
		ret = -SL_ECONFIG;
		sl_errf(err, errlen, "token file %s: holds a NUL byte", path);
		goto out;
	}
	ret = sl__parse(path, text, t, err, errlen);
out:
	close(fd);
	return ret;
}

int sl_auth_load(const char *path, struct sl_auth **out, char *err, size_t errlen)
{
	struct sl_auth *a = calloc(1, sizeof(*a));
	struct sl__tokens *t = calloc(1, sizeof(*t));
	int ret = -ENOMEM;

	*out = NULL;
	if (!a || !t || !(a->path = strdup(path))) {
		sl_errf(err, errlen, "out of memory");
		goto fail;
	}
	ret = sl__read(path, true, t, err, errlen);
	if (ret < 0)
		goto fail;
	atomic_init(&a->cur, t);
	*out = a;
	return 0;
fail:
	free(t);
	if (a)
		free(a->path);
	free(a);
	return ret;
}

int sl_auth_reload(struct sl_auth *a, char *err, size_t errlen)
{
	struct sl__tokens *t = calloc(1, sizeof(*t));
	if (!t) {
		sl_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int ret = sl__read(a->path, true, t, err, errlen);
	if (ret < 0) {
		free(t);
		return ret;
	}
	t->older = atomic_load_explicit(&a->cur, memory_order_relaxed);
	/* Release: a checker that loads the new set sees its tokens. */
	atomic_store_explicit(&a->cur, t, memory_order_release);
	return 0;
}

void sl_auth_free(struct sl_auth *a)
{
	if (!a)
		return;
	struct sl__tokens *t = atomic_load_explicit(&a->cur, memory_order_relaxed);
	while (t) {
		struct sl__tokens *o = t->older;
		free(t);
		t = o;
	}
	free(a->path);
	free(a);
}

/* Compares over the configured token's length whatever `tok` holds: the
 * time says how long the configured token is (which the file's rules
 * already bound), nothing about the presented one. */
static unsigned sl__diff(const char *want, size_t wlen, const char *tok, size_t len)
{
	volatile unsigned d = (unsigned)(wlen != len);
	for (size_t i = 0; i < wlen; i++)
		d |= (unsigned char)want[i] ^ (unsigned char)(len ? tok[i % len] : 0);
	return d;
}

bool sl_auth_check(const struct sl_auth *a, const char *tok, size_t len)
{
	const struct sl__tokens *t =
	    atomic_load_explicit(&((struct sl_auth *)a)->cur, memory_order_acquire);
	unsigned ok = 0;
	/* Every token is compared: which one matched must not show either. */
	for (size_t i = 0; i < t->n; i++)
		ok |= sl__diff(t->tok[i], t->len[i], tok, len) == 0;
	return ok != 0;
}

bool sl_auth_bearer(const char *value, const char **tok, size_t *len)
{
	static const char scheme[] = "Bearer";
	size_t n = sizeof(scheme) - 1;

	if (!value || strncasecmp(value, scheme, n) != 0 || value[n] != ' ')
		return false;
	const char *p = value + n;
	while (*p == ' ')
		p++;
	size_t l = 0;
	while (sl__token_char((unsigned char)p[l]))
		l++;
	const char *rest = p + l;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (!l || *rest)
		return false;
	*tok = p;
	*len = l;
	return true;
}

int sl_auth_client_token(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	const char *env = getenv("SLUICE_TOKEN");

	if (env && *env) {
		size_t len = strlen(env);
		if (len >= cap) {
			sl_errf(err, errlen, "SLUICE_TOKEN: longer than %zu bytes", cap - 1);
			return -SL_ECONFIG;
		}
		memcpy(out, env, len + 1);
		return 1;
	}
	if (!path)
		return 0;
	return sl_auth_file_token(path, out, cap, err, errlen);
}

int sl_auth_file_token(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	struct sl__tokens t;

	/* A client's own file: its mode is the user's business. */
	int ret = sl__read(path, false, &t, err, errlen);
	if (ret < 0)
		return ret;
	if (t.len[0] >= cap) {
		sl_errf(err, errlen, "token file %s: the token is longer than %zu bytes", path,
		        cap - 1);
		return -SL_ECONFIG;
	}
	memcpy(out, t.tok[0], t.len[0] + 1);
	return 1;
}
