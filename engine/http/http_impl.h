/* Internals shared by the files of http/. */
#ifndef SL_HTTP_IMPL_H
#define SL_HTTP_IMPL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

/* The dashboard page served at GET / (dashboard.c). */
extern const char sl__http_dashboard[];
extern const size_t sl__http_dashboard_len;

/*
 * conns.c: the connections of one HTTP port, admitted or over a limit,
 * their header deadlines and the watcher thread that enforces them (the
 * policy is at the top of http.h). Created before MHD starts, destroyed
 * after MHD_stop_daemon (which reports every connection closed first).
 * The callbacks run on MHD's threads; everything is under one mutex.
 */
struct sl__hconns;

int sl__hconns_create(const struct sl_http_limits *lim, struct sl__hconns **out);
void sl__hconns_destroy(struct sl__hconns *hc);
/* The slots MHD may open: the limit plus the reserve. */
unsigned sl__hconns_slots(const struct sl__hconns *hc);
/* MHD's idle timeout, seconds. */
unsigned sl__hconns_idle_s(const struct sl__hconns *hc);
/* MHD_OPTION_NOTIFY_CONNECTION and MHD_OPTION_NOTIFY_COMPLETED (cls: hc). */
void sl__hconns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
void sl__hconns_completed(void *cls, struct MHD_Connection *c, void **req,
                          enum MHD_RequestTerminationCode toe);
/* At the first call for a request (its header is in): true when the
 * request is answered here (503, or closed) with *ret for MHD; false when
 * it goes on to the routes. */
bool sl__hconns_admit(struct sl__hconns *hc, struct MHD_Connection *c, const char *url,
                      enum MHD_Result *ret);
void sl__hconns_stats(struct sl__hconns *hc, struct sl_http_stats *out);
/* Appends the sluice_http_* figures to a /metrics body (a no-op when the
 * body is NULL or cannot grow). */
void sl__hconns_metrics_append(struct sl__hconns *hc, struct sl_http_reply *r);

#endif
