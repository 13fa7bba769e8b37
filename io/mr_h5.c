#include "mr_h5.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h> /* sig_atomic_t */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "mr_file.h"
#include "mr_file_queue.h"
#include "mr_fs.h"

static _Atomic long unreleased; /* closes that libhdf5 failed (mr_h5.h) */

/* libhdf5 1.10 tears itself down at exit (H5_term_library, registered with atexit on its
 * first call) and closes every identifier still open: one whose close failed on a
 * corrupt file points to memory already freed (HDFFV-11052), and the teardown crashes
 * (SEGV in H5F__close_cb). So this process owns the teardown: libhdf5 registers none
 * (H5dont_atexit, before its first call), and ours runs H5close only when no identifier
 * is left open, whichever code's close failed; otherwise the OS reclaims what libhdf5
 * held (every file this tool writes is closed, or committed, before exit). Counting the
 * identifiers reads only libhdf5's table, not the objects they point to. */
static void teardown(void)
{
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0) H5close();
}

static void take_teardown(void)
{
    if (H5dont_atexit() >= 0) atexit(teardown); /* fails if libhdf5 is already initialized */
}

/* libhdf5 is built thread-safe on Debian: its error-printing setting is per thread, so
 * every entry point that may run on a worker thread calls this first. */
void mr_h5_quiet(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, take_teardown);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

long mr_h5_unreleased(void) { return unreleased; }

int mr_h5_close(hid_t id)
{
    if (id < 0) return 0;
    herr_t e;
    switch (H5Iget_type(id)) {
    case H5I_FILE: e = H5Fclose(id); break;
    case H5I_GROUP: e = H5Gclose(id); break;
    case H5I_DATASET: e = H5Dclose(id); break;
    case H5I_ATTR: e = H5Aclose(id); break;
    case H5I_DATATYPE: e = H5Tclose(id); break;
    case H5I_DATASPACE: e = H5Sclose(id); break;
    case H5I_GENPROP_LST: e = H5Pclose(id); break;
    default: e = H5Idec_ref(id) < 0 ? -1 : 0; break;
    }
    if (e >= 0) return 0;
    unreleased++;
    return -1;
}

int mr_h5_close_read(hid_t f, const char *file, int st)
{
    if (mr_h5_close(f) < 0 && st == MR_OK)
        st = mr_error_set(MR_EINPUT, "%s: libhdf5 could not close the file after reading it "
                          "(its metadata is damaged)", file);
    return st;
}

/* External links are never followed: a model or data file must hold its own data, not
 * make us open (and read, or block on) another file of the host. */
static herr_t deny_external_link(const char *parent_file, const char *parent_group,
                                 const char *child_file, const char *child_object,
                                 unsigned *acc_flags, hid_t fapl, void *op)
{
    (void)parent_file, (void)parent_group, (void)child_file, (void)child_object;
    (void)acc_flags, (void)fapl, (void)op;
    return -1;
}

/* Written before each open for reading, read by the CLI's fatal-signal handler: the
 * flag is cleared while the path is copied, so the handler never reads a half copy. */
static char last_input[4096];
static volatile sig_atomic_t last_input_set;

const char *mr_h5_last_input(void) { return last_input_set ? last_input : NULL; }

int mr_h5_open_read(hid_t *out, const char *file)
{
    mr_h5_quiet();
    last_input_set = 0;
    snprintf(last_input, sizeof last_input, "%s", file);
    last_input_set = 1;
    struct stat st;
    MR_TRY(mr_fs_check_input(file, &st));
    MR_REQUIRE(st.st_size > 0, MR_EINPUT, "%s: empty file", file);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    MR_REQUIRE(fapl >= 0, MR_ENOMEM, "out of memory");
    H5Pset_elink_cb(fapl, deny_external_link, NULL);
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    /* H5Fis_hdf5 only to word the error: asked first, it opened every file twice (the
     * summary of a grid opens each cell file several times) */
    if (f < 0) {
        MR_REQUIRE(H5Fis_hdf5(file) > 0, MR_EINPUT,
                   "%s: not an HDF5 file (or its header is damaged)", file);
        return mr_error_set(MR_EINPUT, "%s: cannot open as HDF5 (truncated or corrupt file?)",
                            file);
    }
    *out = f;
    return MR_OK;
}

/* ---- files written in memory ---- */

int mr_h5_mem_create(hid_t *out, const char *path, size_t size_hint)
{
    mr_h5_quiet();
    *out = -1;
    size_t inc = size_hint < ((size_t)1 << 20) ? (size_t)1 << 20 : size_hint;
    if (inc > ((size_t)1 << 30)) inc = (size_t)1 << 30;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
    herr_t e = fapl >= 0 && fcpl >= 0 ? H5Pset_fapl_core(fapl, inc, 0) : -1;
    if (e >= 0) e = H5Pset_obj_track_times(fcpl, 0);
    hid_t f = e >= 0 ? H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    MR_REQUIRE(f >= 0, MR_ENOMEM, "%s: cannot create the file in memory (out of memory?)", path);
    *out = f;
    return MR_OK;
}

void mr_h5_mem_discard(hid_t f)
{
    if (f >= 0) H5Fclose(f);
}

/* The core driver's own buffer, read in place: H5Fget_vfd_handle gives the address of
 * its pointer to the file's memory (libhdf5's H5FDcore.c, get_handle), which holds the
 * file's eoa bytes after a flush. NULL when libhdf5 does not give it. */
static const unsigned char *core_image(hid_t f)
{
    void *h = NULL;
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, &h) < 0 || !h) return NULL;
    return *(const unsigned char *const *)h;
}

/* The file as H5Fget_file_image would copy it, from the driver's buffer `mem` of n bytes:
 * that copy clears the superblock's file consistency flags (the "open for writing" bit
 * of the file still open), which a version 0 or 1 superblock (every file this tool
 * writes: no libver bounds are set) keeps in bytes 20-23 (HDF5 File Format
 * Specification, "Superblock Format Version 0 and 1"), not covered by a checksum. head
 * receives the first MR_H5_IMAGE_HEAD bytes, those flags cleared; 0 when the superblock
 * is not of those versions (the caller copies the image instead). */
static int superblock_head(unsigned char head[MR_H5_IMAGE_HEAD], const unsigned char *mem,
                           size_t n)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (n < MR_H5_IMAGE_HEAD || memcmp(mem, sig, sizeof sig) != 0 || mem[8] > 1) return 0;
    memcpy(head, mem, MR_H5_IMAGE_HEAD);
    memset(head + 20, 0, 4);
    return 1;
}

/* What the commit writes in place for a flushed file of n bytes: the driver's buffer
 * from byte MR_H5_IMAGE_HEAD on, its head in `head`; NULL where it copies instead. */
static const unsigned char *in_place(hid_t f, ssize_t n, unsigned char head[MR_H5_IMAGE_HEAD])
{
    const unsigned char *mem = n > 0 ? core_image(f) : NULL;
    return mem && superblock_head(head, mem, (size_t)n) ? mem : NULL;
}

/* The file's n bytes as H5Fget_file_image copies them (malloc'd), or NULL. */
static void *image_copy(hid_t f, ssize_t n)
{
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && H5Fget_file_image(f, buf, (size_t)n) != n) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* The size of the flushed file's image, or -1. */
static ssize_t flushed_size(hid_t f)
{
    return H5Fflush(f, H5F_SCOPE_LOCAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
}

int mr_h5_mem_commit(hid_t f, const char *path)
{
    mr_h5_quiet();
    ssize_t n = flushed_size(f);
    /* written from the driver's buffer: a copy (H5Fget_file_image) doubled the memory a
     * file costs while it was written: results.h5 of the 10,000-image demo grid is 1.7
     * GB, and `run` peaked at 4.7 GB of RSS assembling it */
    unsigned char head[MR_H5_IMAGE_HEAD];
    const unsigned char *mem = in_place(f, n, head);
    void *buf = mem ? NULL : image_copy(f, n);
    int st = mem ? mr_file_write2(path, head, MR_H5_IMAGE_HEAD, mem + MR_H5_IMAGE_HEAD,
                                  (size_t)n - MR_H5_IMAGE_HEAD)
             : buf ? mr_file_write(path, buf, (size_t)n)
                   : mr_error_set(MR_ENOMEM, "%s: cannot assemble the file in memory (out of memory?)", path);
    /* the file is on disk (or not) as written: a close that fails after it (libhdf5's own
     * bookkeeping of a memory file) is reported, but loses nothing */
    if (H5Fclose(f) < 0 && st == MR_OK)
        st = mr_error_set(MR_EIO, "%s: written, but libhdf5 could not close it", path);
    free(buf);
    return st;
}

int mr_h5_mem_commit_queued(hid_t f, const char *path, mr_file_queue *q)
{
    if (!q) return mr_h5_mem_commit(f, path);
    mr_h5_quiet();
    ssize_t n = flushed_size(f);
    void *buf = image_copy(f, n);
    if (H5Fclose(f) < 0 && buf) {
        free(buf);
        return mr_error_set(MR_EIO, "%s: libhdf5 could not close the file in memory", path);
    }
    if (!buf)
        return mr_error_set(MR_ENOMEM, "%s: cannot assemble the file in memory (out of memory?)",
                            path);
    return mr_file_queue_put(q, path, buf, (size_t)n); /* takes buf */
}

void *mr_h5_mem_image_copy(hid_t f, size_t *n)
{
    ssize_t m = flushed_size(f);
    void *buf = image_copy(f, m);
    *n = buf ? (size_t)m : 0;
    return buf;
}

const void *mr_h5_mem_image_in_place(hid_t f, unsigned char head[MR_H5_IMAGE_HEAD])
{
    return in_place(f, flushed_size(f), head);
}

hid_t mr_h5_create_group(hid_t loc, const char *name);

int mr_h5_make_parents(hid_t loc, const char *name)
{
    size_t n = strlen(name);
    char *buf = malloc(n + 1);
    if (!buf) return MR_ENOMEM;
    memcpy(buf, name, n + 1);
    int st = MR_OK;
    for (size_t i = 1; i < n && st == MR_OK; i++) {
        if (buf[i] != '/') continue;
        buf[i] = '\0';
        if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) {
            hid_t g = mr_h5_create_group(loc, buf);
            if (g < 0) st = MR_EIO;
            else H5Gclose(g);
        }
        buf[i] = '/';
    }
    free(buf);
    return st;
}

hid_t mr_h5_create_group(hid_t loc, const char *name)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl < 0) return -1;
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

const char *mr_h5_dims_str(char *buf, size_t cap, int rank, const hsize_t *dims)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? "," : "",
                              (unsigned long long)dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* Open attribute `name`; absence -> *found = 0 (if allowed) or an error. */
static int attr_open(hid_t loc, const char *file, const char *name, hid_t *a, int *found)
{
    htri_t ex = H5Aexists(loc, name);
    if (ex <= 0) {
        if (found) {
            *found = 0;
            *a = -1;
            return MR_OK;
        }
        return mr_error_set(MR_EINPUT, "%s: missing attribute %s", file, name);
    }
    *a = H5Aopen(loc, name, H5P_DEFAULT);
    MR_REQUIRE(*a >= 0, MR_EINPUT, "%s: cannot read attribute %s", file, name);
    if (found) *found = 1;
    return MR_OK;
}

/* Number of elements of an attribute's dataspace; -1 if not simple/scalar. */
static long long attr_npoints(hid_t a)
{
    hid_t sp = H5Aget_space(a);
    if (sp < 0) return -1;
    H5S_class_t c = H5Sget_simple_extent_type(sp);
    long long n = (c == H5S_SCALAR || c == H5S_SIMPLE) ? (long long)H5Sget_simple_extent_npoints(sp) : -1;
    if (c == H5S_SIMPLE && H5Sget_simple_extent_ndims(sp) > 1) n = -1;
    H5Sclose(sp);
    return n;
}

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    default: return "other";
    }
}

static int attr_numeric(hid_t loc, const char *file, const char *name, int want_int,
                        long long *iout, double *dout, int *found)
{
    hid_t a = -1;
    MR_TRY(attr_open(loc, file, name, &a, found));
    if (a < 0) return MR_OK;
    int st = MR_OK;
    hid_t t = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(t);
    long long n = attr_npoints(a);
    if (c != H5T_INTEGER && (want_int || c != H5T_FLOAT))
        st = mr_error_set(MR_EINPUT, "%s: attribute %s has type %s, expected %s", file, name,
                          class_name(c), want_int ? "integer" : "number");
    else if (n != 1)
        st = mr_error_set(MR_EINPUT, "%s: attribute %s must be a single value", file, name);
    else if (want_int) {
        if (H5Aread(a, H5T_NATIVE_LLONG, iout) < 0)
            st = mr_error_set(MR_EINPUT, "%s: cannot read attribute %s", file, name);
    } else if (H5Aread(a, H5T_NATIVE_DOUBLE, dout) < 0)
        st = mr_error_set(MR_EINPUT, "%s: cannot read attribute %s", file, name);
    if (st == MR_OK && !want_int && !isfinite(*dout))
        st = mr_error_set(MR_EINPUT, "%s: attribute %s is not finite", file, name);
    H5Tclose(t);
    mr_h5_close(a);
    return st;
}

int mr_h5_attr_int(hid_t loc, const char *file, const char *name, long long *out, int *found)
{
    return attr_numeric(loc, file, name, 1, out, NULL, found);
}

int mr_h5_attr_double(hid_t loc, const char *file, const char *name, double *out, int *found)
{
    return attr_numeric(loc, file, name, 0, NULL, out, found);
}

int mr_h5_attr_string(hid_t loc, const char *file, const char *name, char *buf, size_t cap,
                      int *found)
{
    hid_t a = -1;
    MR_TRY(attr_open(loc, file, name, &a, found));
    if (a < 0) return MR_OK;
    int st = MR_OK;
    hid_t t = H5Aget_type(a);
    hid_t mt = -1;
    if (H5Tget_class(t) != H5T_STRING || attr_npoints(a) != 1) {
        st = mr_error_set(MR_EINPUT, "%s: attribute %s must be a single string", file, name);
    } else if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) < 0 || !s)
            st = mr_error_set(MR_EINPUT, "%s: cannot read attribute %s", file, name);
        else if (strlen(s) >= cap)
            st = mr_error_set(MR_EINPUT, "%s: attribute %s is longer than %zu characters", file,
                              name, cap - 1);
        else
            strcpy(buf, s);
        if (s) H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(t);
        if (sz == 0 || sz >= cap) {
            st = mr_error_set(MR_EINPUT, "%s: attribute %s is longer than %zu characters", file,
                              name, cap - 1);
        } else {
            mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            memset(buf, 0, cap);
            if (H5Aread(a, mt, buf) < 0)
                st = mr_error_set(MR_EINPUT, "%s: cannot read attribute %s", file, name);
        }
    }
    if (mt >= 0) H5Tclose(mt);
    H5Tclose(t);
    mr_h5_close(a);
    return st;
}

int mr_h5_attr_int_array(hid_t loc, const char *file, const char *name, int max_n,
                         long long **out, int *n)
{
    *out = NULL;
    *n = 0;
    hid_t a = -1;
    MR_TRY(attr_open(loc, file, name, &a, NULL));
    int st = MR_OK;
    hid_t t = H5Aget_type(a);
    long long np = attr_npoints(a);
    if (H5Tget_class(t) != H5T_INTEGER)
        st = mr_error_set(MR_EINPUT, "%s: attribute %s has type %s, expected integer array",
                          file, name, class_name(H5Tget_class(t)));
    else if (np < 0 || np > max_n)
        st = mr_error_set(MR_EINPUT, "%s: attribute %s has %lld entries (at most %d allowed)",
                          file, name, np, max_n);
    else {
        *out = malloc(((size_t)np + 1) * sizeof **out);
        if (!*out)
            st = mr_error_set(MR_ENOMEM, "out of memory");
        else if (np > 0 && H5Aread(a, H5T_NATIVE_LLONG, *out) < 0)
            st = mr_error_set(MR_EINPUT, "%s: cannot read attribute %s", file, name);
        *n = (int)np;
    }
    if (st != MR_OK) {
        free(*out);
        *out = NULL;
    }
    H5Tclose(t);
    mr_h5_close(a);
    return st;
}

/* Type of the link `name` in `loc` (-1 if it cannot be read). */
static int link_type(hid_t loc, const char *name)
{
    H5L_info_t li;
    return H5Lget_info(loc, name, &li, H5P_DEFAULT) >= 0 ? (int)li.type : -1;
}

int mr_h5_find(hid_t f, const char *file, const char *path, int *found)
{
    /* walk the path one component at a time: H5Lexists fails, rather than answering
     * "no", when an intermediate group is missing; and every component must be a plain
     * (hard) link: the format keeps its data in the file itself */
    *found = 0;
    size_t len = strlen(path);
    MR_REQUIRE(len > 0 && path[0] == '/', MR_EINPUT, "%s: %s: not an absolute HDF5 path", file, path);
    char *buf = malloc(len + 1);
    MR_REQUIRE(buf, MR_ENOMEM, "out of memory");
    memcpy(buf, path, len + 1);
    int st = MR_OK, present = 1;
    for (size_t i = 1; i <= len && present && st == MR_OK; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char save = buf[i];
        buf[i] = '\0';
        htri_t ex = H5Lexists(f, buf, H5P_DEFAULT);
        if (ex <= 0) {
            present = 0;
        } else if (link_type(f, buf) != H5L_TYPE_HARD) {
            st = mr_error_set(MR_EINPUT,
                              "%s: %s is %s link: the format stores every object in the file "
                              "itself, not behind links",
                              file, buf, link_type(f, buf) == H5L_TYPE_SOFT ? "a soft" : "an external");
        } else if (H5Oexists_by_name(f, buf, H5P_DEFAULT) <= 0) {
            present = 0;
        }
        buf[i] = save;
    }
    free(buf);
    if (st == MR_OK) *found = present;
    return st;
}

int mr_h5_exists(hid_t f, const char *path)
{
    int found = 0;
    return mr_h5_find(f, "", path, &found) == MR_OK && found;
}

/* Raw data must live in this file: external storage (H5Pset_external) would read any
 * host file (or zeros when it is short), a virtual dataset maps other files. */
static int check_in_file(hid_t pl, const char *file, const char *path)
{
    H5D_layout_t lay = H5Pget_layout(pl);
    MR_REQUIRE(lay != H5D_VIRTUAL, MR_EINPUT,
               "%s: %s: a virtual dataset (its data lives in other files): not supported", file, path);
    MR_REQUIRE(H5Pget_external_count(pl) == 0, MR_EINPUT,
               "%s: %s: stored in external files (H5Pset_external): the data must be inside "
               "the file", file, path);
    MR_REQUIRE(lay == H5D_CONTIGUOUS || lay == H5D_CHUNKED || lay == H5D_COMPACT, MR_EINPUT,
               "%s: %s: unsupported storage layout", file, path);
    return MR_OK;
}

/* A dataset declared but never (or only partly) written reads back as fill values:
 * weights or labels that silently read as 0, or, from a 2 KB file, gigabytes of samples
 * allocated and filled before any other check. Refuse it before any caller sizes an
 * allocation from the shape: no storage at all, or (chunked) fewer chunks than the
 * shape needs. libhdf5 1.10 answers -1 to H5Dget_num_chunks with H5S_ALL: pass the
 * dataset's own dataspace (everything selected). */
static int check_written(hid_t d, hid_t sp, hid_t pl, const mr_h5_info *info, const char *file,
                         const char *path)
{
    if (H5Sget_simple_extent_npoints(sp) <= 0) return MR_OK;
    MR_REQUIRE(H5Dget_storage_size(d) > 0, MR_EINPUT,
               "%s: %s: declared but no data was ever written to it", file, path);
    if (H5Pget_layout(pl) != H5D_CHUNKED) return MR_OK;
    hsize_t chunk[MR_H5_MAX_RANK], have = 0, want = 1;
    MR_REQUIRE(H5Pget_chunk(pl, MR_H5_MAX_RANK, chunk) == info->rank &&
                   H5Dget_num_chunks(d, sp, &have) >= 0,
               MR_EINPUT, "%s: %s: cannot read its chunk index (corrupt file?)", file, path);
    for (int i = 0; i < info->rank; i++) {
        hsize_t n = chunk[i] ? (info->dims[i] + chunk[i] - 1) / chunk[i] : 1;
        want = n && want > UINT64_MAX / n ? UINT64_MAX : want * n; /* saturate */
    }
    MR_REQUIRE(have >= want, MR_EINPUT,
               "%s: %s: only %llu of its %llu chunks were ever written (the rest would read as "
               "fill values)",
               file, path, (unsigned long long)have, (unsigned long long)want);
    return MR_OK;
}

int mr_h5_dataset_info(hid_t f, const char *file, const char *path, mr_h5_info *info)
{
    mr_h5_quiet();
    int found;
    MR_TRY(mr_h5_find(f, file, path, &found));
    MR_REQUIRE(found, MR_EINPUT, "%s: %s: missing dataset", file, path);
    MR_REQUIRE(H5Oexists_by_name(f, path, H5P_DEFAULT) > 0, MR_EINPUT, "%s: %s: missing dataset",
               file, path);
    H5O_info_t oi;
    MR_REQUIRE(H5Oget_info_by_name(f, path, &oi, H5P_DEFAULT) >= 0 && oi.type == H5O_TYPE_DATASET,
               MR_EINPUT, "%s: %s: not a dataset", file, path);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    MR_REQUIRE(d >= 0, MR_EINPUT, "%s: %s: not a readable dataset", file, path);
    hid_t sp = H5Dget_space(d), t = H5Dget_type(d), pl = H5Dget_create_plist(d);
    int st = MR_OK;
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank < 0 || rank > MR_H5_MAX_RANK || t < 0 || pl < 0) {
        st = mr_error_set(MR_EINPUT, "%s: %s: unsupported dataspace", file, path);
    } else {
        info->rank = rank;
        H5Sget_simple_extent_dims(sp, info->dims, NULL);
        info->cls = H5Tget_class(t);
        info->type_size = H5Tget_size(t);
        info->is_signed = info->cls == H5T_INTEGER ? H5Tget_sign(t) == H5T_SGN_2 : 0;
        st = check_in_file(pl, file, path);
        if (st == MR_OK) st = check_written(d, sp, pl, info, file, path);
    }
    if (pl >= 0) H5Pclose(pl);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    mr_h5_close(d);
    return st;
}

int mr_h5_expect_float(hid_t f, const char *file, const char *path, int rank,
                       const hsize_t *dims)
{
    mr_h5_info in;
    MR_TRY(mr_h5_dataset_info(f, file, path, &in));
    MR_REQUIRE(in.cls == H5T_FLOAT && in.type_size == 4, MR_EINPUT,
               "%s: %s: dtype is %s%zu, expected float32", file, path, class_name(in.cls),
               in.type_size * 8);
    int same = in.rank == rank;
    for (int i = 0; same && i < rank; i++) same = in.dims[i] == dims[i];
    if (!same) {
        char got[128], want[128];
        return mr_error_set(MR_EINPUT, "%s: %s: shape %s, expected %s", file, path,
                            mr_h5_dims_str(got, sizeof got, in.rank, in.dims),
                            mr_h5_dims_str(want, sizeof want, rank, dims));
    }
    return MR_OK;
}

static int read_all(hid_t f, const char *file, const char *path, hid_t memtype, void *dst)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    MR_REQUIRE(d >= 0, MR_EINPUT, "%s: %s: not a readable dataset", file, path);
    herr_t e = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
    mr_h5_close(d);
    MR_REQUIRE(e >= 0, MR_EINPUT, "%s: %s: read failed (truncated or corrupt file?)", file,
               path);
    return MR_OK;
}

int mr_h5_read_float(hid_t f, const char *file, const char *path, float *dst, size_t n)
{
    MR_TRY(read_all(f, file, path, H5T_NATIVE_FLOAT, dst));
    for (size_t i = 0; i < n; i++)
        MR_REQUIRE(isfinite(dst[i]), MR_EINPUT, "%s: %s: non-finite value %g at flat index %zu",
                   file, path, (double)dst[i], i);
    return MR_OK;
}

int mr_h5_read_int32(hid_t f, const char *file, const char *path, int32_t *dst, size_t n)
{
    (void)n;
    return read_all(f, file, path, H5T_NATIVE_INT32, dst);
}

int mr_h5_read_uint8(hid_t f, const char *file, const char *path, uint8_t *dst, size_t n)
{
    (void)n;
    return read_all(f, file, path, H5T_NATIVE_UINT8, dst);
}

int mr_h5_read_f64(hid_t f, const char *file, const char *path, double *dst, size_t n)
{
    mr_h5_info in;
    MR_TRY(mr_h5_dataset_info(f, file, path, &in));
    size_t got = 1;
    for (int i = 0; i < in.rank; i++) got *= (size_t)in.dims[i];
    MR_REQUIRE(in.cls == H5T_FLOAT || in.cls == H5T_INTEGER, MR_EINPUT,
               "%s: %s: not a numeric dataset", file, path);
    MR_REQUIRE(got == n, MR_EINPUT, "%s: %s: %zu values, expected %zu", file, path, got, n);
    return read_all(f, file, path, H5T_NATIVE_DOUBLE, dst);
}

hid_t mr_h5_create_dataset(hid_t loc, const char *name, hid_t ftype, int rank,
                           const hsize_t *dims, hid_t dcpl)
{
    /* no object records a modification time: the same content gives the same bytes */
    hid_t pl = dcpl == H5P_DEFAULT ? H5Pcreate(H5P_DATASET_CREATE) : H5Pcopy(dcpl);
    herr_t e = pl >= 0 ? H5Pset_obj_track_times(pl, 0) : -1;
    hid_t sp = e >= 0 ? H5Screate_simple(rank, dims, NULL) : -1;
    /* "a/b/c": the missing groups a and a/b are made first, without times either */
    int ok = sp >= 0 && mr_h5_make_parents(loc, name) == MR_OK;
    hid_t ds = ok ? H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (pl >= 0) H5Pclose(pl);
    return ds;
}

int mr_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                        const hsize_t *dims, const void *data, hid_t dcpl)
{
    hid_t ds = mr_h5_create_dataset(loc, name, ftype, rank, dims, dcpl);
    herr_t e = ds >= 0 ? H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) e = -1;
    return e < 0 ? mr_error_set(MR_EIO, "cannot write dataset %s", name) : MR_OK;
}

int mr_h5_write_f64(hid_t loc, const char *name, const double *x, int rank, hsize_t d0,
                    hsize_t d1)
{
    hsize_t dims[2] = {d0, d1};
    return mr_h5_write_dataset(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rank, dims, x,
                               H5P_DEFAULT);
}

static int write_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, mem_type, value) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? mr_error_set(MR_EIO, "cannot write attribute %s", name) : MR_OK;
}

int mr_h5_write_attr_string(hid_t loc, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    int st = write_attr(loc, name, t, t, value);
    H5Tclose(t);
    return st;
}

int mr_h5_write_attr_int(hid_t loc, const char *name, long long value)
{
    return write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &value);
}

int mr_h5_write_attr_double(hid_t loc, const char *name, double value)
{
    return write_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}
