/* Fuzz harness: the text corruptions (corruptions/mr_text.c and the char_* / word_* /
 * token_* / keyboard_typo files) through mr_corrupt_tokens.
 *
 * Input layout (missing bytes read as 0):
 *   [0] corruption: index into the text corruptions, modulo their count
 *   [1] severity: b % 8 - 1, so -1..6 (0, -1 and 6 must be refused)
 *   [2] cols: 1 + b % 48              [3] rows n: b % 4
 *   [4] V: 1 + b % 40 (V = 1 must be refused)
 *   [5] flags: bit 0: token ids taken raw (b - 4: may be negative or >= V, must be
 *       refused); bit 1: workspace one column short (must be refused); bits 2-7: seed
 *   then V bytes: the vocabulary's code points (< 96: ' ' + b, printable ASCII, so words,
 *       stopwords and letters occur; else a non-ASCII code point)
 *   then n * cols bytes: token ids (b % V unless flag bit 0)
 * Properties: invalid arguments give MR_EINPUT; valid ones MR_OK, unless the vocabulary
 * lacks what the corruption inserts (MR_EINPUT, "the vocabulary has no ...");
 * on success every output id is in 0..V-1, nothing is written past the n rows of cols
 * ids (a guard after them), the input is unchanged, and a second call with the same
 * seed gives the same output.
 */
#include <string.h>

#include "analysis/mr_error.h"
#include "corruptions/mr_corruption.h"
#include "fuzz_util.h"

#define GUARD 8
#define GUARD_ID (-7777)

static const mr_corruption_type *text_corruption(unsigned pick)
{
    int n = 0;
    for (int i = 0; mr_corruption_types[i]; i++) n += mr_corruption_types[i]->modality == MR_MOD_TEXT;
    FUZZ_CHECK(n > 0, "no text corruptions registered");
    int want = (int)(pick % (unsigned)n);
    for (int i = 0; mr_corruption_types[i]; i++)
        if (mr_corruption_types[i]->modality == MR_MOD_TEXT && want-- == 0) return mr_corruption_types[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
#define NEXT() (pos < size ? data[pos++] : 0)
    const mr_corruption_type *t = text_corruption(NEXT());
    int severity = NEXT() % 8 - 1;
    int cols = 1 + NEXT() % 48;
    int n = NEXT() % 4;
    int V = 1 + NEXT() % 40;
    unsigned flags = NEXT();
    int raw_ids = flags & 1, short_ws = (flags >> 1) & 1;
    uint64_t seed = flags >> 2;
    int32_t vocab[40];
    for (int i = 0; i < V; i++) {
        unsigned b = NEXT();
        vocab[i] = b < 96 ? (int32_t)(' ' + b) : (int32_t)(0xA0 + 37 * b);
    }
    size_t total = (size_t)n * cols;
    int32_t in[4 * 48], keep[4 * 48], out[4 * 48 + GUARD], out2[4 * 48 + GUARD];
    int ids_ok = 1;
    for (size_t i = 0; i < total; i++) {
        unsigned b = NEXT();
        in[i] = raw_ids ? (int32_t)b - 4 : (int32_t)(b % (unsigned)V);
        ids_ok &= in[i] >= 0 && in[i] < V;
    }
#undef NEXT
    memcpy(keep, in, total * sizeof *in);
    for (size_t i = 0; i < total + GUARD; i++) out[i] = out2[i] = GUARD_ID;

    mr_corrupt_ws *ws = NULL;
    int st = mr_corrupt_ws_alloc(&ws, 0, 0, 0, short_ws ? cols - 1 : cols);
    FUZZ_CHECK(st == MR_OK, "workspace: %s", mr_error_message());
    int valid = severity >= 1 && severity <= MR_SEVERITY_MAX && V >= 2 && !short_ws && ids_ok;
    st = mr_corrupt_tokens(out, in, n, cols, vocab, V, t, severity, seed, 0, ws);
    if (!valid) {
        FUZZ_CHECK(st == MR_EINPUT, "%s: invalid arguments accepted (status %d)", t->name, st);
        mr_corrupt_ws_free(ws);
        return 0;
    }
    /* the one refusal of valid arguments: a vocabulary without what the corruption
     * inserts (char_insert, char_substitute need an ASCII letter) */
    if (st == MR_EINPUT && strstr(mr_error_message(), "vocabulary has no")) {
        mr_corrupt_ws_free(ws);
        return 0;
    }
    FUZZ_CHECK(st == MR_OK, "%s:%d: %s", t->name, severity, mr_error_message());
    FUZZ_CHECK(memcmp(in, keep, total * sizeof *in) == 0, "%s changed its input", t->name);
    for (size_t i = 0; i < total; i++)
        FUZZ_CHECK(out[i] >= 0 && out[i] < V, "%s:%d: id %d at %zu outside 0..%d", t->name,
                   severity, out[i], i, V - 1);
    for (size_t i = total; i < total + GUARD; i++)
        FUZZ_CHECK(out[i] == GUARD_ID, "%s:%d wrote past its %d x %d ids", t->name, severity, n,
                   cols);
    st = mr_corrupt_tokens(out2, in, n, cols, vocab, V, t, severity, seed, 0, ws);
    FUZZ_CHECK(st == MR_OK && memcmp(out, out2, (total + GUARD) * sizeof *out) == 0,
               "%s:%d is not deterministic for a fixed seed", t->name, severity);
    mr_corrupt_ws_free(ws);
    return 0;
}
