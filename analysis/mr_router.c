#include "mr_router.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mr_error.h"
#include "mr_parse.h"
#include "mr_ops.h"

#include <gsl/gsl_cblas.h>

const mr_router_type *const mr_router_types[] = {
    &mr_router_softmax, &mr_router_similarity, &mr_router_attention, &mr_router_ac,
    &mr_router_cosine,  &mr_router_random,     &mr_router_momentum,  &mr_router_s2moe,
    NULL};

const mr_router_type *mr_router_lookup(const char *name)
{
    for (int i = 0; mr_router_types[i]; i++)
        if (strcmp(mr_router_types[i]->name, name) == 0) return mr_router_types[i];
    return NULL;
}

int mr_router_opts_add(mr_router_opts *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    MR_REQUIRE(eq && eq != kv && eq[1] != '\0', MR_EINPUT,
               "router option '%s' is not of the form key=value", kv);
    size_t klen = (size_t)(eq - kv), vlen = strlen(eq + 1);
    MR_REQUIRE(klen < MR_NAME_LEN && vlen < MR_NAME_LEN, MR_EINPUT,
               "router option '%s' is too long", kv);
    /* an option name is an identifier: every router's options are, and only such a name
     * survives DIR/config.ini */
    for (size_t i = 0; i < klen; i++)
        MR_REQUIRE(mr_parse_name_char(kv[i]), MR_EINPUT,
                   "router option '%.*s': not an option name (letters, digits, '_', '-')",
                   (int)klen, kv);
    MR_REQUIRE(o->n < MR_ROUTER_MAX_OPTS, MR_EINPUT, "more than %d router options",
               MR_ROUTER_MAX_OPTS);
    /* a second value would silently override the first */
    for (int i = 0; i < o->n; i++)
        MR_REQUIRE(strlen(o->key[i]) != klen || strncmp(o->key[i], kv, klen) != 0, MR_EINPUT,
                   "router option %.*s given twice (%s=%s, then %s)", (int)klen, kv, o->key[i],
                   o->val[i], kv);
    memcpy(o->key[o->n], kv, klen);
    o->key[o->n][klen] = '\0';
    memcpy(o->val[o->n], eq + 1, vlen + 1);
    o->used[o->n] = 0;
    o->n++;
    return MR_OK;
}

int mr_router_opts_get_string(mr_router_opts *o, const char *key, char *buf, size_t cap,
                              int *found)
{
    *found = 0;
    if (!o) return MR_OK;
    for (int i = 0; i < o->n; i++) {
        if (strcmp(o->key[i], key) != 0) continue;
        MR_REQUIRE(strlen(o->val[i]) < cap, MR_EINPUT, "router option %s=%s is too long", key,
                   o->val[i]);
        strcpy(buf, o->val[i]);
        o->used[i] = 1;
        *found = 1;
    }
    return MR_OK;
}

int mr_router_opts_get_choice(mr_router_opts *o, const char *key, const char *no,
                              const char *yes, int *out)
{
    char buf[MR_NAME_LEN];
    int found;
    MR_TRY(mr_router_opts_get_string(o, key, buf, sizeof buf, &found));
    if (!found) return MR_OK;
    MR_REQUIRE(!strcmp(buf, no) || !strcmp(buf, yes), MR_EINPUT,
               "router option %s=%s must be %s or %s", key, buf, no, yes);
    *out = strcmp(buf, yes) == 0;
    return MR_OK;
}

int mr_router_opts_get_double(mr_router_opts *o, const char *key, double lo, double hi,
                              double *out)
{
    if (!o) return MR_OK;
    for (int i = 0; i < o->n; i++) {
        if (strcmp(o->key[i], key) != 0) continue;
        double v;
        MR_REQUIRE(mr_parse_double("", o->val[i], -HUGE_VAL, HUGE_VAL, &v) == MR_OK, MR_EINPUT,
                   "router option %s=%s is not a number", key, o->val[i]);
        MR_REQUIRE(v >= lo && v <= hi, MR_EINPUT, "router option %s=%s is outside [%g, %g]",
                   key, o->val[i], lo, hi);
        o->used[i] = 1;
        *out = v;
    }
    return MR_OK;
}

int mr_router_alloc(mr_router **out, const char *name, const mr_model *m, mr_router_opts *opts)
{
    *out = NULL;
    const mr_router_type *t = mr_router_lookup(name);
    if (!t) {
        char list[512] = "";
        for (int i = 0; mr_router_types[i]; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, mr_router_types[i]->name, sizeof list - strlen(list) - 1);
        }
        return mr_error_set(MR_EINPUT, "unknown router '%s' (known: %s)", name, list);
    }
    mr_router *r = calloc(1, sizeof *r);
    if (!r) return mr_error_set(MR_ENOMEM, "out of memory creating router %s", name);
    r->type = t;
    if (t->state_size) {
        r->state = calloc(1, t->state_size);
        if (!r->state) {
            free(r);
            return mr_error_set(MR_ENOMEM, "out of memory creating router %s", name);
        }
    }
    int st = t->init(r->state, m, opts);
    for (int i = 0; st == MR_OK && opts && i < opts->n; i++)
        if (!opts->used[i])
            st = mr_error_set(MR_EINPUT, "router %s has no option '%s'", name, opts->key[i]);
    if (st != MR_OK) {
        mr_error_prefix(st, "router %s on %s", name, m->path);
        mr_router_free(r);
        return st;
    }
    *out = r;
    return MR_OK;
}

void mr_router_free(mr_router *r)
{
    if (!r) return;
    if (r->type->free && r->state) r->type->free(r->state);
    free(r->state);
    free(r);
}

size_t mr_router_scratch_floats(const mr_router *r, const mr_model *m, int B, int T)
{
    return r->type->scratch_floats ? r->type->scratch_floats(r->state, m, B, T) : 0;
}

void mr_route_weights(float *w, const float *p, const int *idx, int k, int gate_norm)
{
    if (gate_norm == MR_GATE_NONE) {
        for (int j = 0; j < k; j++) w[j] = p[idx[j]];
        return;
    }
    double s = 0.0;
    for (int j = 0; j < k; j++) s += p[idx[j]];
    for (int j = 0; j < k; j++) w[j] = (float)(p[idx[j]] / s);
}

void mr_route_from_logits(float *probs, int *topk, float *weights, int N, int E, int k,
                          int gate_norm)
{
    mr_softmax_rows(probs, N, E);
    for (int n = 0; n < N; n++) {
        mr_route_topk(topk + (size_t)n * k, probs + (size_t)n * E, E, k);
        mr_route_weights(weights + (size_t)n * k, probs + (size_t)n * E, topk + (size_t)n * k,
                         k, gate_norm);
    }
}

void mr_route_softmax_gate(float *probs, int *topk, float *weights, const float *x,
                           const mr_layer *layer, int N, int d, int E, int k, int gate_norm)
{
    mr_linear_forward(probs, x, layer->gate_w, layer->gate_b, N, d, E); /* logits [N,E] */
    mr_route_from_logits(probs, topk, weights, N, E, k, gate_norm);
}

int mr_route_baseline(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                      float *weights)
{
    (void)state;
    const mr_config *cfg = &c->model->cfg;
    mr_route_softmax_gate(probs, topk, weights, c->x, &c->model->layers[c->layer], c->B * c->T,
                          cfg->d_model, cfg->n_experts, c->k, cfg->gate_norm);
    return MR_OK;
}

double mr_router_model_param(const mr_layer *layer, const char *name, double dflt)
{
    const mr_named_tensor *t = mr_layer_router_tensor(layer, name);
    return t && t->size == 1 ? (double)t->data[0] : dflt;
}

void mr_route_mix(float *probs, int *topk, float *weights, const float *S, const float *G,
                  int T, int E, int k)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, E, T, 1.0f, S, T, G, E, 0.0f,
                probs, E);
    for (int t = 0; t < T; t++) {
        mr_route_topk(topk + (size_t)t * k, probs + (size_t)t * E, E, k);
        mr_route_weights(weights + (size_t)t * k, probs + (size_t)t * E, topk + (size_t)t * k,
                         k, MR_GATE_RENORM);
    }
}
