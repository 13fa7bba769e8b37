/* moe-robust run CONFIG.ini ... and moe-robust merge DIR ... */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef MR_WITH_MPI
#include <mpi.h>
#endif

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "../io/mr_file.h"
#include "../io/mr_fs.h"
#include "mr_cli.h"
#include "mr_grid.h"
#include "mr_rundir.h"

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

#ifdef MR_WITH_MPI
/* Rank 0 gathers the cells the other ranks computed, as bytes over MPI, so the run works
 * without a shared filesystem; cells already present (shared filesystem) are kept. Both
 * sides walk the same cell list in the same order. */
static int gather_cells(const mr_grid *g, const char *dir, int rank, int size)
{
    char path[1400];
    int st = MR_OK;
    for (int i = 0; i < g->n_groups; i++) {
        int owner = i % size;
        if (owner == 0 || (rank != 0 && rank != owner)) continue;
        const mr_grid_group *gr = &g->groups[i];
        for (int c = gr->first_cell; c < gr->first_cell + gr->n_cells; c++) {
            mr_grid_cell_path(path, sizeof path, dir, &g->cells[c]);
            long len = -1;
            char *buf = NULL;
            if (rank == owner) {
                size_t n = 0;
                if (mr_fs_read_input(path, (size_t)1 << 31, "cell file", &buf, &n) == MR_OK)
                    len = (long)n;
                MPI_Send(&len, 1, MPI_LONG, 0, 1, MPI_COMM_WORLD);
                if (len >= 0) MPI_Send(buf, (int)len, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
            } else {
                MPI_Recv(&len, 1, MPI_LONG, owner, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (len < 0) {
                    st = mr_error_set(MR_EIO, "rank %d could not send %s", owner, path);
                    continue;
                }
                buf = malloc((size_t)len + 1);
                MPI_Recv(buf, (int)len, MPI_BYTE, owner, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (st == MR_OK && !mr_cell_done(path, g->hash))
                    st = mr_file_write(path, buf, (size_t)len);
            }
            free(buf);
        }
    }
    return st;
}
#endif

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

int mr_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},  {"threads", required_argument, 0, 't'},
        {"resume", no_argument, 0, 'r'},     {"quiet", no_argument, 0, 'q'},
        {"shard", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
        {"set", required_argument, 0, 'S'},  {"dry-run", no_argument, 0, 'n'},
        {"version", no_argument, 0, 'V'},    {0, 0, 0, 0}};
    const char *out = NULL;
    static char *set[MR_CFG_MAX_SET];
    int n_set = 0, dry = 0;
    long threads = mr_cli_default_threads();
    int resume = 0, quiet = 0, shard = 0, n_shards = 1, st = MR_OK, c;
    optind = 1;
    opterr = 0;
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': st = mr_cli_parse_int("--threads", optarg, 1, 1024, &threads); break;
        case 'r': resume = 1; break;
        case 'q': quiet = 1; break;
        case 's': st = parse_shard(optarg, &shard, &n_shards); break;
        case 'S':
            if (n_set == MR_CFG_MAX_SET) st = mr_error_set(MR_EINPUT, "more than %d --set options", MR_CFG_MAX_SET);
            else set[n_set++] = optarg;
            break;
        case 'n': dry = 1; break;
        case 'h': run_usage(stdout); return 0;
        case 'V': return mr_cli_version();
        case ':': st = mr_error_set(MR_EINPUT, "option %s needs a value", argv[optind - 1]); break;
        default: st = mr_error_set(MR_EINPUT, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (st == MR_OK) st = mr_cli_one_operand(argc, argv, optind, "CONFIG.ini");
    if (st == MR_OK && dry && n_shards > 1)
        st = mr_error_set(MR_EINPUT, "--dry-run covers the whole grid: leave out --shard");
    if (st != MR_OK) {
        fprintf(stderr, "moe-robust run: %s\n(see 'moe-robust run --help')\n", mr_error_message());
        return 2;
    }
    int rank = 0, size = 1, mpi = 0;
#ifdef MR_WITH_MPI
    /* MPI only when launched by mpirun/srun: a plain `moe-robust run` stays a single
     * process that needs no MPI runtime */
    mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
    if (mpi) {
        MPI_Init(NULL, NULL);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
    }
    if (size > 1) {
        if (n_shards > 1) {
            if (rank == 0) fprintf(stderr, "moe-robust run: --shard cannot be combined with MPI ranks\n");
            MPI_Finalize();
            return 2;
        }
        shard = rank;
        n_shards = size;
    }
#endif
    static mr_run_config cfg;
    mr_grid g = {0};
    mr_rundir rd = {.lock = {.fd = -1}};
    st = mr_runcfg_load_set(&cfg, argv[optind], n_set, set);
    if (st == MR_OK && out) snprintf(cfg.out, sizeof cfg.out, "%s", out);
    if (st == MR_OK && !cfg.out[0] && !dry)
        st = mr_error_set(MR_EINPUT, "%s: no output directory: give --out DIR or [run] out", cfg.file);
    /* fingerprints before the inputs are loaded, checked again once they are */
    if (st == MR_OK && rank == 0 && !dry) st = mr_rundir_inputs(&rd, &cfg);
    if (st == MR_OK) st = mr_grid_build(&g, &cfg);
    if (dry && rank == 0) {
        /* everything is checked as for a run; nothing is written */
        if (st == MR_OK && cfg.out[0]) st = check_is_dir(cfg.out);
        if (st == MR_OK) st = mr_cmd_run_dry(&g, cfg.out, (int)threads, stdout);
        if (st != MR_OK) fprintf(stderr, "moe-robust run: %s\n", mr_error_message());
        mr_grid_free(&g);
#ifdef MR_WITH_MPI
        if (mpi) MPI_Finalize();
#endif
        return mr_error_exit_code(st);
    }
    if (dry) { /* the other MPI ranks: nothing to do */
        mr_grid_free(&g);
#ifdef MR_WITH_MPI
        if (mpi) MPI_Finalize();
#endif
        return mr_error_exit_code(st);
    }
    if (st == MR_OK && rank == 0) st = mr_rundir_check_unchanged(&rd);
    /* every rank checks the same things; only rank 0 touches the directory first (and
     * holds its lock for the whole run) */
    int mode = n_shards > 1 && size == 1 ? MR_RUNDIR_SHARD
               : resume || n_shards > 1  ? MR_RUNDIR_RESUME
                                         : MR_RUNDIR_NEW;
    if (st == MR_OK && rank == 0) st = mr_rundir_open(&rd, cfg.out, &cfg, g.hash, mode);
#ifdef MR_WITH_MPI
    /* the other ranks create their directory only once rank 0 has accepted it */
    if (mpi) MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
    /* the other ranks: without a shared filesystem each writes its cells locally first */
    char cells[1200];
    snprintf(cells, sizeof cells, "%s/cells", cfg.out);
    if (st == MR_OK && rank > 0) st = mr_mkdir_p(cells);
#ifdef MR_WITH_MPI
    if (mpi) MPI_Allreduce(MPI_IN_PLACE, &st, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
    /* compressed models, once per run (every rank or shard computes the same bits, and
     * a file that exists is complete) */
    if (st == MR_OK) st = mr_grid_prepare_models(&g, cfg.out, quiet || rank > 0 ? NULL : stderr);
    if (st == MR_OK) {
        int mine = 0;
        for (int i = 0; i < g.n_groups; i++)
            if (i % n_shards == shard) mine += g.groups[i].n_cells;
        mr_grid_run_opts ro = {.dir = cfg.out, .threads = (int)threads, .shard = shard,
                               .n_shards = n_shards,
                               .progress = mr_grid_progress_start(mine, 0, quiet || rank > 0)};
        st = mr_grid_run(&g, &ro);
        mr_grid_progress_end(ro.progress);
    }
#ifdef MR_WITH_MPI
    if (mpi) {
        int any = st;
        MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (st == MR_OK && any != MR_OK) st = mr_error_set(any, "another rank failed");
        if (any == MR_OK && size > 1) st = gather_cells(&g, cfg.out, rank, size);
    }
#endif
    int assemble = st == MR_OK && rank == 0 && (size > 1 || n_shards == 1);
    /* the cells were computed from the fingerprinted inputs: refuse a summary if one
     * changed during the run */
    if (assemble) st = mr_rundir_check_unchanged(&rd);
    if (assemble && st == MR_OK) st = mr_grid_write_summary(&g, cfg.out);
    if (st != MR_OK && (rank == 0 || st != MR_EINPUT))
        fprintf(stderr, "moe-robust run: %s\n", mr_error_message());
    else if (rank == 0 && !quiet && assemble)
        fprintf(stderr, "moe-robust run: %d cells; results in %s/results.h5, summary.json, summary.csv\n",
                g.n_cells, cfg.out);
    else if (rank == 0 && !quiet)
        fprintf(stderr, "moe-robust run: shard %d/%d done; when all shards are, run: moe-robust merge %s\n",
                shard, n_shards, cfg.out);
    mr_grid_free(&g);
    mr_rundir_close(&rd);
#ifdef MR_WITH_MPI
    if (mpi) MPI_Finalize();
#endif
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
    if (st != MR_OK) {
        fprintf(stderr, "moe-robust merge: %s\n(see 'moe-robust merge --help')\n", mr_error_message());
        return 2;
    }
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
