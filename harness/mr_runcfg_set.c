/* `moe-robust run --set SECTION.KEY=VALUE` (mr_runcfg.h): an override is split and checked
 * like a line of its section, and replaces the file's value(s) of that key. */
#include "mr_runcfg_impl.h"

#include <ctype.h>

/* Split `SECTION.KEY=VALUE` into o; MR_EINPUT naming the argument. SECTION is run, data,
 * corruptions, attack, model.NAME or router.NAME (NAME may hold dots: KEY follows the last one;
 * no key has a dot). VALUE is trimmed as inih trims a value. */
int mr_runcfg_set_parse(override *o, const char *file, const char *arg)
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
    /* every key of every section is an identifier; anything else could not be written to
     * DIR/config.ini and read back as the same key (`;k` is a comment, `[k` a section,
     * `a:b` the key `a`) */
    for (const char *q = o->key; *q; q++)
        if (!mr_parse_name_char(*q)) OFAIL("'%s' is not a key name (letters, digits, '_', '-')", o->key);
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
int mr_runcfg_set_given(const parse_ctx *p, const char *section, const char *key)
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
void mr_runcfg_set_apply(parse_ctx *p, int i)
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
            mr_runcfg_section_add(p, section);
            if (p->status != MR_OK) return;
            at = (model ? c->n_models : c->n_routers) - 1;
        }
        if (model) p->target_model = at;
        else p->target_router = at;
    } else {
        snprintf(section, sizeof section, "%s", single[o->kind]);
    }
    mr_runcfg_handler(p, section, o->key, o->value);
}
