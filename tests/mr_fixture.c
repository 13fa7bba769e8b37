/* mr_fixture — valid but unusual models for the fault tests (tests/cli_faults.sh), made
 * at test time instead of committed: a file that declares "many" of something is large.
 *
 *   mr_fixture deep OUT N          an 8x8x1 classifier (3 classes, patch 4) with N
 *                                  blocks, every one MoE (2 experts, top-1), d_model 4
 *   mr_fixture router-attrs OUT N  the same with 2 blocks and N scalar attributes in each
 *                                  block's moe/router group (no router reads them)
 *   mr_fixture unknown-router OUT N  N blocks, trained with a router this build does not
 *                                  know (attribute router = "no-such-router")
 *
 * Weights are small deterministic pseudo-random numbers; the files are written with the
 * project's own HDF5 writer (io/mr_h5.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "analysis/mr_parse.h"
#include "io/mr_h5.h"

static unsigned long long lcg = 12345;

static float rnd(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(lcg >> 40) / (double)(1ULL << 24) - 0.5) * 0.5f;
}

static int put(hid_t f, const char *path, int rank, hsize_t d0, hsize_t d1, hsize_t d2, float fill)
{
    hsize_t dims[3] = {d0, d1, d2};
    size_t n = d0 * (rank > 1 ? d1 : 1) * (rank > 2 ? d2 : 1);
    float *v = malloc(n * sizeof *v);
    if (!v) return MR_ENOMEM;
    for (size_t i = 0; i < n; i++) v[i] = fill != 0.0f ? fill : rnd();
    int st = mr_h5_write_dataset(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank, dims, v, 0);
    free(v);
    return st;
}

static hid_t group(hid_t f, const char *path)
{
    hid_t g = mr_h5_create_group(f, path);
    if (g >= 0) H5Gclose(g);
    return g;
}

static int write_model(const char *out, int n_layers, int n_router_attrs, const char *router)
{
    const int d = 4, E = 2, h = 2, P = 4, C = 1, K = 3, n_pos = 5;
    hid_t f;
    MR_TRY(mr_h5_mem_create(&f, out, 0));
    int st = MR_OK;
    st |= mr_h5_write_attr_string(f, "format", "moe-robust-model");
    st |= mr_h5_write_attr_int(f, "format_version", 1);
    st |= mr_h5_write_attr_string(f, "task", "classify");
    st |= mr_h5_write_attr_int(f, "d_model", d);
    st |= mr_h5_write_attr_int(f, "n_layers", n_layers);
    st |= mr_h5_write_attr_int(f, "n_heads", 1);
    st |= mr_h5_write_attr_int(f, "d_ff", 0);
    st |= mr_h5_write_attr_int(f, "n_experts", E);
    st |= mr_h5_write_attr_int(f, "top_k", 1);
    st |= mr_h5_write_attr_int(f, "expert_hidden", h);
    st |= mr_h5_write_attr_double(f, "norm_eps", 1e-5);
    st |= mr_h5_write_attr_string(f, "activation", "gelu");
    st |= mr_h5_write_attr_string(f, "gate_norm", "renorm");
    st |= mr_h5_write_attr_string(f, "router", router);
    st |= mr_h5_write_attr_int(f, "image_h", 8);
    st |= mr_h5_write_attr_int(f, "image_w", 8);
    st |= mr_h5_write_attr_int(f, "channels", C);
    st |= mr_h5_write_attr_int(f, "patch", P);
    st |= mr_h5_write_attr_int(f, "n_classes", K);
    st |= mr_h5_write_attr_string(f, "pool", "cls");
    long long *ml = malloc((size_t)n_layers * sizeof *ml);
    if (!ml) return MR_ENOMEM;
    for (int i = 0; i < n_layers; i++) ml[i] = i;
    hsize_t nl = (hsize_t)n_layers;
    hid_t sp = H5Screate_simple(1, &nl, NULL);
    hid_t a = H5Acreate2(f, "moe_layers", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_LLONG, ml) < 0) st |= MR_EIO;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    free(ml);
    if (group(f, "embed") < 0 || group(f, "layers") < 0 || group(f, "head") < 0) st |= MR_EIO;
    st |= put(f, "/embed/patch_w", 2, d, P * P * C, 0, 0);
    st |= put(f, "/embed/patch_b", 1, d, 0, 0, 0);
    st |= put(f, "/embed/cls", 1, d, 0, 0, 0);
    st |= put(f, "/embed/pos", 2, n_pos, d, 0, 0);
    char p[256];
    for (int l = 0; l < n_layers && st == MR_OK; l++) {
        snprintf(p, sizeof p, "/layers/%d", l);
        if (group(f, p) < 0) st |= MR_EIO;
        snprintf(p, sizeof p, "/layers/%d/moe", l);
        if (group(f, p) < 0) st |= MR_EIO;
#define W(name, rank, a0, a1, a2, fill)                     \
    snprintf(p, sizeof p, "/layers/%d/%s", l, name);        \
    st |= put(f, p, rank, a0, a1, a2, fill)
        W("ln1_w", 1, d, 0, 0, 1.0f);
        W("ln1_b", 1, d, 0, 0, 0.0f);
        W("attn_qkv_w", 2, 3 * d, d, 0, 0.0f);
        W("attn_qkv_b", 1, 3 * d, 0, 0, 0.0f);
        W("attn_out_w", 2, d, d, 0, 0.0f);
        W("attn_out_b", 1, d, 0, 0, 0.0f);
        W("ln2_w", 1, d, 0, 0, 1.0f);
        W("ln2_b", 1, d, 0, 0, 0.0f);
        W("moe/gate_w", 2, E, d, 0, 0.0f);
        W("moe/w1", 3, E, h, d, 0.0f);
        W("moe/b1", 2, E, h, 0, 0.0f);
        W("moe/w2", 3, E, d, h, 0.0f);
        W("moe/b2", 2, E, d, 0, 0.0f);
#undef W
        if (n_router_attrs > 0) {
            snprintf(p, sizeof p, "/layers/%d/moe/router", l);
            hid_t g = mr_h5_create_group(f, p);
            if (g < 0) st |= MR_EIO;
            for (int i = 0; g >= 0 && i < n_router_attrs; i++) {
                char name[32];
                snprintf(name, sizeof name, "unused_%d", i);
                st |= mr_h5_write_attr_double(g, name, 0.5 + i);
            }
            if (g >= 0) H5Gclose(g);
        }
    }
    st |= put(f, "/head/ln_w", 1, d, 0, 0, 1.0f);
    st |= put(f, "/head/ln_b", 1, d, 0, 0, 0.0f);
    st |= put(f, "/head/w", 2, K, d, 0, 0.0f);
    st |= put(f, "/head/b", 1, K, 0, 0, 0.0f);
    if (st != MR_OK) {
        mr_h5_mem_discard(f);
        return mr_error_set(MR_EIO, "%s: cannot build the model", out);
    }
    return mr_h5_mem_commit(f, out);
}

int main(int argc, char **argv)
{
    int n = 0, st = MR_EINPUT;
    if (argc == 4 && mr_parse_int("N", argv[3], 1, 1024, &n) == MR_OK) {
        if (strcmp(argv[1], "deep") == 0) st = write_model(argv[2], n, 0, "softmax");
        else if (strcmp(argv[1], "router-attrs") == 0) st = write_model(argv[2], 2, n, "softmax");
        else if (strcmp(argv[1], "unknown-router") == 0)
            st = write_model(argv[2], n, 0, "no-such-router");
    }
    if (st == MR_EINPUT && argc != 4) mr_error_set(MR_EINPUT, "usage: mr_fixture deep|router-attrs|unknown-router OUT N");
    if (st != MR_OK) fprintf(stderr, "mr_fixture: %s\n", mr_error_message());
    return st == MR_OK ? 0 : 1;
}
