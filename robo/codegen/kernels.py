"""C helpers pasted into every generated file: float-only math (no libm, no double) and the dense kernel.

Own expf because newlib's uses double precision internally, which is software-emulated (hundreds
of instructions) on a single-precision FPU such as the Cortex-M4F's.
"""

KERNELS_C = r"""
#if defined(__GNUC__)
#define ROBO_INLINE static inline __attribute__((always_inline))
#else
#define ROBO_INLINE static inline
#endif

typedef union { float f; uint32_t u; } robo_bits;

/* Finite test on the bit pattern: works under any compiler flags and needs no libm. */
ROBO_INLINE int robo_isfinite(float x) { robo_bits b; b.f = x; return (b.u & 0x7f800000u) != 0x7f800000u; }

/* e^x in single precision, about 1 ulp: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2),
   e^r by a degree-5 polynomial (least-squares minimax fit on that interval, 2e-7 relative error),
   2^k put into the exponent bits. Inputs are clamped so 2^k stays a normal float (e^x from 1.6e-38
   to 1.6e38); then x / ln2 + 128.5 is positive, so its conversion to int (which truncates) is
   round(x / ln2) + 128. The rounding is an integer conversion, not a float trick such as
   (y + 1.5 * 2^23) - 1.5 * 2^23, which -ffast-math, -Ofast or -fassociative-math may cancel. */
ROBO_INLINE float robo_expf(float x)
{
    robo_bits s;
    int32_t k128;
    float kf, r, p;
    if (x > 88.0f) x = 88.0f;
    if (x < -87.0f) x = -87.0f;
    k128 = (int32_t)(x * 1.44269504f + 128.5f);
    kf = (float)k128 - 128.0f;
    r = x - kf * 0.693145752f;
    r = r - kf * 1.42860677e-6f;
    p = 1.0000001f + r * (0.9999997f + r * (0.49998894f + r * (0.16667575f
        + r * (0.041915383f + r * 0.008297655f))));
    s.u = (uint32_t)(k128 - 1) << 23; /* exponent field k + 127 */
    return p * s.f;
}

ROBO_INLINE float robo_sigmoid(float x) { return 1.0f / (1.0f + robo_expf(-x)); }

/* tanh = 2 sigmoid(2x) - 1: absolute error about 1e-7 everywhere (relative error grows near 0,
   which a policy's absolute tolerance does not see), one exp and one division. */
ROBO_INLINE float robo_tanh(float x) { return 2.0f / (1.0f + robo_expf(-2.0f * x)) - 1.0f; }

/* 1 / sqrt(x) for a normal x > 0 without libm (sqrtf may call it for errno): a first guess from
   the exponent bits, then three Newton steps, each squaring the relative error (3e-2, 1e-3, 1e-6,
   then float round-off). */
ROBO_INLINE float robo_rsqrt(float x)
{
    robo_bits b;
    float y;
    b.f = x;
    b.u = 0x5f375a86u - (b.u >> 1);
    y = b.f;
    y = y * (1.5f - 0.5f * x * y * y);
    y = y * (1.5f - 0.5f * x * y * y);
    y = y * (1.5f - 0.5f * x * y * y);
    return y;
}

/* y[r] = b[r] + sum_k W[r][k] x[k] for a row-major W; four rows at a time so every x[k] that is
   loaded feeds four multiply-adds. b may be 0 (no bias). */
ROBO_INLINE void robo_dense(const float *W, const float *b, const float *x, float *y, int rows, int cols)
{
    const int full = rows - rows % 4;
    int r, k;
    for (r = 0; r < full; r += 4) {
        const float *w0 = W + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        if (b) { a0 = b[r]; a1 = b[r + 1]; a2 = b[r + 2]; a3 = b[r + 3]; }
        for (k = 0; k < cols; ++k) {
            float xk = x[k];
            a0 += w0[k] * xk; a1 += w1[k] * xk; a2 += w2[k] * xk; a3 += w3[k] * xk;
        }
        y[r] = a0; y[r + 1] = a1; y[r + 2] = a2; y[r + 3] = a3;
    }
    for (r = full; r < rows; ++r) {
        const float *w = W + r * cols;
        float a = b ? b[r] : 0.0f;
        for (k = 0; k < cols; ++k) a += w[k] * x[k];
        y[r] = a;
    }
}
"""
