/* moe-robust — command-line entry point. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_engine.h"
#include "../analysis/mr_ops.h"
#include "../io/mr_fs.h"
#include "../io/mr_h5.h"
#include "mr_blas_core.h"
#include "mr_cli.h"
#include "mr_fatal.h"

#ifndef MR_VERSION
#define MR_VERSION "0.1.0"
#endif

static void usage(FILE *fp)
{
    fprintf(fp,
            "moe-robust %s — routing robustness and stability of Sparse Mixture-of-Experts models\n"
            "\n"
            "usage: moe-robust COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  inspect MODEL.h5      architecture summary, parameter count, validation\n"
            "  import DIR --out M.h5 a Hugging Face MoE checkpoint (mixtral, qwen2_moe,\n"
            "                        qwen3_moe, olmoe) to a model file (docs/import.md)\n"
            "  eval --model M --data D\n"
            "                        accuracy (classify) or loss and bits per char (lm),\n"
            "                        and routing entropy, load balance and flip rates per MoE\n"
            "                        layer with confidence intervals\n"
            "  run CONFIG.ini        the evaluation grid: models x routers x corruptions x\n"
            "                        severities, resumable, shardable (docs/config.md)\n"
            "  merge DIR             assemble the results of a sharded run\n"
            "  corrupt --data D ...  write a corrupted dataset, or a gallery PNG (--gallery)\n"
            "  compress --model M --calib D --method NAME --experts K --out M2\n"
            "                        prune or merge experts (frequency, REAP, M-SMoE, UNCURL,\n"
            "                        MC-SMoE) into a smaller model file\n"
            "  attack --model M --data D --method NAME --eps E --out ADV.h5\n"
            "                        write an adversarial dataset (fgsm, pgd, square, spsa;\n"
            "                        docs/attacks.md) and evaluate the model on it\n"
            "  analyze TRACE.h5... --out DIR\n"
            "                        the metrics of `run` from routing traces recorded by any\n"
            "                        framework (docs/traces.md)\n"
            "  report DIR            figures (gnuplot) and tables (LaTeX, Markdown) of a run\n"
            "  baseline DIR          freeze a run's metrics as JSON for `check`\n"
            "  check DIR --baseline B  compare a run with a baseline: exit 1 on a regression\n"
            "\n"
            "Run 'moe-robust COMMAND --help' for a command's options; --version (also after\n"
            "any command) prints the version.\n"
            "Exit status: 0 success, 2 bad input (file, option, value), 1 runtime failure.\n"
            "\n"
            "Environment: where OpenBLAS does not recognise the CPU and falls back to its\n"
            "generic Prescott kernels, moe-robust re-executes itself once with\n"
            "OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2, FMA); an OPENBLAS_CORETYPE\n"
            "already set is kept, and MR_BLAS_CORE=off keeps OpenBLAS's own choice. `run`\n"
            "re-executes itself (the same once) with OMP_WAIT_POLICY=passive, so that idle\n"
            "OpenMP threads sleep instead of spinning, unless OMP_WAIT_POLICY or\n"
            "GOMP_SPINCOUNT is set. MR_SIMD=avx2 turns moe-robust's own AVX-512 kernels off\n"
            "(as on a CPU without AVX-512: floats move in their last digits), MR_SIMD=portable\n"
            "its AVX2 kernels too (OpenBLAS and plain C only); auto, the default, lets the CPU\n"
            "decide.\n",
            MR_VERSION);
}

static int dispatch(int argc, char **argv);

/* What a command printed on stdout must have reached it: a write error (a full disk,
 * /dev/full, a closed pipe) is a runtime failure, never exit 0 with the output lost. */
static int finish_stdout(const char *cmd, int rc)
{
    int bad = ferror(stdout), e = bad ? errno : 0;
    errno = 0;
    if (fflush(stdout) != 0) {
        bad = 1;
        e = errno;
    }
    errno = 0;
    if (fclose(stdout) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad) return rc;
    fprintf(stderr, "moe-robust%s%s: cannot write to standard output (%s)\n", cmd ? " " : "",
            cmd ? cmd : "", e ? mr_fs_strerror(e) : "write error");
    return rc ? rc : 1;
}

int mr_cli_version(void)
{
    printf("moe-robust %s\n", MR_VERSION);
    return 0;
}

/* MR_SIMD=avx2: the suite's own AVX-512 kernels off (the engine's GEMMs, attention,
 * LayerNorm, top-k, softmax, the bootstrap's draws, analyze's kernels), as on a CPU
 * without AVX-512: to measure or reproduce what such a CPU runs on one that has it
 * (docs/performance.md); its AVX2 kernels (mr_simd_avx2) run instead where there are
 * some. MR_SIMD=portable: both off, OpenBLAS and the plain C paths only (as on a CPU
 * without AVX2). The compiler's vector clones and OpenBLAS's kernels (OPENBLAS_CORETYPE)
 * follow the CPU as before. auto (or unset): the CPU decides. */
static int simd_choose(void)
{
    const char *v = getenv("MR_SIMD");
    if (v == NULL || strcmp(v, "auto") == 0) return 0;
    if (strcmp(v, "avx2") == 0) {
        mr_simd_avx512_set(0);
        return 0;
    }
    if (strcmp(v, "portable") == 0) {
        mr_simd_avx512_set(0);
        mr_simd_avx2_set(0);
        return 0;
    }
    fprintf(stderr, "moe-robust: MR_SIMD=%.64s: must be auto, avx2 or portable\n", v);
    return 2;
}

int main(int argc, char **argv)
{
    mr_blas_core_choose(argv); /* before anything else: it may re-execute the program */
    if (simd_choose() != 0) return 2;
    mr_h5_quiet(); /* the main thread; io/ silences every other thread it runs HDF5 on */
    mr_fatal_install(); /* libhdf5's crashes on corrupt files: a message and exit 2 */
    int rc = dispatch(argc, argv);
    return finish_stdout(argc >= 2 ? argv[1] : NULL, rc);
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) return mr_cli_version();
    mr_engine_blas_single_thread();
    if (strcmp(cmd, "inspect") == 0) return mr_cmd_inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0) return mr_cmd_import(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return mr_cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0) return mr_cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "merge") == 0) return mr_cmd_merge(argc - 1, argv + 1);
    if (strcmp(cmd, "corrupt") == 0) return mr_cmd_corrupt(argc - 1, argv + 1);
    if (strcmp(cmd, "attack") == 0) return mr_cmd_attack(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0) return mr_cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "baseline") == 0) return mr_cmd_baseline(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) return mr_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "analyze") == 0) return mr_cmd_analyze(argc - 1, argv + 1);
    if (strcmp(cmd, "compress") == 0) return mr_cmd_compress(argc - 1, argv + 1);
    fprintf(stderr, "moe-robust: unknown command '%s' (try 'moe-robust --help')\n", cmd);
    return 2;
}
