/* The machine's measured FMA peak, the yardstick for "share of peak": 16
 * independent chains of vector FMAs per thread (enough to hide the
 * latency on every x86 core of the last decade), 2 FLOPs per lane.
 *
 *   build/bench/fma_peak [THREADS]    (default: all CPUs)
 *
 * AVX-512 where the CPU has it, else AVX2 with FMA. Prints GFLOP/s, best of
 * five runs of about half a second. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 16
#define STEPS 20000000L

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each returns the chains' sum (printed), so that the compiler keeps every
 * FMA. */
__attribute__((target("avx512f"))) static float chains_avx512(long steps)
{
    __m512 acc[CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    for (int i = 1; i < CHAINS; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float chains_avx2(long steps)
{
    __m256 acc[CHAINS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float out[8], sum = 0.0f;
    for (int i = 1; i < CHAINS; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(out, acc[0]);
    for (int i = 0; i < 8; i++)
        sum += out[i];
    return sum;
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
    const int avx512 = __builtin_cpu_supports("avx512f");
    if (threads < 1 || (!avx512 && !__builtin_cpu_supports("fma"))) {
        fprintf(stderr, "usage: fma_peak [THREADS]; needs AVX2 with FMA\n");
        return 2;
    }
    const int lanes = avx512 ? 16 : 8;
    const long steps = STEPS / (avx512 ? 2 : 1);
    double best = 0.0, sink = 0.0;
    for (int run = 0; run < 5; run++) {
        const double start = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += avx512 ? chains_avx512(steps) : chains_avx2(steps);
        const double flops = 2.0 * lanes * CHAINS * (double)steps * threads;
        const double rate = flops / (now() - start) * 1e-9;
        best = rate > best ? rate : best;
    }
    printf("%.1f GFLOP/s on %d threads (%s FMA; checksum %g)\n", best, threads,
           avx512 ? "AVX-512" : "AVX2", sink);
    return 0;
}
