/* mr_corrupt_impl.h — internals shared by the corruption files (not a public API;
 * tests include it to drive helpers with fixed parameters).
 *
 * Image helpers work on double images in [0, 1] laid out [H, W, C] like the uint8
 * input, because the references (NumPy float64) do; conversions follow them:
 * x / 255. on the way in, clip to [0, 1], * 255 and truncate (np.uint8 /
 * astype(np.uint8)) on the way out.
 */
#ifndef MR_CORRUPT_IMPL_H
#define MR_CORRUPT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "mr_corruption.h"

#define MR_PI 3.14159265358979323846

struct mr_corrupt_ws {
    int H, W, C, cols;
    gsl_rng *rng;
    /* images */
    double *f[4];        /* [H*W*C] scratch images */
    uint8_t *u;          /* [H*W*C] */
    int *lab, *stack;    /* [H*W] canny hysteresis labels and flood-fill stack */
    double *plasma;      /* [pn*pn] fog */
    double *plasma_u;    /* [(pn/2)^2] fog: one diamond-square pass's uniforms */
    int pn;
    unsigned char *jbuf; /* libjpeg destination buffer */
    unsigned long jcap;
    /* text */
    int *wstart, *wlen, *wpick, *wsel; /* [cols] words */
    int *op;             /* [cols] per-position edit */
    int32_t *opv;        /* [cols] per-position inserted/substituted id */
    const int32_t *vocab;
    int V;
    int32_t ascii_id[128]; /* id of each ASCII code point, -1 if not in the vocabulary */
    int32_t letters[52];   /* ids of the ASCII letters in the vocabulary */
    int n_letters;
    int32_t pad_id, filler_id;
};

/* ---- image conversion and rounding (mr_img.c) ---- */
void mr_img_to_unit(double *f, const uint8_t *u, size_t n);
/* clip(f, 0, 1) * 255 truncated (NaN -> 0) */
void mr_img_from_unit(uint8_t *u, const double *f, size_t n);
/* An 8-bit value v in [0, 255] stored as ImageMagick 6.9 (Q16) stores it and written
 * back to 8 bits: the quantum is round(257 v), the byte floor(quantum / 257) (MNIST-C /
 * ImageNet-C read motion_blur's output that way; docs/corruptions.md). */
uint8_t mr_img_q16_to_u8(double v);
/* glass_blur's local shuffle of uint8 pixels [H, W, C] in place: true swaps of whole
 * pixels (all C channels), for RGB as for gray (docs/corruptions.md) */
void mr_glass_shuffle(uint8_t *u, int H, int W, int C, int d, int iters, gsl_rng *r);
/* round((x (5 - s) + t s) / 5), half up: severity s of a magnitude-free transform t */
void mr_img_blend(uint8_t *out, const uint8_t *x, const uint8_t *t, size_t n, int s);
/* skimage rgb2gray: 0.2125 R + 0.7154 G + 0.0721 B of one pixel */
double mr_rgb2gray(double r, double g, double b);
/* skimage rgb2hsv / hsv2rgb of one pixel (0.19 formulas) */
void mr_rgb2hsv(const double rgb[3], double hsv[3]);
void mr_hsv2rgb(const double hsv[3], double rgb[3]);

/* ---- filters (mr_filter.c) ---- */
enum mr_border {
    MR_BORDER_NEAREST = 0,  /* a a a | a b c | c c c   (scipy 'nearest', skimage default) */
    MR_BORDER_REFLECT = 1,  /* b a | a b c | c b       (scipy 'reflect') */
    MR_BORDER_MIRROR = 2,   /* c b | a b c | b a       (scipy 'mirror', OpenCV REFLECT_101) */
    MR_BORDER_CONSTANT = 3  /* 0 0 | a b c | 0 0       (cval 0) */
};
#define MR_GAUSS_MAX_RADIUS 512
/* scipy _gaussian_kernel1d: radius int(truncate * sigma + 0.5), exp(-x^2 / (2 sigma^2))
 * normalised; w[2r+1]; returns r (0 when sigma <= 1e-15: no filtering). */
int mr_gauss_kernel(double *w, double sigma, double truncate);
/* scipy correlate1d along axis 0 (rows) or 1 (columns) of [H, W, C], out != in;
 * w[2r+1] centred; summation in scipy's order for (anti)symmetric kernels. */
void mr_correlate1d(double *out, const double *in, int H, int W, int C, int axis,
                    const double *w, int r, int border);
/* scipy gaussian_filter over both spatial axes (axis 0 then 1) of [H, W, C], channels
 * independent; result in img (tmp is scratch of the same size). truncate 4 in skimage. */
void mr_gaussian2d(double *img, double *tmp, int H, int W, int C, double sigma,
                   double truncate, int border);
/* Dense 2-D correlation of every channel with k [kh, kw] (centred), out != in. */
void mr_correlate2d(double *out, const double *in, int H, int W, int C, const double *k,
                    int kh, int kw, int border);

/* ---- geometry (mr_geom.c) ---- */
/* skimage warp(image, inverse_map=M): out(r, c) = bilinear(in, y, x) with
 * x = M0 c + M1 r + M2, y = M3 c + M4 r + M5; pixels outside read 0. out != in. */
void mr_img_warp(double *out, const double *in, int H, int W, int C, const double M[6]);
/* skimage AffineTransform(scale=(sx, sy), rotation, shear) with the translation that
 * fixes the centre ((W-1)/2, (H-1)/2) (mnist-c: 13.5 * (1 - a1 - a2)). */
void mr_affine_centred(double M[6], int H, int W, double sx, double sy, double rotation,
                       double shear);
/* uint8 -> unit -> warp -> truncated uint8, the mnist-c geometry pipeline. */
int mr_warp_u8(uint8_t *out, const uint8_t *in, int H, int W, int C, const double M[6],
               mr_corrupt_ws *ws);
/* The random-sign geometric corruptions with the sign(s) given (tests force them). */
int mr_shear_signed(uint8_t *out, const uint8_t *in, int H, int W, int C, int severity,
                    int sign, mr_corrupt_ws *ws);
int mr_rotate_signed(uint8_t *out, const uint8_t *in, int H, int W, int C, int severity,
                     int sign, mr_corrupt_ws *ws);
int mr_translate_signed(uint8_t *out, const uint8_t *in, int H, int W, int C, int severity,
                        int sx, int sy, mr_corrupt_ws *ws);

/* ---- lines (mr_lines.c): mnist-c line_from_points over an H x W image, added to every
 * channel of acc [H, W, C]: intensity clip(log(1 - d / 2.3) + 1, 0, 1) of the vertical
 * distance d to the line through (c0, r0), (c1, r1), zero in the columns left of
 * floor(c0) and from ceil(c1) on (Python slice semantics); nothing when c0 == c1.
 * `dashed`: columns with (c / 2) even are zeroed (dotted_line). Then acc is clipped to
 * [0, 1]. */
void mr_line_add(double *acc, int H, int W, int C, double c0, double r0, double c1,
                 double r1, int dashed);

/* ---- canny (canny_edges.c) ---- */
/* skimage.feature.canny(g, sigma 1, low .1, high .2) of g [H, W] in [0, 1]: edges [H*W]
 * 0/1. Uses ws->f[1..3], ws->lab, ws->stack. */
void mr_canny(uint8_t *edges, const double *g, int H, int W, mr_corrupt_ws *ws);

/* ---- text (mr_text.c) ---- */
/* Build ws's vocabulary tables (ASCII ids, letters, pad and filler ids). */
int mr_text_prepare(mr_corrupt_ws *ws, const int32_t *vocab, int V);
/* Segment a row into words (TextAttack words_from_text: runs of letters, digits and
 * '_', ''', '-', '*', '@', leading ''' '-' '_' '*' '@' stripped; code points >= 128
 * count as letters). Fills ws->wstart/wlen; returns the number of words. */
int mr_text_words(mr_corrupt_ws *ws, const int32_t *row, int cols);
/* Whether word w is on the NLTK English stopword list (case-sensitive). */
int mr_text_is_stopword(const mr_corrupt_ws *ws, const int32_t *row, int w);
/* Choose words to edit: eligible = not a stopword and at least min_len characters;
 * count = floor(rate * n_words + U) (stochastic rounding, so the expected count is
 * rate * n_words), at most the eligible count, chosen uniformly without replacement.
 * Writes the chosen word indices to ws->wsel in row order; returns the count. */
int mr_text_choose(mr_corrupt_ws *ws, const int32_t *row, int n_words, double rate,
                   int min_len, gsl_rng *r);
/* Edit codes for ws->op[]: apply per-position edits to `in`, writing exactly cols ids. */
enum { MR_OP_KEEP = 0, MR_OP_SUB = 1, MR_OP_INS = 2, MR_OP_DEL = 3 };
void mr_text_apply_ops(int32_t *out, const int32_t *in, int cols, const mr_corrupt_ws *ws);
/* A uniformly random ASCII letter of the vocabulary (its id); -1 if none. */
int32_t mr_text_random_letter(const mr_corrupt_ws *ws, gsl_rng *r);
/* Edit one chosen word in[start .. start+len-1] by setting ws->op / ws->opv. */
typedef void (*mr_word_edit_fn)(mr_corrupt_ws *ws, const int32_t *in, int start, int len,
                                gsl_rng *r);
/* The word-level driver of every word/char corruption: segment, choose (rate, min_len),
 * edit each chosen word, apply the edits length-preservingly to out. */
int mr_text_word_ops(int32_t *out, const int32_t *in, int cols, double rate, int min_len,
                     mr_word_edit_fn edit, gsl_rng *r, mr_corrupt_ws *ws);
/* The character-level corruptions (char_insert, _substitute, _delete, _swap): the word
 * driver at their common rate per severity (mr_text_char_rate), words of 2+ letters. */
extern const double mr_text_char_rate[MR_SEVERITY_MAX];
int mr_text_char_ops(int32_t *out, const int32_t *in, int cols, int s, mr_word_edit_fn edit,
                     gsl_rng *r, mr_corrupt_ws *ws);
/* char_insert (op MR_OP_INS) and char_substitute (MR_OP_SUB): in each chosen word, a
 * random ASCII letter of the vocabulary goes before (never after the last letter) or in
 * place of (possibly the same letter) one random position. MR_EINPUT without letters. */
int mr_text_letter_ops(int32_t *out, const int32_t *in, int cols, int s, int op, gsl_rng *r,
                       mr_corrupt_ws *ws);

/* Code point of id (or -1 when out of range). */
int32_t mr_text_cp(const mr_corrupt_ws *ws, int32_t id);

/* ---- every registered type ---- */
#define MR_DECLARE(n) extern const mr_corruption_type mr_corruption_##n
MR_DECLARE(shot_noise); MR_DECLARE(impulse_noise); MR_DECLARE(glass_blur);
MR_DECLARE(motion_blur); MR_DECLARE(shear); MR_DECLARE(scale); MR_DECLARE(rotate);
MR_DECLARE(brightness); MR_DECLARE(translate); MR_DECLARE(stripe); MR_DECLARE(fog);
MR_DECLARE(spatter); MR_DECLARE(dotted_line); MR_DECLARE(zigzag); MR_DECLARE(canny_edges);
MR_DECLARE(contrast); MR_DECLARE(saturate); MR_DECLARE(inverse); MR_DECLARE(flip_lr);
MR_DECLARE(flip_ud); MR_DECLARE(rot90_cw); MR_DECLARE(rot90_ccw);
MR_DECLARE(gaussian_noise); MR_DECLARE(speckle_noise); MR_DECLARE(gaussian_blur);
MR_DECLARE(defocus_blur); MR_DECLARE(zoom_blur); MR_DECLARE(pixelate);
MR_DECLARE(jpeg_compression); MR_DECLARE(elastic_transform);
MR_DECLARE(word_swap_aaa); MR_DECLARE(char_substitute); MR_DECLARE(char_insert);
MR_DECLARE(char_delete); MR_DECLARE(char_swap); MR_DECLARE(keyboard_typo);
MR_DECLARE(token_replace);
MR_DECLARE(embed_gaussian); MR_DECLARE(embed_dropout);
#undef MR_DECLARE

#endif
