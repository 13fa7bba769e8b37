/* io/mr_safetensors.c: exact dtype conversions and the header checks.
 * (The malformed files of tests/bad/hf go through the CLI in tests/cli_bad_checkpoints.sh;
 * tests/fuzz/fuzz_safetensors.c fuzzes the parser.) */
#include <math.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "io/mr_safetensors.h"
#include "mr_test_util.h"

/* IEEE binary16 from its definition (sign, 5-bit exponent biased by 15, 10-bit fraction),
 * in double, independently of the bit manipulation under test. */
static double f16_reference(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

START_TEST(f16_every_pattern_exactly)
{
    for (unsigned h = 0; h < 65536; h++) {
        float got = mr_st_f16_to_f32((uint16_t)h);
        double want = f16_reference((uint16_t)h);
        if (isnan(want)) {
            ck_assert_msg(isnan(got), "f16 0x%04x: %g, expected NaN", h, (double)got);
            continue;
        }
        ck_assert_msg((double)got == want && !signbit(got) == !signbit(want),
                      "f16 0x%04x: %.9g, expected %.9g", h, (double)got, want);
    }
}
END_TEST

START_TEST(bf16_is_the_upper_half)
{
    const float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 3.140625f, 1e-38f, 65280.0f, INFINITY};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint32_t bits;
        memcpy(&bits, &vals[i], 4);
        float got = mr_st_bf16_to_f32((uint16_t)(bits >> 16));
        uint32_t gb;
        memcpy(&gb, &got, 4);
        ck_assert_uint_eq(gb, bits & 0xffff0000u);
    }
}
END_TEST

static int parse(const char *json, uint64_t data_size, mr_st_file **f)
{
    return mr_st_parse_header(f, "h.safetensors", json, strlen(json), data_size);
}

START_TEST(valid_header_is_read)
{
    mr_st_file *f;
    const char *j = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[8,20]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"z\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[20,20]}}";
    ck_assert_msg(parse(j, 20, &f) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(f->n, 3);
    ck_assert_str_eq(f->tensors[0].name, "a"); /* sorted */
    const mr_st_tensor *b = mr_st_find(f, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->dtype, MR_ST_BF16);
    ck_assert_int_eq(b->rank, 2);
    ck_assert_uint_eq(b->numel, 6);
    ck_assert_ptr_null(mr_st_find(f, "c"));
    mr_st_close(f);
}
END_TEST

/* Each defect is refused with MR_EINPUT, naming the file and `needle`. */
START_TEST(bad_headers_are_refused)
{
    static const struct { const char *json, *needle; } bad[] = {
        {"[1,2]", "not a JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", "F64"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,6]}}", "needs 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", "outside the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "outside the data"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "rank"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
         "\"data_offsets\":[0,4]}}", "2^40"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "twice"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets"},
        {"{\"a\":7}", "not an object"},
        {"{\"__metadata__\":{\"k\":1}}", "__metadata__"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "empty name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_st_file *f = (mr_st_file *)1;
        int st = parse(bad[i].json, 8, &f);
        ck_assert_msg(st == MR_EINPUT, "case %zu accepted: %s", i, bad[i].json);
        ck_assert_ptr_null(f);
        ck_assert_msg(strstr(mr_error_message(), "h.safetensors") &&
                          strstr(mr_error_message(), bad[i].needle),
                      "case %zu: message '%s' lacks '%s'", i, mr_error_message(), bad[i].needle);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("header");
    tcase_add_test(tc, f16_every_pattern_exactly);
    tcase_add_test(tc, bf16_is_the_upper_half);
    tcase_add_test(tc, valid_header_is_read);
    tcase_add_test(tc, bad_headers_are_refused);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
