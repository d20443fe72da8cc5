/*
 * auth: the token file's rules, checks of right, wrong, prefix and longer
 * tokens, the Bearer header, reloads, and the client's SLUICE_TOKEN.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/base.h"

static char g_dir[64], g_path[128];

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-auth-test-XXXXXX");
	cr_assert_not_null(mkdtemp(g_dir));
	snprintf(g_path, sizeof(g_path), "%s/token", g_dir);
	unsetenv("SLUICE_TOKEN");
}

static void teardown(void)
{
	unlink(g_path);
	rmdir(g_dir);
}

TestSuite(auth, .init = setup, .fini = teardown);

static void write_file(const char *text, mode_t mode)
{
	unlink(g_path);
	int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

static bool ok(const struct sl_auth *a, const char *tok)
{
	return sl_auth_check(a, tok, strlen(tok));
}

#define TOK_A "0123456789abcdef0123"
#define TOK_B "fedcba9876543210fedc"

Test(auth, accepts_exactly_the_token)
{
	struct sl_auth *a;
	char err[256];
	write_file("  " TOK_A "  \n\n", 0600);
	cr_assert_eq(sl_auth_load(g_path, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert(ok(a, TOK_A));
	cr_assert_not(ok(a, ""));
	cr_assert_not(ok(a, TOK_B));
	cr_assert_not(ok(a, "0123456789abcdef012"), "a prefix");
	cr_assert_not(ok(a, TOK_A "4"), "one byte more");
	cr_assert_not(ok(a, TOK_A TOK_A), "the token twice");
	cr_assert_not(sl_auth_check(a, TOK_A, 0), "empty with the right bytes behind it");
	sl_auth_free(a);
}

static void refused(const char *text, mode_t mode, const char *why)
{
	struct sl_auth *a = NULL;
	char err[256] = "";
	write_file(text, mode);
	int ret = sl_auth_load(g_path, &a, err, sizeof(err));
	cr_assert_lt(ret, 0, "accepted %s", why);
	cr_assert_null(a);
	cr_assert_not_null(strstr(err, g_path), "the error must name the file: %s", err);
}

Test(auth, refuses_bad_files)
{
	refused(TOK_A "\n", 0644, "readable by others");
	refused(TOK_A "\n", 0640, "readable by the group");
	refused("\n  \n", 0600, "no token");
	refused("short\n", 0600, "a short token");
	refused("0123456789abcdef 0123\n", 0600, "a space inside");
	refused(TOK_A "\n" TOK_B "\n" TOK_A "x\n", 0600, "three tokens");
	refused("0123456789abcdef\x01"
	        "0123\n",
	        0600, "a control byte");
	struct sl_auth *a = NULL;
	char err[256];
	unlink(g_path);
	cr_assert_lt(sl_auth_load(g_path, &a, err, sizeof(err)), 0);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

Test(auth, two_tokens_while_rotating_and_reload)
{
	struct sl_auth *a;
	char err[256];
	write_file(TOK_A "\n", 0600);
	cr_assert_eq(sl_auth_load(g_path, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert(ok(a, TOK_A) && !ok(a, TOK_B));
	write_file(TOK_A "\n" TOK_B "\n", 0600);
	cr_assert_eq(sl_auth_reload(a, err, sizeof(err)), 0, "%s", err);
	cr_assert(ok(a, TOK_A) && ok(a, TOK_B), "both during the rotation");
	write_file(TOK_B "\n", 0600);
	cr_assert_eq(sl_auth_reload(a, err, sizeof(err)), 0, "%s", err);
	cr_assert(!ok(a, TOK_A) && ok(a, TOK_B), "the old one is gone");
	write_file(TOK_A "\n", 0644); /* bad: kept as it was */
	cr_assert_lt(sl_auth_reload(a, err, sizeof(err)), 0);
	cr_assert(!ok(a, TOK_A) && ok(a, TOK_B), "a bad file changed the tokens");
	sl_auth_free(a);
}

Test(auth, bearer_header)
{
	const char *tok;
	size_t len;
	cr_assert(sl_auth_bearer("Bearer " TOK_A, &tok, &len));
	cr_assert(len == strlen(TOK_A) && !memcmp(tok, TOK_A, len));
	cr_assert(sl_auth_bearer("bearer   " TOK_A "  ", &tok, &len), "scheme case, spaces");
	cr_assert(len == strlen(TOK_A));
	cr_assert_not(sl_auth_bearer(NULL, &tok, &len));
	cr_assert_not(sl_auth_bearer("", &tok, &len));
	cr_assert_not(sl_auth_bearer("Bearer", &tok, &len));
	cr_assert_not(sl_auth_bearer("Bearer ", &tok, &len));
	cr_assert_not(sl_auth_bearer("Basic " TOK_A, &tok, &len));
	cr_assert_not(sl_auth_bearer("Bearer" TOK_A, &tok, &len));
	cr_assert_not(sl_auth_bearer("Bearer " TOK_A " x", &tok, &len), "two tokens");
	cr_assert_not(sl_auth_bearer(TOK_A, &tok, &len));
}

Test(auth, client_token_env_before_file)
{
	char out[SL_AUTH_MAX_LEN + 1], err[256];
	write_file(TOK_A "\n" TOK_B "\n", 0644); /* a client's file: any mode */
	cr_assert_eq(sl_auth_client_token(NULL, out, sizeof(out), err, sizeof(err)), 0);
	cr_assert_eq(sl_auth_client_token(g_path, out, sizeof(out), err, sizeof(err)), 1, "%s",
	             err);
	cr_assert_str_eq(out, TOK_A, "the first token of the file");
	setenv("SLUICE_TOKEN", TOK_B, 1);
	cr_assert_eq(sl_auth_client_token(g_path, out, sizeof(out), err, sizeof(err)), 1);
	cr_assert_str_eq(out, TOK_B, "SLUICE_TOKEN first");
	unsetenv("SLUICE_TOKEN");
	cr_assert_lt(sl_auth_client_token("/nonexistent/tok", out, sizeof(out), err, sizeof(err)),
	             0);
	cr_assert_not_null(strstr(err, "/nonexistent/tok"), "%s", err);
}
