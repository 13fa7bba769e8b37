/* mr_plot.h — output helpers of `moe-robust report`: text files written atomically
 * (NAME.tmp-PID, then renamed), and gnuplot run on a script without a shell.
 */
#ifndef MR_PLOT_H
#define MR_PLOT_H

#include <stddef.h>
#include <stdio.h>

/* An in-memory text file (open_memstream); mr_text_commit writes it to dir/name
 * atomically and closes it. mr_text_discard frees it without writing. */
typedef struct mr_text {
    FILE *fp;
    char *buf;
    size_t len;
} mr_text;

int mr_text_open(mr_text *t);
int mr_text_commit(mr_text *t, const char *dir, const char *name);
void mr_text_discard(mr_text *t);

/* Write `len` bytes to dir/name atomically. */
int mr_write_file(const char *dir, const char *name, const void *data, size_t len);

enum { MR_GNUPLOT_OK = 0, MR_GNUPLOT_MISSING = 1, MR_GNUPLOT_FAILED = 2 };

/* Run `gnuplot -e "fmt='FMT'; outfile='OUT.tmp-PID'" SCRIPT` in `dir` (script and output
 * names are plain file names inside `dir`), then rename the output to `out`.
 * Returns MR_GNUPLOT_MISSING when no gnuplot executable is on PATH (or $MR_GNUPLOT),
 * MR_GNUPLOT_FAILED (with mr_error_message() saying why) when it fails. gnuplot's own
 * messages go to stderr. */
int mr_gnuplot_run(const char *dir, const char *script, const char *fmt, const char *out);

#endif
