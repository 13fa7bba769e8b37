#include "mr_gate.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_array.h"
#include "../analysis/mr_model.h"
#include "../io/mr_file.h"
#include "../io/mr_fs.h"
#include "../io/mr_json.h"

#define BASELINE_FORMAT "moe-robust-baseline"
#define TOLERANCE_FORMAT "moe-robust-tolerance"

/* ------------------------------------------------------------------ metric names */

/* Selection masks: bit i = metric i of the schema (metrics/mr_metric.h), guarded when
 * its row says `gate`; one more bit for "primary" (the primary metric of each model's
 * task). */
#define PRIMARY_BIT ((uint64_t)1 << MR_METRIC_N)
_Static_assert(MR_METRIC_N < 64, "gate masks are 64 bits: one per metric and `primary`");

static uint64_t bit(int id) { return (uint64_t)1 << id; }

uint64_t mr_gate_default_metrics(void)
{
    return PRIMARY_BIT | bit(MR_M_PRED_FLIP) | bit(MR_M_FLIP_TOP1) | bit(MR_M_FLIP_SET) |
           bit(MR_M_ENTROPY) | bit(MR_M_MCE);
}

uint64_t mr_gate_all_metrics(void)
{
    uint64_t m = PRIMARY_BIT;
    for (int i = 0; i < MR_METRIC_N; i++)
        if (mr_metric_table[i].gate) m |= bit(i);
    return m;
}

/* the guarded metric named `name` (its schema index), or -1 */
static int gate_metric(const char *name)
{
    const mr_metric *m = mr_metric_lookup(name);
    return m && m->gate ? (int)(m - mr_metric_table) : -1;
}

int mr_gate_parse_metrics(const char *list, uint64_t *mask)
{
    *mask = 0;
    char buf[1024];
    MR_REQUIRE(strlen(list) < sizeof buf, MR_EINPUT, "--metrics: list too long");
    snprintf(buf, sizeof buf, "%s", list);
    for (char *t = strtok(buf, ", "); t; t = strtok(NULL, ", ")) {
        if (strcmp(t, "default") == 0) {
            *mask |= mr_gate_default_metrics();
            continue;
        }
        if (strcmp(t, "all") == 0) {
            *mask |= mr_gate_all_metrics();
            continue;
        }
        if (strcmp(t, "primary") == 0) {
            *mask |= PRIMARY_BIT;
            continue;
        }
        int i = gate_metric(t);
        if (i < 0) {
            char known[1024] = "";
            for (int j = 0; j < MR_METRIC_N; j++)
                if (mr_metric_table[j].gate) {
                    strcat(known, mr_metric_table[j].key);
                    strcat(known, ", ");
                }
            return mr_error_set(MR_EINPUT, "--metrics: unknown metric '%s' (known: %sprimary, "
                                "default, all)", t, known);
        }
        *mask |= bit(i);
    }
    MR_REQUIRE(*mask, MR_EINPUT, "--metrics: empty list");
    return MR_OK;
}

/* direction from the last path component of a key ("...:layer1/flip_top1" -> flip_top1) */
static int better_of_key(const char *key, int *better)
{
    const char *c = strrchr(key, ':');
    const char *s = strrchr(key, '/');
    const char *name = s && (!c || s > c) ? s + 1 : c ? c + 1 : key;
    int i = gate_metric(name);
    if (i >= 0) *better = mr_metric_table[i].better;
    return i >= 0;
}

/* ------------------------------------------------------------------ collect */

static int push(mr_gate_set *s, const char *cell, const char *metric, const double *v, int has_ci,
                int better, double quantum)
{
    if (!isfinite(v[0])) return MR_OK; /* undefined (e.g. CE with a zero denominator) */
    MR_TRY(mr_array_grow(&s->v, &s->cap, s->n, sizeof *s->v, 256));
    mr_gate_metric *m = &s->v[s->n++];
    snprintf(m->key, sizeof m->key, "%s:%s", cell, metric);
    m->mean = v[0];
    m->has_ci = has_ci && isfinite(v[1]) && isfinite(v[2]);
    m->lo = m->has_ci ? v[1] : v[0];
    m->hi = m->has_ci ? v[2] : v[0];
    m->better = better;
    m->quantum = quantum;
    return MR_OK;
}

/* whether metric i is selected for a model of `task` */
static int selected(uint64_t mask, int i, int task)
{
    const mr_metric *m = &mr_metric_table[i];
    return m->gate && ((mask & bit(i)) || ((mask & PRIMARY_BIT) && m->primary == task));
}

/* every selected metric of a cell, cell-level first, then per MoE layer
 * ("layerB/KEY", B = the MoE block) */
static int collect_cell(const mr_results *r, int ci, uint64_t mask, mr_gate_set *s)
{
    const mr_cell_summary *c = &r->cells[ci];
    const mr_cell_meta *m = &c->meta;
    for (int i = 0; i < MR_METRIC_N; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        if (!mt->per_layer && c->value[i] && selected(mask, i, m->task))
            MR_TRY(push(s, m->id, mt->key, c->value[i], mt->kind == MR_KIND_CI, mt->better,
                        mr_metric_quantum(mt, m->n, m->E)));
    }
    for (int l = 0; l < m->n_moe; l++)
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *mt = &mr_metric_table[i];
            if (!mt->per_layer || !c->value[i] || !selected(mask, i, m->task)) continue;
            int ci_ = mt->kind == MR_KIND_CI;
            double v[3] = {c->value[i][ci_ ? 3 * l : l], NAN, NAN};
            if (ci_) memcpy(v, c->value[i] + 3 * l, sizeof v);
            char name[64];
            snprintf(name, sizeof name, "layer%d/%s", m->layers[l], mt->key);
            MR_TRY(push(s, m->id, name, v, ci_, mt->better, mr_metric_quantum(mt, m->n, m->E)));
        }
    return MR_OK;
}

int mr_gate_collect(const mr_results *r, uint64_t mask, mr_gate_set *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->source, sizeof s->source, "%s", r->file);
    snprintf(s->config_hash, sizeof s->config_hash, "%s", r->config_hash);
    s->level = r->level;
    for (int g = 0; g < r->n_groups; g++) {
        const mr_res_group *gr = &r->groups[g];
        if (gr->clean >= 0) MR_TRY(collect_cell(r, gr->clean, mask, s));
        for (int i = 0; i < r->n_corr * MR_SEVERITY_MAX; i++)
            if (gr->corrupt[i] >= 0) MR_TRY(collect_cell(r, gr->corrupt[i], mask, s));
        for (int f = 0; f < gr->n_fluct; f++) MR_TRY(collect_cell(r, gr->fluct[f], mask, s));
        for (int a = 0; a < gr->n_attack; a++) MR_TRY(collect_cell(r, gr->attack[a], mask, s));
        if (!gr->has_ce) continue;
        char id[200];
        snprintf(id, sizeof id, "%s/%s", r->models[gr->model].name, gr->label);
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *mt = &mr_metric_table[i];
            if (mt->part != MR_PART_GROUP || mt->kind != MR_KIND_SCALAR || !(mask & bit(i)) ||
                !mt->gate)
                continue;
            double v[3] = {gr->value[i][0], NAN, NAN};
            MR_TRY(push(s, id, mt->key, v, 0, mt->better, 0)); /* no per-sample bound */
        }
    }
    return MR_OK;
}

void mr_gate_set_free(mr_gate_set *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static const char *better_name(int b)
{
    return b == MR_BETTER_HIGHER ? "higher" : b == MR_BETTER_LOWER ? "lower" : "either";
}

/* a number that reads back as exactly the same double (cJSON's own printing only
 * round-trips to within an epsilon) */
static void add_exact(cJSON *o, const char *name, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    cJSON_AddRawToObject(o, name, buf);
}

char *mr_gate_baseline_json(const mr_gate_set *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", BASELINE_FORMAT);
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "source", s->source);
    cJSON_AddStringToObject(root, "config_hash", s->config_hash);
    add_exact(root, "level", s->level);
    cJSON *ms = cJSON_AddObjectToObject(root, "metrics");
    for (int i = 0; i < s->n; i++) {
        const mr_gate_metric *m = &s->v[i];
        cJSON *o = cJSON_CreateObject();
        add_exact(o, "mean", m->mean);
        if (m->has_ci) {
            add_exact(o, "lo", m->lo);
            add_exact(o, "hi", m->hi);
        }
        cJSON_AddStringToObject(o, "better", better_name(m->better));
        cJSON_AddItemToObject(ms, m->key, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return NULL;
    size_t n = strlen(text);
    char *t = realloc(text, n + 2);
    if (!t) {
        free(text);
        return NULL;
    }
    strcpy(t + n, "\n");
    return t;
}

/* ------------------------------------------------------------------ JSON files */

static int read_text(const char *path, char **out)
{
    *out = NULL;
    char *buf;
    size_t len;
    /* a regular file, at most 1 GiB (a FIFO or a device is refused, never waited on) */
    MR_TRY(mr_fs_read_input(path, (size_t)1 << 30, "JSON file", &buf, &len));
    if (strlen(buf) != len) {
        free(buf);
        return mr_error_set(MR_EINPUT, "%s: contains a NUL byte: not a JSON text file", path);
    }
    *out = buf;
    return MR_OK;
}

/* Whether position `p` (a '{' or ',') of `text` opens or continues an object rather than
 * an array: the innermost unclosed bracket before it, outside strings, is '{'. */
static int in_object(const char *text, const char *p)
{
    int depth = 0, instr = 0;
    char stack[256];
    for (const char *c = text; c <= p; c++) {
        if (instr) {
            if (*c == '\\' && c[1]) c++;
            else if (*c == '"') instr = 0;
            continue;
        }
        if (*c == '"') instr = 1;
        else if (*c == '{' || *c == '[') {
            if (depth < (int)sizeof stack) stack[depth] = *c;
            depth++;
        } else if ((*c == '}' || *c == ']') && depth > 0) {
            depth--;
        }
    }
    return depth > 0 && depth <= (int)sizeof stack && stack[depth - 1] == '{';
}

/* Whether the string whose body starts at `s` runs to the end of the text unclosed. */
static int unterminated(const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' && s[1]) s++;
        else if (*s == '"') return 0;
    }
    return 1;
}

static int parse_json(const char *path, cJSON **out)
{
    char *text;
    MR_TRY(read_text(path, &text));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        const char *at = end ? end : cJSON_GetErrorPtr();
        int line = 1, col = 1;
        if (!at || at < text || at > text + strlen(text)) at = text;
        /* cJSON reports a failed object key (a name that is not a string: `{x: 1}`,
         * `{"a": 1,}`) one character past it: parse_string's failure path leaves the
         * offset after the character it refused. The key starts right after '{' or ','
         * (and blanks): point at it. */
        if (at > text && !isspace((unsigned char)at[-1]) && at[-1] != '"') {
            const char *q = at - 1, *b = q;
            while (b > text && isspace((unsigned char)b[-1])) b--;
            if (b > text && (b[-1] == '{' || b[-1] == ',') && in_object(text, b - 1)) at = q;
        } else if (at > text && at[-1] == '"' && unterminated(at)) {
            at--; /* a string never closed: point at its opening quote */
        }
        for (const char *p = text; p < at; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        char near[24];
        size_t k = 0;
        for (const char *p = at; *p && *p != '\n' && k < sizeof near - 1; p++) near[k++] = *p;
        near[k] = '\0';
        int st = mr_error_set(MR_EINPUT, "%s:%d:%d: malformed JSON%s%s%s", path, line, col,
                              *at ? " near '" : " (unexpected end of file)", *at ? near : "",
                              *at ? "'" : "");
        free(text);
        return st;
    }
    free(text);
    /* a key given twice: cJSON would take the first, Python's json the last (io/mr_json.h) */
    int st = mr_json_check_unique_keys(root, path);
    if (st != MR_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return MR_OK;
}

static int check_format(const cJSON *root, const char *path, const char *format)
{
    MR_REQUIRE(cJSON_IsObject(root), MR_EINPUT, "%s: the top level must be a JSON object", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    MR_REQUIRE(cJSON_IsString(f) && strcmp(f->valuestring, format) == 0, MR_EINPUT,
               "%s: \"format\" must be \"%s\"%s", path, format,
               strcmp(format, BASELINE_FORMAT) == 0 ? " (write one with `moe-robust baseline DIR > FILE`)"
                                                    : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    MR_REQUIRE(cJSON_IsNumber(v), MR_EINPUT, "%s: \"version\" must be a number", path);
    MR_REQUIRE(v->valuedouble == 1, MR_EINPUT, "%s: version %g is not supported (this moe-robust "
               "reads version 1)", path, v->valuedouble);
    return MR_OK;
}

static int num_field(const cJSON *o, const char *path, const char *where, const char *name,
                     double *out, int *found)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!x) {
        if (found) {
            *found = 0;
            return MR_OK;
        }
        return mr_error_set(MR_EINPUT, "%s: %s: missing \"%s\"", path, where, name);
    }
    MR_REQUIRE(cJSON_IsNumber(x) && isfinite(x->valuedouble), MR_EINPUT,
               "%s: %s: \"%s\" must be a finite number", path, where, name);
    *out = x->valuedouble;
    if (found) *found = 1;
    return MR_OK;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const mr_gate_metric *const *)a)->key, (*(const mr_gate_metric *const *)b)->key);
}

static int load_baseline(const cJSON *root, const char *path, mr_gate_set *s)
{
    MR_TRY(check_format(root, path, BASELINE_FORMAT));
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
    if (cJSON_IsString(src)) snprintf(s->source, sizeof s->source, "%s", src->valuestring);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "config_hash");
    if (cJSON_IsString(h)) snprintf(s->config_hash, sizeof s->config_hash, "%s", h->valuestring);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    MR_REQUIRE(cJSON_IsObject(ms), MR_EINPUT, "%s: \"metrics\" must be an object", path);
    int n = cJSON_GetArraySize(ms);
    MR_REQUIRE(n > 0, MR_EINPUT, "%s: \"metrics\" is empty: nothing to guard", path);
    s->v = calloc((size_t)n, sizeof *s->v);
    MR_REQUIRE(s->v, MR_ENOMEM, "out of memory");
    s->cap = n;
    const cJSON *it;
    cJSON_ArrayForEach(it, ms)
    {
        char where[480];
        snprintf(where, sizeof where, "metrics[\"%.400s\"]", it->string);
        MR_REQUIRE(strlen(it->string) < sizeof s->v[0].key, MR_EINPUT, "%s: %s: name too long", path, where);
        MR_REQUIRE(cJSON_IsObject(it), MR_EINPUT, "%s: %s: must be an object {\"mean\": ...}", path, where);
        mr_gate_metric *m = &s->v[s->n];
        snprintf(m->key, sizeof m->key, "%s", it->string);
        MR_TRY(num_field(it, path, where, "mean", &m->mean, NULL));
        int has_lo = 0, has_hi = 0;
        MR_TRY(num_field(it, path, where, "lo", &m->lo, &has_lo));
        MR_TRY(num_field(it, path, where, "hi", &m->hi, &has_hi));
        MR_REQUIRE(has_lo == has_hi, MR_EINPUT, "%s: %s: \"lo\" and \"hi\" come together", path, where);
        m->has_ci = has_lo;
        if (!has_lo) m->lo = m->hi = m->mean;
        MR_REQUIRE(!has_lo || m->lo <= m->hi, MR_EINPUT, "%s: %s: \"lo\" > \"hi\"", path, where);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(it, "better");
        if (b) {
            MR_REQUIRE(cJSON_IsString(b), MR_EINPUT, "%s: %s: \"better\" must be a string", path, where);
            if (strcmp(b->valuestring, "higher") == 0) m->better = MR_BETTER_HIGHER;
            else if (strcmp(b->valuestring, "lower") == 0) m->better = MR_BETTER_LOWER;
            else if (strcmp(b->valuestring, "either") == 0) m->better = MR_BETTER_EITHER;
            else return mr_error_set(MR_EINPUT, "%s: %s: \"better\" is \"%s\", expected higher, "
                                     "lower or either", path, where, b->valuestring);
        } else {
            MR_REQUIRE(better_of_key(m->key, &m->better), MR_EINPUT,
                       "%s: %s: unknown metric name and no \"better\" to say which direction is "
                       "a regression", path, where);
        }
        for (const cJSON *k = it->child; k; k = k->next)
            MR_REQUIRE(!strcmp(k->string, "mean") || !strcmp(k->string, "lo") ||
                       !strcmp(k->string, "hi") || !strcmp(k->string, "better"),
                       MR_EINPUT, "%s: %s: unknown key \"%s\" (known: mean, lo, hi, better)", path,
                       where, k->string);
        s->n++;
    }
    /* duplicate names would make the comparison ambiguous */
    const mr_gate_metric **idx = malloc((size_t)s->n * sizeof *idx);
    MR_REQUIRE(idx, MR_ENOMEM, "out of memory");
    for (int i = 0; i < s->n; i++) idx[i] = &s->v[i];
    qsort(idx, (size_t)s->n, sizeof *idx, cmp_key);
    int st = MR_OK;
    for (int i = 1; i < s->n && st == MR_OK; i++)
        if (strcmp(idx[i - 1]->key, idx[i]->key) == 0)
            st = mr_error_set(MR_EINPUT, "%s: metric \"%s\" appears twice", path, idx[i]->key);
    free(idx);
    return st;
}

int mr_gate_load_baseline(const char *path, mr_gate_set *s)
{
    memset(s, 0, sizeof *s);
    cJSON *root;
    MR_TRY(parse_json(path, &root));
    int st = load_baseline(root, path, s);
    cJSON_Delete(root);
    if (st != MR_OK) mr_gate_set_free(s);
    return st;
}

/* ------------------------------------------------------------------ tolerances */

void mr_gate_tol_default(mr_gate_tol *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->def.match, sizeof t->def.match, "default");
    /* Floating-point noise, not a change of behaviour (docs/ci.md, "Default tolerance").
     * Continuous metrics of examples/ci differ across OpenBLAS kernels (Haswell,
     * Sandybridge, Prescott, SkylakeX, Cooperlake) and between the AVX2 and baseline
     * clones of the vector kernels by at most 1.1e-7 absolute and 1.3e-7 relative: 1e-5
     * leaves a factor of about 80. A near tie (two experts' gate values, or two classes'
     * logits, equal to the last bits) may be decided otherwise under other rounding: that
     * changes one sample's outcome (samples = 1: mr_gate_metric.quantum). */
    t->def.abs = 1e-5;
    t->def.rel = 1e-5;
    t->def.samples = 1;
}

static int read_rule(const cJSON *o, const char *path, const char *where, mr_gate_rule *r,
                     int need_match)
{
    MR_REQUIRE(cJSON_IsObject(o), MR_EINPUT, "%s: %s: must be an object", path, where);
    for (const cJSON *k = o->child; k; k = k->next) {
        const char *n = k->string;
        if (!strcmp(n, "abs") || !strcmp(n, "rel") || !strcmp(n, "samples")) {
            MR_REQUIRE(cJSON_IsNumber(k) && isfinite(k->valuedouble) && k->valuedouble >= 0,
                       MR_EINPUT, "%s: %s: \"%s\" must be a number >= 0", path, where, n);
            if (n[0] == 'a') r->abs = k->valuedouble;
            else if (n[0] == 'r') r->rel = k->valuedouble;
            else r->samples = k->valuedouble;
        } else if (!strcmp(n, "mode")) {
            MR_REQUIRE(cJSON_IsString(k) && (!strcmp(k->valuestring, "fixed") || !strcmp(k->valuestring, "ci")),
                       MR_EINPUT, "%s: %s: \"mode\" must be \"fixed\" or \"ci\"", path, where);
            r->mode = !strcmp(k->valuestring, "ci") ? MR_MODE_CI : MR_MODE_FIXED;
        } else if (!strcmp(n, "ignore")) {
            MR_REQUIRE(cJSON_IsBool(k), MR_EINPUT, "%s: %s: \"ignore\" must be true or false", path, where);
            r->ignore = cJSON_IsTrue(k);
        } else if (!strcmp(n, "match") && need_match) {
            MR_REQUIRE(cJSON_IsString(k) && k->valuestring[0] && strlen(k->valuestring) < sizeof r->match,
                       MR_EINPUT, "%s: %s: \"match\" must be a non-empty glob string", path, where);
            snprintf(r->match, sizeof r->match, "%s", k->valuestring);
        } else {
            return mr_error_set(MR_EINPUT, "%s: %s: unknown key \"%s\" (known: %sabs, rel, samples, mode, ignore)",
                                path, where, n, need_match ? "match, " : "");
        }
    }
    MR_REQUIRE(!need_match || r->match[0], MR_EINPUT, "%s: %s: missing \"match\"", path, where);
    return MR_OK;
}

static int load_tolerance(const cJSON *root, const char *path, mr_gate_tol *t)
{
    MR_REQUIRE(cJSON_IsObject(root), MR_EINPUT, "%s: the top level must be a JSON object", path);
    /* "format"/"version" are optional in a hand-written file, checked when present */
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (f) MR_TRY(check_format(root, path, TOLERANCE_FORMAT));
    for (const cJSON *k = root->child; k; k = k->next)
        MR_REQUIRE(!strcmp(k->string, "format") || !strcmp(k->string, "version") ||
                   !strcmp(k->string, "default") || !strcmp(k->string, "rules"),
                   MR_EINPUT, "%s: unknown key \"%s\" (known: format, version, default, rules)", path,
                   k->string);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "default");
    if (d) {
        mr_gate_rule def = {.match = "default"};
        MR_TRY(read_rule(d, path, "default", &def, 0));
        t->def = def;
    }
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
    if (!rules) return MR_OK;
    MR_REQUIRE(cJSON_IsArray(rules), MR_EINPUT, "%s: \"rules\" must be an array", path);
    int n = cJSON_GetArraySize(rules);
    t->rules = calloc((size_t)n + 1, sizeof *t->rules);
    MR_REQUIRE(t->rules, MR_ENOMEM, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, rules)
    {
        char where[64];
        snprintf(where, sizeof where, "rules[%d]", t->n);
        mr_gate_rule *r = &t->rules[t->n];
        /* fields not given inherit the default */
        *r = t->def;
        r->match[0] = '\0';
        r->ignore = 0;
        MR_TRY(read_rule(it, path, where, r, 1));
        t->n++;
    }
    return MR_OK;
}

int mr_gate_load_tolerance(const char *path, mr_gate_tol *t)
{
    mr_gate_tol_default(t);
    cJSON *root;
    MR_TRY(parse_json(path, &root));
    int st = load_tolerance(root, path, t);
    cJSON_Delete(root);
    if (st != MR_OK) mr_gate_tol_free(t);
    return st;
}

static int matches_any(const char *glob, const mr_gate_set *s)
{
    for (int i = 0; i < s->n; i++)
        if (fnmatch(glob, s->v[i].key, 0) == 0) return 1;
    return 0;
}

int mr_gate_check_rules(const mr_gate_tol *t, const mr_gate_set *base, const mr_gate_set *now,
                        const char *path)
{
    for (int i = 0; i < t->n; i++)
        MR_REQUIRE(matches_any(t->rules[i].match, base) || matches_any(t->rules[i].match, now),
                   MR_EINPUT,
                   "%s: rules[%d]: \"match\": \"%s\" matches no metric of the baseline or the "
                   "run (a typo? metric names look like CELL_ID:accuracy, "
                   "CELL_ID:layerB/flip_top1, MODEL/ROUTER@kK:mce)",
                   path, i, t->rules[i].match);
    return MR_OK;
}

void mr_gate_tol_free(mr_gate_tol *t)
{
    free(t->rules);
    t->rules = NULL;
    t->n = 0;
}

/* ------------------------------------------------------------------ compare */

static const mr_gate_rule *rule_for(const mr_gate_tol *t, const char *key)
{
    for (int i = 0; i < t->n; i++)
        if (fnmatch(t->rules[i].match, key, 0) == 0) return &t->rules[i];
    return &t->def;
}

int mr_gate_compare(const mr_gate_set *base, const mr_gate_set *now, const mr_gate_tol *tol,
                    mr_gate_report *out)
{
    memset(out, 0, sizeof *out);
    out->rows = calloc((size_t)base->n + 1, sizeof *out->rows);
    const mr_gate_metric **idx = malloc(((size_t)now->n + 1) * sizeof *idx);
    if (!out->rows || !idx) {
        free(idx);
        free(out->rows);
        out->rows = NULL;
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < now->n; i++) idx[i] = &now->v[i];
    qsort(idx, (size_t)now->n, sizeof *idx, cmp_key);
    out->hash_differs = base->config_hash[0] && strcmp(base->config_hash, now->config_hash) != 0;
    int matched = 0;
    for (int i = 0; i < base->n; i++) {
        const mr_gate_metric *b = &base->v[i];
        mr_gate_row *row = &out->rows[out->n++];
        row->base = b;
        const mr_gate_metric *key = b, **hit = bsearch(&key, idx, (size_t)now->n, sizeof *idx, cmp_key);
        row->now = hit ? *hit : NULL;
        matched += hit != NULL;
        const mr_gate_rule *r = rule_for(tol, b->key);
        snprintf(row->rule, sizeof row->rule, "%s", r->match);
        row->mode = r->mode;
        row->allowed = fmax(r->abs, r->rel * fabs(b->mean));
        if (row->now) row->allowed = fmax(row->allowed, r->samples * row->now->quantum);
        if (r->ignore) {
            row->status = MR_GATE_IGNORED;
        } else if (!row->now) {
            row->status = MR_GATE_MISSING;
        } else {
            double v = row->now->mean, t = row->allowed;
            /* the reference interval: the baseline value, or its CI in mode "ci" */
            int ci = r->mode == MR_MODE_CI && b->has_ci;
            double lo = ci ? b->lo : b->mean, hi = ci ? b->hi : b->mean;
            int worse, better_ = 0;
            if (b->better == MR_BETTER_HIGHER) {
                worse = v < lo - t;
                better_ = v > hi + t;
            } else if (b->better == MR_BETTER_LOWER) {
                worse = v > hi + t;
                better_ = v < lo - t;
            } else {
                worse = v < lo - t || v > hi + t;
            }
            row->status = worse     ? MR_GATE_REGRESSED
                          : better_ ? MR_GATE_IMPROVED
                          : v != b->mean ? MR_GATE_MOVED
                                         : MR_GATE_UNCHANGED;
        }
        out->count[row->status]++;
    }
    out->n_new = now->n - matched;
    free(idx);
    return MR_OK;
}

static const char *status_name(int s)
{
    static const char *const n[MR_GATE_NSTATUS] = {"unchanged", "moved", "improved", "REGRESSION",
                                                   "MISSING", "ignored"};
    return n[s];
}

void mr_gate_describe(char *buf, size_t cap, const mr_gate_row *row)
{
    const mr_gate_metric *b = row->base;
    if (row->status == MR_GATE_MISSING) {
        snprintf(buf, cap, "%s: in the baseline (%.6g) but not in this run", b->key, b->mean);
        return;
    }
    if (!row->now) {
        snprintf(buf, cap, "%s: ignored (rule %s)", b->key, row->rule);
        return;
    }
    double v = row->now->mean, d = v - b->mean;
    const char *verb = d > 0 ? "rose" : d < 0 ? "fell" : "stayed";
    char ref[160] = "";
    if (row->mode == MR_MODE_CI && b->has_ci)
        snprintf(ref, sizeof ref, ", outside the baseline CI [%.6g, %.6g] +/- tolerance", b->lo, b->hi);
    snprintf(buf, cap, "%s: %s from %.6g to %.6g (%+.6g); tolerance %.6g (%s, %s)%s; %s is better",
             b->key, verb, b->mean, v, d, row->allowed, row->rule,
             row->mode == MR_MODE_CI ? "mode ci" : "mode fixed", ref,
             b->better == MR_BETTER_HIGHER ? "higher" : b->better == MR_BETTER_LOWER ? "lower"
                                                                                    : "no change");
}

void mr_gate_print(FILE *fp, const mr_gate_report *rep, int all)
{
    static const int order[] = {MR_GATE_REGRESSED, MR_GATE_MISSING, MR_GATE_IMPROVED, MR_GATE_MOVED};
    int w = 6;
    for (int i = 0; i < rep->n; i++) {
        int s = rep->rows[i].status;
        if (s != MR_GATE_UNCHANGED && s != MR_GATE_IGNORED) {
            int l = (int)strlen(rep->rows[i].base->key);
            if (l > w) w = l;
        }
    }
    if (w > 72) w = 72;
    int header = 0;
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
        int shown = 0, limit = (all || order[o] == MR_GATE_REGRESSED || order[o] == MR_GATE_MISSING) ? 1 << 30 : 20;
        for (int i = 0; i < rep->n; i++) {
            const mr_gate_row *r = &rep->rows[i];
            if (r->status != order[o]) continue;
            if (shown++ >= limit) continue;
            if (!header++)
                fprintf(fp, "%-10s  %-*s  %12s  %12s  %12s  %10s  %s\n", "status", w, "metric",
                        "baseline", "now", "change", "tolerance", "rule");
            char now[32] = "-", chg[32] = "-";
            if (r->now) {
                snprintf(now, sizeof now, "%.6g", r->now->mean);
                snprintf(chg, sizeof chg, "%+.4g", r->now->mean - r->base->mean);
            }
            fprintf(fp, "%-10s  %-*s  %12.6g  %12s  %12s  %10.3g  %s%s\n", status_name(r->status), w,
                    r->base->key, r->base->mean, now, chg, r->allowed, r->rule,
                    r->mode == MR_MODE_CI ? " (ci)" : "");
        }
        if (shown > limit)
            fprintf(fp, "%-10s  ... %d more (--all lists every one)\n", status_name(order[o]), shown - limit);
    }
    if (rep->hash_differs)
        fprintf(fp, "note: the run's config hash differs from the baseline's (a different configuration)\n");
    fprintf(fp, "check: %d metrics guarded: %d regressed, %d missing, %d improved, %d moved within "
                "tolerance, %d unchanged, %d ignored; %d new metrics not in the baseline -> %s\n",
            rep->n, rep->count[MR_GATE_REGRESSED], rep->count[MR_GATE_MISSING],
            rep->count[MR_GATE_IMPROVED], rep->count[MR_GATE_MOVED], rep->count[MR_GATE_UNCHANGED],
            rep->count[MR_GATE_IGNORED], rep->n_new,
            rep->count[MR_GATE_REGRESSED] + rep->count[MR_GATE_MISSING] ? "FAIL" : "PASS");
}

void mr_gate_report_free(mr_gate_report *r)
{
    free(r->rows);
    memset(r, 0, sizeof *r);
}
