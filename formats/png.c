/* PNG through libpng: decoding into an sr_image that keeps the file's
 * channels and depth, and encoding 8/16-bit images; the colour chunks
 * (iCCP, sRGB, gAMA) are read into and written from image->meta. Owns the libpng
 * structs, their error handling (setjmp/longjmp into a recorded message)
 * and the limits that make untrusted files safe; opening files, sniffing
 * and the temporary-file dance are image.c's. */
#include "formats/image_codecs.h"

#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* No ancillary chunk may make libpng allocate more than this. libpng reads
 * an iCCP's declared profile length from its first inflated bytes and
 * refuses a profile longer than this before inflating the rest, so it is
 * also the cap on ICC profiles. */
#define CHUNK_MALLOC_MAX SR_MAX_ICC_BYTES
/* We keep only the three colour chunks, so this only bounds pathological files. */
#define CHUNK_CACHE_MAX 128
/* zlib level for output: see the comment in encode(). */
#define WRITE_COMPRESSION_LEVEL 1

/* What the libpng callbacks share: the stream and the failure to report.
 * status says why libpng gave up; it stays SR_ERR_FORMAT (reading) unless
 * a callback knows better. */
typedef struct png_stream {
    FILE *file;
    sr_status status;
    char message[256];
} png_stream;

typedef struct png_codec {
    png_structp png;
    png_infop info;
    png_stream stream;
    uint8_t *row;    /* one decoded row as stored */
    uint8_t *pixels; /* that row's palette indices expanded */
} png_codec;

static void on_error(png_structp png, png_const_charp message)
{
    png_stream *stream = png_get_error_ptr(png);
    snprintf(stream->message, sizeof stream->message, "%s", message);
    png_longjmp(png, 1); /* returning would let libpng print and longjmp */
}

static void on_warning(png_structp png, png_const_charp message)
{
    (void)png; /* the library never prints; warnings change nothing */
    (void)message;
}

static void read_data(png_structp png, png_bytep out, size_t n)
{
    png_stream *stream = png_get_io_ptr(png);
    if (fread(out, 1, n, stream->file) == n)
        return;
    if (ferror(stream->file)) {
        stream->status = SR_ERR_IO;
        png_error(png, strerror(errno));
    }
    png_error(png, "truncated image");
}

static void write_data(png_structp png, png_bytep data, size_t n)
{
    png_stream *stream = png_get_io_ptr(png);
    if (fwrite(data, 1, n, stream->file) != n)
        png_error(png, strerror(errno));
}

static void flush_data(png_structp png)
{
    (void)png; /* fclose in image.c flushes and reports */
}

static int little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Validates the IHDR the front end already read (the first 33 bytes), so
 * an oversized image is refused before libpng reads on or we allocate. */
static sr_status check_header(const uint8_t *head, size_t n, int64_t max_pixels,
                              sr_error *err)
{
    if (n < SR_IMAGE_HEAD_SIZE)
        return sr_fail(err, SR_ERR_FORMAT, "truncated image");
    if (be32(head + 8) != 13 || memcmp(head + 12, "IHDR", 4) != 0)
        return sr_fail(err, SR_ERR_FORMAT, "PNG does not start with an IHDR chunk");
    int depth = head[24], colour = head[25];
    int ok;
    switch (colour) {
    case PNG_COLOR_TYPE_GRAY: ok = depth == 1 || depth == 2 || depth == 4 ||
                                   depth == 8 || depth == 16; break;
    case PNG_COLOR_TYPE_PALETTE: ok = depth == 1 || depth == 2 || depth == 4 ||
                                      depth == 8; break;
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_GRAY_ALPHA:
    case PNG_COLOR_TYPE_RGB_ALPHA: ok = depth == 8 || depth == 16; break;
    default:
        return sr_fail(err, SR_ERR_FORMAT, "invalid PNG colour type %d", colour);
    }
    if (!ok)
        return sr_fail(err, SR_ERR_FORMAT,
                       "invalid PNG bit depth %d for colour type %d", depth, colour);
    return sr_image_check_size(be32(head + 16), be32(head + 20), max_pixels, err);
}

/* Expands n palette indices, one byte each, into RGB or RGBA pixels. */
static sr_status expand_palette(png_codec *c, const uint8_t *index, int64_t n, int channels,
                                uint8_t *out, sr_error *err)
{
    png_colorp palette;
    int n_palette = 0, n_trans = 0;
    png_bytep trans = NULL;
    png_get_PLTE(c->png, c->info, &palette, &n_palette);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS))
        png_get_tRNS(c->png, c->info, &trans, &n_trans, NULL);
    for (int64_t i = 0; i < n; i++, out += channels) {
        const int k = index[i];
        if (k >= n_palette)
            return sr_fail(err, SR_ERR_FORMAT,
                           "palette index %d out of range (PLTE has %d entries)", k, n_palette);
        out[0] = palette[k].red;
        out[1] = palette[k].green;
        out[2] = palette[k].blue;
        if (channels == 4)
            out[3] = k < n_trans ? trans[k] : 255;
    }
    return SR_OK;
}

/* The orientation in the first eXIf chunk before the pixels, or 0. The
 * chunk is kept as an unknown one: libpng's own eXIf handler allocates
 * whatever length the chunk declares (2 GB for a 165-byte file) before
 * reading it, while an unknown chunk over CHUNK_MALLOC_MAX is skipped. */
static int read_orientation(png_codec *c)
{
    png_unknown_chunkp chunks;
    const int n = png_get_unknown_chunks(c->png, c->info, &chunks);
    for (int i = 0; i < n; i++)
        if (memcmp(chunks[i].name, "eXIf", 4) == 0)
            return sr_exif_orientation(chunks[i].data, chunks[i].size);
    return 0;
}

/* Copies the colour chunks libpng accepted into image->meta. A profile
 * libpng found invalid (bad header or tag table, wrong colour space) was
 * dropped with a warning and is not seen here. */
static sr_status read_meta(png_codec *c, sr_image *image, sr_error *err)
{
    sr_image_meta *meta = &image->meta;
    png_charp name;
    int compression;
    png_bytep profile;
    png_uint_32 length;
    if (png_get_iCCP(c->png, c->info, &name, &compression, &profile, &length) &&
        length > 0 && length <= SR_MAX_ICC_BYTES) {
        meta->icc = malloc(length);
        if (!meta->icc)
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for an ICC profile");
        memcpy(meta->icc, profile, length);
        meta->icc_size = length;
    }
    int intent;
    if (png_get_sRGB(c->png, c->info, &intent)) {
        meta->has_srgb = 1;
        meta->srgb_intent = intent;
    }
    png_fixed_point gamma;
    if (png_get_gAMA_fixed(c->png, c->info, &gamma) && gamma > 0)
        meta->gamma = gamma;
    return SR_OK;
}

/* Reads every row, pass by pass when the file is interlaced (each pass's
 * pixels placed at their columns rather than through libpng's interlace
 * handling, which needs the whole picture as stored), into the image in
 * its orientation. Palette indices come one byte each and are expanded
 * here, so an index beyond the palette is an error rather than black. */
static sr_status read_rows(png_codec *c, const sr_orienter *o, int palette, sr_error *err)
{
    const int64_t width = o->width, height = o->height;
    const int interlaced = png_get_interlace_type(c->png, c->info) == PNG_INTERLACE_ADAM7;
    /* libpng writes a whole row's width whatever the pass. */
    c->row = malloc((size_t)(width * o->pixel_bytes));
    if (palette)
        c->pixels = malloc((size_t)(width * o->pixel_bytes));
    if (!c->row || (palette && !c->pixels))
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    for (int pass = 0; pass < (interlaced ? 7 : 1); pass++) {
        int64_t x0 = 0, dx = 1, y0 = 0, dy = 1, n_cols = width, n_rows = height;
        if (interlaced) {
            x0 = PNG_PASS_START_COL(pass), dx = PNG_PASS_COL_OFFSET(pass);
            y0 = PNG_PASS_START_ROW(pass), dy = PNG_PASS_ROW_OFFSET(pass);
            n_cols = PNG_PASS_COLS(width, pass), n_rows = PNG_PASS_ROWS(height, pass);
            if (n_cols == 0 || n_rows == 0)
                continue; /* libpng skips empty passes */
        }
        for (int64_t r = 0; r < n_rows; r++) {
            const int64_t y = y0 + r * dy;
            uint8_t *direct = interlaced || palette ? NULL : sr_orienter_row(o, y);
            png_read_row(c->png, direct ? direct : c->row, NULL);
            if (direct)
                continue;
            const uint8_t *pixels = c->row;
            if (palette) {
                sr_status st = expand_palette(c, c->row, n_cols, o->image->channels,
                                              c->pixels, err);
                if (st != SR_OK)
                    return st;
                pixels = c->pixels;
            }
            sr_orienter_place(o, y, x0, dx, n_cols, pixels);
        }
    }
    /* No png_read_end: what follows the pixels cannot change them, and
     * like Pillow we accept a file whose IEND is missing. */
    return SR_OK;
}

/* Everything that may longjmp. Only c and the arguments are used after a
 * jump, and none of them changes after setjmp. */
static sr_status decode(png_codec *c, const sr_read_request *req, sr_image *image,
                        sr_error *err)
{
    if (setjmp(png_jmpbuf(c->png)))
        return sr_fail(err, c->stream.status, "%s", c->stream.message);

    png_uint_32 side_max = req->max_pixels < 0x7fffffff ? (png_uint_32)req->max_pixels
                                                        : 0x7fffffff;
    png_set_user_limits(c->png, side_max, side_max);
    png_set_chunk_cache_max(c->png, CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(c->png, CHUNK_MALLOC_MAX);
    /* Discard every chunk but IHDR, PLTE, tRNS, IDAT and IEND unread (text
     * is never inflated), except the colour chunks kept for the output:
     * iCCP, inflated within CHUNK_MALLOC_MAX and checked by libpng, sRGB
     * and gAMA, none of them applied to the pixels; and eXIf for the
     * orientation, which is, kept as it is (see read_orientation). */
    static const png_byte colour_chunks[] = "iCCP\0sRGB\0gAMA";
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_AS_DEFAULT, colour_chunks, 3);
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_ALWAYS, (png_const_bytep) "eXIf", 1);
    png_set_read_fn(c->png, &c->stream, read_data);
    png_read_info(c->png, c->info);

    const int colour = png_get_color_type(c->png, c->info);
    const int depth = png_get_bit_depth(c->png, c->info);
    const int palette = colour == PNG_COLOR_TYPE_PALETTE;
    int channels = 0; /* palette: 3 or 4; otherwise libpng decides */
    if (palette) {
        png_set_packing(c->png); /* one index per byte; expanded by us */
        channels = png_get_valid(c->png, c->info, PNG_INFO_tRNS) ? 4 : 3;
    } else {
        png_set_expand_gray_1_2_4_to_8(c->png);
        if (png_get_valid(c->png, c->info, PNG_INFO_tRNS))
            png_set_tRNS_to_alpha(c->png);
        if (depth == 16 && little_endian())
            png_set_swap(c->png);
    }
    png_read_update_info(c->png, c->info);
    if (!channels)
        channels = png_get_channels(c->png, c->info);
    const sr_pixel_type type = depth == 16 ? SR_PIXEL_U16 : SR_PIXEL_U8;
    const int64_t width = png_get_image_width(c->png, c->info);
    const int64_t height = png_get_image_height(c->png, c->info);
    /* The orientation applied, and the one left for a viewer to apply. */
    const int stored = read_orientation(c);
    const int applied = req->keep_orientation ? 1 : stored;
    const int left = req->keep_orientation || !stored ? stored : 1;

    sr_image shape = {.channels = channels, .type = type, .meta.orientation = left};
    sr_orient_shape(applied, width, height, &shape);
    if (!req->pixels) {
        *image = shape;
        return SR_OK;
    }
    sr_status status = sr_image_alloc(image, shape.width, shape.height, channels, type, err);
    if (status == SR_OK)
        status = read_meta(c, image, err);
    if (status != SR_OK)
        return status;
    image->meta.orientation = left;
    sr_orienter o;
    sr_orienter_init(&o, image, width, height, applied);
    return read_rows(c, &o, palette, err);
}

sr_status sr_png_read(FILE *file, const uint8_t *head, size_t n_head,
                      const sr_read_request *req, sr_image *image, sr_error *err)
{
    sr_status status = check_header(head, n_head, req->max_pixels, err);
    if (status != SR_OK)
        return status;
    png_codec c = {.stream = {.file = file, .status = SR_ERR_FORMAT}};
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c.stream, on_error,
                                   on_warning);
    if (c.png)
        c.info = png_create_info_struct(c.png);
    if (!c.info)
        status = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    else
        status = decode(&c, req, image, err);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    free(c.row);
    free(c.pixels);
    if (status != SR_OK)
        sr_image_free(image);
    return status;
}

/* The ICC colour space ("RGB " or "GRAY", bytes 16-19 of the header) must
 * fit the image, or libpng would refuse the profile. */
static int icc_fits(const sr_image_meta *meta, int channels)
{
    return meta->icc && meta->icc_size >= 132 && meta->icc_size <= SR_MAX_ICC_BYTES &&
           memcmp(meta->icc + 16, channels >= 3 ? "RGB " : "GRAY", 4) == 0;
}

/* iCCP or sRGB (the PNG spec allows one of them), and gAMA. A profile that
 * libpng still finds bad (it checks the header and tag table) is left out
 * with a warning rather than failing the write: see png_set_benign_errors. */
static void write_meta(png_codec *c, const sr_image *image)
{
    const sr_image_meta *meta = &image->meta;
    if (icc_fits(meta, image->channels))
        png_set_iCCP(c->png, c->info, "ICC profile", PNG_COMPRESSION_TYPE_BASE, meta->icc,
                     (png_uint_32)meta->icc_size);
    else if (meta->has_srgb && meta->srgb_intent >= 0 && meta->srgb_intent <= 3)
        png_set_sRGB(c->png, c->info, meta->srgb_intent);
    if (meta->gamma > 0)
        png_set_gAMA_fixed(c->png, c->info, meta->gamma);
}

/* Everything up to the first row: the header and the colour chunks. */
static sr_status start(png_codec *c, const sr_image *image, sr_error *err)
{
    if (setjmp(png_jmpbuf(c->png)))
        return sr_fail(err, c->stream.status, "%s", c->stream.message);

    static const int colour_types[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                       PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    int depth = image->type == SR_PIXEL_U16 ? 16 : 8;
    png_set_write_fn(c->png, &c->stream, write_data, flush_data);
    png_set_user_limits(c->png, SR_PNG_MAX_SIDE, SR_PNG_MAX_SIDE);
    /* Outputs are large and written once, so we lean to speed: zlib level
     * 1 and the Sub filter alone wrote a 2560x1600 photo in 0.18-0.23 s
     * against 0.41 s at level 3 with libpng's adaptive choice among all
     * five filters, for a 4% larger file (zlib's default level 6: 2.7 times
     * slower than level 3, 15% smaller). */
    png_set_compression_level(c->png, WRITE_COMPRESSION_LEVEL);
    png_set_filter(c->png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    png_set_IHDR(c->png, c->info, (png_uint_32)image->width,
                 (png_uint_32)image->height, depth,
                 colour_types[image->channels - 1], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_benign_errors(c->png, 1);
    write_meta(c, image);
    png_write_info(c->png, c->info);
    if (depth == 16 && little_endian())
        png_set_swap(c->png);
    return SR_OK;
}

struct sr_png_writer {
    png_codec c; /* its stream's address is libpng's: the writer stays put */
};

void sr_png_writer_free(sr_png_writer *w)
{
    if (!w)
        return;
    png_destroy_write_struct(&w->c.png, &w->c.info);
    free(w);
}

sr_status sr_png_writer_new(FILE *file, const sr_image *shape, sr_png_writer **writer,
                            sr_error *err)
{
    *writer = NULL;
    sr_png_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    png_codec *c = &w->c;
    c->stream = (png_stream){.file = file, .status = SR_ERR_IO};
    c->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c->stream, on_error, on_warning);
    if (c->png)
        c->info = png_create_info_struct(c->png);
    const sr_status st = c->info ? start(c, shape, err)
                                 : sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (st != SR_OK) {
        sr_png_writer_free(w);
        return st;
    }
    *writer = w;
    return SR_OK;
}

sr_status sr_png_writer_rows(sr_png_writer *w, const sr_image *rows, sr_error *err)
{
    png_codec *c = &w->c;
    if (setjmp(png_jmpbuf(c->png)))
        return sr_fail(err, c->stream.status, "%s", c->stream.message);
    for (int64_t y = 0; y < rows->height; y++)
        png_write_row(c->png, (png_const_bytep)rows->data + y * rows->stride);
    return SR_OK;
}

sr_status sr_png_writer_finish(sr_png_writer *w, sr_error *err)
{
    png_codec *c = &w->c;
    if (setjmp(png_jmpbuf(c->png)))
        return sr_fail(err, c->stream.status, "%s", c->stream.message);
    png_write_end(c->png, NULL);
    return SR_OK;
}
