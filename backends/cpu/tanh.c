/* The CPU backend's tanh_affine: libm's tanhf, a call per value, took
 * 0.15 s of SRPGAN x4's 5.6 s at 700x700; sr_cpu_tanh vectorises. */
#include "backends/cpu/cpu.h"

void sr_cpu_tanh_affine(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                        const float *stats)
{
    (void)node;
    (void)stats;
    const int64_t W = out->shape.w;
    for (int64_t c = 0; c < out->shape.c; c++)
        for (int64_t y = out->y0; y < out->y0 + out->shape.h; y++) {
            const float *x = sr_tensor_row(in, c, y);
            float *o = sr_tensor_row(out, c, y);
            for (int64_t i = 0; i < W; i++)
                o[i] = (sr_cpu_tanh(x[i]) + 1.0f) * 0.5f;
        }
}
