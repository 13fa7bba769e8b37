/* Fuzz harness: the JSON files of `moe-robust check` (reports/mr_gate.c over cJSON): the
 * baseline (`--baseline`) and the tolerance file (`--tolerance`), both read from the
 * same input.
 *
 * Properties:
 * - each reader returns MR_OK or MR_EINPUT, and an error names the file;
 * - a "malformed JSON" error's FILE:LINE:COL lies inside the text (line 1..lines, column
 *   1..that line's length + 1; issue #23: cJSON placed some errors one column late);
 * - an accepted baseline round-trips: the JSON mr_gate_baseline_json writes (what
 *   `moe-robust baseline` prints) loads again to the same metrics, bounds and directions;
 * - an accepted tolerance file has rules with a glob, finite abs and rel >= 0, and a
 *   known mode.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_util.h"
#include "reports/mr_gate.h"

/* The LINE:COL of "PATH:LINE:COL: malformed JSON" lies inside data[0..size). */
static void check_position(const char *msg, const char *path, const uint8_t *data, size_t size)
{
    /* only "PATH:LINE:COL: malformed JSON..." (other messages may quote the input, which
     * can hold that text too) */
    size_t n = strlen(path);
    if (strncmp(msg, path, n) != 0 || msg[n] != ':' || msg[n + 1] < '0' || msg[n + 1] > '9')
        return;
    char *end;
    long line = strtol(msg + n + 1, &end, 10);
    FUZZ_CHECK(*end == ':', "no LINE:COL: %s", msg);
    long col = strtol(end + 1, &end, 10);
    FUZZ_CHECK(strncmp(end, ": malformed JSON", 16) == 0, "no LINE:COL: %s", msg);
    /* the text as the reader saw it: up to the first NUL (refused before parsing) */
    size_t len = strnlen((const char *)data, size);
    long lines = 1, at = 0, line_len = -1;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || data[i] == '\n') {
            if (lines == line) line_len = (long)(i - (size_t)at);
            if (i < len) {
                lines++;
                at = (long)i + 1;
            }
        }
    }
    FUZZ_CHECK(line >= 1 && line <= lines, "line %ld of %ld: %s", line, lines, msg);
    FUZZ_CHECK(col >= 1 && col <= line_len + 1, "column %ld of a %ld-character line: %s", col,
               line_len, msg);
}

static int same_metric(const mr_gate_metric *a, const mr_gate_metric *b)
{
    return strcmp(a->key, b->key) == 0 && a->mean == b->mean && a->lo == b->lo &&
           a->hi == b->hi && a->has_ci == b->has_ci && a->better == b->better;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_tmp(data, size);
    mr_gate_set s;
    int st = mr_gate_load_baseline(path, &s);
    FUZZ_CHECK(st == MR_OK || st == MR_EINPUT, "baseline: status %d: %s", st, mr_error_message());
    if (st != MR_OK) {
        FUZZ_CHECK(strstr(mr_error_message(), path), "baseline: message without the file: %s",
                   mr_error_message());
        check_position(mr_error_message(), path, data, size);
    } else {
        FUZZ_CHECK(s.n > 0, "an accepted baseline without metrics");
        for (int i = 0; i < s.n; i++)
            FUZZ_CHECK(isfinite(s.v[i].mean) && s.v[i].lo <= s.v[i].hi, "metric %s: bounds",
                       s.v[i].key);
        char *text = mr_gate_baseline_json(&s);
        FUZZ_CHECK(text, "the baseline cannot be written");
        path = fuzz_write_tmp((const uint8_t *)text, strlen(text));
        mr_gate_set again;
        st = mr_gate_load_baseline(path, &again);
        FUZZ_CHECK(st == MR_OK, "the written baseline does not load: %s\n%s", mr_error_message(),
                   text);
        FUZZ_CHECK(again.n == s.n, "%d metrics written, %d read back", s.n, again.n);
        for (int i = 0; i < s.n; i++)
            FUZZ_CHECK(same_metric(&s.v[i], &again.v[i]), "metric %d (%s) read back differently",
                       i, s.v[i].key);
        mr_gate_set_free(&again);
        free(text);
        mr_gate_set_free(&s);
        path = fuzz_write_tmp(data, size);
    }

    mr_gate_tol t;
    mr_gate_tol_default(&t);
    st = mr_gate_load_tolerance(path, &t);
    FUZZ_CHECK(st == MR_OK || st == MR_EINPUT, "tolerance: status %d: %s", st,
               mr_error_message());
    if (st != MR_OK) {
        FUZZ_CHECK(strstr(mr_error_message(), path), "tolerance: message without the file: %s",
                   mr_error_message());
        check_position(mr_error_message(), path, data, size);
    } else {
        for (int i = -1; i < t.n; i++) {
            const mr_gate_rule *r = i < 0 ? &t.def : &t.rules[i];
            FUZZ_CHECK(r->match[0], "rule %d without a glob", i);
            FUZZ_CHECK(isfinite(r->abs) && r->abs >= 0 && isfinite(r->rel) && r->rel >= 0,
                       "rule %d: abs %g, rel %g", i, r->abs, r->rel);
            FUZZ_CHECK(r->mode == MR_MODE_FIXED || r->mode == MR_MODE_CI, "rule %d: mode %d", i,
                       r->mode);
        }
    }
    mr_gate_tol_free(&t);
    return 0;
}
