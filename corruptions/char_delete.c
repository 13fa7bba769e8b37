/* char_delete — TextAttack WordSwapRandomCharacterDeletion. */
#include "mr_corrupt_impl.h"

static void edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    (void)in;
    ws->op[start + (int)gsl_rng_uniform_int(r, (unsigned long)len)] = MR_OP_DEL;
}

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    return mr_text_char_ops(out, in, cols, s, edit, r, ws);
}

const mr_corruption_type mr_corruption_char_delete = {
    .name = "char_delete", .modality = MR_MOD_TEXT,
    .family = MR_FAMILY_TEXT,
    .benchmark = "TextAttack WordSwapRandomCharacterDeletion",
    .summary = "one letter of 5 % .. 50 % of the words deleted",
    .deterministic = 0, .default_severity = 0, .text = apply};
