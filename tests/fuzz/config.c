/*
 * Fuzz target for the configuration loader: arbitrary bytes must never crash
 * it or leak. Whatever loads must also print (sl_config_dump) as YAML that
 * loads back to the same configuration, and every tree must print and parse
 * back to itself: the printers are checked against the parser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static char *dump_cfg(const struct sl_config *cfg, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		abort();
	if (sl_config_dump(cfg, f))
		abort();
	fclose(f);
	return buf;
}

static char *dump_node(const struct sl_config_node *n, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		abort();
	if (sl_config_node_dump(n, f))
		abort();
	fclose(f);
	return buf;
}

static void check_tree(const char *data, size_t size)
{
	struct sl_config_node *t1 = NULL, *t2 = NULL;
	char err[256], *d1, *d2;
	size_t l1, l2;

	if (sl_config_node_parse(data, size, "fuzz", &t1, err, sizeof(err)))
		return;
	d1 = dump_node(t1, &l1);
	if (sl_config_node_parse(d1, l1, "dump", &t2, err, sizeof(err))) {
		fprintf(stderr, "tree dump does not parse: %s\n%s\n", err, d1);
		abort();
	}
	d2 = dump_node(t2, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1)) {
		fprintf(stderr, "tree dump differs:\n%s\n---\n%s\n", d1, d2);
		abort();
	}
	free(d1);
	free(d2);
	sl_config_node_free(t1);
	sl_config_node_free(t2);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct sl_config c1, c2;
	char err[512], *d1, *d2;
	size_t l1, l2;

	check_tree((const char *)data, size);
	if (sl_config_load_string((const char *)data, size, "/base", &c1, err, sizeof(err))) {
		if (!err[0] || c1.topics || c1.data_dir)
			abort(); /* failures explain themselves and leave nothing */
		return 0;
	}
	d1 = dump_cfg(&c1, &l1);
	if (sl_config_load_string(d1, l1, NULL, &c2, err, sizeof(err))) {
		fprintf(stderr, "config dump does not load: %s\n%s\n", err, d1);
		abort();
	}
	d2 = dump_cfg(&c2, &l2);
	if (l1 != l2 || memcmp(d1, d2, l1)) {
		fprintf(stderr, "config dump differs:\n%s\n---\n%s\n", d1, d2);
		abort();
	}
	free(d1);
	free(d2);
	sl_config_free(&c1);
	sl_config_free(&c2);
	return 0;
}
