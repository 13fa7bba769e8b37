/* mr_blas_core.h — OpenBLAS's kernels for CPUs Debian's OpenBLAS does not recognise
 * (harness/mr_blas_core.c says why). */
#ifndef MR_BLAS_CORE_H
#define MR_BLAS_CORE_H

/* The OPENBLAS_CORETYPE to ask for when OpenBLAS detected `detected` (its
 * openblas_get_corename()) on this CPU: "SkylakeX" or "Haswell" when it fell back to
 * "Prescott" on a CPU with AVX-512 F/BW/DQ/VL or AVX2 + FMA, else NULL (a static
 * string: not to be freed). */
const char *mr_blas_core_wanted(const char *detected);

/* First thing in main: re-execute the program (/proc/self/exe, the same argv) once with
 * OPENBLAS_CORETYPE set to mr_blas_core_wanted's choice when there is one, unless
 * OPENBLAS_CORETYPE is already set or MR_BLAS_CORE=off; and, for the `run` command, with
 * OMP_WAIT_POLICY=passive unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set (both are read
 * only when OpenBLAS and libgomp are loaded). Returns only when it does not re-execute
 * (nothing to do, or the re-execution failed: nothing changed). */
void mr_blas_core_choose(char **argv);

#endif
