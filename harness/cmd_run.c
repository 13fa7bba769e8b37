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
#include "mr_cli.h"
#include "mr_grid.h"
#include "../io/mr_file.h"

static void run_usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust run CONFIG.ini [--out DIR] [--threads N] [--resume] [--quiet]\n"
            "                      [--shard I/N]\n"
            "\n"
            "Runs the evaluation grid of CONFIG.ini (docs/config.md): every model x router x k\n"
            "(the routers a [model] names in its `routers` key, default all),\n"
            "clean, under every corruption x severity, and between consecutive checkpoints.\n"
            "Writes DIR/cells/*.h5 (one per cell, atomically), then DIR/results.h5,\n"
            "DIR/summary.json, DIR/summary.csv and DIR/config.ini (the resolved config);\n"
            "models with `compress = METHOD:K` are compressed once into DIR/models/NAME.h5.\n"
            "\n"
            "  --out DIR      output directory (default: [run] out)\n"
            "  --threads N    OpenMP threads (default: all processors); results do not depend on N\n"
            "  --resume       finish an interrupted run: complete cells are kept, the rest computed\n"
            "  --quiet        no progress output\n"
            "  --shard I/N    run only shard I of N (0-based; groups g with g %% N == I) and write\n"
            "                 its cells; `moe-robust merge DIR` assembles when all are done\n"
            "  -h, --help     this text\n"
            "\n"
            "Exit status: 0 done, 2 bad config or arguments (nothing written), 1 runtime failure.\n");
}

static int write_config(const mr_run_config *c, uint64_t hash, const char *dir)
{
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    fprintf(t.fp, "# config_hash = %016llx\n", (unsigned long long)hash);
    mr_runcfg_write(c, t.fp);
    return mr_textbuf_commit(&t, dir, "config.ini");
}

/* The hash recorded in DIR/config.ini, or 0 if there is none. */
static uint64_t recorded_hash(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    unsigned long long h = 0;
    if (fscanf(fp, "# config_hash = %llx", &h) != 1) h = 0;
    fclose(fp);
    return h;
}

/* MR_OK if `dir` does not exist yet or is a directory. */
static int check_is_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return MR_OK;
    MR_REQUIRE(S_ISDIR(st.st_mode), MR_EINPUT, "%s exists and is not a directory", dir);
    return MR_OK;
}

/* Decide whether the output directory may be used, before anything is written. */
static int check_out_dir(const char *dir, uint64_t hash, int resume)
{
    MR_TRY(check_is_dir(dir));
    uint64_t rec = recorded_hash(dir);
    char cells[1200];
    snprintf(cells, sizeof cells, "%s/cells", dir);
    struct stat st;
    int has_cells = stat(cells, &st) == 0;
    if (rec && rec != hash)
        return mr_error_set(MR_EINPUT,
                            "%s holds results of a different configuration (config_hash %016llx, "
                            "this one %016llx); nothing was changed: use another --out",
                            dir, (unsigned long long)rec, (unsigned long long)hash);
    if (!rec && has_cells)
        return mr_error_set(MR_EINPUT, "%s/cells exists but %s/config.ini does not: not a "
                            "moe-robust output directory; nothing was changed", dir, dir);
    if (rec && !resume)
        return mr_error_set(MR_EINPUT,
                            "%s already holds a run of this configuration: add --resume to "
                            "finish it, or use another --out; nothing was changed",
                            dir);
    return MR_OK;
}

/* Temporary files of a killed run (NAME.tmp-PID) are never complete: remove them. */
static void remove_stale_tmp(const char *cells)
{
    DIR *d = opendir(cells);
    if (!d) return;
    struct dirent *e;
    char path[1600];
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp-")) {
            snprintf(path, sizeof path, "%s/%s", cells, e->d_name);
            unlink(path);
        }
    closedir(d);
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
                FILE *fp = fopen(path, "rb");
                if (fp && fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 &&
                    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) &&
                    fread(buf, 1, (size_t)len, fp) != (size_t)len)
                    len = -1;
                if (fp) fclose(fp);
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

static int parse_shard(const char *s, int *i, int *n)
{
    char tail;
    MR_REQUIRE(sscanf(s, "%d/%d%c", i, n, &tail) == 2 && *n >= 1 && *i >= 0 && *i < *n,
               MR_EINPUT, "--shard %s must be I/N with 0 <= I < N", s);
    return MR_OK;
}

int mr_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},  {"threads", required_argument, 0, 't'},
        {"resume", no_argument, 0, 'r'},     {"quiet", no_argument, 0, 'q'},
        {"shard", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *out = NULL;
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
        case 'h': run_usage(stdout); return 0;
        case ':': st = mr_error_set(MR_EINPUT, "option %s needs a value", argv[optind - 1]); break;
        default: st = mr_error_set(MR_EINPUT, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (st == MR_OK && optind != argc - 1)
        st = mr_error_set(MR_EINPUT, "expected exactly one CONFIG.ini");
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
    st = mr_runcfg_load(&cfg, argv[optind]);
    if (st == MR_OK && out) snprintf(cfg.out, sizeof cfg.out, "%s", out);
    if (st == MR_OK && !cfg.out[0])
        st = mr_error_set(MR_EINPUT, "%s: no output directory: give --out DIR or [run] out", cfg.file);
    if (st == MR_OK) st = mr_grid_build(&g, &cfg);
    /* every rank checks the same things; only rank 0 touches the directory first */
    if (st == MR_OK && rank == 0) st = check_out_dir(cfg.out, g.hash, resume || n_shards > 1);
#ifdef MR_WITH_MPI
    /* the other ranks create their directory only once rank 0 has accepted it */
    if (mpi) MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
    char cells[1200];
    snprintf(cells, sizeof cells, "%s/cells", cfg.out);
    /* every rank: without a shared filesystem each writes its cells locally first */
    if (st == MR_OK) st = mr_mkdir_p(cells);
    if (st == MR_OK && rank == 0 && !recorded_hash(cfg.out)) st = write_config(&cfg, g.hash, cfg.out);
    /* not with --shard: other shards may be writing into the same directory right now
     * (MPI ranks start only after this point) */
    if (st == MR_OK && rank == 0 && (n_shards == 1 || size > 1)) remove_stale_tmp(cells);
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
    if (assemble) st = mr_grid_write_summary(&g, cfg.out);
    if (st != MR_OK && (rank == 0 || st != MR_EINPUT))
        fprintf(stderr, "moe-robust run: %s\n", mr_error_message());
    else if (rank == 0 && !quiet && assemble)
        fprintf(stderr, "moe-robust run: %d cells; results in %s/results.h5, summary.json, summary.csv\n",
                g.n_cells, cfg.out);
    else if (rank == 0 && !quiet)
        fprintf(stderr, "moe-robust run: shard %d/%d done; when all shards are, run: moe-robust merge %s\n",
                shard, n_shards, cfg.out);
    mr_grid_free(&g);
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
            "belong to DIR/config.ini's configuration.\n");
}

int mr_cmd_merge(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        merge_usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        merge_usage(stderr);
        return 2;
    }
    const char *dir = argv[1];
    char path[1200];
    snprintf(path, sizeof path, "%s/config.ini", dir);
    static mr_run_config cfg;
    mr_grid g = {0};
    int st = mr_runcfg_load(&cfg, path);
    if (st == MR_OK) {
        snprintf(cfg.out, sizeof cfg.out, "%s", dir);
        st = mr_grid_build(&g, &cfg);
    }
    if (st == MR_OK && recorded_hash(dir) != g.hash)
        st = mr_error_set(MR_EINPUT, "%s: config.ini was edited after the run (hash differs)", path);
    for (int a = 2; st == MR_OK && a < argc; a++)
        for (int i = 0; st == MR_OK && i < g.n_cells; i++) {
            char src[1400], dst[1400];
            mr_grid_cell_path(dst, sizeof dst, dir, &g.cells[i]);
            mr_grid_cell_path(src, sizeof src, argv[a], &g.cells[i]);
            if (!mr_cell_done(dst, g.hash) && mr_cell_done(src, g.hash)) st = mr_file_copy(src, dst);
        }
    if (st == MR_OK) st = mr_grid_write_summary(&g, dir);
    if (st != MR_OK)
        fprintf(stderr, "moe-robust merge: %s\n", mr_error_message());
    else
        fprintf(stderr, "moe-robust merge: %d cells; results in %s/results.h5, summary.json, summary.csv\n",
                g.n_cells, dir);
    mr_grid_free(&g);
    return mr_error_exit_code(st);
}
