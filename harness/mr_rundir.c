#include "mr_rundir.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "../io/mr_data.h"
#include "../io/mr_file.h"

/* ------------------------------------------------------------------ inputs */

static int add_input(mr_rundir *rd, const char *role, const char *path)
{
    mr_run_input *v = realloc(rd->inputs, (size_t)(rd->n_inputs + 1) * sizeof *v);
    if (!v) return mr_error_set(MR_ENOMEM, "out of memory");
    rd->inputs = v;
    mr_run_input *in = &v[rd->n_inputs];
    memset(in, 0, sizeof *in);
    snprintf(in->role, sizeof in->role, "%s", role);
    in->path = malloc(strlen(path) + 1);
    if (!in->path) return mr_error_set(MR_ENOMEM, "out of memory");
    strcpy(in->path, path);
    rd->n_inputs++;
    /* a file that cannot be read now is reported by the loader, with its config line;
     * its fingerprint stays empty (size -1) and mr_rundir_check_unchanged takes it then */
    if (mr_fs_fingerprint(path, &in->fp) != MR_OK) in->fp.size = -1;
    return MR_OK;
}

int mr_rundir_inputs(mr_rundir *rd, const mr_run_config *cfg)
{
    char role[96];
    MR_TRY(add_input(rd, "data", cfg->data));
    char *labels = NULL;
    if (mr_dataset_files(cfg->data, &labels) == MR_OK && labels) {
        int st = add_input(rd, "labels", labels);
        free(labels);
        MR_TRY(st);
    }
    if (cfg->calib[0]) { /* the calibration data of `compress` models */
        MR_TRY(add_input(rd, "calib", cfg->calib));
        if (mr_dataset_files(cfg->calib, &labels) == MR_OK && labels) {
            int st = add_input(rd, "calib.labels", labels);
            free(labels);
            MR_TRY(st);
        }
    }
    for (int i = 0; i < cfg->n_models; i++) {
        const mr_cfg_model *m = &cfg->models[i];
        snprintf(role, sizeof role, "model.%s", m->name);
        MR_TRY(add_input(rd, role, m->path));
        for (int j = 0; j < m->n_ckpt; j++) {
            snprintf(role, sizeof role, "checkpoint.%s.%d", m->name, j);
            MR_TRY(add_input(rd, role, m->ckpt[j]));
        }
    }
    return MR_OK;
}

static int same_content(const mr_fingerprint *a, const mr_fingerprint *b)
{
    return a->size == b->size && strcmp(a->sha256, b->sha256) == 0;
}

static int same_stat(const mr_fingerprint *a, const mr_fingerprint *b)
{
    return a->size == b->size && a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns;
}

int mr_rundir_check_unchanged(const mr_rundir *rd)
{
    for (int i = 0; i < rd->n_inputs; i++) {
        const mr_run_input *in = &rd->inputs[i];
        struct stat st;
        mr_fingerprint now = {0};
        if (stat(in->path, &st) == 0) {
            now.size = (long long)st.st_size;
            now.mtime_s = (long long)st.st_mtim.tv_sec;
            now.mtime_ns = (long)st.st_mtim.tv_nsec;
        }
        if (in->fp.size >= 0 && same_stat(&in->fp, &now)) continue;
        /* size or time moved (or it could not be read before): the content decides */
        if (in->fp.size >= 0 && mr_fs_fingerprint(in->path, &now) == MR_OK &&
            same_content(&in->fp, &now))
            continue;
        return mr_error_set(MR_EINPUT,
                            "%s (%s) changed while this run used it; its results would mix two "
                            "versions of the file: nothing more was written",
                            in->path, in->role);
    }
    return MR_OK;
}

/* ------------------------------------------------------------------ config.ini */

#define FP_FORMAT "# input %s size=%lld mtime=%lld.%09ld sha256=%s path=%s\n"

static int write_config(const mr_rundir *rd, const mr_run_config *c, uint64_t hash)
{
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    fprintf(t.fp, "# config_hash = %016llx\n", (unsigned long long)hash);
    for (int i = 0; i < rd->n_inputs; i++) {
        const mr_run_input *in = &rd->inputs[i];
        fprintf(t.fp, FP_FORMAT, in->role, in->fp.size, in->fp.mtime_s, in->fp.mtime_ns,
                in->fp.sha256, in->path);
    }
    mr_runcfg_write(c, t.fp);
    return mr_textbuf_commit(&t, rd->dir, "config.ini");
}

/* What DIR/config.ini records: the config hash and the input fingerprints. */
typedef struct recorded {
    uint64_t hash;
    int n;
    mr_run_input *in;  /* path points into text */
    char *text;
} recorded;

static void recorded_free(recorded *r)
{
    free(r->in);
    free(r->text);
    memset(r, 0, sizeof *r);
}

static int read_recorded(recorded *r, const char *dir)
{
    memset(r, 0, sizeof *r);
    char *path = mr_fs_join(dir, "config.ini");
    if (!path) return mr_error_set(MR_ENOMEM, "out of memory");
    size_t len;
    int st = mr_fs_read_input(path, MR_CFG_MAX_BYTES, "config file", &r->text, &len);
    free(path);
    MR_TRY(st);
    unsigned long long h = 0;
    if (sscanf(r->text, "# config_hash = %llx", &h) != 1) h = 0;
    r->hash = h;
    for (char *line = r->text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        mr_run_input x;
        memset(&x, 0, sizeof x);
        int at = 0;
        if (sscanf(line, "# input %95s size=%lld mtime=%lld.%ld sha256=%64s path=%n", x.role,
                   &x.fp.size, &x.fp.mtime_s, &x.fp.mtime_ns, x.fp.sha256, &at) == 5 &&
            at > 0 && strlen(x.fp.sha256) == 64) {
            x.path = line + at;
            mr_run_input *v = realloc(r->in, (size_t)(r->n + 1) * sizeof *v);
            if (!v) {
                recorded_free(r);
                return mr_error_set(MR_ENOMEM, "out of memory");
            }
            r->in = v;
            r->in[r->n++] = x;
        }
        line = nl ? nl + 1 : NULL;
    }
    return MR_OK;
}

uint64_t mr_rundir_recorded_hash(const char *dir)
{
    recorded r;
    if (read_recorded(&r, dir) != MR_OK) return 0;
    uint64_t h = r.hash;
    recorded_free(&r);
    return h;
}

/* Every input of this run against what `dir` recorded. */
static int compare_inputs(const mr_rundir *rd, const recorded *r, const char *dir)
{
    for (int i = 0; i < rd->n_inputs; i++) {
        const mr_run_input *in = &rd->inputs[i];
        const mr_run_input *old = NULL;
        for (int j = 0; j < r->n && !old; j++)
            if (strcmp(r->in[j].role, in->role) == 0) old = &r->in[j];
        MR_REQUIRE(old, MR_EINPUT,
                   "%s/config.ini records no fingerprint of %s (%s): it was made by an older "
                   "moe-robust, so a change of the file cannot be ruled out; nothing was "
                   "changed: use a new --out",
                   dir, in->path, in->role);
        MR_REQUIRE(in->fp.size >= 0, MR_EINPUT, "%s: cannot be read", in->path);
        if (same_content(&old->fp, &in->fp)) continue;
        return mr_error_set(MR_EINPUT,
                            "%s (%s) changed since %s was started (size %lld -> %lld bytes, "
                            "SHA-256 %.12s... -> %.12s...): resuming would mix results of two "
                            "versions of the file; nothing was changed: use a new --out",
                            in->path, in->role, dir, old->fp.size, in->fp.size,
                            old->fp.sha256, in->fp.sha256);
    }
    return MR_OK;
}

int mr_rundir_check_other(const mr_rundir *rd, const char *other_dir)
{
    recorded r;
    MR_TRY(read_recorded(&r, other_dir));
    int st = compare_inputs(rd, &r, other_dir);
    recorded_free(&r);
    return st;
}

/* ------------------------------------------------------------------ the directory */

/* Entries other than the lock file and temporaries; whether config.ini is one. */
static int scan_dir(const char *dir, int *has_config, char *other, size_t cap)
{
    *has_config = 0;
    other[0] = '\0';
    DIR *d = opendir(dir);
    MR_REQUIRE(d, MR_EIO, "%s: cannot list (%s)", dir, mr_fs_strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, MR_DIR_LOCK_NAME) ||
            mr_fs_is_tmp_name(n))
            continue;
        if (!strcmp(n, "config.ini")) {
            *has_config = 1;
            continue;
        }
        if (!other[0]) snprintf(other, cap, "%s", n);
    }
    closedir(d);
    return MR_OK;
}

int mr_rundir_open(mr_rundir *rd, const char *dir, const mr_run_config *cfg, uint64_t hash,
                   int mode)
{
    memset(&rd->lock, 0, sizeof rd->lock);
    rd->lock.fd = -1;
    rd->dir = malloc(strlen(dir) + 1);
    if (!rd->dir) return mr_error_set(MR_ENOMEM, "out of memory");
    strcpy(rd->dir, dir);
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        MR_REQUIRE(S_ISDIR(sb.st_mode), MR_EINPUT, "%s exists and is not a directory", dir);
    } else {
        MR_REQUIRE(mode != MR_RUNDIR_MERGE, MR_EINPUT, "%s: no such directory", dir);
        MR_TRY(mr_mkdir_p(dir));
    }
    int exclusive = mode != MR_RUNDIR_SHARD;
    MR_TRY(mr_dir_lock_take(&rd->lock, dir, exclusive));
    int has_config;
    char other[256];
    MR_TRY(scan_dir(dir, &has_config, other, sizeof other));
    if (has_config) {
        recorded r;
        MR_TRY(read_recorded(&r, dir));
        int st = MR_OK;
        if (!r.hash)
            st = mr_error_set(MR_EINPUT, "%s/config.ini has no config_hash line: not a moe-robust "
                              "run directory; nothing was changed", dir);
        else if (r.hash != hash)
            st = mr_error_set(MR_EINPUT,
                              "%s holds results of a different configuration (config_hash "
                              "%016llx, this one %016llx); nothing was changed: use another --out",
                              dir, (unsigned long long)r.hash, (unsigned long long)hash);
        else if (mode == MR_RUNDIR_NEW)
            st = mr_error_set(MR_EINPUT,
                              "%s already holds a run of this configuration: add --resume to "
                              "finish it, or use another --out; nothing was changed",
                              dir);
        if (st == MR_OK) st = compare_inputs(rd, &r, dir);
        recorded_free(&r);
        MR_TRY(st);
    } else if (other[0]) {
        return mr_error_set(MR_EINPUT,
                            "%s is not empty (it holds %s) and has no config.ini: not a directory "
                            "made by moe-robust run; nothing was changed: use a new or empty "
                            "directory",
                            dir, other);
    } else {
        MR_REQUIRE(mode != MR_RUNDIR_MERGE, MR_EINPUT, "%s holds no run (no config.ini)", dir);
        for (int i = 0; i < rd->n_inputs; i++)
            MR_REQUIRE(rd->inputs[i].fp.size >= 0, MR_EINPUT, "%s: cannot be read",
                       rd->inputs[i].path);
        /* config.ini first: cells never exist without the config that made them */
        MR_TRY(write_config(rd, cfg, hash));
    }
    MR_TRY(mr_dir_lock_record(&rd->lock, mode == MR_RUNDIR_MERGE   ? "merge"
                                         : mode == MR_RUNDIR_SHARD ? "run --shard"
                                                                   : "run"));
    char *cells = mr_fs_join(dir, "cells");
    if (!cells) return mr_error_set(MR_ENOMEM, "out of memory");
    int st = MR_OK;
    if (mkdir(cells, 0777) != 0 && errno != EEXIST)
        st = mr_error_set(MR_EIO, "%s: cannot create directory (%s)", cells, mr_fs_strerror(errno));
    else if (stat(cells, &sb) != 0 || !S_ISDIR(sb.st_mode))
        st = mr_error_set(MR_EINPUT, "%s exists and is not a directory", cells);
    /* nothing else writes here while we hold the exclusive lock: what a killed process
     * left half-written goes */
    if (st == MR_OK && exclusive) {
        mr_fs_remove_tmp(dir);
        mr_fs_remove_tmp(cells);
        static const char *const sub[2] = {"report", "models"};
        for (int i = 0; i < 2; i++) {
            char *d = mr_fs_join(dir, sub[i]);
            if (d) mr_fs_remove_tmp(d);
            free(d);
        }
    }
    free(cells);
    return st;
}

void mr_rundir_close(mr_rundir *rd)
{
    mr_dir_lock_release(&rd->lock);
    for (int i = 0; i < rd->n_inputs; i++) free(rd->inputs[i].path);
    free(rd->inputs);
    free(rd->dir);
    memset(rd, 0, sizeof *rd);
    rd->lock.fd = -1;
}
