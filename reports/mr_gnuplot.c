#include "mr_gnuplot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../io/mr_file.h"

/* file names handed to gnuplot inside a -e string: no quotes, no separators */
static int plain_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              strchr("._-@+", *s)))
            return 0;
    return 1;
}

/* Run argv (argv[0] looked up on PATH) in dir without a shell, stdin and stdout on
 * /dev/null; MR_GNUPLOT_MISSING when it cannot be found, MR_GNUPLOT_FAILED (message set,
 * naming `what`) when it cannot run or exits non-zero. */
static int spawn(const char *dir, char *const argv[], const char *what)
{
    const char *bin = argv[0];
    int fds[2];
    if (pipe(fds) != 0) {
        mr_error_set(MR_EIO, "%s: pipe: %s", bin, strerror(errno));
        return MR_GNUPLOT_FAILED;
    }
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        mr_error_set(MR_EIO, "%s: fork: %s", bin, strerror(errno));
        return MR_GNUPLOT_FAILED;
    }
    if (pid == 0) {
        close(fds[0]);
        int err[2] = {0, 0}; /* stage (0 chdir, 1 exec), errno */
        if (chdir(dir) != 0) {
            err[1] = errno ? errno : EIO;
        } else {
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull >= 0) dup2(devnull, STDIN_FILENO);
            int o = open("/dev/null", O_WRONLY);
            if (o >= 0) dup2(o, STDOUT_FILENO); /* gnuplot's `print`; errors stay on stderr */
            execvp(bin, argv);
            err[0] = 1;
            err[1] = errno ? errno : ENOENT;
        }
        ssize_t w = write(fds[1], err, sizeof err);
        (void)w;
        _exit(127);
    }
    close(fds[1]);
    int child_err[2] = {0, 0};
    ssize_t got;
    do
        got = read(fds[0], child_err, sizeof child_err);
    while (got < 0 && errno == EINTR);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got == (ssize_t)sizeof child_err) {
        if (child_err[0] == 1 && (child_err[1] == ENOENT || child_err[1] == EACCES ||
                                  child_err[1] == ENOTDIR))
            return MR_GNUPLOT_MISSING;
        mr_error_set(MR_EIO, "cannot run %s in %s: %s", bin, dir, strerror(child_err[1]));
        return MR_GNUPLOT_FAILED;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status))
            mr_error_set(MR_EFAILED, "%s/%s: %s exited with status %d (its messages are above)",
                         dir, what, bin, WEXITSTATUS(status));
        else
            mr_error_set(MR_EFAILED, "%s/%s: %s killed by signal %d", dir, what, bin,
                         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        return MR_GNUPLOT_FAILED;
    }
    return MR_GNUPLOT_OK;
}

/* commit the atomic output of a tool that ran (rc), or drop it */
static int finish(mr_atomic *a, int rc, const char *dir, const char *what, const char *out)
{
    if (rc != MR_GNUPLOT_OK) {
        mr_atomic_abort(a);
        return rc;
    }
    struct stat sb;
    if (stat(a->tmp, &sb) != 0 || sb.st_size == 0) {
        mr_atomic_abort(a);
        mr_error_set(MR_EFAILED, "%s/%s: wrote no output %s", dir, what, out);
        return MR_GNUPLOT_FAILED;
    }
    return mr_atomic_commit(a) == MR_OK ? MR_GNUPLOT_OK : MR_GNUPLOT_FAILED;
}

int mr_gnuplot_run(const char *dir, const char *script, const char *fmt, const char *out)
{
    if (!plain_name(script) || !plain_name(fmt) || !plain_name(out)) {
        mr_error_set(MR_EINPUT, "gnuplot: refusing file name '%s' / '%s'", script, out);
        return MR_GNUPLOT_FAILED;
    }
    const char *bin = getenv("MR_GNUPLOT");
    if (!bin || !*bin) bin = "gnuplot";
    char opath[1800], expr[900];
    snprintf(opath, sizeof opath, "%s/%s", dir, out);
    mr_atomic a;
    if (mr_atomic_begin(&a, opath) != MR_OK) return MR_GNUPLOT_FAILED;
    /* gnuplot runs in dir: the temporary file's name relative to it */
    const char *tmp = a.tmp + strlen(dir) + 1;
    snprintf(expr, sizeof expr, "fmt='%s'; outfile='%s'", fmt, tmp);
    char *argv[] = {(char *)bin, "-e", expr, (char *)script, NULL};
    return finish(&a, spawn(dir, argv, script), dir, script, out);
}

int mr_pdfunite_run(const char *dir, const char *const *pages, int n, const char *out)
{
    for (int i = 0; i < n; i++)
        if (!plain_name(pages[i])) {
            mr_error_set(MR_EINPUT, "pdfunite: refusing file name '%s'", pages[i]);
            return MR_GNUPLOT_FAILED;
        }
    char opath[1800];
    snprintf(opath, sizeof opath, "%s/%s", dir, out);
    mr_atomic a;
    if (n < 1 || mr_atomic_begin(&a, opath) != MR_OK) return MR_GNUPLOT_FAILED;
    char **argv = calloc((size_t)n + 3, sizeof *argv);
    if (!argv) {
        mr_atomic_abort(&a);
        mr_error_set(MR_ENOMEM, "out of memory");
        return MR_GNUPLOT_FAILED;
    }
    argv[0] = "pdfunite";
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)pages[i];
    argv[n + 1] = a.tmp + strlen(dir) + 1;
    int rc = spawn(dir, argv, out);
    free(argv);
    return finish(&a, rc, dir, "pdfunite", out);
}
