/* replay — feeds files to a fuzz harness's LLVMFuzzerTestOneInput without libFuzzer, so
 * the seed corpora and every crash reproducer run as ordinary tests in every build (gcc,
 * and the ASan/UBSan build of `scripts/test --sanitize`).
 *
 *   replay_TARGET PATH...   each PATH is a file or a directory (its regular files, not
 *                           recursively, in name order); exit 0 when every input passes
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

static int replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    /* an exact-size heap copy, so ASan sees any read past the input's end */
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0, n;
    uint8_t chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (size + n > cap) {
            cap = 2 * (size + n);
            uint8_t *b = realloc(buf, cap);
            if (!b) {
                fprintf(stderr, "replay: out of memory reading %s\n", path);
                free(buf);
                fclose(fp);
                return 1;
            }
            buf = b;
        }
        memcpy(buf + size, chunk, n);
        size += n;
    }
    fclose(fp);
    uint8_t *exact = malloc(size ? size : 1);
    if (!exact) {
        free(buf);
        return 1;
    }
    if (size) memcpy(exact, buf, size);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(exact, size); /* a violated property aborts */
    free(exact);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s\n", dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = 1;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(path))) {
            rc = 1;
            break;
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) rc = replay_file(names[i]);
        *count += rc == 0;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    int count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i]);
        if (rc != 0) return rc;
        count += !S_ISDIR(st.st_mode);
    }
    printf("replay: %d inputs passed\n", count);
    return count > 0 ? 0 : 1; /* an empty corpus is a broken test, not a pass */
}
