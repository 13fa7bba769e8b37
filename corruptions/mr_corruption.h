/* mr_corruption.h — the corruption library (docs/corruptions.md).
 *
 * A corruption is a const mr_corruption_type (one file under corruptions/): its name,
 * modality (image, text or embedding), the benchmark it follows, and one apply
 * function. Every corruption has severities 1..5 (MR_SEVERITY_MAX); its parameters are
 * a static const table in its file.
 *
 * Determinism: a corrupted sample is a pure function of (input, corruption, severity,
 * seed, sample index). Sample i of a batch draws only from the GSL mt19937 stream
 * mr_rng(seed, "corrupt/<name>", first_index + i) (analysis/mr_rng.h), re-seeded per
 * sample, so results do not depend on thread count, batch size or order. The stream
 * does not depend on the severity either: severities of one sample share their random
 * draws (same noise pattern, same sign of a shear), which keeps severity comparisons
 * paired.
 *
 * Ranges: images stay uint8 (0..255), token ids stay in 0..V-1, rows keep their length.
 *
 * Ownership: the registry and the types are static; the caller owns every buffer it
 * passes and the workspace (mr_corrupt_ws_alloc / mr_corrupt_ws_free, one per thread).
 * No function allocates per sample except jpeg_compression, whose libjpeg codec
 * allocates internally.
 */
#ifndef MR_CORRUPTION_H
#define MR_CORRUPTION_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

enum mr_modality { MR_MOD_IMAGE = 0, MR_MOD_TEXT = 1, MR_MOD_EMBED = 2 };

#define MR_SEVERITY_MAX 5

/* Corruption families (docs/corruptions.md "Families"): ImageNet-C's four (Hendrycks &
 * Dietterich 2019, Fig. 1: noise, blur, weather, digital; its extra corruptions speckle
 * noise, Gaussian blur, spatter, saturate placed as docs/corruptions.md says), the affine
 * and flip transforms, MNIST-C's overlays and edges without an ImageNet-C family (Mu &
 * Gilmer 2019), text, embedding. Every per-corruption metric is also reported per family
 * (the mean over the family's corruptions of the run). NONE: not a corruption of the
 * library (a trace's own condition name), reported as family "other". */
enum mr_family {
    MR_FAMILY_NONE = 0, MR_FAMILY_NOISE, MR_FAMILY_BLUR, MR_FAMILY_WEATHER, MR_FAMILY_DIGITAL,
    MR_FAMILY_GEOMETRIC, MR_FAMILY_MNISTC, MR_FAMILY_TEXT, MR_FAMILY_EMBED, MR_FAMILY_N
};
/* "noise", "blur", "weather", "digital", "geometric", "mnist-c", "text", "embedding"
 * ("other" for NONE or out of range). */
const char *mr_family_name(int family);
/* The family of the corruption called `name` (MR_FAMILY_NONE if unknown). */
int mr_corruption_family(const char *name);

typedef struct mr_corrupt_ws mr_corrupt_ws;

/* Apply functions of one sample (the batch helpers below loop, re-seed `r` per sample
 * and check arguments; call those). `severity` is 1..5. */
/* image: out, in [H, W, C] uint8, C = 1 or 3; out != in */
typedef int (*mr_corrupt_image_fn)(uint8_t *out, const uint8_t *in, int H, int W, int C,
                                   int severity, gsl_rng *r, mr_corrupt_ws *ws);
/* text: out, in [cols] token ids of a character vocabulary; out != in */
typedef int (*mr_corrupt_text_fn)(int32_t *out, const int32_t *in, int cols, int severity,
                                  gsl_rng *r, mr_corrupt_ws *ws);
/* embeddings: x [T, d] in place; feature_std [d] (may be NULL when unused) */
typedef int (*mr_corrupt_embed_fn)(float *x, int T, int d, const float *feature_std,
                                   int severity, gsl_rng *r);

typedef struct mr_corruption_type {
    const char *name;       /* registry key, e.g. "shot_noise" */
    int modality;           /* enum mr_modality */
    int family;             /* enum mr_family */
    const char *benchmark;  /* what it follows, e.g. "MNIST-C shot_noise" */
    const char *summary;    /* one line for --list and docs */
    int deterministic;      /* 1: the output does not depend on the seed */
    int default_severity;   /* the benchmark's own severity (1..5), 0 if it has none */
    int ids_only;           /* text: works on token ids alone, needs no code points (/vocab);
                               the others need a character vocabulary */
    mr_corrupt_image_fn image;  /* set for MR_MOD_IMAGE */
    mr_corrupt_text_fn text;    /* set for MR_MOD_TEXT */
    mr_corrupt_embed_fn embed;  /* set for MR_MOD_EMBED */
} mr_corruption_type;

/* Every corruption, NULL-terminated, in documentation order. */
extern const mr_corruption_type *const mr_corruption_types[];

/* The type called `name`, or NULL. */
const mr_corruption_type *mr_corruption_lookup(const char *name);

/* Parse "NAME:S" (S = 1..5). MR_EINPUT naming the unknown name (with the list of known
 * ones) or the bad severity. */
int mr_corruption_parse(const char *spec, const mr_corruption_type **t, int *severity);

/* Check 1 <= severity <= MR_SEVERITY_MAX (MR_EINPUT naming the corruption and value). */
int mr_corruption_check_severity(const mr_corruption_type *t, int severity);

/* Workspace for one thread: images of exactly [H, W, C] (H = W = C = 0: none) and
 * token rows of at most `cols` ids (0: none). Everything a sample needs is allocated
 * here once. On error *out stays NULL. */
int mr_corrupt_ws_alloc(mr_corrupt_ws **out, int H, int W, int C, int cols);
void mr_corrupt_ws_free(mr_corrupt_ws *ws);

/* n images out/in [n, H, W, C] (out != in); sample i uses the stream
 * (seed, "corrupt/<name>", first_index + i). The workspace must have been allocated
 * for this (H, W, C). */
int mr_corrupt_images(uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                      const mr_corruption_type *t, int severity, uint64_t seed,
                      uint64_t first_index, mr_corrupt_ws *ws);

/* n rows of `cols` token ids out/in [n, cols] (out != in); `vocab` [V] holds the
 * Unicode code point of every id (the model's /vocab). Output rows have the same
 * length and ids in 0..V-1: an insertion pushes the row's last id out, a deletion pads
 * the row's end with a space (or, if the vocabulary has none, the row's last id).
 * The workspace must have been allocated with cols >= this cols. */
int mr_corrupt_tokens(int32_t *out, const int32_t *in, int n, int cols, const int32_t *vocab,
                      int V, const mr_corruption_type *t, int severity, uint64_t seed,
                      uint64_t first_index, mr_corrupt_ws *ws);

/* Embeddings x [n*T, d] of n samples in place (sample i owns rows i*T .. i*T+T-1).
 * feature_std [d] is the per-feature std of the clean embeddings (required by
 * embed_gaussian, may be NULL for embed_dropout; see mr_embed_stats). Allocates one
 * generator per call. */
int mr_corrupt_embeddings(float *x, int n, int T, int d, const float *feature_std,
                          const mr_corruption_type *t, int severity, uint64_t seed,
                          uint64_t first_index);

/* Per-feature mean and std of clean embeddings, accumulated in double in the order rows
 * are added (add micro-batches in sample order for thread-independent results).
 * Ownership: the caller frees with mr_embed_stats_free. */
typedef struct mr_embed_stats {
    int d;
    long long rows;
    double *sum, *sumsq; /* [d] */
} mr_embed_stats;

int mr_embed_stats_alloc(mr_embed_stats **out, int d);
void mr_embed_stats_add(mr_embed_stats *s, const float *x, long long rows);
/* std[d] = population std of each feature (MR_EINPUT if no rows were added). */
int mr_embed_stats_std(const mr_embed_stats *s, float *std);
void mr_embed_stats_free(mr_embed_stats *s);

#endif
