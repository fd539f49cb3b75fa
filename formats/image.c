/* The image front end: sr_image_alloc/free and the metadata's ownership,
 * sr_image_read and sr_image_read_info (open a file or a buffer as a
 * stream, sniff the content, hand the stream to a codec), their _memory
 * forms, sr_image_check_output (what each format can hold) and
 * sr_image_write_png/jpeg (through formats/file.c: whole or not at all)
 * and their _stream and _memory forms, all through the row writer
 * (image_writer.h) that streamed outputs use too. Pixel decoding and
 * encoding live in png.c and jpeg.c, the EXIF orientation in orient.c;
 * this file knows nothing about either format beyond its magic bytes and
 * its limits. */
#define _POSIX_C_SOURCE 200809L
#include "formats/image_codecs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/image_writer.h"
#include "base/error.h"
#include "base/options.h"

/* sr_image_read_options as of 0.5.0, when it got its size. */
#define READ_OPTIONS_BASE_SIZE \
    (offsetof(sr_image_read_options, keep_orientation) + sizeof(int))

static int64_t bytes_per_sample(sr_pixel_type type)
{
    switch (type) {
    case SR_PIXEL_U8: return 1;
    case SR_PIXEL_U16: return 2;
    case SR_PIXEL_F32: return 4;
    default: return 0;
    }
}

/* a * b for positive a and b, or -1 when it does not fit in int64. */
static int64_t mul_checked(int64_t a, int64_t b)
{
    return a > INT64_MAX / b ? -1 : a * b;
}

sr_status sr_image_check_size(int64_t width, int64_t height, int64_t max_pixels,
                              sr_error *err)
{
    if (width <= 0 || height <= 0)
        return sr_fail(err, SR_ERR_FORMAT, "image %lldx%lld has no pixels",
                       (long long)width, (long long)height);
    if (width > max_pixels / height)
        return sr_fail(err, SR_ERR_LIMIT,
                       "image %lldx%lld exceeds the %lld-pixel limit",
                       (long long)width, (long long)height,
                       (long long)max_pixels);
    return SR_OK;
}

sr_status sr_image_alloc(sr_image *image, int64_t width, int64_t height,
                         int channels, sr_pixel_type type, sr_error *err)
{
    if (!image)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no image to allocate");
    memset(image, 0, sizeof *image);
    int64_t bytes = bytes_per_sample(type);
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || !bytes)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "bad image geometry %lldx%lld, %d channels, type %d",
                       (long long)width, (long long)height, channels, (int)type);
    int64_t stride = mul_checked(mul_checked(width, channels), bytes);
    int64_t size = stride < 0 ? -1 : mul_checked(stride, height);
    if (size < 0 || (uint64_t)size > SIZE_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "image %lldx%lld is too large",
                       (long long)width, (long long)height);
    void *data = calloc(1, (size_t)size);
    if (!data)
        return sr_fail(err, SR_ERR_NO_MEMORY,
                       "out of memory for a %lldx%lld image",
                       (long long)width, (long long)height);
    image->width = width;
    image->height = height;
    image->channels = channels;
    image->type = type;
    image->stride = stride;
    image->data = data;
    return SR_OK;
}

void sr_image_free(sr_image *image)
{
    if (!image)
        return;
    free(image->data);
    free(image->meta.icc);
    memset(image, 0, sizeof *image);
}

sr_status sr_image_copy_meta(sr_image *dst, const sr_image *src, sr_error *err)
{
    if (!dst || !src)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no image to copy metadata between");
    if (dst == src)
        return SR_OK;
    sr_image_meta meta = src->meta;
    if (src->meta.icc && src->meta.icc_size) {
        meta.icc = malloc(src->meta.icc_size);
        if (!meta.icc)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for an ICC profile");
        memcpy(meta.icc, src->meta.icc, src->meta.icc_size);
    } else {
        meta.icc = NULL;
        meta.icc_size = 0;
    }
    free(dst->meta.icc);
    dst->meta = meta;
    return SR_OK;
}

static int is_png(const uint8_t *head, size_t n)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return n >= sizeof sig && memcmp(head, sig, sizeof sig) == 0;
}

static int is_jpeg(const uint8_t *head, size_t n)
{
    return n >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff;
}

/* The options as a codec request; all zero (or NULL) is the default. */
static sr_status make_request(const sr_image_read_options *options, int pixels,
                              sr_read_request *req, sr_error *err)
{
    sr_image_read_options o;
    sr_status st = sr_options_read(&o, sizeof o, READ_OPTIONS_BASE_SIZE, READ_OPTIONS_BASE_SIZE, options,
                                   "image read options", err);
    if (st != SR_OK)
        return st;
    if (o.max_pixels < 0)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image read request");
    *req = (sr_read_request){
        .max_pixels = o.max_pixels ? o.max_pixels : SR_DEFAULT_MAX_PIXELS,
        .keep_orientation = o.keep_orientation,
        .pixels = pixels,
    };
    return SR_OK;
}

/* Sniffs a stream positioned at the start of an image and has its codec
 * read the header, or the pixels too. The file and memory readers differ
 * only in where the stream comes from. */
static sr_status read_stream(FILE *file, const sr_read_request *req, sr_image *image,
                             sr_error *err)
{
    uint8_t head[SR_IMAGE_HEAD_SIZE];
    size_t n = fread(head, 1, sizeof head, file);
    if (ferror(file))
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (fseek(file, 0, SEEK_SET) != 0)
        return sr_fail(err, SR_ERR_IO, "cannot seek: %s", strerror(errno));
    if (n == 0)
        return sr_fail(err, SR_ERR_FORMAT, "empty file");
    if (is_png(head, n))
        return sr_png_read(file, head, n, req, image, err);
    if (is_jpeg(head, n))
        return sr_jpeg_read(file, req, image, err);
    return sr_fail(err, SR_ERR_FORMAT, "not a PNG or JPEG image");
}

static sr_status read_file(const char *path, const sr_image_read_options *options,
                           int pixels, sr_image *image, sr_error *err)
{
    if (image)
        memset(image, 0, sizeof *image);
    if (!path || !image)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image read request");
    sr_read_request req;
    sr_status status = make_request(options, pixels, &req, err);
    if (status != SR_OK)
        return status;
    FILE *file;
    status = sr_file_open_regular(path, &file, NULL, err);
    if (status == SR_OK) {
        status = read_stream(file, &req, image, err);
        fclose(file);
    }
    if (status != SR_OK)
        sr_error_prefix(err, path);
    return status;
}

static sr_status read_memory(const void *data, size_t size,
                             const sr_image_read_options *options, int pixels, sr_image *image,
                             sr_error *err)
{
    if (image)
        memset(image, 0, sizeof *image);
    if (!data || !image)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image read request");
    sr_read_request req;
    sr_status status = make_request(options, pixels, &req, err);
    if (status != SR_OK)
        return status;
    /* Opened for reading only: the cast does not let anything write. */
    FILE *file = fmemopen((void *)data, size, "rb");
    if (!file)
        return sr_fail(err, errno == ENOMEM ? SR_ERR_NO_MEMORY : SR_ERR_IO, "%s",
                       strerror(errno));
    status = read_stream(file, &req, image, err);
    fclose(file);
    return status;
}

sr_status sr_image_read(const char *path, const sr_image_read_options *options,
                        sr_image *image, sr_error *err)
{
    return read_file(path, options, 1, image, err);
}

sr_status sr_image_read_info(const char *path, const sr_image_read_options *options,
                             sr_image *image, sr_error *err)
{
    return read_file(path, options, 0, image, err);
}

sr_status sr_image_read_memory(const void *data, size_t size,
                               const sr_image_read_options *options, sr_image *image,
                               sr_error *err)
{
    return read_memory(data, size, options, 1, image, err);
}

sr_status sr_image_read_info_memory(const void *data, size_t size,
                                    const sr_image_read_options *options, sr_image *image,
                                    sr_error *err)
{
    return read_memory(data, size, options, 0, image, err);
}

static const char *const format_names[] = {[SR_IMAGE_PNG] = "PNG", [SR_IMAGE_JPEG] = "JPEG"};
_Static_assert(sizeof format_names / sizeof *format_names == SR_IMAGE_FORMAT_COUNT,
               "one name per image format");

/* Whether a format can hold an image of this shape; the pixels are not read. */
static sr_status check_output(sr_image_format format, const sr_image *image, sr_error *err)
{
    const char *name = format_names[format];
    if (image->channels < 1 || image->channels > 4 || image->width <= 0 || image->height <= 0)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "cannot write a %lldx%lld image with %d channels as %s",
                       (long long)image->width, (long long)image->height, image->channels,
                       name);
    const int64_t max_side = format == SR_IMAGE_JPEG ? SR_JPEG_MAX_SIDE : SR_PNG_MAX_SIDE;
    if (image->width > max_side || image->height > max_side)
        return sr_fail(err, SR_ERR_LIMIT,
                       "a %lldx%lld image is too large for %s (at most %lld pixels a side)",
                       (long long)image->width, (long long)image->height, name,
                       (long long)max_side);
    if (format == SR_IMAGE_JPEG && image->type != SR_PIXEL_U8)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "JPEG output needs 8-bit pixels");
    if (image->type != SR_PIXEL_U8 && image->type != SR_PIXEL_U16)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "PNG output needs 8- or 16-bit pixels");
    /* What sr_image_alloc can hold. */
    const int64_t row_bytes =
        mul_checked(mul_checked(image->width, image->channels), bytes_per_sample(image->type));
    const int64_t size = mul_checked(row_bytes, image->height);
    if (size < 0 || (uint64_t)size > SIZE_MAX)
        return sr_fail(err, SR_ERR_LIMIT, "a %lldx%lld image is too large to hold in memory",
                       (long long)image->width, (long long)image->height);
    if (image->data && image->stride < row_bytes)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "image stride %lld is shorter than a row (%lld bytes)",
                       (long long)image->stride, (long long)row_bytes);
    return SR_OK;
}

/* What every writer checks before encoding: a shape the format can hold,
 * and a JPEG quality in range. */
sr_status sr_image_writer_check(sr_image_format format, const sr_image *shape, int quality,
                                sr_error *err)
{
    if (!shape || (unsigned)format >= SR_IMAGE_FORMAT_COUNT)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image output request");
    if (format == SR_IMAGE_JPEG && (quality < 1 || quality > 100))
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "JPEG quality %d is not in 1..100",
                       quality);
    return check_output(format, shape, err);
}

struct sr_image_writer {
    sr_image_format format;
    sr_image shape;  /* width, channels and type of the rows; no pixels, no meta */
    int64_t written; /* rows so far */
    bool failed;
    sr_png_writer *png;
    sr_jpeg_writer *jpeg;
};

sr_status sr_image_writer_new(FILE *file, sr_image_format format, const sr_image *shape,
                              int quality, sr_image_writer **writer, sr_error *err)
{
    if (!writer)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image output request");
    *writer = NULL;
    sr_status st = sr_image_writer_check(format, shape, quality, err);
    if (st != SR_OK)
        return st;
    sr_image_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    w->format = format;
    w->shape = (sr_image){.width = shape->width, .height = shape->height,
                          .channels = shape->channels, .type = shape->type};
    st = format == SR_IMAGE_PNG ? sr_png_writer_new(file, shape, &w->png, err)
                                : sr_jpeg_writer_new(file, shape, quality, &w->jpeg, err);
    if (st != SR_OK) {
        free(w);
        return st;
    }
    *writer = w;
    return SR_OK;
}

sr_status sr_image_writer_rows(sr_image_writer *w, const sr_image *rows, sr_error *err)
{
    if (w->failed)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "the image writer failed earlier");
    const sr_image *s = &w->shape;
    if (!rows || !rows->data || rows->width != s->width || rows->channels != s->channels ||
        rows->type != s->type || rows->height < 0 || rows->height > s->height - w->written ||
        rows->stride < rows->width * rows->channels * bytes_per_sample(rows->type))
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "rows do not continue the %lldx%lld image being written",
                       (long long)s->width, (long long)s->height);
    const sr_status st = w->png ? sr_png_writer_rows(w->png, rows, err)
                                : sr_jpeg_writer_rows(w->jpeg, rows, err);
    w->failed = st != SR_OK;
    w->written += rows->height;
    return st;
}

sr_status sr_image_writer_finish(sr_image_writer *w, sr_error *err)
{
    if (w->failed)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "the image writer failed earlier");
    if (w->written != w->shape.height)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%lld of the image's %lld rows written",
                       (long long)w->written, (long long)w->shape.height);
    const sr_status st = w->png ? sr_png_writer_finish(w->png, err)
                                : sr_jpeg_writer_finish(w->jpeg, err);
    w->failed = true; /* finished: nothing more to write */
    return st;
}

void sr_image_writer_free(sr_image_writer *w)
{
    if (!w)
        return;
    sr_png_writer_free(w->png);
    sr_jpeg_writer_free(w->jpeg);
    free(w);
}

/* libpng keeps a row or two and zlib's deflate state (256 KB at its
 * default window and memory level); libjpeg a band of 16 rows of each
 * component, colour-converted and downsampled, and a row of blocks. Both
 * rounded up generously: the bound is what matters. */
int64_t sr_image_writer_bytes(sr_image_format format, const sr_image *shape)
{
    const int64_t row = shape->width * shape->channels * bytes_per_sample(shape->type);
    return (INT64_C(1) << 20) + (format == SR_IMAGE_PNG ? 4 * (row + 1) : 64 * row);
}

typedef struct encode_job {
    const sr_image *image;
    sr_image_format format;
    int quality;
} encode_job;

/* A whole image, through the row writer. */
static sr_status encode(FILE *file, void *user, sr_error *err)
{
    const encode_job *job = user;
    sr_image_writer *w;
    sr_status st = sr_image_writer_new(file, job->format, job->image, job->quality, &w, err);
    if (st != SR_OK)
        return st;
    st = sr_image_writer_rows(w, job->image, err);
    if (st == SR_OK)
        st = sr_image_writer_finish(w, err);
    sr_image_writer_free(w);
    return st;
}

sr_status sr_image_check_output(const char *path, sr_image_format format, const sr_image *shape,
                                sr_error *err)
{
    if (!path || !shape || (unsigned)format >= SR_IMAGE_FORMAT_COUNT)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image output request");
    sr_status status = check_output(format, shape, err);
    if (status != SR_OK)
        sr_error_prefix(err, path);
    return status;
}

static sr_status write_image(const char *path, const sr_image *image, sr_image_format format,
                             int quality, sr_error *err)
{
    encode_job job = {image, format, quality};
    sr_status status = sr_file_write_atomic(path, encode, &job, err);
    if (status != SR_OK)
        sr_error_prefix(err, path);
    return status;
}

/* What every writer checks before encoding, and pixels to write. */
static sr_status check_write(const sr_image *image, sr_image_format format, int quality,
                             sr_error *err)
{
    if (!image || !image->data)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no image to write");
    return sr_image_writer_check(format, image, quality, err);
}

sr_status sr_image_write_png(const char *path, const sr_image *image,
                             sr_error *err)
{
    if (!path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no path to write to");
    sr_status status = check_write(image, SR_IMAGE_PNG, 0, err);
    if (status != SR_OK) {
        sr_error_prefix(err, path);
        return status;
    }
    return write_image(path, image, SR_IMAGE_PNG, 0, err);
}

sr_status sr_image_write_jpeg(const char *path, const sr_image *image, int quality,
                              sr_error *err)
{
    if (!path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no path to write to");
    sr_status status = check_write(image, SR_IMAGE_JPEG, quality, err);
    if (status != SR_OK) {
        sr_error_prefix(err, path);
        return status;
    }
    return write_image(path, image, SR_IMAGE_JPEG, quality, err);
}

static sr_status write_stream(FILE *file, const sr_image *image, sr_image_format format,
                              int quality, sr_error *err)
{
    encode_job job = {image, format, quality};
    sr_status status = encode(file, &job, err);
    if (status == SR_OK && fflush(file) != 0)
        status = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    return status;
}

sr_status sr_image_write_png_stream(FILE *file, const sr_image *image, sr_error *err)
{
    if (!file)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no stream to write to");
    sr_status status = check_write(image, SR_IMAGE_PNG, 0, err);
    return status == SR_OK ? write_stream(file, image, SR_IMAGE_PNG, 0, err) : status;
}

sr_status sr_image_write_jpeg_stream(FILE *file, const sr_image *image, int quality,
                                     sr_error *err)
{
    if (!file)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no stream to write to");
    sr_status status = check_write(image, SR_IMAGE_JPEG, quality, err);
    return status == SR_OK ? write_stream(file, image, SR_IMAGE_JPEG, quality, err) : status;
}

sr_status sr_image_write_memory(const sr_image *image, sr_image_format format, int quality,
                                void **data, size_t *size, sr_error *err)
{
    if (data)
        *data = NULL;
    if (size)
        *size = 0;
    if (!data || !size || (unsigned)format >= SR_IMAGE_FORMAT_COUNT)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "bad image output request");
    sr_status status = check_write(image, format, quality, err);
    if (status != SR_OK)
        return status;
    char *buffer = NULL;
    size_t length = 0;
    FILE *file = open_memstream(&buffer, &length);
    if (!file)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    encode_job job = {image, format, quality};
    status = encode(file, &job, err);
    /* Closing sets buffer and length; a full memory often shows up here. */
    if (fclose(file) != 0 && status == SR_OK)
        status = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (status != SR_OK) {
        free(buffer);
        return status;
    }
    *data = buffer;
    *size = length;
    return SR_OK;
}

void sr_free(void *p)
{
    free(p);
}
