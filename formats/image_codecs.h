/* Between the image front end (image.c), its codecs (png.c, jpeg.c) and
 * the EXIF orientation (orient.c). The front end opens the file, sniffs it
 * and picks a codec; each codec reads a stream positioned at the start of
 * the file: the header only, or the pixels too into an sr_image allocated
 * with sr_image_alloc in the orientation asked for. Not part of the
 * public API. */
#ifndef SR_FORMATS_IMAGE_CODECS_H
#define SR_FORMATS_IMAGE_CODECS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "srrun.h"

/* Bytes the front end reads for sniffing: the PNG signature and the whole
 * IHDR chunk, so a PNG's size is known before libpng reads anything. */
#define SR_IMAGE_HEAD_SIZE 33

/* Refuses a zero-sized image (SR_ERR_FORMAT) or one over max_pixels
 * (SR_ERR_LIMIT), with checked arithmetic. max_pixels must be positive. */
sr_status sr_image_check_size(int64_t width, int64_t height, int64_t max_pixels,
                              sr_error *err);

/* What the front end asks of a codec. */
typedef struct sr_read_request {
    int64_t max_pixels;   /* positive */
    int keep_orientation; /* leave the pixels as stored */
    int pixels;           /* decode the pixels; else fill only the shape and
                             meta.orientation, holding no memory */
} sr_read_request;

/* head holds the first n_head bytes of the file; file is rewound to 0. */
sr_status sr_png_read(FILE *file, const uint8_t *head, size_t n_head,
                      const sr_read_request *req, sr_image *image, sr_error *err);
sr_status sr_jpeg_read(FILE *file, const sr_read_request *req, sr_image *image,
                       sr_error *err);

/* The orientation (1..8) in an EXIF block that starts with its TIFF header
 * ("II*\0" or "MM\0*"), or 0 when it has none or the block is malformed. */
int sr_exif_orientation(const uint8_t *tiff, size_t size);

/* Sets image's width and height: those of a width x height stored picture
 * shown in this orientation (5 to 8 swap them). */
void sr_orient_shape(int orientation, int64_t width, int64_t height, sr_image *image);

/* Puts the rows of a width x height stored picture into image (allocated
 * in the oriented shape, U8 or U16) where the orientation puts them. */
typedef struct sr_orienter {
    sr_image *image;
    int64_t width, height; /* stored */
    int orientation;       /* 1..8 */
    int64_t pixel_bytes;
} sr_orienter;

void sr_orienter_init(sr_orienter *o, sr_image *image, int64_t width, int64_t height,
                      int orientation);
/* The image row that stored row y fills as it is (orientations 1 and 4),
 * for a codec to decode into directly; else NULL. */
uint8_t *sr_orienter_row(const sr_orienter *o, int64_t y);
/* Places n pixels of stored row y, at columns x0, x0 + dx, ... */
void sr_orienter_place(const sr_orienter *o, int64_t y, int64_t x0, int64_t dx, int64_t n,
                       const uint8_t *pixels);

/* libpng's largest side (PNG_UINT_31_MAX). */
#define SR_PNG_MAX_SIDE INT64_C(0x7fffffff)

/* Encoders, row by row (formats/image_writer.h is their front end): _new
 * writes what comes before the pixels of an image of this shape (width,
 * height, channels, type and meta; data unread), validated by the front
 * end; _rows encodes rows->height more rows (of the shape's width,
 * channels and type); _finish ends the file once every row is in. After a
 * failure the writer can only be freed. PNG: U8/U16 with 1-4 channels.
 * JPEG: U8 with 1-4 channels (alpha composited on white), sides up to
 * SR_JPEG_MAX_SIDE, at quality 1..100. */
typedef struct sr_png_writer sr_png_writer;
sr_status sr_png_writer_new(FILE *file, const sr_image *shape, sr_png_writer **writer,
                            sr_error *err);
sr_status sr_png_writer_rows(sr_png_writer *w, const sr_image *rows, sr_error *err);
sr_status sr_png_writer_finish(sr_png_writer *w, sr_error *err);
void sr_png_writer_free(sr_png_writer *w);

/* JPEG output keeps full-resolution chroma (4:4:4) from this quality on. */
#define SR_JPEG_FULL_CHROMA 90

/* libjpeg's largest side. */
#define SR_JPEG_MAX_SIDE 65500

typedef struct sr_jpeg_writer sr_jpeg_writer;
sr_status sr_jpeg_writer_new(FILE *file, const sr_image *shape, int quality,
                             sr_jpeg_writer **writer, sr_error *err);
sr_status sr_jpeg_writer_rows(sr_jpeg_writer *w, const sr_image *rows, sr_error *err);
sr_status sr_jpeg_writer_finish(sr_jpeg_writer *w, sr_error *err);
void sr_jpeg_writer_free(sr_jpeg_writer *w);

#endif
