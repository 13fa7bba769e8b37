/* Deterministic image corruptions against the reference Python implementations
 * (skimage / scipy / PIL, tools/make_corruption_refs.py) on real Fashion-MNIST images:
 * for every case and severity, >= 99 % of the values must be within 1 grey level. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "corruptions/mr_corrupt_impl.h"
#include "corruptions/mr_corruption.h"
#include "mr_test_util.h"

#define REF "tests/fixtures/corruptions/ref-fmnist.h5"
#define MIN_WITHIN_1 0.99

/* read a whole uint8 dataset; dims[rank] */
static uint8_t *read_u8(hid_t f, const char *path, int *rank, hsize_t *dims)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(ds >= 0, "%s: %s missing (regenerate with tools/make_corruption_refs.py)", REF,
                  path);
    hid_t sp = H5Dget_space(ds);
    *rank = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < *rank; i++) n *= dims[i];
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_ge(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

/* the cases of make_corruption_refs.py cases(): a registered corruption, or a
 * random-sign geometry with its signs fixed */
typedef struct ref_case {
    const char *name;
    int kind; /* 0 registry, 1 shear, 2 rotate, 3 translate */
    int sx, sy;
} ref_case;

static const ref_case cases[] = {
    {"brightness", 0, 0, 0},   {"contrast", 0, 0, 0},       {"saturate", 0, 0, 0},
    {"inverse", 0, 0, 0},      {"flip_lr", 0, 0, 0},        {"flip_ud", 0, 0, 0},
    {"rot90_cw", 0, 0, 0},     {"rot90_ccw", 0, 0, 0},      {"stripe", 0, 0, 0},
    {"canny_edges", 0, 0, 0},  {"scale", 0, 0, 0},          {"gaussian_blur", 0, 0, 0},
    {"defocus_blur", 0, 0, 0}, {"zoom_blur", 0, 0, 0},      {"pixelate", 0, 0, 0},
    {"jpeg_compression", 0, 0, 0},
    {"shear+", 1, 1, 0},       {"shear-", 1, -1, 0},        {"rotate+", 2, 1, 0},
    {"rotate-", 2, -1, 0},     {"translate++", 3, 1, 1},    {"translate+-", 3, 1, -1},
    {"translate-+", 3, -1, 1}, {"translate--", 3, -1, -1}};

static void corrupt_one(const ref_case *c, uint8_t *out, const uint8_t *in, int H, int W, int C,
                        int s, mr_corrupt_ws *ws)
{
    int st = MR_OK;
    switch (c->kind) {
    case 0: {
        const mr_corruption_type *t = mr_corruption_lookup(c->name);
        ck_assert_msg(t != NULL, "no corruption %s", c->name);
        ck_assert_msg(t->deterministic, "%s is not deterministic", c->name);
        st = mr_corrupt_images(out, in, 1, H, W, C, t, s, 1234, 0, ws);
        break;
    }
    case 1: st = mr_shear_signed(out, in, H, W, C, s, c->sx, ws); break;
    case 2: st = mr_rotate_signed(out, in, H, W, C, s, c->sx, ws); break;
    default: st = mr_translate_signed(out, in, H, W, C, s, c->sx, c->sy, ws); break;
    }
    ck_assert_msg(st == MR_OK, "%s: %s", c->name, mr_error_message());
}

static double worst_fraction = 1.0;

static void check_set(hid_t f, const char *set)
{
    char path[128];
    int rank;
    hsize_t dims[8];
    snprintf(path, sizeof path, "/%s/clean", set);
    uint8_t *clean = read_u8(f, path, &rank, dims);
    ck_assert_int_eq(rank, 4);
    int n = (int)dims[0], H = (int)dims[1], W = (int)dims[2], C = (int)dims[3];
    size_t per = (size_t)H * W * C;
    mr_corrupt_ws *ws;
    ck_assert_int_eq(mr_corrupt_ws_alloc(&ws, H, W, C, 0), MR_OK);
    uint8_t *out = malloc(per);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(path, sizeof path, "/%s/%s", set, cases[k].name);
        hsize_t rd[8];
        int rr;
        uint8_t *ref = read_u8(f, path, &rr, rd);
        ck_assert_int_eq(rr, 5);
        ck_assert_int_eq((int)rd[0], MR_SEVERITY_MAX);
        printf("%-5s %-17s", set, cases[k].name);
        for (int s = 1; s <= MR_SEVERITY_MAX; s++) {
            size_t within = 0, exact = 0, total = (size_t)n * per;
            for (int i = 0; i < n; i++) {
                corrupt_one(&cases[k], out, clean + i * per, H, W, C, s, ws);
                const uint8_t *want = ref + ((size_t)(s - 1) * n + i) * per;
                for (size_t j = 0; j < per; j++) {
                    int d = abs((int)out[j] - (int)want[j]);
                    within += d <= 1;
                    exact += d == 0;
                }
            }
            double fr = (double)within / total;
            if (fr < worst_fraction) worst_fraction = fr;
            printf("  s%d %.4f/%.4f", s, fr, (double)exact / total);
            ck_assert_msg(fr >= MIN_WITHIN_1,
                          "%s %s severity %d: %.4f of the values within 1 grey level (< %.2f)",
                          set, cases[k].name, s, fr, MIN_WITHIN_1);
        }
        printf("\n");
        free(ref);
    }
    free(out);
    free(clean);
    mr_corrupt_ws_free(ws);
}

START_TEST(matches_reference)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(REF, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", REF);
    printf("fraction of values within 1 grey level / exactly equal, per severity:\n");
    check_set(f, "gray");
    check_set(f, "rgb");
    check_set(f, "wide");
    H5Fclose(f);
    printf("minimum fraction within 1 grey level over every case and severity: %.4f\n",
           worst_fraction);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("corruptions_ref");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, matches_reference);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
