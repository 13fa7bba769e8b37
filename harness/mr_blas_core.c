/* mr_blas_core_choose (mr_blas_core.h): OpenBLAS's own kernels for a CPU it does not know.
 *
 * Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from the CPU model at
 * load time; a CPU newer than the library (e.g. Intel Xeon family 6 model 207, a VM
 * this project runs on) falls back to the Prescott (SSE3) kernels and every GEMM runs at
 * half the speed or less (docs/performance.md, "OpenBLAS's kernels"). OpenBLAS's
 * documented remedy is the environment variable OPENBLAS_CORETYPE, which it reads only
 * when it is loaded: so the command line re-executes itself once with the kernels the
 * CPU's flags allow (SkylakeX with AVX-512 F/BW/DQ/VL, Haswell with AVX2 and FMA), as
 * scripts/blas-core prints them for scripts/demo. Results change in float rounding only
 * (another GEMM kernel), the same on every run of one host (docs/ci.md). Not done when
 * OPENBLAS_CORETYPE is set (the user's choice, or the re-executed process itself), when
 * MR_BLAS_CORE=off, or when OpenBLAS recognised the CPU; a failed re-execution leaves
 * the process as it was. The same re-execution sets OMP_WAIT_POLICY=passive for `run`
 * (omp_passive_wanted below). */
#define _GNU_SOURCE /* setenv, unsetenv, execv */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mr_blas_core.h"

extern char *openblas_get_corename(void);

const char *mr_blas_core_wanted(const char *detected)
{
    if (detected == NULL || strcasecmp(detected, "Prescott") != 0) return NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    /* the OS's support of the registers too: libgcc checks XCR0 for these */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

/* OpenMP's wait policy for `run`. libgomp's idle threads spin (up to 300,000 pause
 * instructions, a few milliseconds) before they sleep, at the end of every parallel
 * region and while the main thread works alone; a grid's cells alternate short parallel
 * regions (micro-batches, CIs) with serial steps (corruption setup, paired tests, the cell
 * file), so the other thread spun through ~9 % of a grid's CPU time (perf, 2 threads,
 * 300-image cells; docs/performance.md). OMP_WAIT_POLICY=passive (OpenMP's documented
 * variable, read by libgomp only when it is loaded) lets idle threads sleep at once: the
 * same results (the policy changes no computation), less CPU time, the same wall time
 * within noise. Kept when the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT. */
static int omp_passive_wanted(char **argv)
{
    return argv[0] != NULL && argv[1] != NULL && strcmp(argv[1], "run") == 0 &&
           getenv("OMP_WAIT_POLICY") == NULL && getenv("GOMP_SPINCOUNT") == NULL;
}

void mr_blas_core_choose(char **argv)
{
    const char *off = getenv("MR_BLAS_CORE");
    const char *core = getenv("OPENBLAS_CORETYPE") != NULL || (off != NULL && strcmp(off, "off") == 0)
                           ? NULL
                           : mr_blas_core_wanted(openblas_get_corename());
    int passive = omp_passive_wanted(argv);
    if (core == NULL && !passive) return;
    if (core != NULL && setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    if (passive && setenv("OMP_WAIT_POLICY", "passive", 1) != 0) {
        if (core != NULL) unsetenv("OPENBLAS_CORETYPE");
        return;
    }
    execv("/proc/self/exe", argv);
    /* no re-execution: carry on as the process was (Prescott's kernels, spinning) */
    if (core != NULL) unsetenv("OPENBLAS_CORETYPE");
    if (passive) unsetenv("OMP_WAIT_POLICY");
}
