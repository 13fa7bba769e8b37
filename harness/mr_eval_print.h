/* mr_eval_print.h — the human-readable report of `moe-robust eval`. */
#ifndef MR_EVAL_PRINT_H
#define MR_EVAL_PRINT_H

#include <stdio.h>

#include "mr_eval.h"

typedef struct mr_eval_labels {
    const char *router;
    const char *corruption; /* NULL if none */
    const char *compare;    /* path of the compared checkpoint, or NULL */
    int threads;
} mr_eval_labels;

void mr_eval_print(FILE *fp, const mr_eval_result *r, const mr_model *m, const mr_dataset *d,
                   const mr_eval_opts *o, const mr_eval_labels *l);

#endif
