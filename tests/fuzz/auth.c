/*
 * Fuzzes what an unauthenticated peer controls: the Hello frame it sends
 * first (decoded, then its token checked) and the value of an HTTP
 * `Authorization` header. Neither may crash, read out of bounds, or accept
 * anything but the configured token. A Hello's producer_name (issue 20) goes
 * through the reactor's check: the verdict must match the rule (1..255
 * bytes of 0x21..0x7e), and an accepted name's id must lie in the named
 * range, never on a numbered or a stage id.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "dedup/dedup.h"
#include "proto/proto.h"

#define TOKEN "fuzz-token-0123456789abcdef"

static struct sl_auth *g_auth;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char path[] = "/tmp/sluice-fuzz-auth-XXXXXX";
	char err[256];
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, TOKEN "\n", sizeof(TOKEN)) != (ssize_t)sizeof(TOKEN))
		abort();
	close(fd);
	if (sl_auth_load(path, &g_auth, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	unlink(path);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As a header value: NUL-terminated, as MHD hands it over. */
	char *v = malloc(size + 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	v[size] = 0;
	const char *tok;
	size_t len;
	if (sl_auth_bearer(v, &tok, &len)) {
		if (tok < v || tok + len > v + size)
			abort();
		if (sl_auth_check(g_auth, tok, len) &&
		    (len != sizeof(TOKEN) - 1 || memcmp(tok, TOKEN, len) != 0))
			abort(); /* accepted something that is not the token */
	}
	free(v);

	/* As a frame: a Hello whose token is checked, as the reactor does. */
	struct sl_frame f;
	int n = sl_frame_parse(data, size, 1u << 20, &f);
	if (n > 0 && f.type == SLUICE__V1__FRAME_TYPE__FRAME_HELLO) {
		ProtobufCMessage *m = NULL;
		if (sl_frame_decode_msg(&f, &m) == 0) {
			Sluice__V1__Hello *h = (Sluice__V1__Hello *)m;
			size_t tl = strlen(h->token);
			if (sl_auth_check(g_auth, h->token, tl) &&
			    (tl != sizeof(TOKEN) - 1 || memcmp(h->token, TOKEN, tl) != 0))
				abort();
			size_t nl = h->producer_name ? strlen(h->producer_name) : 0;
			if (nl) {
				bool ok = nl <= SL_PRODUCER_NAME_MAX;
				for (size_t i = 0; ok && i < nl; i++)
					ok = (unsigned char)h->producer_name[i] >= 0x21 &&
					     (unsigned char)h->producer_name[i] <= 0x7e;
				bool said_ok = !sl_producers_name_ok(h->producer_name, nl);
				if (ok != said_ok)
					abort(); /* the check disagrees with its rule */
				uint64_t id = sl_producers_named_id(h->producer_name, nl);
				if (ok &&
				    (id < SL_PRODUCERS_NAMED_BASE || id >= SL_PRODUCERS_NAMED_END))
					abort(); /* a name reached outside its range */
			}
			sl_frame_msg_free(m);
		}
	}
	return 0;
}
