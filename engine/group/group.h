/*
 * group: consumer groups (issue 18). The members of a group share the
 * partitions of the topic they read; the server assigns them (no member
 * leads), cooperatively and stickily, and keeps what the group committed.
 *
 * Assignment. Each topic's partitions are spread evenly over the members
 * that read it (each gets N/m, the first N%m one more); a new assignment
 * keeps every partition where it was as far as the quotas allow and moves
 * only the rest (assign.c). It is a *target*: a partition moves from A to
 * B only once A said, in a heartbeat, that it no longer holds it (or A is
 * gone), so no two members ever hold one partition, and A reads every
 * partition it keeps throughout. While some partition is between owners
 * the group asks for heartbeats every SL_GROUP_HB_FAST_MS.
 *
 * Membership. A member joins with no id and gets one (128 random bits, so
 * a replaced member's id never comes back); it is gone when it leaves, when
 * it is silent for its session timeout, or when the connection it last
 * heartbeat on closes (a killed consumer's partitions move at once, not a
 * session later). Every change moves the group's generation on.
 *
 * Fencing. A commit is taken only from the member that holds the partition,
 * with a generation at least the one the partition was granted in: a
 * member that was replaced (timed out, its partitions given to others) is
 * refused (ERR_FENCED or ERR_UNKNOWN_MEMBER), whatever it still believes.
 *
 * Offsets. Committed offsets live in the offsets topic (SL_GROUP_TOPIC),
 * one event per commit whose aggregate is "GROUP/TOPIC/PARTITION"
 * (record.c: the one definition of its bytes), so compaction keeps the
 * latest per partition and replication copies them like any event; a
 * group's records all go to one partition of it (sl_group_offsets_part), so
 * they are read back in order. The table here is rebuilt from that topic at
 * start (sl_groups_replay); a record with an older generation than the one
 * held never wins. The table is updated when a commit is accepted, before
 * it is durable: a commit refused by the disk afterwards leaves a value the
 * member did consume up to (the CommitAck tells it), which a restart
 * forgets, so at-least-once holds either way.
 *
 * Ownership: sl_groups_create() returns a table sl_groups_destroy() frees.
 * Threads: every call takes the table's mutex; reactors (heartbeats,
 * commits, closed connections, the expiry tick) and HTTP threads (the
 * snapshot for status and metrics). Replay before the reactors start.
 * Nothing here runs on the produce path.
 */
#ifndef SL_GROUP_H
#define SL_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The offsets topic: made when the first group is used (a runtime topic
 * under the server's own prefix, topic.h SL_TOPIC_INTERNAL_PREFIX). */
#define SL_GROUP_TOPIC          "__sluice_offsets"
#define SL_GROUP_TOPIC_PARTS    4u
#define SL_GROUP_ID_LEN         32u /* a member id: 32 lowercase hex digits */
#define SL_GROUP_NAME_MAX       128u
#define SL_GROUP_SESSION_MS     10000u /* default session timeout */
#define SL_GROUP_SESSION_MIN_MS 100u
#define SL_GROUP_SESSION_MAX_MS 300000u
/* Heartbeat period asked of a settled member (at most; a third of its
 * session timeout when that is less) and of every member while partitions
 * move between members. */
#define SL_GROUP_HB_MS      500u
#define SL_GROUP_HB_FAST_MS 50u
/* Members of one group at most (each is a consumer process). */
#define SL_GROUP_MEMBERS_MAX 1024u

struct sl_groups;

int sl_groups_create(struct sl_groups **out);
void sl_groups_destroy(struct sl_groups *g);

/* Whether `s` (len bytes) may name a group: the alphabet of topic names. */
bool sl_group_name_ok(const char *s, size_t len);
/* The partition of the offsets topic (n_parts of them) holding a group's
 * records. */
uint32_t sl_group_offsets_part(const char *group, size_t len, uint32_t n_parts);

/* One heartbeat (a join when member_len is 0). */
struct sl_group_hb {
	const char *group;
	size_t group_len;
	const char *member;
	size_t member_len;
	uint32_t generation;
	const char *topic;
	size_t topic_len;
	uint32_t n_parts; /* the topic's partitions now */
	const uint32_t *owned;
	size_t n_owned;
	uint32_t session_ms; /* 0: SL_GROUP_SESSION_MS */
	bool leave;
	const char *client;
	size_t client_len;
	/* The connection it came on: the member goes when it closes. */
	uint32_t core, conn, conn_gen;
	uint64_t now_ns;
};

struct sl_group_grant {
	uint32_t partition;
	bool has_committed;
	uint64_t committed;
};

struct sl_group_hb_out {
	uint32_t error; /* 0 or a wire ErrorCode (ERR_UNKNOWN_MEMBER, ...) */
	char message[200];
	char member[SL_GROUP_ID_LEN + 1];
	uint32_t generation;
	uint32_t heartbeat_ms;
	uint32_t members;
	bool settled; /* no partition between members */
	/* The partitions the member should hold now: at most n_parts, into
	 * the caller's array `assigned` (room for n_parts). */
	struct sl_group_grant *assigned;
	uint32_t n_assigned;
};

/* 0 with *out filled (out->error may say a refusal), or -ENOMEM. */
int sl_groups_heartbeat(struct sl_groups *g, const struct sl_group_hb *in,
                        struct sl_group_hb_out *out);

/* A commit, checked and taken into the table: 0, or the wire ErrorCode
 * refusing it (message in msg). */
struct sl_group_commit {
	const char *group;
	size_t group_len;
	const char *member;
	size_t member_len;
	uint32_t generation;
	const char *topic;
	size_t topic_len;
	uint32_t partition;
	uint64_t offset;
	int64_t time_ms;
};
uint32_t sl_groups_commit(struct sl_groups *g, const struct sl_group_commit *c, char *msg,
                          size_t msglen);

/* The connection (core, conn, gen) closed: its members leave. */
void sl_groups_conn_gone(struct sl_groups *g, uint32_t core, uint32_t conn, uint32_t gen);
/* Members silent past their session timeout leave. Returns how many. */
uint32_t sl_groups_expire(struct sl_groups *g, uint64_t now_ns);

/* ---- the offsets topic's records (record.c) ---------------------------- */

/* One committed offset as the offsets topic holds it. Strings point into
 * the decoded bytes (not NUL-terminated). */
struct sl_group_record {
	const char *group;
	size_t group_len;
	const char *topic;
	size_t topic_len;
	uint32_t partition;
	uint64_t offset;
	uint32_t generation;
	int64_t time_ms;
};

/* Encodes r as a sluice.v1.Event into buf (cap bytes): its length, or
 * -ENOSPC. SL_GROUP_RECORD_MAX bytes always suffice. */
#define SL_GROUP_RECORD_MAX 1024u
int sl_group_record_encode(const struct sl_group_record *r, uint8_t *buf, size_t cap);
/* Decodes an event of the offsets topic: 0, or -EINVAL (not a commit
 * record, or a malformed one; err says why). Strings point into ev. */
int sl_group_record_decode(const uint8_t *ev, size_t len, struct sl_group_record *r, char *err,
                           size_t errlen);
/* A record read back from the offsets topic, into the table. */
int sl_groups_replay(struct sl_groups *g, const struct sl_group_record *r);

/* ---- what status and metrics show ------------------------------------- */

struct sl_group_snap_part {
	uint32_t partition;
	bool has_committed;
	uint64_t committed;
	int64_t commit_ms;
	char owner[SL_GROUP_ID_LEN + 1]; /* "" when nobody holds it */
};
struct sl_group_snap_topic {
	char name[SL_GROUP_NAME_MAX + 1];
	uint32_t n_parts;
	struct sl_group_snap_part *parts;
};
struct sl_group_snap_member {
	char id[SL_GROUP_ID_LEN + 1];
	char client[64];
	char topic[SL_GROUP_NAME_MAX + 1];
	uint32_t n_held;
	uint32_t session_ms;
};
struct sl_group_snap {
	char name[SL_GROUP_NAME_MAX + 1];
	uint32_t generation;
	uint64_t rebalances; /* assignments computed */
	uint64_t moved;      /* partitions taken from a live member for another */
	uint64_t reassigned; /* partitions of members that went, given to others */
	uint64_t expired;    /* members that timed out or whose connection closed */
	bool reconciling;    /* some partition between members */
	struct sl_group_snap_member *members;
	uint32_t n_members;
	struct sl_group_snap_topic *topics;
	uint32_t n_topics;
};
/* A copy of every group (malloc'd; sl_groups_snapshot_free). */
int sl_groups_snapshot(struct sl_groups *g, struct sl_group_snap **out, uint32_t *n);
void sl_groups_snapshot_free(struct sl_group_snap *v, uint32_t n);

/* ---- the assignment (assign.c, pure) ------------------------------------ */

/*
 * Spreads n partitions over the readers r[0..m) (member slots, m >= 1):
 * target[p] is a member slot or -1 on entry (the current target), the new
 * one on return (0, or -ENOMEM: unchanged). Each reader gets n/m, n%m of them one more (those that
 * held the most keep the extra one); a partition stays where it was while
 * its reader is under quota. `moved`: partitions whose target was a reader
 * and is now another; `orphans`: partitions whose target was a member not
 * among r (one that went).
 */
int sl_group_assign(int32_t *target, uint32_t n, const int32_t *r, uint32_t m, uint32_t *moved,
                    uint32_t *orphans);

#endif
