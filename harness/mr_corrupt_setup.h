/* mr_corrupt_setup.h — binds a corruption (corruptions/mr_corruption.h) at one severity to
 * a model and dataset, as the mr_eval_corruption the evaluation driver calls.
 *
 * It checks that the corruption's modality fits the data (images, tokens, or either for
 * embedding-space corruptions), owns one corruption workspace per thread, and for
 * embed_gaussian computes the per-feature std of the clean input embeddings over the
 * whole dataset, in sample order (deterministic).
 * Ownership: the caller owns the setup (mr_corrupt_setup_free).
 */
#ifndef MR_CORRUPT_SETUP_H
#define MR_CORRUPT_SETUP_H

#include "../corruptions/mr_corruption.h"
#include "mr_corrupt_cache.h"
#include "mr_eval.h"

typedef struct mr_corrupt_setup {
    mr_eval_corruption ec;       /* hand &setup->ec to mr_eval_opts.corruption */
    const mr_corruption_type *t;
    int severity;
    uint64_t seed;
    const int32_t *vocab;        /* the model's (text corruptions) */
    int V;
    float *feature_std;          /* [d] (embedding corruptions) */
    mr_corrupt_ws **ws;          /* [threads] */
    mr_corrupt_kept *kept;       /* NULL, or where a run keeps this corruption's samples
                                    (mr_corrupt_cache.h; set after init, not owned) */
    int threads;
    char label[96];
} mr_corrupt_setup;

/* `engine` is the engine options the evaluation will use (for the statistics pass). */
int mr_corrupt_setup_init(mr_corrupt_setup *s, const mr_corruption_type *t, int severity,
                          uint64_t seed, const mr_model *m, const mr_router *r,
                          const mr_dataset *d, const mr_engine_opts *engine, int threads);
void mr_corrupt_setup_free(mr_corrupt_setup *s);

#endif
