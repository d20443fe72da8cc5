/* Internals shared by the files of http/. */
#ifndef SL_HTTP_IMPL_H
#define SL_HTTP_IMPL_H

#include <stddef.h>

/* The dashboard page served at GET / (dashboard.c). */
extern const char sl__http_dashboard[];
extern const size_t sl__http_dashboard_len;

#endif
