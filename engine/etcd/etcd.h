/*
 * etcd: sluice's client of etcd's v3 JSON gateway (etcd 3.4, Debian
 * `etcd-server`): keys and values, revision-guarded writes, leases and
 * watches. No cluster logic lives here; it is the groundwork the cluster
 * code (issue 16) stands on.
 *
 * Wire: HTTP/1.1 POSTs of JSON (libcurl, json-c) to /v3/kv/..., /v3/lease/...
 * and /v3/watch. Keys and values travel as base64, 64-bit integers as JSON
 * strings, and proto3 JSON leaves out every field at its default value: a
 * failed txn has no "succeeded", a PUT event no "type", an empty value no
 * "value". Every parser here reads a missing field as its zero value and
 * refuses a present one of the wrong kind (-EPROTO, never a crash).
 *
 * Keys: every key a caller passes is relative; the client prepends the
 * prefix given at open ("/sluice/NAME/") and strips it from every key it
 * hands back. Keys are C strings; values are bytes (NUL allowed).
 *
 * Revisions: the header revision of the last answer (the store's revision
 * when etcd answered) is sl_etcd_revision(); calls whose answer carries
 * none leave it as it was.
 *
 * Endpoints and failover: the client keeps one current endpoint and uses
 * it until it fails. A request that could not CONNECT (refused, host
 * unreachable, connect timeout) was never sent, so it is tried on the next
 * endpoint, each at most once per call. A request that failed after it was
 * sent (a timeout waiting for the answer, a reset) is NOT sent again: a txn
 * that was applied but whose answer was lost would then fail its compare
 * and report "lost" for a write that won. It returns -ETIMEDOUT / -EIO and
 * the next call starts from the next endpoint; the caller decides whether
 * to read the key back. Every endpoint down: -ECONNREFUSED (or the last
 * connect error), the text naming each endpoint and why.
 *
 * Errors: 0 or a count on success, -errno on failure, and the text of the
 * last failure in sl_etcd_errmsg() (endpoint, path, etcd's own message and
 * gRPC code). Gateway answers {"error","code","message"} map by gRPC code:
 * NotFound -ENOENT, InvalidArgument/FailedPrecondition -EINVAL, OutOfRange
 * -ERANGE (compacted), DeadlineExceeded -ETIMEDOUT, Unavailable -EAGAIN,
 * PermissionDenied/Unauthenticated -EACCES, ResourceExhausted -ENOSPC,
 * AlreadyExists -EEXIST, Unimplemented -ENOSYS, Canceled -ECANCELED, any
 * other -EPROTO. An answer that is not what etcd sends: -EPROTO.
 *
 * Elections: etcd's own election service (/v3/election/campaign|leader|
 * resign), a campaign under a lease the caller keeps alive. A campaign can
 * return after the lease behind it expired (etcd issue #11456): confirm
 * with sl_etcd_leader_confirm() (a txn on the leader key and the lease's
 * time to live) before acting, and count the office valid only until the
 * last keepalive + TTL - a margin. The leader key's create revision is the
 * office's fencing token. Not here yet: ranges paged with "limit" (one
 * answer, bounded by SL_ETCD_ANSWER_MAX), auth, TLS options.
 *
 * Ownership: sl_etcd_open() returns a client freed by sl_etcd_close();
 * sl_etcd_watch_open() a watch freed by sl_etcd_watch_close(). Values from
 * sl_etcd_get() are malloc'd for the caller (free()). Pointers inside a
 * struct sl_etcd_kv / sl_etcd_event given to a callback are valid only
 * during the callback.
 *
 * Threads: a client is one CURL easy handle, reused for keep-alive, and is
 * used by one thread at a time (libcurl's rule for a handle); nothing here
 * locks. Keepalives that must not wait behind a slow range want a client
 * of their own. A watch has its own handle and no tie to the client after
 * sl_etcd_watch_open(), so it may live on another thread and outlive the
 * client. The one process-wide step, curl_global_init, is done once under
 * pthread_once by the first sl_etcd_open().
 */
#ifndef SL_ETCD_H
#define SL_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sl_etcd;
struct sl_etcd_watch;

/* Limits that keep a broken or hostile peer from taking the process's
 * memory: an answer larger than this is refused (-EMSGSIZE). 64 MiB is
 * far above anything sluice stores (membership, placement: kilobytes) and
 * below etcd's own default request limit times the keys a range returns. */
#define SL_ETCD_ANSWER_MAX    (64u << 20)
#define SL_ETCD_ENDPOINTS_MAX 16

/* A key and its value as etcd keeps them. key is relative (prefix
 * stripped) and NUL-terminated at key_len; value is NUL-terminated at
 * value_len too, for text callers, but may hold NULs. */
struct sl_etcd_kv {
	const char *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	int64_t create_revision; /* revision that created it: a fencing token */
	int64_t mod_revision;    /* revision of its last write */
	int64_t version;         /* writes since creation, 1 for a new key */
	int64_t lease;           /* 0: none */
};

/*
 * endpoints: n URLs "http://host:port" (1 <= n <= SL_ETCD_ENDPOINTS_MAX),
 * tried in order. prefix: prepended to every key (may be "", copied).
 * timeout_ms: bound on each request, connect included (> 0).
 * Opening checks that one endpoint answers (a status call), so a daemon
 * with a wrong list fails at start with every endpoint's reason in err.
 * 0, -EINVAL (arguments: err says which), -ENOMEM, or the last endpoint's
 * error.
 */
int sl_etcd_open(const char *const *endpoints, size_t n, const char *prefix, uint32_t timeout_ms,
                 struct sl_etcd **out, char *err, size_t errlen);
void sl_etcd_close(struct sl_etcd *e);

/* The last failure's text ("" before any). Valid until the next call. */
const char *sl_etcd_errmsg(const struct sl_etcd *e);
/* Header revision of the last answer that carried one (0 before any). */
int64_t sl_etcd_revision(const struct sl_etcd *e);
/* The endpoint the next request goes to. */
const char *sl_etcd_endpoint(const struct sl_etcd *e);

/* ---- keys ------------------------------------------------------------------ */

/*
 * The value of key: *value malloc'd (NUL-terminated past *len, free() it),
 * the revisions through the out-parameters (each may be NULL).
 * 0, -ENOENT when the key does not exist, or an error.
 */
int sl_etcd_get(struct sl_etcd *e, const char *key, uint8_t **value, size_t *len,
                int64_t *mod_revision, int64_t *create_revision);

/*
 * Calls cb for every key starting with prefix (relative; "" is every key
 * under the client's prefix), in key order, from one consistent read at
 * one revision (sl_etcd_revision() afterwards: watch from it + 1 to miss
 * nothing). A non-zero return from cb stops the walk and is returned.
 * Otherwise the count of keys, or an error.
 */
typedef int (*sl_etcd_kv_cb)(void *arg, const struct sl_etcd_kv *kv);
int sl_etcd_get_prefix(struct sl_etcd *e, const char *prefix, sl_etcd_kv_cb cb, void *arg);

/* Writes key = value (len bytes) attached to lease (0: none). 0 or error;
 * the write's revision is sl_etcd_revision(). */
int sl_etcd_put(struct sl_etcd *e, const char *key, const void *value, size_t len, int64_t lease);

/* Deletes key. The count deleted (0 or 1), or an error. */
int sl_etcd_del(struct sl_etcd *e, const char *key);

/*
 * The guarded write: key = value with lease (0: none) only if the key's
 * mod_revision is still expect_mod_revision, or, with expect 0, only if
 * the key does not exist (compare CREATE create_revision = 0). One txn.
 * *succeeded: whether it was written. *revision: on success the revision
 * of this write (the key's new mod_revision); on failure the key's current
 * mod_revision (0: absent), read in the same txn so the loser learns what
 * it lost to without another round trip. 0 (won or lost: see *succeeded),
 * or an error (then neither output is set).
 */
int sl_etcd_txn_put_if(struct sl_etcd *e, const char *key, const void *value, size_t len,
                       int64_t lease, int64_t expect_mod_revision, bool *succeeded,
                       int64_t *revision);

/* Deletes key only if its mod_revision is expect_mod_revision (> 0): a
 * fenced delete (stepping down from a role without removing a
 * successor's key). 0 with *succeeded, or an error. */
int sl_etcd_txn_del_if(struct sl_etcd *e, const char *key, int64_t expect_mod_revision,
                       bool *succeeded);

/* ---- leases ---------------------------------------------------------------- */

/* A new lease of ttl_s seconds (> 0): *id, and the TTL etcd granted (it may
 * raise a short one to its minimum). 0 or an error. */
int sl_etcd_lease_grant(struct sl_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl);

/*
 * One keepalive (the gateway answers one result per request). *ttl_left:
 * the TTL the lease runs with from now. -ENOENT when the lease is gone
 * (expired or revoked: the gateway then answers without a TTL, or 0).
 */
int sl_etcd_lease_keepalive(struct sl_etcd *e, int64_t id, int64_t *ttl_left);

/* Revokes the lease; its keys are deleted with it. 0, -ENOENT if it was not
 * there (already expired or revoked), or an error. */
int sl_etcd_lease_revoke(struct sl_etcd *e, int64_t id);

/* Seconds the lease has left. 0, -ENOENT when it is gone, or an error. */
int sl_etcd_lease_timetolive(struct sl_etcd *e, int64_t id, int64_t *ttl);

/* ---- elections ------------------------------------------------------------- */

/* Room for an election's leader key: the client prefix, the name, '/' and
 * the lease in hex; longer names are refused (-ENAMETOOLONG). */
#define SL_ETCD_LEADER_KEY_MAX 384
#define SL_ETCD_LEADER_VAL_MAX 128

/* The holder of an election's office as etcd names it. */
struct sl_etcd_leader {
	char key[SL_ETCD_LEADER_KEY_MAX]; /* relative (prefix stripped) */
	int64_t rev;                      /* the key's create_revision: the fencing token */
	int64_t lease;
	char value[SL_ETCD_LEADER_VAL_MAX]; /* sl_etcd_election_leader() only (truncated) */
};

/*
 * Campaigns for election `name` (relative, under the prefix) with value,
 * under lease: blocks until this caller holds the office or timeout_ms
 * passes (-ETIMEDOUT: etcd then withdraws the candidacy, as for a canceled
 * campaign; call again). 0 with *out the leader key this caller holds.
 * Holding it says nothing of the lease's validity: confirm before acting.
 */
int sl_etcd_campaign(struct sl_etcd *e, const char *name, int64_t lease, const void *value,
                     size_t len, uint32_t timeout_ms, struct sl_etcd_leader *out);

/* Who holds the office of election `name` now: 0 with *out, -ENOENT when no
 * one does, or an error. */
int sl_etcd_election_leader(struct sl_etcd *e, const char *name, struct sl_etcd_leader *out);

/* Leaves the office held as l (its key is deleted if still l's). 0 or an
 * error. */
int sl_etcd_resign(struct sl_etcd *e, const struct sl_etcd_leader *l);

/*
 * Whether l still holds its office: one txn comparing the leader key's
 * create_revision with l->rev, then the lease's time to live (> 0, or the
 * lease in its last second: 0 with *holds false). *ttl_left: seconds the
 * lease has (0 when it does not hold). 0 with *holds, or an error.
 */
int sl_etcd_leader_confirm(struct sl_etcd *e, const struct sl_etcd_leader *l, bool *holds,
                           int64_t *ttl_left);

/* ---- watch ----------------------------------------------------------------- */

enum sl_etcd_event_type {
	SL_ETCD_PUT = 0, /* proto3's default: a PUT event carries no "type" */
	SL_ETCD_DELETE = 1,
};

struct sl_etcd_event {
	enum sl_etcd_event_type type;
	struct sl_etcd_kv kv; /* a DELETE has the key and mod_revision only */
};

/*
 * Watches every key starting with prefix (relative, "" for all) from
 * start_revision (0: from now; otherwise events at and after it, so
 * sl_etcd_revision() + 1 of a get_prefix continues it without a gap).
 *
 * The stream runs on its own CURL easy handle driven by a curl multi handle
 * on the CALLER's thread inside sl_etcd_watch_next(): no thread of ours,
 * so nothing runs behind the caller's back, the watch needs no lock, and a
 * caller that waits on several things can bound each wait. Returns once etcd
 * has confirmed the watch ("created"), so a write made after this returns
 * is seen. Tries the endpoints from the client's current one, as requests
 * do. 0, or an error (text in sl_etcd_errmsg(e)).
 */
int sl_etcd_watch_open(struct sl_etcd *e, const char *prefix, int64_t start_revision,
                       struct sl_etcd_watch **out);
void sl_etcd_watch_close(struct sl_etcd_watch *w);

/*
 * Waits at most timeout_ms for events and calls cb for each one that has
 * arrived, in revision order. Returns the count delivered (0: none within
 * the timeout), the non-zero value cb returned (the events after it are
 * kept for the next call), or:
 *   -ERANGE       start_revision was compacted away:
 *                 sl_etcd_watch_compact_revision() is the oldest revision
 *                 left; read the state again (get_prefix) and watch anew
 *   -ECONNRESET   the stream ended or broke: open a new watch from
 *                 sl_etcd_watch_revision() + 1
 *   -ECANCELED    etcd canceled the watch for another reason
 *   -EPROTO       an answer that is not etcd's; -ENOMEM, -EMSGSIZE
 * After an error every later call returns the same error.
 */
typedef int (*sl_etcd_event_cb)(void *arg, const struct sl_etcd_event *ev);
int sl_etcd_watch_next(struct sl_etcd_watch *w, uint32_t timeout_ms, sl_etcd_event_cb cb,
                       void *arg);
/* The mod_revision of the last event delivered (or the revision the watch
 * was created at, before any). */
int64_t sl_etcd_watch_revision(const struct sl_etcd_watch *w);
/* After -ERANGE: the compaction revision etcd reported. */
int64_t sl_etcd_watch_compact_revision(const struct sl_etcd_watch *w);
/* The text of the watch's error ("" before any). */
const char *sl_etcd_watch_errmsg(const struct sl_etcd_watch *w);

/* ---- internals, exposed for the fuzz target and the unit test ---------------
 * The answer parsers: pure functions of the bytes etcd sent. */

enum sl__etcd_kind {
	SL__ETCD_STATUS,    /* /v3/maintenance/status: header only */
	SL__ETCD_RANGE,     /* /v3/kv/range */
	SL__ETCD_PUT,       /* /v3/kv/put */
	SL__ETCD_DELETE,    /* /v3/kv/deleterange: "deleted" */
	SL__ETCD_TXN,       /* /v3/kv/txn: "succeeded", a response_range's kvs */
	SL__ETCD_LEASE,     /* grant, revoke, timetolive: "ID", "TTL" */
	SL__ETCD_KEEPALIVE, /* /v3/lease/keepalive: {"result":{"ID","TTL"}} */
	SL__ETCD_ELECTION,  /* campaign "leader", leader "kv", resign: one kv at most */
	SL__ETCD_KIND_MAX,
};

struct sl__etcd_answer {
	int64_t revision; /* header.revision; 0: absent */
	struct sl_etcd_kv *kvs;
	size_t n_kvs;
	int64_t count;   /* range: "count" */
	bool more;       /* range: "more" */
	int64_t deleted; /* deleterange */
	bool succeeded;  /* txn */
	int64_t id;      /* lease "ID" */
	int64_t ttl;     /* lease "TTL" (-1 from timetolive: gone; absent: 0) */
	/* election: kvs[0] is the leader key; from a campaign's "leader" its
	 * create_revision is "rev" and its lease "lease", its value empty */
	void *sl__mem; /* the kvs' keys and values (one block) */
};

/*
 * Parses one answer of the given kind (len bytes, not NUL-terminated).
 * strip: the client prefix; every kv key must start with it (else -EPROTO)
 * and is handed back without it. 0 (out filled, release it with
 * sl__etcd_answer_release), or -EPROTO / -ENOMEM with err saying what.
 */
int sl__etcd_answer_parse(enum sl__etcd_kind kind, const char *buf, size_t len, const char *strip,
                          size_t strip_len, struct sl__etcd_answer *out, char *err, size_t errlen);
void sl__etcd_answer_release(struct sl__etcd_answer *a);

/*
 * An error answer (HTTP status other than 200): the -errno its gRPC code
 * maps to (table above), with err = "MESSAGE (HTTP S, gRPC code C NAME)".
 * A body that is not an error object: -EPROTO from the HTTP status alone.
 * Never 0.
 */
int sl__etcd_error_parse(long http_status, const char *buf, size_t len, char *err, size_t errlen);

/* One message of the watch stream (one line). */
struct sl__etcd_watch_msg {
	int64_t revision; /* header.revision */
	bool created;
	bool canceled;
	int64_t compact_revision;
	struct sl_etcd_event *events;
	size_t n_events;
	char cancel_reason[128];
	int error; /* an {"error":{...}} message: its -errno, else 0 */
	void *sl__mem;
};
int sl__etcd_watch_msg_parse(const char *buf, size_t len, const char *strip, size_t strip_len,
                             struct sl__etcd_watch_msg *out, char *err, size_t errlen);
void sl__etcd_watch_msg_release(struct sl__etcd_watch_msg *m);

/* range_end for a prefix: the prefix with its last byte below 0xff raised by
 * one (trailing 0xff bytes dropped); all 0xff or empty: "\0", etcd's "every
 * key from here". Writes into out (room for len bytes + 1), returns its
 * length (>= 1). */
size_t sl__etcd_prefix_end(const char *prefix, size_t len, char *out);

#ifdef __cplusplus
}
#endif

#endif
