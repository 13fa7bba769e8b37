/* Shared text machinery: vocabulary tables, TextAttack-style word segmentation, the NLTK
 * English stopword list, word choice and length-preserving edit application. */
#include <gsl/gsl_randist.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_corrupt_impl.h"

/* NLTK's English stopword list (179 words), which TextAttack's StopwordModification
 * uses by default; compared case-sensitively. Sorted for bsearch (strcmp order). */
static const char *const stopwords[] = {
    "a", "about", "above", "after", "again", "against", "ain", "all", "am", "an", "and",
    "any", "are", "aren", "aren't", "as", "at", "be", "because", "been", "before", "being",
    "below", "between", "both", "but", "by", "can", "couldn", "couldn't", "d", "did",
    "didn", "didn't", "do", "does", "doesn", "doesn't", "doing", "don", "don't", "down",
    "during", "each", "few", "for", "from", "further", "had", "hadn", "hadn't", "has",
    "hasn", "hasn't", "have", "haven", "haven't", "having", "he", "her", "here", "hers",
    "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "isn",
    "isn't", "it", "it's", "its", "itself", "just", "ll", "m", "ma", "me", "mightn",
    "mightn't", "more", "most", "mustn", "mustn't", "my", "myself", "needn", "needn't",
    "no", "nor", "not", "now", "o", "of", "off", "on", "once", "only", "or", "other", "our",
    "ours", "ourselves", "out", "over", "own", "re", "s", "same", "shan", "shan't", "she",
    "she's", "should", "should've", "shouldn", "shouldn't", "so", "some", "such", "t",
    "than", "that", "that'll", "the", "their", "theirs", "them", "themselves", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until",
    "up", "ve", "very", "was", "wasn", "wasn't", "we", "were", "weren", "weren't", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "won", "won't",
    "wouldn", "wouldn't", "y", "you", "you'd", "you'll", "you're", "you've", "your",
    "yours", "yourself", "yourselves"};
#define N_STOPWORDS (sizeof stopwords / sizeof stopwords[0])

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int32_t mr_text_cp(const mr_corrupt_ws *ws, int32_t id)
{
    return id >= 0 && id < ws->V ? ws->vocab[id] : -1;
}

int mr_text_prepare(mr_corrupt_ws *ws, const int32_t *vocab, int V)
{
    ws->vocab = vocab;
    ws->V = V;
    for (int i = 0; i < 128; i++) ws->ascii_id[i] = -1;
    for (int id = V - 1; id >= 0; id--) /* first occurrence wins */
        if (vocab[id] >= 0 && vocab[id] < 128) ws->ascii_id[vocab[id]] = id;
    ws->n_letters = 0;
    for (int c = 'A'; c <= 'z'; c++) {
        if (c > 'Z' && c < 'a') continue;
        if (ws->ascii_id[c] >= 0) ws->letters[ws->n_letters++] = ws->ascii_id[c];
    }
    ws->pad_id = ws->ascii_id[' '];
    /* TextAttack's unknown word is "AAA": its letter, else any letter, else id 0 */
    ws->filler_id = ws->ascii_id['A'] >= 0 ? ws->ascii_id['A']
                    : ws->n_letters        ? ws->letters[0]
                                           : 0;
    return MR_OK;
}

static int is_word_cp(int32_t c)
{
    if (c >= 128) return 1; /* non-ASCII: treated as letters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '\'' || c == '-' || c == '*' || c == '@';
}

static int is_strip_cp(int32_t c)
{
    return c == '\'' || c == '-' || c == '_' || c == '*' || c == '@';
}

int mr_text_words(mr_corrupt_ws *ws, const int32_t *row, int cols)
{
    int n = 0, i = 0;
    while (i < cols) {
        while (i < cols && !is_word_cp(mr_text_cp(ws, row[i]))) i++;
        int start = i;
        while (i < cols && is_word_cp(mr_text_cp(ws, row[i]))) i++;
        /* words_from_text: lstrip("'-_*@") */
        while (start < i && is_strip_cp(mr_text_cp(ws, row[start]))) start++;
        if (start < i) {
            ws->wstart[n] = start;
            ws->wlen[n] = i - start;
            n++;
        }
    }
    return n;
}

int mr_text_is_stopword(const mr_corrupt_ws *ws, const int32_t *row, int w)
{
    char buf[16];
    int len = ws->wlen[w];
    if (len >= (int)sizeof buf) return 0;
    for (int k = 0; k < len; k++) {
        int32_t c = mr_text_cp(ws, row[ws->wstart[w] + k]);
        if (c <= 0 || c >= 128) return 0;
        buf[k] = (char)c;
    }
    buf[len] = '\0';
    const char *key = buf;
    return bsearch(&key, stopwords, N_STOPWORDS, sizeof stopwords[0], cmp_str) != NULL;
}

int mr_text_choose(mr_corrupt_ws *ws, const int32_t *row, int n_words, double rate,
                   int min_len, gsl_rng *r)
{
    int m = 0;
    for (int w = 0; w < n_words; w++)
        if (ws->wlen[w] >= min_len && !mr_text_is_stopword(ws, row, w)) ws->wpick[m++] = w;
    /* TextAttack swaps max(int(pct * words), 1) words per line; on fixed-length windows
     * that floor makes every small rate edit one word, so the count is rounded
     * stochastically instead: E[count] = rate * words */
    double want = rate * n_words + gsl_rng_uniform(r);
    int k = (int)want;
    if (k > m) k = m;
    if (k > 0) gsl_ran_choose(r, ws->wsel, (size_t)k, ws->wpick, (size_t)m, sizeof(int));
    return k;
}

void mr_text_apply_ops(int32_t *out, const int32_t *in, int cols, const mr_corrupt_ws *ws)
{
    int o = 0;
    for (int i = 0; i < cols && o < cols; i++) {
        switch (ws->op[i]) {
        case MR_OP_SUB: out[o++] = ws->opv[i]; break;
        case MR_OP_INS:
            out[o++] = ws->opv[i];
            if (o < cols) out[o++] = in[i];
            break;
        case MR_OP_DEL: break;
        default: out[o++] = in[i]; break;
        }
    }
    int32_t pad = ws->pad_id >= 0 ? ws->pad_id : in[cols - 1];
    while (o < cols) out[o++] = pad;
}

int32_t mr_text_random_letter(const mr_corrupt_ws *ws, gsl_rng *r)
{
    if (ws->n_letters == 0) return -1;
    return ws->letters[gsl_rng_uniform_int(r, (unsigned long)ws->n_letters)];
}

/* Fraction of a row's words edited (one character each, TextAttack's random_one).
 * TextAttack's CharSwapAugmenter default pct_words_to_swap 0.1 is severity 2, nlpaug's
 * KeyboardAug aug_word_p 0.3 severity 4. */
const double mr_text_char_rate[MR_SEVERITY_MAX] = {0.05, 0.10, 0.20, 0.30, 0.50};

int mr_text_char_ops(int32_t *out, const int32_t *in, int cols, int s, mr_word_edit_fn edit,
                     gsl_rng *r, mr_corrupt_ws *ws)
{
    return mr_text_word_ops(out, in, cols, mr_text_char_rate[s - 1], 2, edit, r, ws);
}

static void letter_edit(mr_corrupt_ws *ws, int start, int len, int op, gsl_rng *r)
{
    int p = start + (int)gsl_rng_uniform_int(r, (unsigned long)len);
    ws->op[p] = op;
    ws->opv[p] = mr_text_random_letter(ws, r);
}

static void insert_edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    (void)in;
    letter_edit(ws, start, len, MR_OP_INS, r);
}

static void substitute_edit(mr_corrupt_ws *ws, const int32_t *in, int start, int len, gsl_rng *r)
{
    (void)in;
    letter_edit(ws, start, len, MR_OP_SUB, r);
}

int mr_text_letter_ops(int32_t *out, const int32_t *in, int cols, int s, int op, gsl_rng *r,
                       mr_corrupt_ws *ws)
{
    MR_REQUIRE(ws->n_letters > 0, MR_EINPUT, "the vocabulary has no ASCII letter to insert");
    return mr_text_char_ops(out, in, cols, s, op == MR_OP_INS ? insert_edit : substitute_edit, r,
                            ws);
}

int mr_text_word_ops(int32_t *out, const int32_t *in, int cols, double rate, int min_len,
                     mr_word_edit_fn edit, gsl_rng *r, mr_corrupt_ws *ws)
{
    for (int i = 0; i < cols; i++) ws->op[i] = MR_OP_KEEP;
    int n = mr_text_words(ws, in, cols);
    int k = mr_text_choose(ws, in, n, rate, min_len, r);
    for (int j = 0; j < k; j++) {
        int w = ws->wsel[j];
        edit(ws, in, ws->wstart[w], ws->wlen[w], r);
    }
    mr_text_apply_ops(out, in, cols, ws);
    return MR_OK;
}
