/* Disk space reserved before a streaming write (io/mr_fs.h: mr_fs_reserve). A file of its
 * own: fallocate(2) with FALLOC_FL_KEEP_SIZE is Linux's (_GNU_SOURCE), which would also
 * switch strerror_r to its GNU form for the rest of mr_fs.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "mr_fs.h"

int mr_fs_reserve(const char *path, const char *name, long long bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    MR_REQUIRE(fd >= 0, MR_EIO, "%s: cannot write (%s)", name, mr_fs_strerror(errno));
    int e = bytes > 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) != 0 ? errno : 0;
    close(fd);
    if (e == EOPNOTSUPP || e == ENOSYS) return MR_OK;
    MR_REQUIRE(e == 0, MR_EIO, "%s: cannot write (%s)", name, mr_fs_strerror(e));
    return MR_OK;
}

int mr_fs_release(const char *path, const char *name)
{
    /* blocks past the end go with a shrinking truncate (one that keeps the size may keep
     * them): grow by a byte, then shrink back */
    struct stat st;
    MR_REQUIRE(stat(path, &st) == 0 && truncate(path, st.st_size + 1) == 0 &&
                   truncate(path, st.st_size) == 0,
               MR_EIO, "%s: cannot write (%s)", name, mr_fs_strerror(errno));
    return MR_OK;
}
