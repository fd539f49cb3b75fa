/* Reading the caller's options and writing infos back, each as far as the
 * caller's `size` says its struct goes (see options.h). */
#include "base/options.h"

#include <stdint.h>
#include <string.h>

#include "base/error.h"

/* No options or info struct will grow this large: a size beyond it is an
 * uninitialised struct, refused before anything past its end is touched. */
#define MAX_STRUCT_SIZE 4096

/* The caller's struct size: its first member, 0 meaning base_size. */
static sr_status caller_size(const void *theirs, size_t base_size, const char *what,
                             size_t *size, sr_error *err)
{
    memcpy(size, theirs, sizeof *size);
    if (*size == 0)
        *size = base_size;
    if (*size > MAX_STRUCT_SIZE)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "%s of %zu bytes: size is not set (initialise the struct)", what, *size);
    if (*size < base_size)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "%s of %zu bytes: no srrun has them smaller than %zu (set size with "
                       "sizeof, or leave it 0)",
                       what, *size, base_size);
    return SR_OK;
}

sr_status sr_options_read(void *ours, size_t ours_size, size_t base_size, size_t known_size,
                          const void *theirs, const char *what, sr_error *err)
{
    memset(ours, 0, ours_size);
    memcpy(ours, &ours_size, sizeof ours_size);
    if (!theirs)
        return SR_OK;
    size_t size;
    sr_status st = caller_size(theirs, base_size, what, &size, err);
    if (st != SR_OK)
        return st;
    /* From the end of the last known field, not from sizeof: a field a
     * newer srrun put in what is tail padding here must be refused too. */
    const uint8_t *bytes = theirs;
    for (size_t i = known_size; i < size; i++)
        if (bytes[i])
            return sr_fail(err, SR_ERR_UNSUPPORTED,
                           "%s set a field that srrun %s does not know (byte %zu of %zu)", what,
                           sr_version(), i, size);
    const size_t end = size < known_size ? size : known_size;
    memcpy((uint8_t *)ours + sizeof size, bytes + sizeof size, end - sizeof size);
    return SR_OK;
}

sr_status sr_info_write(void *theirs, const void *ours, size_t base_size, size_t known_size,
                        const char *what, sr_error *err)
{
    size_t size;
    sr_status st = caller_size(theirs, base_size, what, &size, err);
    if (st != SR_OK)
        return st;
    /* Only the fields this srrun knows, and of those only the ones the
     * caller's struct has: the size returned says which are set. */
    const size_t end = size < known_size ? size : known_size;
    memcpy(theirs, ours, end);
    memcpy(theirs, &end, sizeof end);
    return SR_OK;
}
