/* The corruption gallery of a report: image data: sample 0 under every image corruption
 * and severity (fig-gallery.png, drawn by corruptions/mr_gallery like `moe-robust corrupt
 * --gallery`); text data: the first characters of sample 0 under every text corruption
 * of the run (gallery.txt). An extra: failures are noted, never fatal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_model.h"
#include "../corruptions/mr_corruption.h"
#include "../corruptions/mr_gallery.h"
#include "../io/mr_data.h"
#include "../io/mr_model_io.h"
#include "../io/mr_png.h"
#include "mr_report_impl.h"

static void utf8(FILE *fp, int cp)
{
    if (cp == '\n') {
        fputs("\xe2\x86\xb5", fp); /* ↵ */
    } else if (cp < 32 || cp == 127) {
        fputc('?', fp);
    } else if (cp < 0x80) {
        fputc(cp, fp);
    } else if (cp < 0x800) {
        fputc(0xC0 | (cp >> 6), fp);
        fputc(0x80 | (cp & 63), fp);
    } else if (cp < 0x10000) {
        fputc(0xE0 | (cp >> 12), fp);
        fputc(0x80 | ((cp >> 6) & 63), fp);
        fputc(0x80 | (cp & 63), fp);
    } else {
        fputc(0xF0 | (cp >> 18), fp);
        fputc(0x80 | ((cp >> 12) & 63), fp);
        fputc(0x80 | ((cp >> 6) & 63), fp);
        fputc(0x80 | (cp & 63), fp);
    }
}

static int text_gallery(rep *R, const mr_dataset *d)
{
    const mr_results *r = R->r;
    const char *mpath = NULL;
    for (int i = 0; i < r->n_models && !mpath; i++)
        if (r->models[i].task == MR_TASK_LM && r->models[i].path[0]) mpath = r->models[i].path;
    MR_REQUIRE(mpath, MR_EINPUT, "no language model path in the config");
    mr_model *m = NULL;
    MR_TRY(mr_model_load(&m, mpath));
    int st = MR_OK;
    if (!m->vocab) st = mr_error_set(MR_EINPUT, "%s: no /vocab", mpath);
    mr_corrupt_ws *ws = NULL;
    int cols = d->cols, show = cols < 96 ? cols : 96;
    int32_t *out = malloc((size_t)cols * sizeof *out + 1);
    if (st == MR_OK && !out) st = mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) st = mr_corrupt_ws_alloc(&ws, 0, 0, 0, cols);
    mr_textbuf t;
    if (st == MR_OK) st = mr_textbuf_open(&t);
    if (st != MR_OK) {
        free(out);
        mr_corrupt_ws_free(ws);
        mr_model_free(m);
        return st;
    }
    fprintf(t.fp, "%-22s ", "clean");
    for (int i = 0; i < show; i++) utf8(t.fp, m->vocab[d->tokens[i]]);
    fputc('\n', t.fp);
    for (int c = 0; st == MR_OK && c < r->n_corr; c++) {
        const mr_corruption_type *ty = mr_corruption_lookup(r->corr[c]);
        if (!ty || ty->modality != MR_MOD_TEXT) continue;
        for (int s = 1; st == MR_OK && s <= MR_SEVERITY_MAX; s++) {
            st = mr_corrupt_tokens(out, d->tokens, 1, cols, m->vocab, m->cfg.vocab_size, ty, s,
                                   r->seed, 0, ws);
            if (st != MR_OK) break;
            char lab[64];
            snprintf(lab, sizeof lab, "%s:%d", ty->name, s);
            fprintf(t.fp, "%-22s ", lab);
            for (int i = 0; i < show; i++) utf8(t.fp, m->vocab[out[i]]);
            fputc('\n', t.fp);
        }
    }
    if (st == MR_OK)
        st = mr_textbuf_commit(&t, R->dir, "gallery.txt");
    else
        mr_textbuf_discard(&t);
    free(out);
    mr_corrupt_ws_free(ws);
    mr_model_free(m);
    return st;
}

/* the gallery is an extra: failures are noted in info->gallery, never fatal */
void mr_rep_gallery(rep *R)
{
    const mr_results *r = R->r;
    char *msg = R->info->gallery;
    size_t cap = sizeof R->info->gallery;
    if (!R->o->gallery) {
        snprintf(msg, cap, "not drawn (--no-gallery)");
        return;
    }
    if (!r->data[0]) {
        snprintf(msg, cap, "not drawn: the config names no data file");
        return;
    }
    struct stat sb;
    char data[1100];
    mr_rep_clean_str(data, sizeof data, r->data);
    if (stat(r->data, &sb) != 0) {
        snprintf(msg, cap, "not drawn: the run's data file %.900s is not here (paths in the config "
                 "are relative to where `moe-robust run` started)", data);
        return;
    }
    mr_dataset *d = NULL;
    int st = mr_dataset_load(&d, r->data, 1);
    if (st == MR_OK && d->kind == MR_DATA_IMAGES) {
        mr_gallery_opts go;
        mr_gallery_opts_init(&go);
        go.seed = r->seed;
        go.index = 0;
        char path[1300];
        snprintf(path, sizeof path, "%s/fig-gallery.png", R->dir);
        mr_gallery_image gi;
        st = mr_gallery_render(&gi, d->images, d->h, d->w, d->c, &go);
        if (st == MR_OK) st = mr_png_write(path, gi.pixels, gi.w, gi.h, gi.C);
        mr_gallery_image_free(&gi);
        if (st == MR_OK)
            snprintf(msg, cap, "fig-gallery.png");
    } else if (st == MR_OK) {
        st = text_gallery(R, d);
        if (st == MR_OK) snprintf(msg, cap, "gallery.txt");
    }
    if (st != MR_OK) {
        char why[900];
        mr_rep_clean_str(why, sizeof why, mr_error_message());
        snprintf(msg, cap, "not drawn: %s", why);
    }
    mr_dataset_free(d);
}
