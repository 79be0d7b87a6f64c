// The kernels' bodies, included once per level by dispatch.c with GK_NAME (the level's suffix) and GK_TARGET (its
// target attribute) defined. Plain loops the compiler vectorises for the level; reductions spell out two 8-lane
// accumulators so every level sums in the same order.

#define GK_FN static GK_TARGET

GK_FN float GK_NAME(sum)(const float *p, long n) {
    gk_v8 a0 = {0}, a1 = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 += GK_LOAD(p + i);
        a1 += GK_LOAD(p + i + 8);
    }
    float s = GK_HSUM(a0 + a1);
    for (; i < n; i++) s += p[i];
    return s;
}

GK_FN float GK_NAME(dot)(const float *a, const float *b, long n) {
    gk_v8 a0 = {0}, a1 = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 += GK_LOAD(a + i) * GK_LOAD(b + i);
        a1 += GK_LOAD(a + i + 8) * GK_LOAD(b + i + 8);
    }
    float s = GK_HSUM(a0 + a1);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

GK_FN float GK_NAME(sum_squared_deviation)(const float *p, long n, float c) {
    gk_v8 cv = {c, c, c, c, c, c, c, c}, a0 = {0}, a1 = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        gk_v8 d0 = GK_LOAD(p + i) - cv, d1 = GK_LOAD(p + i + 8) - cv;
        a0 += d0 * d0;
        a1 += d1 * d1;
    }
    float s = GK_HSUM(a0 + a1);
    for (; i < n; i++) { float d = p[i] - c; s += d * d; }
    return s;
}

GK_FN float GK_NAME(maximum)(const float *p, long n) {
    gk_v8 m = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        gk_v8 v = GK_LOAD(p + i);
        gk_v8i greater = v > m;
        m = (gk_v8)(((gk_v8i)v & greater) | ((gk_v8i)m & ~greater));
    }
    float s = -INFINITY;
    for (int k = 0; k < 8; k++) s = m[k] > s ? m[k] : s;
    for (; i < n; i++) s = p[i] > s ? p[i] : s;
    return s;
}

GK_FN void GK_NAME(layer_norm_row)(const float *x, long cols, const float *gamma, const float *beta, float eps, float *out,
                                  float *mean, float *rstd) {
    float mu = GK_NAME(sum)(x, cols) / (float)cols;
    float variance = GK_NAME(sum_squared_deviation)(x, cols, mu) / (float)cols;
    float inv = 1.0f / __builtin_sqrtf(variance + eps);
    *mean = mu;
    *rstd = inv;
    if (out == x) {
        for (long j = 0; j < cols; j++) out[j] = (out[j] - mu) * inv * gamma[j] + beta[j];
    } else {
        const float *restrict xr = x;
        float *restrict o = out;
        for (long j = 0; j < cols; j++) o[j] = (xr[j] - mu) * inv * gamma[j] + beta[j];
    }
}

GK_FN void GK_NAME(layer_norm_backward_row)(const float *dy, const float *x, float mu, float inv, const float *gamma,
                                           long cols, float *restrict dx, int accumulate) {
    gk_v8 muv = {mu, mu, mu, mu, mu, mu, mu, mu}, sg = {0}, sgx = {0};
    long j = 0;
    for (; j + 8 <= cols; j += 8) {
        gk_v8 g = GK_LOAD(dy + j) * GK_LOAD(gamma + j);
        gk_v8 xh = (GK_LOAD(x + j) - muv) * inv;
        sg += g;
        sgx += g * xh;
    }
    float a = GK_HSUM(sg), b = GK_HSUM(sgx);
    for (; j < cols; j++) { float g = dy[j] * gamma[j]; a += g; b += g * (x[j] - mu) * inv; }
    a /= (float)cols;
    b /= (float)cols;
    if (accumulate) {
        for (long k = 0; k < cols; k++) dx[k] += inv * (dy[k] * gamma[k] - a - (x[k] - mu) * inv * b);
    } else {
        for (long k = 0; k < cols; k++) dx[k] = inv * (dy[k] * gamma[k] - a - (x[k] - mu) * inv * b);
    }
}

GK_FN void GK_NAME(softmax_row)(float *row, long cols, float scale) {
    if (scale != 1.0f) for (long j = 0; j < cols; j++) row[j] *= scale;
    float m = GK_NAME(maximum)(row, cols);
    for (long j = 0; j < cols; j++) row[j] = gk_exp(row[j] - m);
    float inv = 1.0f / GK_NAME(sum)(row, cols);
    for (long j = 0; j < cols; j++) row[j] *= inv;
}

GK_FN void GK_NAME(softmax_backward_row)(float *restrict d, const float *restrict p, long cols, float scale) {
    gk_v8 acc = {0};
    long j = 0;
    for (; j + 8 <= cols; j += 8) acc += GK_LOAD(d + j) * GK_LOAD(p + j);
    float s = GK_HSUM(acc);
    for (; j < cols; j++) s += d[j] * p[j];
    for (long k = 0; k < cols; k++) d[k] = scale * p[k] * (d[k] - s);
}

GK_FN void GK_NAME(gelu)(float *v, float *out, long n) {
    // One pointer when in place: two that may alias get an overlap check that sends equal pointers to scalar code.
    if (out == v) {
        for (long j = 0; j < n; j++) v[j] = gk_gelu_value(v[j]);
    } else {
        const float *restrict src = v;
        float *restrict dst = out;
        for (long j = 0; j < n; j++) dst[j] = gk_gelu_value(src[j]);
    }
}

GK_FN void GK_NAME(gelu_masked)(float *v, float *out, long n, gk_mask mask, long base) {
    if (out == v) {
        for (long j = 0; j < n; j++) v[j] = gk_gelu_value(v[j]) * gk_mask_value(mask, base + j);
    } else {
        const float *restrict src = v;
        float *restrict dst = out;
        for (long j = 0; j < n; j++) dst[j] = gk_gelu_value(src[j]) * gk_mask_value(mask, base + j);
    }
}

GK_FN void GK_NAME(gelu_derivative)(float *restrict v, float *restrict out, long n) {
    for (long j = 0; j < n; j++) {
        float value;
        float derivative = gk_gelu_derivative_value(v[j], &value);
        out[j] = value;
        v[j] = derivative;
    }
}

GK_FN void GK_NAME(gelu_derivative_masked)(float *restrict v, float *restrict out, long n, gk_mask mask, long base) {
    for (long j = 0; j < n; j++) {
        float value;
        float derivative = gk_gelu_derivative_value(v[j], &value);
        float keep = gk_mask_value(mask, base + j);
        out[j] = value * keep;
        v[j] = derivative * keep;
    }
}

GK_FN void GK_NAME(bf16_round)(const float *restrict src, long n, uint16_t *restrict dst) {
    const uint32_t *bits = (const uint32_t *)src;
    for (long i = 0; i < n; i++) {
        uint32_t v = bits[i];
        uint32_t rounded = (v + 0x7FFFu + ((v >> 16) & 1u)) >> 16;
        dst[i] = (uint16_t)((v & 0x7FFFFFFFu) > 0x7F800000u ? (v >> 16) | 0x40u : rounded);
    }
}

// Four dots of x per pass: two chunks per step give eight independent accumulators, enough to hide the FMA latency,
// and each loaded chunk of x serves four rows.
GK_FN void GK_NAME(dots)(const float *x, const float *m, long stride, long count, long cols, float scale, float *out,
                         int accumulate) {
    long k = 0;
    for (; k + 4 <= count; k += 4) {
        const float *p0 = m + k * stride, *p1 = p0 + stride, *p2 = p1 + stride, *p3 = p2 + stride;
        gk_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        long j = 0;
        for (; j + 16 <= cols; j += 16) {
            gk_v8 x0 = GK_LOAD(x + j), x8 = GK_LOAD(x + j + 8);
            a0 = GK_FMA8(x0, GK_LOAD(p0 + j), a0); b0 = GK_FMA8(x8, GK_LOAD(p0 + j + 8), b0);
            a1 = GK_FMA8(x0, GK_LOAD(p1 + j), a1); b1 = GK_FMA8(x8, GK_LOAD(p1 + j + 8), b1);
            a2 = GK_FMA8(x0, GK_LOAD(p2 + j), a2); b2 = GK_FMA8(x8, GK_LOAD(p2 + j + 8), b2);
            a3 = GK_FMA8(x0, GK_LOAD(p3 + j), a3); b3 = GK_FMA8(x8, GK_LOAD(p3 + j + 8), b3);
        }
        float s[4] = {GK_HSUM(a0 + b0), GK_HSUM(a1 + b1), GK_HSUM(a2 + b2), GK_HSUM(a3 + b3)};
        for (; j < cols; j++) {
            float xj = x[j];
            s[0] += xj * p0[j]; s[1] += xj * p1[j]; s[2] += xj * p2[j]; s[3] += xj * p3[j];
        }
        for (int i = 0; i < 4; i++) out[k + i] = accumulate ? out[k + i] + s[i] * scale : s[i] * scale;
    }
    for (; k < count; k++) {
        float s = scale * GK_NAME(dot)(x, m + k * stride, cols);
        out[k] = accumulate ? out[k] + s : s;
    }
}

// y += Σ w_i·m_i for four rows per pass: y's chunk is loaded and stored once for four FMAs.
GK_FN void GK_NAME(add_combination)(float *y, const float *m, long stride, long count, long cols, const float *c, long cs,
                                    float scale) {
    long i = 0;
    for (; i + 4 <= count; i += 4) {
        const float *ci = c + i * cs;
        float w[4] = {scale * ci[0], scale * ci[cs], scale * ci[2 * cs], scale * ci[3 * cs]};
        const float *p0 = m + i * stride, *p1 = p0 + stride, *p2 = p1 + stride, *p3 = p2 + stride;
        gk_v8 w0 = {w[0], w[0], w[0], w[0], w[0], w[0], w[0], w[0]}, w1 = {w[1], w[1], w[1], w[1], w[1], w[1], w[1], w[1]};
        gk_v8 w2 = {w[2], w[2], w[2], w[2], w[2], w[2], w[2], w[2]}, w3 = {w[3], w[3], w[3], w[3], w[3], w[3], w[3], w[3]};
        long j = 0;
        for (; j + 8 <= cols; j += 8) {
            gk_v8 v = GK_FMA8(w0, GK_LOAD(p0 + j), GK_LOAD(y + j));
            v = GK_FMA8(w1, GK_LOAD(p1 + j), v);
            v = GK_FMA8(w2, GK_LOAD(p2 + j), v);
            v = GK_FMA8(w3, GK_LOAD(p3 + j), v);
            GK_STORE(y + j, v);
        }
        for (; j < cols; j++) y[j] += (w[0] * p0[j] + w[1] * p1[j]) + (w[2] * p2[j] + w[3] * p3[j]);
    }
    for (; i < count; i++) {
        float w = scale * c[i * cs];
        const float *mi = m + i * stride;
        for (long j = 0; j < cols; j++) y[j] += w * mi[j];
    }
}

static const gk_table GK_NAME(table) = {
    GK_NAME(sum), GK_NAME(dot), GK_NAME(sum_squared_deviation), GK_NAME(maximum),
    GK_NAME(layer_norm_row), GK_NAME(layer_norm_backward_row), GK_NAME(softmax_row), GK_NAME(softmax_backward_row),
    GK_NAME(gelu), GK_NAME(gelu_masked), GK_NAME(gelu_derivative), GK_NAME(gelu_derivative_masked),
    GK_NAME(bf16_round), GK_NAME(dots), GK_NAME(add_combination),
};

#undef GK_FN
