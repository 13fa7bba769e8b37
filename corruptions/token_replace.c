/* token_replace — random token replacement: every position independently replaced, with
 * probability p, by a uniformly random other id of the vocabulary. */
#include "mr_corrupt_impl.h"

/* p per position */
static const double replace_p[MR_SEVERITY_MAX] = {0.01, 0.02, 0.05, 0.10, 0.20};

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    unsigned long V = (unsigned long)ws->V;
    for (int i = 0; i < cols; i++) {
        out[i] = in[i];
        if (gsl_rng_uniform(r) < replace_p[s - 1]) {
            int32_t v = (int32_t)gsl_rng_uniform_int(r, V - 1); /* an id != in[i] */
            out[i] = v >= in[i] ? v + 1 : v;
        }
    }
    return 0;
}

const mr_corruption_type mr_corruption_token_replace = {
    .name = "token_replace", .modality = MR_MOD_TEXT,
    .family = MR_FAMILY_TEXT, .benchmark = "random token replacement",
    .summary = "each token replaced with probability 1 % .. 20 % by a random other token",
    .deterministic = 0, .default_severity = 0, .ids_only = 1, .text = apply};
