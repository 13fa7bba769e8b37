/* mr_attack.h — L-infinity adversarial attacks on image models (docs/attacks.md).
 *
 * Attacks are const mr_attack_type structs (name, defaults, run), in the style of the
 * routers and corruptions: FGSM (Goodfellow et al. 2015), PGD (Madry et al. 2018), the
 * Square attack (Andriushchenko et al. 2020, as AutoAttack runs it) and SPSA (Uesato et
 * al. 2018). Gradient attacks use the input gradients of analysis/mr_grad.h, so the
 * model is attacked white-box through the router it is evaluated with.
 *
 * The data are uint8 images: an attack works in pixel units on the 1/255 grid the data
 * use. Its epsilon-ball is the set of images within floor(255 eps) grey levels of the
 * clean one, intersected with [0, 255]: every iterate is projected onto it and the
 * result is rounded to the grid, so adversarial images are valid data inside the ball.
 * Objectives: the classification loss (CE for gradient attacks, the logit margin for
 * score-based ones) or the routing of one MoE block (maximise its top-1 flip rate
 * against the clean routing).
 *
 * Determinism: images are cut into fixed micro-batches; every random stream derives from
 * (seed, "attack/<name>", sample index); the result does not depend on the thread count.
 * Ownership: the caller owns every array it passes; nothing is returned allocated.
 */
#ifndef MR_ATTACK_H
#define MR_ATTACK_H

#include <stdint.h>

#include "../mr_model.h"
#include "../mr_router.h"

enum mr_attack_objective {
    MR_ATTACK_LOSS = 0,    /* misclassify: CE (gradient) / logit margin (score-based) */
    MR_ATTACK_ROUTING = 1  /* flip the top-1 expert of block route_layer's tokens */
};

typedef struct mr_attack_opts {
    double eps;         /* L-infinity radius in intensity units ([0, 1] images) */
    int steps;          /* iterations (PGD, SPSA) or queries (Square); 0: the default */
    double step_size;   /* PGD step in intensity units; 0: eps / 4 */
    int random_start;   /* PGD: -1 default (yes, Madry et al.), 0 no, 1 yes */
    uint64_t seed;
    int objective;      /* enum mr_attack_objective */
    int route_layer;    /* MR_ATTACK_ROUTING: block index of an MoE block; -1: the first */
    double p_init;      /* Square: initial fraction of pixels per square (0.8) */
    int square_rescale; /* Square: 0 the p schedule in absolute iterations (AutoAttack
                           standard), 1 rescaled to the query budget */
    int spsa_samples;   /* SPSA: antithetic direction pairs per step (128) */
    double spsa_delta;  /* SPSA: finite-difference size, intensity units (0.01) */
    double spsa_lr;     /* SPSA: Adam learning rate (0.01) */
    int batch;          /* images per micro-batch (16) */
    int top_k;          /* experts per token; 0: the model's */
} mr_attack_opts;

typedef struct mr_attack_batch mr_attack_batch; /* one micro-batch (mr_attack_impl.h) */

typedef struct mr_attack_type {
    const char *name;
    const char *summary;      /* one line for --help and docs */
    int needs_gradient;       /* white-box: differentiates the model (mr_grad) */
    int float_input;          /* evaluates images off the grid (mr_grad's float forward) */
    int default_steps;        /* iterations or queries; 0 for FGSM */
    int (*run)(mr_attack_batch *b);
} mr_attack_type;

extern const mr_attack_type mr_attack_fgsm, mr_attack_pgd, mr_attack_square, mr_attack_spsa;
extern const mr_attack_type *const mr_attack_types[]; /* NULL-terminated */

const mr_attack_type *mr_attack_lookup(const char *name);

/* Defaults (documented in docs/attacks.md): eps 8/255, method's default steps, step
 * eps/4, random start, seed 0, loss objective, p_init 0.8, SPSA 128 / 0.01 / 0.01,
 * batch 16. */
void mr_attack_opts_init(mr_attack_opts *o);
/* MR_EINPUT naming the bad option (or a route_layer that is not an MoE block of m). */
int mr_attack_opts_check(const mr_attack_opts *o, const mr_attack_type *t, const mr_model *m);

/* One thread's workspace: attack micro-batches of up to o->batch images. The options,
 * model and router must outlive it. */
typedef struct mr_attack_ws mr_attack_ws;
int mr_attack_ws_alloc(mr_attack_ws **out, const mr_attack_type *t, const mr_attack_opts *o,
                       const mr_model *m, const mr_router *r);
void mr_attack_ws_free(mr_attack_ws *w);
/* Attack nb <= o->batch images [nb, H, W, C] (dataset samples first .. first+nb-1, labels
 * [nb]) into adv [nb, H, W, C]; queries [nb] and objective [nb] (see mr_attack_out) may
 * be NULL. A sample's result depends on its micro-batch (the engine's batching) only. */
int mr_attack_run_batch(mr_attack_ws *w, uint8_t *adv, const uint8_t *images,
                        const int32_t *labels, int nb, uint64_t first, int *queries,
                        float *objective);

/* Per-sample outcome (arrays of n, each may be NULL). */
typedef struct mr_attack_out {
    uint8_t *adv;     /* [n, H, W, C] the adversarial images (required) */
    int *queries;     /* [n] forward passes spent on the sample (gradient steps count one
                         forward and one backward) */
    float *objective; /* [n] the objective at the result: logit margin z_y - max_{j!=y} z_j
                         (loss) or the sum over the block's tokens of max(0, routing margin
                         to the clean top-1 expert) (routing); <= 0 means success */
} mr_attack_out;

/* Attack images [n, H, W, C] of model m (task classify) evaluated with router r, labels
 * [n] the true classes, on `threads` OpenMP threads. MR_EINPUT on options the attack,
 * model or router cannot take (e.g. a router without input gradients for a gradient
 * attack), MR_ENOMEM. */
int mr_attack_images(const mr_attack_type *t, const mr_attack_opts *o, const mr_model *m,
                     const mr_router *r, const uint8_t *images, const int32_t *labels, int n,
                     int threads, mr_attack_out *out);

#endif
