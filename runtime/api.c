/* The public API of models: loading from a file, from memory or the
 * shipped default (the loaders, then the model builders), saving, and what
 * a model says about itself; every internal failure becomes a status plus
 * one line naming the file. Sessions are session.c's. */
#define _POSIX_C_SOURCE 200809L /* access */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/modelbin.h"
#include "formats/pth.h"
#include "models/registry.h"
#include "base/error.h"
#include "base/locate.h"
#include "runtime/model.h"
#include "base/options.h"

/* The structs as of 0.5.0, when they got their size. */
#define MODEL_OPTIONS_BASE_SIZE (offsetof(sr_model_options, strict) + sizeof(int))
#define MODEL_OPTIONS_KNOWN_SIZE (offsetof(sr_model_options, n_threads) + sizeof(int))
#define MODEL_INFO_BASE_SIZE (offsetof(sr_model_info, data_crc32) + sizeof(uint32_t))

#define STR2(x) #x
#define STR(x) STR2(x)

const char *sr_version(void)
{
    return STR(SR_VERSION_MAJOR) "." STR(SR_VERSION_MINOR) "." STR(SR_VERSION_PATCH);
}


/* FLOPs grow exactly with the pixel count (padding is counted as work), so
 * one small image gives the per-pixel figure. */
static sr_status flops_per_input_pixel(const sr_graph *g, int64_t *flops, sr_error *err)
{
    const int64_t side = 16;
    sr_shape *shapes = calloc((size_t)g->n_nodes, sizeof *shapes);
    if (!shapes)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    sr_status st = sr_graph_shapes(g, (sr_shape){3, side, side}, shapes, err);
    if (st == SR_OK)
        *flops = sr_graph_flops(g, shapes, NULL) / (side * side);
    free(shapes);
    return st;
}

/* What sr_model_info says about the file itself. */
static void describe_file(sr_model *m, const sr_modelbin_info *bin)
{
    sr_model_info *info = &m->info;
    info->file_size = (int64_t)m->file.size;
    if (bin) {
        const int64_t n32 = bin->n_tensors[SR_MODELBIN_F32], n16 = bin->n_tensors[SR_MODELBIN_F16];
        info->format = "model.bin";
        info->dtype = n16 == 0 ? "float32" : n32 == 0 ? "float16" : "mixed";
        info->has_checksum = 1;
        info->header_crc32 = bin->header_crc;
        info->data_crc32 = bin->data_crc;
        return;
    }
    int64_t n_copies = 0; /* float32 tensors are views into the file */
    for (int64_t i = 0; i < m->weights.n_items; i++)
        n_copies += m->weights.items[i].owned != NULL;
    info->format = "pth";
    info->dtype = n_copies ? "converted" : "float32";
}

/* Largest patch side: far above any training crop, and small enough that
 * the patch's plan cannot overflow. */
#define PATCH_MAX (INT64_C(1) << 20)

/* The patch a model runs by: the options', else the file's (recorded,
 * found is whether it was), checked and added to the listed parameters. */
static sr_status choose_patch(sr_model *m, const sr_model_options *o, const int64_t recorded[2],
                              bool found, sr_error *err)
{
    int64_t patch = found ? recorded[0] : 0, margin = found ? recorded[1] : 0;
    const char *from = "the file's";
    if (o->patch != 0) {
        patch = o->patch < 0 ? 0 : o->patch;
        margin = o->patch < 0 ? 0 : o->patch_margin;
        from = "the options'";
    }
    if (o->patch < -1)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "invalid patch %lld (-1, 0 or a size)",
                       (long long)o->patch);
    if (patch == 0 && margin == 0)
        return SR_OK;
    if (patch < 1 || patch > PATCH_MAX || margin < 0 || 2 * margin >= patch)
        return sr_fail(err, found && o->patch == 0 ? SR_ERR_MODEL : SR_ERR_INVALID_ARGUMENT,
                       "%s patch %lld with margin %lld: the side must be 1 to %lld and more "
                       "than twice the margin", from, (long long)patch, (long long)margin,
                       (long long)PATCH_MAX);
    if (sr_input_unshuffle(&m->graph.nodes[0]) > 1)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "%s patch %lld: this model's input is pixel-unshuffled, which patches "
                       "do not support", from, (long long)patch);
    m->patch = patch;
    m->patch_margin = margin;
    if (!sr_hparams_add(&m->hparams, "patch", patch) ||
        !sr_hparams_add(&m->hparams, "patch_margin", margin))
        return sr_fail(err, SR_ERR_MODEL, "too many hyper-parameters with the patch's");
    return SR_OK;
}

/* The caller's options, or the defaults, as far as this library knows
 * them. */
static sr_status read_options(const sr_model_options *options, sr_model_options *o,
                              sr_error *err)
{
    sr_status st = sr_options_read(o, sizeof *o, MODEL_OPTIONS_BASE_SIZE,
                                   MODEL_OPTIONS_KNOWN_SIZE, options, "model options", err);
    if (st == SR_OK && o->n_threads < 0)
        st = sr_fail(err, SR_ERR_INVALID_ARGUMENT, "model options: %d threads", o->n_threads);
    return st;
}

/* Builds the model from the bytes in m->file with the options o (as
 * read_options gave them); m is freed on failure. */
static sr_status build_model(sr_model *m, const sr_model_options *o, sr_model **model,
                             sr_error *err)
{
    const bool strict = o->strict;
    sr_modelbin_info bin;
    const bool is_bin = sr_modelbin_sniff(&m->file);
    sr_status st = is_bin ? sr_modelbin_load(&m->file, true, &m->weights, &bin, err)
                          : sr_pth_load(&m->file, o->n_threads, &m->weights, err);
    /* A model.bin names its architecture, and records the hyper-parameters
     * that the weights must then have, and the patch it runs by. */
    int64_t patch[2] = {0, 0};
    bool has_patch = false;
    if (st == SR_OK && is_bin) {
        has_patch = sr_hparams_take(&bin.arch.hparams, "patch", &patch[0]);
        has_patch |= sr_hparams_take(&bin.arch.hparams, "patch_margin", &patch[1]);
    }
    if (st == SR_OK)
        st = sr_model_build_as(is_bin ? bin.arch.name : NULL, &m->weights, strict, &m->graph,
                               &m->info, &m->hparams, &m->notices, err);
    if (st == SR_OK && is_bin)
        st = sr_hparams_check(&bin.arch.hparams, &m->hparams, bin.arch.name, err);
    if (st == SR_OK)
        st = choose_patch(m, o, patch, has_patch, err);
    if (st == SR_OK && sr_graph_fuse(&m->graph, err) < 0)
        st = SR_ERR_NO_MEMORY;
    if (st == SR_OK)
        st = flops_per_input_pixel(&m->graph, &m->info.n_input_pixel_flops, err);
    if (st != SR_OK) {
        sr_model_free(m);
        return st;
    }
    describe_file(m, is_bin ? &bin : NULL);
    *model = m;
    return SR_OK;
}

sr_status sr_model_load(const char *path, const sr_model_options *options,
                        sr_model **model, sr_error *err)
{
    if (!model || !path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no %s", model ? "path" : "model to load into");
    *model = NULL;
    sr_model_options o;
    sr_model *m = NULL;
    sr_status st = read_options(options, &o, err);
    if (st == SR_OK && !(m = calloc(1, sizeof *m)))
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (st == SR_OK && (st = sr_file_map(path, o.n_threads, &m->file, err)) != SR_OK)
        sr_model_free(m);
    else if (st == SR_OK)
        st = build_model(m, &o, model, err);
    if (st != SR_OK)
        sr_error_prefix(err, path);
    return st;
}

sr_status sr_model_load_memory(const void *data, size_t size, const sr_model_options *options,
                               sr_model **model, sr_error *err)
{
    if (!model || !data)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no %s",
                       model ? "data" : "model to load into");
    *model = NULL;
    sr_model_options o;
    sr_status st = read_options(options, &o, err);
    if (st != SR_OK)
        return st;
    sr_model *m = calloc(1, sizeof *m);
    if (!m)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if ((st = sr_file_copy(data, size, &m->file, err)) != SR_OK) {
        sr_model_free(m);
        return st;
    }
    return build_model(m, &o, model, err);
}

/* $SRRUN_MODEL_DIR, then the folders next to the library's code
 * (base/locate.h). The first that has the file wins: a file there that
 * fails to load is an error, not a reason to look further. */
sr_status sr_model_load_default(int scale, const sr_model_options *options, sr_model **model,
                                sr_error *err)
{
    if (!model)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no model to load into");
    *model = NULL;
    const char *file = sr_default_model_file(scale);
    if (!file) {
        char scales[64];
        sr_default_model_scales(scales, sizeof scales);
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "no default model upscales x%d (there are %s)", scale, scales);
    }
    sr_locations dirs;
    sr_error located;
    const sr_status st = sr_locate_data_dirs(&dirs, &located);
    const char *env = getenv("SRRUN_MODEL_DIR");
    const char *candidates[1 + SR_LOCATE_MAX];
    int n = 0;
    if (env && *env)
        candidates[n++] = env;
    for (int i = 0; i < dirs.n_paths; i++)
        candidates[n++] = dirs.paths[i];

    char path[SR_LOCATE_PATH_MAX];
    for (int i = 0; i < n; i++)
        if (snprintf(path, sizeof path, "%s/%s", candidates[i], file) <
                (int)sizeof path &&
            access(path, F_OK) == 0)
            return sr_model_load(path, options, model, err);

    char looked[sizeof err->message] = "";
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof looked; i++) {
        const bool is_env = i == 0 && candidates[0] == env;
        const int k = snprintf(looked + used, sizeof looked - used, "%s%s%s%s",
                               i == 0 ? "" : i + 1 < n ? ", " : " or ",
                               is_env ? "$SRRUN_MODEL_DIR (" : "", candidates[i],
                               is_env ? ")" : "");
        used += k > 0 ? (size_t)k : 0;
    }
    if (st != SR_OK)
        return sr_fail(err, SR_ERR_IO, "no default x%d model: %s%s%s", scale, looked,
                       n ? "; " : "", located.message);
    return sr_fail(err, SR_ERR_IO, "no default x%d model: no %s in %s", scale, file, looked);
}

sr_status sr_model_save(const sr_model *model, const char *path, int fp16, sr_error *err)
{
    if (!model || !path || !*path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no model or path");
    sr_status st = sr_modelbin_save(path, &model->weights, model->info.architecture,
                                    &model->hparams, fp16 != 0, NULL, err);
    if (st != SR_OK)
        sr_error_prefix(err, path);
    return st;
}

void sr_model_free(sr_model *model)
{
    if (!model)
        return;
    sr_graph_free(&model->graph);
    sr_weights_free(&model->weights);
    sr_file_unmap(&model->file);
    free(model);
}

sr_status sr_model_get_info(const sr_model *model, sr_model_info *info)
{
    if (!info)
        return SR_ERR_INVALID_ARGUMENT;
    const sr_model_info none = {.size = sizeof none};
    const sr_status st = sr_info_write(info, model ? &model->info : &none,
                                       MODEL_INFO_BASE_SIZE, MODEL_INFO_BASE_SIZE, "model info", NULL);
    return st == SR_OK && !model ? SR_ERR_INVALID_ARGUMENT : st;
}

int sr_model_scale(const sr_model *model) { return model ? model->info.scale : 0; }

const char *sr_model_hparam(const sr_model *model, int index, int64_t *value)
{
    if (!model || index < 0 || index >= model->hparams.n)
        return NULL;
    if (value)
        *value = model->hparams.items[index].value;
    return model->hparams.items[index].name;
}

const char *sr_model_notices(const sr_model *model)
{
    return model && model->notices.text[0] ? model->notices.text : NULL;
}
