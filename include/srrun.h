/* srrun: run image super-resolution networks from PyTorch-exported weights.
 *
 * This header is the whole public API. A program that embeds srrun loads a
 * model once, opens a session per thread, and runs images through it:
 *
 *     sr_error err = {0};
 *     sr_model *model;
 *     if (sr_model_load("srpgan_x4.pth", NULL, &model, &err) != SR_OK)
 *         die(err.message);
 *     sr_session *session;
 *     sr_session_new(model, NULL, &session, &err);        // NULL: default options
 *     sr_image in, out;
 *     sr_image_read("photo.png", 0, &in, &err);
 *     sr_image_alloc(&out, in.width * sr_model_scale(model),
 *                    in.height * sr_model_scale(model), 3, SR_PIXEL_U8, &err);
 *     if (sr_session_run(session, &in, &out) != SR_OK)
 *         die(sr_session_last_error(session));
 *     sr_image_write_png("photo_x4.png", &out, &err);
 *     sr_image_free(&in); sr_image_free(&out);
 *     sr_session_free(session); sr_model_free(model);
 *
 * Errors: every call that can fail returns an sr_status. Calls without a
 * session fill an optional sr_error with one line naming the problem (and,
 * for calls that take a path, starting with that path); a
 * session keeps the message of its last failure (sr_session_last_error). The
 * library never prints, never exits, and never aborts on bad input.
 *
 * Ownership and threads: a model is immutable after loading and may be shared
 * by any number of sessions on any threads; free it after its last session.
 * A session is used by one thread at a time. Images own their pixels only
 * when made by sr_image_read or sr_image_alloc (release with sr_image_free).
 *
 * Model files are untrusted: srrun reads torch.save files with its own zip
 * reader and a restricted unpickler that never runs code from the file.
 */
#ifndef SRRUN_H
#define SRRUN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library builds with hidden visibility; only SR_API symbols export. */
#if defined(__GNUC__)
#define SR_API __attribute__((visibility("default")))
#else
#define SR_API
#endif

#define SR_VERSION_MAJOR 0
#define SR_VERSION_MINOR 1
#define SR_VERSION_PATCH 0

SR_API const char *sr_version_string(void);

typedef enum sr_status {
    SR_OK = 0,
    SR_ERR_INVALID_ARGUMENT, /* the caller passed something unusable */
    SR_ERR_IO,               /* a file could not be opened, read or written */
    SR_ERR_FORMAT,           /* a file is malformed or of an unsupported kind */
    SR_ERR_UNSAFE,           /* a model file asks to run code; refused */
    SR_ERR_MODEL,            /* weights do not fit a known architecture */
    SR_ERR_LIMIT,            /* an input exceeds a size limit */
    SR_ERR_NO_MEMORY,
    SR_ERR_CANCELLED,        /* the progress callback asked to stop */
    SR_ERR_UNSUPPORTED,      /* a valid request this build cannot serve */
    SR_ERR_BAD_STATE,        /* the session failed earlier and cannot continue */
    SR_STATUS_COUNT
} sr_status;

/* A short phrase for a status, e.g. "malformed file". */
SR_API const char *sr_status_string(sr_status status);

/* The one-line description of a failure. Zero-initialise before use. */
typedef struct sr_error {
    char message[512];
} sr_error;

/* ---- Images ---------------------------------------------------------- */

typedef enum sr_pixel_type {
    SR_PIXEL_U8,  /* 0..255 */
    SR_PIXEL_U16, /* 0..65535, native byte order */
    SR_PIXEL_F32, /* 0..1 */
    SR_PIXEL_TYPE_COUNT
} sr_pixel_type;

/* Interleaved pixels, rows `stride` bytes apart. Channels: 1 gray,
 * 2 gray+alpha, 3 RGB, 4 RGBA. */
typedef struct sr_image {
    int64_t width, height;
    int channels;
    sr_pixel_type type;
    int64_t stride;
    void *data;
} sr_image;

/* Pillow's decompression-bomb error threshold; the default image limit. */
#define SR_DEFAULT_MAX_PIXELS INT64_C(178956970)

/* Decodes a PNG or JPEG (recognised by content, not by name) keeping the
 * file's channels and its depth (8 or 16 bits); palettes are expanded and
 * PNG transparency becomes alpha. Refuses images over max_pixels (0: the
 * default; negative is an invalid argument) after reading only the header. */
SR_API sr_status sr_image_read(const char *path, int64_t max_pixels,
                               sr_image *image, sr_error *err);

/* Writes an 8- or 16-bit image as PNG; through a temporary file renamed
 * at the end, so a failure leaves no file at path. */
SR_API sr_status sr_image_write_png(const char *path, const sr_image *image,
                                    sr_error *err);

/* Allocates a zeroed image with a packed stride. */
SR_API sr_status sr_image_alloc(sr_image *image, int64_t width, int64_t height,
                                int channels, sr_pixel_type type, sr_error *err);
SR_API void sr_image_free(sr_image *image);

/* ---- Models ---------------------------------------------------------- */

typedef struct sr_model sr_model;

typedef struct sr_model_options {
    int strict; /* refuse tensors the network does not use (default: a notice) */
} sr_model_options;

/* Loads weights from a torch.save file (state_dict, zip format) and builds
 * the network they describe. options may be NULL for the defaults. */
SR_API sr_status sr_model_load(const char *path, const sr_model_options *options,
                               sr_model **model, sr_error *err);
SR_API void sr_model_free(sr_model *model);

typedef struct sr_model_info {
    const char *architecture; /* "srpgan" */
    int scale;                /* output pixels per input pixel, per axis */
    int n_blocks;             /* residual blocks */
    int64_t n_params;
    int64_t n_input_pixel_flops; /* floating-point ops per input pixel */
} sr_model_info;

SR_API sr_model_info sr_model_get_info(const sr_model *model);
SR_API int sr_model_scale(const sr_model *model);

/* Notices about the file that did not stop loading (e.g. ignored keys),
 * one per line; NULL when there are none. */
SR_API const char *sr_model_notices(const sr_model *model);

/* ---- Sessions -------------------------------------------------------- */

typedef enum sr_backend {
    SR_BACKEND_AUTO,      /* the fastest available */
    SR_BACKEND_CPU,       /* OpenBLAS + OpenMP */
    SR_BACKEND_REFERENCE, /* the plain kernels in ops/: slow, the oracle */
    SR_BACKEND_COUNT
} sr_backend;

SR_API const char *sr_backend_name(sr_backend backend);

/* Called with the fraction of work done, in [0, 1]; a non-zero return
 * cancels the run, which then fails with SR_ERR_CANCELLED. */
typedef int (*sr_progress_fn)(void *user, double fraction);

typedef struct sr_session_options {
    sr_backend backend;
    int n_threads;           /* 0: all cores */
    sr_progress_fn progress; /* may be NULL */
    void *progress_user;
} sr_session_options;

SR_API sr_session_options sr_session_options_default(void);

typedef struct sr_session sr_session;

SR_API sr_status sr_session_new(const sr_model *model,
                                const sr_session_options *options,
                                sr_session **session, sr_error *err);
SR_API void sr_session_free(sr_session *session);

/* Upscales `in` (any channels and pixel type; alpha is composited on white,
 * gray replicated to RGB) into `out`, which the caller allocates at
 * scale x the input size, 3 channels, U8, U16 or F32. Values are clamped to
 * [0, 1] and rounded to the nearest integer level. */
SR_API sr_status sr_session_run(sr_session *session, const sr_image *in,
                                sr_image *out);

/* The message of the session's last failure, or "" after a success. */
SR_API const char *sr_session_last_error(const sr_session *session);

#ifdef __cplusplus
}
#endif

#endif /* SRRUN_H */
