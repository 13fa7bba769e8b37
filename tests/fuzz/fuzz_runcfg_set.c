/* Fuzz harness: `run --set SECTION.KEY=VALUE` overrides (harness/mr_runcfg.c).
 *
 * Input: up to MR_CFG_MAX_SET + 1 overrides, one per line (a NUL also ends one), applied
 * to a fixed valid config (tests/configs/tiny-grid.ini's text) parsed from memory.
 * Properties:
 * - the parser returns MR_OK or MR_EINPUT, and an error names the config ("fuzz.ini");
 * - an accepted config round-trips: the resolved text mr_runcfg_write produces (what
 *   `run` stores as DIR/config.ini and `merge` reads back, without the overrides) parses
 *   again to the same configuration hash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_util.h"
#include "harness/mr_runcfg.h"

static const char base[] =
    "[run]\nseed = 3\nbootstrap = 100\nbatch = 3\n\n[data]\npath = tests/fixtures/tiny-images.h5\n\n"
    "[model tiny]\npath = tests/fixtures/tiny-classify.h5\n"
    "checkpoint = tests/fixtures/tiny-classify.h5\ncheckpoint = tests/fixtures/tiny-classify-perturbed.h5\n\n"
    "[router softmax]\ntop_k = 1,2\n\n[router sim]\ntype = similarity\ntau = 2\n\n[router attention]\n\n"
    "[corruptions]\nnames = shot_noise, rotate, contrast, embed_gaussian\nseverities = 1-5\n";

static int parse_text(mr_run_config *c, const char *text, size_t len, int n, char **set)
{
    FILE *fp = fmemopen((void *)text, len, "r");
    FUZZ_CHECK(fp, "fmemopen failed");
    int st = mr_runcfg_parse_set(c, fp, "fuzz.ini", n, set);
    fclose(fp);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mr_run_config c, again; /* large: not on the stack */
    char *copy = malloc(size + 1);
    FUZZ_CHECK(copy, "out of memory");
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *set[MR_CFG_MAX_SET + 1];
    int n = 0;
    for (size_t i = 0, start = 0; i <= size && n < MR_CFG_MAX_SET + 1; i++)
        if (i == size || copy[i] == '\n' || copy[i] == '\0') {
            copy[i] = '\0';
            if (i > start || i < size) set[n++] = copy + start;
            start = i + 1;
        }
    int st = parse_text(&c, base, sizeof base - 1, n, set);
    FUZZ_CHECK(st == MR_OK || st == MR_EINPUT, "status %d: %s", st, mr_error_message());
    if (st != MR_OK) {
        FUZZ_CHECK(strstr(mr_error_message(), "fuzz.ini"), "message without the file: %s",
                   mr_error_message());
        free(copy);
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    FUZZ_CHECK(mem, "open_memstream failed");
    mr_runcfg_write(&c, mem);
    fclose(mem);
    st = parse_text(&again, text, len, 0, NULL);
    FUZZ_CHECK(st == MR_OK, "the resolved config does not parse: %s\n%s", mr_error_message(),
               text);
    FUZZ_CHECK(mr_runcfg_hash(&again) == mr_runcfg_hash(&c),
               "the resolved config parses to another configuration:\n%s", text);
    free(text);
    free(copy);
    return 0;
}
