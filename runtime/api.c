/* The public API of models and sessions: it ties the loaders, the model
 * builders, the executor and the backends together, and turns every
 * internal failure into a status plus one line for the caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "formats/file.h"
#include "formats/pth.h"
#include "models/registry.h"
#include "runtime/error.h"
#include "runtime/exec.h"
#include "runtime/pixels.h"

#define STR2(x) #x
#define STR(x) STR2(x)

const char *sr_version_string(void)
{
    return STR(SR_VERSION_MAJOR) "." STR(SR_VERSION_MINOR) "." STR(SR_VERSION_PATCH);
}

struct sr_model {
    sr_mapped_file file; /* float32 weights are views into it */
    sr_weights weights;
    sr_graph graph;
    sr_model_info info;
    sr_notices notices;
};

/* FLOPs grow exactly with the pixel count (padding is counted as work), so
 * one small image gives the per-pixel figure. */
static int64_t flops_per_input_pixel(const sr_graph *g, sr_error *err)
{
    const int64_t side = 16;
    sr_shape *shapes = calloc((size_t)g->n_nodes, sizeof *shapes);
    if (!shapes)
        return 0;
    int64_t flops = 0;
    if (sr_graph_shapes(g, (sr_shape){3, side, side}, shapes, err) == SR_OK)
        flops = sr_graph_flops(g, shapes, NULL) / (side * side);
    free(shapes);
    return flops;
}

sr_status sr_model_load(const char *path, const sr_model_options *options,
                        sr_model **model, sr_error *err)
{
    const bool strict = options && options->strict;
    *model = NULL;
    sr_model *m = calloc(1, sizeof *m);
    if (!m)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    sr_status st = sr_file_map(path, &m->file, err);
    if (st == SR_OK)
        st = sr_pth_load(&m->file, &m->weights, err);
    if (st == SR_OK)
        st = sr_model_build(&m->weights, strict, &m->graph, &m->info, &m->notices, err);
    if (st != SR_OK) {
        sr_error_prefix(err, path);
        sr_model_free(m);
        return st;
    }
    m->info.n_input_pixel_flops = flops_per_input_pixel(&m->graph, err);
    *model = m;
    return SR_OK;
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

sr_model_info sr_model_get_info(const sr_model *model) { return model->info; }

int sr_model_scale(const sr_model *model) { return model->info.scale; }

const char *sr_model_notices(const sr_model *model)
{
    return model->notices.text[0] ? model->notices.text : NULL;
}

static const char *const backend_names[] = {
    [SR_BACKEND_AUTO] = "auto",
    [SR_BACKEND_CPU] = "cpu",
    [SR_BACKEND_REFERENCE] = "reference",
};
_Static_assert(sizeof backend_names / sizeof *backend_names == SR_BACKEND_COUNT,
               "one name per backend");

const char *sr_backend_name(sr_backend backend)
{
    return (unsigned)backend < SR_BACKEND_COUNT ? backend_names[backend] : "unknown";
}

struct sr_session {
    const sr_model *model;
    sr_session_options options;
    sr_backend_handle backend;
    sr_error last_error;
};

sr_session_options sr_session_options_default(void)
{
    return (sr_session_options){.backend = SR_BACKEND_AUTO};
}

sr_status sr_session_new(const sr_model *model, const sr_session_options *options,
                         sr_session **session, sr_error *err)
{
    *session = NULL;
    if (!model)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no model");
    sr_session_options opt = options ? *options : sr_session_options_default();
    if ((unsigned)opt.backend >= SR_BACKEND_COUNT || opt.n_threads < 0)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "invalid session options");
    sr_session *s = calloc(1, sizeof *s);
    if (!s)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    s->model = model;
    s->options = opt;
    sr_status st = opt.backend == SR_BACKEND_REFERENCE
                       ? sr_reference_backend_new(&s->backend, err)
                       : sr_cpu_backend_new(opt.n_threads, &s->backend, err);
    if (st != SR_OK) {
        free(s);
        return st;
    }
    *session = s;
    return SR_OK;
}

void sr_session_free(sr_session *session)
{
    if (!session)
        return;
    sr_backend_free(&session->backend);
    free(session);
}

const char *sr_session_last_error(const sr_session *session)
{
    return session->last_error.message;
}

static sr_status check_run(const sr_session *s, const sr_image *in, const sr_image *out,
                           sr_error *err)
{
    sr_status st = sr_image_check(in, "input", err);
    if (st == SR_OK)
        st = sr_image_check(out, "output", err);
    if (st != SR_OK)
        return st;
    const int scale = s->model->info.scale;
    if (out->channels != 3 || out->width != in->width * scale || out->height != in->height * scale)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "output image must be %lldx%lld with 3 channels, is %lldx%lld with %d",
                       (long long)(in->width * scale), (long long)(in->height * scale),
                       (long long)out->width, (long long)out->height, out->channels);
    return SR_OK;
}

sr_status sr_session_run(sr_session *session, const sr_image *in, sr_image *out)
{
    sr_error *err = &session->last_error;
    err->message[0] = '\0';
    sr_status st = check_run(session, in, out, err);
    if (st != SR_OK)
        return st;
    sr_tensor input = {{3, in->height, in->width}, NULL};
    input.data = malloc((size_t)sr_shape_numel(input.shape) * sizeof(float));
    if (!input.data)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for the %lldx%lld input",
                       (long long)in->width, (long long)in->height);
    sr_image_to_tensor(in, &input);
    sr_tensor output = {{0, 0, 0}, NULL};
    sr_exec_progress progress = {session->options.progress, session->options.progress_user};
    st = sr_graph_run(&session->model->graph, &session->backend, &input, &output, progress, err);
    free(input.data);
    if (st == SR_OK)
        sr_tensor_to_image(&output, out);
    free(output.data);
    return st;
}
