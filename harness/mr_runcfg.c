/* The INI reader of `moe-robust run` (mr_runcfg.h): lines, sections, repeated keys and
 * the checks across sections; each section's keys are in mr_runcfg_keys.c, --set in
 * mr_runcfg_set.c, the resolved config in mr_runcfg_write.c. */
#include "mr_runcfg_impl.h"

#include <ctype.h>
#include <stdlib.h>

#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */
#include "../analysis/attacks/mr_attack.h"
#include "../io/mr_fs.h"
#include "../io/mr_results.h"
#include "mr_compress_setup.h"

/* Add the section `sec` ("model NAME", "router NAME", "run", ...) as met at p->line. */
void mr_runcfg_section_add(parse_ctx *p, const char *sec)
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
    mr_runcfg_section_add(p, sec);
    /* a registered name fits (names are shorter than MR_NAME_LEN); otherwise the status
     * holds the error and no key is read any more */
    size_t len = strlen(sec);
    if (p->status == MR_OK && len < sizeof p->section) memcpy(p->section, sec, len + 1);
}

/* ini_reader that counts lines, so the handler knows where each key stands, and turns
 * what inih would misread into errors: over-long lines (inih would split them) and
 * control characters. A config is text; a NUL would end the line early for inih (the
 * rest of the line silently dropped or read as a line of its own), and other control
 * characters in a path could not be written back to DIR/config.ini and read again
 * (found by fuzz_runcfg, docs/reliability.md). Tab and CR (CRLF files) are allowed. */
static char *reader(char *str, int num, void *stream)
{
    parse_ctx *p = stream;
    int ch, n = 0, bad = -1, first = 0;
    size_t len = 0; /* the whole line's length, newline excluded */
    while ((ch = getc(p->fp)) != EOF && ch != '\n') {
        if (ch != '\t' && ch != '\r' && (ch < 0x20 || ch == 0x7f) && bad < 0) bad = ch;
        if (!first && ch != ' ' && ch != '\t') first = ch;
        if (n < num - 2) str[n++] = (char)ch;
        len++;
    }
    /* a comment may be of any length: DIR/config.ini records each input's fingerprint
     * and absolute path on a comment line (harness/mr_rundir.c), which a long path made
     * longer than inih's line, so `merge` refused the config `run` had written */
    if ((first == '#' || first == ';') && bad < 0) len = (size_t)n;
    if (len == 0 && ch == EOF) return NULL;
    if (ch == '\n') str[n++] = '\n';
    str[n] = '\0';
    p->line++;
    int too_long = len > (size_t)num - 2;
    if ((too_long || bad >= 0) && p->status == MR_OK) {
        if (bad < 0)
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

int mr_runcfg_handler(void *user, const char *section, const char *key, const char *v)
{
    parse_ctx *p = user;
    mr_run_config *c = p->c;
    if (p->status != MR_OK) return 0;
    /* a file's key belongs to the section its reader opened (inih's copy of the name may
     * be cut short); an override names its section in full */
    if (p->line > 0) section = p->section;
    /* a key that --set gives is read from the overrides only */
    if (p->line > 0 && mr_runcfg_set_given(p, section, key)) return 1;
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
    /* the sections' keys, each in its own function (mr_runcfg_keys.c) */
    static const struct {
        const char *section; /* the keyword, a name following for model and router */
        int named;
        int (*key)(parse_ctx *, const char *, const char *);
        const char *keys; /* for the message about an unknown key */
    } sections[] = {
        {"run", 0, mr_runcfg_key_run, "out, seed, bootstrap, level, batch, limit, formats, reference"},
        {"data", 0, mr_runcfg_key_data, "path, calib, calib_limit"},
        {"model", 1, mr_runcfg_key_model, "path, checkpoint, routers, compress"},
        {"router", 1, mr_runcfg_key_router, ""},
        {"corruptions", 0, mr_runcfg_key_corruptions, "names, severities"},
        {"attack", 0, mr_runcfg_key_attack, "methods, eps, steps, transfer, objective, route_layer"}};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (sections[i].named ? !section_name(section, sections[i].section)
                              : strcmp(section, sections[i].section) != 0)
            continue;
        /* never index models[-1] or routers[-1], whatever the reader and inih disagree on */
        if (sections[i].named && (strcmp(sections[i].section, "model") == 0 ? c->n_models : c->n_routers) == 0)
            FAIL("[%s]: section header not recognised", section);
        int known = sections[i].key(p, key, v);
        if (known == MR_CFG_KEY_UNKNOWN)
            FAIL("unknown key '%s' in [%s] (%s)", key, section, sections[i].keys);
        return known;
    }
    if (section[0] == '\0') FAIL("%s = %s comes before any [section]", key, v);
    FAIL("unknown section [%s] (run, data, model NAME, router NAME, corruptions, attack)", section);
}

int mr_runcfg_model_runs(const mr_run_config *c, int model, int router)
{
    const mr_cfg_model *m = &c->models[model];
    if (m->n_sel == 0) return 1;
    for (int i = 0; i < m->n_sel; i++)
        if (m->sel_router[i] == router) return 1;
    return 0;
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
        st = mr_runcfg_set_parse(&ov[i], path, set[i]);
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
    c->n_objectives = 1;
    c->objectives[0] = MR_ATTACK_LOSS;
    c->route_layer = -1;
    parse_ctx p = {.c = c, .fp = fp, .status = MR_OK, .n_ov = n_ov, .ov = ov,
                   .target_model = -1, .target_router = -1};
    int rc = ini_parse_stream(reader, &p, mr_runcfg_handler, &p);
    /* keys that accumulate (checkpoint, routers, names) start empty for an override */
    if (p.status == MR_OK && rc == 0)
        for (int i = 0; i < n_ov && p.status == MR_OK; i++) mr_runcfg_set_apply(&p, i);
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
    int routing = 0;
    for (int i = 0; i < c->n_objectives; i++) routing |= c->objectives[i] == MR_ATTACK_ROUTING;
    mr_runcfg_where(c, c->route_line, at, sizeof at);
    MR_REQUIRE(c->route_layer < 0 || routing, MR_EINPUT,
               "%s: [attack] route_layer = %d: only the routing objective attacks a layer (set "
               "objective = routing)", at, c->route_layer);
    int per_group = c->n_attacks * c->n_objectives * (1 + c->transfer) * c->n_eps;
    MR_REQUIRE(per_group <= MR_RES_MAX_ATTACK, MR_EINPUT,
               "%s:%d: [attack]: %d attack cells per router group (methods x objectives x eps, "
               "x 2 with transfer); at most %d", path, c->attack_line, per_group, MR_RES_MAX_ATTACK);
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
