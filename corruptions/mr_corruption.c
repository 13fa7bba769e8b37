/* Registry, argument parsing, workspaces and the batch drivers of the corruption
 * library (mr_corruption.h). */
#include "mr_corruption.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "../analysis/mr_rng.h"
#include "mr_corrupt_impl.h"

/* Documentation order (docs/corruptions.md): MNIST-C, the Fashion-MNIST-C extras, the
 * ImageNet-C family, text, embeddings. */
const mr_corruption_type *const mr_corruption_types[] = {
    &mr_corruption_shot_noise,     &mr_corruption_impulse_noise,
    &mr_corruption_glass_blur,     &mr_corruption_motion_blur,
    &mr_corruption_shear,          &mr_corruption_scale,
    &mr_corruption_rotate,         &mr_corruption_brightness,
    &mr_corruption_translate,      &mr_corruption_stripe,
    &mr_corruption_fog,            &mr_corruption_spatter,
    &mr_corruption_dotted_line,    &mr_corruption_zigzag,
    &mr_corruption_canny_edges,    &mr_corruption_contrast,
    &mr_corruption_saturate,       &mr_corruption_inverse,
    &mr_corruption_flip_lr,        &mr_corruption_flip_ud,
    &mr_corruption_rot90_cw,       &mr_corruption_rot90_ccw,
    &mr_corruption_gaussian_noise, &mr_corruption_speckle_noise,
    &mr_corruption_gaussian_blur,  &mr_corruption_defocus_blur,
    &mr_corruption_zoom_blur,      &mr_corruption_pixelate,
    &mr_corruption_jpeg_compression, &mr_corruption_elastic_transform,
    &mr_corruption_word_swap_aaa,  &mr_corruption_char_substitute,
    &mr_corruption_char_insert,    &mr_corruption_char_delete,
    &mr_corruption_char_swap,      &mr_corruption_keyboard_typo,
    &mr_corruption_token_replace,  &mr_corruption_embed_gaussian,
    &mr_corruption_embed_dropout,  NULL};

const mr_corruption_type *mr_corruption_lookup(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; mr_corruption_types[i]; i++)
        if (strcmp(mr_corruption_types[i]->name, name) == 0) return mr_corruption_types[i];
    return NULL;
}

int mr_corruption_check_severity(const mr_corruption_type *t, int severity)
{
    MR_REQUIRE(severity >= 1 && severity <= MR_SEVERITY_MAX, MR_EINPUT,
               "corruption %s: severity %d is outside 1..%d", t->name, severity,
               MR_SEVERITY_MAX);
    return MR_OK;
}

static int unknown_name(const char *name, size_t len)
{
    char known[2048];
    size_t at = 0;
    for (int i = 0; mr_corruption_types[i] && at < sizeof known; i++)
        at += (size_t)snprintf(known + at, sizeof known - at, "%s%s", i ? ", " : "",
                               mr_corruption_types[i]->name);
    return mr_error_set(MR_EINPUT, "unknown corruption '%.*s' (known: %s)", (int)len, name,
                        known);
}

int mr_corruption_parse(const char *spec, const mr_corruption_type **t, int *severity)
{
    *t = NULL;
    *severity = 0;
    MR_REQUIRE(spec && *spec, MR_EINPUT, "empty corruption (expected NAME:SEVERITY)");
    const char *colon = strchr(spec, ':');
    MR_REQUIRE(colon, MR_EINPUT,
               "corruption '%s' has no severity (expected NAME:SEVERITY, severity 1..%d)",
               spec, MR_SEVERITY_MAX);
    size_t len = (size_t)(colon - spec);
    const mr_corruption_type *found = NULL;
    for (int i = 0; mr_corruption_types[i]; i++)
        if (strlen(mr_corruption_types[i]->name) == len &&
            strncmp(mr_corruption_types[i]->name, spec, len) == 0)
            found = mr_corruption_types[i];
    if (!found) return unknown_name(spec, len);
    const char *s = colon + 1;
    long long v;
    MR_REQUIRE(mr_parse_ll("severity", s, LLONG_MIN, LLONG_MAX, &v) == MR_OK, MR_EINPUT,
               "corruption %s: severity '%s' is not an integer", found->name, s);
    MR_REQUIRE(v >= 1 && v <= MR_SEVERITY_MAX, MR_EINPUT,
               "corruption %s: severity %s is outside 1..%d", found->name, s, MR_SEVERITY_MAX);
    *t = found;
    *severity = (int)v;
    return MR_OK;
}

/* ------------------------------------------------------------------ workspace */
void mr_corrupt_ws_free(mr_corrupt_ws *ws)
{
    if (!ws) return;
    if (ws->rng) gsl_rng_free(ws->rng);
    for (int i = 0; i < 4; i++) free(ws->f[i]);
    free(ws->u);
    free(ws->lab);
    free(ws->stack);
    free(ws->plasma);
    free(ws->plasma_u);
    free(ws->jbuf);
    free(ws->wstart);
    free(ws->wlen);
    free(ws->wpick);
    free(ws->wsel);
    free(ws->op);
    free(ws->opv);
    free(ws);
}

int mr_corrupt_ws_alloc(mr_corrupt_ws **out, int H, int W, int C, int cols)
{
    *out = NULL;
    int img = H != 0 || W != 0 || C != 0;
    if (img) {
        MR_REQUIRE(H >= 1 && W >= 1 && H <= 65536 && W <= 65536, MR_EINPUT,
                   "corruption workspace: image size %dx%d is outside 1..65536", H, W);
        MR_REQUIRE(C == 1 || C == 3, MR_EINPUT,
                   "corruption workspace: %d channels (images have 1 or 3)", C);
        MR_REQUIRE((size_t)H * W <= ((size_t)1 << 28), MR_EINPUT,
                   "corruption workspace: image %dx%d is too large", H, W);
    }
    MR_REQUIRE(cols >= 0 && cols <= (1 << 28), MR_EINPUT,
               "corruption workspace: row length %d is outside 0..%d", cols, 1 << 28);
    mr_corrupt_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return mr_error_set(MR_ENOMEM, "out of memory");
    ws->H = img ? H : 0;
    ws->W = img ? W : 0;
    ws->C = img ? C : 0;
    ws->cols = cols;
    int ok = (ws->rng = gsl_rng_alloc(gsl_rng_mt19937)) != NULL;
    if (img && ok) {
        size_t n = (size_t)H * W * C, hw = (size_t)H * W;
        for (int i = 0; i < 4; i++) ok = ok && (ws->f[i] = malloc(n * sizeof(double)));
        ok = ok && (ws->u = malloc(n));
        ok = ok && (ws->lab = malloc(hw * sizeof(int))) && (ws->stack = malloc(hw * sizeof(int)));
        /* fog's plasma: mnist-c uses a 256 x 256 map; larger images get the next power
         * of two that covers them */
        int pn = 256;
        while (pn < H || pn < W) pn *= 2;
        ws->pn = pn;
        ok = ok && (ws->plasma = malloc((size_t)pn * pn * sizeof(double)));
        ok = ok && (ws->plasma_u = malloc((size_t)pn / 2 * (pn / 2) * sizeof(double)));
        ws->jcap = (unsigned long)(n + 65536);
        ok = ok && (ws->jbuf = malloc(ws->jcap));
    }
    if (cols > 0 && ok) {
        size_t n = (size_t)cols;
        ok = (ws->wstart = malloc(n * sizeof(int))) &&
             (ws->wlen = malloc(n * sizeof(int))) && (ws->wpick = malloc(n * sizeof(int))) &&
             (ws->wsel = malloc(n * sizeof(int))) && (ws->op = malloc(n * sizeof(int))) &&
             (ws->opv = malloc(n * sizeof(int32_t)));
    }
    if (!ok) {
        mr_corrupt_ws_free(ws);
        return mr_error_set(MR_ENOMEM, "out of memory allocating a corruption workspace");
    }
    *out = ws;
    return MR_OK;
}

/* ------------------------------------------------------------------ drivers */
static void purpose(char *buf, size_t cap, const mr_corruption_type *t)
{
    snprintf(buf, cap, "corrupt/%s", t->name);
}

int mr_corrupt_images(uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                      const mr_corruption_type *t, int severity, uint64_t seed,
                      uint64_t first_index, mr_corrupt_ws *ws)
{
    MR_REQUIRE(t && t->modality == MR_MOD_IMAGE && t->image, MR_EINPUT,
               "corruption %s does not apply to images", t ? t->name : "(null)");
    MR_TRY(mr_corruption_check_severity(t, severity));
    MR_REQUIRE(ws && ws->H == H && ws->W == W && ws->C == C && H > 0, MR_EINPUT,
               "corruption %s: workspace is for %dx%dx%d images, not %dx%dx%d", t->name,
               ws ? ws->H : 0, ws ? ws->W : 0, ws ? ws->C : 0, H, W, C);
    MR_REQUIRE(n >= 0 && out != in, MR_EINPUT, "corruption %s: bad batch (n = %d, out == in: %d)",
               t->name, n, out == in);
    char p[96];
    purpose(p, sizeof p, t);
    size_t per = (size_t)H * W * C;
    for (int i = 0; i < n; i++) {
        mr_rng_reseed(ws->rng, seed, p, first_index + (uint64_t)i);
        int st = t->image(out + i * per, in + i * per, H, W, C, severity, ws->rng, ws);
        if (st != MR_OK) return mr_error_prefix(st, "corruption %s, sample %llu", t->name,
                                                (unsigned long long)(first_index + i));
    }
    return MR_OK;
}

int mr_corrupt_tokens(int32_t *out, const int32_t *in, int n, int cols, const int32_t *vocab,
                      int V, const mr_corruption_type *t, int severity, uint64_t seed,
                      uint64_t first_index, mr_corrupt_ws *ws)
{
    MR_REQUIRE(t && t->modality == MR_MOD_TEXT && t->text, MR_EINPUT,
               "corruption %s does not apply to tokens", t ? t->name : "(null)");
    MR_TRY(mr_corruption_check_severity(t, severity));
    MR_REQUIRE(ws && cols >= 1 && cols <= ws->cols, MR_EINPUT,
               "corruption %s: rows of %d tokens, workspace holds %d", t->name, cols,
               ws ? ws->cols : 0);
    MR_REQUIRE((vocab || t->ids_only) && V >= 2, MR_EINPUT,
               "corruption %s: needs a vocabulary of >= 2 tokens%s", t->name,
               vocab ? "" : " with their characters");
    MR_REQUIRE(n >= 0 && out != in, MR_EINPUT, "corruption %s: bad batch (n = %d)", t->name, n);
    for (size_t i = 0; i < (size_t)n * cols; i++)
        MR_REQUIRE(in[i] >= 0 && in[i] < V, MR_EINPUT,
                   "corruption %s: token id %d at row %zu is outside 0..%d", t->name, in[i],
                   i / (size_t)cols, V - 1);
    if (vocab) {
        MR_TRY(mr_text_prepare(ws, vocab, V));
    } else { /* token ids alone (ids_only corruptions) */
        ws->vocab = NULL;
        ws->V = V;
    }
    char p[96];
    purpose(p, sizeof p, t);
    for (int i = 0; i < n; i++) {
        mr_rng_reseed(ws->rng, seed, p, first_index + (uint64_t)i);
        size_t o = (size_t)i * cols;
        int st = t->text(out + o, in + o, cols, severity, ws->rng, ws);
        if (st != MR_OK) return mr_error_prefix(st, "corruption %s, sample %llu", t->name,
                                                (unsigned long long)(first_index + i));
    }
    return MR_OK;
}

int mr_corrupt_embeddings(float *x, int n, int T, int d, const float *feature_std,
                          const mr_corruption_type *t, int severity, uint64_t seed,
                          uint64_t first_index)
{
    MR_REQUIRE(t && t->modality == MR_MOD_EMBED && t->embed, MR_EINPUT,
               "corruption %s does not apply to embeddings", t ? t->name : "(null)");
    MR_TRY(mr_corruption_check_severity(t, severity));
    MR_REQUIRE(n >= 0 && T >= 1 && d >= 1, MR_EINPUT,
               "corruption %s: bad embedding shape n = %d, T = %d, d = %d", t->name, n, T, d);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) return mr_error_set(MR_ENOMEM, "out of memory");
    char p[96];
    purpose(p, sizeof p, t);
    int st = MR_OK;
    for (int i = 0; i < n && st == MR_OK; i++) {
        mr_rng_reseed(r, seed, p, first_index + (uint64_t)i);
        st = t->embed(x + (size_t)i * T * d, T, d, feature_std, severity, r);
    }
    gsl_rng_free(r);
    return st;
}

/* ------------------------------------------------------------------ embedding stats */
int mr_embed_stats_alloc(mr_embed_stats **out, int d)
{
    *out = NULL;
    MR_REQUIRE(d >= 1, MR_EINPUT, "embedding stats: d = %d", d);
    mr_embed_stats *s = calloc(1, sizeof *s);
    if (!s || !(s->sum = calloc((size_t)d, sizeof(double))) ||
        !(s->sumsq = calloc((size_t)d, sizeof(double)))) {
        mr_embed_stats_free(s);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    s->d = d;
    *out = s;
    return MR_OK;
}

void mr_embed_stats_add(mr_embed_stats *s, const float *x, long long rows)
{
    for (long long i = 0; i < rows; i++)
        for (int j = 0; j < s->d; j++) {
            double v = x[(size_t)i * s->d + j];
            s->sum[j] += v;
            s->sumsq[j] += v * v;
        }
    s->rows += rows;
}

int mr_embed_stats_std(const mr_embed_stats *s, float *std)
{
    MR_REQUIRE(s->rows > 0, MR_EINPUT, "embedding stats: no rows added");
    for (int j = 0; j < s->d; j++) {
        double m = s->sum[j] / s->rows, v = s->sumsq[j] / s->rows - m * m;
        std[j] = (float)(v > 0 ? sqrt(v) : 0.0);
    }
    return MR_OK;
}

void mr_embed_stats_free(mr_embed_stats *s)
{
    if (!s) return;
    free(s->sum);
    free(s->sumsq);
    free(s);
}

const char *mr_family_name(int family)
{
    static const char *const names[MR_FAMILY_N] = {
        "other", "noise", "blur", "weather", "digital", "geometric", "mnist-c", "text",
        "embedding"};
    return family > 0 && family < MR_FAMILY_N ? names[family] : names[0];
}

int mr_corruption_family(const char *name)
{
    const mr_corruption_type *t = mr_corruption_lookup(name);
    return t ? t->family : MR_FAMILY_NONE;
}
