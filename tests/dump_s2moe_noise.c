/* dump_s2moe_noise SEED LAYER FIRST B T D — the standard normal draws of the s2moe
 * router's noise (analysis/routers/s2moe.c: stream (SEED, "router/s2moe/LAYER", FIRST + b)
 * for sequence b, per feature f then position t, eps1's draw then eps2's) as float64
 * n1 [B,T,D] followed by n2 [B,T,D] on stdout. tools/export_grad_refs.py feeds them to the
 * PyTorch reference so that its S2MoE gradients (noise=on) use the C engine's noise. */
#include <gsl/gsl_randist.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis/mr_rng.h"

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: dump_s2moe_noise SEED LAYER FIRST B T D\n");
        return 2;
    }
    unsigned long long seed = strtoull(argv[1], NULL, 10), first = strtoull(argv[3], NULL, 10);
    int layer = atoi(argv[2]), B = atoi(argv[4]), T = atoi(argv[5]), d = atoi(argv[6]);
    if (B < 1 || T < 1 || d < 1) return 2;
    double *n = malloc(2 * (size_t)B * T * d * sizeof *n);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!n || !r) return 1;
    char purpose[64];
    snprintf(purpose, sizeof purpose, "router/s2moe/%d", layer);
    size_t half = (size_t)B * T * d;
    for (int b = 0; b < B; b++) {
        mr_rng_reseed(r, seed, purpose, first + (unsigned long long)b);
        for (int f = 0; f < d; f++)
            for (int t = 0; t < T; t++) {
                size_t i = ((size_t)b * T + t) * d + f;
                n[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
                n[half + i] = gsl_ran_gaussian_ziggurat(r, 1.0);
            }
    }
    fwrite(n, sizeof *n, 2 * half, stdout);
    gsl_rng_free(r);
    free(n);
    return 0;
}
