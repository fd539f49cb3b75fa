/* libFuzzer harness for the image readers: the input is decoded from
 * memory by sr_image_read_memory, so the sniffing front end and both
 * codecs (libpng, libjpeg-turbo, and srrun's limits, palette expansion
 * and error handling around them) see it; it is also written to a
 * temporary file whose header-only read (sr_image_read_info) must answer
 * as the memory one does, so both sources stay covered.
 * A smaller pixel limit than the default keeps each input fast and under
 * libFuzzer's memory limit; the limit logic is the same. The header-only
 * read must describe what the full read returns, EXIF orientation
 * applied. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srrun.h"

#define MAX_PIXELS (INT64_C(1) << 22)

static char path[256];

static void remove_file(void)
{
    unlink(path);
}

static int make_file(void)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/srrun_fuzz_image_XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    close(fd);
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0] && make_file() != 0)
        abort();
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();

    const sr_image_read_options options = {.max_pixels = MAX_PIXELS};
    sr_image info, image;
    sr_error info_err = {{0}}, err = {{0}};
    const sr_status info_status = sr_image_read_info_memory(data, size, &options, &info,
                                                            &info_err);
    if (info_status != SR_OK && (info.width || !info_err.message[0]))
        __builtin_trap();
    /* The file's answer: the same, its message prefixed with the path (and
     * cut where the prefix made it too long). */
    sr_image file_info;
    sr_error file_err = {{0}};
    const size_t n_path = strlen(path);
    if (sr_image_read_info(path, &options, &file_info, &file_err) != info_status ||
        memcmp(&file_info, &info, sizeof info) != 0)
        __builtin_trap();
    if (info_status != SR_OK &&
        (strncmp(file_err.message, path, n_path) != 0 ||
         strncmp(file_err.message + n_path + 2, info_err.message,
                 strlen(file_err.message) - n_path - 2) != 0))
        __builtin_trap();
    if (sr_image_read_memory(data, size, &options, &image, &err) == SR_OK) {
        if (info_status != SR_OK || info.width != image.width || info.height != image.height ||
            info.channels != image.channels || info.type != image.type ||
            info.meta.orientation != image.meta.orientation)
            __builtin_trap();
        const int bytes = image.type == SR_PIXEL_U16 ? 2 : 1;
        if (image.channels < 1 || image.channels > 4 || image.width < 1 ||
            image.height < 1 || image.width * image.height > MAX_PIXELS ||
            image.stride < image.width * image.channels * bytes)
            __builtin_trap();
        /* Touch the first and last byte: ASan checks the allocation. */
        volatile uint8_t *p = image.data;
        p[0] ^= p[(image.height - 1) * image.stride + image.width * image.channels * bytes - 1];
        sr_image_free(&image);
    } else if (image.data || !err.message[0]) {
        __builtin_trap(); /* a failure names itself and leaves no pixels */
    }
    return 0;
}
