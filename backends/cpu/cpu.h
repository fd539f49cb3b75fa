/* The CPU backend's context and its kernels, one per op it speeds up; ops
 * it does not speed up run through their reference kernels, in parallel
 * over rows. */
#ifndef SR_BACKENDS_CPU_CPU_H
#define SR_BACKENDS_CPU_CPU_H

#include <cblas.h>
#include <omp.h>

#include "backends/backend.h"

typedef struct sr_cpu_conv_algorithm sr_cpu_conv_algorithm;

/* C [m x n] = A [m x k] B [k x n], row-major (sr_cpu_sgemm's arguments). */
typedef void sr_cpu_gemm_fn(int m, int n, int k, const float *a, int lda, const float *b, int ldb,
                            float *c, int ldc);

typedef struct sr_cpu_context {
    sr_host_context host; /* first: sr_host_memory's */
    int n_threads;
    float *workspace; /* reused between nodes; grows to the largest need */
    int64_t workspace_size;
    /* The algorithm every convolution it can run gets, or NULL: each
     * gets the selection's (sr_cpu_conv2d_select). */
    const sr_cpu_conv_algorithm *conv_forced;
    /* The convolutions' products by this kernel (sr_cpu_small_gemm_best),
     * or by OpenBLAS where NULL. */
    sr_cpu_gemm_fn *small_gemm;
} sr_cpu_context;

/* Marks a kernel whose loops the compiler vectorises: on x86-64 it is
 * compiled three times, for the baseline (SSE2), AVX2 and AVX-512, and the
 * first call picks the one the CPU runs (an ifunc). The build targets the
 * baseline so that one binary runs anywhere; OpenBLAS picks its own
 * kernels the same way. All give the same bits: nothing is fused into an
 * FMA (AVX-512 has them: GCC's ISO C mode fuses nothing, and a file with
 * such kernels tells clang so), and wider vectors only run more lanes at
 * once.
 * SR_HAVE_TARGET_CLONES comes from the build, where such a function
 * compiles and links (not without ifuncs, as with musl). Not under the
 * sanitizers: the resolver runs while the dynamic loader relocates the
 * program, before the sanitizer's runtime that its instrumentation calls
 * (ThreadSanitizer crashed there). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SR_CPU_VECTOR_CLONES
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#undef SR_CPU_VECTOR_CLONES
#define SR_CPU_VECTOR_CLONES
#elif !defined(SR_CPU_VECTOR_CLONES) && defined(SR_HAVE_TARGET_CLONES)
#define SR_CPU_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#ifndef SR_CPU_VECTOR_CLONES
#define SR_CPU_VECTOR_CLONES
#endif

/* C [m x n] = A [m x k] B [k x n], row-major with the given leading
 * dimensions, on the calling thread alone. Called only inside the
 * backend's parallel regions: OpenBLAS's OpenMP build runs single-threaded
 * inside an active region, but a team of one (-t 1) is not active, and it
 * would spread the call over every core, with other bits than the same
 * call inside a team of two. The limit set here is this implicit task's
 * own and ends with the region. */
static inline void sr_cpu_sgemm(int m, int n, int k, const float *a, int lda, const float *b,
                                int ldb, float *c, int ldc)
{
    omp_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, 0.0f,
                c, ldc);
}

/* Products without OpenBLAS (small_gemm.c): the fastest kernel the CPU
 * runs (AVX-512, else AVX2 with FMA), or NULL where it has neither. Every
 * kernel gives the same bits, and a value's bits do not depend on the
 * call it falls in, which OpenBLAS does not promise: its AVX-512 sgemm
 * gave an image row other bits in a band than in the whole image. */
sr_cpu_gemm_fn *sr_cpu_small_gemm_best(void);

/* Each kernel, for the tests; callable only where its _usable() says. */
#if defined(__x86_64__) && defined(__GNUC__)
#define SR_CPU_HAVE_SMALL_GEMM 1
bool sr_cpu_small_gemm_avx2_usable(void);
bool sr_cpu_small_gemm_avx512_usable(void);
sr_cpu_gemm_fn sr_cpu_small_gemm_avx2, sr_cpu_small_gemm_avx512;
#else
#define SR_CPU_HAVE_SMALL_GEMM 0
#endif

/* The context's product kernel: its small GEMM, else OpenBLAS. */
static inline sr_cpu_gemm_fn *sr_cpu_gemm(const sr_cpu_context *ctx)
{
    return ctx->small_gemm ? ctx->small_gemm : sr_cpu_sgemm;
}

/* tanh(x) within 3.6e-7 for every float x, without libm: x P(x^2) / Q(x^2)
 * with x clamped to +-9 (where tanh and the fit are 1 in float), plain float
 * arithmetic that a loop calling it vectorises. NaN stays NaN, +-inf
 * gives +-1. fit_tanh.py fits the coefficients and measures the
 * error over every float. */
static inline float sr_cpu_tanh(float x)
{
    static const float p[5] = {0.999999881f, 0.133731931f, 0.00348657649f, 2.04717435e-05f,
                               1.31841063e-08f};
    static const float q[5] = {1.0f, 0.467064887f, 0.0258419588f, 0.000327137677f,
                               7.70261465e-07f};
    x = x < -9.0f ? -9.0f : x;
    x = x > 9.0f ? 9.0f : x;
    const float s = x * x;
    const float num = (((p[4] * s + p[3]) * s + p[2]) * s + p[1]) * s + p[0];
    const float den = (((q[4] * s + q[3]) * s + q[2]) * s + q[1]) * s + q[0];
    return x * num / den;
}

/* The tanh_affine op, (tanh(x) + 1) / 2, with sr_cpu_tanh: a reference
 * kernel's signature, run like one, on any rows (tanh.c). */
void sr_cpu_tanh_affine(const sr_node *node, const sr_tensor *in, sr_tensor *out,
                        const float *stats);

/* Returns a workspace of at least n floats, or NULL. */
float *sr_cpu_workspace(sr_cpu_context *ctx, int64_t n);

/* A way to compute a convolution (conv2d.c, winograd.c). One node runs
 * with one algorithm throughout: its workspace, its row tiling and its
 * run all come from the same descriptor. */
struct sr_cpu_conv_algorithm {
    const char *name; /* what --stats and srbench show */
    /* Whether it can compute this convolution at all (whether it should
     * is sr_cpu_conv2d_select's business). */
    bool (*can_run)(const sr_conv2d_params *p);
    /* Floats of workspace for an output band of this shape. */
    int64_t (*workspace_floats)(const sr_cpu_context *ctx, const sr_conv2d_params *p,
                                sr_shape out);
    sr_row_tiling (*row_tiling)(const sr_node *node);
    sr_status (*run)(sr_cpu_context *ctx, const sr_node *node, const sr_tensor *in,
                     sr_tensor *out, sr_error *err);
};

/* Every algorithm, and their count. */
extern const sr_cpu_conv_algorithm sr_cpu_conv_im2col, sr_cpu_conv_kn2row,
    sr_cpu_conv_winograd, sr_cpu_conv_winograd_split;
extern const sr_cpu_conv_algorithm *const sr_cpu_conv_algorithms[];
#define SR_CPU_CONV_ALGORITHMS 4

/* The algorithm for this convolution: the forced one where it can run it,
 * else the one that measured fastest on such convolutions. The backend's
 * workspace size, row tiling and run all ask this, and so does the
 * session for sr_layer_info.algorithm. */
const sr_cpu_conv_algorithm *sr_cpu_conv2d_select(const sr_cpu_context *ctx,
                                                  const sr_conv2d_params *p);

/* sr_cpu_backend_new with every convolution's algorithm forced where it
 * can run it (name: one of sr_cpu_conv_algorithms'; NULL: none forced),
 * for tests and srbench. Fails with one line on an unknown name. */
sr_status sr_cpu_backend_new_forcing(int n_threads, const char *conv_algorithm,
                                     sr_backend_handle *backend, sr_error *err);

/* The backend's hooks for convolutions: the selected algorithm's. */
sr_status sr_cpu_conv2d(sr_cpu_context *ctx, const sr_node *node,
                        const sr_tensor *in, sr_tensor *out, sr_error *err);
int64_t sr_cpu_conv2d_workspace_bytes(const sr_cpu_context *ctx, const sr_node *node,
                                      sr_shape out);
sr_row_tiling sr_cpu_conv2d_row_tiling(const sr_cpu_context *ctx, const sr_node *node);

#endif
