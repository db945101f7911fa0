/* SIMD workloads shared by the SIMD test guest (guest.c) and its host twin (host.c): the
 * same source compiled with -O3 -msse4.2 runs natively and on x86vm, and the checksums must
 * be equal. String functions in the style of glibc's SSE2/SSE4.2 ones (PCMPEQB + PMOVMSKB +
 * BSF, PCMPISTRI, unaligned and aligned moves), loops gcc vectorises (PMULLD, PMINSD, PSHUFB,
 * packs, conversions) and scalar double/float arithmetic (MULSD, DIVSD, SQRTSD, CVT*). */
#include <stdint.h>
#include <nmmintrin.h>

#define N 1024
static uint8_t text[4096] __attribute__((aligned(16)));
static uint8_t copy[4096 + 64] __attribute__((aligned(16)));
static int32_t ia[N], ib[N], ic[N];
static int16_t sa[N], sb[N];
static uint8_t ba[N], bb[N];
static double da[N];
static float fa[N];
static uint32_t seed = 12345;

static uint32_t rnd(void)
{
    seed = seed * 1103515245u + 12345u;
    return seed >> 7;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ULL + (h >> 29);
}

static __attribute__((noinline)) unsigned long sse2_strlen(const char *s)
{
    const char *p = (const char *)((uintptr_t)s & ~(uintptr_t)15);
    __m128i zero = _mm_setzero_si128();
    unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128((const __m128i *)p), zero));
    mask >>= (uintptr_t)s & 15;
    if (mask)
        return (unsigned long)__builtin_ctz(mask);
    for (;;) {
        p += 16;
        mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128((const __m128i *)p), zero));
        if (mask)
            return (unsigned long)(p - s) + (unsigned long)__builtin_ctz(mask);
    }
}

static __attribute__((noinline)) long sse42_strchr(const char *s, char c)
{
    __m128i needle = _mm_cvtsi32_si128((unsigned char)c);
    for (long off = 0;; off += 16) {
        __m128i hay = _mm_loadu_si128((const __m128i *)(s + off));
        int i = _mm_cmpistri(needle, hay, _SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ANY);
        if (i < 16)
            return off + i;
        if (_mm_cmpistrz(needle, hay, _SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ANY))
            return -1;
    }
}

static __attribute__((noinline)) void sse_memcpy(uint8_t *d, const uint8_t *s, unsigned long n)
{
    while (n >= 16) {
        _mm_storeu_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)s));
        d += 16, s += 16, n -= 16;
    }
    while (n--)
        *d++ = *s++;
}

static __attribute__((noinline)) int sse2_memcmp(const uint8_t *a, const uint8_t *b, unsigned long n)
{
    for (unsigned long i = 0; i + 16 <= n; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(a + i));
        __m128i y = _mm_loadu_si128((const __m128i *)(b + i));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) ^ 0xffff;
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            return a[i + k] - b[i + k];
        }
    }
    return 0;
}

void simd_work(uint64_t out[8])
{
    uint64_t h = 0;
    for (int i = 0; i < 4095; i++)
        text[i] = (uint8_t)(32 + rnd() % 90);
    text[4095] = 0;
    /* strings: lengths and searches from every alignment */
    for (int start = 0; start < 64; start++) {
        text[3000 + start] = 0;
        h = mix(h, sse2_strlen((const char *)text + start));
        h = mix(h, (uint64_t)sse42_strchr((const char *)text + start, (char)(40 + start)));
        text[3000 + start] = 'x';
    }
    for (int n = 0; n < 300; n += 7) {
        sse_memcpy(copy + (n & 15), text + n, (unsigned long)(n * 5));
        h = mix(h, (uint64_t)sse2_memcmp(copy + (n & 15), text + n, (unsigned long)(n * 5)));
        copy[(n & 15) + n] ^= 1;
        h = mix(h, (uint64_t)(int64_t)sse2_memcmp(copy + (n & 15), text + n, (unsigned long)(n * 5 + 16)));
    }
    out[0] = h;
    /* integer loops gcc vectorises */
    for (int i = 0; i < N; i++) {
        ia[i] = (int32_t)rnd() - (1 << 23);
        ib[i] = (int32_t)(rnd() % 2001) - 1000;
        sa[i] = (int16_t)rnd();
        sb[i] = (int16_t)(rnd() >> 3);
        ba[i] = (uint8_t)rnd();
        bb[i] = (uint8_t)(rnd() >> 5);
    }
    for (int i = 0; i < N; i++)
        ic[i] = ia[i] * ib[i] + (ia[i] > ib[i] ? ia[i] : ib[i]);
    h = 0;
    for (int i = 0; i < N; i++)
        h = mix(h, (uint32_t)ic[i]);
    out[1] = h;
    int64_t acc = 0;
    for (int i = 0; i < N; i++)
        acc += (int64_t)sa[i] * sb[i];
    uint32_t bsum = 0;
    for (int i = 0; i < N; i++) {
        unsigned s = (unsigned)ba[i] + bb[i];
        ba[i] = (uint8_t)(s > 255 ? 255 : s);
        bsum += ba[i] ^ (uint8_t)(ba[i] >> 1);
    }
    for (int i = 0; i < N; i++)
        sa[i] = (int16_t)(sa[i] < 0 ? -sa[i] : sa[i]);
    for (int i = 0; i < N; i++)
        acc += sa[i];
    out[2] = (uint64_t)acc ^ ((uint64_t)bsum << 40);
    /* explicit SSSE3 / SSE4.1 */
    __m128i v = _mm_setzero_si128();
    __m128i shuf = _mm_set_epi8(0, 15, 1, 14, 2, 13, 3, 12, 4, 11, 5, 10, 6, 9, 7, 8);
    for (int i = 0; i + 16 <= N; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(ba + i));
        x = _mm_shuffle_epi8(x, shuf);
        v = _mm_add_epi32(v, _mm_cvtepu8_epi32(x));
        v = _mm_xor_si128(v, _mm_alignr_epi8(x, v, 5));
        v = _mm_max_epi32(v, _mm_mullo_epi32(v, _mm_set1_epi32(3)));
        v = _mm_blend_epi16(v, _mm_hadd_epi16(v, x), 0x5a);
    }
    out[3] = (uint64_t)_mm_extract_epi64(v, 0) ^ (uint64_t)_mm_extract_epi64(v, 1) ^
             (uint64_t)_mm_crc32_u64(0x1234, (uint64_t)_mm_extract_epi64(v, 1));
    /* double and float arithmetic */
    for (int i = 0; i < N; i++) {
        da[i] = (double)ia[i] / (double)(ib[i] ? ib[i] : 7) + 0.1 * i;
        fa[i] = (float)da[i] * 0.33f;
    }
    double s = 0.0, q = 0.0;
    for (int i = 0; i < N; i++) {
        s += da[i] * da[i];
        q += __builtin_sqrt(da[i] < 0 ? -da[i] : da[i]);
    }
    float f = 1.0f;
    for (int i = 0; i < N; i++)
        f = f * 0.999f + fa[i] / 1000.0f;
    int64_t t = 0;
    for (int i = 0; i < N; i++)
        t += (int64_t)(da[i] * 1000.0) + (int32_t)fa[i] + (da[i] < fa[i]);
    union { double d; uint64_t u; } ud = {s}, uq = {q};
    union { float f; uint32_t u; } uf = {f};
    out[4] = ud.u;
    out[5] = uq.u;
    out[6] = uf.u;
    out[7] = (uint64_t)t;
}
