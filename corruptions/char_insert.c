/* char_insert — TextAttack WordSwapRandomCharacterInsertion. */
#include "../analysis/mr_error.h"
#include "mr_corrupt_impl.h"

/* Fraction of a row's words edited (one character each, TextAttack's random_one).
 * TextAttack's CharSwapAugmenter default pct_words_to_swap 0.1 is severity 2, nlpaug's
 * KeyboardAug aug_word_p 0.3 severity 4. */
static const double char_insert_rate[MR_SEVERITY_MAX] = {0.05, 0.10, 0.20, 0.30, 0.50};

static void edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    (void)in;
    /* before a random position of the word (never after its last letter) */
    int p = start + (int)gsl_rng_uniform_int(r, (unsigned long)len);
    ws->op[p] = MR_OP_INS;
    ws->opv[p] = mr_text_random_letter(ws, r);
}

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    MR_REQUIRE(ws->n_letters > 0, MR_EINPUT, "the vocabulary has no ASCII letter to insert");
    return mr_text_word_ops(out, in, cols, char_insert_rate[s - 1], 2, edit, r, ws);
}

const mr_corruption_type mr_corruption_char_insert = {
    .name = "char_insert", .modality = MR_MOD_TEXT,
    .benchmark = "TextAttack WordSwapRandomCharacterInsertion",
    .summary = "a random letter inserted into 5 % .. 50 % of the words",
    .deterministic = 0, .default_severity = 0, .text = apply};
