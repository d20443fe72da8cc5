/* A replicated partition's high watermark, its fetched appends and its
 * truncation (topic.h, struct sl_prepl). */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/varint.h"
#include "proto/proto.h"

#include "topic/topic.h"
#include "topic/topic_impl.h"

uint64_t sl_prepl_hw(struct sl_prepl *r, uint64_t local_durable)
{
	uint64_t v[SL_REPL_MAX];
	uint32_t n = r->n_peers, isr = atomic_load_explicit(&r->isr_mask, memory_order_acquire);
	uint32_t in_sync = 0;
	uint64_t low = UINT64_MAX;

	if (n <= 1)
		return local_durable;
	for (uint32_t i = 0; i < n; i++) {
		/* The leader holds at least what any follower does: followers
		 * fetch only what the leader has durably. */
		v[i] = i == r->self
		           ? local_durable
		           : atomic_load_explicit(&r->peers[i].durable, memory_order_acquire);
		if (v[i] > local_durable)
			v[i] = local_durable;
		if (isr & (1u << i) || i == r->self) {
			in_sync++;
			if (v[i] < low)
				low = v[i];
		}
	}
	if (r->acks == SL_REPL_ACKS_ALL)
		return in_sync >= r->min_insync ? low : 0;
	/* Quorum (and leader): the end a majority holds, the (n/2+1)-th largest. A
	 * partial selection sort: n is at most SL_REPL_MAX. */
	uint32_t k = n / 2 + 1;
	for (uint32_t i = 0; i < k; i++) {
		uint32_t best = i;
		for (uint32_t j = i + 1; j < n; j++)
			if (v[j] > v[best])
				best = j;
		uint64_t t = v[i];
		v[i] = v[best];
		v[best] = t;
	}
	return v[k - 1];
}

/*
 * Each batch's leader epoch agrees with the epoch file (its copy in `rp`,
 * which the leader's answer extended first): the epoch whose range holds
 * the batch's first offset. An 'SLB1' batch (epoch 0, written before
 * batches carried one) and a batch older than the copy holds are not
 * checked. -EPROTO: a leader that sent batches of another epoch than it
 * said. Owner thread (the copy's only writer: read without its lock).
 */
static int sl__leader_epochs_ok(const struct sl_prepl *rp, const uint8_t *bytes, size_t len)
{
	for (size_t pos = 0; pos + SL_LOG_BATCH_HDR_V1 <= len;) {
		uint32_t hdr = sl_batch_hdr_size(sl_get_le32(bytes + pos + SL_BATCH_MAGIC));
		if (!hdr || pos + hdr > len)
			return 0; /* not a batch: sl_log_append_raw says so */
		struct sl_bhdr b;
		sl_batch_hdr_decode(bytes + pos, &b);
		uint32_t want = 0;
		for (uint32_t i = 0; i < rp->n_epochs && rp->epoch_starts[i] <= b.base_offset; i++)
			want = rp->epochs[i];
		if (b.leader_epoch && rp->n_epochs && rp->epoch_starts[0] <= b.base_offset &&
		    b.leader_epoch != want)
			return -EPROTO;
		pos += sl_batch_span_of(&b);
	}
	return 0;
}

/* A follower records the ids of its leader's batches as it appends them,
 * with the leader's append time: when it leads, it answers the same. The
 * records were checked by sl_log_append_raw. */
static void sl__raw_ids(struct sl_partition *p, const uint8_t *batch, const struct sl_bhdr *b)
{
	const uint8_t *r = batch + b->hdr_len, *e = r + b->len;
	for (uint32_t i = 0; i < b->count; i++) {
		uint64_t size = 0, delta = 0;
		struct sl_event_view ev;
		r += sl_varint_get(r, e, &size);
		r += sl_varint_get(r, e, &delta);
		if (sl_event_scan(r, (size_t)size, &ev) == 0 && ev.id)
			(void)sl_idwin_add(p->idw, ev.id, b->base_offset + i, b->time_ms);
		r += size;
	}
}

int sl_partition_append_raw(struct sl_partition *p, const uint8_t *bytes, size_t len, uint64_t *end)
{
	int ret = sl__leader_epochs_ok(p->repl, bytes, len);
	if (ret < 0) {
		*end = sl_log_end(p->log);
		return ret;
	}
	ret = sl_log_append_raw(p->log, bytes, len, end);
	if (ret < 0)
		return ret;
	len = (size_t)ret;
	/* The producer sequences travel in the batches: recording them here
	 * lets this replica answer duplicates when it leads (issue 16, item
	 * 6). sl_log_append_raw checked every batch and record already. */
	size_t pos = 0;
	while (pos < len) {
		struct sl_bhdr b;
		sl_batch_hdr_decode(bytes + pos, &b);
		if (b.producer_id) {
			const uint8_t *r = bytes + pos + b.hdr_len, *e = r + b.len;
			for (uint32_t i = 0; i < b.count; i++) {
				uint64_t size = 0, delta = 0;
				r += sl_varint_get(r, e, &size);
				r += sl_varint_get(r, e, &delta);
				r += size;
				if (b.time_ms > 0)
					sl_dedup_set_time(p->dd, (uint64_t)b.time_ms);
				if (sl_dedup_record(p->dd, b.producer_id, b.epoch,
				                    b.base_seq + delta, b.base_offset + i) < 0)
					p->dd_untracked_stored++;
			}
		}
		if (p->idw)
			sl__raw_ids(p, bytes + pos, &b);
		pos += sl_batch_span_of(&b);
	}
	return ret;
}

int sl_partition_truncate(struct sl_partition *p, uint64_t offset, struct sl_producers *prods,
                          void (*fn)(void *arg, const struct sl_ack_ref *ref), void *arg, char *err,
                          size_t errlen)
{
	struct sl_prepl *rp = p->repl;
	uint64_t shown = atomic_load_explicit(&p->durable_pub, memory_order_relaxed);

	err[0] = 0;
	if (offset >= sl_log_end(p->log))
		return 0;
	if (offset < shown) {
		snprintf(err, errlen,
		         "the cut at %" PRIu64
		         " would take back events readers were shown (below %" PRIu64 ")",
		         offset, shown);
		return -ERANGE;
	}
	int ret = sl_log_truncate(p->log, offset, err, errlen);
	/* Views of the folder hold bytes and positions of what was cut (read
	 * ahead; positions of batches past it): they start over before they
	 * read past the cut (log.h). Also after a failure, which may come
	 * after the cut; a needless restart costs a view one listing. */
	if (ret != -EBUSY)
		atomic_fetch_add_explicit(&p->cuts, 1, memory_order_release);
	if (ret < 0)
		return ret;
	/* The log is cut: from here on the partition must follow it, so the
	 * rest is done whatever fails (a failure stops the partition). */
	if ((ret = sl_epochs_truncate_from(rp->epoch_file, offset)) < 0)
		snprintf(err, errlen, "leader-epoch file: %s", sl_strerror(ret));
	pthread_mutex_lock(&rp->mu);
	while (rp->n_epochs && rp->epoch_starts[rp->n_epochs - 1] >= offset)
		rp->n_epochs--;
	pthread_mutex_unlock(&rp->mu);
	/* Waiting acks past the cut will never come: their events are gone. */
	uint32_t kept = p->w_head;
	for (uint32_t i = p->w_head; i != p->w_tail; i++) {
		struct sl_ack_ref *r = &p->waiting[i & (p->w_cap - 1)];
		if (r->offset >= offset)
			fn(arg, r);
		else
			p->waiting[kept++ & (p->w_cap - 1)] = *r;
	}
	p->w_tail = kept;
	sl_dedup_destroy(p->dd);
	p->dd = NULL;
	char derr[256] = "";
	/* The ids are cut, not rebuilt: those below the cut are the same. */
	if (p->idw)
		sl_idwin_truncate_from(p->idw, offset);
	int dret = sl__part_open_producers(p, prods, false, derr, sizeof(derr));
	if (dret < 0) {
		if (ret == 0)
			snprintf(err, errlen, "producer sequences: %s", derr);
		ret = ret ? ret : dret;
		/* Never without a table: the caller stops the partition. */
		if (!p->dd)
			(void)sl_dedup_create(&(struct sl_dedup_opts){.window = SL_PRODUCER_WINDOW},
			                      &p->dd);
	}
	atomic_store_explicit(&rp->local_end, sl_log_end(p->log), memory_order_release);
	atomic_store_explicit(&rp->local_durable, sl_log_durable(p->log), memory_order_release);
	return ret;
}
