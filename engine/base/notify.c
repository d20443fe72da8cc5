/* sl_notify (base.h): a mutex and a monotonic-clock condition variable. */
#include "base/base.h"

int sl_notify_init(struct sl_notify *n)
{
	pthread_condattr_t ca;
	int ret = pthread_condattr_init(&ca);

	if (ret)
		return -ret;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&n->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		return -ret;
	pthread_mutex_init(&n->mu, NULL);
	return 0;
}

void sl_notify_destroy(struct sl_notify *n)
{
	pthread_mutex_destroy(&n->mu);
	pthread_cond_destroy(&n->cv);
}

void sl_notify_signal(struct sl_notify *n)
{
	pthread_mutex_lock(&n->mu);
	pthread_cond_broadcast(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

int sl_notify_wait(struct sl_notify *n, bool (*done)(void *arg), void *arg, uint64_t timeout_ns)
{
	uint64_t deadline = sl_now_ns() + timeout_ns;
	int ret = 0;

	pthread_mutex_lock(&n->mu);
	while (!done(arg)) {
		if (sl_now_ns() >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
		                      .tv_nsec = (long)(deadline % 1000000000u)};
		pthread_cond_timedwait(&n->cv, &n->mu, &ts);
	}
	pthread_mutex_unlock(&n->mu);
	return ret;
}
