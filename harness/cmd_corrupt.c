/* moe-robust corrupt — write a corrupted copy of a dataset, draw the corruption gallery,
 * or list the corruptions (docs/corruptions.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../analysis/mr_error.h"
#include "../corruptions/mr_corruption.h"
#include "../corruptions/mr_gallery.h"
#include "mr_cli.h"
#include "../io/mr_data.h"
#include "../io/mr_data_write.h"
#include "../io/mr_fs.h"
#include "../io/mr_model_io.h"
#include "../io/mr_png.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust corrupt --data D --corruption NAME[:S] [--severity S] --out X.h5\n"
            "                          [--seed N] [--model M.h5] [--limit N] [--threads T]\n"
            "       moe-robust corrupt --gallery OUT.png --data D [--index I] [--seed N]\n"
            "                          [--scale K]\n"
            "       moe-robust corrupt --list\n"
            "\n"
            "Writes the dataset D under one corruption and severity (1..5) to X.h5 (/images and\n"
            "/labels, or /tokens, plus attributes corruption, severity, seed, source), or draws\n"
            "one image of D under every image corruption and severity into a PNG grid.\n"
            "A corrupted sample depends only on (sample, corruption, severity, seed, sample\n"
            "index): the output is identical for any --threads. See docs/corruptions.md.\n"
            "\n"
            "  --data FILE           HDF5 data (/images+/labels or /tokens), or an IDX\n"
            "                        *images-idx3-ubyte[.gz] file with its labels file beside it\n"
            "  --corruption NAME[:S] a corruption (--list); S may be given here or by --severity\n"
            "  --severity S          1..5\n"
            "  --seed N              random seed (default 0)\n"
            "  --out FILE            output HDF5 file (written to FILE.tmp-PID, then renamed)\n"
            "  --model FILE          text corruptions: the model whose /vocab maps token ids to\n"
            "                        characters (required for token data)\n"
            "  --limit N             only the first N samples\n"
            "  --threads T           OpenMP threads (default: all processors)\n"
            "  --gallery FILE        write the gallery PNG (rows: image corruptions, columns:\n"
            "                        clean and severities 1..5) instead of a dataset\n"
            "  --index I             gallery: the sample to draw (default 0)\n"
            "  --scale K             gallery: upscale factor 1..16 (default 3)\n"
            "  --list                print every corruption with its modality and benchmark\n"
            "  -h, --help            this text\n"
            "  --version             the version\n"
            "\n"
            "Embedding corruptions (embed_*) act inside the model: use 'moe-robust eval\n"
            "--corruption NAME:S'.\n");
}

typedef struct corrupt_args {
    const char *data, *spec, *out, *model, *gallery;
    long severity, seed, limit, threads, index, scale;
    int list;
} corrupt_args;

static int parse(corrupt_args *a, int argc, char **argv, int *help)
{
    static const struct option opts[] = {
        MR_OPT("data", 'd'), MR_OPT("corruption", 'c'), MR_OPT("severity", 's'),
        MR_OPT("seed", 'S'), MR_OPT("out", 'o'), MR_OPT("model", 'm'), MR_OPT("limit", 'n'),
        MR_OPT("threads", 't'), MR_OPT("gallery", 'g'), MR_OPT("index", 'i'), MR_OPT("scale", 'k'),
        MR_FLAG("list", 'l'), MR_CLI_OPTS_END};
    memset(a, 0, sizeof *a);
    a->threads = mr_cli_default_threads();
    a->scale = 3;
    mr_cli_getopt_start();
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->data = optarg; break;
        case 'c': a->spec = optarg; break;
        case 's':
            MR_TRY(mr_cli_parse_int("--severity", optarg, 1, MR_SEVERITY_MAX, &a->severity));
            break;
        case 'S': MR_TRY(mr_cli_parse_int("--seed", optarg, 0, 2147483647L, &a->seed)); break;
        case 'o': a->out = optarg; break;
        case 'm': a->model = optarg; break;
        case 'n': MR_TRY(mr_cli_parse_int("--limit", optarg, 1, 2000000000L, &a->limit)); break;
        case 't': MR_TRY(mr_cli_parse_int("--threads", optarg, 1, 1024, &a->threads)); break;
        case 'g': a->gallery = optarg; break;
        case 'i': MR_TRY(mr_cli_parse_int("--index", optarg, 0, 2000000000L, &a->index)); break;
        case 'k': MR_TRY(mr_cli_parse_int("--scale", optarg, 1, 16, &a->scale)); break;
        case 'l': a->list = 1; break;
        case 'h': *help = 1; return MR_OK;
        case 'V': *help = 2; return MR_OK;
        default: return mr_cli_option_error(c, argv);
        }
    }
    MR_REQUIRE(optind == argc, MR_EINPUT, "unexpected argument '%s'", argv[optind]);
    if (a->list) return MR_OK;
    MR_REQUIRE(a->data, MR_EINPUT, "--data is required");
    if (a->gallery) {
        MR_REQUIRE(!a->out, MR_EINPUT, "--gallery and --out exclude each other");
        return MR_OK;
    }
    MR_REQUIRE(a->spec, MR_EINPUT, "--corruption is required (see --list)");
    MR_REQUIRE(a->out, MR_EINPUT, "--out is required");
    return MR_OK;
}

/* NAME:S, or NAME with --severity */
static int resolve(const corrupt_args *a, const mr_corruption_type **t, int *severity)
{
    if (strchr(a->spec, ':')) {
        MR_TRY(mr_corruption_parse(a->spec, t, severity));
        MR_REQUIRE(!a->severity || a->severity == *severity, MR_EINPUT,
                   "--corruption %s and --severity %ld disagree", a->spec, a->severity);
        return MR_OK;
    }
    char spec[256];
    MR_REQUIRE(a->severity, MR_EINPUT, "--severity is required (or --corruption %s:S)", a->spec);
    snprintf(spec, sizeof spec, "%.200s:%ld", a->spec, a->severity);
    return mr_corruption_parse(spec, t, severity);
}

static void list_corruptions(void)
{
    static const char *const mod[] = {"image", "text", "embed"};
    printf("%-18s %-6s %-8s %s\n", "name", "kind", "default", "benchmark: summary");
    for (int i = 0; mr_corruption_types[i]; i++) {
        const mr_corruption_type *t = mr_corruption_types[i];
        char def[8] = "-";
        if (t->default_severity) snprintf(def, sizeof def, "%d", t->default_severity);
        printf("%-18s %-6s %-8s %s: %s\n", t->name, mod[t->modality], def, t->benchmark,
               t->summary);
    }
}

/* ------------------------------------------------------------------ corrupting */
static int corrupt_all(const mr_dataset *d, void *dst, const mr_corruption_type *t, int severity,
                       uint64_t seed, const int32_t *vocab, int V, int threads)
{
    const int chunk = 64;
    int n_chunks = (d->n + chunk - 1) / chunk, st = MR_OK;
    char msg[1024] = "";
#pragma omp parallel num_threads(threads)
    {
        mr_corrupt_ws *ws = NULL;
        int my = d->kind == MR_DATA_IMAGES ? mr_corrupt_ws_alloc(&ws, d->h, d->w, d->c, 0)
                                           : mr_corrupt_ws_alloc(&ws, 0, 0, 0, d->cols);
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n_chunks; k++) {
            if (my != MR_OK) continue;
            int s0 = k * chunk, nb = d->n - s0 < chunk ? d->n - s0 : chunk;
            if (d->kind == MR_DATA_IMAGES) {
                size_t per = (size_t)d->h * d->w * d->c;
                my = mr_corrupt_images((uint8_t *)dst + s0 * per, d->images + s0 * per, nb, d->h,
                                       d->w, d->c, t, severity, seed, (uint64_t)s0, ws);
            } else {
                size_t per = (size_t)d->cols;
                my = mr_corrupt_tokens((int32_t *)dst + s0 * per, d->tokens + s0 * per, nb,
                                       d->cols, vocab, V, t, severity, seed, (uint64_t)s0, ws);
            }
        }
        if (my != MR_OK) {
#pragma omp critical(mr_corrupt_error)
            if (st == MR_OK) {
                st = my;
                snprintf(msg, sizeof msg, "%s", mr_error_message());
            }
        }
        mr_corrupt_ws_free(ws);
    }
    return st == MR_OK ? MR_OK : mr_error_set(st, "%s", msg);
}

/* ------------------------------------------------------------------ output file */
static int write_file(const char *path, const mr_dataset *d, const void *data,
                      const mr_corruption_type *t, int severity, long seed)
{
    mr_data_attr at[] = {{.name = "corruption", .str = t->name},
                         {.name = "severity", .integer = severity},
                         {.name = "seed", .integer = seed},
                         {.name = "source", .str = d->path}};
    return mr_dataset_write(path, d, data, at, (int)(sizeof at / sizeof *at));
}

/* ------------------------------------------------------------------ commands */
/* Outputs are checked before any work: never one of the input files. */
static int check_output(const char *out, const char *what, const corrupt_args *a)
{
    char *labels = NULL;
    MR_TRY(mr_dataset_files(a->data, &labels));
    const char *inputs[3] = {a->data, labels, a->model};
    int st = mr_fs_check_output(out, what, inputs, 3);
    free(labels);
    return st;
}

static int run_gallery(const corrupt_args *a)
{
    MR_TRY(check_output(a->gallery, "--gallery", a));
    mr_dataset *d = NULL;
    int st = mr_dataset_load(&d, a->data, a->index + 1);
    if (st == MR_OK && d->kind != MR_DATA_IMAGES)
        st = mr_error_set(MR_EINPUT, "%s: the gallery draws images, this file holds tokens",
                          a->data);
    if (st == MR_OK && a->index >= d->n)
        st = mr_error_set(MR_EINPUT, "--index: %ld is outside 0..%d (%s)", a->index, d->n - 1,
                          a->data);
    if (st == MR_OK) {
        mr_gallery_opts o;
        mr_gallery_opts_init(&o);
        o.scale = (int)a->scale;
        o.seed = (uint64_t)a->seed;
        o.index = (uint64_t)a->index;
        size_t per = (size_t)d->h * d->w * d->c;
        mr_gallery_image gi;
        st = mr_gallery_render(&gi, d->images + a->index * per, d->h, d->w, d->c, &o);
        if (st == MR_OK) st = mr_png_write(a->gallery, gi.pixels, gi.w, gi.h, gi.C);
        mr_gallery_image_free(&gi);
    }
    if (st == MR_OK) printf("wrote %s\n", a->gallery);
    mr_dataset_free(d);
    return st;
}

static int run_corrupt(const corrupt_args *a)
{
    const mr_corruption_type *t;
    int severity;
    MR_TRY(resolve(a, &t, &severity));
    MR_TRY(check_output(a->out, "--out", a));
    MR_REQUIRE(t->modality != MR_MOD_EMBED, MR_EINPUT,
               "%s corrupts the input embeddings inside the model and cannot be written to a data "
               "file; evaluate under it with 'moe-robust eval --corruption %s:%d'",
               t->name, t->name, severity);
    mr_dataset *d = NULL;
    mr_model *m = NULL;
    void *data = NULL;
    int st = mr_dataset_load(&d, a->data, a->limit);
    if (st == MR_OK && t->modality == MR_MOD_IMAGE && d->kind != MR_DATA_IMAGES)
        st = mr_error_set(MR_EINPUT, "%s is an image corruption but %s holds tokens", t->name,
                          a->data);
    if (st == MR_OK && t->modality == MR_MOD_TEXT && d->kind != MR_DATA_TOKENS)
        st = mr_error_set(MR_EINPUT, "%s is a text corruption but %s holds images", t->name,
                          a->data);
    if (st == MR_OK && t->modality == MR_MOD_TEXT && !a->model)
        st = mr_error_set(MR_EINPUT,
                          "--model M.h5 is required for the text corruption %s: token ids are "
                          "mapped to characters through the model's /vocab",
                          t->name);
    if (st == MR_OK && a->model) st = mr_model_load(&m, a->model);
    if (st == MR_OK && t->modality == MR_MOD_TEXT && m->cfg.task != MR_TASK_LM)
        st = mr_error_set(MR_EINPUT, "%s: not a language model", a->model);
    if (st == MR_OK && t->modality == MR_MOD_TEXT && !m->vocab && !t->ids_only)
        st = mr_error_set(MR_EINPUT, "%s: no /vocab (token ids only): %s works on characters",
                          a->model, t->name);
    size_t bytes = 0;
    if (st == MR_OK)
        bytes = d->kind == MR_DATA_IMAGES ? (size_t)d->n * d->h * d->w * d->c
                                          : (size_t)d->n * d->cols * sizeof(int32_t);
    if (st == MR_OK && !(data = malloc(bytes ? bytes : 1)))
        st = mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK)
        st = corrupt_all(d, data, t, severity, (uint64_t)a->seed, m ? m->vocab : NULL,
                         m ? m->cfg.vocab_size : 0, (int)a->threads);
    if (st == MR_OK) st = write_file(a->out, d, data, t, severity, a->seed);
    if (st == MR_OK)
        printf("wrote %s: %d %s under %s:%d (seed %ld)\n", a->out, d->n,
               d->kind == MR_DATA_IMAGES ? "images" : "token rows", t->name, severity, a->seed);
    free(data);
    mr_model_free(m);
    mr_dataset_free(d);
    return st;
}

int mr_cmd_corrupt(int argc, char **argv)
{
    corrupt_args a;
    int help = 0;
    int st = parse(&a, argc, argv, &help);
    if (st == MR_OK && !help && a.list) {
        list_corruptions();
        return 0;
    }
    int ex = mr_cli_parsed("corrupt", st, help, usage);
    if (ex >= 0) return ex;
    st = a.gallery ? run_gallery(&a) : run_corrupt(&a);
    return mr_cli_done("corrupt", st);
}
