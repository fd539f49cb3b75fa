/* 2-D convolution, stride 1, zero padding, with bias and maybe an
 * epilogue (activations, a pixel shuffle or a residual folded in), over
 * the channels of one input or of several (a concatenation folded in),
 * maybe nearest-upsampled (an upsample folded in):
 * the shape rule, the halo and the reference kernel. Cross-correlation,
 * as PyTorch's Conv2d. Also the epilogue's check, which InstanceNorm
 * shares. */
#include "ops/op.h"

sr_status sr_epilogue_check(const char *name, const sr_epilogue *e, int64_t c,
                            bool allow_shuffle, sr_error *err)
{
    if (e->n_steps < 0 || e->n_steps > SR_EPILOGUE_MAX_STEPS)
        return sr_fail(err, SR_ERR_MODEL, "%s: %d epilogue steps", name, e->n_steps);
    bool shuffled = false;
    for (int i = 0; i < e->n_steps; i++) {
        const sr_epilogue_step *s = &e->steps[i];
        switch (s->kind) {
        case SR_EPILOGUE_PRELU: {
            const int64_t n = s->p.prelu.n_slopes;
            if (n != 1 && (n != c || shuffled))
                return sr_fail(err, SR_ERR_MODEL, "%s: %lld slopes for %lld channels", name,
                               (long long)n, (long long)(shuffled ? 1 : c));
            break;
        }
        case SR_EPILOGUE_LEAKY_RELU:
            break;
        case SR_EPILOGUE_SHUFFLE:
            if (!allow_shuffle || shuffled || s->p.shuffle.r < 1)
                return sr_fail(err, SR_ERR_MODEL, "%s: a pixel shuffle it cannot fold", name);
            shuffled = true;
            break;
        case SR_EPILOGUE_RESIDUAL: /* convs are those that may shuffle */
            if (!allow_shuffle || shuffled || i != e->n_steps - 1)
                return sr_fail(err, SR_ERR_MODEL, "%s: a residual it cannot fold", name);
            break;
        default:
            return sr_fail(err, SR_ERR_MODEL, "%s: unknown epilogue step %d", name, (int)s->kind);
        }
    }
    return SR_OK;
}

static int conv2d_halo(const sr_node *node)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    /* Rows above an output row: pad; below: k - 1 - pad. Report the
     * larger, in rows of its input. */
    return (int)sr_conv2d_input_rows(p, p->pad > p->k - 1 - p->pad ? p->pad : p->k - 1 - p->pad);
}

static sr_status conv2d_shape(const sr_node *node, const sr_shape *in,
                              sr_shape *out, sr_error *err)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    sr_status st = sr_epilogue_check(node->name, &p->epilogue, p->c_out, true, err);
    if (st != SR_OK)
        return st;
    const int64_t r = sr_conv2d_shuffle(p);
    if (p->c_out % (r * r) != 0)
        return sr_fail(err, SR_ERR_MODEL, "%s: %lld channels do not shuffle by %lld",
                       node->name, (long long)p->c_out, (long long)r);
    sr_shape x;
    if ((st = sr_concat_shape(node->name, node->n_inputs, in, &x, err)) != SR_OK)
        return st;
    if (x.c != p->c_in)
        return sr_fail(err, SR_ERR_MODEL, "%s: expects %lld input channels, gets %lld",
                       node->name, (long long)p->c_in, (long long)x.c);
    if (p->upsample < 0 || p->upsample > SR_UPSAMPLE_MAX_FACTOR)
        return sr_fail(err, SR_ERR_MODEL, "%s: reads its input upsampled by %d", node->name,
                       p->upsample);
    x.h *= sr_conv2d_upsample(p);
    x.w *= sr_conv2d_upsample(p);
    sr_shape s = {p->c_out, x.h + 2 * p->pad - p->k + 1, x.w + 2 * p->pad - p->k + 1};
    if (s.h < 1 || s.w < 1)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "%s: input %lldx%lld is too small",
                       node->name, (long long)x.w, (long long)x.h);
    float scale; /* the residual: the input's first c_out channels */
    if (sr_epilogue_residual(&p->epilogue, &scale) &&
        (x.c < s.c || x.h != s.h || x.w != s.w || sr_conv2d_upsample(p) > 1))
        return sr_fail(err, SR_ERR_MODEL, "%s: adds a residual of another shape", node->name);
    *out = (sr_shape){s.c / (r * r), s.h * r, s.w * r};
    return SR_OK;
}

static int conv2d_scale(const sr_node *node)
{
    return (int)(sr_conv2d_shuffle(&node->p.conv2d) * sr_conv2d_upsample(&node->p.conv2d));
}

static int64_t conv2d_flops(const sr_node *node, sr_shape out)
{
    const sr_conv2d_params *p = &node->p.conv2d;
    return (2 * p->c_in * p->k * p->k + sr_epilogue_flops(&p->epilogue)) *
           sr_shape_numel(out);
}

/* Loop order (cout, cin, ky, kx, y, x): the inner loop runs along a row of
 * input and output, so it stays simple and still vectorises. A folded
 * shuffle only changes where each output row goes (every r-th value). */
static void conv2d_reference(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                             const float *stats)
{
    (void)stats;
    const sr_conv2d_params *p = &node->p.conv2d;
    const int64_t f = sr_conv2d_upsample(p), r = sr_conv2d_shuffle(p);
    const int64_t W = in->shape.w * f, H = in->image_h * f, OW = out->shape.w / r;
    for (int64_t co = 0; co < p->c_out; co++) {
        int64_t cy0, cy1;
        sr_conv2d_band_rows(p, out, co, &cy0, &cy1);
        for (int64_t cy = cy0; cy < cy1; cy++) {
            float *o = sr_conv2d_out_row(p, out, co, cy);
            for (int64_t ox = 0; ox < OW; ox++)
                o[ox * r] = p->bias ? p->bias[co] : 0.0f;
        }
        for (int64_t ci = 0; ci < p->c_in; ci++) {
            for (int ky = 0; ky < p->k; ky++) {
                for (int kx = 0; kx < p->k; kx++) {
                    const float wv = p->weight[((co * p->c_in + ci) * p->k + ky) * p->k + kx];
                    /* Output columns whose input column ox + kx - pad is inside. */
                    int64_t x0 = p->pad - kx, x1 = W + p->pad - kx;
                    if (x0 < 0) x0 = 0;
                    if (x1 > OW) x1 = OW;
                    for (int64_t cy = cy0; cy < cy1; cy++) {
                        const int64_t iy = cy + ky - p->pad;
                        if (iy < 0 || iy >= H)
                            continue; /* zero padding */
                        const float *xr = sr_conv2d_in_row(in, node->n_inputs, ci, iy / f);
                        float *orow = sr_conv2d_out_row(p, out, co, cy);
                        if (f == 1) /* the loop that vectorises */
                            for (int64_t ox = x0; ox < x1; ox++)
                                orow[ox * r] += wv * xr[ox + kx - p->pad];
                        else
                            for (int64_t ox = x0; ox < x1; ox++)
                                orow[ox * r] += wv * xr[(ox + kx - p->pad) / f];
                    }
                }
            }
        }
        for (int64_t cy = cy0; cy < cy1 && p->epilogue.n_steps > 0; cy++) {
            float *o = sr_conv2d_out_row(p, out, co, cy);
            for (int64_t ox = 0; ox < OW; ox++)
                o[ox * r] = sr_epilogue_value(&p->epilogue, co, o[ox * r]);
            sr_conv2d_add_residual(p, in, node->n_inputs, co, cy, 0, o, OW);
        }
    }
}

const sr_op_desc sr_op_conv2d = {
    .name = "conv2d",
    .n_inputs = SR_OP_VARIADIC,
    .scale = conv2d_scale,
    .halo = conv2d_halo,
    .shape = conv2d_shape,
    .flops = conv2d_flops,
    .reference = conv2d_reference,
};
