/* Image files written row by row: the one path every PNG and JPEG srrun
 * writes takes, whole images (sr_image_write_*) and rows streamed from a
 * run as its bands finish (sr_session_upscale_to_file) alike, so that both
 * make the same bytes. */
#ifndef SR_FORMATS_IMAGE_WRITER_H
#define SR_FORMATS_IMAGE_WRITER_H

#include <stdint.h>
#include <stdio.h>

#include "srrun.h"

typedef struct sr_image_writer sr_image_writer;

/* Checks that format can hold an image of this shape (width, height,
 * channels, type; data is not read) at this quality (JPEG: 1..100), as
 * every writer does before writing anything. */
sr_status sr_image_writer_check(sr_image_format format, const sr_image *shape, int quality,
                                sr_error *err);

/* Starts an image of this shape in file: checks it (as above) and writes
 * what comes before the pixels, with shape->meta's colour metadata (read
 * now, not kept). */
sr_status sr_image_writer_new(FILE *file, sr_image_format format, const sr_image *shape,
                              int quality, sr_image_writer **writer, sr_error *err);

/* Encodes the next rows->height rows, which have the shape's width,
 * channels and type (rows->data and stride are read; meta is not). After
 * a failure the writer refuses everything but sr_image_writer_free. */
sr_status sr_image_writer_rows(sr_image_writer *w, const sr_image *rows, sr_error *err);

/* Ends the file, once every row has been written. */
sr_status sr_image_writer_finish(sr_image_writer *w, sr_error *err);

void sr_image_writer_free(sr_image_writer *w);

/* Memory a writer of this shape holds, at most: its encoder's state and
 * buffered rows. */
int64_t sr_image_writer_bytes(sr_image_format format, const sr_image *shape);

#endif
