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
   e^r by a degree-6 Taylor polynomial, 2^k put into the exponent bits. Inputs are clamped so 2^k stays
   a normal float; callers only need e^x down to 1e-38 and up to 1.6e38. */
ROBO_INLINE float robo_expf(float x)
{
    robo_bits s;
    float kf, r, p;
    int k;
    if (x > 88.0f) x = 88.0f;
    if (x < -87.0f) x = -87.0f;
    kf = x * 1.44269504f;
    k = (int)(kf + (kf >= 0.0f ? 0.5f : -0.5f));
    kf = (float)k;
    r = x - kf * 0.693145752f;
    r = r - kf * 1.42860677e-6f;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f
        + r * (0.00833333377f + r * 0.00138888892f)))));
    s.u = (uint32_t)(k + 127) << 23;
    return p * s.f;
}

ROBO_INLINE float robo_sigmoid(float x) { return 1.0f / (1.0f + robo_expf(-x)); }

/* tanh = 2 sigmoid(2x) - 1, with the odd series near 0 where that form would lose relative accuracy. */
ROBO_INLINE float robo_tanh(float x)
{
    float ax = x < 0.0f ? -x : x;
    if (ax < 0.0625f) { float x2 = x * x; return x * (1.0f + x2 * (-0.333333343f + x2 * 0.13333334f)); }
    return 2.0f / (1.0f + robo_expf(-2.0f * x)) - 1.0f;
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
