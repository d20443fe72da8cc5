/*
 * filter: a transform that keeps the events matching its args (or, with
 * `drop: true`, everything else) and passes them on unchanged.
 *
 *   type:  NAME or [NAME, ...]   the event's type is one of them
 *   field: NAME, value: V        the event's data is a JSON object whose
 *                                top-level member NAME equals V: as text
 *                                when the member is a string, as a number
 *                                when it is a number (V must then be one)
 *   drop:  true | false          drop the matches instead (default false)
 *
 * Both conditions given: an event must meet both. Events whose data is not
 * JSON never match a field condition. An instance holds only its parsed args,
 * so it needs no snapshot: a transform restarts where its pipeline's
 * consumer offset says.
 */
#include <sluice/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILTER_VALUE_MAX 4096

struct filter {
	const struct sl_host *host;
	char **types;
	size_t *type_lens;
	size_t n_types;
	char *field;
	char *value;
	size_t value_len;
	bool value_is_num;
	double value_num;
	bool drop;
	char scratch[FILTER_VALUE_MAX];
};

static void filter_free(struct filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_types; i++)
		free(f->types[i]);
	free(f->types);
	free(f->type_lens);
	free(f->field);
	free(f->value);
	free(f);
}

static int add_type(struct filter *f, const char *t)
{
	char **v = realloc(f->types, (f->n_types + 1) * sizeof(*v));
	size_t *l;

	if (!v)
		return -ENOMEM;
	f->types = v;
	l = realloc(f->type_lens, (f->n_types + 1) * sizeof(*l));
	if (!l)
		return -ENOMEM;
	f->type_lens = l;
	if (!(f->types[f->n_types] = strdup(t)))
		return -ENOMEM;
	f->type_lens[f->n_types++] = strlen(t);
	return 0;
}

static int filter_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {"type", "field", "value", "drop", NULL};
	const struct sl_host *h = c->host;
	const char *bad = NULL, *s;
	struct filter *f;
	int drop = 0, ret;

	if (h->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen,
		         "unknown arg '%s' (filter takes type, field, value, drop)",
		         bad ? bad : "?");
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->host = h;
	const struct sl_plugin_args *types = h->arg_get(c->args, "type");
	if (types && h->arg_str(types, NULL, &s) == 0) {
		if ((ret = add_type(f, s)) < 0)
			goto fail;
	} else if (types && h->arg_len(types)) {
		for (size_t i = 0; i < h->arg_len(types); i++) {
			if (h->arg_str(h->arg_at(types, i), NULL, &s) < 0) {
				snprintf(c->err, c->errlen, "type[%zu] must be a string", i);
				ret = -EINVAL;
				goto fail;
			}
			if ((ret = add_type(f, s)) < 0)
				goto fail;
		}
	} else if (types && h->arg_str(types, NULL, &s) != -ENOENT) {
		snprintf(c->err, c->errlen, "type must be a name or a list of names");
		ret = -EINVAL;
		goto fail;
	}
	int has_field = h->arg_str(c->args, "field", &s);
	if (has_field == 0 && !(f->field = strdup(s))) {
		ret = -ENOMEM;
		goto fail;
	}
	int has_value = h->arg_str(c->args, "value", &s);
	if ((has_field == 0) != (has_value == 0) || has_field == -EINVAL || has_value == -EINVAL) {
		snprintf(c->err, c->errlen, "field and value go together, each a scalar");
		ret = -EINVAL;
		goto fail;
	}
	if (has_value == 0) {
		char *end;
		if (strlen(s) > FILTER_VALUE_MAX || !(f->value = strdup(s))) {
			snprintf(c->err, c->errlen, "value longer than %d bytes", FILTER_VALUE_MAX);
			ret = -EINVAL;
			goto fail;
		}
		f->value_len = strlen(s);
		f->value_num = strtod(s, &end);
		f->value_is_num = s[0] && !*end;
	}
	if (!f->n_types && !f->field) {
		snprintf(c->err, c->errlen, "filter needs a type or a field and value to match");
		ret = -EINVAL;
		goto fail;
	}
	if ((ret = h->arg_bool(c->args, "drop", &drop)) < 0 && ret != -ENOENT) {
		snprintf(c->err, c->errlen, "drop must be true or false");
		goto fail;
	}
	f->drop = drop;
	*inst = f;
	return 0;
fail:
	filter_free(f);
	return ret;
}

static void filter_destroy(void *inst)
{
	filter_free(inst);
}

static bool matches(struct filter *f, const struct sl_plugin_event *e)
{
	if (f->n_types) {
		bool hit = false;
		for (size_t i = 0; i < f->n_types && !hit; i++)
			hit = f->type_lens[i] == e->type_len &&
			      !memcmp(f->types[i], e->type, e->type_len);
		if (!hit)
			return false;
	}
	if (f->field) {
		size_t n;
		double d;
		int ret = f->host->json_get_str(e->data, e->data_len, f->field, f->scratch,
		                                sizeof(f->scratch), &n);
		if (ret == 0)
			return n == f->value_len && !memcmp(f->scratch, f->value, n);
		if (ret == -EINVAL && f->value_is_num &&
		    f->host->json_get_f64(e->data, e->data_len, f->field, &d) == 0)
			return d == f->value_num;
		return false;
	}
	return true;
}

static int filter_process(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                          struct sl_plugin_emitter *em)
{
	struct filter *f = inst;

	for (uint32_t i = 0; i < n; i++) {
		if (matches(f, &ev[i]) == f->drop)
			continue;
		int ret = f->host->emit_copy(em, NULL, 0, &ev[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static const struct sl_transform_ops filter_ops = {
    .struct_size = sizeof(struct sl_transform_ops),
    .create = filter_create,
    .destroy = filter_destroy,
    .process = filter_process,
};

static const struct sl_plugin_info filter_info =
    SL_PLUGIN_INFO_INIT(SL_PLUGIN_TRANSFORM, "filter", "1.0",
                        "keeps events by type or by a data field's value", &filter_ops);

SL_PLUGIN_DEFINE(filter_info)
