/* mr_test_tmp.h — temporary files for the Check tests (test code only). Include it after
 * the feature macros that declare mkstemp (_POSIX_C_SOURCE 200809L or _DEFAULT_SOURCE). */
#ifndef MR_TEST_TMP_H
#define MR_TEST_TMP_H

#include <check.h>
#include <stdlib.h>
#include <unistd.h>

/* A new empty file from the mkstemp template tmpl ("/tmp/NAME-XXXXXX"), whose name it
 * receives; the caller unlinks it. */
static inline void mr_test_temp_file(char *tmpl)
{
    int fd = mkstemp(tmpl);
    ck_assert_msg(fd >= 0, "mkstemp %s failed", tmpl);
    close(fd);
}

#endif
