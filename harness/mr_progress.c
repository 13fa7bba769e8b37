/* Progress of a grid run on stderr: a live line (cells, throughput, ETA) on a terminal,
 * one line per cell otherwise (logs, CI), nothing with --quiet. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "mr_grid.h"

struct mr_grid_progress {
    int total, done, computed, quiet, tty;
    long long samples;
    double t0, last;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

mr_grid_progress *mr_grid_progress_start(int total, int already_done, int quiet)
{
    mr_grid_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->total = total;
    p->done = already_done;
    p->quiet = quiet;
    p->tty = isatty(STDERR_FILENO);
    p->t0 = p->last = now();
    return p;
}

static void hms(char *buf, size_t cap, double s)
{
    long t = (long)(s + 0.5);
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

void mr_grid_progress_cell(mr_grid_progress *p, const mr_grid_cell *c, long long samples,
                           int skipped)
{
    if (!p) return;
    double t = now(), el = t - p->t0;
    p->done++;
    if (!skipped) {
        p->computed++;
        p->samples += samples;
    }
    if (p->quiet) return;
    double rate = el > 0 ? p->samples / el : 0.0;
    int left = p->total - p->done;
    char eta[32] = "?";
    if (p->computed) hms(eta, sizeof eta, el / p->computed * left);
    if (p->tty) {
        int width = 30, fill = p->total ? p->done * width / p->total : width;
        fprintf(stderr, "\r[");
        for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %d/%d cells  %.0f samples/s  ETA %s  ", p->done, p->total, rate, eta);
    } else {
        fprintf(stderr, "cell %d/%d %s%s (%.1f s, %.0f samples/s, ETA %s)\n", p->done, p->total,
                c->meta.id, skipped ? " already done" : "", t - p->last, rate, eta);
    }
    p->last = t;
    fflush(stderr);
}

void mr_grid_progress_end(mr_grid_progress *p)
{
    if (!p) return;
    if (p->tty && !p->quiet) fputc('\n', stderr);
    free(p);
}
