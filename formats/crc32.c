/* CRC-32 (zlib's polynomial and result) fast enough that verifying a
 * model.bin costs less than parsing a .pth: zlib 1.2.13's crc32 runs at
 * about 4 GB/s here, slower than a whole .pth load; folding 16 or 64 bytes
 * at a time with carry-less multiplies (PCLMULQDQ, or VPCLMULQDQ with
 * AVX-512) is about 13x faster. Other CPUs, and the tail, use zlib. */
#include "formats/crc32.h"

#include <zlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SR_CRC_PCLMUL 1
#include <immintrin.h>
#endif

#ifdef SR_CRC_PCLMUL
/* Four 128-bit lanes (64 consecutive bytes, folded) into the CRC, after
 * folding in the remaining 16-byte blocks of p. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t
crc32_finish(__m128i x1, __m128i x2, __m128i x3, __m128i x4, const uint8_t *p, uint64_t size)
{
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
    const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124);
    const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
    __m128i next[3] = {x2, x3, x4};
    for (int i = 0; i < 3; i++) {
        __m128i lo = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, next[i]), lo);
    }
    for (; size >= 16; p += 16, size -= 16) {
        __m128i lo = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, _mm_loadu_si128((const __m128i *)(const void *)p)), lo);
    }
    /* 128 bits to 64, then Barrett reduction to 32. */
    __m128i t = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
    t = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5, 0x00), t);
    t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
    x1 = _mm_xor_si128(x1, t);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}

/* Folds 64 bytes at a time with carry-less multiplies (Gopal et al., "Fast
 * CRC Computation for Generic Polynomials Using PCLMULQDQ", Intel 2009),
 * in the bit-reflected domain of zlib's polynomial 0xEDB88320. A fold over
 * D bits multiplies by x^(D+32) and x^(D-32) mod P (bit-reflected, shifted
 * left by one); then a Barrett reduction. Works on the raw register (no
 * pre/post inversion); needs size >= 64 and a multiple of 16. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t
crc32_fold(uint32_t crc, const uint8_t *p, uint64_t size)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4); /* D = 512 */
    __m128i x1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 0));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(const void *)(p + 32));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(const void *)(p + 48));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    p += 64;
    size -= 64;
    for (; size >= 64; p += 64, size -= 64) {
        __m128i a = _mm_clmulepi64_si128(x1, k1k2, 0x00), b = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        __m128i c = _mm_clmulepi64_si128(x3, k1k2, 0x00), d = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, a), _mm_loadu_si128((const __m128i *)(const void *)(p + 0)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, b), _mm_loadu_si128((const __m128i *)(const void *)(p + 16)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, c), _mm_loadu_si128((const __m128i *)(const void *)(p + 32)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, d), _mm_loadu_si128((const __m128i *)(const void *)(p + 48)));
    }
    return crc32_finish(x1, x2, x3, x4, p, size);
}

#define AVX512_CRC "vpclmulqdq,avx512f,pclmul,sse4.1"

/* x ^ (x.lo * k.lo) ^ (x.hi * k.hi) ^ y in each 128-bit lane: one fold. */
__attribute__((target(AVX512_CRC))) static __m512i fold512(__m512i x, __m512i k, __m512i y)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00),
                                     _mm512_clmulepi64_epi128(x, k, 0x11), y, 0x96);
}

/* The same folds on 512-bit registers, four of them (256 bytes a step, so
 * D = 2048), merged into one (D = 512), whose four lanes are the four
 * 128-bit lanes crc32_finish takes. Needs size >= 256, a multiple of 16. */
__attribute__((target(AVX512_CRC))) static uint32_t
crc32_fold_avx512(uint32_t crc, const uint8_t *p, uint64_t size)
{
    const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x01322d1430, 0x011542778a));
    const __m512i k512 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x01c6e41596, 0x0154442bd4));
    __m512i a0 = _mm512_loadu_si512(p), a1 = _mm512_loadu_si512(p + 64);
    __m512i a2 = _mm512_loadu_si512(p + 128), a3 = _mm512_loadu_si512(p + 192);
    a0 = _mm512_xor_si512(a0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    p += 256;
    size -= 256;
    for (; size >= 256; p += 256, size -= 256) {
        a0 = fold512(a0, k2048, _mm512_loadu_si512(p));
        a1 = fold512(a1, k2048, _mm512_loadu_si512(p + 64));
        a2 = fold512(a2, k2048, _mm512_loadu_si512(p + 128));
        a3 = fold512(a3, k2048, _mm512_loadu_si512(p + 192));
    }
    a1 = fold512(a0, k512, a1);
    a2 = fold512(a1, k512, a2);
    a3 = fold512(a2, k512, a3);
    for (; size >= 64; p += 64, size -= 64)
        a3 = fold512(a3, k512, _mm512_loadu_si512(p));
    return crc32_finish(_mm512_extracti32x4_epi32(a3, 0), _mm512_extracti32x4_epi32(a3, 1),
                        _mm512_extracti32x4_epi32(a3, 2), _mm512_extracti32x4_epi32(a3, 3), p,
                        size);
}
#endif

uint32_t sr_crc32(uint32_t crc, const uint8_t *data, uint64_t size)
{
#ifdef SR_CRC_PCLMUL
    if (size >= 64 && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1")) {
        uint64_t n = size & ~(uint64_t)15;
        crc = n >= 256 && __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("avx512f")
                  ? ~crc32_fold_avx512(~crc, data, n)
                  : ~crc32_fold(~crc, data, n);
        data += n;
        size -= n;
    }
#endif
    while (size > 0) {
        uInt n = size > (1u << 30) ? (1u << 30) : (uInt)size;
        crc = (uint32_t)crc32(crc, data, n);
        data += n;
        size -= n;
    }
    return crc;
}
