// Builds the kernels once per instruction-set level and picks a level when the process loads (spec/PLATFORM.md).
#include "gslora_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Products and sums stay as written (as in the Swift code around them); fused multiply-adds are explicit.
#pragma STDC FP_CONTRACT OFF

typedef float gk_v8 __attribute__((vector_size(32)));
typedef int32_t gk_v8i __attribute__((vector_size(32)));
typedef float gk_v8u __attribute__((vector_size(32), aligned(4)));
#define GK_LOAD(p) (*(const gk_v8u *)(p))
#define GK_STORE(p, v) (*(gk_v8u *)(p) = (v))
#define GK_FMA8(a, b, c) __builtin_elementwise_fma((a), (b), (c))
// The lanes added in order, as Swift's SIMD8.sum() does (a macro: a vector argument would change the call ABI).
#define GK_HSUM(v) ({ gk_v8 gk_v_ = (v); float gk_s_ = -0.0f; for (int gk_i_ = 0; gk_i_ < 8; gk_i_++) gk_s_ += gk_v_[gk_i_]; gk_s_; })

typedef struct {
    float (*sum)(const float *, long);
    float (*dot)(const float *, const float *, long);
    float (*sum_squared_deviation)(const float *, long, float);
    float (*maximum)(const float *, long);
    void (*layer_norm_row)(const float *, long, const float *, const float *, float, float *, float *, float *);
    void (*layer_norm_backward_row)(const float *, const float *, float, float, const float *, long, float *, int);
    void (*softmax_row)(float *, long, float);
    void (*softmax_backward_row)(float *, const float *, long, float);
    void (*gelu)(float *, float *, long);
    void (*gelu_masked)(float *, float *, long, gk_mask, long);
    void (*gelu_derivative)(float *, float *, long);
    void (*gelu_derivative_masked)(float *, float *, long, gk_mask, long);
    void (*bf16_round)(const float *, long, uint16_t *);
    void (*dots)(const float *, const float *, long, long, long, float, float *, int);
    void (*add_combination)(float *, const float *, long, long, long, const float *, long, float);
} gk_table;

#if defined(__x86_64__)
#define GK_NAME(f) f##_avx512
#define GK_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#include "kernels_body.h"
#undef GK_NAME
#undef GK_TARGET
#define GK_NAME(f) f##_avx2
#define GK_TARGET __attribute__((target("avx2,fma,f16c")))
#include "kernels_body.h"
#undef GK_NAME
#undef GK_TARGET
#define GK_NAME(f) f##_baseline
#define GK_TARGET
#include "kernels_body.h"
#undef GK_NAME
#undef GK_TARGET
#elif defined(__aarch64__)
// NEON is part of every arm64 CPU: one build, which the compiler vectorises with it.
#define GK_NAME(f) f##_neon
#define GK_TARGET
#include "kernels_body.h"
#undef GK_NAME
#undef GK_TARGET
#else
#define GK_NAME(f) f##_baseline
#define GK_TARGET
#include "kernels_body.h"
#undef GK_NAME
#undef GK_TARGET
#endif

static const gk_table *gk_table_for(int level) {
    switch (level) {
#if defined(__x86_64__)
    case GK_LEVEL_AVX512: return &table_avx512;
    case GK_LEVEL_AVX2: return &table_avx2;
    case GK_LEVEL_BASELINE: return &table_baseline;
#elif defined(__aarch64__)
    case GK_LEVEL_NEON: return &table_neon;
#else
    case GK_LEVEL_BASELINE: return &table_baseline;
#endif
    default: return NULL;
    }
}

int gk_level_compiled(int level) { return gk_table_for(level) != NULL; }

uint32_t gk_cpu_features(void) {
#if defined(__x86_64__)
    // libgcc's cpu model also checks that the OS saves the AVX and AVX-512 registers (XGETBV).
    __builtin_cpu_init();
    uint32_t f = 0;
    if (__builtin_cpu_supports("avx2")) f |= GK_FEATURE_AVX2;
    if (__builtin_cpu_supports("fma")) f |= GK_FEATURE_FMA;
    if (__builtin_cpu_supports("f16c")) f |= GK_FEATURE_F16C;
    if (__builtin_cpu_supports("avx512f")) f |= GK_FEATURE_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) f |= GK_FEATURE_AVX512BW;
    if (__builtin_cpu_supports("avx512dq")) f |= GK_FEATURE_AVX512DQ;
    if (__builtin_cpu_supports("avx512vl")) f |= GK_FEATURE_AVX512VL;
    return f;
#elif defined(__aarch64__)
    return GK_FEATURE_NEON;
#else
    return 0;
#endif
}

int gk_best_level(uint32_t f) {
#if defined(__x86_64__)
    const uint32_t avx2 = GK_FEATURE_AVX2 | GK_FEATURE_FMA | GK_FEATURE_F16C;
    const uint32_t avx512 = avx2 | GK_FEATURE_AVX512F | GK_FEATURE_AVX512BW | GK_FEATURE_AVX512DQ | GK_FEATURE_AVX512VL;
    if ((f & avx512) == avx512) return GK_LEVEL_AVX512;
    if ((f & avx2) == avx2) return GK_LEVEL_AVX2;
    return GK_LEVEL_BASELINE;
#elif defined(__aarch64__)
    return (f & GK_FEATURE_NEON) ? GK_LEVEL_NEON : GK_LEVEL_BASELINE;
#else
    (void)f;
    return GK_LEVEL_BASELINE;
#endif
}

int gk_choose(int best, const char *request) {
    if (request == NULL || request[0] == 0 || strcmp(request, "best") == 0) return best;
    int level;
    if (strcmp(request, "baseline") == 0) level = GK_LEVEL_BASELINE;
    else if (strcmp(request, "avx2") == 0) level = GK_LEVEL_AVX2;
    else if (strcmp(request, "avx512") == 0) level = GK_LEVEL_AVX512;
    else if (strcmp(request, "neon") == 0) level = GK_LEVEL_NEON;
    else return GK_CHOICE_UNKNOWN_NAME;
    // arm64's baseline is its NEON build.
    if (level == GK_LEVEL_BASELINE && best == GK_LEVEL_NEON) return GK_LEVEL_NEON;
    if (!gk_level_compiled(level)) return GK_CHOICE_CPU_LACKS;
    if (best == GK_LEVEL_NEON || level > best) return level == best ? level : GK_CHOICE_CPU_LACKS;
    return level;
}

static const gk_table *gk_active;
static int gk_level;
static int gk_problem;

__attribute__((constructor)) static void gk_select_at_load(void) {
    int best = gk_best_level(gk_cpu_features());
    int chosen = gk_choose(best, getenv("GSLORA_KERNELS"));
    gk_problem = chosen < 0 ? chosen : 0;
    gk_level = chosen < 0 ? best : chosen;
    gk_active = gk_table_for(gk_level);
}

int gk_active_level(void) { return gk_level; }
int gk_environment_problem(void) { return gk_problem; }

int gk_use_level(int level) {
    const gk_table *t = gk_table_for(level);
    if (t == NULL) return -1;
    gk_active = t;
    gk_level = level;
    return 0;
}

float gk_sum(const float *p, long n) { return gk_active->sum(p, n); }
float gk_dot(const float *a, const float *b, long n) { return gk_active->dot(a, b, n); }
float gk_sum_squared_deviation(const float *p, long n, float c) { return gk_active->sum_squared_deviation(p, n, c); }
float gk_maximum(const float *p, long n) { return gk_active->maximum(p, n); }
void gk_layer_norm_row(const float *x, long cols, const float *gamma, const float *beta, float eps, float *out,
                       float *mean, float *rstd) {
    gk_active->layer_norm_row(x, cols, gamma, beta, eps, out, mean, rstd);
}
void gk_layer_norm_backward_row(const float *dy, const float *x, float mean, float rstd, const float *gamma, long cols,
                                float *dx, int accumulate) {
    gk_active->layer_norm_backward_row(dy, x, mean, rstd, gamma, cols, dx, accumulate);
}
void gk_softmax_row(float *row, long cols, float scale) { gk_active->softmax_row(row, cols, scale); }
void gk_softmax_backward_row(float *d, const float *p, long cols, float scale) { gk_active->softmax_backward_row(d, p, cols, scale); }
void gk_gelu(float *v, float *out, long n) { gk_active->gelu(v, out, n); }
void gk_gelu_masked(float *v, float *out, long n, gk_mask mask, long base) { gk_active->gelu_masked(v, out, n, mask, base); }
void gk_gelu_derivative(float *v, float *out, long n) { gk_active->gelu_derivative(v, out, n); }
void gk_gelu_derivative_masked(float *v, float *out, long n, gk_mask mask, long base) {
    gk_active->gelu_derivative_masked(v, out, n, mask, base);
}
void gk_bf16_round(const float *src, long n, uint16_t *dst) { gk_active->bf16_round(src, n, dst); }
void gk_dots(const float *x, const float *m, long stride, long count, long cols, float scale, float *out, int accumulate) {
    gk_active->dots(x, m, stride, count, cols, scale, out, accumulate);
}
void gk_add_combination(float *y, const float *m, long stride, long count, long cols, const float *c, long cs, float scale) {
    gk_active->add_combination(y, m, stride, count, cols, c, cs, scale);
}
