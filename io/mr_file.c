#include "mr_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "mr_fs.h"

int mr_atomic_begin(mr_atomic *a, const char *path)
{
    a->path[0] = a->tmp[0] = '\0';
    MR_REQUIRE(strlen(path) < sizeof a->path, MR_EINPUT, "%.200s...: path too long", path);
    /* the output replaces what is at `path` (rename): never a device, FIFO or directory
     * (as root, `--save-routing /dev/null` would otherwise replace /dev/null) */
    struct stat st;
    MR_REQUIRE(stat(path, &st) != 0 || S_ISREG(st.st_mode), MR_EINPUT,
               "%s: exists and is not a regular file (%s): outputs are written to a new file "
               "renamed into place",
               path, mr_fs_kind(st.st_mode));
    snprintf(a->path, sizeof a->path, "%s", path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp-%ld", path, (long)getpid());
    return MR_OK;
}

/* Whether the environment variable `var` (a fault injection, docs/reliability.md) names
 * the output at `path` (its base name). */
static int fault_named(const char *var, const char *path)
{
    const char *want = getenv(var);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return want && strcmp(want, base) == 0;
}

/* Fault injection for the crash-safety tests: with MR_FAULT_KILL_BEFORE_RENAME=NAME the
 * process kills itself with SIGKILL once the temporary file of an output named NAME (e.g.
 * results.h5) is complete, before it is renamed into place: what `kill -9` at the worst
 * moment leaves behind. */
static void fault_before_rename(const char *path)
{
    if (fault_named("MR_FAULT_KILL_BEFORE_RENAME", path)) raise(SIGKILL);
}

int mr_atomic_commit(mr_atomic *a)
{
    fault_before_rename(a->path);
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        unlink(a->tmp);
        return mr_error_set(MR_EIO, "%s: cannot write (%s)", a->path, mr_fs_strerror(e));
    }
    return MR_OK;
}

void mr_atomic_abort(mr_atomic *a)
{
    if (a->tmp[0]) unlink(a->tmp);
}

int mr_file_write2(const char *path, const void *head, size_t head_len, const void *tail,
                   size_t tail_len)
{
    mr_atomic a;
    MR_TRY(mr_atomic_begin(&a, path));
    /* fault injection (docs/reliability.md): MR_FAULT_FAIL_WRITE=NAME fails the write of
     * an output named NAME as a disk error would, before its temporary file exists */
    if (fault_named("MR_FAULT_FAIL_WRITE", path))
        return mr_error_set(MR_EIO, "%s: cannot write (%s)", path, mr_fs_strerror(EIO));
    /* O_EXCL: never follow a link planted at the temporary name; a stale file of an
     * earlier process with this PID is ours to replace */
    int fd = open(a.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST && unlink(a.tmp) == 0)
        fd = open(a.tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        return mr_error_set(e == ENOENT || e == ENOTDIR ? MR_EINPUT : MR_EIO,
                            "%s: cannot create (%s)", path,
                            e == ENOENT ? "no such directory" : mr_fs_strerror(e));
    }
    int e = 0;
    const void *part[2] = {head, tail};
    size_t part_len[2] = {head_len, tail_len};
    for (int p = 0; p < 2 && !e; p++)
        for (size_t done = 0; done < part_len[p] && !e;) {
            ssize_t w = write(fd, (const char *)part[p] + done, part_len[p] - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) e = w < 0 ? errno : EIO;
            else done += (size_t)w;
        }
    /* on disk before the name: a crash after the rename never leaves an empty file */
    if (!e && fsync(fd) != 0 && errno != EINVAL) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    if (e) {
        unlink(a.tmp);
        return mr_error_set(MR_EIO, "%s: cannot write (%s)", path, mr_fs_strerror(e));
    }
    return mr_atomic_commit(&a);
}

int mr_file_write(const char *path, const void *data, size_t len)
{
    return mr_file_write2(path, data, len, NULL, 0);
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
    char *buf;
    size_t n;
    /* the source is an input like any other: a regular file, read whole */
    MR_TRY(mr_fs_read_input(src, (size_t)1 << 40, "file", &buf, &n));
    int st = mr_file_write(dst, buf, n);
    free(buf);
    return st;
}

int mr_mkdir_p(const char *dir)
{
    MR_REQUIRE(dir[0], MR_EINPUT, "'': not a directory name");
    size_t n = strlen(dir);
    char *buf = malloc(n + 1);
    MR_REQUIRE(buf, MR_ENOMEM, "out of memory");
    memcpy(buf, dir, n + 1);
    int st = MR_OK;
    for (size_t i = 1; i <= n && st == MR_OK; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char save = buf[i];
        buf[i] = '\0';
        struct stat sb;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            st = mr_error_set(errno == ENOENT || errno == ENOTDIR ? MR_EINPUT : MR_EIO,
                              "%s: cannot create directory (%s)", buf, mr_fs_strerror(errno));
        else if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = mr_error_set(MR_EINPUT, "%s: exists and is not a directory", buf);
        buf[i] = save;
    }
    free(buf);
    return st;
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
