/* mr_fatal.c — a message instead of a bare "Segmentation fault" when libhdf5 crashes on a
 * corrupt input file (mr_fatal.h). */
#define _XOPEN_SOURCE 700 /* sigaltstack, SA_ONSTACK */
#include "mr_fatal.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../io/mr_h5.h"

/* libhdf5 1.10 decodes a corrupted global heap out of bounds (H5HG_read, behind a
 * variable-length string attribute: docs/reliability.md, tests/fuzz/hdf5-known/); the
 * process dies of SIGSEGV inside libhdf5 and no error path of ours runs. */

static void put(const char *s) /* async-signal-safe: write(2) only */
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

static void on_fatal(int sig)
{
    const char *file = mr_h5_last_input();
    if (!file) { /* no HDF5 input was read: a bug of ours, die as the signal would */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    put("moe-robust: ");
    put(file);
    put(sig == SIGSEGV ? ": fatal SIGSEGV" : sig == SIGBUS ? ": fatal SIGBUS" : ": fatal SIGFPE");
    put(" after opening this HDF5 file, the last input read: libhdf5 crashes on some "
        "corrupt HDF5 files (docs/reliability.md); check the file (h5dump), and if it is "
        "sound, report this as a bug of moe-robust\n");
    _exit(2);
}

#if defined(__SANITIZE_ADDRESS__)
#define MR_FATAL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MR_FATAL_ASAN 1
#endif
#endif
#ifndef MR_FATAL_ASAN
#define MR_FATAL_ASAN 0
#endif

void mr_fatal_install(void)
{
    if (MR_FATAL_ASAN) return; /* ASan reports the fault itself, with its stack */
    /* a stack of its own: a fault from a stack overflow must still print */
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND; /* a fault inside the handler kills at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
}
