/*
 * Topics at runtime in cluster mode: etcd is their registry. Each one's
 * definition (one topic in topics.yaml's form, server/topics.c sl__rt_def)
 * lives under rtopics/<t> (cluster/cluster.h); the node that is asked to
 * create, alter or delete a topic writes there first, under the registry's
 * mutex, then does it here. Every node keeps a copy of each: when the set
 * changes (the cluster thread's on_rtopics), and once it joined, the admin
 * thread makes the topics it lacks, alters those whose definition changed
 * and deletes those the cluster deleted (a tombstone stays in the registry,
 * so a node that was down deletes its copy too; one the registry does not
 * list at all is kept: an etcd that lost its data must not delete topics)
 * (sl__topics_sync), through
 * the same calls with the definition in hand (nothing written to etcd
 * again). A node's own data_dir/topics.yaml stays a copy, so a restart
 * opens the topics it had before it rejoins; a topic deleted while it was
 * down goes at its first sync.
 *
 * Placement and roles are the cluster's as for the config's topics: a new
 * topic's partitions get replication states before the reactors adopt
 * them, the cluster places it (sl_cluster_topics), and the states etcd
 * holds make roles (server/cluster.c).
 *
 * Threads: the admin thread (sync); the put/delete wrappers on whichever
 * thread makes an admin call (HTTP, admin).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "config/config.h"
#include "server/cluster_impl.h"
#include "server/server.h"

static struct sl_cluster *sl__c(struct sl_server *srv, char *err, size_t errlen)
{
	struct sl_cluster *c =
	    srv->cl ? atomic_load_explicit(&srv->cl->c, memory_order_acquire) : NULL;
	if (!c)
		snprintf(err, errlen, "this node has not joined its cluster (yet)");
	return c;
}

int sl__cluster_rt_put(struct sl_server *srv, const char *name, const char *def, size_t len,
                       bool create, char *err, size_t errlen)
{
	struct sl_cluster *c = sl__c(srv, err, errlen);
	return c ? sl_cluster_rtopic_put(c, name, def, len, create, err, errlen) : -EAGAIN;
}

int sl__cluster_rt_delete(struct sl_server *srv, const char *name, uint32_t partitions, char *err,
                          size_t errlen)
{
	struct sl_cluster *c = sl__c(srv, err, errlen);
	return c ? sl_cluster_rtopic_delete(c, name, partitions, err, errlen) : -EAGAIN;
}

/* This node's definition of runtime topic `name` as the registry's text,
 * or NULL (none, or out of memory). */
static char *sl__local_def(struct sl_server *srv, const char *name, size_t *len)
{
	char *def = NULL;
	pthread_mutex_lock(&srv->rt.mu);
	for (size_t i = 0; i < srv->rt.n; i++)
		if (!strcmp(srv->rt.v[i].name, name) && sl__rt_def(&srv->rt.v[i], &def, len) < 0)
			def = NULL;
	pthread_mutex_unlock(&srv->rt.mu);
	return def;
}

static void sl__say(const char *what, const char *name, int status, char *body)
{
	if (status >= 300)
		fprintf(stderr, "sluiced: cluster topic %s: %s here: %d %s\n", name, what, status,
		        body ? body : "");
	else
		fprintf(stderr, "sluiced: cluster topic %s: %s here\n", name, what);
	free(body);
}

void sl__topics_sync(struct sl_server *srv)
{
	char err[256];
	struct sl_cluster *c = sl__c(srv, err, sizeof(err));
	struct sl_cluster_rtopic *v = NULL;
	char **mine = NULL;
	size_t n = 0, n_mine = 0;

	if (!c || sl_cluster_rtopics_get(c, &v, &n) < 0 || sl__rt_names(srv, &mine, &n_mine) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char *body = NULL;
		size_t blen, llen = 0;
		struct sl_topic *t = sl_topics_find(&srv->topics, v[i].name, strlen(v[i].name));
		if (v[i].len == strlen(SL_CLUSTER_RTOPIC_GONE) &&
		    !memcmp(v[i].def, SL_CLUSTER_RTOPIC_GONE, v[i].len)) {
			if (!t || !t->runtime)
				continue;
			int st =
			    sl__topic_delete(srv, v[i].name, strlen(v[i].name), true, &body, &blen);
			if (st != 404)
				sl__say("deleted", v[i].name, st, body);
			else
				free(body);
			continue;
		}
		if (!t) {
			int st =
			    sl__topic_create(srv, NULL, 0, v[i].def, v[i].len, false, &body, &blen);
			/* 409: made meanwhile (by the admin call that wrote it). */
			if (st != 409)
				sl__say("made", v[i].name, st, body);
			else
				free(body);
			continue;
		}
		if (!t->runtime) {
			fprintf(stderr,
			        "sluiced: cluster topic %s: this node's config has a topic of that "
			        "name; the config's is used here\n",
			        v[i].name);
			continue;
		}
		char *local = sl__local_def(srv, v[i].name, &llen);
		if (local && (llen != v[i].len || memcmp(local, v[i].def, llen))) {
			int st = sl__topic_alter(srv, v[i].name, strlen(v[i].name), NULL, 0,
			                         v[i].def, v[i].len, &body, &blen);
			sl__say("altered", v[i].name, st, body);
		}
		free(local);
	}
	/* A copy the registry does not list at all (not even deleted): kept,
	 * since an etcd that lost its data must not cost this node its topics;
	 * `sluice topic delete` removes it. Said once per run. */
	for (size_t k = 0; k < n_mine; k++) {
		bool there = false;
		for (size_t i = 0; i < n && !there; i++)
			there = !strcmp(v[i].name, mine[k]);
		if (!there && !srv->cl->unlisted_said) {
			fprintf(stderr,
			        "sluiced: topic %s was created at runtime but the cluster does not "
			        "list it: kept here (sluice topic delete removes it)\n",
			        mine[k]);
			srv->cl->unlisted_said = true;
		}
	}
out:
	sl_cluster_rtopics_free(v, n);
	for (size_t k = 0; k < n_mine; k++)
		free(mine[k]);
	free(mine);
}
