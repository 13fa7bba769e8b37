#include "mr_safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "mr_fs.h"
#include "mr_json.h"

/* Tensor bytes are little-endian (the format's rule); float32 is read in place. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mr_safetensors.c reads little-endian float32 in place: port mr_st_read first"
#endif

static const char *const dtype_names[] = {"F32", "F16", "BF16"};
static const int dtype_bytes[] = {4, 2, 2};

const char *mr_st_dtype_name(int dtype)
{
    return dtype >= 0 && dtype <= MR_ST_BF16 ? dtype_names[dtype] : "?";
}

const char *mr_st_shape_str(char *buf, size_t cap, const mr_st_tensor *t)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

float mr_st_bf16_to_f32(uint16_t h)
{
    /* bfloat16 is the upper half of a float32 */
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float mr_st_f16_to_f32(uint16_t h)
{
    /* IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; every value is a
     * float32 value (the subnormals are man * 2^-24, an exact product) */
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (e == 0) {
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((e + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void mr_st_close(mr_st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->fd >= 0) close(f->fd);
    free(f);
}

/* A non-negative integer JSON number (exact in a double: <= 2^53). */
static int json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0.0 || d > 9007199254740992.0 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int dtype_of(const char *s)
{
    for (int i = 0; i <= MR_ST_BF16; i++)
        if (strcmp(s, dtype_names[i]) == 0) return i;
    return -1;
}

/* The members of one tensor entry into t (name already set). */
static int parse_entry(mr_st_tensor *t, const cJSON *e, const char *path, uint64_t data_size)
{
    const char *nm = t->name;
    MR_REQUIRE(cJSON_IsObject(e), MR_EINPUT, "%s: tensor %s: header entry is not an object",
               path, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    MR_REQUIRE(cJSON_IsString(dt) && dt->valuestring, MR_EINPUT,
               "%s: tensor %s: missing or non-string dtype", path, nm);
    t->dtype = dtype_of(dt->valuestring);
    MR_REQUIRE(t->dtype >= 0, MR_EINPUT,
               "%s: tensor %s: dtype %.32s is not supported (F32, F16, BF16)", path, nm,
               dt->valuestring);
    MR_REQUIRE(cJSON_IsArray(sh), MR_EINPUT, "%s: tensor %s: missing or non-array shape", path,
               nm);
    int rank = cJSON_GetArraySize(sh);
    MR_REQUIRE(rank <= MR_ST_MAX_RANK, MR_EINPUT, "%s: tensor %s: rank %d exceeds %d", path, nm,
               rank, MR_ST_MAX_RANK);
    t->rank = rank;
    t->numel = 1;
    const cJSON *v;
    int i = 0;
    cJSON_ArrayForEach(v, sh)
    {
        uint64_t s;
        MR_REQUIRE(json_uint(v, &s), MR_EINPUT,
                   "%s: tensor %s: shape[%d] is not a non-negative integer", path, nm, i);
        /* each factor and the product stay below 2^40 elements: no overflow below */
        MR_REQUIRE(s < ((uint64_t)1 << 40) && (s == 0 || t->numel <= ((uint64_t)1 << 40) / s),
                   MR_EINPUT, "%s: tensor %s: shape has more than 2^40 elements", path, nm);
        t->shape[i++] = (int64_t)s;
        t->numel *= s;
    }
    MR_REQUIRE(cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2, MR_EINPUT,
               "%s: tensor %s: data_offsets must be [begin, end]", path, nm);
    MR_REQUIRE(json_uint(cJSON_GetArrayItem(off, 0), &t->begin) &&
                   json_uint(cJSON_GetArrayItem(off, 1), &t->end),
               MR_EINPUT, "%s: tensor %s: data_offsets are not non-negative integers", path, nm);
    MR_REQUIRE(t->begin <= t->end && t->end <= data_size, MR_EINPUT,
               "%s: tensor %s: data_offsets [%llu, %llu] outside the data section of %llu bytes",
               path, nm, (unsigned long long)t->begin, (unsigned long long)t->end,
               (unsigned long long)data_size);
    uint64_t bytes = t->numel * (uint64_t)dtype_bytes[t->dtype];
    char sbuf[160];
    MR_REQUIRE(t->end - t->begin == bytes, MR_EINPUT,
               "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, %s %s needs %llu", path,
               nm, (unsigned long long)t->begin, (unsigned long long)t->end,
               (unsigned long long)(t->end - t->begin), dt->valuestring,
               mr_st_shape_str(sbuf, sizeof sbuf, t), (unsigned long long)bytes);
    return MR_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const mr_st_tensor *)a)->name, ((const mr_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const mr_st_tensor *x = *(const mr_st_tensor *const *)a, *y = *(const mr_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Names unique, tensors' byte ranges pairwise disjoint (empty ones take no room). */
static int check_layout(mr_st_file *f)
{
    qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_name);
    for (int i = 1; i < f->n; i++)
        MR_REQUIRE(strcmp(f->tensors[i - 1].name, f->tensors[i].name) != 0, MR_EINPUT,
                   "%s: tensor %s appears twice in the header", f->path, f->tensors[i].name);
    const mr_st_tensor **by = malloc(((size_t)f->n + 1) * sizeof *by);
    if (!by) return mr_error_set(MR_ENOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < f->n; i++)
        if (f->tensors[i].end > f->tensors[i].begin) by[m++] = &f->tensors[i];
    qsort(by, (size_t)m, sizeof *by, cmp_begin);
    int st = MR_OK;
    for (int i = 1; i < m && st == MR_OK; i++)
        if (by[i]->begin < by[i - 1]->end)
            st = mr_error_set(MR_EINPUT,
                              "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", f->path,
                              by[i - 1]->name, (unsigned long long)by[i - 1]->begin,
                              (unsigned long long)by[i - 1]->end, by[i]->name,
                              (unsigned long long)by[i]->begin, (unsigned long long)by[i]->end);
    free(by);
    return st;
}

static int parse_root(mr_st_file *f, const cJSON *root)
{
    MR_REQUIRE(cJSON_IsObject(root), MR_EINPUT, "%s: the header is not a JSON object", f->path);
    int count = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)count + 1, sizeof *f->tensors);
    if (!f->tensors) return mr_error_set(MR_ENOMEM, "out of memory");
    int meta = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        const char *nm = e->string;
        MR_REQUIRE(nm && nm[0], MR_EINPUT, "%s: a header entry has an empty name", f->path);
        if (strcmp(nm, "__metadata__") == 0) {
            MR_REQUIRE(!meta++ && cJSON_IsObject(e), MR_EINPUT,
                       "%s: __metadata__ must be one object of strings", f->path);
            const cJSON *v;
            cJSON_ArrayForEach(v, e)
                MR_REQUIRE(cJSON_IsString(v), MR_EINPUT,
                           "%s: __metadata__ must be one object of strings", f->path);
            continue;
        }
        MR_REQUIRE(strlen(nm) < MR_ST_MAX_NAME, MR_EINPUT,
                   "%s: a tensor name is longer than %d bytes", f->path, MR_ST_MAX_NAME - 1);
        mr_st_tensor *t = &f->tensors[f->n];
        if (!(t->name = strdup(nm))) return mr_error_set(MR_ENOMEM, "out of memory");
        f->n++;
        MR_TRY(parse_entry(t, e, f->path, f->data_size));
    }
    return check_layout(f);
}

int mr_st_parse_header(mr_st_file **out, const char *path, const char *json, size_t len,
                       uint64_t data_size)
{
    *out = NULL;
    mr_st_file *f = calloc(1, sizeof *f);
    if (!f) return mr_error_set(MR_ENOMEM, "out of memory");
    f->fd = -1;
    snprintf(f->path, sizeof f->path, "%s", path);
    f->data_size = data_size;
    cJSON *root = cJSON_ParseWithLength(json, len);
    /* a key given twice (a tensor, or a field of one) first: cJSON would read the first
     * and the safetensors library the last (io/mr_json.h) */
    int st = root ? mr_json_check_unique_keys(root, path)
                  : mr_error_set(MR_EINPUT, "%s: the header is not valid JSON", path);
    if (st == MR_OK) st = parse_root(f, root);
    cJSON_Delete(root);
    if (st != MR_OK) {
        mr_st_close(f);
        return st;
    }
    *out = f;
    return MR_OK;
}

/* Read exactly n bytes at off; MR_EINPUT if the file ends first. */
static int read_at(int fd, void *buf, size_t n, uint64_t off, const char *path, const char *what)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        MR_REQUIRE(r >= 0, MR_EIO, "%s: %s: read error: %s", path, what, strerror(errno));
        MR_REQUIRE(r > 0, MR_EINPUT, "%s: %s: the file ends early (truncated)", path, what);
        got += (size_t)r;
    }
    return MR_OK;
}

int mr_st_open(mr_st_file **out, const char *path)
{
    *out = NULL;
    /* a regular file only, opened without blocking (a FIFO would wait for a writer) */
    int fd;
    struct stat sb;
    MR_TRY(mr_fs_open_input(path, &fd, &sb));
    uint8_t len8[8];
    char *hdr = NULL;
    int st = MR_OK;
    if (sb.st_size < 8)
        st = mr_error_set(MR_EINPUT, "%s: truncated: %lld bytes, less than the 8-byte header "
                                     "length", path, (long long)sb.st_size);
    else
        st = read_at(fd, len8, 8, 0, path, "header length");
    uint64_t size = (uint64_t)sb.st_size, n = 0;
    for (int i = 7; st == MR_OK && i >= 0; i--) n = n << 8 | len8[i];
    if (st == MR_OK && (n == 0 || n > MR_ST_MAX_HEADER))
        st = mr_error_set(MR_EINPUT, "%s: header length %llu is outside 1..%llu", path,
                          (unsigned long long)n, (unsigned long long)MR_ST_MAX_HEADER);
    if (st == MR_OK && n > size - 8)
        st = mr_error_set(MR_EINPUT, "%s: header length %llu exceeds the file (%llu bytes)", path,
                          (unsigned long long)n, (unsigned long long)size);
    if (st == MR_OK && !(hdr = malloc((size_t)n)))
        st = mr_error_set(MR_ENOMEM, "out of memory (header of %s)", path);
    if (st == MR_OK) st = read_at(fd, hdr, (size_t)n, 8, path, "header");
    mr_st_file *f = NULL;
    if (st == MR_OK) st = mr_st_parse_header(&f, path, hdr, (size_t)n, size - 8 - n);
    free(hdr);
    if (st != MR_OK) {
        close(fd);
        return st;
    }
    f->fd = fd;
    f->data_start = 8 + n;
    *out = f;
    return MR_OK;
}

const mr_st_tensor *mr_st_find(const mr_st_file *f, const char *name)
{
    mr_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, (size_t)f->n, sizeof key, cmp_name);
}

int mr_st_read_range(const mr_st_file *f, const mr_st_tensor *t, uint64_t first, uint64_t n,
                     float *dst)
{
    MR_REQUIRE(f->fd >= 0, MR_EINPUT, "%s: no file to read tensor %s from", f->path, t->name);
    MR_REQUIRE(first <= t->numel && n <= t->numel - first, MR_EINPUT,
               "%s: tensor %s: elements %llu..+%llu outside its %llu", f->path, t->name,
               (unsigned long long)first, (unsigned long long)n, (unsigned long long)t->numel);
    char what[MR_ST_MAX_NAME + 16];
    snprintf(what, sizeof what, "tensor %s", t->name);
    int size = dtype_bytes[t->dtype];
    uint64_t off = f->data_start + t->begin + first * (uint64_t)size;
    if (t->dtype == MR_ST_F32) {
        MR_TRY(read_at(f->fd, dst, (size_t)n * 4, off, f->path, what));
    } else {
        enum { CHUNK = 1 << 15 };
        uint8_t buf[2 * CHUNK];
        for (uint64_t i0 = 0; i0 < n; i0 += CHUNK) {
            size_t m = n - i0 < CHUNK ? (size_t)(n - i0) : CHUNK;
            MR_TRY(read_at(f->fd, buf, 2 * m, off + 2 * i0, f->path, what));
            for (size_t i = 0; i < m; i++) {
                uint16_t h = (uint16_t)(buf[2 * i] | buf[2 * i + 1] << 8);
                dst[i0 + i] = t->dtype == MR_ST_BF16 ? mr_st_bf16_to_f32(h) : mr_st_f16_to_f32(h);
            }
        }
    }
    for (uint64_t i = 0; i < n; i++)
        MR_REQUIRE(isfinite(dst[i]), MR_EINPUT, "%s: tensor %s: element %llu is %s", f->path,
                   t->name, (unsigned long long)(first + i), isnan(dst[i]) ? "NaN" : "infinite");
    return MR_OK;
}

int mr_st_read(const mr_st_file *f, const mr_st_tensor *t, float *dst)
{
    return mr_st_read_range(f, t, 0, t->numel, dst);
}
