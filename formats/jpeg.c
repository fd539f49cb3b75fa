/* JPEG decoding through libjpeg-turbo with its default settings (ISLOW
 * IDCT, fancy upsampling), the library and settings Pillow uses, so the
 * pixels equal Pillow's; and encoding (libjpeg's defaults at a given
 * quality). The ICC profile (APP2 markers) is read into and written from
 * image->meta. Owns the error managers (setjmp/longjmp into a recorded
 * message), the warning policy and the scan limit; opening and sniffing
 * the file are image.c's. The EXIF orientation (the first APP1 "Exif"
 * marker) is applied as rows come out, as Pillow's ImageOps.exif_transpose
 * does after decoding. */
#include <stdlib.h>
#include "formats/image_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "base/error.h"

/* A progressive file can make libjpeg re-decode the coefficient buffer once
 * per scan; libjpeg-turbo's own fuzzers stop at 100. */
#define MAX_SCANS 100

typedef struct jpeg_codec {
    struct jpeg_error_mgr errors; /* first: cinfo->err points here */
    struct jpeg_progress_mgr progress;
    struct jpeg_decompress_struct cinfo;
    jmp_buf jump;
    int64_t max_pixels;
    JOCTET *icc; /* read before the image is allocated; freed unless handed over */
    unsigned int icc_size;
    JSAMPLE *row; /* a row as stored, when it cannot go straight into the image */
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

/* The orientation in the first APP1 marker that holds EXIF, or 0. */
static int read_orientation(j_decompress_ptr cinfo)
{
    static const char exif[6] = "Exif\0";
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= sizeof exif &&
            memcmp(m->data, exif, sizeof exif) == 0)
            return sr_exif_orientation(m->data + sizeof exif, m->data_length - sizeof exif);
    return 0;
}

/* Everything that may longjmp. Only c and the arguments are used after a
 * jump, and none of them changes after setjmp. */
static sr_status decode(jpeg_codec *c, FILE *file, const sr_read_request *req, sr_image *image,
                        sr_error *err)
{
    if (setjmp(c->jump))
        return sr_fail(err, c->status, "%s", c->message);

    struct jpeg_decompress_struct *cinfo = &c->cinfo;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &c->progress;
    jpeg_stdio_src(cinfo, file);
    /* APP1 markers are kept for the EXIF orientation, APP2 for the ICC
     * profile. Their memory is bounded by the file's size (each marker's
     * bytes come from the file). */
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xffff);
    jpeg_save_markers(cinfo, JPEG_APP0 + 2, 0xffff);
    jpeg_read_header(cinfo, TRUE);

    const int64_t width = cinfo->image_width, height = cinfo->image_height;
    sr_status status = sr_image_check_size(width, height, c->max_pixels, err);
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
    /* The orientation applied, and the one left for a viewer to apply. */
    const int stored = read_orientation(cinfo);
    const int applied = req->keep_orientation ? 1 : stored;
    const int left = req->keep_orientation || !stored ? stored : 1;
    sr_image shape = {.channels = cinfo->out_color_space == JCS_RGB ? 3 : 1,
                      .type = SR_PIXEL_U8,
                      .meta.orientation = left};
    sr_orient_shape(applied, width, height, &shape);
    if (!req->pixels) {
        *image = shape;
        return SR_OK;
    }
    jpeg_start_decompress(cinfo);

    status = sr_image_alloc(image, shape.width, shape.height, shape.channels, SR_PIXEL_U8, err);
    if (status != SR_OK)
        return status;
    image->meta.orientation = left;
    /* A broken profile (missing or duplicate chunks) is a warning that
     * leaves none; one over the cap is dropped. */
    if (jpeg_read_icc_profile(cinfo, &c->icc, &c->icc_size) && c->icc_size > 0 &&
        c->icc_size <= SR_MAX_ICC_BYTES) {
        image->meta.icc = c->icc;
        image->meta.icc_size = c->icc_size;
        c->icc = NULL;
    }
    sr_orienter o;
    sr_orienter_init(&o, image, width, height, applied);
    if (!sr_orienter_row(&o, 0)) {
        c->row = malloc((size_t)(width * shape.channels));
        if (!c->row)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        const int64_t y = cinfo->output_scanline;
        JSAMPROW row = c->row ? c->row : sr_orienter_row(&o, y);
        jpeg_read_scanlines(cinfo, &row, 1);
        if (c->row)
            sr_orienter_place(&o, y, 0, 1, width, c->row);
    }
    /* No jpeg_finish_decompress: once every row is out, a missing EOI
     * cannot change the pixels. */
    return SR_OK;
}

sr_status sr_jpeg_read(FILE *file, const sr_read_request *req, sr_image *image,
                       sr_error *err)
{
    jpeg_codec c;
    memset(&c, 0, sizeof c);
    c.max_pixels = req->max_pixels;
    c.cinfo.err = jpeg_std_error(&c.errors);
    c.errors.error_exit = on_error;
    c.errors.emit_message = on_message;
    c.progress.progress_monitor = on_progress;

    sr_status status = decode(&c, file, req, image, err);
    jpeg_destroy_decompress(&c.cinfo);
    free(c.icc);
    free(c.row);
    if (status != SR_OK)
        sr_image_free(image);
    return status;
}

/* ---- Writing ---- */

struct sr_jpeg_writer {
    struct jpeg_error_mgr errors; /* first: cinfo->err points here */
    struct jpeg_compress_struct cinfo;
    jmp_buf jump;
    JSAMPLE *row; /* a composited row, for images with alpha */
    sr_status status;
    char message[JMSG_LENGTH_MAX];
};
typedef struct sr_jpeg_writer jpeg_writer;

static void on_write_error(j_common_ptr cinfo)
{
    jpeg_writer *w = (jpeg_writer *)cinfo->err;
    w->status = cinfo->err->msg_code == JERR_OUT_OF_MEMORY ? SR_ERR_NO_MEMORY : SR_ERR_IO;
    cinfo->err->format_message(cinfo, w->message);
    longjmp(w->jump, 1);
}

static void on_write_message(j_common_ptr cinfo, int level)
{
    (void)cinfo; /* the library never prints */
    (void)level;
}

/* The profile's colour space (header bytes 16-19) must be the image's. */
static int icc_fits(const sr_image_meta *meta, int components)
{
    return meta->icc && meta->icc_size >= 132 && meta->icc_size <= SR_MAX_ICC_BYTES &&
           memcmp(meta->icc + 16, components == 3 ? "RGB " : "GRAY", 4) == 0;
}

/* c * a + 255 - a, rounded, for every colour sample of a row with alpha. */
static void composite_row(const uint8_t *in, int channels, int64_t width, JSAMPLE *out)
{
    const int colour = channels - 1;
    for (int64_t x = 0; x < width; x++) {
        const unsigned a = in[x * channels + colour];
        for (int c = 0; c < colour; c++)
            out[x * colour + c] =
                (JSAMPLE)((in[x * channels + c] * a + 255 * (255 - a) + 127) / 255);
    }
}

/* The header, the tables and the ICC profile: everything before the first
 * row. Only w and the arguments are used after a jump, and none of them
 * changes after setjmp. */
static sr_status start(jpeg_writer *w, FILE *file, const sr_image *image, int quality,
                       sr_error *err)
{
    if (setjmp(w->jump))
        return sr_fail(err, w->status, "%s", w->message);
    struct jpeg_compress_struct *cinfo = &w->cinfo;
    jpeg_create_compress(cinfo);
    jpeg_stdio_dest(cinfo, file);
    const int components = image->channels >= 3 ? 3 : 1;
    cinfo->image_width = (JDIMENSION)image->width;
    cinfo->image_height = (JDIMENSION)image->height;
    cinfo->input_components = components;
    cinfo->in_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    /* libjpeg halves the chroma both ways (4:2:0) by default; from quality
     * SR_JPEG_FULL_CHROMA on, keep it whole (4:4:4), as Photoshop does at
     * its high settings: on a detailed upscaled photo (the tests' leaves)
     * 4:2:0 costs a mean 6 levels even at quality 100, against 0.5 with
     * 4:4:4 (3.8 at quality 90). */
    if (components == 3 && quality >= SR_JPEG_FULL_CHROMA)
        cinfo->comp_info[0].h_samp_factor = cinfo->comp_info[0].v_samp_factor = 1;
    if (image->channels == 2 || image->channels == 4) {
        w->row = malloc((size_t)image->width * (size_t)components);
        if (!w->row)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    }
    jpeg_start_compress(cinfo, TRUE);
    if (icc_fits(&image->meta, components))
        jpeg_write_icc_profile(cinfo, image->meta.icc, (unsigned int)image->meta.icc_size);
    return SR_OK;
}

void sr_jpeg_writer_free(sr_jpeg_writer *w)
{
    if (!w)
        return;
    jpeg_destroy_compress(&w->cinfo);
    free(w->row);
    free(w);
}

sr_status sr_jpeg_writer_new(FILE *file, const sr_image *shape, int quality,
                             sr_jpeg_writer **writer, sr_error *err)
{
    *writer = NULL;
    jpeg_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    w->cinfo.err = jpeg_std_error(&w->errors);
    w->errors.error_exit = on_write_error;
    w->errors.emit_message = on_write_message;
    const sr_status st = start(w, file, shape, quality, err);
    if (st != SR_OK) {
        sr_jpeg_writer_free(w);
        return st;
    }
    *writer = w;
    return SR_OK;
}

sr_status sr_jpeg_writer_rows(sr_jpeg_writer *w, const sr_image *rows, sr_error *err)
{
    if (setjmp(w->jump))
        return sr_fail(err, w->status, "%s", w->message);
    for (int64_t y = 0; y < rows->height; y++) {
        const uint8_t *in = (const uint8_t *)rows->data + y * rows->stride;
        JSAMPROW row = (JSAMPROW)in;
        if (w->row) {
            composite_row(in, rows->channels, rows->width, w->row);
            row = w->row;
        }
        jpeg_write_scanlines(&w->cinfo, &row, 1);
    }
    return SR_OK;
}

sr_status sr_jpeg_writer_finish(sr_jpeg_writer *w, sr_error *err)
{
    if (setjmp(w->jump))
        return sr_fail(err, w->status, "%s", w->message);
    jpeg_finish_compress(&w->cinfo);
    return SR_OK;
}
