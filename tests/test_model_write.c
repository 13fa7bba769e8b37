/* Model writer: load -> save -> load gives the same configuration, bit-identical
 * weights and router tensors, the same metadata, and evaluates bit-identically;
 * failures leave nothing behind and name the file. */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "harness/mr_eval.h"
#include "io/mr_model_io.h"
#include "io/mr_model_write.h"
#include "mr_test_util.h"

static void tmp_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/mr-test-model-write-%ld-%s.h5", (long)getpid(), tag);
}

/* No NAME.tmp-* left beside `path`. */
static void no_temporaries(const char *path)
{
    char pat[1200];
    snprintf(pat, sizeof pat, "%s.tmp-*", path);
    glob_t g;
    int r = glob(pat, 0, NULL, &g);
    ck_assert_msg(r == GLOB_NOMATCH, "temporary file left: %s", r == 0 ? g.gl_pathv[0] : "?");
    if (r == 0) globfree(&g);
}

static void same_config(const mr_config *a, const mr_config *b)
{
    ck_assert_int_eq(a->task, b->task);
    ck_assert_int_eq(a->d_model, b->d_model);
    ck_assert_int_eq(a->n_layers, b->n_layers);
    ck_assert_int_eq(a->n_heads, b->n_heads);
    ck_assert_int_eq(a->d_ff, b->d_ff);
    ck_assert_int_eq(a->n_experts, b->n_experts);
    ck_assert_int_eq(a->top_k, b->top_k);
    ck_assert_int_eq(a->expert_hidden, b->expert_hidden);
    ck_assert(memcmp(&a->norm_eps, &b->norm_eps, sizeof(float)) == 0);
    ck_assert_int_eq(a->activation, b->activation);
    ck_assert_int_eq(a->gate_norm, b->gate_norm);
    ck_assert_str_eq(a->router, b->router);
    ck_assert_int_eq(a->n_moe, b->n_moe);
    for (int i = 0; i < a->n_moe; i++) ck_assert_int_eq(a->moe_layers[i], b->moe_layers[i]);
    ck_assert_int_eq(a->image_h, b->image_h);
    ck_assert_int_eq(a->image_w, b->image_w);
    ck_assert_int_eq(a->channels, b->channels);
    ck_assert_int_eq(a->patch, b->patch);
    ck_assert_int_eq(a->n_classes, b->n_classes);
    ck_assert_int_eq(a->pool, b->pool);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->max_seq_len, b->max_seq_len);
    /* format 2 (equal to the version 1 defaults in a version 1 model) */
    ck_assert_int_eq(a->format_version, b->format_version);
    ck_assert_int_eq(a->norm, b->norm);
    ck_assert_int_eq(a->position, b->position);
    ck_assert(a->rope_theta == b->rope_theta && a->rope_scaling == b->rope_scaling);
    ck_assert_int_eq(a->n_kv_heads, b->n_kv_heads);
    ck_assert_int_eq(a->head_dim, b->head_dim);
    ck_assert_int_eq(a->qk_norm, b->qk_norm);
    ck_assert(a->clip_qkv == b->clip_qkv);
    ck_assert_int_eq(a->shared_hidden, b->shared_hidden);
    ck_assert_int_eq(a->tie_head, b->tie_head);
    ck_assert_int_eq(a->has_vocab, b->has_vocab);
}

/* Same weights bit for bit: the whole arena (core tensors in file order, then router
 * tensors) and every router tensor's name and shape. */
static void same_model(const mr_model *a, const mr_model *b)
{
    same_config(&a->cfg, &b->cfg);
    ck_assert_uint_eq(a->n_params, b->n_params);
    ck_assert_uint_eq(a->n_arena, b->n_arena);
    ck_assert_int_eq(memcmp(a->arena, b->arena, a->n_arena * sizeof(float)), 0);
    for (int l = 0; l < a->cfg.n_layers; l++) {
        const mr_layer *x = &a->layers[l], *y = &b->layers[l];
        ck_assert_int_eq(x->is_moe, y->is_moe);
        ck_assert_int_eq(x->has_gate_b, y->has_gate_b);
        ck_assert_int_eq(x->n_router_tensors, y->n_router_tensors);
        for (int i = 0; i < x->n_router_tensors; i++) {
            const mr_named_tensor *s = &x->router_tensors[i], *t = &y->router_tensors[i];
            ck_assert_str_eq(s->name, t->name);
            ck_assert_int_eq(s->ndim, t->ndim);
            for (int j = 0; j < s->ndim; j++) ck_assert_uint_eq(s->dims[j], t->dims[j]);
            ck_assert_int_eq(memcmp(s->data, t->data, s->size * sizeof(float)), 0);
        }
    }
    if (a->cfg.task == MR_TASK_LM && a->vocab)
        ck_assert_int_eq(memcmp(a->vocab, b->vocab, a->cfg.vocab_size * sizeof(int)), 0);
}

static void eval_pass(mr_eval_result *res, const mr_model *m, const mr_dataset *d)
{
    mr_router *r;
    ck_assert_msg(mr_router_alloc(&r, m->cfg.router, m, NULL) == MR_OK, "%s", mr_error_message());
    mr_eval_opts o;
    mr_eval_opts_init(&o, m);
    o.threads = 1;
    o.bootstrap = 0;
    ck_assert_msg(mr_eval_run(res, m, r, d, &o) == MR_OK, "%s", mr_error_message());
    mr_router_free(r);
}

/* Both models give the same per-sample loss, correctness and routing, bit for bit. */
static void same_eval(const mr_model *a, const mr_model *b, const char *data)
{
    mr_dataset *d;
    ck_assert_msg(mr_dataset_load(&d, data, 24) == MR_OK, "%s", mr_error_message());
    mr_eval_result x, y;
    eval_pass(&x, a, d);
    eval_pass(&y, b, d);
    ck_assert_int_eq(x.n, y.n);
    ck_assert_int_eq(memcmp(x.clean.loss, y.clean.loss, x.n * sizeof(double)), 0);
    ck_assert_int_eq(memcmp(x.clean.correct, y.clean.correct, x.n * sizeof(double)), 0);
    size_t ps = (size_t)x.n * x.n_moe * sizeof(double);
    ck_assert_int_eq(memcmp(x.clean.routing->entropy, y.clean.routing->entropy, ps), 0);
    mr_eval_result_free(&x);
    mr_eval_result_free(&y);
    mr_dataset_free(d);
}

static void round_trip(const char *model, const char *data)
{
    mr_model *a, *b;
    ck_assert_msg(mr_model_load(&a, model) == MR_OK, "%s", mr_error_message());
    mr_model_meta *meta;
    ck_assert_int_eq(mr_model_meta_alloc(&meta), MR_OK);
    ck_assert_msg(mr_model_meta_read(meta, model) == MR_OK, "%s", mr_error_message());
    char out[256];
    tmp_path(out, sizeof out, "rt");
    ck_assert_msg(mr_model_save(a, out, meta) == MR_OK, "%s: %s", model, mr_error_message());
    no_temporaries(out);
    ck_assert_msg(mr_model_load(&b, out) == MR_OK, "%s: %s", model, mr_error_message());
    same_model(a, b);
    /* the metadata came along: same names, in the same order */
    mr_model_meta *back;
    ck_assert_int_eq(mr_model_meta_alloc(&back), MR_OK);
    ck_assert_int_eq(mr_model_meta_read(back, out), MR_OK);
    ck_assert_int_eq(mr_model_meta_count(back), mr_model_meta_count(meta));
    for (int i = 0; i < mr_model_meta_count(meta); i++)
        ck_assert_str_eq(mr_model_meta_name(back, i), mr_model_meta_name(meta, i));
    if (data) same_eval(a, b, data);
    /* saving the reloaded model again gives the same model once more */
    ck_assert_int_eq(mr_model_save(b, out, NULL), MR_OK);
    mr_model *c;
    ck_assert_int_eq(mr_model_load(&c, out), MR_OK);
    same_model(a, c);
    mr_model_free(c);
    mr_model_meta_free(back);
    mr_model_meta_free(meta);
    mr_model_free(a);
    mr_model_free(b);
    unlink(out);
}

START_TEST(fixtures_round_trip)
{
    round_trip("tests/fixtures/tiny-classify.h5", "tests/fixtures/tiny-images.h5");
    round_trip("tests/fixtures/tiny-lm.h5", "tests/fixtures/tiny-tokens.h5");
    /* no gate_b in the file: none written back */
    round_trip("tests/fixtures/tiny-classify-rgb.h5", "tests/fixtures/tiny-rgb-images.h5");
}
END_TEST

/* Format 2 (tests/fixtures/hf: RMSNorm, RoPE, GQA, q/k norms, SwiGLU, shared experts,
 * tied heads, absent biases and /vocab): the same weights, structure and evaluation. */
START_TEST(format2_models_round_trip)
{
    glob_t g;
    ck_assert_int_eq(glob("tests/fixtures/hf/*-*.h5", 0, NULL, &g), 0);
    int n = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (strstr(g.gl_pathv[i], "/ref-")) continue;
        round_trip(g.gl_pathv[i], "tests/fixtures/hf/tokens.h5");
        n++;
    }
    globfree(&g);
    ck_assert_int_ge(n, 8);
}
END_TEST

/* mr_model_alloc lays out a format 2 model as the plan says (optional tensors as zeros),
 * and what it builds saves and loads. */
START_TEST(allocated_format2_model_round_trips)
{
    mr_model *src, *m, *b;
    ck_assert_int_eq(mr_model_load(&src, "tests/fixtures/hf/qwen2_moe-f32.h5"), MR_OK);
    ck_assert_msg(mr_model_alloc(&m, &src->cfg, 0) == MR_OK, "%s", mr_error_message());
    ck_assert_uint_eq(m->n_params, mr_config_param_count(&m->cfg));
    ck_assert_ptr_null(m->vocab);
    ck_assert_ptr_nonnull(m->layers[0].shared_gate_w);
    ck_assert_ptr_nonnull(m->layers[0].exp_b1); /* optional: zeros */
    for (size_t i = 0; i < m->n_arena; i++) m->arena[i] = (float)sin((double)i);
    char out[256];
    tmp_path(out, sizeof out, "alloc2");
    ck_assert_msg(mr_model_save(m, out, NULL) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_model_load(&b, out) == MR_OK, "%s", mr_error_message());
    same_model(m, b);
    mr_model_free(b);
    mr_model_free(m);
    mr_model_free(src);
    unlink(out);
}
END_TEST

START_TEST(router_tensors_round_trip)
{
    /* datasets ([E, d_e] embeddings, projections) and one-element hyperparameters */
    const char *models[] = {"tests/fixtures/routers/tiny-classify-cosine.h5",
                            "tests/fixtures/routers/tiny-classify-random.h5",
                            "tests/fixtures/routers/tiny-classify-momentum.h5",
                            "tests/fixtures/routers/tiny-classify-s2moe.h5",
                            "tests/fixtures/routers/tiny-lm-ac.h5",
                            "tests/fixtures/routers/tiny-lm-similarity.h5"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) round_trip(models[i], NULL);
}
END_TEST

START_TEST(shipped_model_round_trips_and_evaluates_identically)
{
    round_trip("models/fmnist-vit-moe-softmax.h5",
               "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
}
END_TEST

/* Scalar router hyperparameters stored as attributes (rank 0) come back as attributes. */
START_TEST(router_scalar_attributes_round_trip)
{
    mr_model *a, *b;
    ck_assert_int_eq(mr_model_load(&a, "tests/fixtures/tiny-classify.h5"), MR_OK);
    /* the fixture has no router tensors: give the first MoE block a scalar */
    mr_layer *L = &a->layers[a->cfg.moe_layers[0]];
    static float mu = 0.625f;
    /* router_tensors is a malloc'd array the model owns (mr_model_free frees it) */
    mr_named_tensor *grown = realloc(L->router_tensors, (size_t)(L->n_router_tensors + 1) * sizeof *grown);
    ck_assert_ptr_nonnull(grown);
    L->router_tensors = grown;
    mr_named_tensor *t = &L->router_tensors[L->n_router_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "mu");
    t->ndim = 0;
    t->size = 1;
    t->data = &mu;
    char out[256];
    tmp_path(out, sizeof out, "scalar");
    ck_assert_msg(mr_model_save(a, out, NULL) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(mr_model_load(&b, out), MR_OK);
    const mr_named_tensor *u = mr_layer_router_tensor(&b->layers[a->cfg.moe_layers[0]], "mu");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(u->ndim, 0);
    ck_assert(u->data[0] == mu);
    L->n_router_tensors--;
    mr_model_free(a);
    mr_model_free(b);
    unlink(out);
}
END_TEST

/* A model built in memory with mr_model_alloc (no MoE blocks at all) saves and loads. */
START_TEST(allocated_model_without_moe_round_trips)
{
    mr_model *src;
    ck_assert_int_eq(mr_model_load(&src, "tests/fixtures/tiny-classify.h5"), MR_OK);
    mr_config c = src->cfg;
    c.n_moe = 0;
    if (c.d_ff < 1) c.d_ff = 8;
    mr_model *m, *b;
    ck_assert_msg(mr_model_alloc(&m, &c, 0) == MR_OK, "%s", mr_error_message());
    ck_assert_uint_eq(m->n_params, mr_config_param_count(&m->cfg));
    for (size_t i = 0; i < m->n_arena; i++) m->arena[i] = (float)sin((double)i);
    for (int l = 0; l < c.n_layers; l++) ck_assert(!m->layers[l].is_moe);
    char out[256];
    tmp_path(out, sizeof out, "nomoe");
    ck_assert_msg(mr_model_save(m, out, NULL) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_model_load(&b, out) == MR_OK, "%s", mr_error_message());
    same_model(m, b);
    mr_model_free(b);
    mr_model_free(m);
    mr_model_free(src);
    unlink(out);
}
END_TEST

START_TEST(failures_name_the_file_and_leave_nothing)
{
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-classify.h5"), MR_OK);
    /* missing directory: bad input, the message names the file */
    const char *nodir = "/nonexistent-mr-dir/model.h5";
    ck_assert_int_eq(mr_model_save(m, nodir, NULL), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), nodir));
    /* a NaN weight is refused before anything is created, naming the tensor */
    char out[256];
    tmp_path(out, sizeof out, "nan");
    unlink(out);
    mr_layer *L = &m->layers[m->cfg.moe_layers[0]];
    float keep = L->exp_w2[5];
    L->exp_w2[5] = NAN;
    ck_assert_int_eq(mr_model_save(m, out, NULL), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), out));
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "/moe/w2"));
    ck_assert_int_ne(access(out, F_OK), 0);
    no_temporaries(out);
    L->exp_w2[5] = keep;
    /* an inconsistent configuration is refused too */
    m->cfg.top_k = m->cfg.n_experts + 1;
    ck_assert_int_eq(mr_model_save(m, out, NULL), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "top_k"));
    ck_assert_int_ne(access(out, F_OK), 0);
    m->cfg.top_k = 1;
    /* an existing file is replaced only by a complete one: a refused save keeps it */
    ck_assert_int_eq(mr_model_save(m, out, NULL), MR_OK);
    L->exp_b1[0] = INFINITY;
    ck_assert_int_eq(mr_model_save(m, out, NULL), MR_EINPUT);
    mr_model *back;
    ck_assert_int_eq(mr_model_load(&back, out), MR_OK);
    ck_assert_int_eq(back->cfg.top_k, 1);
    mr_model_free(back);
    unlink(out);
    mr_model_free(m);
}
END_TEST

START_TEST(format_attributes_are_not_metadata)
{
    mr_model_meta *meta;
    ck_assert_int_eq(mr_model_meta_alloc(&meta), MR_OK);
    ck_assert_int_eq(mr_model_meta_set_int(meta, "n_experts", 3), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "n_experts"));
    ck_assert_int_eq(mr_model_meta_set_string(meta, "", "x"), MR_EINPUT);
    ck_assert_int_eq(mr_model_meta_set_string(meta, "note", "a"), MR_OK);
    ck_assert_int_eq(mr_model_meta_set_double(meta, "note", 2.5), MR_OK); /* replaces */
    ck_assert_int_eq(mr_model_meta_count(meta), 1);
    mr_model_meta_free(meta);
    mr_model_meta_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_write");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, fixtures_round_trip);
    tcase_add_test(tc, router_tensors_round_trip);
    tcase_add_test(tc, format2_models_round_trip);
    tcase_add_test(tc, allocated_format2_model_round_trips);
    tcase_add_test(tc, shipped_model_round_trips_and_evaluates_identically);
    tcase_add_test(tc, router_scalar_attributes_round_trip);
    tcase_add_test(tc, allocated_model_without_moe_round_trips);
    tcase_add_test(tc, failures_name_the_file_and_leave_nothing);
    tcase_add_test(tc, format_attributes_are_not_metadata);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
