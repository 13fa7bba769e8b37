/* The resolved config (DIR/config.ini) and its hash (mr_runcfg.h). */
#include "mr_runcfg_impl.h"

#include <stdlib.h>

#include "../analysis/attacks/mr_attack.h"
#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */

/* "key = value", or "key=value" where that would be too long (the value came from a line
 * of at most MAX_LINE characters holding at least "key=value") or where the value starts
 * with ';', which after a blank would begin an inline comment. */
static void put_kv(FILE *fp, const char *key, const char *value)
{
    int fits = strlen(key) + strlen(value) + 3 <= MAX_LINE;
    const char *eq = fits && value[0] != ';' ? " = " : "=";
    fprintf(fp, "%s%s%s\n", key, eq, value);
}

void mr_runcfg_write(const mr_run_config *c, FILE *fp)
{
    /* a comment, outside the hash (which blanks c->file): the path's tail if it is long */
    size_t flen = strlen(c->file), room = MAX_LINE - 40;
    fprintf(fp, "# resolved by moe-robust from %s%s\n[run]\n", flen > room ? "..." : "",
            flen > room ? c->file + flen - room : c->file);
    fprintf(fp, "seed = %llu\nbootstrap = %d\nlevel = %.17g\nbatch = %d\nlimit = %ld\n",
            (unsigned long long)c->seed, c->bootstrap, c->level, c->batch, c->limit);
    fprintf(fp, "formats = h5%s%s\n", c->formats & MR_OUT_JSON ? " json" : "",
            c->formats & MR_OUT_CSV ? " csv" : "");
    put_kv(fp, "reference", c->reference);
    fprintf(fp, "\n[data]\n");
    put_kv(fp, "path", c->data);
    if (c->calib[0]) { /* only when set: older configs keep their text and hash */
        put_kv(fp, "calib", c->calib);
        fprintf(fp, "calib_limit = %ld\n", c->calib_limit);
    }
    for (int i = 0; i < c->n_models; i++) {
        const mr_cfg_model *m = &c->models[i];
        fprintf(fp, "\n[model %s]\n", m->name);
        put_kv(fp, "path", m->path);
        for (int j = 0; j < m->n_ckpt; j++) put_kv(fp, "checkpoint", m->ckpt[j]);
        /* one name per line: a long list would outgrow what the reader accepts */
        for (int j = 0; j < m->n_sel; j++) put_kv(fp, "routers", m->sel[j]);
        if (m->compress[0]) fprintf(fp, "compress = %s:%d\n", m->compress, m->compress_k);
    }
    for (int i = 0; i < c->n_routers; i++) {
        const mr_cfg_router *r = &c->routers[i];
        fprintf(fp, "\n[router %s]\ntype = %s\n", r->name, r->type);
        if (r->n_k) {
            fprintf(fp, "top_k = ");
            for (int j = 0; j < r->n_k; j++) fprintf(fp, "%s%d", j ? "," : "", r->ks[j]);
            fprintf(fp, "\n");
        }
        if (r->no_corruptions) fprintf(fp, "corruptions = no\n");
        for (int j = 0; j < r->opts.n; j++) put_kv(fp, r->opts.key[j], r->opts.val[j]);
    }
    /* names may have come from several lines: continue on a new "names =" line (the key
     * repeats) before one would grow past what the reader accepts */
    fprintf(fp, "\n[corruptions]\nnames =");
    size_t len = strlen("names =");
    for (int i = 0; i < c->n_corr_names; i++) {
        size_t n = 1 + strlen(c->corr_names[i]);
        if (len + n > MAX_LINE) {
            fprintf(fp, "\nnames =");
            len = strlen("names =");
        }
        fprintf(fp, " %s", c->corr_names[i]);
        len += n;
    }
    fprintf(fp, "\nseverities =");
    for (int s = 1; s <= MR_SEVERITY_MAX; s++)
        if (c->sev_mask & (1 << s)) fprintf(fp, " %d", s);
    fprintf(fp, "\n");
    if (c->n_attacks) { /* only when set: configs without attacks keep their text and hash */
        fprintf(fp, "\n[attack]\nmethods =");
        for (int i = 0; i < c->n_attacks; i++) fprintf(fp, " %s", c->attacks[i]);
        fprintf(fp, "\neps =");
        for (int i = 0; i < c->n_eps; i++) fprintf(fp, " %d", c->eps[i]);
        fprintf(fp, "\nsteps = %d\ntransfer = %s\n", c->attack_steps, c->transfer ? "yes" : "no");
        /* only when not the default: configs without them keep their text and hash */
        if (c->n_objectives != 1 || c->objectives[0] != MR_ATTACK_LOSS) {
            fprintf(fp, "objective =");
            for (int i = 0; i < c->n_objectives; i++)
                fprintf(fp, " %s", c->objectives[i] == MR_ATTACK_ROUTING ? "routing" : "loss");
            fprintf(fp, "\n");
        }
        if (c->route_layer >= 0) fprintf(fp, "route_layer = %d\n", c->route_layer);
    }
}

uint64_t mr_runcfg_hash(const mr_run_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return 0;
    mr_run_config copy_ = *c;
    copy_.file[0] = '\0'; /* where the config came from does not change results */
    mr_runcfg_write(&copy_, fp);
    fclose(fp);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
    free(buf);
    return h;
}
