// Vectorised float32 kernels of the model, compiled once per instruction set and chosen at run time
// (spec/PLATFORM.md "Kernels"). Every entry point goes through the table the process selected at load: the best
// level the CPU runs, or the one GSLORA_KERNELS names. All levels give bit-identical results: the reductions use
// the same 16-lane summation order everywhere, fused multiply-adds are written out (fmaf where the CPU has no FMA),
// and nothing else is contracted.
#ifndef GSLORA_KERNELS_H
#define GSLORA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Instruction-set levels. x86-64: baseline (SSE2), AVX2 (+FMA, F16C), AVX-512 (F, BW, DQ, VL). arm64: NEON.
enum {
    GK_LEVEL_BASELINE = 0,
    GK_LEVEL_AVX2 = 1,
    GK_LEVEL_AVX512 = 2,
    GK_LEVEL_NEON = 3,
};

/// CPU feature bits, as `gk_cpu_features` reports them and `gk_best_level` reads them.
enum {
    GK_FEATURE_AVX2 = 1u << 0,
    GK_FEATURE_FMA = 1u << 1,
    GK_FEATURE_F16C = 1u << 2,
    GK_FEATURE_AVX512F = 1u << 3,
    GK_FEATURE_AVX512BW = 1u << 4,
    GK_FEATURE_AVX512DQ = 1u << 5,
    GK_FEATURE_AVX512VL = 1u << 6,
    GK_FEATURE_NEON = 1u << 7,
};

/// Outcomes of `gk_choose` other than a level.
enum {
    GK_CHOICE_UNKNOWN_NAME = -1,
    GK_CHOICE_CPU_LACKS = -2,
};

/// The features of the CPU this process runs on (cpuid, with the OS's register-state support).
uint32_t gk_cpu_features(void);
/// The best level a CPU with `features` runs.
int gk_best_level(uint32_t features);
/// The level named by `request` ("baseline", "avx2", "avx512", "neon"; NULL or "" or "best": `best`), or
/// GK_CHOICE_UNKNOWN_NAME, or GK_CHOICE_CPU_LACKS when `best` is below it or it belongs to another architecture.
int gk_choose(int best, const char *request);
/// The level in use, and what GSLORA_KERNELS asked for when the process loaded if that could not be honoured
/// (a GK_CHOICE_ value; 0 when it was honoured or unset). With a problem the best level is in use.
int gk_active_level(void);
int gk_environment_problem(void);
/// Whether this build has kernels for `level` (its architecture's levels only).
int gk_level_compiled(int level);
/// Switches every later call to `level`; returns 0, or -1 if the build has no such level. The caller checks that the
/// CPU runs it. Not for use while kernels run on other threads.
int gk_use_level(int level);

/// Reductions over n floats.
float gk_sum(const float *p, long n);
float gk_dot(const float *a, const float *b, long n);
/// Σ (p[i] − c)².
float gk_sum_squared_deviation(const float *p, long n, float c);
float gk_maximum(const float *p, long n);

/// One LayerNorm row: out = (x − mean)·rstd·gamma + beta (biased variance); mean and rstd returned. out may be x.
void gk_layer_norm_row(const float *x, long cols, const float *gamma, const float *beta, float eps, float *out,
                       float *mean, float *rstd);
/// One LayerNorm backward row: dx (+)= rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·gamma, x̂ = (x − mean)·rstd.
void gk_layer_norm_backward_row(const float *dy, const float *x, float mean, float rstd, const float *gamma, long cols,
                                float *dx, int accumulate);
/// Softmax of scale·row in place (max-subtracted, gk_exp).
void gk_softmax_row(float *row, long cols, float scale);
/// Softmax backward in place: d = scale·p ⊙ (d − Σ d ⊙ p).
void gk_softmax_backward_row(float *d, const float *p, long cols, float scale);

/// One dropout call's mask (see gk_mask_value).
typedef struct {
    uint32_t key;
    uint32_t key2;
    uint32_t threshold;
    float keep;
} gk_mask;

/// out[j] = GELU(v[j]) (out may be v); with a mask, times mask element base + j.
void gk_gelu(float *v, float *out, long n);
void gk_gelu_masked(float *v, float *out, long n, gk_mask mask, long base);
/// out[j] = GELU(v[j]) and v[j] = GELU′(v[j]) (out is not v); with a mask, both times mask element base + j.
void gk_gelu_derivative(float *v, float *out, long n);
void gk_gelu_derivative_masked(float *v, float *out, long n, gk_mask mask, long base);

/// float32 → bfloat16 bit patterns, round to nearest even; NaNs stay quiet NaNs.
void gk_bf16_round(const float *src, long n, uint16_t *dst);

/// out[k] (+)= scale·(x · m_k) for the `count` rows m_k of m, `stride` floats apart, each `cols` long.
void gk_dots(const float *x, const float *m, long stride, long count, long cols, float scale, float *out, int accumulate);
/// y += scale·Σ_i c[i·cs]·m_i over the `count` rows m_i of m, `stride` floats apart, each `cols` long.
void gk_add_combination(float *y, const float *m, long stride, long count, long cols, const float *c, long cs, float scale);

// ---- Scalar building blocks, shared by the kernels and by Swift's FastMath and DropoutMask. ----

static inline float gk_fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }

static inline float gk_bits_float(uint32_t u) { union { uint32_t u; float f; } v = { u }; return v.f; }
static inline uint32_t gk_float_bits(float f) { union { float f; uint32_t u; } v = { f }; return v.u; }

/// e^x within ~2 ulp for x in [-87, 88] (Cephes expf: reduction by ln 2 in two parts, degree-6 polynomial, 2^n from
/// the exponent bits). Inputs outside are clamped; NaN is not propagated.
static inline float gk_exp(float v) {
    float x = v < -87.3f ? -87.3f : v;
    x = x > 88.3f ? 88.3f : x;
    // Round x·log2(e) to the nearest integer: adding 1.5·2^23 leaves it in the low mantissa bits.
    float shifted = x * 1.44269504088896341f + 12582912.0f;
    float n = shifted - 12582912.0f;
    float r = gk_fma(n, 2.12194440e-4f, gk_fma(n, -0.693359375f, x));
    float p = 1.9875691500e-4f;
    p = gk_fma(p, r, 1.3981999507e-3f);
    p = gk_fma(p, r, 8.3334519073e-3f);
    p = gk_fma(p, r, 4.1665795894e-2f);
    p = gk_fma(p, r, 1.6666665459e-1f);
    p = gk_fma(p, r, 5.0000001201e-1f);
    p = gk_fma(p, r * r, r) + 1.0f;
    uint32_t ni = gk_float_bits(shifted) - 0x4B400000u;
    float scale = gk_bits_float((ni + 127u) << 23);
    return p * scale;
}

/// erf(x), absolute error below 1e-7 over all floats: an odd polynomial for |x| < 1, a Chebyshev-fitted polynomial in
/// |x| on [1, 3.92], ±1 beyond.
static inline float gk_erf(float x) {
    float ax = x < 0 ? -x : x;
    float s1 = gk_fma(x * x, 2.0f, -1.0f);
    float p1 = -7.554787373464933e-08f;
    p1 = gk_fma(p1, s1, 1.231088617714704e-06f);
    p1 = gk_fma(p1, s1, -1.753686592564918e-05f);
    p1 = gk_fma(p1, s1, 0.00021751270105596632f);
    p1 = gk_fma(p1, s1, -0.0022854856215417385f);
    p1 = gk_fma(p1, s1, 0.019852496683597565f);
    p1 = gk_fma(p1, s1, -0.1405360847711563f);
    p1 = gk_fma(p1, s1, 0.9654687643051147f);
    float small = x * p1;
    float c = ax > 3.92f ? 3.92f : ax;
    float u = gk_fma(c, (float)(2 / 2.92), -(float)(4.92 / 2.92));
    float p2 = 0.00021937955170869827f;
    p2 = gk_fma(p2, u, 2.6614299713401124e-05f);
    p2 = gk_fma(p2, u, -0.0016276390524581075f);
    p2 = gk_fma(p2, u, 0.0015457500703632832f);
    p2 = gk_fma(p2, u, 0.003339302260428667f);
    p2 = gk_fma(p2, u, -0.008982433006167412f);
    p2 = gk_fma(p2, u, 0.007346183992922306f);
    p2 = gk_fma(p2, u, 0.006468124687671661f);
    p2 = gk_fma(p2, u, -0.02844717726111412f);
    p2 = gk_fma(p2, u, 0.04511430859565735f);
    p2 = gk_fma(p2, u, -0.0450473353266716f);
    p2 = gk_fma(p2, u, 0.030599113553762436f);
    p2 = gk_fma(p2, u, -0.013928979635238647f);
    p2 = gk_fma(p2, u, 0.0038781326729804277f);
    p2 = gk_fma(p2, u, 0.9994966387748718f);
    float big = ax >= 3.92f ? 1.0f : p2;
    float signed_big = x < 0 ? -big : big;
    return ax < 1 ? small : signed_big;
}

/// e^{−a²/2} for 0 ≤ a ≤ 13.25 within 1e-7 relative: a² enters the reduced argument through an fma, so its rounding
/// never does; e^r = 1 + r + r²·P(r), P a degree-4 relative-minimax fit on |r| ≤ ln2/2. a ≤ 13.25 keeps n ≥ −127, and
/// n = −127 builds the scale's bit pattern as +0 (exactly 0 below about e^{−87.7}, no denormal).
static inline float gk_exp_negative_half_square(float a) {
    float h = a * -0.5f;
    // n = round(−a²/2·log2 e) by the 1.5·2^23 shift; the extra 127 puts the biased exponent in the low bits.
    float shifted = gk_fma(h * a, 1.44269504088896341f, 12583039.0f);
    float n = shifted - 12583039.0f;
    float r = gk_fma(n, 2.12194440e-4f, gk_fma(h, a, n * -0.693359375f));
    float p = 0.0013814528938382864f;
    p = gk_fma(p, r, 0.008368750102818012f);
    p = gk_fma(p, r, 0.04166839271783829f);
    p = gk_fma(p, r, 0.1666651964187622f);
    p = gk_fma(p, r, 0.4999999403953552f);
    float scale = gk_bits_float(gk_float_bits(shifted) << 23);
    return gk_fma(gk_fma(p, r * r, r), scale, scale);
}

/// Φ(x) and e^{−x²/2}: for a = |x|, Φ(−a) = w·P(w)·e^{−a²/2} with w = 1/(a + 2.875), P a degree-8 relative-minimax fit
/// of ½·erfcx(a/√2)/w on [0, 13.25]; Φ(a) = 1 − Φ(−a). a is clamped at 13.25, where Φ is exactly 0 or 1.
static inline float gk_normal_cdf(float x, float *gauss) {
    float ax = gk_bits_float(gk_float_bits(x) & 0x7FFFFFFFu);
    float a = ax > 13.25f ? 13.25f : ax;
    float w = 1.0f / (a + 2.875f);
    float p = -386.9980163574219f;
    p = gk_fma(p, w, 675.2136840820312f);
    p = gk_fma(p, w, -426.3068542480469f);
    p = gk_fma(p, w, 96.72869110107422f);
    p = gk_fma(p, w, -5.738410472869873f);
    p = gk_fma(p, w, 7.38779878616333f);
    p = gk_fma(p, w, 2.821789503097534f);
    p = gk_fma(p, w, 1.1493825912475586f);
    p = gk_fma(p, w, 0.39890992641448975f);
    float g = gk_exp_negative_half_square(a);
    float tail = w * p * g;
    *gauss = g;
    return (gk_float_bits(x) >> 31) ? tail : 1.0f - tail;
}

/// GELU(x) = x·Φ(x); GELU(+∞) = +∞, GELU(−∞) = −0, NaN gives NaN.
static inline float gk_gelu_value(float x) {
    float g;
    // max(x, −13.25): −13.25·0 rather than −∞·0 = NaN; Φ is exactly 0 below −13.25.
    return (x < -13.25f ? -13.25f : x) * gk_normal_cdf(x, &g);
}

/// GELU′(x) = Φ(x) + x·φ(x), with GELU(x) (bit-identical to gk_gelu_value) in *value.
static inline float gk_gelu_derivative_value(float x, float *value) {
    float g;
    float cdf = gk_normal_cdf(x, &g);
    float low = x < -13.25f ? -13.25f : x;
    // x·φ(x) with x clamped to ±13.25, where e^{−x²/2} is exactly 0: ±∞·0 would be NaN.
    float clamped = low > 13.25f ? 13.25f : low;
    *value = low * cdf;
    return gk_fma(clamped * 0.39894228040143268f, g, cdf);
}

/// Element i of a dropout mask: 0 or keep, from a 32-bit hash of (i, key, key2) kept when its top 24 bits are at
/// least the threshold.
static inline float gk_mask_value(gk_mask m, long i) {
    uint32_t h = ((uint32_t)i * 0x9E3779B1u) ^ m.key;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= m.key2;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return (h >> 8) >= m.threshold ? m.keep : 0.0f;
}

#ifdef __cplusplus
}
#endif
#endif
