/* mr_gnuplot.h — the gnuplot runner of `moe-robust report`: runs gnuplot on a script
 * without a shell and renames its output into place when complete (io/mr_file.h); and
 * poppler's pdfunite, which joins the figures' PDF pages into one file.
 */
#ifndef MR_GNUPLOT_H
#define MR_GNUPLOT_H

enum { MR_GNUPLOT_OK = 0, MR_GNUPLOT_MISSING = 1, MR_GNUPLOT_FAILED = 2 };

/* Run `gnuplot -e "fmt='FMT'; outfile='OUT.tmp-PID'" SCRIPT` in `dir` (script and output
 * names are plain file names inside `dir`), then rename the output to `out`.
 * Returns MR_GNUPLOT_MISSING when no gnuplot executable is on PATH (or $MR_GNUPLOT),
 * MR_GNUPLOT_FAILED (with mr_error_message() saying why) when it fails. gnuplot's own
 * messages go to stderr. */
int mr_gnuplot_run(const char *dir, const char *script, const char *fmt, const char *out);

/* Join the PDF files pages[n] (plain names in `dir`, in order) into `out` with poppler's
 * pdfunite; the same return values (MISSING: no pdfunite on PATH). */
int mr_pdfunite_run(const char *dir, const char *const *pages, int n, const char *out);

#endif
