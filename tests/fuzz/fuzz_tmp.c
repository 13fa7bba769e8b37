/* The fuzz harnesses' temporary input file (fuzz_util.h). */
#include <unistd.h>

#include "fuzz_util.h"

static char tmp_path[256];

/* a crash (abort) skips this: libFuzzer then leaves one small file in $TMPDIR */
static void remove_tmp(void)
{
    if (tmp_path[0]) unlink(tmp_path);
}

/* A new file (a new inode) for every input: libhdf5 1.10 keeps the file of a close that
 * failed open (its ID stays, HDFFV-11052), and would hand that stale open file back to
 * the next input written at the same path and inode instead of reading the new bytes. */
const char *fuzz_write_tmp(const uint8_t *data, size_t size)
{
    if (tmp_path[0]) unlink(tmp_path);
    else atexit(remove_tmp);
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/mr-fuzz-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmp_path);
    FUZZ_CHECK(fd >= 0, "cannot create %s", tmp_path);
    FILE *fp = fdopen(fd, "wb");
    FUZZ_CHECK(fp, "cannot write %s", tmp_path);
    FUZZ_CHECK(fwrite(data, 1, size, fp) == size && fclose(fp) == 0, "short write");
    return tmp_path;
}
