/* moe-robust run CONFIG.ini ... and moe-robust merge DIR ... */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "../io/mr_file.h"
#include "../io/mr_fs.h"
#include "mr_cli.h"
#include "mr_grid.h"
#include "mr_rundir.h"
#include "mr_transport.h"

static void run_usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust run CONFIG.ini [--set SECTION.KEY=VALUE ...] [--out DIR]\n"
            "                      [--threads N] [--resume] [--quiet] [--shard I/N] [--dry-run]\n"
            "\n"
            "Runs the evaluation grid of CONFIG.ini (docs/config.md): every model x router x k\n"
            "(the routers a [model] names in its `routers` key, default all),\n"
            "clean, under every corruption x severity, under every [attack] method x eps\n"
            "(docs/attacks.md), and between consecutive checkpoints.\n"
            "Writes DIR/cells/*.h5 (one per cell, atomically), then DIR/results.h5,\n"
            "DIR/summary.json, DIR/summary.csv and DIR/config.ini (the resolved config);\n"
            "models with `compress = METHOD:K` are compressed once into DIR/models/NAME.h5.\n"
            "\n"
            "  --set S.K=V    set key K of section S (run, data, corruptions, attack,\n"
            "                 model.NAME, router.NAME) to V, replacing the config's value(s) of that key\n"
            "                 and checked as in the file; repeatable, e.g. --set run.limit=50\n"
            "                 --set corruptions.severities=1,5 --set router.similarity.tau=2\n"
            "  --dry-run      print the grid (cells per model/router and corruption, samples)\n"
            "                 and its estimated time from a short calibration; write nothing\n"
            "  --out DIR      output directory (default: [run] out)\n"
            "  --threads N    OpenMP threads (default: all processors); results do not depend on N\n"
            "  --resume       finish an interrupted run: complete cells are kept, the rest computed\n"
            "  --quiet        no progress output\n"
            "  --shard I/N    run only shard I of N (0-based; groups g with g %% N == I) and write\n"
            "                 its cells; `moe-robust merge DIR` assembles when all are done\n"
            "  -h, --help     this text\n"
            "  --version      the version\n"
            "\n"
            "Exit status: 0 done, 2 bad config or arguments (nothing written), 1 runtime failure.\n");
}

/* Rank 0 collects the cells the other ranks computed (as bytes, so the run works without
 * a shared filesystem); cells it already has complete (shared filesystem) are kept. Every
 * rank walks the same cell list in the same order; the first failure is returned. */
static int gather_cells(mr_transport *t, const mr_grid *g, const char *dir)
{
    char path[1400];
    int st = MR_OK;
    for (int i = 0; i < g->n_groups; i++) {
        int owner = i % t->size;
        if (owner == 0) continue;
        const mr_grid_group *gr = &g->groups[i];
        for (int c = gr->first_cell; c < gr->first_cell + gr->n_cells; c++) {
            mr_grid_cell_path(path, sizeof path, dir, &g->cells[c]);
            int keep = t->rank == 0 && (st != MR_OK || mr_cell_done(path, g->hash));
            int moved = t->type->move_file(t, owner, path, keep);
            if (st == MR_OK) st = moved;
        }
    }
    return st;
}

/* I/N, both parsed with the CLI's one overflow-checked integer helper */
/* --dry-run writes nothing: an existing --out must still be a directory */
static int check_is_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return MR_OK;
    MR_REQUIRE(S_ISDIR(sb.st_mode), MR_EINPUT, "%s exists and is not a directory", dir);
    return MR_OK;
}

static int parse_shard(const char *s, int *i, int *n)
{
    const char *slash = strchr(s, '/');
    MR_REQUIRE(slash && slash != s && slash[1], MR_EINPUT, "--shard %s must be I/N with 0 <= I < N", s);
    char head[32];
    size_t hl = (size_t)(slash - s);
    MR_REQUIRE(hl < sizeof head, MR_EINPUT, "--shard %s: '%.*s...' is not an integer", s, 20, s);
    memcpy(head, s, hl);
    head[hl] = '\0';
    long long a, b;
    MR_TRY(mr_parse_ll("--shard N", slash + 1, 1, MR_MAX_SHARDS, &b));
    MR_TRY(mr_parse_ll("--shard I", head, 0, b - 1, &a));
    *i = (int)a;
    *n = (int)b;
    return MR_OK;
}

/* The command line of `run`. */
typedef struct run_args {
    const char *config, *out;
    char *set[MR_CFG_MAX_SET];
    int n_set, dry, resume, quiet, shard, n_shards;
    long threads;
} run_args;

/* -1 to go on, or the exit status of --help, --version or a usage error */
static int parse_run(run_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        MR_OPT("out", 'o'),   MR_OPT("threads", 't'), MR_FLAG("resume", 'r'),  MR_FLAG("quiet", 'q'),
        MR_OPT("shard", 's'), MR_OPT("set", 'S'),     MR_FLAG("dry-run", 'n'), MR_CLI_OPTS_END};
    memset(a, 0, sizeof *a);
    a->threads = mr_cli_default_threads();
    a->n_shards = 1;
    int st = MR_OK, c;
    mr_cli_getopt_start();
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': a->out = optarg; break;
        case 't': st = mr_cli_parse_int("--threads", optarg, 1, 1024, &a->threads); break;
        case 'r': a->resume = 1; break;
        case 'q': a->quiet = 1; break;
        case 's': st = parse_shard(optarg, &a->shard, &a->n_shards); break;
        case 'S':
            if (a->n_set == MR_CFG_MAX_SET) st = mr_error_set(MR_EINPUT, "more than %d --set options", MR_CFG_MAX_SET);
            else a->set[a->n_set++] = optarg;
            break;
        case 'n': a->dry = 1; break;
        case 'h': run_usage(stdout); return 0;
        case 'V': return mr_cli_version();
        default: st = mr_cli_option_error(c, argv);
        }
    }
    if (st == MR_OK) st = mr_cli_one_operand(argc, argv, optind, "CONFIG.ini");
    if (st == MR_OK && a->dry && a->n_shards > 1)
        st = mr_error_set(MR_EINPUT, "--dry-run covers the whole grid: leave out --shard");
    if (st != MR_OK) return mr_cli_usage_error("run", st);
    a->config = argv[optind];
    return -1;
}

/* --dry-run on rank 0: everything is checked as for a run; nothing is written */
static int run_dry(mr_grid *g, const mr_run_config *cfg, int st, long threads)
{
    if (st == MR_OK && cfg->out[0]) st = check_is_dir(cfg->out);
    if (st == MR_OK) st = mr_cmd_run_dry(g, cfg->out, (int)threads, stdout);
    if (st != MR_OK) fprintf(stderr, "moe-robust run: %s\n", mr_error_message());
    return st;
}

int mr_cmd_run(int argc, char **argv)
{
    static run_args a;
    int ex = parse_run(&a, argc, argv);
    if (ex >= 0) return ex;
    /* one process, or the ranks of an MPI job (harness/mr_transport.h) */
    mr_transport t;
    mr_transport_open(&t);
    int rank = t.rank, size = t.size, shard = a.shard, n_shards = a.n_shards;
    if (size > 1) {
        if (n_shards > 1) {
            if (rank == 0) fprintf(stderr, "moe-robust run: --shard cannot be combined with MPI ranks\n");
            mr_transport_close(&t);
            return 2;
        }
        shard = rank;
        n_shards = size;
    }
    static mr_run_config cfg;
    mr_grid g = {0};
    mr_rundir rd = {.lock = {.fd = -1}};
    int st = mr_runcfg_load_set(&cfg, a.config, a.n_set, a.set);
    if (st == MR_OK && a.out) snprintf(cfg.out, sizeof cfg.out, "%s", a.out);
    if (st == MR_OK && !cfg.out[0] && !a.dry)
        st = mr_error_set(MR_EINPUT, "%s: no output directory: give --out DIR or [run] out", cfg.file);
    /* fingerprints before the inputs are loaded, checked again once they are */
    if (st == MR_OK && rank == 0 && !a.dry) st = mr_rundir_inputs(&rd, &cfg);
    if (st == MR_OK) st = mr_grid_build(&g, &cfg);
    if (a.dry) { /* the other MPI ranks have nothing to do */
        if (rank == 0) st = run_dry(&g, &cfg, st, a.threads);
        mr_grid_free(&g);
        mr_transport_close(&t);
        return mr_error_exit_code(st);
    }
    if (st == MR_OK && rank == 0) st = mr_rundir_check_unchanged(&rd);
    /* every rank checks the same things; only rank 0 touches the directory first (and
     * holds its lock for the whole run) */
    int mode = n_shards > 1 && size == 1 ? MR_RUNDIR_SHARD
               : a.resume || n_shards > 1 ? MR_RUNDIR_RESUME
                                          : MR_RUNDIR_NEW;
    if (st == MR_OK && rank == 0) st = mr_rundir_open(&rd, cfg.out, &cfg, g.hash, mode);
    /* the other ranks create their directory only once rank 0 has accepted it */
    st = t.type->bcast_status(&t, st);
    /* the other ranks: without a shared filesystem each writes its cells locally first */
    char cells[1200];
    snprintf(cells, sizeof cells, "%s/cells", cfg.out);
    if (st == MR_OK && rank > 0) st = mr_mkdir_p(cells);
    st = t.type->reduce_status(&t, st);
    /* compressed models, once per run (every rank or shard computes the same bits, and
     * a file that exists is complete) */
    int quiet = a.quiet || rank > 0;
    if (st == MR_OK) st = mr_grid_prepare_models(&g, cfg.out, quiet ? NULL : stderr);
    if (st == MR_OK) {
        int mine = 0;
        for (int i = 0; i < g.n_groups; i++)
            if (i % n_shards == shard) mine += g.groups[i].n_cells;
        mr_grid_run_opts ro = {.dir = cfg.out, .threads = (int)a.threads, .shard = shard,
                               .n_shards = n_shards,
                               .progress = mr_grid_progress_start(mine, 0, quiet)};
        st = mr_grid_run(&g, &ro);
        mr_grid_progress_end(ro.progress);
    }
    int any = t.type->reduce_status(&t, st);
    if (st == MR_OK && any != MR_OK) st = mr_error_set(any, "another rank failed");
    if (any == MR_OK && size > 1) st = gather_cells(&t, &g, cfg.out);
    int assemble = st == MR_OK && rank == 0 && (size > 1 || n_shards == 1);
    /* the cells were computed from the fingerprinted inputs: refuse a summary if one
     * changed during the run */
    if (assemble) st = mr_rundir_check_unchanged(&rd);
    if (assemble && st == MR_OK) st = mr_grid_write_summary(&g, cfg.out);
    if (st != MR_OK && (rank == 0 || st != MR_EINPUT))
        fprintf(stderr, "moe-robust run: %s\n", mr_error_message());
    else if (rank == 0 && !a.quiet && assemble)
        fprintf(stderr, "moe-robust run: %d cells; results in %s/results.h5, summary.json, summary.csv\n",
                g.n_cells, cfg.out);
    else if (rank == 0 && !a.quiet)
        fprintf(stderr, "moe-robust run: shard %d/%d done; when all shards are, run: moe-robust merge %s\n",
                shard, n_shards, cfg.out);
    mr_grid_free(&g);
    mr_rundir_close(&rd);
    mr_transport_close(&t);
    return mr_error_exit_code(st);
}

static void merge_usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust merge DIR [SHARD_DIR ...]\n"
            "\n"
            "Assembles DIR/results.h5, summary.json and summary.csv from the cells of a run\n"
            "done in shards (moe-robust run --shard I/N). Cells found in SHARD_DIRs (shards\n"
            "that wrote elsewhere) are copied into DIR first; every cell must be present and\n"
            "belong to DIR/config.ini's configuration.\n"
            "\n"
            "  -h, --help   this text\n"
            "  --version    the version\n");
}

int mr_cmd_merge(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        merge_usage(stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) return mr_cli_version();
    int st = MR_OK;
    if (argc < 2) st = mr_error_set(MR_EINPUT, "expected a run directory DIR");
    for (int a = 1; st == MR_OK && a < argc; a++)
        if (argv[a][0] == '-')
            st = mr_error_set(MR_EINPUT, "unknown option '%s'", argv[a]);
    if (st != MR_OK) return mr_cli_usage_error("merge", st);
    const char *dir = argv[1];
    char path[1200];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    static mr_run_config cfg;
    mr_grid g = {0};
    mr_rundir rd = {.lock = {.fd = -1}};
    st = mr_runcfg_load(&cfg, path);
    if (st == MR_OK) {
        snprintf(cfg.out, sizeof cfg.out, "%s", dir);
        st = mr_rundir_inputs(&rd, &cfg);
    }
    if (st == MR_OK) st = mr_grid_build(&g, &cfg);
    if (st == MR_OK) st = mr_rundir_check_unchanged(&rd);
    if (st == MR_OK && mr_rundir_recorded_hash(dir) != g.hash)
        st = mr_error_set(MR_EINPUT, "%s: config.ini was edited after the run (hash differs)", path);
    if (st == MR_OK) st = mr_rundir_open(&rd, dir, &cfg, g.hash, MR_RUNDIR_MERGE);
    for (int a = 2; st == MR_OK && a < argc; a++) {
        st = mr_rundir_recorded_hash(argv[a]) == g.hash
                 ? mr_rundir_check_other(&rd, argv[a])
                 : mr_error_set(MR_EINPUT, "%s holds no run of %s's configuration", argv[a], dir);
        for (int i = 0; st == MR_OK && i < g.n_cells; i++) {
            char src[1400], dst[1400];
            mr_grid_cell_path(dst, sizeof dst, dir, &g.cells[i]);
            mr_grid_cell_path(src, sizeof src, argv[a], &g.cells[i]);
            if (!mr_cell_done(dst, g.hash) && mr_cell_done(src, g.hash)) st = mr_file_copy(src, dst);
        }
    }
    if (st == MR_OK) st = mr_grid_write_summary(&g, dir);
    if (st != MR_OK)
        fprintf(stderr, "moe-robust merge: %s\n", mr_error_message());
    else
        fprintf(stderr, "moe-robust merge: %d cells; results in %s/results.h5, summary.json, summary.csv\n",
                g.n_cells, dir);
    mr_grid_free(&g);
    mr_rundir_close(&rd);
    return mr_error_exit_code(st);
}
