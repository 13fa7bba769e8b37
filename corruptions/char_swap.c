/* char_swap — TextAttack WordSwapNeighboringCharacterSwap. */
#include "mr_corrupt_impl.h"

/* Fraction of a row's words edited (one character each, TextAttack's random_one).
 * TextAttack's CharSwapAugmenter default pct_words_to_swap 0.1 is severity 2, nlpaug's
 * KeyboardAug aug_word_p 0.3 severity 4. */
static const double char_swap_rate[MR_SEVERITY_MAX] = {0.05, 0.10, 0.20, 0.30, 0.50};

static void edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    int p = start + (int)gsl_rng_uniform_int(r, (unsigned long)(len - 1));
    ws->op[p] = ws->op[p + 1] = MR_OP_SUB;
    ws->opv[p] = in[p + 1];
    ws->opv[p + 1] = in[p];
}

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    return mr_text_word_ops(out, in, cols, char_swap_rate[s - 1], 2, edit, r, ws);
}

const mr_corruption_type mr_corruption_char_swap = {
    .name = "char_swap", .modality = MR_MOD_TEXT,
    .benchmark = "TextAttack WordSwapNeighboringCharacterSwap",
    .summary = "two neighbouring letters swapped in 5 % .. 50 % of the words",
    .deterministic = 0, .default_severity = 0, .text = apply};
