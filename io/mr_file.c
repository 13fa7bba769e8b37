#include "mr_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/mr_error.h"

int mr_atomic_begin(mr_atomic *a, const char *path)
{
    a->path[0] = a->tmp[0] = '\0';
    MR_REQUIRE(strlen(path) < sizeof a->path, MR_EINPUT, "%.200s...: path too long", path);
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp-%ld", path, (long)getpid());
    return MR_OK;
}

int mr_atomic_commit(mr_atomic *a)
{
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        unlink(a->tmp);
        return mr_error_set(MR_EIO, "%s: cannot write (%s)", a->path, strerror(e));
    }
    return MR_OK;
}

void mr_atomic_abort(mr_atomic *a)
{
    if (a->tmp[0]) unlink(a->tmp);
}

int mr_file_write(const char *path, const void *data, size_t len)
{
    mr_atomic a;
    MR_TRY(mr_atomic_begin(&a, path));
    FILE *fp = fopen(a.tmp, "wb");
    MR_REQUIRE(fp, MR_EIO, "%s: cannot create (%s)", a.tmp, strerror(errno));
    int ok = fwrite(data, 1, len, fp) == len;
    ok = (fclose(fp) == 0) && ok;
    if (!ok) {
        mr_atomic_abort(&a);
        return mr_error_set(MR_EIO, "%s: cannot write", path);
    }
    return mr_atomic_commit(&a);
}

int mr_file_write_in(const char *dir, const char *name, const void *data, size_t len)
{
    char path[MR_PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    MR_REQUIRE(n >= 0 && (size_t)n < sizeof path, MR_EINPUT, "%s/%s: path too long", dir, name);
    return mr_file_write(path, data, len);
}

int mr_file_copy(const char *src, const char *dst)
{
    mr_atomic a;
    MR_TRY(mr_atomic_begin(&a, dst));
    FILE *in = fopen(src, "rb"), *out = in ? fopen(a.tmp, "wb") : NULL;
    int ok = in && out;
    char buf[1 << 16];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) ok = !ferror(in) && ok;
    if (in) fclose(in);
    if (out) ok = (fclose(out) == 0) && ok;
    if (!ok) {
        mr_atomic_abort(&a);
        return mr_error_set(MR_EIO, "cannot copy %s to %s", src, dst);
    }
    return mr_atomic_commit(&a);
}

int mr_mkdir_p(const char *dir)
{
    char buf[MR_PATH_MAX];
    MR_REQUIRE(strlen(dir) < sizeof buf && dir[0], MR_EINPUT, "'%.200s': not a directory name",
               dir);
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return mr_error_set(MR_EIO, "%s: cannot create directory (%s)", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return mr_error_set(MR_EIO, "%s: cannot create directory (%s)", dir, strerror(errno));
    return MR_OK;
}

int mr_textbuf_open(mr_textbuf *t)
{
    t->buf = NULL;
    t->len = 0;
    t->fp = open_memstream(&t->buf, &t->len);
    MR_REQUIRE(t->fp, MR_ENOMEM, "out of memory");
    return MR_OK;
}

void mr_textbuf_discard(mr_textbuf *t)
{
    if (t->fp) fclose(t->fp);
    free(t->buf);
    t->fp = NULL;
    t->buf = NULL;
}

int mr_textbuf_commit(mr_textbuf *t, const char *dir, const char *name)
{
    int ok = t->fp && fflush(t->fp) == 0 && !ferror(t->fp);
    if (t->fp) fclose(t->fp);
    t->fp = NULL;
    int st = !ok   ? mr_error_set(MR_ENOMEM, "%s: out of memory composing the file", name)
             : dir ? mr_file_write_in(dir, name, t->buf, t->len)
                   : mr_file_write(name, t->buf, t->len);
    free(t->buf);
    t->buf = NULL;
    return st;
}
