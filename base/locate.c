/* Finds the library's own files from where its code was loaded (dladdr), so
 * that an install can be moved as a whole: the only paths compiled in are
 * relative ones, the install's layout (lib/ to share/, bin/ to lib/). */
#define _GNU_SOURCE /* dladdr1 */
#include "base/locate.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* CMake passes the install's own layout (Debian's lib/x86_64-linux-gnu
 * under /usr is two levels deep); these are GNU's defaults. */
#ifndef SR_INSTALL_LIB_TO_DATA
#define SR_INSTALL_LIB_TO_DATA "../share"
#endif
#ifndef SR_INSTALL_BIN_TO_DATA
#define SR_INSTALL_BIN_TO_DATA "../share"
#endif
#ifndef SR_INSTALL_BIN_TO_LIB
#define SR_INSTALL_BIN_TO_LIB "../lib"
#endif

sr_status sr_locate_library_dir(char *dir, size_t size, sr_error *err)
{
    /* Linked shared, the code's link map names libsrrun.so. Linked into the
     * program, its map has an empty name (dladdr would give argv[0], which
     * need not be a path at all), and the kernel knows the program's file. */
    Dl_info info;
    struct link_map *map = NULL;
    const bool shared = dladdr1((void *)sr_locate_library_dir, &info, (void **)&map,
                                RTLD_DL_LINKMAP) &&
                        map && map->l_name && map->l_name[0];
    const char *file = shared ? map->l_name : "/proc/self/exe";
    char path[PATH_MAX];
    if (!realpath(file, path))
        return sr_fail(err, SR_ERR_IO, "cannot tell where the srrun library is: %s: %s", file,
                       strerror(errno));
    const size_t n = (size_t)(strrchr(path, '/') - path); /* a real path has one */
    if (n >= size)
        return sr_fail(err, SR_ERR_IO, "%s: path too long", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    return SR_OK;
}

/* Adds dir/rel/name to out, unless already there. Each leading "../" of rel
 * takes a folder off dir instead: dir is a real path (no links), so this is
 * the folder the system would reach, and messages show it plainly. */
static sr_status add_path(sr_locations *out, const char *dir, const char *rel, const char *name,
                          sr_error *err)
{
    size_t n = strlen(dir);
    while (strncmp(rel, "../", 3) == 0) {
        while (n > 0 && dir[n - 1] != '/')
            n--;
        n -= n > 0; /* the slash */
        rel += 3;
    }
    char path[SR_LOCATE_PATH_MAX];
    const int len = snprintf(path, sizeof path, "%.*s/%s%s%s", (int)n, dir, rel, *rel ? "/" : "",
                             name);
    if (len < 0 || len >= (int)sizeof path)
        return sr_fail(err, SR_ERR_IO, "%s/%s/%s: path too long", dir, rel, name);
    for (int i = 0; i < out->n_paths; i++)
        if (strcmp(out->paths[i], path) == 0)
            return SR_OK;
    memcpy(out->paths[out->n_paths++], path, (size_t)len + 1);
    return SR_OK;
}

sr_status sr_locate_data_dirs(sr_locations *out, sr_error *err)
{
    char dir[SR_LOCATE_PATH_MAX];
    out->n_paths = 0;
    sr_status st = sr_locate_library_dir(dir, sizeof dir, err);
    if (st == SR_OK)
        st = add_path(out, dir, SR_INSTALL_LIB_TO_DATA, "srrun", err);
    if (st == SR_OK)
        st = add_path(out, dir, SR_INSTALL_BIN_TO_DATA, "srrun", err);
    if (st == SR_OK)
        st = add_path(out, dir, "share", "srrun", err);
    return st;
}

sr_status sr_locate_cuda_module(sr_locations *out, sr_error *err)
{
    char dir[SR_LOCATE_PATH_MAX];
    out->n_paths = 0;
    sr_status st = sr_locate_library_dir(dir, sizeof dir, err);
    if (st == SR_OK)
        st = add_path(out, dir, "", "libsrrun_cuda.so", err);
    if (st == SR_OK)
        st = add_path(out, dir, SR_INSTALL_BIN_TO_LIB, "libsrrun_cuda.so", err);
    return st;
}
