/* Sessions: a backend, options, and the plan for the last image size. A
 * run converts the image into the network's input, plans (or reuses the
 * plan), executes it and converts the output rows as their bands finish;
 * a model that runs by patches does this for each patch, the plan made
 * for the patch's size (runtime/patches.h).
 * The memory budget is the whole process's: what the plan may use is
 * max_memory less the program, the weights and the caller's images. On a
 * device backend it is the device's: less the weights and the input. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "base/error.h"
#include "formats/image_writer.h"
#include "runtime/exec.h"
#include "runtime/model.h"
#include "base/options.h"
#include "base/scratch.h"
#include "runtime/patches.h"
#include "runtime/pixels.h"
#include "runtime/resample.h"
#include "runtime/session.h"

/* Resident memory of the program itself: code, libraries, and OpenBLAS's
 * packing buffers once sgemm has touched them (measured: 8 MB for a 1x1
 * image, about 40 MB once large GEMMs have run). */
#define PROCESS_BASE_BYTES (INT64_C(48) << 20)

/* The structs as of 0.5.0, when they got their size, and as this srrun
 * knows them. */
#define SESSION_OPTIONS_BASE_SIZE \
    (offsetof(sr_session_options, precision) + sizeof(sr_precision))
#define SESSION_OPTIONS_KNOWN_SIZE \
    (offsetof(sr_session_options, scratch_dir) + sizeof(const char *))
#define PLAN_INFO_BASE_SIZE (offsetof(sr_plan_info, layer_size) + sizeof(size_t))
#define PLAN_INFO_KNOWN_SIZE (offsetof(sr_plan_info, patch_height) + sizeof(int64_t))

static const char *const backend_names[] = {
    [SR_BACKEND_AUTO] = "auto",
    [SR_BACKEND_CPU] = "cpu",
    [SR_BACKEND_REFERENCE] = "reference",
    [SR_BACKEND_CUDA] = "cuda",
};
_Static_assert(sizeof backend_names / sizeof *backend_names == SR_BACKEND_COUNT,
               "one name per backend");

const char *sr_backend_name(sr_backend backend)
{
    return (unsigned)backend < SR_BACKEND_COUNT ? backend_names[backend] : "unknown";
}

static const char *const precision_names[] = {
    [SR_PRECISION_FP32] = "fp32",
    [SR_PRECISION_TF32] = "tf32",
    [SR_PRECISION_FP16] = "fp16",
    [SR_PRECISION_BF16] = "bf16",
};
_Static_assert(sizeof precision_names / sizeof *precision_names == SR_PRECISION_COUNT,
               "one name per precision");

const char *sr_precision_name(sr_precision precision)
{
    return (unsigned)precision < SR_PRECISION_COUNT ? precision_names[precision] : "unknown";
}

struct sr_session {
    const sr_model *model;
    sr_session_options options; /* scratch_dir: the copy below */
    char *scratch_dir;
    sr_backend_handle backend;
    sr_backend backend_kind; /* auto resolved */
    sr_error backend_note;   /* why auto is not on CUDA, or "" */
    sr_error last_error;
    sr_error broken; /* the device failure after which it cannot continue, or "" */
    /* The plan for the last size asked, the patches it is run on, the
     * memory outside the plan that it was made for, and what it reports. */
    bool planned;
    sr_plan plan;
    sr_patches patches;
    bool hold_buffers; /* its runs on patches keep their buffers (sr_exec_held) */
    int64_t planned_fixed;
    sr_plan_info info;
    sr_stage_info *stages;
    sr_layer_info *layers;
    double *node_seconds, *stage_seconds;
    /* The channels and pixel types of the last images run or planned, and
     * whether the output went to a row sink, so that sr_session_plan
     * counts the same memory. */
    bool have_kinds, streamed;
    sr_image in_kind, out_kind;
};

/* Refuses a graph with a node the backend cannot run, naming both. */
static sr_status check_ops(const sr_graph *g, const sr_backend_handle *b, sr_error *err)
{
    for (int n = 1; n < g->n_nodes; n++) /* node 0 is the input: nothing to run */
        if (!b->iface->supports_op(b->ctx, &g->nodes[n]))
            return sr_fail(err, SR_ERR_UNSUPPORTED, "the %s backend cannot run %s (op %s)",
                           b->iface->name, g->nodes[n].name, sr_op_get(g->nodes[n].op)->name);
    return SR_OK;
}

/* Opens the backend asked for. Auto means CUDA where a device is usable
 * and runs every op of the graph, else the CPU in float32, noting why. */
static sr_status open_backend(sr_session *s, const sr_graph *g, sr_error *err)
{
    const sr_precision precision = s->options.precision;
    s->backend_kind = s->options.backend;
    if (s->backend_kind == SR_BACKEND_AUTO) {
        s->backend_kind = SR_BACKEND_CUDA;
        if (sr_cuda_backend_new(precision, &s->backend, &s->backend_note) == SR_OK) {
            if (check_ops(g, &s->backend, &s->backend_note) == SR_OK)
                return SR_OK;
            sr_backend_free(&s->backend);
        }
        s->backend_kind = SR_BACKEND_CPU;
        s->options.precision = SR_PRECISION_FP32;
    }
    if (s->backend_kind == SR_BACKEND_CUDA)
        return sr_cuda_backend_new(precision, &s->backend, err);
    if (s->options.precision != SR_PRECISION_FP32)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "precision %s needs the CUDA backend",
                       sr_precision_name(precision));
    if (s->backend_kind == SR_BACKEND_REFERENCE)
        return sr_reference_backend_new(&s->backend, err);
    return sr_cpu_backend_new(s->options.n_threads, &s->backend, err);
}

/* A session on the backend asked for, or on `given` (taken over, also
 * when this fails). */
static sr_status session_new(const sr_model *model, const sr_session_options *options,
                             sr_backend_handle *given, sr_session **session, sr_error *err)
{
    sr_status st = SR_OK;
    sr_session_options opt;
    if (!session)
        st = sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no session to make");
    else if (!model)
        st = sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no model");
    else if ((st = sr_options_read(&opt, sizeof opt, SESSION_OPTIONS_BASE_SIZE,
                                   SESSION_OPTIONS_KNOWN_SIZE, options,
                                   "session options", err)) == SR_OK &&
             ((unsigned)opt.backend >= SR_BACKEND_COUNT ||
              (unsigned)opt.precision >= SR_PRECISION_COUNT || opt.n_threads < 0 ||
              opt.max_memory < 0 || opt.tile_rows < 0))
        st = sr_fail(err, SR_ERR_INVALID_ARGUMENT, "invalid session options");
    if (session)
        *session = NULL;
    sr_session *s = st == SR_OK ? calloc(1, sizeof *s) : NULL;
    if (st == SR_OK && !s)
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (st != SR_OK) {
        if (given)
            sr_backend_free(given);
        return st;
    }
    s->model = model;
    s->options = opt;
    if (given) {
        s->backend = *given;
        s->backend_kind = opt.backend;
    } else if ((st = open_backend(s, &model->graph, err)) != SR_OK) {
        free(s);
        return st;
    }
    st = check_ops(&model->graph, &s->backend, err);
    if (st == SR_OK && opt.max_memory == 0) {
        s->options.max_memory = s->backend.iface->memory->available(s->backend.ctx);
        if (s->options.max_memory <= 0)
            st = sr_fail(err, SR_ERR_DEVICE, "cannot tell how much %s memory is free",
                         sr_backend_name(s->backend_kind));
    }
    if (st == SR_OK && opt.scratch_dir && !(s->scratch_dir = strdup(opt.scratch_dir)))
        st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    s->options.scratch_dir = s->scratch_dir;
    if (st != SR_OK) {
        sr_backend_free(&s->backend);
        free(s->scratch_dir);
        free(s);
        return st;
    }
    *session = s;
    return SR_OK;
}

sr_status sr_session_new(const sr_model *model, const sr_session_options *options,
                         sr_session **session, sr_error *err)
{
    return session_new(model, options, NULL, session, err);
}

sr_status sr_session_new_on(const sr_model *model, const sr_session_options *options,
                            sr_backend_handle backend, sr_session **session, sr_error *err)
{
    return session_new(model, options, &backend, session, err);
}

sr_backend sr_session_backend(const sr_session *session)
{
    return session ? session->backend_kind : SR_BACKEND_AUTO;
}

const char *sr_session_backend_note(const sr_session *session)
{
    return session && session->backend_note.message[0] ? session->backend_note.message : NULL;
}

static void drop_plan(sr_session *s)
{
    sr_plan_free(&s->plan);
    free(s->stages);
    free(s->layers);
    free(s->node_seconds);
    free(s->stage_seconds);
    s->stages = NULL;
    s->layers = NULL;
    s->node_seconds = s->stage_seconds = NULL;
    s->planned = false;
    memset(&s->info, 0, sizeof s->info);
}

void sr_session_free(sr_session *session)
{
    if (!session)
        return;
    drop_plan(session);
    sr_backend_free(&session->backend);
    free(session->scratch_dir);
    free(session);
}

const char *sr_session_last_error(const sr_session *session)
{
    return session ? session->last_error.message : "";
}

sr_error *sr_session_error(sr_session *session) { return &session->last_error; }

/* Bytes of an image's pixels, packed; 8-bit RGB when it is NULL. The sizes
 * were checked (sr_image_check_layout or plan_size): no overflow. */
static int64_t image_bytes(const sr_image *image, int64_t w, int64_t h)
{
    if (!image)
        return w * h * 3;
    const int64_t sample = image->type == SR_PIXEL_U8 ? 1 : image->type == SR_PIXEL_U16 ? 2 : 4;
    return w * h * image->channels * sample;
}

/* The output rows that a streamed run delivers at a time: as many as the
 * staging buffer brings, or with patches side by side, a row of patches'
 * cores (sr_session_run_rows assembles them). */
static int64_t delivery_rows(const sr_patches *p, int64_t scale, sr_shape out_tensor,
                             int64_t staging)
{
    const int64_t h = p->height * scale;
    int64_t rows = p->n_across > 1 ? p->patch_h * scale /* a core's rows at most */
                                   : staging / (int64_t)sizeof(float) / (out_tensor.c * out_tensor.w);
    return rows < 1 ? 1 : rows > h ? h : rows;
}

/* What a run that streams its output holds instead of the whole output
 * image: the rows of one delivery converted to the output's type, and an
 * image encoder's state (sr_session_upscale_to_file's; a caller's own
 * sink is its business). */
static int64_t stream_bytes(const sr_image *out, int64_t w, int64_t h, int64_t rows)
{
    const int64_t row = image_bytes(out, w, 1);
    const sr_image shape = {.width = w, .height = h, .channels = out ? out->channels : 3,
                            .type = out ? out->type : SR_PIXEL_U8};
    const int64_t png = sr_image_writer_bytes(SR_IMAGE_PNG, &shape);
    const int64_t jpeg = sr_image_writer_bytes(SR_IMAGE_JPEG, &shape);
    return rows * row + (png > jpeg ? png : jpeg);
}

/* Memory outside the plan: the program, the mapped weights, the caller's
 * images as they are (8-bit RGB in and out when not given; the output
 * only as the rows of a delivery when streamed), and the alpha upscale's
 * tables for an RGBA output. */
static int64_t fixed_bytes(const sr_session *s, const sr_patches *p, const sr_image *in,
                           const sr_image *out, bool streamed)
{
    const int64_t scale = s->model->info.scale, w = p->width, h = p->height;
    /* The network's input, and its output before any crop (an unshuffled
     * input pads the image to a multiple of its factor), for a patch. */
    const sr_node *input = &s->model->graph.nodes[0];
    const sr_shape in_tensor = sr_input_shape(input, (sr_shape){3, p->patch_h, p->patch_w});
    const int64_t f = sr_input_unshuffle(input);
    const sr_shape out_tensor = {3, in_tensor.h * f * scale, in_tensor.w * f * scale};
    /* On a device: the weights it holds (float32 whatever the file's) and
     * the input tensor. */
    if (!s->backend.iface->memory->is_host)
        return (s->model->info.n_params + sr_shape_numel(in_tensor)) * (int64_t)sizeof(float);
    const int64_t staging = sr_exec_staging_bytes(in_tensor, out_tensor);
    int64_t bytes = PROCESS_BASE_BYTES + (int64_t)s->model->file.size + image_bytes(in, w, h) +
                    staging;
    bytes += streamed ? stream_bytes(out, w * scale, h * scale,
                                     delivery_rows(p, scale, out_tensor, staging))
                      : image_bytes(out, w * scale, h * scale);
    if (out && out->channels == 4)
        bytes += sr_resample_bytes(w * scale);
    return bytes;
}

/* The algorithm the backend computes node with, where it says
 * (sr_layer_info.algorithm). */
static const char *layer_algorithm(const sr_session *s, const sr_node *node)
{
    const sr_backend_iface *b = s->backend.iface;
    return b->algorithm ? b->algorithm(s->backend.ctx, node) : NULL;
}

/* The most a run holds when its buffers are held between patches: all of
 * them at once, with the largest windows and workspace of any stage. */
static int64_t held_peak(const sr_plan *plan)
{
    int64_t windows = 0, workspace = 0;
    for (int si = 0; si < plan->n_stages; si++) {
        const sr_stage *st = &plan->stages[si];
        windows = st->window_bytes > windows ? st->window_bytes : windows;
        workspace = st->workspace_bytes > workspace ? st->workspace_bytes : workspace;
    }
    return sr_exec_held_bytes(plan) + windows + workspace + plan->stats_bytes;
}

/* What the plan's description says of the image and the memory outside
 * the plan, anew for each image the plan serves. Runs on several patches
 * hold their buffers from one patch to the next where the budget allows
 * them all at once: each patch would otherwise map and fault in its
 * buffers anew (SRPGAN x4 on 512x512, 49 patches: 797K page faults, 1.8 s
 * of system time). */
static void describe_run(sr_session *s, int64_t fixed)
{
    const sr_patches *p = &s->patches;
    const int64_t n = sr_patches_count(p);
    s->info.width = p->width;
    s->info.height = p->height;
    s->info.fixed_bytes = fixed;
    const int64_t held = held_peak(&s->plan);
    s->hold_buffers = n > 1 && fixed + held <= s->options.max_memory;
    s->info.plan_bytes =
        s->hold_buffers && held > s->plan.peak_bytes ? held : s->plan.peak_bytes;
    s->info.predicted_peak = fixed + s->info.plan_bytes;
    s->info.flops = s->plan.flops * n;
    s->info.whole_flops = s->plan.whole_flops * n;
    s->info.n_patches = n;
    s->info.patch_width = p->patch_w;
    s->info.patch_height = p->patch_h;
}

/* Fills the public description of the plan just made. */
static sr_status describe_plan(sr_session *s, int64_t fixed, sr_error *err)
{
    const sr_graph *g = &s->model->graph;
    const sr_plan *p = &s->plan;
    s->stages = calloc((size_t)p->n_stages, sizeof *s->stages);
    s->layers = calloc((size_t)g->n_nodes, sizeof *s->layers);
    s->node_seconds = calloc((size_t)g->n_nodes, sizeof *s->node_seconds);
    s->stage_seconds = calloc((size_t)p->n_stages, sizeof *s->stage_seconds);
    if (!s->stages || !s->layers || !s->node_seconds || !s->stage_seconds)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < p->n_stages; i++) {
        const sr_stage *st = &p->stages[i];
        s->stages[i] = (sr_stage_info){
            .target = g->nodes[st->target].name,
            .global = st->role == SR_STAGE_STATISTICS ? g->nodes[st->global].name : NULL,
            .band_rows = st->band_rows,
            .n_bands = st->n_bands,
            .n_nodes = st->n_order,
            .kept_bytes = st->kept_bytes + st->window_bytes,
            .arena_bytes = st->arena_bytes,
            .workspace_bytes = st->workspace_bytes,
            .flops = st->flops,
        };
    }
    int n_layers = 0, n_kept = 0, n_spilled = 0;
    for (int n = 1; n < g->n_nodes; n++) {
        s->layers[n_layers++] = (sr_layer_info){
            .name = g->nodes[n].name,
            .op = sr_op_name(&g->nodes[n]),
            .flops = p->node_flops[n],
            .algorithm = layer_algorithm(s, &g->nodes[n]),
        };
        const sr_rows_home home = sr_plan_rows_home(p, n);
        n_kept += home == SR_ROWS_KEPT || home == SR_ROWS_SPILLED;
        n_spilled += home == SR_ROWS_SPILLED;
    }
    s->info = (sr_plan_info){
        .size = sizeof s->info,
        .max_memory = s->options.max_memory,
        .n_kept = n_kept,
        .n_stages = p->n_stages,
        .n_layers = n_layers,
        .stages = s->stages,
        .layers = s->layers,
        .stage_size = sizeof *s->stages,
        .layer_size = sizeof *s->layers,
        .scratch_bytes = p->scratch_bytes,
        .n_spilled = n_spilled,
    };
    describe_run(s, fixed);
    return SR_OK;
}

/* Plans w x h with the images' memory counted (in and out may be NULL:
 * 8-bit RGB; streamed: out is delivered in rows): the plan for a patch,
 * or the whole image. A plan for the same patch size that counted at
 * least as much is kept, its peak told anew. */
static sr_status plan_size(sr_session *s, int64_t w, int64_t h, const sr_image *in,
                           const sr_image *out, bool streamed, sr_error *err)
{
    const int64_t scale = s->model->info.scale;
    if (w < 1 || h < 1)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "cannot plan a %lldx%lld image",
                       (long long)w, (long long)h);
    /* At most 2^40 output pixels (a million squared), counted on the sides
     * an unshuffling input pads to (+7 at most): below that, every tensor's
     * elements and bytes and every layer's FLOPs fit the planner's int64. */
    if (w > INT64_MAX / 8 || h > INT64_MAX / 8 ||
        w + 7 > ((int64_t)1 << 40) / (h + 7) / (scale * scale))
        return sr_fail(err, SR_ERR_LIMIT, "cannot plan a %lldx%lld image: too large",
                       (long long)w, (long long)h);
    const sr_patches patches =
        sr_patches_make(s->model->patch, s->model->patch_margin, w, h);
    const int64_t fixed = fixed_bytes(s, &patches, in, out, streamed);
    if (s->planned && s->patches.patch_w == patches.patch_w &&
        s->patches.patch_h == patches.patch_h && fixed <= s->planned_fixed) {
        s->patches = patches; /* the plan fits still; the peak is this run's */
        describe_run(s, fixed);
        return SR_OK;
    }
    drop_plan(s);
    s->patches = patches;
    /* A scratch directory named must be usable; the default one is used
     * only if it is. */
    const char *scratch = s->options.scratch_dir;
    bool may_spill = false;
    if (!scratch || scratch[0]) {
        sr_error ignored;
        int fd;
        sr_status st = sr_scratch_open(scratch, 0, &fd, scratch ? err : &ignored);
        if (st != SR_OK && scratch)
            return st;
        if (st == SR_OK)
            close(fd);
        may_spill = st == SR_OK;
    }
    /* When the images alone take the budget, nothing fits; planning still
     * finds the least that would, for the message. */
    sr_plan_request req = {
        .input = {3, patches.patch_h, patches.patch_w},
        .budget = fixed < s->options.max_memory ? s->options.max_memory - fixed : 1,
        .tile_rows = s->options.tile_rows,
        .backend = &s->backend,
        .may_spill = may_spill,
    };
    int64_t least = 0;
    sr_status st = sr_plan_make(&s->model->graph, &req, &s->plan, &least, err);
    if (st == SR_OK && s->plan.scratch_bytes > 0) {
        int fd; /* the space it needs, checked now rather than when it runs out */
        sr_error ignored;
        st = sr_scratch_open(scratch, s->plan.scratch_bytes, &fd, scratch ? err : &ignored);
        if (st == SR_OK) {
            close(fd);
        } else if (!scratch) {
            /* The default directory, used only where it serves: too full
             * for this plan, the run recomputes instead. */
            sr_plan_free(&s->plan);
            req.may_spill = false;
            st = sr_plan_make(&s->model->graph, &req, &s->plan, &least, err);
        }
    }
    if (st == SR_ERR_LIMIT)
        sr_fail(err, st, "a %lldx%lld image needs a max memory of at least %lldM%s (%lldM given)",
                (long long)w, (long long)h, (long long)((fixed + least) >> 20) + 1,
                s->options.tile_rows ? " with these tile rows" : "",
                (long long)(s->options.max_memory >> 20));
    if (st == SR_OK)
        st = describe_plan(s, fixed, err);
    if (st != SR_OK) {
        drop_plan(s);
        return st;
    }
    s->planned = true;
    s->planned_fixed = fixed;
    return SR_OK;
}

/* After a device failure nothing the device holds can be trusted (CUDA
 * keeps a kernel's fault for the process): the session answers no more. */
static sr_status refuse_if_broken(sr_session *s)
{
    if (!s->broken.message[0])
        return SR_OK;
    return sr_fail(&s->last_error, SR_ERR_BAD_STATE,
                   "the session cannot continue after a device failure: %.400s",
                   s->broken.message);
}

sr_status sr_session_plan(sr_session *session, int64_t width, int64_t height,
                          sr_plan_info *info)
{
    if (!session)
        return SR_ERR_INVALID_ARGUMENT;
    sr_error *err = &session->last_error;
    err->message[0] = '\0';
    sr_status st = refuse_if_broken(session);
    if (st != SR_OK)
        return st;
    const bool kinds = session->have_kinds;
    st = plan_size(session, width, height, kinds ? &session->in_kind : NULL,
                   kinds ? &session->out_kind : NULL, kinds && session->streamed, err);
    if (st == SR_OK && info)
        st = sr_info_write(info, &session->info, PLAN_INFO_BASE_SIZE, PLAN_INFO_KNOWN_SIZE,
                           "plan info", err);
    return st;
}

/* in and out as a run or plan takes them: with pixels where the run
 * reads or writes them. */
static sr_status check_run(const sr_session *s, const sr_image *in, const sr_image *out,
                           bool in_pixels, bool out_pixels, sr_error *err)
{
    sr_status st = in_pixels ? sr_image_check(in, "input", err)
                             : sr_image_check_layout(in, "input", err);
    if (st == SR_OK)
        st = out_pixels ? sr_image_check(out, "output", err)
                        : sr_image_check_layout(out, "output", err);
    if (st != SR_OK)
        return st;
    const int scale = s->model->info.scale;
    if ((out->channels != 3 && out->channels != 4) || out->width != in->width * scale ||
        out->height != in->height * scale)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT,
                       "output image must be %lldx%lld with 3 or 4 channels, is %lldx%lld with %d",
                       (long long)(in->width * scale), (long long)(in->height * scale),
                       (long long)out->width, (long long)out->height, out->channels);
    return SR_OK;
}

/* Remembers the images' channels and types (not their pixels). */
static void remember_kinds(sr_session *s, const sr_image *in, const sr_image *out,
                           bool streamed)
{
    s->in_kind = (sr_image){.channels = in->channels, .type = in->type};
    s->out_kind = (sr_image){.channels = out->channels, .type = out->type};
    s->have_kinds = true;
    s->streamed = streamed;
}

/* The checks and the plan that come before a run, or a plan of images:
 * in_pixels and out_pixels say what must have pixels. */
static sr_status prepare(sr_session *s, const sr_image *in, const sr_image *out,
                         bool in_pixels, bool out_pixels, bool streamed)
{
    sr_error *err = &s->last_error;
    err->message[0] = '\0';
    sr_status st = refuse_if_broken(s);
    if (st == SR_OK)
        st = check_run(s, in, out, in_pixels, out_pixels, err);
    if (st != SR_OK)
        return st;
    remember_kinds(s, in, out, streamed);
    return plan_size(s, in->width, in->height, in, out, streamed, err);
}

static sr_status plan_images(sr_session *session, const sr_image *in, const sr_image *out,
                             bool streamed, sr_plan_info *info)
{
    if (!session)
        return SR_ERR_INVALID_ARGUMENT;
    sr_status st = prepare(session, in, out, false, false, streamed);
    if (st == SR_OK && info)
        st = sr_info_write(info, &session->info, PLAN_INFO_BASE_SIZE, PLAN_INFO_KNOWN_SIZE,
                           "plan info", &session->last_error);
    return st;
}

sr_status sr_session_plan_images(sr_session *session, const sr_image *in, const sr_image *out,
                                 sr_plan_info *info)
{
    return plan_images(session, in, out, false, info);
}

sr_status sr_session_plan_rows(sr_session *session, const sr_image *in, const sr_image *shape,
                               sr_plan_info *info)
{
    return plan_images(session, in, shape, true, info);
}

/* The input image, as the network takes it: the patch of it being run. */
typedef struct input_source {
    const sr_image *image;
    bool on_white;     /* its alpha, if any, composited on white */
    int64_t unshuffle; /* the input node's factor */
    int n_threads;
} input_source;

static sr_status read_rows(void *user, sr_tensor *rows, sr_error *err)
{
    (void)err;
    const input_source *source = user;
    sr_image_to_tensor(source->image, source->on_white, source->unshuffle, rows,
                       source->n_threads);
    return SR_OK;
}

/* Receives rows of a patch's core in the output's coordinates: output
 * rows [rows->y0, + rows->shape.h), columns [x0, x0 + width), the
 * tensor's column 0 being x0 (its rows may be wider: they keep the
 * patch's width as their stride). */
typedef sr_status (*core_fn)(void *user, const sr_tensor *rows, int64_t x0, int64_t width,
                             sr_error *err);

/* Where a run's output goes: each core's rows, and where the cores sit
 * side by side, the news that output rows [y0, y1) are complete after a
 * row of patches (NULL when not wanted). */
typedef struct output_target {
    core_fn put;
    sr_status (*rows_done)(void *user, int64_t y0, int64_t y1, sr_error *err);
    void *user;
} output_target;

/* A patch's output rows cut to its core, as output_target.put takes them. */
typedef struct core_cut {
    const output_target *target;
    int64_t row0, row1; /* the core's rows in the patch's output */
    int64_t col0;       /* and its first column there */
    int64_t y, x, width; /* its first output row and column, its width */
} core_cut;

/* Rows past the core are dropped: a neighbour's core, the margin, or an
 * unshuffled input's padding. */
static sr_status cut_core(void *user, const sr_tensor *rows, sr_error *err)
{
    const core_cut *c = user;
    const int64_t end = rows->y0 + rows->shape.h;
    const int64_t lo = rows->y0 > c->row0 ? rows->y0 : c->row0, hi = end < c->row1 ? end : c->row1;
    if (hi <= lo)
        return SR_OK;
    sr_tensor core = sr_tensor_rows(rows, lo, hi);
    core.data += c->col0;
    core.y0 = lo - c->row0 + c->y;
    return c->target->put(c->target->user, &core, c->x, c->width, err);
}

/* A patch's part of the run's progress. */
typedef struct patch_progress {
    sr_progress_fn fn;
    void *user;
    int64_t i, n;
} patch_progress;

static int patch_fraction(void *user, double fraction)
{
    const patch_progress *p = user;
    return p->fn(p->user, ((double)p->i + fraction) / (double)p->n);
}

/* A patch of an image, as a view of its pixels. */
static sr_image patch_view(const sr_image *image, const sr_patches *p, const sr_patch *at)
{
    sr_image view = *image;
    view.data = (uint8_t *)image->data + at->y * image->stride + image_bytes(image, at->x, 1);
    view.width = p->patch_w;
    view.height = p->patch_h;
    return view;
}

/* Executes the plan made for in on each patch of it, the cores going to
 * target, and records the timings. */
static sr_status execute(sr_session *session, const sr_image *in, bool keep_alpha,
                         const output_target *target)
{
    sr_error *err = &session->last_error;
    const sr_graph *g = &session->model->graph;
    const sr_patches *p = &session->patches;
    const int64_t n = sr_patches_count(p), scale = session->model->info.scale;
    memset(session->node_seconds, 0, (size_t)g->n_nodes * sizeof(double));
    for (int i = 0; i < session->plan.n_stages; i++)
        session->stages[i].seconds = 0.0;
    patch_progress share = {session->options.progress, session->options.progress_user, 0, n};
    const sr_exec_progress progress = {share.fn ? patch_fraction : NULL, &share};
    const sr_exec_timing timing = {session->node_seconds, session->stage_seconds};
    sr_exec_held held = {0};
    sr_status st = SR_OK;
    for (int64_t i = 0; i < n && st == SR_OK; i++) {
        const sr_patch at = sr_patches_at(p, i);
        const sr_image view = patch_view(in, p, &at);
        input_source source = {&view, !keep_alpha, sr_input_unshuffle(&g->nodes[0]),
                               session->options.n_threads};
        core_cut cut = {target,
                        (at.core_y0 - at.y) * scale,
                        (at.core_y1 - at.y) * scale,
                        (at.core_x0 - at.x) * scale,
                        at.core_y0 * scale,
                        at.core_x0 * scale,
                        (at.core_x1 - at.core_x0) * scale};
        share.i = i;
        st = sr_plan_execute(g, &session->plan, &session->backend, session->options.scratch_dir,
                             read_rows, &source, cut_core, &cut, progress, timing,
                             session->hold_buffers ? &held : NULL, err);
        for (int k = 0; k < session->plan.n_stages; k++)
            session->stages[k].seconds += session->stage_seconds[k];
        if (st == SR_OK && target->rows_done && i % p->n_across == p->n_across - 1)
            st = target->rows_done(target->user, cut.y, at.core_y1 * scale, err);
    }
    sr_exec_held_free(&held, &session->plan, &session->backend);
    for (int k = 1; k < g->n_nodes; k++)
        session->layers[k - 1].seconds = session->node_seconds[k];
    if (st == SR_ERR_DEVICE)
        session->broken = *err;
    return st;
}

/* An image (or a strip of one: its row 0 is output row y0), and the
 * threads to convert rows into it with. */
typedef struct output_image {
    sr_image image;
    int64_t y0;
    int n_threads;
} output_image;

static sr_status put_columns(void *user, const sr_tensor *rows, int64_t x0, int64_t width,
                             sr_error *err)
{
    (void)err;
    const output_image *o = user;
    sr_image columns = o->image;
    columns.data = (uint8_t *)columns.data + image_bytes(&columns, x0, 1);
    columns.width = width;
    sr_tensor strip = *rows;
    strip.y0 -= o->y0;
    sr_tensor_to_image(&strip, &columns, o->n_threads);
    return SR_OK;
}

sr_status sr_session_run(sr_session *session, const sr_image *in, sr_image *out)
{
    if (!session)
        return SR_ERR_INVALID_ARGUMENT;
    sr_status st = prepare(session, in, out, true, true, false);
    if (st != SR_OK)
        return st;
    const bool keep_alpha = out->channels == 4;
    output_image sink = {*out, 0, session->options.n_threads};
    const output_target target = {put_columns, NULL, &sink};
    st = execute(session, in, keep_alpha, &target);
    if (st == SR_OK && keep_alpha)
        st = sr_resample_alpha(in, out, &session->last_error);
    return st;
}

/* The output delivered to the caller's sink in rows, alpha included: as
 * they come where one patch spans the width, else a row of patches' cores
 * assembled in the buffer first. */
typedef struct row_sink {
    output_image rows; /* the buffer: as many rows as a delivery brings */
    sr_alpha_resampler *alpha; /* NULL: no alpha kept */
    sr_rows_fn fn;
    void *user;
} row_sink;

/* Output rows [y0, y0 + n) from the buffer's first rows to the caller. */
static sr_status hand_over(row_sink *k, int64_t y0, int64_t n, sr_error *err)
{
    sr_image image = k->rows.image;
    image.height = n;
    if (k->alpha)
        sr_alpha_resample_rows(k->alpha, &image, y0);
    err->message[0] = '\0';
    const sr_status st = k->fn(k->user, &image, y0, err);
    if (st != SR_OK && !err->message[0])
        sr_fail(err, st, "the output's rows were refused (%s)", sr_status_string(st));
    return st;
}

static sr_status deliver_rows(void *user, const sr_tensor *rows, int64_t x0, int64_t width,
                              sr_error *err)
{
    row_sink *k = user;
    k->rows.y0 = rows->y0;
    put_columns(&k->rows, rows, x0, width, err);
    return hand_over(k, rows->y0, rows->shape.h, err);
}

static sr_status deliver_assembled(void *user, int64_t y0, int64_t y1, sr_error *err)
{
    row_sink *k = user;
    const sr_status st = hand_over(k, y0, y1 - y0, err);
    k->rows.y0 = y1;
    return st;
}

sr_status sr_session_run_rows(sr_session *session, const sr_image *in, const sr_image *shape,
                              sr_rows_fn sink, void *user)
{
    if (!session)
        return SR_ERR_INVALID_ARGUMENT;
    sr_status st = prepare(session, in, shape, true, false, true);
    if (st == SR_OK && !sink)
        st = sr_fail(&session->last_error, SR_ERR_INVALID_ARGUMENT, "no sink for the rows");
    if (st != SR_OK)
        return st;
    sr_error *err = &session->last_error;
    const sr_shape out_tensor = session->plan.shapes[session->plan.n_nodes - 1];
    const int64_t staging = sr_exec_staging_bytes(session->plan.shapes[0], out_tensor);
    const int64_t n_rows =
        delivery_rows(&session->patches, session->model->info.scale, out_tensor, staging);
    row_sink k = {.rows = {.n_threads = session->options.n_threads}, .fn = sink, .user = user};
    const bool assemble = session->patches.n_across > 1;
    const output_target target = {assemble ? put_columns : deliver_rows,
                                  assemble ? deliver_assembled : NULL, &k};
    sr_alpha_resampler alpha;
    st = sr_image_alloc(&k.rows.image, shape->width, n_rows, shape->channels, shape->type, err);
    if (st == SR_OK && shape->channels == 4) {
        st = sr_alpha_resampler_init(&alpha, in, shape->width, shape->height, err);
        k.alpha = st == SR_OK ? &alpha : NULL;
    }
    if (st == SR_OK)
        st = execute(session, in, shape->channels == 4, &target);
    if (k.alpha)
        sr_alpha_resampler_free(k.alpha);
    sr_image_free(&k.rows.image);
    return st;
}
