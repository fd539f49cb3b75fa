/* What an operation is, independent of where it runs: its typed
 * parameters, its shape rule, how far it reads beyond its output (halo),
 * how it scales rows, whether it needs the whole image (global), its FLOP
 * count, and a plain reference kernel that is the oracle for every backend.
 *
 * Kernels work on bands: the output tensor holds some rows of its image and
 * the inputs hold at least the rows those need (the halo, clipped to the
 * image); rows beyond the image border read as zero. Each output value must
 * be computed the same way whatever band it falls in, so that a tiled run
 * equals a whole-image run bit for bit. Kernels never allocate. */
#ifndef SR_OPS_OP_H
#define SR_OPS_OP_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "base/tensor.h"

typedef enum sr_op_type {
    SR_OP_INPUT,         /* the graph's image, maybe unshuffled; no kernel */
    SR_OP_CONV2D,        /* k x k, stride 1, zero padding, bias */
    SR_OP_PRELU,         /* one shared slope or one per channel */
    SR_OP_INSTANCE_NORM, /* per channel over H x W, biased variance, no affine */
    SR_OP_PIXEL_SHUFFLE, /* (C r^2, H, W) -> (C, H r, W r) */
    SR_OP_ADD,           /* in0 + scale in1, elementwise */
    SR_OP_TANH_AFFINE,   /* (tanh(x) + 1) / 2 */
    SR_OP_LEAKY_RELU,    /* x above 0, slope x below (slope 0: ReLU) */
    SR_OP_CONCAT,        /* 2 or more tensors' channels, in input order */
    SR_OP_UPSAMPLE,      /* nearest or bilinear, by an integer factor */
    SR_OP_COUNT
} sr_op_type;

/* Inline helpers that the CUDA kernels call on the device too. */
#ifdef __CUDACC__
#define SR_HOST_DEVICE __host__ __device__
#else
#define SR_HOST_DEVICE
#endif

typedef struct sr_prelu_params {
    int64_t n_slopes; /* 1 (shared) or the channel count */
    const float *slopes;
} sr_prelu_params;

/* x for x >= 0, slope x below: PReLU, LeakyReLU (ReLU: slope 0), and
 * every kernel that applies one. */
static inline SR_HOST_DEVICE float sr_prelu(float x, float slope)
{
    return x >= 0.0f ? x : slope * x;
}

/* The LeakyReLU op: x above 0, slope x at and below; slope 0 is PyTorch's
 * ReLU, which makes +0.0 of negatives and lets -0.0 and NaN pass. */
static inline SR_HOST_DEVICE float sr_leaky_relu(float x, float slope)
{
    return slope == 0.0f ? (x < 0.0f ? 0.0f : x) : x > 0.0f ? x : slope * x;
}

/* Channel c's slope. */
static inline SR_HOST_DEVICE float sr_prelu_slope(const sr_prelu_params *p, int64_t c)
{
    return p->slopes[p->n_slopes == 1 ? 0 : c];
}

/* A conv's or an InstanceNorm's epilogue: what sr_graph_fuse folded into
 * it from the nodes that followed, in their order, applied by every kernel
 * of the op after the bias (a conv) or the normalisation. The activations
 * act on each value alone, so a kernel applies them where it makes the
 * value; the shuffle moves values without changing them: a conv writes
 * each value where the shuffle puts it (sr_conv2d_out_row), and an
 * activation after the shuffle must then be the same for every channel
 * (its channels are not the conv's). A residual, last and in a conv
 * without a shuffle, adds the conv's own input where the value lands:
 * x + scale v, x being the conv's input channel co (of its inputs taken
 * one after another) at the same row and column (RRDB's dense blocks:
 * x + 0.2 conv5(x, x1, ..., x4)). */
typedef enum sr_epilogue_kind {
    SR_EPILOGUE_PRELU,      /* p.prelu: shared slope or one per channel */
    SR_EPILOGUE_LEAKY_RELU, /* p.leaky_relu: one slope */
    SR_EPILOGUE_SHUFFLE,    /* p.shuffle: (C r^2, H, W) -> (C, H r, W r); convs only */
    SR_EPILOGUE_RESIDUAL,   /* p.residual: x + scale v; convs only, last */
} sr_epilogue_kind;

typedef struct sr_epilogue_step {
    sr_epilogue_kind kind;
    union {
        sr_prelu_params prelu;
        struct {
            float slope;
        } leaky_relu;
        struct {
            int r;
        } shuffle;
        struct {
            float scale;
        } residual;
    } p;
} sr_epilogue_step;

#define SR_EPILOGUE_MAX_STEPS 4

typedef struct sr_epilogue {
    int n_steps;
    sr_epilogue_step steps[SR_EPILOGUE_MAX_STEPS];
} sr_epilogue;

/* Checks the epilogue of the node named name, whose own output has c
 * channels (a conv's before any shuffle): the slope counts, at most one
 * shuffle and only where allow_shuffle (a conv's), r >= 1, and after it
 * slopes shared by every channel. Part of the op's shape rule. */
sr_status sr_epilogue_check(const char *name, const sr_epilogue *e, int64_t c,
                            bool allow_shuffle, sr_error *err);

/* Appends a step; false when the list is full. */
static inline bool sr_epilogue_append(sr_epilogue *e, sr_epilogue_step step)
{
    if (e->n_steps == SR_EPILOGUE_MAX_STEPS)
        return false;
    e->steps[e->n_steps++] = step;
    return true;
}

/* Whether the step acts on each value alone (a PReLU or LeakyReLU). */
static inline SR_HOST_DEVICE bool sr_epilogue_is_activation(const sr_epilogue_step *s)
{
    return s->kind == SR_EPILOGUE_PRELU || s->kind == SR_EPILOGUE_LEAKY_RELU;
}

/* FLOPs per value: one per activation, two for a residual. */
static inline int sr_epilogue_flops(const sr_epilogue *e)
{
    int n = 0;
    for (int i = 0; i < e->n_steps; i++)
        n += sr_epilogue_is_activation(&e->steps[i]) ? 1
             : e->steps[i].kind == SR_EPILOGUE_RESIDUAL ? 2
                                                        : 0;
    return n;
}

/* Whether it ends with a residual, and its scale. */
static inline SR_HOST_DEVICE bool sr_epilogue_residual(const sr_epilogue *e, float *scale)
{
    if (e->n_steps == 0 || e->steps[e->n_steps - 1].kind != SR_EPILOGUE_RESIDUAL)
        return false;
    *scale = e->steps[e->n_steps - 1].p.residual.scale;
    return true;
}

/* The shuffle's r, or 1. */
static inline SR_HOST_DEVICE int64_t sr_epilogue_shuffle(const sr_epilogue *e)
{
    for (int i = 0; i < e->n_steps; i++)
        if (e->steps[i].kind == SR_EPILOGUE_SHUFFLE)
            return e->steps[i].p.shuffle.r;
    return 1;
}

/* An activation step's slope for channel c: each kind so far is a
 * sr_prelu; a kind that is not would get its own case here and below. */
static inline SR_HOST_DEVICE float sr_epilogue_slope(const sr_epilogue_step *s, int64_t c)
{
    return s->kind == SR_EPILOGUE_LEAKY_RELU ? s->p.leaky_relu.slope
                                             : sr_prelu_slope(&s->p.prelu, c);
}

/* The epilogue's activations on value v of the op's own channel c. */
static inline SR_HOST_DEVICE float sr_epilogue_value(const sr_epilogue *e, int64_t c, float v)
{
    for (int i = 0; i < e->n_steps; i++)
        if (sr_epilogue_is_activation(&e->steps[i]))
            v = sr_prelu(v, sr_epilogue_slope(&e->steps[i], c));
    return v;
}

/* The same on n contiguous values of channel c, a step at a time (each a
 * loop that vectorises). */
static inline void sr_epilogue_apply(const sr_epilogue *e, int64_t c, float *v, int64_t n)
{
    for (int i = 0; i < e->n_steps; i++) {
        if (!sr_epilogue_is_activation(&e->steps[i]))
            continue;
        const float a = sr_epilogue_slope(&e->steps[i], c);
        for (int64_t j = 0; j < n; j++)
            v[j] = sr_prelu(v[j], a);
    }
}

/* A convolution reads the channels of its inputs one after another: one
 * tensor as built, or the tensors of a concatenation that sr_graph_fuse
 * folded into it, which is then never made. */
typedef struct sr_conv2d_params {
    int64_t c_in, c_out; /* c_in: of all its inputs together */
    int k, pad;
    const float *weight; /* [c_out][c_in][k][k] */
    const float *bias;   /* [c_out], or NULL */
    /* With a shuffle by r the output is (c_out / r^2, h r, w r), each
     * value written straight where the shuffle puts it. */
    sr_epilogue epilogue;
    /* 0 or 1: none. f: the conv reads its input nearest-upsampled by f
     * (a nearest upsample folded in): the value at row y, column x of
     * what it convolves is the input's at y / f, x / f. */
    int upsample;
} sr_conv2d_params;

static inline SR_HOST_DEVICE int64_t sr_conv2d_shuffle(const sr_conv2d_params *p)
{
    return sr_epilogue_shuffle(&p->epilogue);
}

static inline SR_HOST_DEVICE int64_t sr_conv2d_upsample(const sr_conv2d_params *p)
{
    return p->upsample > 1 ? p->upsample : 1;
}

/* n rows or columns of what the conv convolves, in rows or columns of its
 * input: a halo of n upsampled rows reaches ceil(n / f) input rows. */
static inline int64_t sr_conv2d_input_rows(const sr_conv2d_params *p, int64_t n)
{
    const int64_t f = sr_conv2d_upsample(p);
    return (n + f - 1) / f;
}

/* The rows [*cy0, *cy1) of output channel co, before the shuffle, that
 * land in out's band (all of the band's rows when nothing is folded). */
static inline void sr_conv2d_band_rows(const sr_conv2d_params *p, const sr_tensor *out,
                                       int64_t co, int64_t *cy0, int64_t *cy1)
{
    const int64_t r = sr_conv2d_shuffle(p), i = co / r % r;
    *cy0 = (out->y0 - i + r - 1) / r;
    *cy1 = (out->y0 + out->shape.h - i + r - 1) / r;
}

/* Where output channel co's row cy, before the shuffle, lands: every r-th
 * value from the returned address. */
static inline float *sr_conv2d_out_row(const sr_conv2d_params *p, const sr_tensor *out,
                                       int64_t co, int64_t cy)
{
    const int64_t r = sr_conv2d_shuffle(p);
    return sr_tensor_row(out, co / (r * r), cy * r + co / r % r) + co % r;
}

/* Channel c, image row y, of the tensors in[0 .. n) taken one after
 * another: a convolution's input channel c. */
static inline const float *sr_conv2d_in_row(const sr_tensor *in, int n, int64_t c, int64_t y)
{
    int j = 0;
    for (; j < n - 1 && c >= in[j].shape.c; j++)
        c -= in[j].shape.c;
    return sr_tensor_row(&in[j], c, y);
}

/* n values of input channel c at row y, from column x, of what the conv
 * convolves (rows and columns upsampled where it folds an upsample), into
 * dst: all inside the image. */
static inline void sr_conv2d_read_row(const sr_conv2d_params *p, const sr_tensor *in, int n_in,
                                      int64_t c, int64_t y, int64_t x, int64_t n, float *dst)
{
    const int64_t f = sr_conv2d_upsample(p);
    if (f == 1) {
        memcpy(dst, sr_conv2d_in_row(in, n_in, c, y) + x, (size_t)n * sizeof *dst);
        return;
    }
    /* Each input value f times, without a division per value (which
     * took longer than the convolution's products). */
    const float *src = sr_conv2d_in_row(in, n_in, c, y / f) + x / f;
    int64_t j = 0;
    for (int64_t e = x % f; e < f && j < n; e++)
        dst[j++] = src[0];
    if (f == 2) /* RRDBNet's: a loop the compiler vectorises */
        for (src++; j + 2 <= n; src++, j += 2)
            dst[j] = dst[j + 1] = src[0];
    else
        for (src++; j + f <= n; src++, j += f)
            for (int64_t e = 0; e < f; e++)
                dst[j + e] = src[0];
    for (; j < n; j++)
        dst[j] = src[0];
}

/* The residual, if the conv's epilogue ends with one, on n values v of
 * output channel co at row y from column x0 (no shuffle: those are the
 * input's row and columns): x + scale v, the product rounded first as
 * sr_op_add rounds it (ISO C contracts no FMA here). */
static inline void sr_conv2d_add_residual(const sr_conv2d_params *p, const sr_tensor *in, int n_in,
                                          int64_t co, int64_t y, int64_t x0, float *v, int64_t n)
{
    float scale;
    if (!sr_epilogue_residual(&p->epilogue, &scale))
        return;
    const float *x = sr_conv2d_in_row(in, n_in, co, y) + x0;
    for (int64_t j = 0; j < n; j++) {
        const float scaled = scale * v[j];
        v[j] = x[j] + scaled;
    }
}

/* The shape of the tensors in[0 .. n) concatenated along channels (the
 * concat op's, and a convolution's input's); they must be 1 to
 * SR_NODE_MAX_INPUTS of the same height and width. */
sr_status sr_concat_shape(const char *name, int n, const sr_shape *in, sr_shape *out,
                          sr_error *err);

typedef struct sr_instance_norm_params {
    float eps;
    sr_epilogue epilogue; /* activations only */
} sr_instance_norm_params;

typedef struct sr_pixel_shuffle_params {
    int r;
} sr_pixel_shuffle_params;

/* The input node: the image as the network takes it, either as it is
 * (unshuffle 0 or 1) or space-to-depth by f = unshuffle, as BasicSR's x2
 * and x1 RRDBNet take it: F.pixel_unshuffle(x, f) after the bottom and
 * right edges are padded by reflection to a multiple of f (Real-ESRGAN's
 * pre_process). in[c][f y + i][f x + j] becomes channel c f^2 + i f + j
 * of row y, column x. The conversion from pixels does it (runtime/pixels.c):
 * the network's input is whole in memory anyway, so the planner and the
 * backends see only a plain tensor of 3 f^2 channels. */
typedef struct sr_input_params {
    int unshuffle;
} sr_input_params;

#define SR_INPUT_MAX_UNSHUFFLE 8

typedef struct sr_add_params {
    float scale; /* in0 + scale in1: residual scaling; 1 is a plain sum */
} sr_add_params;

typedef struct sr_leaky_relu_params {
    float slope; /* 0: ReLU */
} sr_leaky_relu_params;

typedef enum sr_upsample_mode {
    SR_UPSAMPLE_NEAREST,
    SR_UPSAMPLE_BILINEAR, /* half-pixel centres (align_corners=False), edges clamped */
} sr_upsample_mode;

typedef struct sr_upsample_params {
    int factor; /* 2..SR_UPSAMPLE_MAX_FACTOR */
    int mode;   /* sr_upsample_mode */
} sr_upsample_params;

#define SR_UPSAMPLE_MAX_FACTOR 8

/* Where bilinear upsampling reads for output row (or column) o: l0 of
 * source i0 plus l1 of source i1. The source coordinate (o + 1/2) / f -
 * 1/2 = (2 o + 1 - f) / (2 f), exact in integers; below 0 it is 0, and
 * past the last of the n sources i1 is the last (PyTorch's clamping). */
typedef struct sr_upsample_tap {
    int64_t i0, i1;
    float l0, l1;
} sr_upsample_tap;

static inline SR_HOST_DEVICE sr_upsample_tap sr_upsample_bilinear_tap(int64_t f, int64_t o, int64_t n)
{
    const int64_t num = 2 * o + 1 - f;
    sr_upsample_tap t = {0, 0, 1.0f, 0.0f};
    if (num > 0) {
        t.i0 = num / (2 * f);
        t.l1 = (float)(num % (2 * f)) / (float)(2 * f);
        t.l0 = 1.0f - t.l1;
    }
    t.i1 = t.i0 < n - 1 ? t.i0 + 1 : t.i0;
    return t;
}

/* One bilinear output value from the source rows `top` (y.i0) and
 * `bottom` (y.i1): across each row, then between them. nvcc may fuse these
 * into FMAs: the GPU's value is then a rounding or so off the reference's,
 * the same in every band. */
static inline SR_HOST_DEVICE float sr_upsample_bilinear_mix(sr_upsample_tap y, sr_upsample_tap x,
                                            const float *top, const float *bottom)
{
    const float t = x.l0 * top[x.i0] + x.l1 * top[x.i1];
    const float b = x.l0 * bottom[x.i0] + x.l1 * bottom[x.i1];
    return y.l0 * t + y.l1 * b;
}

/* RRDB's dense blocks concatenate five tensors. */
#define SR_NODE_MAX_INPUTS 8
#define SR_NODE_NAME_SIZE 64
#define SR_OP_VARIADIC (-1)

typedef struct sr_node {
    sr_op_type op;
    char name[SR_NODE_NAME_SIZE]; /* the weights' prefix, e.g. "block1.0" */
    int n_inputs;
    int inputs[SR_NODE_MAX_INPUTS]; /* indices of earlier nodes */
    union {
        sr_conv2d_params conv2d;
        sr_prelu_params prelu;
        sr_instance_norm_params instance_norm;
        sr_pixel_shuffle_params pixel_shuffle;
        sr_input_params input;
        sr_add_params add;
        sr_leaky_relu_params leaky_relu;
        sr_upsample_params upsample;
    } p;
} sr_node;

/* The input's factor: 1 when the image goes in as it is. */
static inline int64_t sr_input_unshuffle(const sr_node *input)
{
    return input->p.input.unshuffle > 1 ? input->p.input.unshuffle : 1;
}

/* The input node's tensor for an image of `image` (3 x H x W): 3 f^2 x
 * ceil(H / f) x ceil(W / f). */
static inline sr_shape sr_input_shape(const sr_node *input, sr_shape image)
{
    const int64_t f = sr_input_unshuffle(input);
    return (sr_shape){image.c * f * f, (image.h + f - 1) / f, (image.w + f - 1) / f};
}

/* Where padding by reflection (mirrored about the edge, not repeating it)
 * takes index i of a row or column of n: itself inside; past the end,
 * reflected, as often as it takes (numpy's "reflect"; PyTorch's where it
 * pads less than n, and a single pixel repeated). */
static inline int64_t sr_reflect_index(int64_t i, int64_t n)
{
    if (i < n)
        return i;
    if (n == 1)
        return 0;
    i %= 2 * (n - 1);
    return i < n ? i : 2 * (n - 1) - i;
}

typedef struct sr_op_desc {
    const char *name;
    int n_inputs; /* SR_OP_VARIADIC: 1 or 2 to SR_NODE_MAX_INPUTS, which shape checks */
    bool is_global; /* needs statistics over the whole image */
    bool in_place;  /* may write its output over its first input */
    /* Output rows (and columns) per input row. */
    int (*scale)(const sr_node *node);
    /* Input rows read beyond the rows an output band covers, per side. */
    int (*halo)(const sr_node *node);
    sr_status (*shape)(const sr_node *node, const sr_shape *in, sr_shape *out,
                       sr_error *err);
    int64_t (*flops)(const sr_node *node, sr_shape out);
    /* stats: what a global op gathered over the whole image, else NULL. */
    void (*reference)(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                      const float *stats);

    /* Global ops only. Before the op runs, its input's rows are passed to
     * accumulate (n_stats doubles, zeroed first) in image row order, each
     * row once; finalize turns the sums into n_stats floats for the kernel. */
    int64_t (*n_stats)(const sr_node *node, sr_shape in);
    void (*accumulate)(const sr_node *node, const sr_tensor *in, int64_t y0,
                       int64_t y1, double *acc);
    void (*finalize)(const sr_node *node, sr_shape in, const double *acc,
                     float *stats);
} sr_op_desc;

const sr_op_desc *sr_op_get(sr_op_type op);

/* The node's op as people know it: its descriptor's name, but "relu" for a
 * LeakyReLU of slope 0. */
const char *sr_op_name(const sr_node *node);

extern const sr_op_desc sr_op_input, sr_op_conv2d, sr_op_prelu,
    sr_op_instance_norm, sr_op_pixel_shuffle, sr_op_add, sr_op_tanh_affine,
    sr_op_leaky_relu, sr_op_concat, sr_op_upsample;

/* Shape rule shared by the ops whose output has their first input's shape. */
sr_status sr_op_same_shape(const sr_node *node, const sr_shape *in,
                           sr_shape *out, sr_error *err);
int sr_op_no_halo(const sr_node *node);
int sr_op_unit_scale(const sr_node *node);

#endif
