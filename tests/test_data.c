/* Data loading: IDX (gzip) and HDF5 images/tokens, limits, and checks against a model. */
#include <string.h>

#include "analysis/mr_error.h"
#include "io/mr_data.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

START_TEST(idx_pair_loads)
{
    mr_dataset *d;
    ck_assert_msg(mr_dataset_load(&d, "tests/fixtures/tiny-images-idx3-ubyte.gz", 0) == MR_OK,
                  "%s", mr_error_message());
    ck_assert_int_eq(d->kind, MR_DATA_IMAGES);
    ck_assert_int_eq(d->n, 8);
    ck_assert_int_eq(d->h, 8);
    ck_assert_int_eq(d->w, 8);
    ck_assert_int_eq(d->c, 1);
    /* the IDX pair holds the same images and labels as tiny-images.h5 */
    mr_dataset *h;
    ck_assert_msg(mr_dataset_load(&h, "tests/fixtures/tiny-images.h5", 0) == MR_OK, "%s",
                  mr_error_message());
    ck_assert_int_eq(memcmp(d->images, h->images, 8 * 8 * 8), 0);
    ck_assert_int_eq(memcmp(d->labels, h->labels, 8 * sizeof(int32_t)), 0);
    mr_dataset_free(h);
    mr_dataset_free(d);
}
END_TEST

/* The real Fashion-MNIST test set (Debian dataset-fashion-mnist, which scripts/bootstrap
 * installs): its first 20 labels as the IDX file holds them (read here with Python's gzip:
 * 9 2 1 1 6 1 4 6 5 7 4 5 7 3 4 1 2 4 8 0), and 1,000 images of each of the 10 classes
 * (the balanced test split of Xiao et al. 2017, counted the same way). Labels go up to 9,
 * so a label read modulo anything smaller, or cut to a smaller type, fails. */
START_TEST(fashion_mnist_labels)
{
    static const char *path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    static const int32_t first[20] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0};
    mr_dataset *d;
    ck_assert_msg(mr_dataset_load(&d, path, 0) == MR_OK, "%s (install dataset-fashion-mnist)",
                  mr_error_message());
    ck_assert_int_eq(d->n, 10000);
    ck_assert_int_eq(d->h, 28);
    for (int i = 0; i < 20; i++) ck_assert_int_eq(d->labels[i], first[i]);
    int count[10] = {0};
    for (int i = 0; i < d->n; i++) {
        ck_assert(d->labels[i] >= 0 && d->labels[i] < 10);
        count[d->labels[i]]++;
    }
    for (int c = 0; c < 10; c++) ck_assert_int_eq(count[c], 1000);
    mr_dataset_free(d);
}
END_TEST

START_TEST(limit_reads_a_prefix)
{
    mr_dataset *d, *all;
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-tokens.h5", 2), MR_OK);
    ck_assert_int_eq(mr_dataset_load(&all, "tests/fixtures/tiny-tokens.h5", 0), MR_OK);
    ck_assert_int_eq(d->n, 2);
    ck_assert_int_gt(all->n, 2);
    ck_assert_int_eq(d->cols, all->cols);
    ck_assert_int_eq(memcmp(d->tokens, all->tokens, 2 * (size_t)d->cols * sizeof(int32_t)), 0);
    mr_dataset_free(d);
    mr_dataset_free(all);
}
END_TEST

START_TEST(data_must_fit_the_model)
{
    mr_model *lm, *img;
    mr_dataset *tok, *im;
    ck_assert_int_eq(mr_model_load(&lm, "tests/fixtures/tiny-lm.h5"), MR_OK);
    ck_assert_int_eq(mr_model_load(&img, "tests/fixtures/tiny-classify.h5"), MR_OK);
    ck_assert_int_eq(mr_dataset_load(&tok, "tests/fixtures/tiny-tokens.h5", 0), MR_OK);
    ck_assert_int_eq(mr_dataset_load(&im, "tests/fixtures/tiny-images.h5", 0), MR_OK);
    ck_assert_int_eq(mr_dataset_check_model(tok, lm), MR_OK);
    ck_assert_int_eq(mr_dataset_check_model(im, img), MR_OK);
    ck_assert_int_eq(mr_dataset_check_model(tok, img), MR_EINPUT);
    ck_assert_int_eq(mr_dataset_check_model(im, lm), MR_EINPUT);
    /* a label out of range is named with its index and value */
    im->labels[3] = 99;
    ck_assert_int_eq(mr_dataset_check_model(im, img), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "/labels[3] = 99"));
    /* a token id outside the vocabulary */
    tok->tokens[5] = lm->cfg.vocab_size;
    ck_assert_int_eq(mr_dataset_check_model(tok, lm), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "outside the vocabulary"));
    mr_dataset_free(tok);
    mr_dataset_free(im);
    mr_model_free(lm);
    mr_model_free(img);
}
END_TEST

START_TEST(bad_data_files_are_refused)
{
    mr_dataset *d;
    /* an IDX images file whose name does not let us find the labels */
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-classify.h5", 0), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "neither /images nor /tokens"));
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/missing-images-idx3-ubyte.gz", 0),
                     MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "missing-images-idx3-ubyte.gz"));
    ck_assert_ptr_null(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, idx_pair_loads);
    tcase_add_test(tc, fashion_mnist_labels);
    tcase_add_test(tc, limit_reads_a_prefix);
    tcase_add_test(tc, data_must_fit_the_model);
    tcase_add_test(tc, bad_data_files_are_refused);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
