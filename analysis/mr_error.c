#include "mr_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MR_ERROR_LEN 1024

static _Thread_local char mr_error_buf[MR_ERROR_LEN];

int mr_error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mr_error_buf, sizeof mr_error_buf, fmt, ap);
    va_end(ap);
    return code;
}

int mr_error_prefix(int code, const char *fmt, ...)
{
    char prefix[MR_ERROR_LEN], old[MR_ERROR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, mr_error_buf, sizeof old);
    /* "prefix: old", truncated to the buffer (messages are diagnostics, not data) */
    size_t n = strlen(prefix);
    if (n > MR_ERROR_LEN - 3) n = MR_ERROR_LEN - 3;
    memcpy(mr_error_buf, prefix, n);
    memcpy(mr_error_buf + n, ": ", 2);
    size_t room = MR_ERROR_LEN - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(mr_error_buf + n + 2, old, m);
    mr_error_buf[n + 2 + m] = '\0';
    return code;
}

const char *mr_error_message(void) { return mr_error_buf; }

int mr_error_exit_code(int status)
{
    if (status == MR_OK) return 0;
    return status == MR_EINPUT ? 2 : 1;
}
