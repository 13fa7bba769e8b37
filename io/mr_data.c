#include "mr_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_h5.h"

void mr_dataset_free(mr_dataset *d)
{
    if (!d) return;
    free(d->images);
    free(d->labels);
    free(d->tokens);
    free(d->domains);
    free(d);
}

/* "X-images-idx3-ubyte[.gz]" -> "X-labels-idx1-ubyte[.gz]" */
static int idx_labels_path(char *out, size_t cap, const char *images)
{
    const char *key = "images-idx3-ubyte";
    const char *p = strstr(images, key);
    MR_REQUIRE(p, MR_EINPUT,
               "%s: an IDX images file must be named *images-idx3-ubyte[.gz] so that its "
               "labels file can be found beside it",
               images);
    int n = snprintf(out, cap, "%.*slabels-idx1-ubyte%s", (int)(p - images), images,
                     p + strlen(key));
    MR_REQUIRE(n > 0 && (size_t)n < cap, MR_EINPUT, "%s: path too long", images);
    return MR_OK;
}

static int is_idx_name(const char *path);

int mr_dataset_files(const char *path, char **labels)
{
    *labels = NULL;
    if (!is_idx_name(path)) return MR_OK;
    size_t cap = strlen(path) + 16;
    char *l = malloc(cap);
    if (!l) return mr_error_set(MR_ENOMEM, "out of memory");
    int st = idx_labels_path(l, cap, path);
    if (st != MR_OK) {
        free(l);
        return st;
    }
    *labels = l;
    return MR_OK;
}

static int load_idx(mr_dataset *d, const char *path, long limit)
{
    char lpath[1100];
    MR_TRY(idx_labels_path(lpath, sizeof lpath, path));
    uint8_t *lab = NULL;
    int n_img, n_lab;
    MR_TRY(mr_idx_read_images(path, limit, &d->images, &n_img, &d->h, &d->w));
    /* name the images file the user gave as well as its labels file */
    int st = mr_idx_read_labels(lpath, limit, &lab, &n_lab);
    if (st != MR_OK) return mr_error_prefix(st, "labels of %s", path);
    if (n_lab != n_img) {
        free(lab);
        return mr_error_set(MR_EINPUT, "%s holds %d labels but %s holds %d images", lpath, n_lab,
                            path, n_img);
    }
    d->labels = malloc((size_t)n_lab * sizeof *d->labels);
    if (!d->labels) {
        free(lab);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n_lab; i++) d->labels[i] = lab[i];
    free(lab);
    d->kind = MR_DATA_IMAGES;
    d->n = n_img;
    d->c = 1;
    return MR_OK;
}

/* HDF5 clamps integers that do not fit the memory type (an int64 label 2^40 would read
 * as 2147483647): abort the read instead, so the message can say what is wrong. */
static H5T_conv_ret_t refuse_overflow(H5T_conv_except_t e, hid_t src, hid_t dst, void *src_buf,
                                      void *dst_buf, void *overflow)
{
    (void)src, (void)dst, (void)src_buf, (void)dst_buf;
    if (e != H5T_CONV_EXCEPT_RANGE_HI && e != H5T_CONV_EXCEPT_RANGE_LOW) return H5T_CONV_UNHANDLED;
    *(int *)overflow = 1;
    return H5T_CONV_ABORT;
}

/* Read the first `rows` rows of a dataset of the given rank. */
static int read_rows(hid_t f, const char *file, const char *path, hid_t memtype, void *dst,
                     int rank, hsize_t rows)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    MR_REQUIRE(ds >= 0, MR_EINPUT, "%s: %s: not a readable dataset", file, path);
    hid_t fs = H5Dget_space(ds);
    hsize_t start[MR_H5_MAX_RANK] = {0}, count[MR_H5_MAX_RANK];
    H5Sget_simple_extent_dims(fs, count, NULL);
    count[0] = rows;
    int overflow = 0;
    hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
    herr_t e = xfer >= 0 ? H5Pset_type_conv_cb(xfer, refuse_overflow, &overflow) : -1;
    if (e >= 0) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    if (e >= 0) e = H5Dread(ds, memtype, ms, fs, xfer, dst);
    H5Sclose(ms);
    if (xfer >= 0) H5Pclose(xfer);
    H5Sclose(fs);
    mr_h5_close(ds);
    MR_REQUIRE(!overflow, MR_EINPUT, "%s: %s: holds a value outside the int32 range", file, path);
    MR_REQUIRE(e >= 0, MR_EINPUT, "%s: %s: read failed (truncated or corrupt file?)", file, path);
    return MR_OK;
}

static int checked_bytes(const char *file, const char *path, const mr_h5_info *in, size_t elem,
                         hsize_t rows, size_t *bytes)
{
    /* sample counts are int; 2^31 rows would wrap */
    MR_REQUIRE(in->dims[0] <= (hsize_t)MR_DATA_MAX_SAMPLES, MR_EINPUT,
               "%s: %s: implausible number of samples %llu (at most %ld)", file, path,
               (unsigned long long)in->dims[0], MR_DATA_MAX_SAMPLES);
    size_t n = (size_t)rows * elem;
    for (int i = 1; i < in->rank; i++) {
        MR_REQUIRE(in->dims[i] > 0 && in->dims[i] < ((hsize_t)1 << 31), MR_EINPUT,
                   "%s: %s: implausible dimension %llu", file, path,
                   (unsigned long long)in->dims[i]);
        n *= (size_t)in->dims[i];
        MR_REQUIRE(n <= MR_DATA_MAX_BYTES, MR_EINPUT, "%s: %s: too large", file, path);
    }
    *bytes = n;
    return MR_OK;
}

/* The optional /domains [N] (integer, >= 0): which domain each sample comes from
 * (docs/config.md "Data"; domain specialization, metrics/mr_routing_struct.h). */
static int load_domains(mr_dataset *d, hid_t f, const char *file, hsize_t total)
{
    int has = 0;
    MR_TRY(mr_h5_find(f, file, "/domains", &has));
    if (!has) return MR_OK;
    mr_h5_info di;
    MR_TRY(mr_h5_dataset_info(f, file, "/domains", &di));
    MR_REQUIRE(di.cls == H5T_INTEGER && di.rank == 1 && di.dims[0] == total, MR_EINPUT,
               "%s: /domains: expected an integer array of %llu domains, one per sample",
               file, (unsigned long long)total);
    d->domains = malloc((size_t)d->n * sizeof *d->domains + 1);
    MR_REQUIRE(d->domains, MR_ENOMEM, "out of memory reading %s", file);
    MR_TRY(read_rows(f, file, "/domains", H5T_NATIVE_INT32, d->domains, 1, (hsize_t)d->n));
    for (int i = 0; i < d->n; i++) {
        MR_REQUIRE(d->domains[i] >= 0 && d->domains[i] < MR_DATA_MAX_DOMAINS, MR_EINPUT,
                   "%s: /domains[%d] = %d is outside 0..%d", file, i, d->domains[i],
                   MR_DATA_MAX_DOMAINS - 1);
        d->n_domains = d->domains[i] + 1 > d->n_domains ? d->domains[i] + 1 : d->n_domains;
    }
    return MR_OK;
}

static int load_h5(mr_dataset *d, const char *file, long limit)
{
    hid_t f;
    MR_TRY(mr_h5_open_read(&f, file));
    int has_tokens = 0, has_images = 0;
    int st = mr_h5_find(f, file, "/tokens", &has_tokens);
    if (st == MR_OK && !has_tokens) st = mr_h5_find(f, file, "/images", &has_images);
    mr_h5_info in;
    if (st != MR_OK) {
        /* a link in place of the data: named by mr_h5_find */
    } else if (has_tokens) {
        st = mr_h5_dataset_info(f, file, "/tokens", &in);
        if (st == MR_OK && (in.cls != H5T_INTEGER || in.rank != 2 || in.dims[1] < 2))
            st = mr_error_set(MR_EINPUT, "%s: /tokens: expected an integer array [N, T+1], T >= 1",
                              file);
        hsize_t rows = st == MR_OK && limit > 0 && (hsize_t)limit < in.dims[0] ? (hsize_t)limit
                                                                                 : in.dims[0];
        size_t bytes = 0;
        if (st == MR_OK) st = checked_bytes(file, "/tokens", &in, sizeof(int32_t), rows, &bytes);
        if (st == MR_OK && rows == 0) st = mr_error_set(MR_EINPUT, "%s: /tokens is empty", file);
        if (st == MR_OK && !(d->tokens = malloc(bytes)))
            st = mr_error_set(MR_ENOMEM, "out of memory reading %s", file);
        if (st == MR_OK) st = read_rows(f, file, "/tokens", H5T_NATIVE_INT32, d->tokens, 2, rows);
        d->kind = MR_DATA_TOKENS;
        d->n = (int)rows;
        d->cols = st == MR_OK ? (int)in.dims[1] : 0;
    } else if (has_images) {
        st = mr_h5_dataset_info(f, file, "/images", &in);
        if (st == MR_OK && (in.cls != H5T_INTEGER || in.type_size != 1 ||
                            (in.rank != 3 && in.rank != 4)))
            st = mr_error_set(MR_EINPUT, "%s: /images: expected uint8 [N, H, W, C] or [N, H, W]",
                              file);
        hsize_t rows = st == MR_OK && limit > 0 && (hsize_t)limit < in.dims[0] ? (hsize_t)limit
                                                                                 : in.dims[0];
        size_t bytes = 0;
        if (st == MR_OK) st = checked_bytes(file, "/images", &in, 1, rows, &bytes);
        if (st == MR_OK && rows == 0) st = mr_error_set(MR_EINPUT, "%s: /images is empty", file);
        mr_h5_info li;
        if (st == MR_OK) st = mr_h5_dataset_info(f, file, "/labels", &li);
        if (st == MR_OK && (li.cls != H5T_INTEGER || li.rank != 1 || li.dims[0] != in.dims[0]))
            st = mr_error_set(MR_EINPUT, "%s: /labels: expected an integer array of %llu labels",
                              file, (unsigned long long)in.dims[0]);
        if (st == MR_OK && (!(d->images = malloc(bytes)) ||
                            !(d->labels = malloc((size_t)rows * sizeof(int32_t)))))
            st = mr_error_set(MR_ENOMEM, "out of memory reading %s", file);
        if (st == MR_OK)
            st = read_rows(f, file, "/images", H5T_NATIVE_UINT8, d->images, in.rank, rows);
        if (st == MR_OK) st = read_rows(f, file, "/labels", H5T_NATIVE_INT32, d->labels, 1, rows);
        d->kind = MR_DATA_IMAGES;
        d->n = (int)rows;
        if (st == MR_OK) {
            d->h = (int)in.dims[1];
            d->w = (int)in.dims[2];
            d->c = in.rank == 4 ? (int)in.dims[3] : 1;
        }
    } else {
        st = mr_error_set(MR_EINPUT, "%s: holds neither /images nor /tokens", file);
    }
    if (st == MR_OK) st = load_domains(d, f, file, in.dims[0]);
    return mr_h5_close_read(f, file, st);
}

static int is_idx_name(const char *path) { return strstr(path, "idx3-ubyte") != NULL; }

int mr_dataset_load(mr_dataset **out, const char *path, long limit)
{
    *out = NULL;
    mr_dataset *d = calloc(1, sizeof *d);
    if (!d) return mr_error_set(MR_ENOMEM, "out of memory");
    snprintf(d->path, sizeof d->path, "%s", path);
    int st = is_idx_name(path) ? load_idx(d, path, limit) : load_h5(d, path, limit);
    if (st != MR_OK) {
        mr_dataset_free(d);
        return st;
    }
    *out = d;
    return MR_OK;
}

int mr_dataset_check_model(const mr_dataset *d, const mr_model *m)
{
    const mr_config *c = &m->cfg;
    if (c->task == MR_TASK_CLASSIFY) {
        MR_REQUIRE(d->kind == MR_DATA_IMAGES, MR_EINPUT,
                   "%s holds token sequences but %s is an image classifier", d->path, m->path);
        MR_REQUIRE(d->h == c->image_h && d->w == c->image_w && d->c == c->channels, MR_EINPUT,
                   "%s: images are %dx%dx%d but %s expects %dx%dx%d", d->path, d->h, d->w, d->c,
                   m->path, c->image_h, c->image_w, c->channels);
        for (int i = 0; i < d->n; i++)
            MR_REQUIRE(d->labels[i] >= 0 && d->labels[i] < c->n_classes, MR_EINPUT,
                       "%s: /labels[%d] = %d is outside 0..%d", d->path, i, d->labels[i],
                       c->n_classes - 1);
    } else {
        MR_REQUIRE(d->kind == MR_DATA_TOKENS, MR_EINPUT,
                   "%s holds images but %s is a language model", d->path, m->path);
        MR_REQUIRE(d->cols - 1 <= c->max_seq_len, MR_EINPUT,
                   "%s: sequences of %d tokens exceed max_seq_len = %d of %s", d->path,
                   d->cols - 1, c->max_seq_len, m->path);
        size_t n = (size_t)d->n * d->cols;
        for (size_t i = 0; i < n; i++)
            MR_REQUIRE(d->tokens[i] >= 0 && d->tokens[i] < c->vocab_size, MR_EINPUT,
                       "%s: /tokens[%zu][%zu] = %d is outside the vocabulary 0..%d", d->path,
                       i / d->cols, i % d->cols, d->tokens[i], c->vocab_size - 1);
    }
    return MR_OK;
}
