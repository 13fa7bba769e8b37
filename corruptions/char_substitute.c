/* char_substitute — TextAttack WordSwapRandomCharacterSubstitution. */
#include "mr_corrupt_impl.h"

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    return mr_text_letter_ops(out, in, cols, s, MR_OP_SUB, r, ws);
}

const mr_corruption_type mr_corruption_char_substitute = {
    .name = "char_substitute", .modality = MR_MOD_TEXT,
    .family = MR_FAMILY_TEXT,
    .benchmark = "TextAttack WordSwapRandomCharacterSubstitution",
    .summary = "one letter of 5 % .. 50 % of the words replaced by a random letter",
    .deterministic = 0, .default_severity = 0, .text = apply};
