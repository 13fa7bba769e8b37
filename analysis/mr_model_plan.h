/* mr_model_plan.h — the float tensors of a model for a configuration, in the order of
 * docs/model-format.md: the dataset path of each in a model file, its shape, whether it is
 * optional, and the mr_model field that holds it. One list for everything that lays out,
 * reads or writes a model: mr_model_alloc, the loader (io/mr_model_io.c), the writers
 * (io/mr_model_write.c, io/mr_hf_import.c). Router tensors are not in it.
 *
 * Ownership: mr_model_plan() fills a plan the caller releases with mr_model_plan_free();
 * its `dst` pointers point into the model passed in (m->layers must be allocated, with
 * is_moe set, and m->cfg checked by mr_config_check).
 */
#ifndef MR_MODEL_PLAN_H
#define MR_MODEL_PLAN_H

#include <stddef.h>

#include "mr_model.h"

/* How an absent dataset reads. */
enum mr_plan_presence {
    MR_PLAN_REQUIRED = 0,
    MR_PLAN_ZEROS_IF_ABSENT = 1, /* /layers/L/moe/gate_b: zeros */
    MR_PLAN_NULL_IF_ABSENT = 2   /* format 2 biases, shared_gate_w: the field stays NULL */
};

typedef struct mr_plan_item {
    char path[128];
    int rank;
    size_t dims[3];
    float **dst;        /* the model field (data of the dataset) */
    int optional;       /* enum mr_plan_presence */
    int present;        /* set by the loader */
} mr_plan_item;

typedef struct mr_plan {
    mr_plan_item *items;
    int n, cap;
} mr_plan;

/* Every float dataset a model of m->cfg has (router tensors excepted), in file order. */
int mr_model_plan(mr_plan *p, mr_model *m);
void mr_model_plan_free(mr_plan *p);

/* Floats of one item. */
size_t mr_plan_item_size(const mr_plan_item *it);

/* The item called `path`, or NULL. */
mr_plan_item *mr_plan_find(mr_plan *p, const char *path);

#endif
