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
 *     sr_image_read("photo.png", NULL, &in, &err);        // NULL: default options
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
 * NULL: a NULL handle, image, path or result pointer given to a call that
 * returns an sr_status fails with SR_ERR_INVALID_ARGUMENT. The getters
 * return a neutral value for a NULL handle (0, NULL, "" or
 * SR_BACKEND_AUTO, as each says); the free functions accept NULL. An
 * sr_error, options or sr_plan_info pointer may always be NULL.
 *
 * Threads: a model is immutable after loading and may be shared by any
 * number of sessions running at once on any threads; free it after its
 * last session. A session is used by one thread at a time (any thread,
 * not necessarily the one that made it). The calls without a session or
 * model (reading, writing and checking images, loading models) may run on
 * any threads at once, each with its own sr_error. srrun keeps no state
 * of its own outside its handles; what is process-wide is OpenMP's:
 * each thread that runs a session gets its own pool of n_threads workers
 * (see n_threads for sessions running at once). libsrrun.so carries its
 * own OpenBLAS, hidden, so that a BLAS the host process loaded (numpy's)
 * neither runs srrun's products nor is disturbed by them; once loaded it
 * stays loaded (dlclose leaves it: OpenMP's idle workers run its code).
 *
 * Ownership: a handle belongs to the caller from the call that made it
 * until its free function. An sr_image made by sr_image_read,
 * sr_image_read_memory or sr_image_alloc owns its pixels and metadata
 * (release both with sr_image_free). An sr_image the caller fills in
 * around its own buffer is only borrowed by each call it is given to
 * (nothing keeps its pointer); never pass it to sr_image_free, which
 * would free() the caller's buffer. If sr_image_copy_meta gave such an
 * image an ICC profile, release that alone with sr_free(image.meta.icc).
 * Strings a call returns (names, notices, errors, infos) belong to the
 * library and live as long as what returned them, or forever for names.
 *
 * Structs that grow: each options and info struct starts with `size_t
 * size`, the bytes the caller's compiler gave it, so that later versions
 * can add fields at the end without breaking programs built against
 * earlier ones. Initialise with the struct's _INIT macro
 *     sr_session_options opt = SR_SESSION_OPTIONS_INIT;
 *     opt.n_threads = 4;
 * or zero it: size 0 means the struct as of 0.5.0, and an all-zero
 * options struct is the defaults (so is a NULL pointer); a field added
 * after 0.5.0 is read only from a struct whose size is set, so use the
 * macro. The library reads only the fields the size covers (later ones
 * take their defaults) and refuses with SR_ERR_UNSUPPORTED a struct from a
 * newer srrun whose fields beyond what it knows are not zero. Info structs
 * it fills with the fields it knows, never past them, and sets size to
 * where they end; their size is read, so initialise them too (a size below
 * 0.5.0's or over 4096 bytes is refused as uninitialised). C++ before
 * C++20 has no designated initialisers for the macros: value-initialise
 * (`sr_plan_info info{};`) and set size.
 * sr_image, sr_image_meta and sr_error are fixed: a new property of
 * images would come with new calls, not new fields.
 *
 * Model files are untrusted: srrun reads torch.save files with its own zip
 * reader and a restricted unpickler that never runs code from the file.
 */
#ifndef SRRUN_H
#define SRRUN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
#define SR_VERSION_MINOR 10
#define SR_VERSION_PATCH 0

/* The library's version at run time, e.g. "0.5.0": what was loaded, which
 * may differ from the SR_VERSION_* this program was compiled with. */
SR_API const char *sr_version(void);

/* Frees memory the library returned for the caller to free (the bytes of
 * sr_image_write_memory); NULL is accepted. Use this, not free(): the
 * library may not share the program's allocator (a static C runtime). */
SR_API void sr_free(void *p);

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
    SR_ERR_BAD_STATE,        /* the session had a device failure; free it */
    SR_ERR_DEVICE,           /* the GPU or its driver failed */
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

/* Metadata of an image file. The colour metadata is carried from an input
 * to an output as it is: srrun never applies it to the pixels (neither does
 * Pillow). All zero means none. */
typedef struct sr_image_meta {
    uint8_t *icc;     /* ICC profile, uncompressed (PNG iCCP, JPEG APP2), or NULL */
    size_t icc_size;  /* at most SR_MAX_ICC_BYTES */
    int has_srgb;     /* a PNG sRGB chunk, */
    int srgb_intent;  /* with its rendering intent 0..3 */
    int32_t gamma;    /* PNG gAMA: file gamma x 100000 (45455 for 1/2.2); 0: none */
    int orientation;  /* EXIF orientation (1..8) of the pixels as they are: what a
                         viewer would still apply to show them upright; 1 after
                         sr_image_read applied the file's; 0: the file has none.
                         Never written to a file. */
} sr_image_meta;

/* Larger ICC profiles are dropped when reading (a PNG's is never inflated
 * beyond its declared size, nor when that size is over this). */
#define SR_MAX_ICC_BYTES (4 << 20)

/* Interleaved pixels, rows `stride` bytes apart. Channels: 1 gray,
 * 2 gray+alpha, 3 RGB, 4 RGBA (straight, not premultiplied, alpha). meta is
 * owned by the image when it was made by sr_image_read(_memory),
 * sr_image_alloc (zeroed) or sr_image_copy_meta, and freed by
 * sr_image_free. */
typedef struct sr_image {
    int64_t width, height;
    int channels;
    sr_pixel_type type;
    int64_t stride;
    void *data;
    sr_image_meta meta;
} sr_image;

/* Pillow's decompression-bomb error threshold; the default image limit. */
#define SR_DEFAULT_MAX_PIXELS INT64_C(178956970)

/* How an image file is read. All zero (or a NULL pointer) is the default. */
typedef struct sr_image_read_options {
    size_t size;          /* see "Structs that grow" at the top */
    int64_t max_pixels;   /* refuse larger images, from the header; 0:
                             SR_DEFAULT_MAX_PIXELS; negative is invalid */
    int keep_orientation; /* leave the pixels as stored, not turned upright by
                             the file's EXIF orientation */
} sr_image_read_options;
#define SR_IMAGE_READ_OPTIONS_INIT {.size = sizeof(sr_image_read_options)}

/* Decodes a PNG or JPEG (recognised by content, not by name) keeping the
 * file's channels and its depth (8 or 16 bits); palettes are expanded and
 * PNG transparency becomes alpha. Reads the colour metadata into
 * image->meta (PNG iCCP, sRGB, gAMA; JPEG ICC profile). Refuses images over
 * max_pixels after reading only the header. Only a regular file is read (a
 * FIFO is refused, not waited on).
 *
 * The EXIF orientation (tag 0x0112 of IFD0 in a JPEG's first APP1 "Exif"
 * marker or a PNG's eXIf chunk before the pixels; XMP is not read) is
 * applied, all eight values, as photo viewers and Pillow's
 * ImageOps.exif_transpose do: a phone's portrait stored 4032x3024 with
 * orientation 6 comes out 3024x4032, upright. Each row is placed where the
 * orientation puts it as it is decoded, so no second image is allocated;
 * besides the image, decoding holds a few rows, and a progressive JPEG its
 * coefficients (2 bytes a sample) until it returns. A malformed EXIF block
 * is ignored. */
SR_API sr_status sr_image_read(const char *path, const sr_image_read_options *options,
                               sr_image *image, sr_error *err);

/* Reads only the header (and the metadata chunks before the pixels) and
 * fills image's width, height, channels, type and meta.orientation as
 * sr_image_read would return them, with the same options; data stays NULL
 * and nothing is allocated (stride and the colour metadata are 0). A
 * caller plans with this (sr_session_plan_images) before decoding; the
 * file may change in between, so it reads the pixels with max_pixels set
 * to what it planned for. */
SR_API sr_status sr_image_read_info(const char *path, const sr_image_read_options *options,
                                    sr_image *image, sr_error *err);

/* As sr_image_read and sr_image_read_info, from the size bytes at data
 * (the whole file's contents), with the same decoders, limits, statuses
 * and messages; messages name no path. data is only read, and not kept:
 * the caller may free it on return. data NULL is SR_ERR_INVALID_ARGUMENT;
 * size 0 is an empty file (SR_ERR_FORMAT). */
SR_API sr_status sr_image_read_memory(const void *data, size_t size,
                                      const sr_image_read_options *options, sr_image *image,
                                      sr_error *err);
SR_API sr_status sr_image_read_info_memory(const void *data, size_t size,
                                           const sr_image_read_options *options,
                                           sr_image *image, sr_error *err);

typedef enum sr_image_format {
    SR_IMAGE_PNG,
    SR_IMAGE_JPEG,
    SR_IMAGE_FORMAT_COUNT
} sr_image_format;

/* Checks, before computing an image, that one of this shape (width,
 * height, channels, type; data may be NULL) can be written to path as
 * format: PNG holds 8- or 16-bit pixels, sides up to 2^31-1; JPEG 8-bit
 * pixels, sides up to 65500. Fails with SR_ERR_LIMIT for a size,
 * SR_ERR_INVALID_ARGUMENT otherwise, the message starting with path. The
 * writers check the same. */
SR_API sr_status sr_image_check_output(const char *path, sr_image_format format,
                                       const sr_image *shape, sr_error *err);

/* Writes an 8- or 16-bit image as PNG, whole or not at all: through an
 * unnamed temporary file (O_TMPFILE; where the file system has none, one
 * named path.XXXXXX) put in place when complete, so that a failure, or the
 * process killed meanwhile, leaves no file at path and an old one intact.
 * A new file gets mode 0666 less the umask; a replaced one keeps its mode
 * (and, as root, its owner). A symbolic link is written through (its
 * target replaced); a FIFO or character device, such as /dev/null, is
 * written into; a folder or other special file is refused. */
SR_API sr_status sr_image_write_png(const char *path, const sr_image *image,
                                    sr_error *err);

/* Writes an 8-bit image as baseline JPEG (libjpeg-turbo; colour keeps full
 * chroma resolution, 4:4:4, from quality 90 up and is subsampled 4:2:0
 * below) at quality 1..100 (90 is srrun's default), with
 * meta's ICC profile when its colour space (gray or RGB) fits the image;
 * sRGB and gamma are not written, JPEG has no place for them. Gray+alpha
 * and RGBA are composited on white, as srrun's input rule does; 16-bit and
 * sides over 65500 are refused. Whole or not at all, as the PNG writer.
 * Neither writer writes EXIF: the pixels are written as they are. */
SR_API sr_status sr_image_write_jpeg(const char *path, const sr_image *image,
                                     int quality, sr_error *err);

/* As sr_image_write_png and sr_image_write_jpeg, into an open stream (such
 * as stdout), flushed but not closed; a failure may leave part of the
 * image written. */
SR_API sr_status sr_image_write_png_stream(FILE *file, const sr_image *image, sr_error *err);
SR_API sr_status sr_image_write_jpeg_stream(FILE *file, const sr_image *image, int quality,
                                            sr_error *err);

/* Encodes the image as format (quality: JPEG only, 1..100; ignored for
 * PNG) into a new buffer: *data and *size are the file's bytes, which the
 * caller frees with sr_free. Checks and messages as the file writers'
 * (without a path). On failure *data is NULL and *size 0. */
SR_API sr_status sr_image_write_memory(const sr_image *image, sr_image_format format,
                                       int quality, void **data, size_t *size, sr_error *err);

/* Allocates a zeroed image with a packed stride and no metadata. */
SR_API sr_status sr_image_alloc(sr_image *image, int64_t width, int64_t height,
                                int channels, sr_pixel_type type, sr_error *err);
/* Frees the pixels and the metadata. */
SR_API void sr_image_free(sr_image *image);

/* Replaces dst's metadata with a copy of src's (e.g. an input's colour
 * profile onto the upscaled output before writing it). */
SR_API sr_status sr_image_copy_meta(sr_image *dst, const sr_image *src, sr_error *err);

/* ---- Models ---------------------------------------------------------- */

typedef struct sr_model sr_model;

typedef struct sr_model_options {
    size_t size; /* see "Structs that grow" at the top */
    int strict;  /* refuse tensors the network does not use (default: a notice) */
    /* Since 0.9.0: run the network on patches of patch x patch input
     * pixels, each with patch_margin pixels of context that its output
     * drops, instead of on the whole image (docs/design.md, "Patches").
     * For models trained on crops of that size whose InstanceNorm
     * statistics differ on a whole photo, as the default models' do.
     * 0 keeps what a model.bin records (the default models record their
     * training crop), -1 runs on whole images. sr_model_save records it;
     * sr_model_hparam lists it as "patch" and "patch_margin". Refused
     * for a model whose input is pixel-unshuffled. */
    int64_t patch;
    int64_t patch_margin;
    /* Since 0.10.0: the most threads loading uses (it reads the file and
     * checks the weights for NaN and Inf on several, for some 20 ms on a
     * 67 MB file); 0: one per core, or OMP_NUM_THREADS. Set it to a
     * session's n_threads where several processes share the cores. */
    int n_threads;
} sr_model_options;
#define SR_MODEL_OPTIONS_INIT {.size = sizeof(sr_model_options)}

/* Loads weights from a torch.save file (state_dict, zip format) or from
 * srrun's own model.bin (docs/model-bin.md; recognised by its magic, and
 * both its CRC-32s verified) and builds the network they describe. options
 * may be NULL for the defaults. The file is read whole into memory, not
 * mapped, so that rewriting it while the model is in use is harmless; only
 * a regular file is read (a FIFO is refused, not waited on). */
SR_API sr_status sr_model_load(const char *path, const sr_model_options *options,
                               sr_model **model, sr_error *err);

/* As sr_model_load, from the size bytes at data (a whole .pth or
 * model.bin file's contents). The bytes are copied: the caller may free
 * or reuse data as soon as this returns. Messages name no path. data NULL
 * is SR_ERR_INVALID_ARGUMENT; size 0 is an empty file (SR_ERR_FORMAT). */
SR_API sr_status sr_model_load_memory(const void *data, size_t size,
                                      const sr_model_options *options, sr_model **model,
                                      sr_error *err);

/* Loads the shipped default model, srpgan_x<scale>.bin (scale 2 or 4; any
 * other is SR_ERR_INVALID_ARGUMENT), as sr_model_load would load it. It is
 * looked for, first match wins, in $SRRUN_MODEL_DIR when set and not
 * empty, then relative to the folder D of the binary that holds srrun's
 * code (libsrrun.so; or the program or module libsrrun.a is linked into):
 * D/../share/srrun (an install, D being its lib/ or bin/; moving the whole
 * install keeps this working) and D/share/srrun (the build tree). When no
 * folder has it, SR_ERR_IO and a message naming each folder looked in. */
SR_API sr_status sr_model_load_default(int scale, const sr_model_options *options,
                                       sr_model **model, sr_error *err);
SR_API void sr_model_free(sr_model *model);

typedef struct sr_model_info {
    size_t size;              /* see "Structs that grow" at the top */
    const char *architecture; /* "srpgan"; its hyper-parameters: sr_model_hparam */
    int scale;                /* output pixels per input pixel, per axis */
    int n_blocks;             /* residual blocks */
    int64_t n_params;
    int64_t n_input_pixel_flops; /* floating-point ops per input pixel */
    const char *format;       /* the file's format: "pth" or "model.bin" */
    const char *dtype;        /* weights as stored: "float32", "float16",
                                 "mixed" (model.bin), "converted" (a .pth with
                                 tensors srrun converted to float32) */
    int64_t file_size;        /* bytes (of the buffer, loaded from memory) */
    int has_checksum;         /* model.bin: the CRC-32s below are set */
    uint32_t header_crc32;    /* of the header and tensor table */
    uint32_t data_crc32;      /* of the tensor data */
} sr_model_info;
#define SR_MODEL_INFO_INIT {.size = sizeof(sr_model_info)}

/* Describes the model into *info, as far as info->size covers (the
 * strings are the model's: valid until it is freed). A NULL model is
 * SR_ERR_INVALID_ARGUMENT, with info zeroed but for its size. */
SR_API sr_status sr_model_get_info(const sr_model *model, sr_model_info *info);

/* Saves the model's weights as model.bin: the tensors its network uses, in
 * the order of the file it came from (a tensor the network ignores, such
 * as a discriminator's or old running statistics, is left out), float32
 * or, with fp16, float16 (a value beyond float16's range is refused).
 * Whole or not at all, as sr_image_write_png writes. */
SR_API sr_status sr_model_save(const sr_model *model, const char *path, int fp16,
                               sr_error *err);
/* 0 for a NULL model. */
SR_API int sr_model_scale(const sr_model *model);

/* The model's hyper-parameters, each architecture's own, as its builder
 * derived them from the weights and model.bin records them (srpgan:
 * "scale", "blocks", "width"): the name of the one at `index` (from 0),
 * with its value in *value when value is not NULL. NULL past the last one
 * or for a NULL model, leaving *value as it was. The name lives as long as
 * the model. Since 0.6.0. */
SR_API const char *sr_model_hparam(const sr_model *model, int index, int64_t *value);

/* Notices about the file that did not stop loading (e.g. ignored keys),
 * one per line; NULL when there are none (or model is NULL). */
SR_API const char *sr_model_notices(const sr_model *model);

/* ---- Sessions -------------------------------------------------------- */

typedef enum sr_backend {
    SR_BACKEND_AUTO,      /* CUDA where a GPU is usable, else the CPU */
    SR_BACKEND_CPU,       /* OpenBLAS + OpenMP */
    SR_BACKEND_REFERENCE, /* the plain kernels in ops/: slow, the oracle */
    SR_BACKEND_CUDA,      /* an NVIDIA GPU (cuBLAS); max_memory then bounds device memory */
    SR_BACKEND_COUNT
} sr_backend;

SR_API const char *sr_backend_name(sr_backend backend);

/* Called with the fraction of work done, in [0, 1]; a non-zero return
 * cancels the run, which then fails with SR_ERR_CANCELLED. It is called
 * on the thread that called sr_session_run, between bands, never from
 * a worker and never twice at once for one session: once per band of
 * each stage (the sum of the plan's n_bands, so a few times for a small
 * image, hundreds for a large one; that many per patch for a model that
 * runs on patches), the fraction (of the run's planned FLOPs) never going
 * back and 1 at the last call. It may not call the
 * session it reports on. */
typedef int (*sr_progress_fn)(void *user, double fraction);

/* What a GPU's matrix products read. float32 is the reference's precision;
 * the others are the tensor cores' shorter inputs (TF32: a 10-bit mantissa;
 * FP16; BF16: an 8-bit exponent, 7-bit mantissa), products still summed in
 * float32 and activations still float32 between layers. Their error against
 * float32 is in the README. The CPU computes in float32 only. */
typedef enum sr_precision {
    SR_PRECISION_FP32,
    SR_PRECISION_TF32,
    SR_PRECISION_FP16,
    SR_PRECISION_BF16,
    SR_PRECISION_COUNT
} sr_precision;

/* "fp32", "tf32", "fp16", "bf16". */
SR_API const char *sr_precision_name(sr_precision precision);

typedef struct sr_session_options {
    size_t size;             /* see "Structs that grow" at the top */
    sr_backend backend;      /* 0: SR_BACKEND_AUTO */
    int n_threads;           /* threads the session computes on; 0: all the
                                cores the process may run on. Sessions
                                running at once do not share them: S sessions
                                on C cores should each get C / S, or the
                                cores are oversubscribed (each session's
                                OpenMP workers spin while they wait). */
    int64_t max_memory;      /* bytes the whole process may use; 0: 3/4 of RAM. On
                                CUDA: device memory; 0: 9/10 of what is free there */
    int64_t tile_rows;       /* band height of every stage; 0: the planner's */
    sr_progress_fn progress; /* may be NULL */
    void *progress_user;
    sr_precision precision; /* anything but FP32 needs CUDA (auto: else FP32) */
    /* Where a plan may spill tensors it keeps for later stages: a file
     * with no name in this directory (gone when the run ends, however it
     * ends), read back a band at a time, instead of holding them in memory
     * or recomputing them. NULL: $TMPDIR, else /var/tmp, and no spill if
     * that cannot be used, lives in memory (tmpfs: the spill would take the
     * memory it saves) or has less free space than the plan would spill;
     * "": never spill. A directory named here that cannot
     * be used fails the plan (SR_ERR_IO, one line), as does a file system
     * with less free space than the plan spills (sr_plan_info.scratch_bytes).
     * Copied by sr_session_new. Since 0.7.0. */
    const char *scratch_dir;
} sr_session_options;
#define SR_SESSION_OPTIONS_INIT {.size = sizeof(sr_session_options)}

typedef struct sr_session sr_session;

/* Fails with SR_ERR_UNSUPPORTED (one line naming the backend, the layer
 * and its op) when the backend asked for cannot run every layer of the
 * model; SR_BACKEND_AUTO then falls back to the CPU. */
SR_API sr_status sr_session_new(const sr_model *model,
                                const sr_session_options *options,
                                sr_session **session, sr_error *err);
SR_API void sr_session_free(sr_session *session);

/* The backend the session runs on (never SR_BACKEND_AUTO; that only for a
 * NULL session). */
SR_API sr_backend sr_session_backend(const sr_session *session);

/* Why SR_BACKEND_AUTO settled on the CPU (the CUDA backend's one line:
 * "no CUDA device: ...", or the layer it cannot run), or NULL (also for a
 * NULL session). */
SR_API const char *sr_session_backend_note(const sr_session *session);

/* Upscales `in` (any channels and pixel type; gray replicated to RGB) into
 * `out`, which the caller allocates at scale x the input size, U8, U16 or
 * F32, with 3 or 4 channels; the output's channels choose what happens to
 * the input's alpha:
 *   3 (RGB):  alpha is composited on white before the network (c*a + 1-a).
 *   4 (RGBA): alpha is kept. The network gets the colour as stored (PNG
 *             alpha is straight, so that is the true colour; premultiplied
 *             input would need unpremultiplying first), and the alpha is
 *             upscaled on its own, bicubic (Keys, a = -0.5, Pillow's
 *             BICUBIC kernel; taps beyond the border repeat the edge
 *             pixel). An input without alpha gives an opaque alpha.
 * Values are clamped to [0, 1] and rounded to the nearest integer level.
 * Plans first (see sr_session_plan) unless the last plan for this size
 * counted at least these images' memory. The metadata is not touched.
 *
 * A run that fails with SR_ERR_DEVICE leaves the session unusable: what
 * the GPU holds can no longer be trusted (CUDA keeps a kernel's fault for
 * the rest of the process), so every later run or plan of the session
 * fails with SR_ERR_BAD_STATE; free it. No other failure sticks: after a
 * cancelled run, SR_ERR_NO_MEMORY, SR_ERR_LIMIT or an invalid argument the
 * session runs again as before (the output's pixels are then undefined). */
SR_API sr_status sr_session_run(sr_session *session, const sr_image *in,
                                sr_image *out);

/* Receives rows [y0, y0 + rows->height) of the output of
 * sr_session_run_rows: pixels as sr_session_run would have written them
 * into those rows of its `out` (alpha included), in a buffer the session
 * owns and reuses (stride and data valid only during the call; meta all
 * zero). Return SR_OK to go on; any other status stops the run, which
 * then fails with that status and the message the sink wrote into err
 * (err->message is "" on entry; when it is left empty the session's
 * message names the status). */
typedef sr_status (*sr_rows_fn)(void *user, const sr_image *rows, int64_t y0, sr_error *err);

/* As sr_session_run, with the output delivered to sink in bands of rows
 * as the run computes them, instead of into an image the caller holds
 * whole. shape describes the output as sr_session_run's out would be
 * (width, height, channels 3 or 4, type; its data, stride and meta are
 * not read). The sink is called on the thread that called this, between
 * bands (never from a worker, never twice at once), with every row
 * exactly once and in order, rows 0 to shape->height - 1; each call
 * brings up to a few MB of pixels. The run holds those rows, not the
 * output image: its plan counts them so (sr_session_plan_rows), which
 * lets a larger image fit max_memory. A cancelled run (the progress
 * callback) fails with SR_ERR_CANCELLED after the rows delivered so far.
 * The sink may not call the session. Failures stick as sr_session_run's
 * do. Since 0.7.0. */
SR_API sr_status sr_session_run_rows(sr_session *session, const sr_image *in,
                                     const sr_image *shape, sr_rows_fn sink, void *user);

/* Upscales `in` straight into an image file at path, as format (quality:
 * JPEG only, 1..100), its rows encoded as the run computes them, so that
 * neither the output image nor a serial encoding after the run is needed.
 * shape is the output's as for sr_session_run_rows; its meta (e.g. in's,
 * the struct copied: it is only read) is written as sr_image_write_png
 * and sr_image_write_jpeg write an image's, and the file's bytes are the
 * ones those would write for the image sr_session_run makes. Whole or not
 * at all, as they are: the file goes through an unnamed temporary linked
 * into place only after the last row, so a run that fails or is
 * cancelled leaves no file at path and an old one untouched (a FIFO or
 * character device is written into as it comes). Planned as
 * sr_session_plan_rows plans; failures as sr_session_run_rows's, the
 * message of a file or format failure starting with path. Since 0.7.0. */
SR_API sr_status sr_session_upscale_to_file(sr_session *session, const sr_image *in,
                                            const sr_image *shape, const char *path,
                                            sr_image_format format, int quality);

/* ---- Plans ------------------------------------------------------------
 * Before running, a session plans the image size: which intermediate
 * tensors it keeps whole, and how high the bands are in which it computes
 * everything else, so that the predicted peak fits max_memory. The result
 * does not depend on the plan. */

typedef struct sr_stage_info {
    const char *target;  /* the node the stage sweeps, e.g. "res_blocks.0.conv1" */
    const char *global;  /* the node it gathers statistics for, or NULL: output */
    int64_t band_rows;   /* rows of the target per band */
    int64_t n_bands;
    int n_nodes;         /* nodes computed in each band */
    int64_t kept_bytes;  /* whole tensors alive during the stage, and rows
                            carried from band to band (windows) */
    int64_t arena_bytes; /* band buffers */
    int64_t workspace_bytes;
    int64_t flops;
    double seconds;      /* measured by the last run of this plan, else 0 */
} sr_stage_info;

typedef struct sr_layer_info {
    const char *name;    /* e.g. "up_blocks.1.conv" */
    const char *op;      /* e.g. "conv2d" */
    int64_t flops;       /* as planned, recomputation included */
    double seconds;      /* measured by the last run of this plan, else 0 */
    /* How the backend computes the layer, where it says: the CPU backend's
     * algorithm for a convolution, "im2col", "kn2row", "winograd" or
     * "winograd_split". NULL for other layers and backends. */
    const char *algorithm;
} sr_layer_info;

typedef struct sr_plan_info {
    size_t size;            /* see "Structs that grow" at the top */
    int64_t width, height;  /* of the input */
    int64_t max_memory;     /* the budget planned for */
    int64_t predicted_peak; /* bytes, the whole process */
    int64_t fixed_bytes;    /* outside the plan: program, weights, images */
    int64_t plan_bytes;     /* activations, band buffers, workspaces */
    int64_t flops;          /* planned, recomputation included */
    int64_t whole_flops;    /* the network's own */
    int n_kept;             /* intermediate tensors kept whole (spilled ones too) */
    int n_stages, n_layers;
    const sr_stage_info *stages; /* owned by the session: valid until */
    const sr_layer_info *layers; /* its next plan, run or free */
    size_t stage_size, layer_size; /* bytes from one stage (layer) to the next */
    int64_t scratch_bytes;  /* spilled to the scratch file (disk, not memory);
                               since 0.7.0 */
    int n_spilled;          /* of the kept tensors, those spilled; since 0.7.0 */
    /* Since 0.9.0: the patches a run computes (sr_model_options.patch),
     * 1 for a whole-image run, and the size of each, which is what the
     * plan is for; flops and whole_flops count them all. */
    int64_t n_patches;
    int64_t patch_width, patch_height;
} sr_plan_info;
#define SR_PLAN_INFO_INIT {.size = sizeof(sr_plan_info)}

/* Stage and layer i of a plan. The arrays' elements may grow too: a
 * program that must run with a later library steps through them by
 * stage_size and layer_size, as these do, and reads a field only when
 * the size covers it. */
#define SR_PLAN_STAGE(info, i)                                      \
    ((const sr_stage_info *)(const void *)((const char *)(info)->stages + \
                                           (size_t)(i) * (info)->stage_size))
#define SR_PLAN_LAYER(info, i)                                      \
    ((const sr_layer_info *)(const void *)((const char *)(info)->layers + \
                                           (size_t)(i) * (info)->layer_size))

/* Plans a width x height input (and keeps the plan for runs of that size,
 * or for a model that runs on patches, of that patch size);
 * describes it into *info (may be NULL) as far as info->size covers.
 * Fails with SR_ERR_LIMIT, naming the least memory that would do, when no
 * plan fits max_memory. The caller's images are counted with the channels
 * and pixel types of the last run or sr_session_plan_images (8-bit RGB in
 * and out before any). */
SR_API sr_status sr_session_plan(sr_session *session, int64_t width, int64_t height,
                                 sr_plan_info *info);

/* The same, counting the memory of these images as they are (channels,
 * pixel type, and the alpha upscale for a 4-channel out). Only their
 * sizes, channels and types are read: data may be NULL, so a caller can
 * plan before allocating the output. */
SR_API sr_status sr_session_plan_images(sr_session *session, const sr_image *in,
                                        const sr_image *out, sr_plan_info *info);

/* The same for a run whose output is streamed (sr_session_run_rows,
 * sr_session_upscale_to_file): the output image is not counted, but the
 * rows of one delivery and an image encoder's state are. sr_session_plan
 * then counts memory the same way until a run or plan of a whole output.
 * Since 0.7.0. */
SR_API sr_status sr_session_plan_rows(sr_session *session, const sr_image *in,
                                      const sr_image *shape, sr_plan_info *info);

/* The message of the session's last failure, or "" after a success (and
 * for a NULL session). */
SR_API const char *sr_session_last_error(const sr_session *session);

#ifdef __cplusplus
}
#endif

#endif /* SRRUN_H */
