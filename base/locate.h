/* Where the library's own files are (the default models, the CUDA module),
 * found relative to the binary that holds the library's code, so that an
 * install works wherever it is moved and no build-tree path is baked in. */
#ifndef SR_BASE_LOCATE_H
#define SR_BASE_LOCATE_H

#include "srrun.h"

/* A few candidate paths, to be tried in order. */
#define SR_LOCATE_MAX 3
#define SR_LOCATE_PATH_MAX 4096 /* Linux's PATH_MAX */
typedef struct sr_locations {
    int n_paths;
    char paths[SR_LOCATE_MAX][SR_LOCATE_PATH_MAX];
} sr_locations;

/* The real folder (symbolic links resolved) of the binary holding the
 * library's code: libsrrun.so when linked shared, else the program or
 * module that libsrrun.a was linked into. */
sr_status sr_locate_library_dir(char *dir, size_t size, sr_error *err);

/* The folders that may hold the shipped data files (srpgan_x<scale>.bin):
 * D/../share/srrun (an install, D being P/lib or P/bin; the relative
 * parts follow the install's own layout) and D/share/srrun (the build
 * tree; the Python package). */
sr_status sr_locate_data_dirs(sr_locations *out, sr_error *err);

/* The paths that may be the CUDA module: next to the library (an install's
 * P/lib, the build tree) and, for a program in P/bin, P/lib. */
sr_status sr_locate_cuda_module(sr_locations *out, sr_error *err);

#endif
