/* moe-robust-bench — throughput of the C engine and of its expert GEMMs (docs/performance.md).
 *
 *   moe-robust-bench --model M.h5 (--data D | --random-tokens N) [--router R]
 *                    [--router-opt K=V] [--threads T] [--batch B] [--limit N] [--reps R]
 *
 * Runs forward passes only (no metrics), as `moe-robust eval` does them: fixed
 * micro-batches over OpenMP threads, OpenBLAS single-threaded inside each. Prints the
 * best of R repetitions (wall time, and process CPU time: tokens per CPU second), and a
 * final line "RESULT key=value ..." for bench/run.sh.
 * Expert GEMMs are timed per thread (mr_workspace_profile_*), and compared with a plain
 * sgemm of the same total size run the same way (one per thread, concurrently):
 * M = B*T*k rows, K = d, N = h, and back (the two expert GEMMs of a micro-batch fused).
 * The whole forward's rate counts every matrix product of the model (forward_flops) over
 * the pass's wall time, against the machine's sgemm peak measured in the same process
 * (threads concurrent single-threaded sgemm of 1024 x 1024 x 1024: the roofline figure).
 */
#include <getopt.h>
#include <gsl/gsl_cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "analysis/mr_engine.h"
#include "analysis/mr_error.h"
#include "analysis/mr_rng.h"
#include "io/mr_data.h"
#include "io/mr_model_io.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process (all threads): time-sharing with other processes does
 * not inflate it as it inflates wall time (bench/run.sh reports both). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "moe-robust-bench: %s%s%s\n", what, *mr_error_message() ? ": " : "",
            mr_error_message());
    exit(2);
}

/* One timed pass over all samples; returns seconds and (*cpu) process CPU seconds; adds
 * expert GEMM seconds/flops. */
static double pass(mr_workspace **ws, const mr_dataset *d, const mr_model *m, int threads,
                   int B, int T, double *gsec, double *gflop, double *cpu)
{
    int n_chunks = (d->n + B - 1) / B, failed = 0;
    for (int t = 0; t < threads; t++) mr_workspace_profile_enable(ws[t], 1);
    double c0 = cpu_now(), t0 = now();
#pragma omp parallel num_threads(threads)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < n_chunks; c++) {
            int s0 = c * B, nb = d->n - s0 < B ? d->n - s0 : B, st;
            if (m->cfg.task == MR_TASK_CLASSIFY)
                st = mr_engine_forward_images(ws[tid], d->images + (size_t)s0 * d->h * d->w * d->c, nb);
            else
                st = mr_engine_forward_tokens(ws[tid], d->tokens + (size_t)s0 * d->cols, nb, T, d->cols);
            if (st != MR_OK) failed = 1;
        }
    }
    double el = now() - t0;
    *cpu = cpu_now() - c0;
    if (failed) die("forward failed");
    *gsec = *gflop = 0.0;
    for (int t = 0; t < threads; t++) {
        double s, f;
        mr_workspace_profile_get(ws[t], &s, &f);
        /* threads run concurrently: the aggregate rate is the sum of per-thread rates */
        if (s > 0) *gsec += f / s;
        *gflop += f;
    }
    return el;
}

/* CPU seconds of the calling thread: what it computed, however long it waited for a core. */
static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s of `threads` concurrent single-threaded sgemm pairs [M,K]x[K,N], [M,N]x[N,K];
 * (*per_cpu_s) the same rate per second of each thread's own CPU time, summed over the
 * threads (the rate with a core each, which other processes' load does not lower). */
static double plain_sgemm(int M, int K, int N, int threads, int reps, double *per_cpu_s)
{
    double best = 0.0, best_cpu = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : best, best_cpu)
    {
        float *a = malloc((size_t)M * K * sizeof *a), *b = malloc((size_t)K * N * sizeof *b);
        float *c = malloc((size_t)M * N * sizeof *c), *e = malloc((size_t)M * K * sizeof *e);
        for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 17) * 0.01f;
        for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)(i % 13) * 0.01f;
        double rate = 0.0, rate_cpu = 0.0;
        for (int r = 0; r < reps + 1; r++) {
            double t0 = now(), c0 = thread_cpu_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, c, N, b, N, 0.0f, e, K);
            double el = now() - t0, ec = thread_cpu_now() - c0;
            double g = 4.0 * M * K * N / el / 1e9, gc = 4.0 * M * K * N / ec / 1e9;
            if (r > 0 && g > rate) rate = g; /* the first is a warm-up */
            if (r > 0 && gc > rate_cpu) rate_cpu = gc;
        }
        best += rate;
        best_cpu += rate_cpu;
        free(a);
        free(b);
        free(c);
        free(e);
    }
    if (per_cpu_s) *per_cpu_s = best_cpu;
    return best;
}

/* Floating-point operations (2 per multiply-add) of the matrix products of one sample's
 * forward pass of T tokens, as the engine computes them: patch embedding, per block the
 * QKV and output projections, both attention products over all T x T scores (the engine
 * computes the full square also for causal models and masks it), the dense FFN or the
 * gate and k experts per token (and a shared expert), the head. Routers' own extra work
 * (similarity's token graph, AC's distances) and element-wise operations are not counted:
 * the rate is that of the model's GEMMs, comparable across routers. */
static double forward_flops(const mr_config *c, int T)
{
    double d = c->d_model, a = c->activation == MR_ACT_SWIGLU ? 2.0 : 1.0, f = 0.0;
    if (c->task == MR_TASK_CLASSIFY)
        f += 2.0 * c->n_patches * (double)c->patch * c->patch * c->channels * d;
    double attn = 2.0 * T * d * c->qkv_dim + 2.0 * T * (double)c->q_dim * d
                  + 2.0 * 2.0 * c->n_heads * (double)T * T * c->head_dim;
    double dense = 2.0 * T * d * a * c->d_ff + 2.0 * T * (double)c->d_ff * d;
    double moe = 2.0 * T * d * c->n_experts
                 + (double)c->top_k * (2.0 * T * d * a * c->expert_hidden
                                       + 2.0 * T * (double)c->expert_hidden * d)
                 + (2.0 * T * d * a * c->shared_hidden + 2.0 * T * (double)c->shared_hidden * d);
    f += c->n_layers * attn + c->n_moe * moe + (c->n_layers - c->n_moe) * dense;
    f += c->task == MR_TASK_CLASSIFY ? 2.0 * d * c->n_out : 2.0 * T * d * c->n_out;
    return f;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"random-tokens", required_argument, 0, 'R'}, {"router", required_argument, 0, 'r'},
        {"router-opt", required_argument, 0, 'o'}, {"threads", required_argument, 0, 't'},
        {"batch", required_argument, 0, 'b'}, {"limit", required_argument, 0, 'n'},
        {"reps", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *router = "softmax";
    int random_tokens = 0, threads = 2, batch = 16, reps = 3, c;
    long limit = 0;
    mr_router_opts ro = {0};
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 'R': random_tokens = atoi(optarg); break;
        case 'r': router = optarg; break;
        case 'o': if (mr_router_opts_add(&ro, optarg) != MR_OK) die("--router-opt"); break;
        case 't': threads = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'n': limit = atol(optarg); break;
        case 'p': reps = atoi(optarg); break;
        case 'h':
            printf("usage: moe-robust-bench --model M.h5 (--data D | --random-tokens N) [--router R]\n"
                   "       [--router-opt K=V] [--threads T] [--batch B] [--limit N] [--reps R]\n");
            return 0;
        default: return 2;
        }
    }
    if (!model || (!data && random_tokens <= 0) || threads < 1 || batch < 1 || reps < 1) {
        fprintf(stderr, "moe-robust-bench: --model and --data (or --random-tokens N) are required\n");
        return 2;
    }
    mr_engine_blas_single_thread();
    mr_model *m;
    if (mr_model_load(&m, model) != MR_OK) die("model");
    mr_dataset *d = NULL;
    if (data) {
        if (mr_dataset_load(&d, data, limit) != MR_OK || mr_dataset_check_model(d, m) != MR_OK)
            die("data");
    } else {
        if (m->cfg.task != MR_TASK_LM) die("--random-tokens needs an lm model");
        d = calloc(1, sizeof *d);
        d->kind = MR_DATA_TOKENS;
        d->n = random_tokens;
        d->cols = m->cfg.max_seq_len + 1;
        d->tokens = malloc((size_t)d->n * d->cols * sizeof *d->tokens);
        gsl_rng *r = mr_rng_alloc(0, "bench/tokens", 0);
        for (size_t i = 0; i < (size_t)d->n * d->cols; i++)
            d->tokens[i] = (int32_t)gsl_rng_uniform_int(r, (unsigned long)m->cfg.vocab_size);
        gsl_rng_free(r);
        snprintf(d->path, sizeof d->path, "random tokens");
    }
    mr_router *r;
    if (mr_router_alloc(&r, router, m, &ro) != MR_OK) die("router");
    const mr_config *cf = &m->cfg;
    int T = cf->task == MR_TASK_LM ? d->cols - 1 : cf->n_pos;
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = batch;
    if (cf->task == MR_TASK_LM) eo.seq_len = T;
    mr_workspace **ws = calloc((size_t)threads, sizeof *ws);
    for (int t = 0; t < threads; t++)
        if (mr_workspace_alloc(&ws[t], m, r, &eo) != MR_OK) die("workspace");
    double best = 1e30, best_cpu = 1e30, gemm_rate = 0.0, gsec, gflop, cpu;
    pass(ws, d, m, threads, batch, T, &gsec, &gflop, &cpu); /* warm-up */
    for (int i = 0; i < reps; i++) {
        double el = pass(ws, d, m, threads, batch, T, &gsec, &gflop, &cpu);
        if (cpu < best_cpu) best_cpu = cpu;
        if (el < best) {
            best = el;
            gemm_rate = gsec / 1e9;
        }
    }
    int k = cf->top_k;
    double peak = plain_sgemm(batch * T * k, cf->d_model, cf->expert_hidden, threads, 3, NULL);
    /* The roofline: the forward's matrix products per second against the sgemm peak, both
     * by wall time and both per CPU second (the forward's CPU time spread over `threads`
     * cores; robust when other processes share the cores, as bench/run.sh reports). */
    double roof_cpu, roof = plain_sgemm(1024, 1024, 1024, threads, 3, &roof_cpu);
    double flops = forward_flops(cf, T) * d->n;
    double fwd = flops / best / 1e9, fwd_cpu = flops / best_cpu * threads / 1e9;
    double sps = d->n / best, tps = (double)d->n * T / best;
    printf("model        %s\nrouter       %s, %d threads, batch %d\n", model, router, threads, batch);
    printf("samples      %d x %d tokens\n", d->n, T);
    printf("time         %.3f s (best of %d)\n", best, reps);
    printf("throughput   %.1f samples/s, %.0f tokens/s\n", sps, tps);
    printf("CPU time     %.3f s (best of %d): %.1f tokens per CPU second\n", best_cpu, reps,
           (double)d->n * T / best_cpu);
    printf("expert GEMMs %.1f GFLOP/s (%.0f%% of a plain sgemm of the same size: %.1f GFLOP/s)\n",
           gemm_rate, 100.0 * gemm_rate / peak, peak);
    printf("forward      %.1f GFLOP/s of matrix products (%.0f%% of the sgemm peak: %.1f GFLOP/s, "
           "%d x 1024^3); per CPU second x %d threads: %.1f of %.1f (%.0f%%)\n", fwd,
           100.0 * fwd / roof, roof, threads, threads, fwd_cpu, roof_cpu,
           100.0 * fwd_cpu / roof_cpu);
    double wmib = (double)mr_workspace_bytes(ws[0]) / (1 << 20);
    printf("memory       weights %.1f MiB (float32), workspace %.1f MiB per thread\n",
           (double)m->n_arena * sizeof(float) / (1 << 20), wmib);
    printf("RESULT samples_per_s=%.3f tokens_per_s=%.1f gemm_gflops=%.2f sgemm_gflops=%.2f "
           "weights_mib=%.1f workspace_mib=%.1f cpu_tokens_per_s=%.2f forward_gflops=%.2f "
           "peak_gflops=%.2f forward_gflops_cpu=%.2f peak_gflops_cpu=%.2f\n",
           sps, tps, gemm_rate, peak, (double)m->n_arena * sizeof(float) / (1 << 20), wmib,
           (double)d->n * T / best_cpu, fwd, roof, fwd_cpu, roof_cpu);
    for (int t = 0; t < threads; t++) mr_workspace_free(ws[t]);
    free(ws);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
    return 0;
}
