/* embed_gaussian — additive Gaussian noise on the input embeddings (patch or token,
 * after the position embedding), scaled per feature by the clean embeddings' std. */
#include <gsl/gsl_randist.h>

#include "../analysis/mr_error.h"
#include "mr_corrupt_impl.h"

/* noise std = k * feature_std[j] */
static const double embed_k[MR_SEVERITY_MAX] = {0.1, 0.2, 0.4, 0.7, 1.0};

static int apply(float *x, int T, int d, const float *feature_std, int s, gsl_rng *r)
{
    MR_REQUIRE(feature_std, MR_EINPUT,
               "embed_gaussian needs the per-feature std of the clean embeddings");
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            double z = gsl_ran_gaussian(r, 1.0);
            x[(size_t)t * d + j] += (float)(embed_k[s - 1] * feature_std[j] * z);
        }
    return MR_OK;
}

const mr_corruption_type mr_corruption_embed_gaussian = {
    .name = "embed_gaussian", .modality = MR_MOD_EMBED,
    .family = MR_FAMILY_EMBED, .benchmark = "embedding-space noise",
    .summary = "Gaussian noise on the input embeddings, std .1 .. 1 x the clean feature std",
    .deterministic = 0, .default_severity = 0, .embed = apply};
