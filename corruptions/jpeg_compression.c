/* jpeg_compression — ImageNet-C family: a JPEG round trip through libjpeg, as PIL's
 * x.save(buf, 'JPEG', quality=q) followed by Image.open(buf) (same library, default
 * settings: baseline, 4:2:0 chroma for RGB, islow DCT, fancy upsampling). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "../analysis/mr_error.h"
#include "mr_corrupt_impl.h"

/* make_cifar_c jpeg_compression: quality = [80, 65, 58, 50, 40][severity - 1] (224 px:
 * [25, 18, 15, 10, 7]) */
static const int jpeg_quality[MR_SEVERITY_MAX] = {80, 65, 58, 50, 40};

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} jerr;

static void on_error(j_common_ptr c)
{
    jerr *e = (jerr *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void on_message(j_common_ptr c) { (void)c; } /* warnings: silent */

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    struct jpeg_compress_struct ci;
    struct jpeg_decompress_struct di;
    jerr e;
    unsigned char *volatile buf = ws->jbuf;
    unsigned long size = ws->jcap;
    volatile int have_c = 0, have_d = 0;
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error;
    e.pub.output_message = on_message;
    if (setjmp(e.jb)) {
        if (have_c) jpeg_destroy_compress(&ci);
        if (have_d) jpeg_destroy_decompress(&di);
        if (buf != ws->jbuf) free(buf);
        return mr_error_set(MR_EFAILED, "libjpeg: %s", e.msg);
    }
    jpeg_create_compress(&ci);
    have_c = 1;
    unsigned char *dst = buf;
    jpeg_mem_dest(&ci, &dst, &size);
    ci.image_width = (JDIMENSION)W;
    ci.image_height = (JDIMENSION)H;
    ci.input_components = C;
    ci.in_color_space = C == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, jpeg_quality[s - 1], TRUE); /* PIL: force_baseline */
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(in + (size_t)ci.next_scanline * W * C);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    buf = dst; /* libjpeg may have replaced a too small buffer with its own */
    jpeg_destroy_compress(&ci);
    have_c = 0;

    di.err = &e.pub;
    jpeg_create_decompress(&di);
    have_d = 1;
    jpeg_mem_src(&di, buf, size);
    jpeg_read_header(&di, TRUE);
    di.out_color_space = C == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&di);
    if ((int)di.output_width != W || (int)di.output_height != H ||
        di.output_components != C) {
        strncpy(e.msg, "decoded image has another shape", sizeof e.msg);
        longjmp(e.jb, 1);
    }
    while (di.output_scanline < di.output_height) {
        JSAMPROW row = (JSAMPROW)(out + (size_t)di.output_scanline * W * C);
        jpeg_read_scanlines(&di, &row, 1);
    }
    jpeg_finish_decompress(&di);
    jpeg_destroy_decompress(&di);
    if (buf != ws->jbuf) free(buf);
    return 0;
}

const mr_corruption_type mr_corruption_jpeg_compression = {
    .name = "jpeg_compression", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_DIGITAL,
    .benchmark = "CIFAR-10-C jpeg_compression (ImageNet-C family)",
    .summary = "JPEG round trip (libjpeg) at quality 80 .. 40",
    .deterministic = 1, .default_severity = 0, .image = apply};
