/* mr_attack_impl.h — what an attack's run() gets: one micro-batch and the shared steps
 * (forward, objective, gradient, projection onto the ball). Internal to analysis/attacks/.
 *
 * Pixel units: b->x holds intensities times 255 as floats (the grid values are
 * integers); the model sees x / 255.0f, which for a grid value is exactly the engine's
 * uint8 / 255.0f. Buffers belong to the driver (mr_attack.c), one set per thread. */
#ifndef MR_ATTACK_IMPL_H
#define MR_ATTACK_IMPL_H

#include <gsl/gsl_rng.h>

#include "../mr_engine.h"
#include "../mr_grad.h"
#include "mr_attack.h"

struct mr_attack_batch {
    const mr_attack_type *t;
    const mr_attack_opts *o;
    const mr_model *m;
    int B, D;          /* images in this micro-batch, values per image (H*W*C) */
    int T, route_mi;   /* tokens per image; MoE index of the routing objective's block */
    int steps;         /* o->steps, or the attack's default */
    double eps255;     /* the ball's radius in grey levels, floor(255 eps) */
    uint64_t first;    /* dataset index of image 0 */
    const uint8_t *x0; /* [B, D] clean images */
    const int32_t *y;  /* [B] labels */
    float *lo, *hi;    /* [B, D] the ball on the grid, within [0, 255] */
    float *x;          /* [B, D] current images (pixel units): the result */
    int *clean_top1;   /* [B, T] the routing objective's block: clean top-1 experts */
    int *queries;      /* [B] */
    mr_grad_ws *g;     /* float-input forward and backward (max batch `cap`; NULL unless
                          the attack's float_input) */
    mr_workspace *ws;  /* the engine (uint8 input, max batch `cap`) */
    int cap;           /* capacity of g and ws */
    float *in01;       /* [cap, D] forward input of g */
    float *grad;       /* [cap, D] gradient with respect to in01 */
    float *dlogits;    /* [cap, n_out] */
    float *dprobs;     /* [n_moe, cap*T*E] */
    float *val;        /* [cap] objective values of the last evaluation */
    uint8_t *u8;       /* [cap, D] engine input */
    int *img;          /* [cap] image (0..B-1) of each slot of the last evaluation */
    float *aux;        /* [cap * D + 4 * D + cap] the attack's own */
    gsl_rng **rng;     /* [cap] one generator per image of the micro-batch */
};

/* Forward of nb images given in pixel units xs[nb, D] (slot s is image img[s]) through
 * the gradient workspace (nb <= cap); fills b->val with the objective of each slot. */
int mr_attack_eval_float(mr_attack_batch *b, const float *xs, const int *img, int nb);
/* The same on grid images u8[nb, D] through the engine. */
int mr_attack_eval_u8(mr_attack_batch *b, const uint8_t *u8, const int *img, int nb);

/* The objective to minimize of slot s of a trace: the logit margin z_y - max_{j!=y} z_j
 * (loss; <= 0: misclassified) or the sum over the block's tokens of max(0, p_c - max_{j!=c}
 * p_j) with c the clean top-1 expert (routing; 0: every token flipped). */
float mr_attack_objective(const mr_attack_batch *b, const mr_trace *tr, int s, int image);

/* Top-1 flips of slot s (routing objective's block) against the clean routing. */
int mr_attack_flips(const mr_attack_batch *b, const mr_trace *tr, int s, int image);

/* Gradient of the objective to MAXIMIZE (CE, or minus the routing sum) with respect to
 * the intensities of all B images at b->x, into b->grad [B, D]; also fills b->val with
 * the objective (as mr_attack_objective) at b->x. Counts one query per image. */
int mr_attack_gradient(mr_attack_batch *b);

/* x [D] of image i clamped to its ball. */
void mr_attack_project(const mr_attack_batch *b, float *x, int i);

#endif
