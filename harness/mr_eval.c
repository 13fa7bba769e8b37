#include "mr_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../analysis/mr_error.h"
#include "../analysis/mr_ops.h"
#include "mr_routing_io.h"

void mr_eval_result_free(mr_eval_result *r)
{
    if (!r) return;
    free(r->entropy);
    free(r->sample_correct);
    free(r->sample_loss);
    free(r->sample_entropy);
    memset(r, 0, sizeof *r);
}

/* argmax with ties to the lower index (torch.argmax returns the first maximum) */
static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* cross-entropy -log softmax(x)[target], in double */
static double xent(const float *x, int n, int target)
{
    double mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    return log(s) + mx - x[target];
}

/* Per-sample statistics of one micro-batch starting at sample s0. */
static void score_batch(mr_eval_result *res, const mr_trace *tr, const mr_model *m,
                        const mr_dataset *d, int s0, float *token_loss)
{
    const mr_config *c = &m->cfg;
    int B = tr->B, T = tr->T, E = tr->E, V = c->n_out;
    for (int b = 0; b < B; b++) {
        int s = s0 + b;
        if (c->task == MR_TASK_CLASSIFY) {
            const float *lg = tr->logits + (size_t)b * V;
            res->sample_correct[s] = argmax(lg, V) == d->labels[s];
            res->sample_loss[s] = xent(lg, V, d->labels[s]);
        } else {
            double correct = 0.0, loss = 0.0;
            for (int t = 0; t < T; t++) {
                const float *lg = tr->logits + ((size_t)b * T + t) * V;
                int target = d->tokens[(size_t)s * d->cols + t + 1];
                double l = xent(lg, V, target);
                if (token_loss) token_loss[(size_t)b * T + t] = (float)l;
                loss += l;
                correct += argmax(lg, V) == target;
            }
            res->sample_correct[s] = correct / T;
            res->sample_loss[s] = loss / T;
        }
        for (int mi = 0; mi < tr->n_moe; mi++) {
            double h = 0.0;
            const float *p = tr->probs + ((size_t)mi * B + b) * T * E;
            for (int t = 0; t < T; t++) h += mr_entropy(p + (size_t)t * E, E);
            res->sample_entropy[(size_t)s * tr->n_moe + mi] = h / T;
        }
    }
}

int mr_eval_run(mr_eval_result *res, const mr_model *m, const mr_router *r,
                const mr_dataset *d, const mr_eval_opts *o)
{
    memset(res, 0, sizeof *res);
    MR_TRY(mr_dataset_check_model(d, m));
    MR_REQUIRE(o->threads >= 1 && o->threads <= 1024, MR_EINPUT,
               "threads = %d must be in 1..1024", o->threads);
    const mr_config *c = &m->cfg;
    mr_engine_opts eo = o->engine;
    int T = c->task == MR_TASK_LM ? d->cols - 1 : mr_config_seq_len(c);
    if (c->task == MR_TASK_LM) eo.seq_len = T;
    MR_TRY(mr_engine_opts_check(&eo, m));
    int k = eo.top_k ? eo.top_k : c->top_k;
    res->task = c->task;
    res->n = d->n;
    res->T = T;
    res->n_moe = c->n_moe;
    res->E = c->n_experts;
    res->entropy = calloc((size_t)c->n_moe + 1, sizeof(double));
    res->sample_correct = malloc((size_t)d->n * sizeof(double));
    res->sample_loss = malloc((size_t)d->n * sizeof(double));
    res->sample_entropy = malloc(((size_t)d->n * c->n_moe + 1) * sizeof(double));
    if (!res->entropy || !res->sample_correct || !res->sample_loss || !res->sample_entropy) {
        mr_eval_result_free(res);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    mr_routing_writer *rw = NULL;
    if (o->save_routing) {
        int st = mr_routing_writer_open(&rw, o->save_routing, m, d->n, T, k);
        if (st != MR_OK) {
            mr_eval_result_free(res);
            return st;
        }
    }

    int B = eo.batch, n_chunks = (d->n + B - 1) / B;
    int failed = 0;
    char err[1024] = "";
    int err_code = MR_OK;
#pragma omp parallel num_threads(o->threads)
    {
        mr_workspace *ws = NULL;
        float *token_loss = NULL;
        int st = mr_workspace_alloc(&ws, m, r, &eo);
        if (st == MR_OK && rw && c->task == MR_TASK_LM &&
            !(token_loss = malloc((size_t)B * T * sizeof(float))))
            st = mr_error_set(MR_ENOMEM, "out of memory");
#pragma omp for schedule(dynamic, 1)
        for (int ch = 0; ch < n_chunks; ch++) {
            int bail;
#pragma omp atomic read
            bail = failed;
            if (bail || st != MR_OK) continue;
            int s0 = ch * B, nb = d->n - s0 < B ? d->n - s0 : B;
            if (c->task == MR_TASK_CLASSIFY)
                st = mr_engine_forward_images(
                    ws, d->images + (size_t)s0 * c->image_h * c->image_w * c->channels, nb);
            else
                st = mr_engine_forward_tokens(ws, d->tokens + (size_t)s0 * d->cols, nb, T,
                                              d->cols);
            if (st != MR_OK) continue;
            const mr_trace *tr = mr_workspace_trace(ws);
            score_batch(res, tr, m, d, s0, token_loss);
            if (rw) {
#pragma omp critical(mr_hdf5)
                st = mr_routing_writer_put(rw, tr, s0, token_loss);
            }
        }
        if (st != MR_OK) {
#pragma omp critical(mr_eval_error)
            if (!failed) {
                failed = 1;
                err_code = st;
                snprintf(err, sizeof err, "%s", mr_error_message());
            }
        }
        free(token_loss);
        mr_workspace_free(ws);
    }
    if (failed) {
        mr_routing_writer_abort(rw);
        mr_eval_result_free(res);
        return mr_error_set(err_code, "%s", err);
    }
    if (rw) {
        int st = mr_routing_writer_close(rw);
        if (st != MR_OK) {
            mr_eval_result_free(res);
            return st;
        }
    }
    /* reductions in sample order: deterministic for any thread count */
    double correct = 0.0, loss = 0.0;
    for (int s = 0; s < d->n; s++) {
        correct += res->sample_correct[s];
        loss += res->sample_loss[s];
        for (int mi = 0; mi < c->n_moe; mi++)
            res->entropy[mi] += res->sample_entropy[(size_t)s * c->n_moe + mi];
    }
    res->n_scored = c->task == MR_TASK_LM ? (long long)d->n * T : d->n;
    res->accuracy = correct / d->n;
    res->loss = loss / d->n;
    res->bpc = res->loss / log(2.0);
    for (int mi = 0; mi < c->n_moe; mi++) res->entropy[mi] /= d->n;
    return MR_OK;
}
