/* The file queue (io/mr_file_queue.h): files written whole, in order, by its thread;
 * a failed write reported by the next put or drain, naming the file; nothing written
 * after it; bounded memory. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "io/mr_file_queue.h"
#include "mr_test_util.h"

static char g_dir[64];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/mr-file-queue-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(g_dir);
}

/* A malloc'd buffer of n bytes, byte i = (seed + i) mod 251. */
static void *pattern(size_t n, int seed)
{
    unsigned char *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)((seed + i) % 251);
    return b;
}

/* Whether file `name` in g_dir holds exactly pattern(n, seed). */
static int holds(const char *name, size_t n, int seed)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    unsigned char *want = pattern(n, seed), *got = malloc(n + 1);
    size_t r = fread(got, 1, n + 1, f);
    fclose(f);
    int ok = r == n && memcmp(got, want, n) == 0;
    free(want);
    free(got);
    return ok;
}

static int files_in_dir(void)
{
    int n = 0;
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* Queues pattern(n, seed) as g_dir/name; the put's status. */
static int put_status(mr_file_queue *q, const char *name, size_t n, int seed)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return mr_file_queue_put(q, p, pattern(n, seed), n);
}

static void put(mr_file_queue *q, const char *name, size_t n, int seed, int want)
{
    int st = put_status(q, name, n, seed);
    ck_assert_msg(st == want, "put %s: %d (%s), wanted %d", name, st, mr_error_message(), want);
}

static int exists(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return access(p, F_OK) == 0;
}

START_TEST(files_are_written_whole)
{
    mr_file_queue *q;
    ck_assert_int_eq(mr_file_queue_alloc(&q, (size_t)1 << 20), MR_OK);
    char name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "f%02d", i);
        put(q, name, (size_t)i * 997, i, MR_OK);
    }
    ck_assert_int_eq(mr_file_queue_drain(q), MR_OK);
    /* drained: every file in place, whole, and no temporary name left */
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "f%02d", i);
        ck_assert_msg(holds(name, (size_t)i * 997, i), "%s not as queued", name);
    }
    ck_assert_int_eq(files_in_dir(), 40);
    /* the same path again: the later bytes win (queue order) */
    put(q, "f01", 5000, 7, MR_OK);
    put(q, "f01", 3000, 9, MR_OK);
    mr_file_queue_free(q); /* writes what is queued */
    ck_assert(holds("f01", 3000, 9));
    ck_assert_int_eq(files_in_dir(), 40);
}
END_TEST

START_TEST(a_tiny_bound_still_writes_everything)
{
    mr_file_queue *q;
    ck_assert_int_eq(mr_file_queue_alloc(&q, 16), MR_OK); /* every file exceeds it */
    char name[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "g%02d", i);
        put(q, name, 4096 + (size_t)i, i, MR_OK);
    }
    ck_assert_int_eq(mr_file_queue_drain(q), MR_OK);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "g%02d", i);
        ck_assert(holds(name, 4096 + (size_t)i, i));
    }
    mr_file_queue_free(q);
}
END_TEST

START_TEST(a_failed_write_is_reported_and_stops_the_queue)
{
    mr_file_queue *q;
    ck_assert_int_eq(mr_file_queue_alloc(&q, (size_t)1 << 20), MR_OK);
    put(q, "before", 100, 1, MR_OK);
    put(q, "no-such-dir/cell.h5", 100, 2, MR_OK); /* fails in the thread */
    int st = mr_file_queue_drain(q);
    ck_assert_int_eq(st, MR_EINPUT);
    ck_assert_msg(strstr(mr_error_message(), "no-such-dir/cell.h5") != NULL, "message: %s",
                  mr_error_message());
    /* later puts return the same error and write nothing */
    put(q, "after", 100, 3, MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no-such-dir/cell.h5"));
    ck_assert_int_eq(mr_file_queue_drain(q), MR_EINPUT);
    mr_file_queue_free(q);
    ck_assert(holds("before", 100, 1));
    ck_assert(!exists("after"));
    ck_assert_int_eq(files_in_dir(), 1);
}
END_TEST

/* Files queued behind a failed one are not written: a large first file keeps the thread
 * busy while the failing one and two more are queued behind it. */
START_TEST(nothing_queued_after_a_failure_is_written)
{
    mr_file_queue *q;
    ck_assert_int_eq(mr_file_queue_alloc(&q, (size_t)1 << 30), MR_OK);
    put(q, "big", (size_t)32 << 20, 5, MR_OK);
    put(q, "no-such-dir/y", 10, 6, MR_OK);
    int st1 = put_status(q, "after1", 10, 7), st2 = put_status(q, "after2", 10, 8);
    ck_assert_int_eq(mr_file_queue_drain(q), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no-such-dir/y"));
    mr_file_queue_free(q);
    ck_assert(holds("big", (size_t)32 << 20, 5));
    /* queued behind the failure (MR_OK) or refused by it: never written either way */
    ck_assert(st1 == MR_OK || st1 == MR_EINPUT);
    ck_assert(st2 == MR_OK || st2 == MR_EINPUT);
    ck_assert(!exists("after1") && !exists("after2"));
    ck_assert_int_eq(files_in_dir(), 1);
}
END_TEST

START_TEST(an_error_reaches_a_put_without_a_drain)
{
    mr_file_queue *q;
    ck_assert_int_eq(mr_file_queue_alloc(&q, (size_t)1 << 20), MR_OK);
    put(q, "no-such-dir/x", 10, 1, MR_OK);
    /* the thread fails the write sooner or later: a put sees it then */
    int st = MR_OK;
    for (int i = 0; i < 2000 && st == MR_OK; i++) {
        char name[32];
        snprintf(name, sizeof name, "later%d", i);
        st = put_status(q, name, 10, i);
        if (st == MR_OK) usleep(1000);
    }
    ck_assert_int_eq(st, MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no-such-dir/x"));
    mr_file_queue_free(q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("file_queue");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, files_are_written_whole);
    tcase_add_test(tc, a_tiny_bound_still_writes_everything);
    tcase_add_test(tc, a_failed_write_is_reported_and_stops_the_queue);
    tcase_add_test(tc, nothing_queued_after_a_failure_is_written);
    tcase_add_test(tc, an_error_reaches_a_put_without_a_drain);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
