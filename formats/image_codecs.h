/* Between the image front end (image.c) and its codecs (png.c, jpeg.c).
 * The front end opens the file, sniffs it and picks a codec; each codec
 * decodes a stream positioned at the start of the file into an sr_image
 * allocated with sr_image_alloc. Not part of the public API. */
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

/* head holds the first n_head bytes of the file; file is rewound to 0. */
sr_status sr_png_read(FILE *file, const uint8_t *head, size_t n_head,
                      int64_t max_pixels, sr_image *image, sr_error *err);
sr_status sr_jpeg_read(FILE *file, int64_t max_pixels, sr_image *image,
                       sr_error *err);

/* Encodes a validated U8/U16 image with 1-4 channels into file. */
sr_status sr_png_write(FILE *file, const sr_image *image, sr_error *err);

/* JPEG output keeps full-resolution chroma (4:4:4) from this quality on. */
#define SR_JPEG_FULL_CHROMA 90

/* libjpeg's largest side. */
#define SR_JPEG_MAX_SIDE 65500

/* Encodes a validated U8 image with 1-4 channels (alpha composited on
 * white) and sides up to SR_JPEG_MAX_SIDE at quality 1..100 into file. */
sr_status sr_jpeg_write(FILE *file, const sr_image *image, int quality, sr_error *err);

#endif
