/* moe-robust analyze TRACE.h5... --out DIR — the metrics of `run` from routing traces
 * (docs/traces.md). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../io/mr_file.h"
#include "../io/mr_h5.h"
#include "../io/mr_summary.h"
#include "mr_analyze.h"
#include "mr_cli.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust analyze TRACE.h5... --out DIR [--reference ROUTER] [--bootstrap B]\n"
            "                          [--seed S] [--threads T] [--allow-missing] [--quiet]\n"
            "\n"
            "Computes from routing traces (docs/trace-format.md; recorded by tools/mr_trace.py\n"
            "from any PyTorch model, or by `moe-robust eval --save-routing`) what `run` computes:\n"
            "per MoE layer routing entropy and load balance, top-1 / top-k flip rates clean vs\n"
            "corrupted, prediction flips, accuracy and its drop, CE / mCE against the reference\n"
            "router, and the fluctuation between consecutive checkpoints, with bootstrap CIs.\n"
            "Traces are grouped by (model, router, top_k, checkpoint, condition); shards of one\n"
            "group (ranks) are merged by sample id; corrupted traces are paired with the clean\n"
            "trace of the same checkpoint by sample id; checkpoints are ordered by step and the\n"
            "last one gives the clean and corrupted cells. Writes DIR/results.h5, summary.json and\n"
            "summary.csv as `run` does, so `report`, `baseline` and `check` work unchanged\n"
            "(docs/traces.md). DIR is created; an earlier `analyze` output there is replaced.\n"
            "\n"
            "  --out DIR           output directory\n"
            "  --reference ROUTER  reference router for CE, mCE and paired comparisons (default:\n"
            "                      softmax if every model has it, else the first router by name\n"
            "                      that every model has)\n"
            "  --bootstrap B       bootstrap resamples for the 95%% CIs (default 1000; 0: none)\n"
            "  --seed S            bootstrap seed (default 0)\n"
            "  --threads T         threads (default: all processors); results do not depend on T\n"
            "  --allow-missing     analyze only the samples every trace of a model holds (the\n"
            "                      others are counted and reported); without it a sample missing\n"
            "                      from one trace of its model is an error\n"
            "  --quiet             no progress lines\n"
            "  -h, --help          this text\n"
            "\n"
            "Exit status: 0 done, 2 bad input (a malformed trace, traces that do not pair, a bad\n"
            "option), 1 runtime failure.\n");
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* DIR may be replaced only if it is absent or an earlier analyze output. */
static int check_out(const char *dir, int *exists)
{
    struct stat sb;
    *exists = stat(dir, &sb) == 0;
    if (!*exists) return MR_OK;
    MR_REQUIRE(S_ISDIR(sb.st_mode), MR_EINPUT, "--out %s: exists and is not a directory", dir);
    char res[2200];
    snprintf(res, sizeof res, "%s/results.h5", dir);
    int ok = 0;
    hid_t f;
    mr_h5_quiet();
    if (access(res, R_OK) == 0 && mr_h5_open_read(&f, res) == MR_OK) {
        /* the config attribute starts with analyze's comment line */
        char *big = malloc(1 << 20);
        if (big && mr_h5_attr_string(f, res, "config", big, 1 << 20, NULL) == MR_OK)
            ok = strncmp(big, "# moe-robust analyze", 20) == 0;
        free(big);
        mr_h5_close(f);
    }
    MR_REQUIRE(ok, MR_EINPUT,
               "--out %s: exists and is not the output of an earlier `moe-robust analyze`; "
               "remove it or choose another directory", dir);
    return MR_OK;
}

int mr_cmd_analyze(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},      {"reference", required_argument, 0, 'r'},
        {"bootstrap", required_argument, 0, 'B'}, {"seed", required_argument, 0, 'S'},
        {"threads", required_argument, 0, 't'},  {"allow-missing", no_argument, 0, 'm'},
        {"quiet", no_argument, 0, 'q'},          {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    mr_analyze_opts o;
    mr_analyze_opts_init(&o);
    o.threads = mr_cli_default_threads();
    o.log = stderr;
    long v;
    int st = MR_OK, c;
    optind = 1;
    opterr = 0;
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'r': o.reference = optarg; break;
        case 'B':
            if ((st = mr_cli_parse_int("--bootstrap", optarg, 0, 1000000, &v)) == MR_OK) o.bootstrap = (int)v;
            break;
        case 'S':
            if ((st = mr_cli_parse_int("--seed", optarg, 0, 2147483647L, &v)) == MR_OK) o.seed = (uint64_t)v;
            break;
        case 't':
            if ((st = mr_cli_parse_int("--threads", optarg, 1, 1024, &v)) == MR_OK) o.threads = (int)v;
            break;
        case 'm': o.allow_missing = 1; break;
        case 'q': o.log = NULL; break;
        case 'h': usage(stdout); return 0;
        case ':': st = mr_error_set(MR_EINPUT, "option %s needs a value", argv[optind - 1]); break;
        default: st = mr_error_set(MR_EINPUT, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (st == MR_OK && optind >= argc) st = mr_error_set(MR_EINPUT, "no trace files given");
    if (st == MR_OK && (!o.out || !o.out[0])) st = mr_error_set(MR_EINPUT, "--out DIR is required");
    if (st != MR_OK) {
        fprintf(stderr, "moe-robust analyze: %s\n(see 'moe-robust analyze --help')\n",
                mr_error_message());
        return mr_error_exit_code(st);
    }
    /* everything goes to DIR.tmp-PID and is renamed to DIR when complete: a bad trace
     * found mid-way (a NaN in row 10^6) leaves nothing behind */
    const char *dir = o.out;
    int exists = 0;
    char tmp[MR_PATH_MAX + 32], old[MR_PATH_MAX + 32];
    st = strlen(dir) < MR_PATH_MAX ? check_out(dir, &exists)
                                   : mr_error_set(MR_EINPUT, "--out: path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", dir, (long)getpid());
    snprintf(old, sizeof old, "%s.old-%ld", dir, (long)getpid());
    if (st == MR_OK) {
        o.out = tmp;
        st = mr_analyze_run((const char *const *)argv + optind, argc - optind, &o);
    }
    if (st == MR_OK && exists && rename(dir, old) != 0)
        st = mr_error_set(MR_EIO, "%s: cannot move the earlier output aside", dir);
    if (st == MR_OK && rename(tmp, dir) != 0) {
        st = mr_error_set(MR_EIO, "%s: cannot rename %s into place", dir, tmp);
        if (exists) rename(old, dir);
    }
    if (st == MR_OK && exists) rm_rf(old);
    if (st != MR_OK) {
        rm_rf(tmp);
        fprintf(stderr, "moe-robust analyze: %s\n", mr_error_message());
    } else if (o.log) {
        fprintf(o.log, "moe-robust analyze: wrote %s/results.h5, summary.json, summary.csv\n", dir);
    }
    return mr_error_exit_code(st);
}
