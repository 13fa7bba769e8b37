/* moe-robust compress --model M --calib D --method NAME --experts K --out M2.h5 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "mr_cli.h"
#include "mr_compress_setup.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust compress --model M.h5 --calib D --method NAME --experts K\n"
            "                           --out M2.h5 [options]\n"
            "\n"
            "Prunes or merges the experts of every MoE layer of a trained model down to K, from\n"
            "routing statistics of the model's own router on calibration data, and writes a\n"
            "normal model file (docs/compression.md): K experts per MoE layer, the router rows of\n"
            "the kept (pruning) or representative (merging) experts, and metadata recording the\n"
            "method, K, the groups, the calibration data and its SHA-256 (`moe-robust inspect`).\n"
            "\n"
            "  --model FILE          model in the moe-robust HDF5 format\n"
            "  --calib FILE          calibration data, as `eval --data` (HDF5 or IDX)\n"
            "  --calib-limit N       the first N calibration samples (default %d)\n"
            "  --method NAME         compression method (below)\n"
            "  --experts K           experts kept per MoE layer, top_k <= K <= n_experts\n"
            "  --layers L1,L2,...    compress only these MoE blocks; the model then keeps\n"
            "                        n_experts slots (format v1 has one expert count): merged\n"
            "                        groups share their merged expert in every member's slot\n"
            "                        (router unchanged), pruned experts are masked in the gate\n"
            "  --rank R              mc-smoe: rank of the low-rank part (default %d)\n"
            "  --sparse-keep F       mc-smoe: fraction of the sparse part kept, whole rows\n"
            "                        (default %.2f)\n"
            "  --batch B             samples per micro-batch of the calibration pass (default 32)\n"
            "  --out FILE            output model (written to FILE.tmp-PID, then renamed)\n"
            "  -h, --help            this text\n"
            "  --version             the version\n"
            "\n"
            "methods:\n",
            MR_COMPRESS_DEFAULT_CALIB_LIMIT, MR_COMPRESS_DEFAULT_RANK,
            MR_COMPRESS_DEFAULT_SPARSE_KEEP);
    for (int i = 0; mr_compress_types[i]; i++)
        fprintf(fp, "  %-12s %s\n", mr_compress_types[i]->name, mr_compress_types[i]->summary);
}

#define MAX_LAYERS 1024

static int parse_layers(const char *arg, int *layers, int *n)
{
    char buf[4096];
    MR_REQUIRE(strlen(arg) < sizeof buf, MR_EINPUT, "--layers: list too long");
    strcpy(buf, arg);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        MR_REQUIRE(*n < MAX_LAYERS, MR_EINPUT, "--layers: more than %d entries", MAX_LAYERS);
        MR_TRY(mr_cli_parse_int("--layers", tok, 0, MAX_LAYERS - 1, &v));
        layers[(*n)++] = (int)v;
    }
    MR_REQUIRE(*n > 0, MR_EINPUT, "--layers: '%s' lists no block", arg);
    return MR_OK;
}

static int parse(mr_compress_request *rq, int *layers, int argc, char **argv, int *help)
{
    static const struct option opts[] = {
        MR_OPT("model", 'm'), MR_OPT("calib", 'c'), MR_OPT("calib-limit", 'n'),
        MR_OPT("method", 'M'), MR_OPT("experts", 'K'), MR_OPT("layers", 'L'), MR_OPT("rank", 'r'),
        MR_OPT("sparse-keep", 's'), MR_OPT("batch", 'b'), MR_OPT("out", 'o'), MR_CLI_OPTS_END};
    mr_compress_request_init(rq);
    int have_k = 0;
    long v;
    mr_cli_getopt_start();
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': rq->model = optarg; break;
        case 'c': rq->calib = optarg; break;
        case 'n': MR_TRY(mr_cli_parse_int("--calib-limit", optarg, 1, 2000000000L, &rq->calib_limit)); break;
        case 'M': rq->method = optarg; break;
        case 'K':
            /* any integer: the range is checked against the model, with its name */
            MR_TRY(mr_cli_parse_int("--experts", optarg, -1000000000L, 1000000000L, &v));
            rq->opts.experts = (int)v;
            have_k = 1;
            break;
        case 'L':
            MR_TRY(parse_layers(optarg, layers, &rq->opts.n_layers));
            rq->opts.layers = layers;
            break;
        case 'r': MR_TRY(mr_cli_parse_int("--rank", optarg, 1, 1 << 20, &v)); rq->opts.rank = (int)v; break;
        case 's':
            MR_TRY(mr_parse_double("--sparse-keep", optarg, 0.0, 1.0, &rq->opts.sparse_keep));
            break;
        case 'b': MR_TRY(mr_cli_parse_int("--batch", optarg, 1, 65536, &v)); rq->batch = (int)v; break;
        case 'o': rq->out = optarg; break;
        case 'h': *help = 1; return MR_OK;
        case 'V': *help = 2; return MR_OK;
        default: return mr_cli_option_error(c, argv);
        }
    }
    MR_REQUIRE(optind == argc, MR_EINPUT, "unexpected argument '%s'", argv[optind]);
    MR_REQUIRE(rq->model, MR_EINPUT, "--model is required");
    MR_REQUIRE(rq->calib, MR_EINPUT, "--calib is required");
    MR_REQUIRE(rq->method, MR_EINPUT, "--method is required");
    MR_REQUIRE(have_k, MR_EINPUT, "--experts is required");
    MR_REQUIRE(rq->out, MR_EINPUT, "--out is required");
    return MR_OK;
}

int mr_cmd_compress(int argc, char **argv)
{
    static int layers[MAX_LAYERS];
    mr_compress_request rq;
    int help = 0;
    int st = parse(&rq, layers, argc, argv, &help);
    int ex = mr_cli_parsed("compress", st, help, usage);
    if (ex >= 0) return ex;
    /* the command line, recorded in the output's metadata */
    size_t len = 16;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *cmd = malloc(len);
    if (cmd) {
        strcpy(cmd, "moe-robust");
        for (int i = 0; i < argc; i++) strcat(strcat(cmd, " "), argv[i]);
    }
    rq.command = cmd;
    st = mr_compress_file(&rq, stdout);
    if (st != MR_OK) fprintf(stderr, "moe-robust compress: %s\n", mr_error_message());
    free(cmd);
    return mr_error_exit_code(st);
}
