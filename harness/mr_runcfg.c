#include "mr_runcfg.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/attacks/mr_attack.h"
#include "../analysis/mr_compress.h"
#include "../analysis/mr_error.h"
#include "mr_compress_setup.h"
#include "../analysis/mr_parse.h"
#include "../io/mr_fs.h"
#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */

enum { SEC_RUN, SEC_DATA, SEC_CORR, SEC_ATTACK, SEC_MODEL, SEC_ROUTER };

/* One `--set SECTION.KEY=VALUE`, split. */
typedef struct override {
    int kind;                 /* SEC_* */
    char name[MR_NAME_LEN];   /* model / router sections */
    char key[MR_NAME_LEN];
    char value[MR_SET_LEN];
} override;

typedef struct parse_ctx {
    mr_run_config *c;
    FILE *fp;
    int line;        /* line the reader last returned; -(i + 1) while applying --set i */
    int status;      /* first error */
    int too_long;
    int seen_line[4]; /* line of [run], [data], [corruptions], [attack] once seen (0: not yet) */
    /* every (section, key) given so far and its line: a key given twice would silently
     * override the first value (issue #23), so it is refused naming both lines */
    int n_keys, cap_keys;
    struct seen_key {
        char section[MR_NAME_LEN + 16];
        char key[MR_NAME_LEN];
        int line;
    } *keys;
    int n_ov;
    override *ov;
    /* the model / router section keys go to: -1, the last one opened (reading the
     * file); an index while applying an override */
    int target_model, target_router;
} parse_ctx;

static void open_section(parse_ctx *p, const char *line);
static void register_section(parse_ctx *p, const char *sec);
static int valid_name(const char *s);
static int overridden(const parse_ctx *p, const char *section, const char *key);

/* Longest line the reader accepts (inih's buffer less the newline and the NUL): what
 * mr_runcfg_write produces must stay within it, or `merge` could not read DIR/config.ini. */
#define MAX_LINE (INI_MAX_LINE - 2)

/* ini_reader that counts lines, so the handler knows where each key stands, and turns
 * what inih would misread into errors: over-long lines (inih would split them) and
 * control characters. A config is text; a NUL would end the line early for inih (the
 * rest of the line silently dropped or read as a line of its own), and other control
 * characters in a path could not be written back to DIR/config.ini and read again
 * (found by fuzz_runcfg, docs/reliability.md). Tab and CR (CRLF files) are allowed. */
static char *reader(char *str, int num, void *stream)
{
    parse_ctx *p = stream;
    int ch, n = 0, bad = -1;
    size_t len = 0; /* the whole line's length, newline excluded */
    while ((ch = getc(p->fp)) != EOF && ch != '\n') {
        if (ch != '\t' && ch != '\r' && (ch < 0x20 || ch == 0x7f) && bad < 0) bad = ch;
        if (n < num - 2) str[n++] = (char)ch;
        len++;
    }
    if (len == 0 && ch == EOF) return NULL;
    if (ch == '\n') str[n++] = '\n';
    str[n] = '\0';
    p->line++;
    int too_long = len > (size_t)num - 2;
    if ((too_long || bad >= 0) && p->status == MR_OK) {
        if (too_long)
            p->status = mr_error_set(MR_EINPUT, "%s:%d: line longer than %d characters",
                                     p->c->file, p->line, num - 2);
        else
            p->status = mr_error_set(MR_EINPUT,
                                     "%s:%d: control character 0x%02x in the line (a config "
                                     "is text)",
                                     p->c->file, p->line, bad);
    }
    if (too_long || bad >= 0) {
        str[0] = '\0'; /* hand inih an empty line */
        return str;
    }
    /* inih skips a UTF-8 BOM on line 1 and leading isspace() characters, and reads an
     * indented line after a key as that key's continuation. Hand it every section line
     * unindented, so that it and open_section agree on which sections exist (keys are
     * stored into the last registered model or router). */
    char *s = str;
    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '[') {
        memmove(str, s, strlen(s) + 1);
        open_section(p, str);
    }
    return str;
}

void mr_runcfg_where(const mr_run_config *c, int line, char *buf, size_t cap)
{
    if (line < 0 && -line <= c->n_set)
        snprintf(buf, cap, "%s: --set %s", c->file, c->set[-line - 1]);
    else
        snprintf(buf, cap, "%s:%d", c->file, line);
}

#define FAIL(...)                                                                    \
    do {                                                                             \
        if (p->status == MR_OK) {                                                    \
            char msg_[MR_SET_LEN + 512], at_[MR_PATH_LEN + MR_SET_LEN + 16];         \
            snprintf(msg_, sizeof msg_, __VA_ARGS__);                                \
            mr_runcfg_where(p->c, p->line, at_, sizeof at_);                         \
            p->status = mr_error_set(MR_EINPUT, "%s: %s", at_, msg_);               \
        }                                                                            \
        return 0;                                                                    \
    } while (0)

/* the project's one number parser (analysis/mr_parse.h); the caller words the message */
static int parse_long(const char *v, long lo, long hi, long *out)
{
    long long x;
    if (mr_parse_ll("", v, lo, hi, &x) != MR_OK) return 0;
    *out = (long)x;
    return 1;
}

static int parse_double(const char *v, double lo, double hi, double *out)
{
    return mr_parse_double("", v, lo, hi, out) == MR_OK;
}

static int copy(char *dst, size_t cap, const char *v)
{
    if (strlen(v) >= cap) return 0;
    strcpy(dst, v);
    return 1;
}

/* Split a list on commas and blanks; calls fn on every item; 0 if fn refused one. */
static int for_items(const char *v, int (*fn)(parse_ctx *, const char *), parse_ctx *p)
{
    char buf[512];
    if (!copy(buf, sizeof buf, v)) return 0;
    for (char *tok = strtok(buf, ", \t"); tok; tok = strtok(NULL, ", \t"))
        if (!fn(p, tok)) return 0;
    return 1;
}

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

static mr_cfg_model *cur_model(parse_ctx *p)
{
    return &p->c->models[p->target_model >= 0 ? p->target_model : p->c->n_models - 1];
}

static mr_cfg_router *cur_router(parse_ctx *p)
{
    return &p->c->routers[p->target_router >= 0 ? p->target_router : p->c->n_routers - 1];
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

int mr_runcfg_model_runs(const mr_run_config *c, int model, int router)
{
    const mr_cfg_model *m = &c->models[model];
    if (m->n_sel == 0) return 1;
    for (int i = 0; i < m->n_sel; i++)
        if (m->sel_router[i] == router) return 1;
    return 0;
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

/* "model NAME" / "router NAME": the name after the keyword */
static const char *section_name(const char *section, const char *kw)
{
    size_t n = strlen(kw);
    if (strncmp(section, kw, n) != 0 || section[n] != ' ') return NULL;
    const char *name = section + n + 1;
    while (*name == ' ') name++;
    return *name ? name : NULL;
}

static int valid_name(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* A "[section]" line: register model and router sections here, as the reader sees
 * them, so that a section with no keys (e.g. "[router softmax]") still counts; inih
 * only reports sections through their keys. */
static void open_section(parse_ctx *p, const char *line)
{
    while (*line == ' ' || *line == '\t') line++;
    if (*line != '[' || p->status != MR_OK) return;
    const char *end = strchr(line, ']');
    if (!end) return; /* inih reports the malformed line */
    char section[256];
    size_t n = (size_t)(end - line - 1);
    if (n >= sizeof section) n = sizeof section - 1;
    memcpy(section, line + 1, n);
    section[n] = '\0';
    while (n && (section[n - 1] == ' ' || section[n - 1] == '\t')) section[--n] = '\0';
    char *sec = section;
    while (*sec == ' ') sec++;
    register_section(p, sec);
}

/* Add the section `sec` ("model NAME", "router NAME", "run", ...) as met at p->line. */
static void register_section(parse_ctx *p, const char *sec)
{
    mr_run_config *c = p->c;
    const char *name;
#define SFAIL(...)                                                                        \
    do {                                                                                  \
        char m_[600], at_[MR_PATH_LEN + MR_SET_LEN + 16];                                 \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                             \
        mr_runcfg_where(c, p->line, at_, sizeof at_);                                     \
        p->status = mr_error_set(MR_EINPUT, "%s: %s", at_, m_);                           \
        return;                                                                           \
    } while (0)
    if ((name = section_name(sec, "model"))) {
        if (!valid_name(name) || strlen(name) >= MR_NAME_LEN)
            SFAIL("[%s]: names use letters, digits, '-', '_', '.'", sec);
        for (int i = 0; i < c->n_models; i++)
            if (strcmp(c->models[i].name, name) == 0) SFAIL("[%s] appears twice", sec);
        if (c->n_models == MR_CFG_MAX_MODELS) SFAIL("more than %d models", MR_CFG_MAX_MODELS);
        mr_cfg_model *m = &c->models[c->n_models++];
        memset(m, 0, sizeof *m);
        strcpy(m->name, name);
        m->line = p->line;
    } else if ((name = section_name(sec, "router"))) {
        if (!valid_name(name) || strlen(name) >= MR_NAME_LEN)
            SFAIL("[%s]: names use letters, digits, '-', '_', '.'", sec);
        for (int i = 0; i < c->n_routers; i++)
            if (strcmp(c->routers[i].name, name) == 0) SFAIL("[%s] appears twice", sec);
        if (c->n_routers == MR_CFG_MAX_ROUTERS) SFAIL("more than %d routers", MR_CFG_MAX_ROUTERS);
        mr_cfg_router *r = &c->routers[c->n_routers++];
        memset(r, 0, sizeof *r);
        strcpy(r->name, name);
        strcpy(r->type, name);
        r->line = p->line;
    } else {
        /* inih would merge a repeated section into the first, so a second [data] path
         * or [run] seed would silently override: refuse it like a repeated [model] */
        static const char *const single[4] = {"run", "data", "corruptions", "attack"};
        int i = 0;
        while (i < 4 && strcmp(sec, single[i]) != 0) i++;
        if (i == 4)
            SFAIL("unknown section [%s] (run, data, model NAME, router NAME, corruptions, attack)", sec);
        if (p->seen_line[i]) SFAIL("[%s] appears twice (first at line %d)", sec, p->seen_line[i]);
        p->seen_line[i] = p->line;
    }
#undef SFAIL
}

/* Keys that hold a list and may be repeated (mr_runcfg_write repeats them itself). */
static int repeatable(const char *section, const char *key)
{
    return (strcmp(section, "corruptions") == 0 && strcmp(key, "names") == 0) ||
           (strncmp(section, "model ", 6) == 0 &&
            (strcmp(key, "checkpoint") == 0 || strcmp(key, "routers") == 0));
}

/* 1 with *line where `key` was first given in `section` (a --set: a negative line, see
 * mr_runcfg_where), 0 if it was not (it is recorded), -1 when out of memory. */
static int seen_before(parse_ctx *p, const char *section, const char *key, int *line)
{
    for (int i = 0; i < p->n_keys; i++)
        if (strcmp(p->keys[i].section, section) == 0 && strcmp(p->keys[i].key, key) == 0) {
            *line = p->keys[i].line;
            return 1;
        }
    if (p->n_keys == p->cap_keys) {
        int cap = p->cap_keys ? 2 * p->cap_keys : 32;
        struct seen_key *k = realloc(p->keys, (size_t)cap * sizeof *k);
        if (!k) return -1;
        p->keys = k;
        p->cap_keys = cap;
    }
    struct seen_key *k = &p->keys[p->n_keys++];
    snprintf(k->section, sizeof k->section, "%s", section);
    snprintf(k->key, sizeof k->key, "%s", key);
    k->line = p->line;
    return 0;
}

static int handler(void *user, const char *section, const char *key, const char *v)
{
    parse_ctx *p = user;
    mr_run_config *c = p->c;
    if (p->status != MR_OK) return 0;
    /* a key that --set gives is read from the overrides only */
    if (p->line > 0 && overridden(p, section, key)) return 1;
    long l;
    double x;
    const char *name;
    if (section[0] && !repeatable(section, key)) {
        int first = 0, seen = seen_before(p, section, key, &first);
        if (seen < 0) FAIL("out of memory");
        if (seen > 0 && first > 0)
            FAIL("%s given twice in [%s] (first at line %d): the second value would silently "
                 "override the first",
                 key, section, first);
        if (seen > 0)
            FAIL("%s given twice in [%s] (first by --set %s): the second value would silently "
                 "override the first",
                 key, section, c->set[-first - 1]);
    }
    /* an empty value means nothing: refuse it rather than guess (`severities =` dropped
     * every corrupted cell); `names =` is the one empty list with a meaning (no
     * corruptions; DIR/config.ini writes it so) */
    if (!v[0] && section[0] && !(strcmp(section, "corruptions") == 0 && strcmp(key, "names") == 0) &&
        strcmp(key, "routers") != 0)
        FAIL("%s is empty (leave the key out for its default)", key);
    if (strcmp(section, "run") == 0) {
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
            FAIL("unknown key '%s' in [run] (out, seed, bootstrap, level, batch, limit, formats, reference)", key);
        }
    } else if (strcmp(section, "data") == 0) {
        if (strcmp(key, "path") == 0) {
            if (!copy(c->data, sizeof c->data, v)) FAIL("path: too long");
            c->data_line = p->line;
        } else if (strcmp(key, "calib") == 0) {
            if (!copy(c->calib, sizeof c->calib, v)) FAIL("calib: path too long");
            c->calib_line = p->line;
        } else if (strcmp(key, "calib_limit") == 0) {
            if (!parse_long(v, 1, 2000000000L, &l)) FAIL("calib_limit = %s: not an integer >= 1", v);
            c->calib_limit = l;
        } else {
            FAIL("unknown key '%s' in [data] (path, calib, calib_limit)", key);
        }
    } else if ((name = section_name(section, "model"))) {
        /* never index models[-1], whatever the reader and inih disagree on */
        if (c->n_models == 0) FAIL("[%s]: section header not recognised", section);
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
            FAIL("unknown key '%s' in [%s] (path, checkpoint, routers, compress)", key, section);
        }
    } else if ((name = section_name(section, "router"))) {
        if (c->n_routers == 0) FAIL("[%s]: section header not recognised", section);
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
    } else if (strcmp(section, "corruptions") == 0) {
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
            FAIL("unknown key '%s' in [corruptions] (names, severities)", key);
        }
    } else if (strcmp(section, "attack") == 0) {
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
        } else {
            FAIL("unknown key '%s' in [attack] (methods, eps, steps, transfer)", key);
        }
    } else if (section[0] == '\0') {
        FAIL("%s = %s comes before any [section]", key, v);
    } else {
        FAIL("unknown section [%s] (run, data, model NAME, router NAME, corruptions, attack)", section);
    }
    return 1;
}

/* Split `SECTION.KEY=VALUE` into o; MR_EINPUT naming the argument. SECTION is run, data,
 * corruptions, attack, model.NAME or router.NAME (NAME may hold dots: KEY follows the last one;
 * no key has a dot). VALUE is trimmed as inih trims a value. */
static int parse_override(override *o, const char *file, const char *arg)
{
    memset(o, 0, sizeof *o);
#define OFAIL(...)                                                                  \
    do {                                                                            \
        char m_[400];                                                               \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                       \
        return mr_error_set(MR_EINPUT, "%s: --set %s: %s", file, arg, m_);          \
    } while (0)
    const char *eq = strchr(arg, '=');
    const char *dot = NULL;
    for (const char *q = arg; eq && q < eq; q++)
        if (*q == '.') dot = q;
    if (!eq || !dot || dot == arg || dot + 1 == eq)
        OFAIL("expected SECTION.KEY=VALUE (e.g. run.limit=50, router.similarity.tau=2)");
    for (const char *q = arg; *q; q++)
        if (*q != '\t' && ((unsigned char)*q < 0x20 || *q == 0x7f))
            OFAIL("control character 0x%02x (a config is text)", (unsigned char)*q);
    /* blanks around the section and the key are dropped, as inih drops them in a file */
    const char *s0 = arg, *s1 = dot, *k0 = dot + 1, *k1 = eq;
    while (s0 < s1 && isspace((unsigned char)*s0)) s0++;
    while (s1 > s0 && isspace((unsigned char)s1[-1])) s1--;
    while (k0 < k1 && isspace((unsigned char)*k0)) k0++;
    while (k1 > k0 && isspace((unsigned char)k1[-1])) k1--;
    size_t sec_len = (size_t)(s1 - s0), key_len = (size_t)(k1 - k0);
    if (!sec_len || !key_len) OFAIL("expected SECTION.KEY=VALUE (e.g. run.limit=50, router.similarity.tau=2)");
    char sec[MR_NAME_LEN + 16];
    if (sec_len >= sizeof sec) OFAIL("section name too long");
    memcpy(sec, s0, sec_len);
    sec[sec_len] = '\0';
    if (key_len >= sizeof o->key) OFAIL("key too long");
    memcpy(o->key, k0, key_len);
    o->key[key_len] = '\0';
    static const char *const single[4] = {"run", "data", "corruptions", "attack"};
    o->kind = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(sec, single[i]) == 0) o->kind = i;
    if (o->kind < 0) {
        const char *name = NULL;
        if (strncmp(sec, "model", 5) == 0 && (sec[5] == '.' || sec[5] == ' ')) {
            o->kind = SEC_MODEL;
            name = sec + 6;
        } else if (strncmp(sec, "router", 6) == 0 && (sec[6] == '.' || sec[6] == ' ')) {
            o->kind = SEC_ROUTER;
            name = sec + 7;
        } else {
            OFAIL("unknown section '%s' (run, data, corruptions, attack, model.NAME, router.NAME)",
                  sec);
        }
        if (!name[0] || !valid_name(name) || strlen(name) >= MR_NAME_LEN)
            OFAIL("'%s' is not a section name (letters, digits, '-', '_', '.')", name);
        strcpy(o->name, name);
    }
    const char *v = eq + 1;
    while (isspace((unsigned char)*v)) v++;
    size_t vlen = strlen(v);
    while (vlen && isspace((unsigned char)v[vlen - 1])) vlen--;
    /* what DIR/config.ini gets must read back the same: a line of at most MAX_LINE
     * characters, and no inline comment (';' after a blank) */
    if (key_len + vlen + 1 > MAX_LINE) OFAIL("longer than %d characters", MAX_LINE);
    for (size_t k = 1; k < vlen; k++)
        if (v[k] == ';' && isspace((unsigned char)v[k - 1]))
            OFAIL("';' after a blank starts a comment in a config: not allowed in a value");
    memcpy(o->value, v, vlen);
    o->value[vlen] = '\0';
#undef OFAIL
    return MR_OK;
}

/* Whether an override gives key `key` of the file's section `section`. */
static int overridden(const parse_ctx *p, const char *section, const char *key)
{
    for (int i = 0; i < p->n_ov; i++) {
        const override *o = &p->ov[i];
        if (strcmp(o->key, key) != 0) continue;
        const char *name;
        if (o->kind == SEC_MODEL) {
            if ((name = section_name(section, "model")) && strcmp(name, o->name) == 0) return 1;
        } else if (o->kind == SEC_ROUTER) {
            if ((name = section_name(section, "router")) && strcmp(name, o->name) == 0) return 1;
        } else {
            static const char *const single[4] = {"run", "data", "corruptions", "attack"};
            if (strcmp(section, single[o->kind]) == 0) return 1;
        }
    }
    return 0;
}

/* Read override i as a line of its section, adding a model or router section that the
 * file does not have. */
static void apply_override(parse_ctx *p, int i)
{
    mr_run_config *c = p->c;
    const override *o = &p->ov[i];
    p->line = -(i + 1);
    p->target_model = p->target_router = -1;
    char section[MR_NAME_LEN + 16];
    static const char *const single[4] = {"run", "data", "corruptions", "attack"};
    if (o->kind == SEC_MODEL || o->kind == SEC_ROUTER) {
        int model = o->kind == SEC_MODEL, n = model ? c->n_models : c->n_routers, at = -1;
        snprintf(section, sizeof section, "%s %s", model ? "model" : "router", o->name);
        for (int j = 0; j < n; j++)
            if (strcmp(model ? c->models[j].name : c->routers[j].name, o->name) == 0) at = j;
        if (at < 0) {
            register_section(p, section);
            if (p->status != MR_OK) return;
            at = (model ? c->n_models : c->n_routers) - 1;
        }
        if (model) p->target_model = at;
        else p->target_router = at;
    } else {
        snprintf(section, sizeof section, "%s", single[o->kind]);
    }
    handler(p, section, o->key, o->value);
}

int mr_runcfg_load(mr_run_config *c, const char *path)
{
    return mr_runcfg_load_set(c, path, 0, NULL);
}

int mr_runcfg_load_set(mr_run_config *c, const char *path, int n_set, char *const *set)
{
    /* a regular file of bounded size, read whole: a FIFO or /dev/zero given as the config
     * is refused instead of blocking or spinning (issue #23) */
    char *text;
    size_t len;
    int st = mr_fs_read_input(path, MR_CFG_MAX_BYTES, "config file", &text, &len);
    if (st != MR_OK) {
        memset(c, 0, sizeof *c);
        return st;
    }
    FILE *fp = len ? fmemopen(text, len, "r") : NULL;
    if (len && !fp) {
        free(text);
        memset(c, 0, sizeof *c);
        return mr_error_set(MR_ENOMEM, "%s: out of memory", path);
    }
    if (!fp) {
        /* an empty config: parse an empty stream for the usual messages */
        static char empty[1] = "";
        fp = fmemopen(empty, 1, "r");
        if (fp) getc(fp);
    }
    st = fp ? mr_runcfg_parse_set(c, fp, path, n_set, set) : mr_error_set(MR_ENOMEM, "out of memory");
    if (fp) fclose(fp);
    free(text);
    return st;
}

int mr_runcfg_parse(mr_run_config *c, FILE *fp, const char *path)
{
    return mr_runcfg_parse_set(c, fp, path, 0, NULL);
}

static int parse_checked(mr_run_config *c, FILE *fp, const char *path, override *ov, int n_ov);

int mr_runcfg_parse_set(mr_run_config *c, FILE *fp, const char *path, int n_set,
                        char *const *set)
{
    memset(c, 0, sizeof *c);
    snprintf(c->file, sizeof c->file, "%s", path);
    MR_REQUIRE(n_set <= MR_CFG_MAX_SET, MR_EINPUT, "%s: more than %d --set options", path,
               MR_CFG_MAX_SET);
    override *ov = n_set ? calloc((size_t)n_set, sizeof *ov) : NULL;
    MR_REQUIRE(ov || !n_set, MR_ENOMEM, "out of memory");
    int st = MR_OK;
    for (int i = 0; st == MR_OK && i < n_set; i++) {
        st = parse_override(&ov[i], path, set[i]);
        if (st == MR_OK && strlen(set[i]) >= MR_SET_LEN)
            st = mr_error_set(MR_EINPUT, "%s: --set %.60s...: too long", path, set[i]);
        if (st == MR_OK) snprintf(c->set[c->n_set++], MR_SET_LEN, "%s", set[i]);
    }
    if (st == MR_OK) st = parse_checked(c, fp, path, ov, n_set);
    free(ov);
    return st;
}

/* The file, then the overrides, then the checks across sections. */
static int parse_checked(mr_run_config *c, FILE *fp, const char *path, override *ov, int n_ov)
{
    c->bootstrap = 1000;
    c->level = 0.95;
    c->batch = 32;
    c->calib_limit = MR_COMPRESS_DEFAULT_CALIB_LIMIT;
    c->formats = MR_OUT_JSON | MR_OUT_CSV;
    c->sev_mask = ((1 << (MR_SEVERITY_MAX + 1)) - 1) & ~1; /* bits 1..MR_SEVERITY_MAX */
    static const int eps_ladder[] = {1, 2, 4, 8, 16}; /* / 255, docs/attacks.md */
    c->n_eps = 5;
    memcpy(c->eps, eps_ladder, sizeof eps_ladder);
    parse_ctx p = {.c = c, .fp = fp, .status = MR_OK, .n_ov = n_ov, .ov = ov,
                   .target_model = -1, .target_router = -1};
    int rc = ini_parse_stream(reader, &p, handler, &p);
    /* keys that accumulate (checkpoint, routers, names) start empty for an override */
    if (p.status == MR_OK && rc == 0)
        for (int i = 0; i < n_ov && p.status == MR_OK; i++) apply_override(&p, i);
    free(p.keys);
    if (p.status != MR_OK) return p.status;
    if (rc > 0) return mr_error_set(MR_EINPUT, "%s:%d: not an INI line (expected [section] or key = value)", path, rc);
    if (rc < 0) return mr_error_set(MR_EINPUT, "%s: cannot read", path);
    char at[MR_PATH_LEN + MR_SET_LEN + 16];
    MR_REQUIRE(c->data[0], MR_EINPUT, "%s: missing [data] path", path);
    MR_REQUIRE(c->n_models >= 1, MR_EINPUT, "%s: no [model NAME] section", path);
    MR_REQUIRE(c->n_routers >= 1, MR_EINPUT, "%s: no [router NAME] section", path);
    for (int i = 0; i < c->n_models; i++) {
        const mr_cfg_model *m = &c->models[i];
        mr_runcfg_where(c, m->line, at, sizeof at);
        MR_REQUIRE(m->path[0], MR_EINPUT, "%s: [model %s] has no path", at, m->name);
        mr_runcfg_where(c, m->compress_line, at, sizeof at);
        MR_REQUIRE(!m->compress[0] || c->calib[0], MR_EINPUT,
                   "%s: [model %s] compress needs calibration data: set [data] calib", at,
                   m->name);
        MR_REQUIRE(!m->compress[0] || m->n_ckpt == 0, MR_EINPUT,
                   "%s: [model %s] compress cannot be combined with checkpoint (checkpoint "
                   "fluctuation is measured on the original model)",
                   at, m->name);
    }
    for (int i = 0; i < c->n_routers; i++) {
        mr_runcfg_where(c, c->routers[i].line, at, sizeof at);
        MR_REQUIRE(mr_router_lookup(c->routers[i].type), MR_EINPUT,
                   "%s: [router %s]: unknown router type '%s' (set type = ...)", at,
                   c->routers[i].name, c->routers[i].type);
    }
    for (int i = 0; i < c->n_models; i++) {
        mr_cfg_model *m = &c->models[i];
        for (int j = 0; j < m->n_sel; j++) {
            m->sel_router[j] = -1;
            for (int r = 0; r < c->n_routers; r++)
                if (strcmp(c->routers[r].name, m->sel[j]) == 0) m->sel_router[j] = r;
            mr_runcfg_where(c, m->sel_line, at, sizeof at);
            MR_REQUIRE(m->sel_router[j] >= 0, MR_EINPUT,
                       "%s: [model %s] routers: no [router %s] section", at, m->name, m->sel[j]);
        }
    }
    MR_REQUIRE(c->n_attacks || !p.seen_line[3], MR_EINPUT,
               "%s:%d: [attack] without methods (e.g. methods = pgd)", path, p.seen_line[3]);
    if (!c->reference[0]) strcpy(c->reference, c->routers[0].name);
    int found = -1;
    for (int i = 0; i < c->n_routers; i++)
        if (strcmp(c->routers[i].name, c->reference) == 0) found = i;
    MR_REQUIRE(found >= 0, MR_EINPUT, "%s: reference = %s names no [router] section", path, c->reference);
    int runs = 0;
    for (int i = 0; i < c->n_models; i++) runs |= mr_runcfg_model_runs(c, i, found);
    MR_REQUIRE(runs, MR_EINPUT, "%s: reference = %s: no [model] runs that router (routers = ...)",
               path, c->reference);
    return MR_OK;
}

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
