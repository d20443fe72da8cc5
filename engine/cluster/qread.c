/*
 * A quorum read's choice (cluster.h, sl_cluster_qread_*): what a replica's
 * answer says, and which answer of a majority the read may give. Pure, so
 * the rule is tested without a cluster and the parser is fuzzed.
 *
 * Why the answer sees every acked write (W + R > N). Each replica r that
 * answers says `applied` (its model holds every event below it) and
 * `holds` (every event it holds that may have been acked is below it: a
 * leader's HW, since it acks nothing past it; any other replica's own
 * durable end, since it may hold acked events before it hears that they
 * are). An event acked before the read began is durable on a write quorum
 * W; the replicas that answered are a majority R; W and R meet in some r,
 * whose `holds` is past the event. So an answer whose `applied` reaches
 * `need` = max over R of `holds` reflects it. Offsets compare across
 * replicas because a model applies only below the HW, which no replica
 * ever cuts (a cut below what readers were shown is refused): every model
 * is a prefix of the one committed log.
 *
 * The most applied answer of R usually reaches `need` (the leader applies
 * within a turn of its HW moving). When it does not (a follower holds
 * events it has not heard are acked, or the leader's model is a step
 * behind), the read asks again with min_offset = need - 1, and any
 * answer then reaches it: the model waited for it.
 */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "cluster/cluster_impl.h"

static bool sl__qread_u64(struct json_object *o, const char *name, uint64_t *v)
{
	struct json_object *f;
	if (!json_object_object_get_ex(o, name, &f) || !json_object_is_type(f, json_type_int))
		return false;
	/* json-c parses above INT64_MAX as INT64_MAX: offsets never get there. */
	int64_t x = json_object_get_int64(f);
	if (x < 0 || x == INT64_MAX)
		return false;
	*v = (uint64_t)x;
	return true;
}

int sl_cluster_qread_parse(int status, const char *body, size_t len, struct sl_cluster_qreply *out)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;
	int ret = -EPROTO;

	memset(out, 0, sizeof(*out));
	out->status = status;
	if (status != 200 && status != 404)
		return -EAGAIN;
	if (!body || !len || len > SL_CLUSTER_QREAD_BODY_MAX)
		return -EPROTO;
	if (!(tok = json_tokener_new()))
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, body, (int)len);
	/* One object and nothing after it but white space. */
	if (o && json_tokener_get_error(tok) == json_tokener_success &&
	    json_object_is_type(o, json_type_object)) {
		size_t used = json_tokener_get_parse_end(tok);
		while (used < len && (body[used] == ' ' || body[used] == '\n' ||
		                      body[used] == '\r' || body[used] == '\t'))
			used++;
		if (used == len && sl__qread_u64(o, "applied", &out->applied) &&
		    sl__qread_u64(o, "holds", &out->holds)) {
			out->answered = true;
			ret = 0;
		}
	}
	json_object_put(o);
	json_tokener_free(tok);
	return ret;
}

int sl_cluster_qread_pick(const struct sl_cluster_qreply *r, uint32_t n, uint32_t n_replicas,
                          uint64_t min_need, uint64_t *need)
{
	uint32_t answered = 0;
	int best = -1;
	uint64_t nd = min_need;

	for (uint32_t i = 0; i < n; i++) {
		if (!r[i].answered)
			continue;
		answered++;
		if (r[i].holds > nd)
			nd = r[i].holds;
		if (best < 0 || r[i].applied > r[best].applied)
			best = (int)i;
	}
	*need = nd;
	if (!n_replicas || answered < n_replicas / 2 + 1)
		return -EAGAIN;
	return best;
}
