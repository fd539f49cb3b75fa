/* JPEG decoding through libjpeg-turbo with its default settings (ISLOW
 * IDCT, fancy upsampling), the library and settings Pillow uses, so the
 * pixels equal Pillow's. Owns the error manager (setjmp/longjmp into a
 * recorded message), the warning policy and the scan limit; opening and
 * sniffing the file are image.c's. EXIF orientation is not applied, as in
 * Pillow's Image.open. */
#include "formats/image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "runtime/error.h"

/* A progressive file can make libjpeg re-decode the coefficient buffer once
 * per scan; libjpeg-turbo's own fuzzers stop at 100. */
#define MAX_SCANS 100

typedef struct jpeg_codec {
    struct jpeg_error_mgr errors; /* first: cinfo->err points here */
    struct jpeg_progress_mgr progress;
    struct jpeg_decompress_struct cinfo;
    jmp_buf jump;
    int64_t max_pixels;
    sr_status status;
    char message[JMSG_LENGTH_MAX];
} jpeg_codec;

static _Noreturn void fail(j_common_ptr cinfo, sr_status status, const char *message)
{
    jpeg_codec *c = (jpeg_codec *)cinfo->err;
    c->status = status;
    snprintf(c->message, sizeof c->message, "%s", message);
    longjmp(c->jump, 1);
}

static void on_error(j_common_ptr cinfo)
{
    jpeg_codec *c = (jpeg_codec *)cinfo->err;
    switch (cinfo->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
        fail(cinfo, SR_ERR_NO_MEMORY, "out of memory");
    case JERR_FILE_READ:
        fail(cinfo, SR_ERR_IO, "read error");
    case JERR_IMAGE_TOO_BIG: {
        /* Over libjpeg's 65500 per side. SOF is parsed by now: report it
         * like any oversized image when it is one. */
        sr_error limit = {{0}};
        if (sr_image_check_size(c->cinfo.image_width, c->cinfo.image_height,
                                c->max_pixels, &limit) == SR_ERR_LIMIT)
            fail(cinfo, SR_ERR_LIMIT, limit.message);
        break;
    }
    default:
        break;
    }
    char message[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, message);
    fail(cinfo, SR_ERR_FORMAT, message);
}

/* libjpeg reports a file that ends early as a warning and decodes the rest
 * as grey; that must fail. Other warnings (corrupt data that libjpeg can
 * resynchronise past) are ignored, as in Pillow. Trace messages too. */
static void on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        fail(cinfo, SR_ERR_FORMAT, "truncated image");
}

static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS)
        fail(cinfo, SR_ERR_LIMIT, "too many scans");
}

/* Everything that may longjmp. Only c and the arguments are used after a
 * jump, and none of them changes after setjmp. */
static sr_status decode(jpeg_codec *c, FILE *file, sr_image *image, sr_error *err)
{
    if (setjmp(c->jump))
        return sr_fail(err, c->status, "%s", c->message);

    struct jpeg_decompress_struct *cinfo = &c->cinfo;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &c->progress;
    jpeg_stdio_src(cinfo, file);
    jpeg_read_header(cinfo, TRUE);

    sr_status status = sr_image_check_size(cinfo->image_width, cinfo->image_height,
                                           c->max_pixels, err);
    if (status != SR_OK)
        return status;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        break;
    default: /* CMYK, YCCK, or an unknown component count */
        return sr_fail(err, SR_ERR_FORMAT, "unsupported JPEG colour space");
    }
    jpeg_start_decompress(cinfo);

    status = sr_image_alloc(image, cinfo->output_width, cinfo->output_height,
                            cinfo->output_components, SR_PIXEL_U8, err);
    if (status != SR_OK)
        return status;
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = (JSAMPROW)image->data + cinfo->output_scanline * image->stride;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    /* No jpeg_finish_decompress: once every row is out, a missing EOI
     * cannot change the pixels. */
    return SR_OK;
}

sr_status sr_jpeg_read(FILE *file, int64_t max_pixels, sr_image *image,
                       sr_error *err)
{
    jpeg_codec c;
    memset(&c, 0, sizeof c);
    c.max_pixels = max_pixels;
    c.cinfo.err = jpeg_std_error(&c.errors);
    c.errors.error_exit = on_error;
    c.errors.emit_message = on_message;
    c.progress.progress_monitor = on_progress;

    sr_status status = decode(&c, file, image, err);
    jpeg_destroy_decompress(&c.cinfo);
    if (status != SR_OK)
        sr_image_free(image);
    return status;
}
