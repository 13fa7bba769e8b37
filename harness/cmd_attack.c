/* moe-robust attack — write an adversarial copy of an image dataset (docs/attacks.md). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../analysis/attacks/mr_attack.h"
#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "../io/mr_data.h"
#include "../io/mr_data_write.h"
#include "../io/mr_fs.h"
#include "../io/mr_model_io.h"
#include "mr_cli.h"
#include "mr_eval.h"
#include "mr_eval_print.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust attack --model M.h5 --data D --method NAME --eps E --out ADV.h5\n"
            "                         [--steps S] [--seed N] [options]\n"
            "\n"
            "Attacks every image of D within an L-infinity ball of radius E (white-box: the\n"
            "model as evaluated with its router), writes the adversarial images in the data\n"
            "format (/images, /labels, plus attributes saying how they were made), and prints\n"
            "the evaluation of the model on them against the clean images, as 'eval\n"
            "--corruption' does: accuracy, its drop, prediction and routing flip rates per MoE\n"
            "layer. Images stay on the 1/255 grid of the data and within floor(255 E) grey\n"
            "levels of the clean ones. Deterministic for any --threads. See docs/attacks.md.\n"
            "\n"
            "  --model FILE          an image model (task classify)\n"
            "  --data FILE           HDF5 images+labels, or an IDX *images-idx3-ubyte[.gz] file\n"
            "  --method NAME         attack (below)\n"
            "  --eps E               radius in intensity units: a number (0.1) or a fraction\n"
            "                        (8/255)\n"
            "  --out FILE            output HDF5 file (written to FILE.tmp-PID, then renamed)\n"
            "  --steps S             pgd/spsa iterations, square queries (default: the method's)\n"
            "  --seed N              seed of every random stream (default 0)\n"
            "  --step-size A         pgd step, intensity units or fraction (default E/4)\n"
            "  --random-start yes|no pgd: start from a uniform point of the ball (default yes)\n"
            "  --objective loss|routing\n"
            "                        loss: misclassify (default); routing: flip the top-1\n"
            "                        expert of the --route-layer block's tokens\n"
            "  --route-layer L       block index of an MoE block (default: the first)\n"
            "  --p-init P            square: initial square size fraction (default 0.8)\n"
            "  --p-schedule absolute|rescaled\n"
            "                        square: p halvings at fixed iterations (AutoAttack\n"
            "                        standard, default) or rescaled to the query budget\n"
            "  --spsa-samples N      spsa: direction pairs per step (default 128)\n"
            "  --spsa-delta D        spsa: finite-difference size (default 0.01)\n"
            "  --spsa-lr LR          spsa: Adam learning rate (default 0.01)\n"
            "  --router NAME         router (default: the model's); --router-opt K=V, --top-k K\n"
            "  --limit N             only the first N images\n"
            "  --batch B             images per micro-batch (default 16)\n"
            "  --threads T           OpenMP threads (default: all processors)\n"
            "  --bootstrap B         resamples for the 95%% CIs of the report (default 1000)\n"
            "  -h, --help            this text\n"
            "  --version             the version\n"
            "\n"
            "methods:\n");
    for (int i = 0; mr_attack_types[i]; i++)
        fprintf(fp, "  %-8s %s (default %d %s)\n", mr_attack_types[i]->name,
                mr_attack_types[i]->summary, mr_attack_types[i]->default_steps,
                mr_attack_types[i] == &mr_attack_square ? "queries" : "steps");
}

typedef struct attack_args {
    const char *model, *data, *method, *out, *router;
    char eps_text[64];
    long seed, limit, batch, threads, top_k, bootstrap;
    mr_attack_opts ao;
    mr_router_opts ropts;
} attack_args;

/* a number, or A/B */
static int parse_real(const char *name, const char *arg, double *out)
{
    /* numerator and denominator through the one number parser (analysis/mr_parse.h) */
    char num[64];
    const char *slash = strchr(arg, '/');
    size_t n = slash ? (size_t)(slash - arg) : strlen(arg);
    double v = 0.0, w = 1.0;
    int ok = n < sizeof num;
    if (ok) {
        memcpy(num, arg, n);
        num[n] = '\0';
        ok = mr_parse_double(name, num, -HUGE_VAL, HUGE_VAL, &v) == MR_OK &&
             (!slash || (mr_parse_double(name, slash + 1, -HUGE_VAL, HUGE_VAL, &w) == MR_OK &&
                         w != 0.0)) &&
             isfinite(v / w);
    }
    MR_REQUIRE(ok, MR_EINPUT, "%s: '%s' is not a number or fraction", name, arg);
    *out = v / w;
    return MR_OK;
}

static int parse_choice(const char *name, const char *arg, const char *a, const char *b,
                        int *out)
{
    MR_REQUIRE(strcmp(arg, a) == 0 || strcmp(arg, b) == 0, MR_EINPUT,
               "%s: '%s' must be %s or %s", name, arg, a, b);
    *out = strcmp(arg, b) == 0;
    return MR_OK;
}

static int parse(attack_args *a, int argc, char **argv, int *help)
{
    static const struct option opts[] = {
        MR_OPT("model", 'm'), MR_OPT("data", 'd'), MR_OPT("method", 'M'), MR_OPT("eps", 'e'),
        MR_OPT("out", 'O'), MR_OPT("steps", 's'), MR_OPT("seed", 'S'), MR_OPT("step-size", 'a'),
        MR_OPT("random-start", 'R'), MR_OPT("objective", 'j'), MR_OPT("route-layer", 'L'),
        MR_OPT("p-init", 'p'), MR_OPT("p-schedule", 'P'), MR_OPT("spsa-samples", 'q'),
        MR_OPT("spsa-delta", 'D'), MR_OPT("spsa-lr", 'l'), MR_OPT("router", 'r'),
        MR_OPT("router-opt", 'o'), MR_OPT("top-k", 'k'), MR_OPT("limit", 'n'),
        MR_OPT("batch", 'b'), MR_OPT("threads", 't'), MR_OPT("bootstrap", 'B'), MR_CLI_OPTS_END};
    memset(a, 0, sizeof *a);
    mr_attack_opts_init(&a->ao);
    a->batch = a->ao.batch;
    a->threads = mr_cli_default_threads();
    a->bootstrap = 1000;
    mr_cli_getopt_start();
    int c, have_eps = 0, v = 0;
    long l;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'd': a->data = optarg; break;
        case 'M': a->method = optarg; break;
        case 'O': a->out = optarg; break;
        case 'r': a->router = optarg; break;
        case 'e':
            MR_TRY(parse_real("--eps", optarg, &a->ao.eps));
            snprintf(a->eps_text, sizeof a->eps_text, "%s", optarg);
            have_eps = 1;
            break;
        case 'a': MR_TRY(parse_real("--step-size", optarg, &a->ao.step_size)); break;
        case 'p': MR_TRY(parse_real("--p-init", optarg, &a->ao.p_init)); break;
        case 'D': MR_TRY(parse_real("--spsa-delta", optarg, &a->ao.spsa_delta)); break;
        case 'l': MR_TRY(parse_real("--spsa-lr", optarg, &a->ao.spsa_lr)); break;
        case 'R': MR_TRY(parse_choice("--random-start", optarg, "no", "yes", &v));
            a->ao.random_start = v;
            break;
        case 'j': MR_TRY(parse_choice("--objective", optarg, "loss", "routing", &a->ao.objective));
            break;
        case 'P': MR_TRY(parse_choice("--p-schedule", optarg, "absolute", "rescaled",
                                      &a->ao.square_rescale));
            break;
        case 's': MR_TRY(mr_cli_parse_int("--steps", optarg, 1, 1000000, &l)); a->ao.steps = (int)l; break;
        case 'L': MR_TRY(mr_cli_parse_int("--route-layer", optarg, 0, 1 << 20, &l));
            a->ao.route_layer = (int)l;
            break;
        case 'q': MR_TRY(mr_cli_parse_int("--spsa-samples", optarg, 1, 65536, &l));
            a->ao.spsa_samples = (int)l;
            break;
        case 'S': MR_TRY(mr_cli_parse_int("--seed", optarg, 0, 2147483647L, &a->seed)); break;
        case 'k': MR_TRY(mr_cli_parse_int("--top-k", optarg, 1, 4096, &a->top_k)); break;
        case 'n': MR_TRY(mr_cli_parse_int("--limit", optarg, 1, 2000000000L, &a->limit)); break;
        case 'b': MR_TRY(mr_cli_parse_int("--batch", optarg, 1, 65536, &a->batch)); break;
        case 't': MR_TRY(mr_cli_parse_int("--threads", optarg, 1, 1024, &a->threads)); break;
        case 'B': MR_TRY(mr_cli_parse_int("--bootstrap", optarg, 0, 1000000, &a->bootstrap)); break;
        case 'o': MR_TRY(mr_router_opts_add(&a->ropts, optarg)); break;
        case 'h': *help = 1; return MR_OK;
        case 'V': *help = 2; return MR_OK;
        default: return mr_cli_option_error(c, argv);
        }
    }
    MR_REQUIRE(optind == argc, MR_EINPUT, "unexpected argument '%s'", argv[optind]);
    MR_REQUIRE(a->model, MR_EINPUT, "--model is required");
    MR_REQUIRE(a->data, MR_EINPUT, "--data is required");
    MR_REQUIRE(a->method, MR_EINPUT, "--method is required (fgsm, pgd, square, spsa)");
    MR_REQUIRE(mr_attack_lookup(a->method), MR_EINPUT,
               "--method: unknown attack '%s' (known: fgsm, pgd, square, spsa)", a->method);
    MR_REQUIRE(have_eps, MR_EINPUT, "--eps is required (e.g. 8/255)");
    MR_REQUIRE(a->out, MR_EINPUT, "--out is required");
    a->ao.seed = (uint64_t)a->seed;
    a->ao.batch = (int)a->batch;
    a->ao.top_k = (int)a->top_k;
    return MR_OK;
}

/* The evaluation's "corruption": the adversarial images, already computed. */
static int copy_adv(void *ctx, uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                    uint64_t first, int thread)
{
    (void)in, (void)thread;
    size_t per = (size_t)H * W * C;
    memcpy(out, (const uint8_t *)ctx + first * per, (size_t)n * per);
    return MR_OK;
}

static int write_adv(const attack_args *a, const mr_dataset *d, const uint8_t *adv,
                     const char *router)
{
    const mr_attack_opts *o = &a->ao;
    const mr_attack_type *t = mr_attack_lookup(a->method);
    mr_data_attr at[] = {
        {.name = "attack", .str = t->name},
        {.name = "eps", .is_real = 1, .real = o->eps},
        {.name = "eps_grey_levels", .integer = (long long)floor(o->eps * 255.0 + 1e-6)},
        {.name = "steps", .integer = o->steps ? o->steps : t->default_steps},
        {.name = "seed", .integer = a->seed},
        {.name = "objective", .str = o->objective == MR_ATTACK_ROUTING ? "routing" : "loss"},
        {.name = "model", .str = a->model},
        {.name = "router", .str = router},
        {.name = "source", .str = d->path}};
    return mr_dataset_write(a->out, d, adv, at, (int)(sizeof at / sizeof *at));
}

static void print_attack(const attack_args *a, const mr_dataset *d, const uint8_t *adv,
                         const int *queries, const float *objective, double seconds)
{
    size_t per = (size_t)d->h * d->w * d->c;
    int maxdiff = 0, success = 0;
    double q = 0.0;
    for (int i = 0; i < d->n; i++) {
        for (size_t j = 0; j < per; j++) {
            int df = abs((int)adv[i * per + j] - (int)d->images[i * per + j]);
            maxdiff = df > maxdiff ? df : maxdiff;
        }
        q += queries[i];
        success += objective[i] <= 0.0f;
    }
    printf("attack       %s, eps %s (%d grey levels, largest change %d), objective %s\n",
           a->method, a->eps_text, (int)floor(a->ao.eps * 255.0 + 1e-6), maxdiff,
           a->ao.objective == MR_ATTACK_ROUTING ? "routing" : "loss");
    printf("             %d of %d images %s; %.1f forward passes per image; %.1f s\n", success,
           d->n, a->ao.objective == MR_ATTACK_ROUTING ? "with every token flipped"
                                                      : "misclassified", q / d->n, seconds);
    printf("wrote        %s\n", a->out);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(attack_args *a)
{
    mr_model *m = NULL;
    mr_dataset *d = NULL;
    mr_router *r = NULL;
    uint8_t *adv = NULL;
    int *queries = NULL;
    float *objective = NULL;
    mr_eval_result res = {0};
    const mr_attack_type *t = mr_attack_lookup(a->method);
    /* the output is checked before any work: never the model or data file itself */
    char *labels = NULL;
    int st = mr_dataset_files(a->data, &labels);
    const char *inputs[3] = {a->model, a->data, labels};
    if (st == MR_OK) st = mr_fs_check_output(a->out, "--out", inputs, 3);
    free(labels);
    if (st == MR_OK) st = mr_model_load(&m, a->model);
    if (st == MR_OK) st = mr_attack_opts_check(&a->ao, t, m);
    if (st == MR_OK) st = mr_dataset_load(&d, a->data, a->limit);
    if (st == MR_OK && d->kind != MR_DATA_IMAGES)
        st = mr_error_set(MR_EINPUT, "%s holds tokens: attacks write images", a->data);
    if (st == MR_OK) st = mr_dataset_check_model(d, m);
    if (st == MR_OK && !a->router) {
        a->router = m->cfg.router; /* the model's own: an unknown name is about the file */
        if (!mr_router_lookup(a->router))
            st = mr_error_set(MR_EINPUT,
                              "%s: attribute router = '%s' names no router of this build; "
                              "choose one with --router",
                              a->model, a->router);
    }
    if (st == MR_OK) st = mr_router_alloc(&r, a->router, m, &a->ropts);
    size_t bytes = st == MR_OK ? (size_t)d->n * d->h * d->w * d->c : 0;
    if (st == MR_OK) {
        adv = malloc(bytes + 1);
        queries = calloc((size_t)d->n, sizeof *queries);
        objective = calloc((size_t)d->n, sizeof *objective);
        if (!adv || !queries || !objective) st = mr_error_set(MR_ENOMEM, "out of memory");
    }
    double t0 = now();
    if (st == MR_OK) {
        mr_attack_out out = {.adv = adv, .queries = queries, .objective = objective};
        st = mr_attack_images(t, &a->ao, m, r, d->images, d->labels, d->n, (int)a->threads,
                              &out);
    }
    double seconds = now() - t0;
    if (st == MR_OK) st = write_adv(a, d, adv, a->router);
    mr_eval_opts eo;
    char label[128];
    if (st == MR_OK) {
        mr_eval_opts_init(&eo, m);
        eo.engine.batch = (int)a->batch;
        eo.engine.top_k = (int)a->top_k;
        eo.threads = (int)a->threads;
        eo.bootstrap = (int)a->bootstrap;
        eo.seed = (uint64_t)a->seed;
        snprintf(label, sizeof label, "%s eps %s", a->method, a->eps_text);
        mr_eval_corruption ec = {.label = label, .images = copy_adv, .ctx = adv};
        eo.corruption = &ec;
        st = mr_eval_run(&res, m, r, d, &eo);
    }
    if (st == MR_OK) {
        mr_eval_labels labels = {.router = a->router, .corruption = label,
                                 .threads = (int)a->threads};
        mr_eval_print(stdout, &res, m, d, &eo, &labels);
        print_attack(a, d, adv, queries, objective, seconds);
    }
    mr_eval_result_free(&res);
    free(adv);
    free(queries);
    free(objective);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
    return st;
}

int mr_cmd_attack(int argc, char **argv)
{
    attack_args a;
    int help = 0;
    int st = parse(&a, argc, argv, &help);
    int ex = mr_cli_parsed("attack", st, help, usage);
    if (ex >= 0) return ex;
    st = run(&a);
    return mr_cli_done("attack", st);
}
