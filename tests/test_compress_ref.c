/* M-SMoE merging against reference values (docs/compression.md, "Agreement with the
 * authors' code"): merge-msmoe of the shipped Fashion-MNIST model, calibrated on the
 * first 256 training images, for K = 6, 4, 2, against tests/fixtures/mcsmoe-ref-fmnist.h5.
 * That file comes from tools/make_mcsmoe_ref.py, an implementation independent of this
 * C code that follows the authors' algorithm (UNITES-Lab/MC-SMoE: usage counts, router-
 * logit similarity, dominant grouping, weight matching, frequency-weighted merge with
 * their 1e-7 in the denominator) on the PyTorch reference model's router logits;
 * tools/test_mcsmoe_reference.py checks the file against the authors' own code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_compress.h"
#include "analysis/mr_error.h"
#include "io/mr_data.h"
#include "io/mr_h5.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

#define MODEL "models/fmnist-vit-moe-softmax.h5"
#define CALIB "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define FIXTURE "tests/fixtures/mcsmoe-ref-fmnist.h5"
#define N_CALIB 256

/* max |a - b| / max |b| over n values */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

START_TEST(merge_msmoe_matches_the_reference)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, MODEL) == MR_OK, "%s", mr_error_message());
    mr_dataset *d;
    ck_assert_msg(mr_dataset_load(&d, CALIB, N_CALIB) == MR_OK, "%s", mr_error_message());
    mr_router *r;
    ck_assert_msg(mr_router_alloc(&r, m->cfg.router, m, NULL) == MR_OK, "%s", mr_error_message());
    mr_calib *c;
    ck_assert_msg(mr_calib_images(&c, m, r, d->images, d->n, 32) == MR_OK, "%s", mr_error_message());
    hid_t f;
    ck_assert_msg(mr_h5_open_read(&f, FIXTURE) == MR_OK, "%s", mr_error_message());

    const int E = m->cfg.n_experts, nm = m->cfg.n_moe;
    const size_t h = (size_t)m->cfg.expert_hidden, dm = (size_t)m->cfg.d_model;
    const size_t sz[4] = {h * dm, h, dm * h, dm};
    static const char *const names[4] = {"w1", "b1", "w2", "b2"};
    char path[200];
    double ref[64], sim[64 * 64], rsim[64 * 64];
    int64_t counts[64];
    ck_assert_int_le(E, 64);

    /* the statistics: usage and router-logit similarity of every block */
    for (int i = 0; i < nm; i++) {
        int L = m->cfg.moe_layers[i];
        mr_calib_counts(counts, c, i);
        double total = 0;
        for (int e = 0; e < E; e++) total += (double)counts[e];
        snprintf(path, sizeof path, "/block%d/usage", L);
        ck_assert_msg(mr_h5_read_f64(f, FIXTURE, path, ref, (size_t)E) == MR_OK, "%s", mr_error_message());
        for (int e = 0; e < E; e++)
            ck_assert_msg(fabs(counts[e] / total - ref[e]) < 1e-12, "block %d expert %d: usage %.8f, reference %.8f",
                          L, e, counts[e] / total, ref[e]);
        ck_assert_int_eq(mr_calib_logit_similarity(sim, c, &m->layers[L], i), MR_OK);
        snprintf(path, sizeof path, "/block%d/similarity", L);
        ck_assert_msg(mr_h5_read_f64(f, FIXTURE, path, rsim, (size_t)E * E) == MR_OK, "%s", mr_error_message());
        for (int a = 0; a < E; a++)
            for (int b = 0; b < E; b++)
                if (a != b)
                    ck_assert_msg(fabs(sim[a * E + b] - rsim[a * E + b]) < 1e-5,
                                  "block %d similarity(%d,%d) %.7f, reference %.7f", L, a, b,
                                  sim[a * E + b], rsim[a * E + b]);
    }

    static const int Ks[3] = {6, 4, 2};
    for (int ki = 0; ki < 3; ki++) {
        const int K = Ks[ki];
        mr_compress_opts o;
        mr_compress_opts_init(&o);
        o.experts = K;
        mr_compress_result res;
        ck_assert_msg(mr_compress_run(&res, m, c, &mr_compress_merge_msmoe, &o) == MR_OK, "%s",
                      mr_error_message());
        ck_assert_int_eq(res.K, K);
        ck_assert_int_eq(res.n_layers, nm);
        for (int i = 0; i < nm; i++) {
            int L = m->cfg.moe_layers[i];
            int32_t dom[64], grp[64], merged[64];
            snprintf(path, sizeof path, "/block%d/K%d/dominant", L, K);
            ck_assert_msg(mr_h5_read_int32(f, FIXTURE, path, dom, (size_t)K) == MR_OK, "%s", mr_error_message());
            snprintf(path, sizeof path, "/block%d/K%d/group", L, K);
            ck_assert_msg(mr_h5_read_int32(f, FIXTURE, path, grp, (size_t)E) == MR_OK, "%s", mr_error_message());
            for (int g = 0; g < K; g++)
                ck_assert_msg(res.rep[i * K + g] == dom[g], "K=%d block %d: new expert %d has dominant %d, reference %d",
                              K, L, g, res.rep[i * K + g], dom[g]);
            for (int e = 0; e < E; e++)
                ck_assert_msg(res.group_of[i * E + e] == grp[e], "K=%d block %d: expert %d in group %d, reference %d",
                              K, L, e, res.group_of[i * E + e], grp[e]);
            /* merged groups against the reference tensors; a group of one is its expert */
            snprintf(path, sizeof path, "/block%d/K%d/merged", L, K);
            mr_h5_info info;
            ck_assert_int_eq(mr_h5_dataset_info(f, FIXTURE, path, &info), MR_OK);
            int nmerged = (int)info.dims[0];
            ck_assert_msg(mr_h5_read_int32(f, FIXTURE, path, merged, (size_t)nmerged) == MR_OK, "%s",
                          mr_error_message());
            const mr_layer *out = &res.model->layers[L], *src = &m->layers[L];
            const float *ours[4] = {out->exp_w1, out->exp_b1, out->exp_w2, out->exp_b2};
            const float *orig[4] = {src->exp_w1, src->exp_b1, src->exp_w2, src->exp_b2};
            int members = 0;
            for (int g = 0; g < K; g++) {
                int j = -1;
                for (int q = 0; q < nmerged; q++)
                    if (merged[q] == g) j = q;
                for (int t = 0; t < 4; t++) {
                    const float *mine = ours[t] + (size_t)g * sz[t];
                    if (j < 0) { /* a group of one: the dominant expert, bit for bit */
                        ck_assert_msg(memcmp(mine, orig[t] + (size_t)dom[g] * sz[t], sz[t] * sizeof(float)) == 0,
                                      "K=%d block %d: expert %d (alone) changed its %s", K, L, dom[g], names[t]);
                        continue;
                    }
                    float *want = malloc(sz[t] * sizeof *want);
                    ck_assert_ptr_nonnull(want);
                    snprintf(path, sizeof path, "/block%d/K%d/%s", L, K, names[t]);
                    float *all = malloc((size_t)nmerged * sz[t] * sizeof *all);
                    ck_assert_ptr_nonnull(all);
                    ck_assert_msg(mr_h5_read_float(f, FIXTURE, path, all, (size_t)nmerged * sz[t]) == MR_OK,
                                  "%s", mr_error_message());
                    memcpy(want, all + (size_t)j * sz[t], sz[t] * sizeof *want);
                    double err = rel_diff(mine, want, sz[t]);
                    /* the reference divides by sum f + 1e-7 in float32, we by sum f in double */
                    ck_assert_msg(err <= 1e-5, "K=%d block %d group of %d: merged %s differs by %.2e (relative)",
                                  K, L, dom[g], names[t], err);
                    free(all);
                    free(want);
                }
                members += j >= 0;
            }
            ck_assert_int_eq(members, nmerged);
        }
        mr_compress_result_free(&res);
    }
    H5Fclose(f);
    mr_calib_free(c);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compress_ref");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, merge_msmoe_matches_the_reference);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
