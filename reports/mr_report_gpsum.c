/* A user's restyled gnuplot script is never overwritten (docs/reports.md "Restyling").
 * The report directory's marker file (.moe-robust-report) lists a checksum (64-bit
 * FNV-1a) of every NAME.gp the report wrote. When a report is written again into the same
 * directory, a NAME.gp whose bytes no longer match its checksum was edited: it is kept
 * (and rendered, with the new data), the new script goes beside it as NAME.new.gp, and
 * report.md and stderr say so. A NAME.gp without a checksum (a report written before
 * checksums were kept) is replaced as before. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

static uint64_t fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* checksum of dir/name, or 0 with *exists = 0 when it cannot be read */
static uint64_t file_sum(const char *dir, const char *name, int *exists)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    *exists = fp != NULL;
    if (!fp) return 0;
    uint64_t h = 1469598103934665603ULL;
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 1099511628211ULL;
    fclose(fp);
    return h;
}

static int sums_add(rep *R, const char *name, uint64_t h)
{
    for (int i = 0; i < R->n_sums; i++)
        if (strcmp(R->sums[i].name, name) == 0) {
            R->sums[i].h = h;
            return MR_OK;
        }
    if (R->n_sums == R->cap_sums) {
        int cap = R->cap_sums ? 2 * R->cap_sums : 64;
        void *v = realloc(R->sums, (size_t)cap * sizeof *R->sums);
        MR_REQUIRE(v, MR_ENOMEM, "out of memory");
        R->sums = v;
        R->cap_sums = cap;
    }
    snprintf(R->sums[R->n_sums].name, sizeof R->sums[0].name, "%s", name);
    R->sums[R->n_sums++].h = h;
    return MR_OK;
}

int mr_rep_sums_load(rep *R, const char *marker_path)
{
    FILE *fp = fopen(marker_path, "r");
    if (!fp) return MR_OK; /* a new directory */
    char line[512], name[300];
    unsigned long long h;
    int st = MR_OK;
    while (st == MR_OK && fgets(line, sizeof line, fp))
        if (sscanf(line, "%16llx %299s", &h, name) == 2) st = sums_add(R, name, (uint64_t)h);
    fclose(fp);
    return st;
}

int mr_rep_sums_text(const rep *R, mr_textbuf *t)
{
    MR_TRY(mr_textbuf_open(t));
    fprintf(t->fp, "# moe-robust report: FNV-1a 64 of every NAME.gp it wrote (a script that no "
                   "longer matches was edited and is kept)\n");
    for (int i = 0; i < R->n_sums; i++)
        fprintf(t->fp, "%016llx %s\n", (unsigned long long)R->sums[i].h, R->sums[i].name);
    return MR_OK;
}

static int kept_grow(rep *R)
{
    if (R->n_kept < R->cap_kept) return MR_OK;
    int cap = R->cap_kept ? 2 * R->cap_kept : 8;
    void *v = realloc(R->kept, (size_t)cap * sizeof *R->kept);
    MR_REQUIRE(v, MR_ENOMEM, "out of memory");
    R->kept = v;
    R->cap_kept = cap;
    return MR_OK;
}

int mr_rep_gp_commit(rep *R, const char *name, mr_textbuf *gp)
{
    char fn[220];
    snprintf(fn, sizeof fn, "%s.gp", name);
    int exists = 0, known = -1;
    uint64_t now = file_sum(R->dir, fn, &exists);
    for (int i = 0; i < R->n_sums; i++)
        if (strcmp(R->sums[i].name, fn) == 0) known = i;
    if (exists && known >= 0 && R->sums[known].h != now) {
        /* edited by the user: keep it, the new script beside it */
        char nfn[230];
        snprintf(nfn, sizeof nfn, "%s.new.gp", name);
        MR_TRY(mr_textbuf_commit(gp, R->dir, nfn));
        fprintf(stderr, "moe-robust report: %s/%s was edited since the report wrote it: kept "
                        "(rendered with the new data); the new script is %s\n",
                R->dir, fn, nfn);
        MR_TRY(kept_grow(R));
        snprintf(R->kept[R->n_kept++], sizeof R->kept[0], "%s", name);
        return MR_OK;
    }
    fflush(gp->fp);
    uint64_t h = fnv1a(gp->buf, gp->len);
    MR_TRY(mr_textbuf_commit(gp, R->dir, fn));
    return sums_add(R, fn, h);
}

