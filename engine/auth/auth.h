/*
 * auth: the shared secret both ports demand when `auth:` is configured.
 *
 * A token file holds one token per line (blank lines and surrounding
 * whitespace ignored): one in normal operation, two while a token is being
 * rotated (clients move from the old to the new one while both are
 * accepted; then the old line goes). A token is at least SL_AUTH_MIN_LEN
 * bytes of printable ASCII, no spaces, so that it can travel in an HTTP
 * header as it is. The file must not be readable or writable by group or
 * others (as ssh refuses a private key that is): a token anyone on the host
 * can read protects nothing.
 *
 * Checks take time that depends on the lengths of the configured tokens
 * only, never on how much of the presented one matched: every configured
 * token is compared over its whole length, the differences OR-ed.
 *
 * sl_auth_reload reads the file again (SIGHUP): the new token set is
 * published with one atomic pointer store; the old set is kept until
 * sl_auth_free, because a check on another thread may still be reading it
 * (a few dozen bytes per reload, which an operator triggers by hand).
 *
 * Ownership: sl_auth_load returns an object freed by sl_auth_free.
 * Threads: sl_auth_check and sl_auth_bearer from any thread at any time;
 * sl_auth_reload from one controlling thread; free after every user is
 * gone.
 */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define SL_AUTH_MIN_LEN    16
#define SL_AUTH_MAX_LEN    512
#define SL_AUTH_MAX_TOKENS 2

struct sl_auth;

/* Reads `path`. 0, or -errno / -SL_ECONFIG with `err` naming the file and
 * what is wrong (missing, readable by others, empty, a bad token). */
int sl_auth_load(const char *path, struct sl_auth **out, char *err, size_t errlen);
/* Reads the file again and, when it is good, accepts its tokens from now on;
 * on error the tokens stay as they were and `err` says why. */
int sl_auth_reload(struct sl_auth *a, char *err, size_t errlen);
void sl_auth_free(struct sl_auth *a);

/* True when `tok` (len bytes, need not be NUL-terminated) is a configured
 * token. */
bool sl_auth_check(const struct sl_auth *a, const char *tok, size_t len);

/* The token of an HTTP `Authorization` header value: "Bearer TOKEN" (the
 * scheme case-insensitive, spaces after it skipped, nothing after the
 * token). Sets *tok and *len into `value`; false when the header is not one. */
bool sl_auth_bearer(const char *value, const char **tok, size_t *len);

/* Reads a client's token: the value of $SLUICE_TOKEN when set and non-empty,
 * else the first token of `path` when path is not NULL. Copies it into
 * out[0..cap) NUL-terminated: 1 when a token was found, 0 when none was
 * asked for, -errno / -SL_ECONFIG with `err` saying why. */
int sl_auth_client_token(const char *path, char *out, size_t cap, char *err, size_t errlen);
/* The first token of the file at `path` only (a server presenting its own
 * token to the other nodes of its cluster: the config says which, never
 * the environment it was started in). 1, or the errors above. */
int sl_auth_file_token(const char *path, char *out, size_t cap, char *err, size_t errlen);

#endif
