/* char_swap — TextAttack WordSwapNeighboringCharacterSwap. */
#include "mr_corrupt_impl.h"

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
    return mr_text_char_ops(out, in, cols, s, edit, r, ws);
}

const mr_corruption_type mr_corruption_char_swap = {
    .name = "char_swap", .modality = MR_MOD_TEXT,
    .family = MR_FAMILY_TEXT,
    .benchmark = "TextAttack WordSwapNeighboringCharacterSwap",
    .summary = "two neighbouring letters swapped in 5 % .. 50 % of the words",
    .deterministic = 0, .default_severity = 0, .text = apply};
