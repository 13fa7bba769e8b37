/* moe-robust eval --model M --data D ... */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_cli.h"
#include "mr_corrupt_setup.h"
#include "mr_eval.h"
#include "mr_eval_print.h"
#include "../io/mr_fs.h"
#include "../io/mr_model_io.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust eval --model M.h5 --data D [options]\n"
            "\n"
            "Evaluates a model on a dataset and prints accuracy and loss (classify) or loss, bits\n"
            "per char and next-token accuracy (lm), and per MoE layer the routing entropy, the\n"
            "expert load balance and, with --compare-checkpoint, the routing flip rate between\n"
            "checkpoints; every mean over samples comes with a bootstrap confidence interval.\n"
            "\n"
            "  --model FILE          model in the moe-robust HDF5 format (docs/model-format.md)\n"
            "  --data FILE           HDF5 data (/images+/labels or /tokens), or an IDX\n"
            "                        *images-idx3-ubyte[.gz] file with its labels file beside it\n"
            "  --limit N             only the first N samples (default: all)\n"
            "  --batch B             samples per micro-batch (default 16)\n"
            "  --threads T           OpenMP threads (default: all processors); results are\n"
            "                        bit-identical for any T\n"
            "  --router NAME         router to evaluate with (default: the one the model was\n"
            "                        trained with, its `router` attribute)\n"
            "  --router-opt K=V      router option, repeatable\n"
            "  --top-k K             experts per token (default: the model's top_k)\n"
            "  --corruption NAME:S   also evaluate under corruption NAME at severity S (1..5;\n"
            "                        docs/corruptions.md): corrupted accuracy, the drop, the\n"
            "                        prediction flip rate and per-layer routing flip rates\n"
            "  --compare-checkpoint FILE\n"
            "                        a second checkpoint of the same architecture, run on the same\n"
            "                        inputs: routing flip rate between the two per MoE layer\n"
            "  --bootstrap B         bootstrap resamples for the 95%% CIs (default 1000; 0: none)\n"
            "  --seed N              seed of the bootstrap (and of stochastic corruptions)\n"
            "  --save-routing FILE   write the routing of the evaluated condition as a trace of\n"
            "                        format v1 (docs/trace-format.md) for `moe-robust analyze`:\n"
            "                        labels, logits or token losses, and per MoE layer L\n"
            "                        /layers/L/probs, /layers/L/topk, /layers/L/weights; with\n"
            "                        --corruption FILE holds the corrupted pass and FILE's\n"
            "                        .clean.h5 sibling the clean one (flips: analyze both).\n"
            "                        Held in memory until written: about N x T x (E + 2k) x 4\n"
            "                        bytes per MoE layer and pass\n"
            "  --trace-model NAME    its model label (default: the model file's name)\n"
            "  --trace-router NAME   its router label (default: --router)\n"
            "  --trace-checkpoint LABEL\n"
            "                        its checkpoint label (default: the model file's name)\n"
            "  --trace-step N        its step, which orders checkpoints (default 0)\n"
            "  -h, --help            this text\n"
            "  --version             the version\n"
            "\n"
            "routers (docs/routers.md):\n");
    for (int i = 0; mr_router_types[i]; i++)
        fprintf(fp, "  %-12s %s\n", mr_router_types[i]->name, mr_router_types[i]->summary);
}

typedef struct eval_args {
    const char *model, *data, *router, *save, *compare, *corruption;
    const char *trace_model, *trace_router, *trace_ckpt;
    long limit, batch, threads, top_k, bootstrap, seed, trace_step;
    mr_router_opts ropts;
} eval_args;

/* Trace labels become parts of cell ids and file names (docs/trace-format.md). */
static int trace_label(const char *opt, const char *v)
{
    size_t n = strlen(v);
    MR_REQUIRE(n >= 1 && n < 64 && !strchr(v, '/'), MR_EINPUT,
               "%s: '%s' must be 1..63 characters without '/'", opt, v);
    for (const char *s = v; *s; s++)
        MR_REQUIRE(*s > ' ' && *s < 127, MR_EINPUT, "%s: '%s' has a blank or control character",
                   opt, v);
    return MR_OK;
}

static int parse(eval_args *a, int argc, char **argv, int *help)
{
    static const struct option opts[] = {
        MR_OPT("model", 'm'), MR_OPT("data", 'd'), MR_OPT("limit", 'n'), MR_OPT("batch", 'b'),
        MR_OPT("threads", 't'), MR_OPT("router", 'r'), MR_OPT("router-opt", 'o'),
        MR_OPT("top-k", 'k'), MR_OPT("save-routing", 's'), MR_OPT("compare-checkpoint", 'c'),
        MR_OPT("corruption", 'C'), MR_OPT("bootstrap", 'B'), MR_OPT("seed", 'S'),
        MR_OPT("trace-model", 1), MR_OPT("trace-router", 2), MR_OPT("trace-checkpoint", 3),
        MR_OPT("trace-step", 4), MR_CLI_OPTS_END};
    memset(a, 0, sizeof *a);
    a->router = NULL; /* the model's own router, once it is loaded */
    a->batch = 16;
    a->threads = mr_cli_default_threads();
    a->bootstrap = 1000;
    mr_cli_getopt_start();
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'd': a->data = optarg; break;
        case 'n': MR_TRY(mr_cli_parse_int("--limit", optarg, 1, 2000000000L, &a->limit)); break;
        case 'b': MR_TRY(mr_cli_parse_int("--batch", optarg, 1, 65536, &a->batch)); break;
        case 't': MR_TRY(mr_cli_parse_int("--threads", optarg, 1, 1024, &a->threads)); break;
        case 'k': MR_TRY(mr_cli_parse_int("--top-k", optarg, 1, 4096, &a->top_k)); break;
        case 'r': a->router = optarg; break;
        case 'o': MR_TRY(mr_router_opts_add(&a->ropts, optarg)); break;
        case 's': a->save = optarg; break;
        case 'c': a->compare = optarg; break;
        case 'C': a->corruption = optarg; break;
        case 'B': MR_TRY(mr_cli_parse_int("--bootstrap", optarg, 0, 1000000, &a->bootstrap)); break;
        case 'S': MR_TRY(mr_cli_parse_int("--seed", optarg, 0, 2147483647L, &a->seed)); break;
        case 1: MR_TRY(trace_label("--trace-model", optarg)); a->trace_model = optarg; break;
        case 2: MR_TRY(trace_label("--trace-router", optarg)); a->trace_router = optarg; break;
        case 3: MR_TRY(trace_label("--trace-checkpoint", optarg)); a->trace_ckpt = optarg; break;
        case 4:
            MR_TRY(mr_cli_parse_int("--trace-step", optarg, -2147483647L, 2147483647L, &a->trace_step));
            break;
        case 'h': *help = 1; return MR_OK;
        case 'V': *help = 2; return MR_OK;
        default: return mr_cli_option_error(c, argv);
        }
    }
    MR_REQUIRE(optind == argc, MR_EINPUT, "unexpected argument '%s'", argv[optind]);
    MR_REQUIRE(a->model, MR_EINPUT, "--model is required");
    MR_REQUIRE(a->data, MR_EINPUT, "--data is required");
    return MR_OK;
}

int mr_cmd_eval(int argc, char **argv)
{
    eval_args a;
    int help = 0;
    int st = parse(&a, argc, argv, &help);
    int ex = mr_cli_parsed("eval", st, help, usage);
    if (ex >= 0) return ex;
    mr_model *m = NULL, *other = NULL;
    mr_dataset *d = NULL;
    mr_router *r = NULL, *r_other = NULL;
    mr_eval_result res = {0};
    mr_eval_opts eo;
    mr_corrupt_setup cs = {0};
    const mr_corruption_type *ct = NULL;
    int severity = 0;
    mr_router_opts other_opts = a.ropts; /* a second instance binds to the second model */
    if (a.save) {
        /* outputs are checked before any work: never the model or data file itself */
        char *labels = NULL;
        st = mr_dataset_files(a.data, &labels);
        const char *inputs[4] = {a.model, a.data, labels, a.compare};
        if (st == MR_OK) st = mr_fs_check_output(a.save, "--save-routing", inputs, 4);
        free(labels);
    }
    if (st == MR_OK && a.corruption) st = mr_corruption_parse(a.corruption, &ct, &severity);
    if (st == MR_OK) st = mr_model_load(&m, a.model);
    if (st == MR_OK && a.compare) st = mr_model_load(&other, a.compare);
    if (st == MR_OK) st = mr_dataset_load(&d, a.data, a.limit);
    if (st == MR_OK && !a.router) {
        /* the model's own router: an unknown name is a fact about the file */
        a.router = m->cfg.router;
        if (!mr_router_lookup(a.router))
            st = mr_error_set(MR_EINPUT,
                              "%s: attribute router = '%s' names no router of this build (see "
                              "--help); choose one with --router",
                              a.model, a.router);
    }
    if (st == MR_OK) st = mr_router_alloc(&r, a.router, m, &a.ropts);
    if (st == MR_OK && other) st = mr_router_alloc(&r_other, a.router, other, &other_opts);
    if (st == MR_OK) {
        mr_eval_opts_init(&eo, m);
        eo.engine.batch = (int)a.batch;
        eo.engine.top_k = (int)a.top_k;
        eo.threads = (int)a.threads;
        eo.save_routing = a.save;
        eo.trace = (mr_trace_meta){.model = a.trace_model, .router = a.trace_router ? a.trace_router : a.router,
                                   .checkpoint = a.trace_ckpt, .step = a.trace_step};
        eo.bootstrap = (int)a.bootstrap;
        eo.seed = (uint64_t)a.seed;
        eo.compare = other;
        eo.compare_router = r_other;
        if (ct) {
            st = mr_corrupt_setup_init(&cs, ct, severity, eo.seed, m, r, d, &eo.engine, eo.threads);
            eo.corruption = &cs.ec;
        }
        if (st == MR_OK) st = mr_eval_run(&res, m, r, d, &eo);
    }
    if (st == MR_OK) {
        mr_eval_labels labels = {.router = a.router, .compare = a.compare,
                                 .corruption = ct ? cs.label : NULL, .threads = (int)a.threads};
        mr_eval_print(stdout, &res, m, d, &eo, &labels);
    } else {
        fprintf(stderr, "moe-robust eval: %s\n", mr_error_message());
    }
    mr_eval_result_free(&res);
    mr_corrupt_setup_free(&cs);
    mr_router_free(r);
    mr_router_free(r_other);
    mr_dataset_free(d);
    mr_model_free(m);
    mr_model_free(other);
    return mr_error_exit_code(st);
}
