#include "mr_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/types.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"

const char *mr_fs_strerror(int e)
{
    static _Thread_local char buf[128];
    if (strerror_r(e, buf, sizeof buf) != 0) snprintf(buf, sizeof buf, "error %d", e);
    return buf;
}

/* ------------------------------------------------------------------ inputs */

const char *mr_fs_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

/* "PATH: no such file", "PATH: permission denied", ... for a failed stat/open */
static int input_error(const char *path, int e)
{
    if (e == ENOENT || e == ENOTDIR) return mr_error_set(MR_EINPUT, "%s: no such file", path);
    if (e == EACCES || e == EPERM) return mr_error_set(MR_EINPUT, "%s: permission denied", path);
    return mr_error_set(MR_EINPUT, "%s: cannot open (%s)", path, mr_fs_strerror(e));
}

static int require_regular(const char *path, const struct stat *st)
{
    MR_REQUIRE(S_ISREG(st->st_mode), MR_EINPUT,
               "%s: not a regular file (%s); inputs must be regular files", path,
               mr_fs_kind(st->st_mode));
    return MR_OK;
}

int mr_fs_check_input(const char *path, struct stat *out)
{
    struct stat st;
    if (stat(path, &st) != 0) return input_error(path, errno);
    MR_TRY(require_regular(path, &st));
    if (faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) != 0) return input_error(path, errno);
    if (out) *out = st;
    return MR_OK;
}

int mr_fs_open_input(const char *path, int *fd, struct stat *out)
{
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f < 0) return input_error(path, errno);
    struct stat st;
    int st_ok = fstat(f, &st) == 0;
    int e = errno;
    if (!st_ok) {
        close(f);
        return input_error(path, e);
    }
    int rs = require_regular(path, &st);
    if (rs != MR_OK) {
        close(f);
        return rs;
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0) fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    if (out) *out = st;
    return MR_OK;
}

int mr_fs_fopen_input(const char *path, FILE **fp)
{
    *fp = NULL;
    int fd;
    MR_TRY(mr_fs_open_input(path, &fd, NULL));
    *fp = fdopen(fd, "rb");
    if (!*fp) {
        close(fd);
        return mr_error_set(MR_ENOMEM, "%s: out of memory", path);
    }
    return MR_OK;
}

int mr_fs_read_input(const char *path, size_t max, const char *what, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd;
    struct stat st;
    MR_TRY(mr_fs_open_input(path, &fd, &st));
    int status = MR_OK;
    if ((unsigned long long)st.st_size > (unsigned long long)max)
        status = mr_error_set(MR_EINPUT, "%s: %lld bytes, more than a %s may hold (%zu)", path,
                              (long long)st.st_size, what, max);
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *b = status == MR_OK ? malloc(cap + 1) : NULL;
    if (status == MR_OK && !b) status = mr_error_set(MR_ENOMEM, "%s: out of memory", path);
    /* read to EOF, but never more than `max`: a file that grows while read stays bounded */
    while (status == MR_OK) {
        if (n == cap) {
            if (cap > max) {
                status = mr_error_set(MR_EINPUT, "%s: more than a %s may hold (%zu bytes)", path,
                                      what, max);
                break;
            }
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(b, nc + 1);
            if (!nb) {
                status = mr_error_set(MR_ENOMEM, "%s: out of memory", path);
                break;
            }
            b = nb;
            cap = nc;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) status = mr_error_set(MR_EINPUT, "%s: read error (%s)", path, mr_fs_strerror(errno));
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (status != MR_OK) {
        free(b);
        return status;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return MR_OK;
}

/* ------------------------------------------------------------------ outputs */

char *mr_fs_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

int mr_fs_is_tmp_name(const char *name)
{
    const char *t = strstr(name, ".tmp-");
    if (!t || t == name) return 0;
    const char *d = t + 5;
    if (!*d) return 0;
    for (; *d; d++)
        if (*d < '0' || *d > '9') return 0;
    return 1;
}

int mr_fs_check_own_dir(const char *dir, const char *marker, const char *marker2,
                        const char *who)
{
    struct stat st;
    if (stat(dir, &st) != 0) return MR_OK;
    MR_REQUIRE(S_ISDIR(st.st_mode), MR_EINPUT, "%s exists and is not a directory", dir);
    DIR *d = opendir(dir);
    MR_REQUIRE(d, MR_EIO, "%s: cannot list (%s)", dir, mr_fs_strerror(errno));
    char other[256] = "";
    int ours = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, MR_DIR_LOCK_NAME) ||
            mr_fs_is_tmp_name(n))
            continue;
        if (!strcmp(n, marker) || (marker2 && !strcmp(n, marker2))) ours = 1;
        else if (!other[0]) snprintf(other, sizeof other, "%s", n);
    }
    closedir(d);
    MR_REQUIRE(ours || !other[0], MR_EINPUT,
               "%s is not empty (it holds %s) and has no %s: not a directory made by %s; "
               "nothing was changed: use a new or empty directory",
               dir, other, marker, who);
    return MR_OK;
}

static int pid_alive(long pid);

int mr_fs_remove_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!mr_fs_is_tmp_name(e->d_name)) continue;
        /* a process of this host that is still running may still be writing it */
        /* a number beyond any pid (pid_max <= 2^22) is no process's: stale */
        long long pid = 0;
        if (mr_parse_ll("pid", strrchr(e->d_name, '-') + 1, 1, 1 << 22, &pid) == MR_OK &&
            pid_alive((long)pid))
            continue;
        char *p = mr_fs_join(dir, e->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) == 0) n++;
        free(p);
    }
    closedir(d);
    return n;
}

int mr_fs_check_output(const char *out, const char *what, const char *const *inputs, int n)
{
    struct stat so;
    if (stat(out, &so) != 0) {
        /* not there yet, so not an input; but its directory must take it: found now,
         * not after the work */
        const char *slash = strrchr(out, '/');
        size_t n = slash ? (size_t)(slash - out) : 0;
        char *dir = malloc(n + 2);
        MR_REQUIRE(dir, MR_ENOMEM, "out of memory");
        if (!slash) strcpy(dir, ".");
        else if (n == 0) strcpy(dir, "/");
        else {
            memcpy(dir, out, n);
            dir[n] = '\0';
        }
        struct stat sd;
        int st = MR_OK;
        if (stat(dir, &sd) != 0 || !S_ISDIR(sd.st_mode))
            st = mr_error_set(MR_EINPUT, "%s %s: cannot create (no such directory %s)", what, out, dir);
        else if (access(dir, W_OK) != 0)
            st = mr_error_set(MR_EINPUT, "%s %s: cannot create (permission denied in %s)", what, out,
                              dir);
        free(dir);
        return st;
    }
    MR_REQUIRE(S_ISREG(so.st_mode), MR_EINPUT,
               "%s %s: exists and is not a regular file (%s): outputs are written to a new "
               "file renamed into place", what, out, mr_fs_kind(so.st_mode));
    for (int i = 0; i < n; i++) {
        struct stat si;
        if (!inputs[i] || stat(inputs[i], &si) != 0) continue;
        MR_REQUIRE(!(si.st_dev == so.st_dev && si.st_ino == so.st_ino), MR_EINPUT,
                   "%s %s is the input %s (the same file): writing it would destroy the "
                   "input; nothing was written",
                   what, out, inputs[i]);
    }
    return MR_OK;
}

int mr_fs_check_output_in_dir(const char *out, const char *what, const char *dir)
{
    MR_TRY(mr_fs_check_output(out, what, NULL, 0));
    struct stat so;
    if (stat(out, &so) != 0) return MR_OK; /* not there yet, so none of dir's files */
    DIR *d = opendir(dir);
    if (!d) return MR_OK;
    int st = MR_OK;
    struct dirent *e;
    while (st == MR_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = mr_fs_join(dir, e->d_name);
        const char *in[1] = {p};
        st = p ? mr_fs_check_output(out, what, in, 1) : mr_error_set(MR_ENOMEM, "out of memory");
        free(p);
    }
    closedir(d);
    return st;
}

/* ------------------------------------------------------------------ directory lock */

static int pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* The holders recorded in the lock file, live ones only (same host). */
static void describe_holders(int fd, char *out, size_t cap)
{
    char buf[4096], host[256] = "";
    gethostname(host, sizeof host - 1);
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    size_t len = 0;
    out[0] = '\0';
    for (char *line = strtok(buf, "\n"); line && len + 1 < cap; line = strtok(NULL, "\n")) {
        /* "PID HOST WHAT": a line that is not is skipped (the file is another process's) */
        char *sp = strchr(line, ' '), *h = sp ? sp + 1 : NULL, *what = h ? strchr(h, ' ') : NULL;
        if (!what || what == h) continue;
        *sp = *what++ = '\0';
        long long pid = 0;
        if (mr_parse_ll("pid", line, 1, 1 << 22, &pid) != MR_OK) continue;
        if (strcmp(h, host) == 0 && !pid_alive((long)pid)) continue;
        int w = snprintf(out + len, cap - len, "%spid %lld on %s: %s", len ? "; " : "", pid, h,
                         what);
        if (w < 0) break;
        len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
    }
    if (!out[0]) snprintf(out, cap, "a process that did not record itself");
}

int mr_dir_lock_take(mr_dir_lock *l, const char *dir, int exclusive)
{
    l->fd = -1;
    l->created = 0;
    l->exclusive = exclusive;
    l->path = mr_fs_join(dir, MR_DIR_LOCK_NAME);
    if (!l->path) return mr_error_set(MR_ENOMEM, "out of memory");
    char *path = l->path;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd >= 0) l->created = 1;
    else if (errno == EEXIST) fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        int st = mr_error_set(e == ELOOP ? MR_EINPUT : MR_EIO, "%s: cannot create the lock file (%s)",
                              path, mr_fs_strerror(e));
        free(path);
        return st;
    }
    if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        int e = errno;
        char who[1024];
        int st;
        if (e == EWOULDBLOCK) {
            describe_holders(fd, who, sizeof who);
            st = mr_error_set(MR_EINPUT,
                              "%s is in use by another moe-robust process (%s); nothing was "
                              "changed: wait for it to finish, or use another directory",
                              dir, who);
        } else {
            st = mr_error_set(MR_EIO, "%s: cannot lock (%s)", path, mr_fs_strerror(e));
        }
        close(fd);
        free(l->path);
        l->path = NULL;
        return st;
    }
    l->fd = fd;
    return MR_OK;
}

int mr_dir_lock_record(mr_dir_lock *l, const char *what)
{
    /* an exclusive holder replaces the file's lines, a shared one adds its own (lines of
     * dead processes are skipped when reporting) */
    char host[256] = "", line[600];
    gethostname(host, sizeof host - 1);
    int n = snprintf(line, sizeof line, "%ld %s %s\n", (long)getpid(), host[0] ? host : "-", what);
    errno = 0;
    int ok = l->exclusive ? ftruncate(l->fd, 0) == 0 && pwrite(l->fd, line, (size_t)n, 0) == n
                          : lseek(l->fd, 0, SEEK_END) >= 0 && write(l->fd, line, (size_t)n) == n;
    MR_REQUIRE(ok, MR_EIO, "%s: cannot write (%s)", l->path, mr_fs_strerror(errno ? errno : EIO));
    l->created = 0;
    return MR_OK;
}

void mr_dir_lock_release(mr_dir_lock *l)
{
    /* a lock file made by a process that was then refused goes again: a refused command
     * leaves a directory as it found it */
    if (l->fd >= 0 && l->created && l->path) unlink(l->path);
    if (l->fd >= 0) close(l->fd); /* closing the only descriptor releases the flock */
    l->fd = -1;
    free(l->path);
    l->path = NULL;
}

/* ------------------------------------------------------------------ fingerprints */

int mr_fs_fingerprint(const char *path, mr_fingerprint *out)
{
    int fd;
    struct stat a, b;
    MR_TRY(mr_fs_open_input(path, &fd, &a));
    size_t cap = (size_t)1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    struct sha256_ctx h;
    sha256_init(&h);
    long long total = 0;
    int st = MR_OK;
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) st = mr_error_set(MR_EINPUT, "%s: read error (%s)", path, mr_fs_strerror(errno));
        if (r <= 0) break;
        sha256_update(&h, (size_t)r, buf);
        total += r;
    }
    if (st == MR_OK && (fstat(fd, &b) != 0 || b.st_size != a.st_size || total != a.st_size ||
                        b.st_mtim.tv_sec != a.st_mtim.tv_sec ||
                        b.st_mtim.tv_nsec != a.st_mtim.tv_nsec))
        st = mr_error_set(MR_EINPUT, "%s: changed while it was being read", path);
    free(buf);
    close(fd);
    if (st != MR_OK) return st;
    out->size = (long long)a.st_size;
    out->mtime_s = (long long)a.st_mtim.tv_sec;
    out->mtime_ns = (long)a.st_mtim.tv_nsec;
    uint8_t dig[SHA256_DIGEST_SIZE];
    sha256_digest(&h, SHA256_DIGEST_SIZE, dig);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(out->sha256 + 2 * i, 3, "%02x", dig[i]);
    return MR_OK;
}
