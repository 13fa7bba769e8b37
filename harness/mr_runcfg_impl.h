/* mr_runcfg_impl.h — what the files of the config reader share: mr_runcfg.c (the reader,
 * sections, repeated keys and the checks across sections), mr_runcfg_keys.c (each
 * section's keys), mr_runcfg_set.c (`run --set` overrides) and mr_runcfg_write.c (the
 * resolved config and its hash). Internal to harness/; the API is mr_runcfg.h.
 */
#ifndef MR_RUNCFG_IMPL_H
#define MR_RUNCFG_IMPL_H

#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "mr_runcfg.h"

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
    /* the section of the file's keys, as open_section registered it: inih hands the
     * handler at most INI_MAX_SECTION - 1 (49) characters of a section line, so two long
     * model names with the same beginning would be one section to it (found by
     * fuzz_runcfg_set) */
    char section[MR_NAME_LEN + 16];
} parse_ctx;

/* Longest line the reader accepts (inih's buffer less the newline and the NUL): what
 * mr_runcfg_write produces must stay within it, or `merge` could not read DIR/config.ini. */
#define MAX_LINE (INI_MAX_LINE - 2)

/* The first error of a key, "FILE:LINE: message" (or "FILE: --set S.K=V: message"), and
 * return 0 from the caller. */
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
static inline int parse_long(const char *v, long lo, long hi, long *out)
{
    long long x;
    if (mr_parse_ll("", v, lo, hi, &x) != MR_OK) return 0;
    *out = (long)x;
    return 1;
}

static inline int parse_double(const char *v, double lo, double hi, double *out)
{
    return mr_parse_double("", v, lo, hi, out) == MR_OK;
}

static inline int copy(char *dst, size_t cap, const char *v)
{
    if (strlen(v) >= cap) return 0;
    strcpy(dst, v);
    return 1;
}

/* Split a list on commas and blanks; calls fn on every item; 0 if fn refused one. */
static inline int for_items(const char *v, int (*fn)(parse_ctx *, const char *), parse_ctx *p)
{
    char buf[512];
    if (!copy(buf, sizeof buf, v)) return 0;
    for (char *tok = strtok(buf, ", \t"); tok; tok = strtok(NULL, ", \t"))
        if (!fn(p, tok)) return 0;
    return 1;
}

/* "model NAME" / "router NAME": the name after the keyword */
static inline const char *section_name(const char *section, const char *kw)
{
    size_t n = strlen(kw);
    if (strncmp(section, kw, n) != 0 || section[n] != ' ') return NULL;
    const char *name = section + n + 1;
    while (*name == ' ') name++;
    return *name ? name : NULL;
}

/* letters, digits, '-', '_', '.': names of sections, routers and corruptions */
static inline int valid_name(const char *s)
{
    for (; *s; s++)
        if (!mr_parse_name_char(*s) && *s != '.') return 0;
    return 1;
}

static inline mr_cfg_model *cur_model(parse_ctx *p)
{
    return &p->c->models[p->target_model >= 0 ? p->target_model : p->c->n_models - 1];
}

static inline mr_cfg_router *cur_router(parse_ctx *p)
{
    return &p->c->routers[p->target_router >= 0 ? p->target_router : p->c->n_routers - 1];
}

/* inih's handler: one key of the file or of an override (mr_runcfg.c) */
int mr_runcfg_handler(void *user, const char *section, const char *key, const char *v);
/* Add the section `sec` ("model NAME", "router NAME", "run", ...) as met at p->line
 * (mr_runcfg.c). */
void mr_runcfg_section_add(parse_ctx *p, const char *sec);
/* The keys of each section (mr_runcfg_keys.c): 1, 0 once p->status holds the error, or
 * MR_CFG_KEY_UNKNOWN for a key the section does not have (the caller names the ones it
 * has). */
#define MR_CFG_KEY_UNKNOWN (-1)
int mr_runcfg_key_run(parse_ctx *p, const char *key, const char *v);
int mr_runcfg_key_data(parse_ctx *p, const char *key, const char *v);
int mr_runcfg_key_model(parse_ctx *p, const char *key, const char *v);
int mr_runcfg_key_router(parse_ctx *p, const char *key, const char *v);
int mr_runcfg_key_corruptions(parse_ctx *p, const char *key, const char *v);
int mr_runcfg_key_attack(parse_ctx *p, const char *key, const char *v);
/* `--set SECTION.KEY=VALUE` (mr_runcfg_set.c): split into o (MR_EINPUT naming the
 * argument); whether an override gives key `key` of the file's section `section`; read
 * override i as a line of its section. */
int mr_runcfg_set_parse(override *o, const char *file, const char *arg);
int mr_runcfg_set_given(const parse_ctx *p, const char *section, const char *key);
void mr_runcfg_set_apply(parse_ctx *p, int i);

#endif
