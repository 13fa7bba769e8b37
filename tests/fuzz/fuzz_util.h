/* fuzz_util.h — shared by the fuzz harnesses (tests/fuzz/fuzz_*.c, docs/reliability.md).
 *
 * A harness defines LLVMFuzzerTestOneInput. It is linked either with libFuzzer
 * (-fsanitize=fuzzer, scripts/fuzz) or with replay.c, a plain main() that feeds it the
 * committed corpus in every build. A violated property aborts: libFuzzer saves the input
 * as a crash, the replay test fails.
 */
#ifndef MR_FUZZ_UTIL_H
#define MR_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                              \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: property violated: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* Write the input to a new temporary file (the previous one removed; the last removed at
 * exit) and return its path (valid until the next call). The readers under test take paths, and HDF5 reads only files. The
 * name holds no "idx3-ubyte", so mr_dataset_load treats it as HDF5. (fuzz_tmp.c) */
const char *fuzz_write_tmp(const uint8_t *data, size_t size);

#endif
