/*
 * Fuzz the parsers of what etcd's gateway sends (engine/etcd/answer.c):
 * the unary answers (status, range, put, deleterange, txn, lease,
 * keepalive), the error answers, and one message of the watch stream.
 * Input layout:
 *   byte 0   low 4 bits: 0..6 an answer of that sl__etcd_kind, 7 a watch
 *            message, 8 an error answer (HTTP status 400 + byte 1), 9 an
 *            election answer (SL__ETCD_ELECTION: added after the corpus
 *            named 7 and 8), other values prefix_end; bit 4: strip the
 *            prefix "c" from keys
 *   then     the bytes as they came off the wire
 * The body is a heap block of exact size, so ASan sees any read past it.
 * It must never crash or leak; on success every key and value is inside
 * its NUL-terminated bytes, keys free of NUL and stripped; on failure the
 * reason is given.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static void check_kv(const struct sl_etcd_kv *kv)
{
	CHECK(kv->key && kv->value);
	CHECK(kv->key[kv->key_len] == 0);
	CHECK(strlen(kv->key) == kv->key_len);
	CHECK(kv->value[kv->value_len] == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 0x0f;
	const char *strip = (data[0] & 0x10) ? "c" : "";
	size_t strip_len = strlen(strip);
	size_t n = size - 1;
	char *buf = malloc(n ? n : 1);
	CHECK(buf);
	memcpy(buf, data + 1, n);
	char err[256];
	err[0] = 0;
	if (mode < 7 || mode == 9) {
		struct sl__etcd_answer a;
		enum sl__etcd_kind kind = mode == 9 ? SL__ETCD_ELECTION : (enum sl__etcd_kind)mode;
		int r = sl__etcd_answer_parse(kind, buf, n, strip, strip_len, &a, err, sizeof(err));
		if (r == 0) {
			for (size_t i = 0; i < a.n_kvs; i++)
				check_kv(&a.kvs[i]);
			sl__etcd_answer_release(&a);
		} else {
			CHECK(r == -EPROTO || r == -ENOMEM || r == -EMSGSIZE);
			CHECK(err[0] != 0);
			CHECK(a.kvs == NULL && a.n_kvs == 0);
		}
	} else if (mode == 7) {
		struct sl__etcd_watch_msg m;
		int r = sl__etcd_watch_msg_parse(buf, n, strip, strip_len, &m, err, sizeof(err));
		if (r == 0) {
			for (size_t i = 0; i < m.n_events; i++) {
				CHECK(m.events[i].type == SL_ETCD_PUT ||
				      m.events[i].type == SL_ETCD_DELETE);
				check_kv(&m.events[i].kv);
			}
			CHECK(memchr(m.cancel_reason, 0, sizeof(m.cancel_reason)));
			CHECK(m.error <= 0);
			sl__etcd_watch_msg_release(&m);
		} else {
			CHECK(r == -EPROTO || r == -ENOMEM || r == -EMSGSIZE);
			CHECK(err[0] != 0);
		}
	} else if (mode == 8) {
		long status = 400 + (n ? (uint8_t)buf[0] : 0);
		int r = sl__etcd_error_parse(status, buf, n, err, sizeof(err));
		CHECK(r < 0);
		CHECK(err[0] != 0);
	} else {
		char *out = malloc(n + 1);
		CHECK(out);
		size_t l = sl__etcd_prefix_end(buf, n, out);
		CHECK(l >= 1 && l <= (n ? n : 1));
		/* the end is above every key with the prefix: raised, not lowered */
		if (n && !(l == 1 && out[0] == 0))
			CHECK(memcmp(out, buf, l - 1) == 0 &&
			      (unsigned char)out[l - 1] > (unsigned char)buf[l - 1]);
		free(out);
	}
	free(buf);
	return 0;
}
