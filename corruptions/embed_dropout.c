/* embed_dropout — random zeroing of input-embedding features (no rescaling: a
 * corruption, not training dropout). */
#include "../analysis/mr_error.h"
#include "mr_corrupt_impl.h"

/* probability of zeroing each feature of each token */
static const double dropout_p[MR_SEVERITY_MAX] = {0.05, 0.10, 0.20, 0.30, 0.50};

static int apply(float *x, int T, int d, const float *feature_std, int s, gsl_rng *r)
{
    (void)feature_std;
    for (size_t i = 0; i < (size_t)T * d; i++)
        if (gsl_rng_uniform(r) < dropout_p[s - 1]) x[i] = 0.0f;
    return MR_OK;
}

const mr_corruption_type mr_corruption_embed_dropout = {
    .name = "embed_dropout", .modality = MR_MOD_EMBED,
    .family = MR_FAMILY_EMBED, .benchmark = "embedding-space dropout",
    .summary = "input-embedding features zeroed with probability 5 % .. 50 %",
    .deterministic = 0, .default_severity = 0, .embed = apply};
