/* model.bin, srrun's own weight file (docs/model-bin.md is the spec): a
 * fixed 128-byte header (magic, version, byte order, CRC-32s, architecture
 * name), a table of 128-byte tensor entries, a table of 32-byte named
 * hyper-parameters, then the tensors, each 64-byte aligned, so float32
 * weights are views into the mapped file. Reading validates every field
 * before a byte of tensor data is used; writing streams the tensors of an
 * sr_weights. Names and values are stored, not interpreted: this layer
 * knows no architecture. */
#ifndef SR_FORMATS_MODELBIN_H
#define SR_FORMATS_MODELBIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/file.h"
#include "base/hparams.h"
#include "base/weights.h"

#define SR_MODELBIN_MAGIC "\x89SRB\r\n\x1a\n" /* 8 bytes */
#define SR_MODELBIN_SNIFF_SIZE 4              /* "\x89SRB": enough to route */
#define SR_MODELBIN_VERSION 2 /* written; 1 and 2 are read */
#define SR_MODELBIN_HEADER_SIZE 128
#define SR_MODELBIN_ENTRY_SIZE 128
#define SR_MODELBIN_ALIGN 64
#define SR_MODELBIN_ARCH_SIZE 16 /* NUL-padded name, at most 15 bytes */
#define SR_MODELBIN_NAME_SIZE 64 /* NUL-padded name, at most 63 bytes */
#define SR_MODELBIN_HPARAM_SIZE 32 /* a table entry: name[24], value */
#define SR_MODELBIN_V1_HPARAMS 8   /* version 1: unnamed, in the header */
#define SR_MODELBIN_MAX_TENSORS ((uint32_t)SR_WEIGHTS_MAX_COUNT) /* all sr_weights holds */

/* Stored in the file: explicit values, append-only. */
typedef enum sr_modelbin_dtype {
    SR_MODELBIN_F32 = 0,
    SR_MODELBIN_F16 = 1,
    SR_MODELBIN_DTYPE_COUNT
} sr_modelbin_dtype;

/* An architecture's name and hyper-parameters as the file records them.
 * From a version 1 file the hyper-parameters are its eight values with
 * empty names, meant by position (sr_hparams_check). */
typedef struct sr_modelbin_arch {
    char name[SR_MODELBIN_ARCH_SIZE];
    sr_hparams hparams;
} sr_modelbin_arch;

/* What a read found besides the weights. */
typedef struct sr_modelbin_info {
    sr_modelbin_arch arch;
    uint32_t version;
    uint32_t header_crc, data_crc;
    int64_t n_tensors[SR_MODELBIN_DTYPE_COUNT]; /* per stored dtype */
} sr_modelbin_info;

/* True when the file starts like a model.bin (the first 4 magic bytes);
 * the loader then names any damage to the rest of the magic. */
bool sr_modelbin_sniff(const sr_mapped_file *file);

/* Validates the whole file and appends its tensors to `weights`: float32
 * as views into `file` (which must outlive them), float16 as converted
 * copies. verify_crc false skips both CRC-32 checks (fuzzing only). On
 * failure `weights` is left as it was. Messages omit the file name. */
sr_status sr_modelbin_load(const sr_mapped_file *file, bool verify_crc,
                           sr_weights *weights, sr_modelbin_info *info,
                           sr_error *err);

/* Writes a model.bin (the current version) of `weights` (every tensor, in
 * order), the architecture's name and its hyper-parameters to `out`, which must be seekable and positioned at 0;
 * fp16 stores float16 (values beyond its range are refused). Fills the
 * CRCs into `info` when not NULL. */
sr_status sr_modelbin_write(FILE *out, const sr_weights *weights, const char *arch,
                            const sr_hparams *hparams, bool fp16, sr_modelbin_info *info,
                            sr_error *err);

/* sr_modelbin_write into a temporary file next to `path`, renamed to it
 * on success; a failure leaves no file behind. Messages omit the path. */
sr_status sr_modelbin_save(const char *path, const sr_weights *weights, const char *arch,
                           const sr_hparams *hparams, bool fp16, sr_modelbin_info *info,
                           sr_error *err);

#endif
