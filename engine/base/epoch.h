/*
 * base/epoch.h: epoch-based reclamation (ck_epoch) for data that one thread
 * changes while other threads read it without locks.
 *
 * Used for read models that answer queries on the HTTP threads while their
 * reactor applies events (plugins that declare SL_PROJECTION_CONCURRENT_QUERY).
 * A reader brackets its reads with sl_epoch_enter / sl_epoch_leave; a writer
 * that unlinks memory a reader may still hold hands it to sl_epoch_retire,
 * and the memory is freed only once every read section that could have seen
 * it has ended. Readers never wait; writers never wait either (sl_epoch_poll
 * frees what is safe and returns), except in sl_epoch_barrier, meant for
 * closing.
 *
 * Threads and ownership:
 *  - struct sl_epoch: one per server, created before any record and destroyed
 *    after every record is back (sl_epoch_rec_put) and idle.
 *  - A record (struct sl_epoch_rec) is used by one thread at a time: a reader
 *    takes one per read (sl_epoch_rec_get, cheap: ck_epoch_recycle finds a
 *    free one) and gives it back; a writer keeps one for as long as it
 *    retires (a plugin instance keeps one from create to destroy; whichever
 *    thread calls the instance uses it, one at a time). Records are never
 *    freed before the epoch: ck keeps them on its list.
 *  - sl_epoch_rec_get may be called from any thread concurrently; it
 *    allocates (under a mutex) only when every record is in use.
 */
#ifndef SL_BASE_EPOCH_H
#define SL_BASE_EPOCH_H

#include <stdbool.h>

struct sl_epoch;
struct sl_epoch_rec;

int sl_epoch_create(struct sl_epoch **out);
/* Every record must be back and nothing pending (a writer's barrier). */
void sl_epoch_destroy(struct sl_epoch *e);

/* A free record of e, or NULL when memory runs out. */
struct sl_epoch_rec *sl_epoch_rec_get(struct sl_epoch *e);
/* Gives a record back. A writer's must have nothing pending (barrier first). */
void sl_epoch_rec_put(struct sl_epoch_rec *r);

/* A read section: what a reader loads between the two stays allocated. */
void sl_epoch_enter(struct sl_epoch_rec *r);
void sl_epoch_leave(struct sl_epoch_rec *r);

/*
 * Writer: free_fn(ptr) is called once no read section that began before
 * this call is still open, from a later sl_epoch_poll or sl_epoch_barrier on
 * this record (so on the writer's own thread). When the host cannot allocate
 * the small note it keeps, it waits for the readers here and frees at once.
 */
void sl_epoch_retire(struct sl_epoch_rec *r, void *ptr, void (*free_fn)(void *ptr));
/* Frees what is safe now; true while something is still pending. */
bool sl_epoch_poll(struct sl_epoch_rec *r);
/* Waits until every read section open now has ended, then frees everything
 * this record retired. Blocks (briefly: read sections are short). */
void sl_epoch_barrier(struct sl_epoch_rec *r);

#endif
