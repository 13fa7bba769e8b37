/* Fuzz harness: the INI reader of `moe-robust run` (harness/mr_runcfg.c over inih).
 *
 * Input: the bytes of a config file, parsed from memory (mr_runcfg_parse on fmemopen).
 * Properties:
 * - the parser returns MR_OK or MR_EINPUT, and an error names the config ("fuzz.ini");
 * - an accepted config round-trips: the resolved text mr_runcfg_write produces (what
 *   `run` stores as DIR/config.ini and `merge` reads back) parses again to the same
 *   configuration hash.
 */
#include <stdio.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_util.h"
#include "harness/mr_runcfg.h"

static int parse_bytes(mr_run_config *c, const void *data, size_t size)
{
    /* glibc's fmemopen refuses size 0: an empty file is "" with no bytes read */
    static const char empty[1] = "";
    FILE *fp = fmemopen(size ? (void *)data : (void *)empty, size ? size : 1, "r");
    FUZZ_CHECK(fp, "fmemopen failed");
    if (!size) fgetc(fp);
    int st = mr_runcfg_parse(c, fp, "fuzz.ini");
    fclose(fp);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mr_run_config c, again; /* ~300 KiB each: not on the stack */
    int st = parse_bytes(&c, data, size);
    FUZZ_CHECK(st == MR_OK || st == MR_EINPUT, "status %d: %s", st, mr_error_message());
    if (st != MR_OK) {
        FUZZ_CHECK(strstr(mr_error_message(), "fuzz.ini"), "message without the file: %s",
                   mr_error_message());
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    FUZZ_CHECK(mem, "open_memstream failed");
    mr_runcfg_write(&c, mem);
    fclose(mem);
    st = parse_bytes(&again, text, len);
    FUZZ_CHECK(st == MR_OK, "the resolved config does not parse: %s\n%s", mr_error_message(),
               text);
    FUZZ_CHECK(mr_runcfg_hash(&again) == mr_runcfg_hash(&c),
               "the resolved config parses to another configuration:\n%s", text);
    free(text);
    return 0;
}
