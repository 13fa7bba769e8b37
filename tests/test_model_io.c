/* Model loading and validation: good fixtures load with the documented shapes;
 * every malformed file of tests/bad/MANIFEST.tsv is refused with MR_EINPUT and a
 * message naming the file and the offending path or attribute; a file libhdf5 cannot
 * close is an error too, and the process still exits cleanly. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "io/mr_h5.h"
#include "io/mr_model_io.h"
#include "mr_test_tmp.h"
#include "mr_test_util.h"

START_TEST(tiny_classify_loads)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, "tests/fixtures/tiny-classify.h5") == MR_OK, "%s",
                  mr_error_message());
    const mr_config *c = &m->cfg;
    ck_assert_int_eq(c->task, MR_TASK_CLASSIFY);
    ck_assert_int_ge(c->n_moe, 1);
    ck_assert_int_eq(c->n_pos, c->n_patches + (c->pool == MR_POOL_CLS));
    ck_assert_uint_eq(m->n_params, mr_config_param_count(c));
    for (int i = 0; i < c->n_moe; i++) ck_assert(m->layers[c->moe_layers[i]].is_moe);
    mr_model_free(m);
}
END_TEST

START_TEST(tiny_lm_loads_with_vocab)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, "tests/fixtures/tiny-lm.h5") == MR_OK, "%s",
                  mr_error_message());
    ck_assert_int_eq(m->cfg.task, MR_TASK_LM);
    ck_assert_ptr_nonnull(m->vocab);
    ck_assert_ptr_nonnull(m->tok);
    mr_model_free(m);
}
END_TEST

START_TEST(missing_gate_bias_is_zero)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, "tests/fixtures/tiny-classify-rgb.h5") == MR_OK, "%s",
                  mr_error_message());
    int checked = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        if (!L->is_moe || L->has_gate_b) continue;
        for (int e = 0; e < m->cfg.n_experts; e++) ck_assert_float_eq(L->gate_b[e], 0.0f);
        checked++;
    }
    ck_assert_int_ge(checked, 1);
    mr_model_free(m);
}
END_TEST

START_TEST(bad_models_are_refused)
{
    FILE *fp = fopen("tests/bad/MANIFEST.tsv", "r");
    ck_assert_ptr_nonnull(fp);
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        ck_assert_msg(tab != NULL, "malformed manifest line: %s", line);
        *tab = '\0';
        if (strcmp(line, "file") == 0) continue; /* header */
        char path[1100];
        snprintf(path, sizeof path, "tests/bad/%s", line);
        char *needle = tab + 1; /* columns: file, must_mention, defect */
        needle[strcspn(needle, "\t")] = '\0';
        mr_model *m = (mr_model *)1;
        int st = mr_model_load(&m, path);
        ck_assert_msg(st == MR_EINPUT, "%s: loaded (status %d), expected a refusal", path, st);
        ck_assert_ptr_null(m);
        const char *msg = mr_error_message();
        ck_assert_msg(strstr(msg, path) != NULL, "%s: message does not name the file: %s", path,
                      msg);
        ck_assert_msg(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", path, needle,
                      msg);
        cases++;
    }
    fclose(fp);
    ck_assert_int_ge(cases, 12);
}
END_TEST

START_TEST(missing_file_is_input_error)
{
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/no-such-model.h5"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no-such-model.h5"));
}
END_TEST

/* A read-only file driver whose close fails, as libhdf5's own close fails on some corrupt
 * files (found by fuzz_model in CI): libhdf5 1.10 then keeps a file identifier that
 * points to freed memory (HDFFV-11052). */
typedef struct {
    H5FD_t pub; /* first: libhdf5 casts */
    int fd;
    haddr_t eoa, eof;
} badclose_file;

static H5FD_t *bc_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    (void)flags, (void)fapl, (void)maxaddr;
    struct stat st;
    int fd = open(name, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) return NULL;
    badclose_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    return &f->pub;
}

static herr_t bc_close(H5FD_t *p)
{
    badclose_file *f = (badclose_file *)p;
    close(f->fd);
    free(f);
    return -1;
}

static haddr_t bc_get_eoa(const H5FD_t *p, H5FD_mem_t t)
{
    (void)t;
    return ((const badclose_file *)p)->eoa;
}

static herr_t bc_set_eoa(H5FD_t *p, H5FD_mem_t t, haddr_t a)
{
    (void)t;
    ((badclose_file *)p)->eoa = a;
    return 0;
}

static haddr_t bc_get_eof(const H5FD_t *p, H5FD_mem_t t)
{
    (void)t;
    return ((const badclose_file *)p)->eof;
}

static herr_t bc_read(H5FD_t *p, H5FD_mem_t t, hid_t dxpl, haddr_t addr, size_t size, void *buf)
{
    (void)t, (void)dxpl;
    ssize_t n = pread(((badclose_file *)p)->fd, buf, size, (off_t)addr);
    if (n < 0) return -1;
    memset((char *)buf + n, 0, size - (size_t)n);
    return 0;
}

static herr_t bc_write(H5FD_t *p, H5FD_mem_t t, hid_t dxpl, haddr_t addr, size_t size,
                       const void *buf)
{
    (void)p, (void)t, (void)dxpl, (void)addr, (void)size, (void)buf;
    return -1;
}

static const H5FD_class_t badclose_class = {
    .name = "mr-test-badclose",
    .maxaddr = (haddr_t)1 << 62,
    .fc_degree = H5F_CLOSE_WEAK,
    .open = bc_open,
    .close = bc_close,
    .get_eoa = bc_get_eoa,
    .set_eoa = bc_set_eoa,
    .get_eof = bc_get_eof,
    .read = bc_read,
    .write = bc_write,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

/* In a child process (so that its exit is observed): a file whose close fails is an
 * input error naming the file, its identifier is counted as unreleasable, and the process
 * still exits cleanly (libhdf5's own teardown would crash on that identifier). */
static int failed_close_child(const char *path)
{
    mr_h5_quiet(); /* the process's HDF5 set-up, as main does */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t drv = H5FDregister(&badclose_class);
    if (fapl < 0 || drv < 0 || H5Pset_driver(fapl, drv, NULL) < 0) return 10;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) return 11;
    long before = mr_h5_unreleased();
    if (mr_h5_close_read(f, path, MR_OK) != MR_EINPUT) return 12;
    if (!strstr(mr_error_message(), path) || !strstr(mr_error_message(), "could not close"))
        return 13;
    if (mr_h5_unreleased() != before + 1) return 14;
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 1) return 15;
    /* a model loaded afterwards is unaffected */
    mr_model *m;
    if (mr_model_load(&m, "tests/fixtures/tiny-classify.h5") != MR_OK) return 16;
    mr_model_free(m);
    fflush(NULL);
    exit(0); /* runs the atexit teardown */
}

START_TEST(failed_close_is_an_error_and_exit_is_clean)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) _exit(failed_close_child("tests/fixtures/tiny-classify.h5"));
    int ws = 0;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert_msg(WIFEXITED(ws), "the child died of signal %d at exit",
                  WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    ck_assert_msg(WEXITSTATUS(ws) == 0, "child check %d failed", WEXITSTATUS(ws));
}
END_TEST

/* mr_h5_mem_commit writes the core driver's buffer in place: the bytes must be those
 * H5Fget_file_image copies (the way it wrote files before), for a file that grew
 * through many reallocations (a 4 MB dataset past a 1 MB hint, a chunked and
 * compressed one, groups and attributes). */
START_TEST(mem_commit_writes_the_file_image)
{
    char path[] = "/tmp/mr-h5-image-XXXXXX";
    mr_test_temp_file(path);
    hid_t f;
    ck_assert_int_eq(mr_h5_mem_create(&f, path, 0), MR_OK);
    ck_assert_int_eq(mr_h5_write_attr_string(f, "format", "image-test"), MR_OK);
    hid_t g = mr_h5_create_group(f, "cells");
    ck_assert_int_ge(g, 0);
    enum { N = 1 << 20 };
    float *v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < N; i++) v[i] = (float)(i % 977) * 0.25f - 3.0f;
    hsize_t dims[1] = {N}, chunk[1] = {4096};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(g, "plain", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_deflate(dcpl, 4);
    d = H5Dcreate2(g, "deflated", H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Gclose(g);
    free(v);
    size_t n = 0;
    unsigned char *copy = mr_h5_mem_image_copy(f, &n);
    unsigned char head[MR_H5_IMAGE_HEAD];
    const unsigned char *mem = mr_h5_mem_image_in_place(f, head);
    ck_assert_ptr_nonnull(copy);
    ck_assert_ptr_nonnull(mem);
    ck_assert_uint_gt(n, (size_t)4 << 20);
    ck_assert_msg(memcmp(copy, head, MR_H5_IMAGE_HEAD) == 0,
                  "the superblock head differs from the file image's");
    ck_assert_msg(memcmp(copy + MR_H5_IMAGE_HEAD, mem + MR_H5_IMAGE_HEAD, n - MR_H5_IMAGE_HEAD) == 0,
                  "the driver's buffer differs from the file image");
    ck_assert_int_eq(mr_h5_mem_commit(f, path), MR_OK);
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    unsigned char *disk = malloc(n + 1);
    ck_assert_ptr_nonnull(disk);
    size_t got = fread(disk, 1, n + 1, fp);
    fclose(fp);
    ck_assert_uint_eq(got, n);
    ck_assert_msg(memcmp(copy, disk, n) == 0, "the committed file differs from the file image");
    /* and it reads back */
    hid_t r;
    ck_assert_int_eq(mr_h5_open_read(&r, path), MR_OK);
    ck_assert_int_eq(mr_h5_close_read(r, path, MR_OK), MR_OK);
    free(copy);
    free(disk);
    unlink(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_io");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, tiny_classify_loads);
    tcase_add_test(tc, tiny_lm_loads_with_vocab);
    tcase_add_test(tc, missing_gate_bias_is_zero);
    tcase_add_test(tc, bad_models_are_refused);
    tcase_add_test(tc, missing_file_is_input_error);
    tcase_add_test(tc, failed_close_is_an_error_and_exit_is_clean);
    tcase_add_test(tc, mem_commit_writes_the_file_image);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
