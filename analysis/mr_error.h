/* mr_error.h — one status convention for the whole suite (GSL style).
 *
 * Every fallible function returns an int status: MR_OK (0) or one of the codes
 * below, after recording a human-readable message with mr_error_set(). The
 * message names the file, HDF5 path, key or value at fault. Messages are kept
 * per thread, so worker threads never overwrite each other's diagnosis.
 */
#ifndef MR_ERROR_H
#define MR_ERROR_H

enum mr_status {
    MR_OK = 0,
    MR_EINPUT = 2,   /* bad user input: file contents, arguments, config (CLI exit 2) */
    MR_ENOMEM = 3,   /* allocation failed (CLI exit 1) */
    MR_EIO = 4,      /* runtime I/O failure on a well-formed request (CLI exit 1) */
    MR_EFAILED = 5   /* any other runtime failure (CLI exit 1) */
};

/* Record a printf-style message for the calling thread; returns `code` so that
 * callers can write `return mr_error_set(MR_EINPUT, "...")`. */
int mr_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix the current message with "prefix: " (e.g. the file name). Returns code. */
int mr_error_prefix(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The calling thread's last message ("" if none). Owned by the library. */
const char *mr_error_message(void);

/* Process exit code for a status: 0 ok, 2 bad input, 1 runtime failure. */
int mr_error_exit_code(int status);

/* Return `code` with a message when `cond` is false. */
#define MR_REQUIRE(cond, code, ...)                  \
    do {                                             \
        if (!(cond)) return mr_error_set((code), __VA_ARGS__); \
    } while (0)

/* Propagate a non-zero status. */
#define MR_TRY(expr)                                 \
    do {                                             \
        int mr_try_status_ = (expr);                 \
        if (mr_try_status_ != MR_OK) return mr_try_status_; \
    } while (0)

#endif
