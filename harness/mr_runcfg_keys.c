/* The keys of each section of a run config (mr_runcfg.h, docs/config.md): every value is
 * checked where it is read, with "FILE:LINE: what is wrong". */
#include "mr_runcfg_impl.h"

#include "../analysis/attacks/mr_attack.h"
#include "../analysis/mr_compress.h"
#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */

static int add_format(parse_ctx *p, const char *f)
{
    if (strcmp(f, "json") == 0)
        p->c->formats |= MR_OUT_JSON;
    else if (strcmp(f, "csv") == 0)
        p->c->formats |= MR_OUT_CSV;
    else if (strcmp(f, "h5") != 0)
        FAIL("formats: unknown format '%s' (h5, json, csv)", f);
    return 1;
}

/* "A" or "A-B" with lo <= A <= B <= hi into *a, *b: 0, or what is wrong (1 a malformed
 * range, 2 a range outside lo..hi, 3 a value outside lo..hi) */
static int parse_range(const char *s, long lo, long hi, long *a, long *b)
{
    const char *dash = strchr(s, '-');
    if (!dash) {
        if (!parse_long(s, lo, hi, a)) return 3;
        *b = *a;
        return 0;
    }
    char first[32];
    if ((size_t)(dash - s) >= sizeof first) return 1;
    memcpy(first, s, (size_t)(dash - s));
    first[dash - s] = '\0';
    return parse_long(first, lo, hi, a) && parse_long(dash + 1, lo, hi, b) && *a <= *b ? 0 : 2;
}

static int add_severity(parse_ctx *p, const char *s)
{
    long a, b;
    int e = parse_range(s, 1, MR_SEVERITY_MAX, &a, &b);
    if (e == 1) FAIL("severities: bad range '%s'", s);
    if (e == 2) FAIL("severities: '%s' is not a range within 1-%d", s, MR_SEVERITY_MAX);
    if (e == 3) FAIL("severities: '%s' is not a severity 1..%d", s, MR_SEVERITY_MAX);
    for (long i = a; i <= b; i++) p->c->sev_mask |= 1 << i;
    return 1;
}

static int add_corruption(parse_ctx *p, const char *n)
{
    mr_run_config *c = p->c;
    if (c->n_corr_names == MR_CFG_MAX_CORR) FAIL("names: more than %d corruptions", MR_CFG_MAX_CORR);
    /* no corruption or group name has other characters, and e.g. ';' would start an
     * inline comment once the list is written back blank-separated */
    if (!valid_name(n)) FAIL("names: '%s' is not a corruption name", n);
    if (!copy(c->corr_names[c->n_corr_names], MR_NAME_LEN, n)) FAIL("names: '%s' is too long", n);
    c->n_corr_names++;
    return 1;
}

static int add_attack(parse_ctx *p, const char *n)
{
    mr_run_config *c = p->c;
    const mr_attack_type *t = mr_attack_lookup(n);
    if (!t) {
        char list[128] = "";
        for (int i = 0; mr_attack_types[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     mr_attack_types[i]->name);
        FAIL("methods: unknown attack '%s' (%s)", n, list);
    }
    for (int i = 0; i < c->n_attacks; i++)
        if (strcmp(c->attacks[i], t->name) == 0) FAIL("methods: %s is listed twice", n);
    if (c->n_attacks == MR_CFG_MAX_ATTACKS) FAIL("methods: more than %d", MR_CFG_MAX_ATTACKS);
    strcpy(c->attacks[c->n_attacks++], t->name);
    return 1;
}

/* objective = loss and/or routing (docs/attacks.md): each once */
static int add_objective(parse_ctx *p, const char *n)
{
    mr_run_config *c = p->c;
    int o = strcmp(n, "loss") == 0 ? MR_ATTACK_LOSS : strcmp(n, "routing") == 0 ? MR_ATTACK_ROUTING : -1;
    if (o < 0) FAIL("objective: unknown objective '%s' (loss, routing)", n);
    for (int i = 0; i < c->n_objectives; i++)
        if (c->objectives[i] == o) FAIL("objective: %s is listed twice", n);
    c->objectives[c->n_objectives++] = o;
    return 1;
}

/* eps in grey levels (eps = e / 255): the data's grid, on which the ball is exact */
static int add_eps(parse_ctx *p, const char *s)
{
    mr_run_config *c = p->c;
    long e;
    if (!parse_long(s, 1, 255, &e))
        FAIL("eps: '%s' is not a number of grey levels 1..255 (eps = value / 255)", s);
    if (c->n_eps && e <= c->eps[c->n_eps - 1]) FAIL("eps: values must increase ('%s')", s);
    if (c->n_eps == MR_CFG_MAX_EPS) FAIL("eps: more than %d values", MR_CFG_MAX_EPS);
    c->eps[c->n_eps++] = (int)e;
    return 1;
}

/* compress = METHOD:K (K checked against the model when the grid is built) */
static int parse_compress(parse_ctx *p, mr_cfg_model *m, const char *v)
{
    const char *colon = strchr(v, ':');
    long k;
    if (m->compress[0]) FAIL("compress given twice");
    if (!colon || (size_t)(colon - v) >= sizeof m->compress)
        FAIL("compress = %s: expected METHOD:K, e.g. merge-msmoe:4", v);
    memcpy(m->compress, v, (size_t)(colon - v));
    m->compress[colon - v] = '\0';
    if (!mr_compress_lookup(m->compress)) {
        char list[256] = "";
        for (int i = 0; mr_compress_types[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     mr_compress_types[i]->name);
        FAIL("compress = %s: unknown method '%s' (%s)", v, m->compress, list);
    }
    if (!parse_long(colon + 1, 1, MR_MAX_EXPERTS, &k))
        FAIL("compress = %s: K = '%s' is not a number of experts 1..%d", v, colon + 1, MR_MAX_EXPERTS);
    m->compress_k = (int)k;
    m->compress_line = p->line;
    return 1;
}

static int add_model_router(parse_ctx *p, const char *n)
{
    mr_cfg_model *m = cur_model(p);
    if (!valid_name(n)) FAIL("routers: '%s' is not a router section name", n);
    for (int i = 0; i < m->n_sel; i++)
        if (strcmp(m->sel[i], n) == 0) return 1; /* named twice: once is enough */
    if (m->n_sel == MR_CFG_MAX_ROUTERS) FAIL("routers: more than %d", MR_CFG_MAX_ROUTERS);
    if (!copy(m->sel[m->n_sel], MR_NAME_LEN, n)) FAIL("routers: '%s' is too long", n);
    m->n_sel++;
    return 1;
}

static int add_k(parse_ctx *p, const char *s)
{
    mr_cfg_router *r = cur_router(p);
    long a, b;
    int e = parse_range(s, 1, 4096, &a, &b);
    if (e == 1) FAIL("top_k: bad range '%s'", s);
    if (e == 2) FAIL("top_k: '%s' is not a range of expert counts", s);
    if (e == 3) FAIL("top_k: '%s' is not an expert count >= 1", s);
    for (long k = a; k <= b; k++) {
        /* a k listed twice would make two cells of one id (found only when results.h5
         * is written, after the whole grid ran) */
        for (int i = 0; i < r->n_k; i++)
            if (r->ks[i] == k) FAIL("top_k: %ld is listed twice", k);
        if (r->n_k == MR_CFG_MAX_K) FAIL("top_k: more than %d values", MR_CFG_MAX_K);
        r->ks[r->n_k++] = (int)k;
    }
    return 1;
}

/* One key of [run]: where results go, the seed and the statistics' settings. */
int mr_runcfg_key_run(parse_ctx *p, const char *key, const char *v)
{
    mr_run_config *c = p->c;
    long l;
    double x;
    if (strcmp(key, "out") == 0) {
        if (!copy(c->out, sizeof c->out, v)) FAIL("out: path too long");
    } else if (strcmp(key, "seed") == 0) {
        if (!parse_long(v, 0, 2147483647L, &l)) FAIL("seed = %s: not an integer 0..2^31-1", v);
        c->seed = (uint64_t)l;
    } else if (strcmp(key, "bootstrap") == 0) {
        if (!parse_long(v, 0, 1000000, &l)) FAIL("bootstrap = %s: not an integer 0..1000000", v);
        c->bootstrap = (int)l;
    } else if (strcmp(key, "level") == 0) {
        if (!parse_double(v, 0.5, 0.9999, &x)) FAIL("level = %s: not a number in [0.5, 0.9999]", v);
        c->level = x;
    } else if (strcmp(key, "batch") == 0) {
        if (!parse_long(v, 1, 65536, &l)) FAIL("batch = %s: not an integer 1..65536", v);
        c->batch = (int)l;
    } else if (strcmp(key, "limit") == 0) {
        if (!parse_long(v, 0, 2000000000L, &l)) FAIL("limit = %s: not an integer >= 0", v);
        c->limit = l;
    } else if (strcmp(key, "formats") == 0) {
        c->formats = 0;
        int any = 0;
        if (!for_items(v, add_format, p)) return 0;
        for (const char *q = v; *q; q++) any |= *q != ',' && *q != ' ' && *q != '\t';
        if (!any) FAIL("formats = %s: no format given (h5 for results.h5 alone)", v);
    } else if (strcmp(key, "reference") == 0) {
        if (!copy(c->reference, sizeof c->reference, v)) FAIL("reference: name too long");
    } else {
        return MR_CFG_KEY_UNKNOWN;
    }
    return 1;
}

/* One key of [data]: the evaluation and calibration data. */
int mr_runcfg_key_data(parse_ctx *p, const char *key, const char *v)
{
    mr_run_config *c = p->c;
    if (strcmp(key, "path") == 0) {
        if (!copy(c->data, sizeof c->data, v)) FAIL("path: too long");
        c->data_line = p->line;
    } else if (strcmp(key, "calib") == 0) {
        if (!copy(c->calib, sizeof c->calib, v)) FAIL("calib: path too long");
        c->calib_line = p->line;
    } else if (strcmp(key, "calib_limit") == 0) {
        if (!parse_long(v, 1, 2000000000L, &c->calib_limit))
            FAIL("calib_limit = %s: not an integer >= 1", v);
    } else {
        return MR_CFG_KEY_UNKNOWN;
    }
    return 1;
}

/* One key of [model NAME]: a model file, its checkpoints, routers and compression. */
int mr_runcfg_key_model(parse_ctx *p, const char *key, const char *v)
{
    mr_cfg_model *m = cur_model(p);
    if (strcmp(key, "path") == 0) {
        if (!copy(m->path, sizeof m->path, v)) FAIL("path: too long");
    } else if (strcmp(key, "checkpoint") == 0) {
        if (m->n_ckpt == MR_CFG_MAX_CKPT) FAIL("more than %d checkpoints", MR_CFG_MAX_CKPT);
        if (!copy(m->ckpt[m->n_ckpt], MR_PATH_LEN, v)) FAIL("checkpoint: path too long");
        m->n_ckpt++;
    } else if (strcmp(key, "routers") == 0) {
        m->sel_line = p->line;
        if (!for_items(v, add_model_router, p)) return 0;
        if (m->n_sel == 0) FAIL("routers: empty (leave the key out to run every router)");
    } else if (strcmp(key, "compress") == 0) {
        if (!parse_compress(p, m, v)) return 0;
    } else {
        return MR_CFG_KEY_UNKNOWN;
    }
    return 1;
}

/* One key of [router NAME]: a router type, its k values and options. */
int mr_runcfg_key_router(parse_ctx *p, const char *key, const char *v) /* never unknown */
{
    mr_cfg_router *r = cur_router(p);
    if (strcmp(key, "type") == 0) {
        if (!mr_router_lookup(v)) FAIL("type = %s: unknown router", v);
        copy(r->type, sizeof r->type, v);
    } else if (strcmp(key, "corruptions") == 0) {
        if (strcmp(v, "yes") && strcmp(v, "no")) FAIL("corruptions = %s: yes or no", v);
        r->no_corruptions = strcmp(v, "no") == 0;
    } else if (strcmp(key, "top_k") == 0) {
        r->n_k = 0;
        r->k_line = p->line;
        if (!for_items(v, add_k, p)) return 0;
        if (r->n_k == 0) FAIL("top_k = %s: no expert count given", v);
    } else {
        char kv[2 * MR_NAME_LEN + 2];
        snprintf(kv, sizeof kv, "%s=%s", key, v);
        if (mr_router_opts_add(&r->opts, kv) != MR_OK) FAIL("%s", mr_error_message());
    }
    return 1;
}

/* One key of [corruptions]: which corruptions at which severities. */
int mr_runcfg_key_corruptions(parse_ctx *p, const char *key, const char *v)
{
    mr_run_config *c = p->c;
    if (strcmp(key, "names") == 0) {
        c->corr_line = p->line;
        int before = c->n_corr_names;
        if (!for_items(v, add_corruption, p)) return 0;
        /* `names =` alone means none; a list of only separators is a slip, not that */
        if (v[0] && c->n_corr_names == before)
            FAIL("names = %s: no corruption given (`names =` alone means none)", v);
    } else if (strcmp(key, "severities") == 0) {
        c->sev_mask = 0;
        if (!for_items(v, add_severity, p)) return 0;
        if (c->sev_mask == 0) FAIL("severities = %s: no severity given", v);
    } else {
        return MR_CFG_KEY_UNKNOWN;
    }
    return 1;
}

/* One key of [attack]: adversarial attacks and their budgets (docs/attacks.md). */
int mr_runcfg_key_attack(parse_ctx *p, const char *key, const char *v)
{
    mr_run_config *c = p->c;
    long l;
    if (strcmp(key, "methods") == 0) {
        c->attack_line = p->line;
        if (!for_items(v, add_attack, p)) return 0;
        if (c->n_attacks == 0) FAIL("methods = %s: no method given", v);
    } else if (strcmp(key, "eps") == 0) {
        c->n_eps = 0;
        if (!for_items(v, add_eps, p)) return 0;
        if (c->n_eps == 0) FAIL("eps = %s: no value given", v);
    } else if (strcmp(key, "steps") == 0) {
        if (!parse_long(v, 0, 1000000, &l)) FAIL("steps = %s: not an integer 0..1000000", v);
        c->attack_steps = (int)l;
    } else if (strcmp(key, "transfer") == 0) {
        if (strcmp(v, "yes") && strcmp(v, "no")) FAIL("transfer = %s: yes or no", v);
        c->transfer = strcmp(v, "yes") == 0;
    } else if (strcmp(key, "objective") == 0) {
        c->n_objectives = 0;
        if (!for_items(v, add_objective, p)) return 0;
        if (c->n_objectives == 0) FAIL("objective = %s: no objective given", v);
    } else if (strcmp(key, "route_layer") == 0) {
        if (!parse_long(v, 0, 1 << 20, &l)) FAIL("route_layer = %s: not a block index", v);
        c->route_layer = (int)l;
        c->route_line = p->line;
    } else {
        return MR_CFG_KEY_UNKNOWN;
    }
    return 1;
}
