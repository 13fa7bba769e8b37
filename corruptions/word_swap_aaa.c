/* word_swap_aaa — the TextAttack recipe of the AC-MoE and MomentumSMoE robustness
 * experiments on WikiText-103: non-stopword words replaced by the unknown word "AAA". */
#include "mr_corrupt_impl.h"

/* Fraction of the words of a row replaced. ACMoE language-modeling/data.py uses
 * pct_words_to_swap 0.025 (our severity 3), the Elliptical-Attention WordAttack 0.015
 * (severity 2). */
static const double aaa_rate[MR_SEVERITY_MAX] = {0.01, 0.015, 0.025, 0.05, 0.10};

/* A word-level model sees one <unk> token; a character model sees the word's characters
 * replaced, one for one, by the unknown word's letter 'A' (length kept). */
static void edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    (void)in;
    (void)r;
    for (int k = 0; k < len; k++) {
        ws->op[start + k] = MR_OP_SUB;
        ws->opv[start + k] = ws->filler_id;
    }
}

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    return mr_text_word_ops(out, in, cols, aaa_rate[s - 1], 1, edit, r, ws);
}

const mr_corruption_type mr_corruption_word_swap_aaa = {
    .name = "word_swap_aaa", .modality = MR_MOD_TEXT,
    .family = MR_FAMILY_TEXT,
    .benchmark = "TextAttack AAAWordSwap + StopwordModification (ACMoE, MomentumSMoE)",
    .summary = "1 % .. 10 % of the words (non-stopwords) blanked to 'AAA..' of equal length",
    .deterministic = 0, .default_severity = 3, .text = apply};
