/* mr_attack_setup.h — binds an attack (analysis/attacks/mr_attack.h) to a model, the router
 * it attacks through and a dataset, as the mr_eval_corruption the evaluation driver calls
 * per micro-batch (the grid's attack cells, docs/config.md).
 *
 * The attacked router may differ from the evaluated one: white-box, it is the same; a
 * transfer attack crafts the images through the reference router and the evaluation
 * scores another router on them. One attack workspace per thread.
 * Ownership: the caller owns the setup (mr_attack_setup_free); model, router and data
 * must outlive it.
 */
#ifndef MR_ATTACK_SETUP_H
#define MR_ATTACK_SETUP_H

#include "../analysis/attacks/mr_attack.h"
#include "mr_eval.h"

typedef struct mr_attack_setup {
    mr_eval_corruption ec;     /* hand &setup->ec to mr_eval_opts.corruption */
    const mr_attack_type *t;
    mr_attack_opts o;          /* o.batch = the evaluation's micro-batch */
    const int32_t *labels;     /* the dataset's */
    mr_attack_ws **ws;         /* [threads] */
    int threads;
    char label[96];
} mr_attack_setup;

/* `engine` is the evaluation's engine options (its micro-batch and k); `attacked` the
 * router the attack differentiates or queries. MR_EINPUT if the data are not images or
 * the attack cannot run (e.g. a router without input gradients for a gradient attack). */
int mr_attack_setup_init(mr_attack_setup *s, const mr_attack_type *t, const mr_attack_opts *o,
                         const mr_model *m, const mr_router *attacked, const mr_dataset *d,
                         const mr_engine_opts *engine, int threads);
void mr_attack_setup_free(mr_attack_setup *s);

#endif
