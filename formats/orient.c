/* EXIF orientation: finding it in an EXIF block (a TIFF header and IFD0,
 * as JPEG's APP1 "Exif" marker and PNG's eXIf chunk hold it), and placing
 * the rows a codec decodes where the orientation puts them, so an image is
 * turned upright while it is decoded, without a second buffer. The codecs
 * find the EXIF block and decide whether to apply it. */
#include "formats/image_codecs.h"

#include <string.h>

#define TAG_ORIENTATION 0x0112
#define TYPE_SHORT 3
#define IFD_ENTRY_BYTES 12

static uint32_t get16(const uint8_t *p, int little)
{
    return little ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | p[1];
}

static uint32_t get32(const uint8_t *p, int little)
{
    return little ? get16(p, 1) | get16(p + 2, 1) << 16 : get16(p, 0) << 16 | get16(p + 2, 0);
}

/* Only IFD0 is read and no offset is followed beyond it, so neither loops
 * nor far offsets cost anything; entries past the end of the block are
 * not read (like Pillow, the ones before them count). Like browsers, only
 * a single SHORT counts. */
int sr_exif_orientation(const uint8_t *tiff, size_t size)
{
    if (!tiff || size < 8)
        return 0;
    int little;
    if (memcmp(tiff, "II*\0", 4) == 0)
        little = 1;
    else if (memcmp(tiff, "MM\0*", 4) == 0)
        little = 0;
    else
        return 0;
    const uint32_t ifd = get32(tiff + 4, little);
    if (ifd > size - 2)
        return 0;
    const size_t room = (size - ifd - 2) / IFD_ENTRY_BYTES;
    size_t n = get16(tiff + ifd, little);
    if (n > room)
        n = room;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *entry = tiff + ifd + 2 + i * IFD_ENTRY_BYTES;
        if (get16(entry, little) != TAG_ORIENTATION)
            continue;
        const uint32_t value = get16(entry + 8, little);
        if (get16(entry + 2, little) != TYPE_SHORT || get32(entry + 4, little) != 1 ||
            value < 1 || value > 8)
            return 0;
        return (int)value;
    }
    return 0;
}

void sr_orient_shape(int orientation, int64_t width, int64_t height, sr_image *image)
{
    const int swaps = orientation >= 5;
    image->width = swaps ? height : width;
    image->height = swaps ? width : height;
}

/* Where stored pixel (x, y) of a width x height picture goes. */
static void oriented_position(const sr_orienter *o, int64_t x, int64_t y, int64_t *ox,
                              int64_t *oy)
{
    const int64_t rx = o->width - 1 - x, ry = o->height - 1 - y;
    switch (o->orientation) {
    case 2: *ox = rx, *oy = y; break;  /* mirrored left to right */
    case 3: *ox = rx, *oy = ry; break; /* turned 180 degrees */
    case 4: *ox = x, *oy = ry; break;  /* mirrored top to bottom */
    case 5: *ox = y, *oy = x; break;   /* transposed */
    case 6: *ox = ry, *oy = x; break;  /* to be turned 90 degrees clockwise */
    case 7: *ox = ry, *oy = rx; break; /* transversed */
    case 8: *ox = y, *oy = rx; break;  /* to be turned 90 degrees anticlockwise */
    default: *ox = x, *oy = y; break;
    }
}

void sr_orienter_init(sr_orienter *o, sr_image *image, int64_t width, int64_t height,
                      int orientation)
{
    o->image = image;
    o->width = width;
    o->height = height;
    o->orientation = orientation >= 1 && orientation <= 8 ? orientation : 1;
    o->pixel_bytes = image->channels * (image->type == SR_PIXEL_U16 ? 2 : 1);
}

uint8_t *sr_orienter_row(const sr_orienter *o, int64_t y)
{
    if (o->orientation == 1)
        return (uint8_t *)o->image->data + y * o->image->stride;
    if (o->orientation == 4)
        return (uint8_t *)o->image->data + (o->height - 1 - y) * o->image->stride;
    return NULL;
}

static uint8_t *address(const sr_orienter *o, int64_t x, int64_t y)
{
    int64_t ox, oy;
    oriented_position(o, x, y, &ox, &oy);
    return (uint8_t *)o->image->data + oy * o->image->stride + ox * o->pixel_bytes;
}

void sr_orienter_place(const sr_orienter *o, int64_t y, int64_t x0, int64_t dx, int64_t n,
                       const uint8_t *pixels)
{
    const size_t bytes = (size_t)o->pixel_bytes;
    uint8_t *out = address(o, x0, y);
    /* The mapping is affine: every step along the row moves the same. */
    const ptrdiff_t step = n > 1 ? address(o, x0 + dx, y) - out : 0;
    if (step == (ptrdiff_t)bytes) {
        memcpy(out, pixels, (size_t)n * bytes);
        return;
    }
    /* A constant size lets the compiler turn each copy into a move. */
#define SCATTER(size)                                                  \
    for (int64_t i = 0; i < n; i++, out += step, pixels += (size))     \
        memcpy(out, pixels, (size));                                   \
    return
    switch (bytes) {
    case 1: SCATTER(1);
    case 2: SCATTER(2);
    case 3: SCATTER(3);
    case 4: SCATTER(4);
    case 6: SCATTER(6);
    case 8: SCATTER(8);
    default: SCATTER(bytes);
    }
#undef SCATTER
}
