/* keyboard_typo — TextAttack WordSwapQWERTY / nlpaug KeyboardAug: a letter replaced by a
 * neighbouring key of a QWERTY keyboard. */
#include <math.h>
#include <string.h>

#include "mr_corrupt_impl.h"

/* Fraction of a row's words edited (one letter each); nlpaug KeyboardAug's aug_word_p
 * 0.3 is severity 4, TextAttack's CharSwapAugmenter 0.1 severity 2. */
static const double typo_rate[MR_SEVERITY_MAX] = {0.05, 0.10, 0.20, 0.30, 0.50};

/* Staggered QWERTY rows (key centres at offset + index: 0, 1/4, 3/4); neighbours are the
 * keys beside it and those above and below whose centre is less than one key away. */
static const char *const rows[3] = {"qwertyuiop", "asdfghjkl", "zxcvbnm"};
static const double row_off[3] = {0.0, 0.25, 0.75};

/* ids of the neighbours of code point c present in the vocabulary (same case) */
static int neighbours(const mr_corrupt_ws *ws, int32_t c, int32_t *ids)
{
    int upper = c >= 'A' && c <= 'Z', n = 0;
    char lc = (char)(upper ? c - 'A' + 'a' : c);
    if (!(lc >= 'a' && lc <= 'z')) return 0;
    for (int r = 0; r < 3; r++) {
        const char *p = strchr(rows[r], lc);
        if (!p) continue;
        double x = row_off[r] + (double)(p - rows[r]);
        for (int rr = r - 1; rr <= r + 1; rr++) {
            if (rr < 0 || rr > 2) continue;
            for (int j = 0; rows[rr][j]; j++) {
                double dx = fabs(row_off[rr] + j - x);
                int adj = rr == r ? dx == 1.0 : dx < 1.0;
                if (!adj) continue;
                int k = upper ? rows[rr][j] - 'a' + 'A' : rows[rr][j];
                if (ws->ascii_id[k] >= 0) ids[n++] = ws->ascii_id[k];
            }
        }
    }
    return n;
}

static void edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    /* a random letter position of the word that has a neighbour in the vocabulary */
    int32_t ids[16];
    int cand = 0;
    for (int k = 0; k < len; k++) cand += neighbours(ws, mr_text_cp(ws, in[start + k]), ids) > 0;
    if (cand == 0) return;
    int pick = (int)gsl_rng_uniform_int(r, (unsigned long)cand);
    for (int k = 0; k < len; k++) {
        int nn = neighbours(ws, mr_text_cp(ws, in[start + k]), ids);
        if (nn > 0 && pick-- == 0) {
            ws->op[start + k] = MR_OP_SUB;
            ws->opv[start + k] = ids[gsl_rng_uniform_int(r, (unsigned long)nn)];
            return;
        }
    }
}

static int apply(int32_t *out, const int32_t *in, int cols, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    return mr_text_word_ops(out, in, cols, typo_rate[s - 1], 2, edit, r, ws);
}

const mr_corruption_type mr_corruption_keyboard_typo = {
    .name = "keyboard_typo", .modality = MR_MOD_TEXT,
    .family = MR_FAMILY_TEXT,
    .benchmark = "TextAttack WordSwapQWERTY / nlpaug KeyboardAug",
    .summary = "one letter of 5 % .. 50 % of the words replaced by a QWERTY neighbour",
    .deterministic = 0, .default_severity = 0, .text = apply};
