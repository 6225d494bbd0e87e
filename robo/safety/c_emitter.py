"""Emit a barrier set and its filter settings as static single-precision C99.

The output is one header and one source file: the obstacles, fence, gains and bounds as ``static
const float`` tables, and ``robo_cbf_filter`` (plus ``robo_cbf_filter_neighbours`` for the
pairwise separation barrier) -- the same HOCBF rows and the same QP as
:class:`robo.safety.SafetyFilter`, solved by the same dual active-set steps as
:mod:`robo.safety.active_set`. No heap, no recursion, every loop bounded by a compile-time constant
(the solver's step count included), single-precision float math only (sqrt is one FPU instruction
on the target, no libm) so it runs on a Cortex-M4F FPU. Faults return a negative code and the brake
command, never the nominal command.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from robo.codegen.c_literal import c_floats
from robo.files import write_text
from robo.safety.barriers import BarrierSet

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The dual active-set solver and its helpers as plain C, shared with robo.safety.agent_c. The includer
# defines NA (rows), MAX_STEPS and TOL before it.
SOLVER_C = """\
static const float DEPENDENT = 1e-10f; /* |z|^2 or Gram determinant below: rows are dependent */
static float dot3(const float a[3], const float b[3]) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

/* False for NaN and +-inf. On the bit pattern, not as (v - v) == 0: -ffast-math lets the compiler
 * assume finite values and fold that test to true. */
static int is_finite(float v) {
    union { float f; uint32_t u; } b;
    b.f = v;
    return (b.u & 0x7f800000u) != 0x7f800000u;
}

/* sqrtf without libm and its errno path: one VSQRT on a Cortex-M4F FPU (the argument is a sum of
 * squares, never negative, so errno could never be set anyway). */
static float root(float v) {
#if defined(__ARM_FP) && (__ARM_FP & 4)
    float r;
    __asm__("vsqrt.f32 %0, %1" : "=t"(r) : "t"(v));
    return r;
#else
    return sqrtf(v);
#endif
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Solve (N N') y = c for the k <= 3 active rows by the adjugate; 0 when they are dependent. */
static int gram_solve(int k, const int act[3], float G[NA][3], const float c[3], float y[3]) {
    if (k == 1) {
        float q = dot3(G[act[0]], G[act[0]]);
        if (q <= DEPENDENT) return 0;
        y[0] = c[0] / q;
    } else if (k == 2) {
        const float *n0 = G[act[0]], *n1 = G[act[1]];
        float a = dot3(n0, n0), b = dot3(n0, n1), d = dot3(n1, n1);
        float det = a * d - b * b;
        if (det <= DEPENDENT) return 0;
        float inv = 1.0f / det;
        y[0] = (d * c[0] - b * c[1]) * inv;
        y[1] = (a * c[1] - b * c[0]) * inv;
    } else if (k == 3) {
        const float *n0 = G[act[0]], *n1 = G[act[1]], *n2 = G[act[2]];
        float a = dot3(n0, n0), b = dot3(n0, n1), cc = dot3(n0, n2);
        float d = dot3(n1, n1), e = dot3(n1, n2), f = dot3(n2, n2);
        float c00 = d * f - e * e, c01 = cc * e - b * f, c02 = b * e - cc * d;
        float c11 = a * f - cc * cc, c12 = b * cc - a * e, c22 = a * d - b * b;
        float det = a * c00 + b * c01 + cc * c02;
        if (det <= DEPENDENT) return 0;
        float inv = 1.0f / det;
        y[0] = (c00 * c[0] + c01 * c[1] + c02 * c[2]) * inv;
        y[1] = (c01 * c[0] + c11 * c[1] + c12 * c[2]) * inv;
        y[2] = (c02 * c[0] + c12 * c[1] + c22 * c[2]) * inv;
    }
    return 1;
}

#define SOLVE_OK 0
#define SOLVE_INFEASIBLE 1
#define SOLVE_LIMIT 2

/* Project un onto {u : G u >= g}: Goldfarb-Idnani dual active set. On SOLVE_OK, act/mu hold the
 * k active rows and their multipliers (of the 1/2 |u - un|^2 form). */
static int solve(float G[NA][3], const float g[NA], const float un[3], float u[3], int act[3],
                 float mu[3], int *nact) {
    int k = 0, steps = 0;
    for (int i = 0; i < 3; i++) u[i] = un[i];
    for (;;) {
        int p = -1;
        float sp = -TOL;
        for (int i = 0; i < NA; i++) {  /* most violated row */
            float s = dot3(G[i], u) - g[i];
            if (s < sp) { sp = s; p = i; }
        }
        if (p < 0) break;
        float mup = 0.0f;
        for (;;) {  /* add row p, dropping active rows whose multiplier would turn negative */
            float c[3], r[3] = {0.0f, 0.0f, 0.0f}, z[3];
            if (++steps > MAX_STEPS) return SOLVE_LIMIT;
            for (int j = 0; j < k; j++) c[j] = dot3(G[act[j]], G[p]);
            if (!gram_solve(k, act, G, c, r)) return SOLVE_LIMIT;
            for (int i = 0; i < 3; i++) {
                z[i] = k == 3 ? 0.0f : G[p][i];  /* three independent rows span R^3 */
                for (int j = 0; j < k && k < 3; j++) z[i] -= r[j] * G[act[j]][i];
            }
            float zz = dot3(z, z);
            int drop = -1, full = zz > DEPENDENT;
            float t_drop = 0.0f, t_full = full ? -sp / zz : 0.0f;
            for (int j = 0; j < k; j++) {
                if (r[j] > 0.0f && (drop < 0 || mu[j] / r[j] < t_drop)) { t_drop = mu[j] / r[j]; drop = j; }
            }
            if (!full && drop < 0) return SOLVE_INFEASIBLE;  /* no step can satisfy row p */
            int add = full && (drop < 0 || t_full <= t_drop);
            float t = add ? t_full : t_drop;
            for (int j = 0; j < k; j++) mu[j] -= t * r[j];
            mup += t;
            if (full) {
                for (int i = 0; i < 3; i++) u[i] += t * z[i];
                sp += t * zz;
            }
            if (add) { act[k] = p; mu[k] = mup; k++; break; }
            for (int j = drop; j < k - 1; j++) { act[j] = act[j + 1]; mu[j] = mu[j + 1]; }
            k--;
        }
    }
    if (k > 0) {  /* polish: the projection onto the final active set, in one solve from un */
        float c[3], y[3];
        for (int j = 0; j < k; j++) c[j] = g[act[j]] - dot3(G[act[j]], un);
        if (gram_solve(k, act, G, c, y)) {
            for (int i = 0; i < 3; i++) {
                u[i] = un[i];
                for (int j = 0; j < k; j++) u[i] += y[j] * G[act[j]][i];
            }
            for (int j = 0; j < k; j++) mu[j] = y[j];
        }
    }
    *nact = k;
    return SOLVE_OK;
}

"""

_HEADER = """\
/* Generated by robo.safety.c_emitter: CBF safety filter. Do not edit. */
#ifndef {guard}
#define {guard}

/* Return codes of {prefix}_filter. */
#define {PREFIX}_PASS 0        /* u = u_nom */
#define {PREFIX}_MODIFIED 1    /* u changed to keep every barrier */
#define {PREFIX}_INFEASIBLE -1 /* no safe input within bounds (or solver step limit): u = brake command */
#define {PREFIX}_BAD_INPUT -2  /* non-finite state, command or neighbour, bad count: u = brake command */

#define {PREFIX}_STATE_SIZE {state_size}
#define {PREFIX}_MAX_NEIGHBOURS {n_neigh} /* separation slots; 0: no separation barrier */

/* x: {state_doc}; u_nom, u: {input_doc}. u may alias u_nom. */
int {prefix}_filter(const float x[{state_size}], const float u_nom[3], float u[3]);

/* The same with the other agents' states: neighbours[k] = position (3), velocity (3) for
 * k < count <= {PREFIX}_MAX_NEIGHBOURS (velocity is ignored by a single-integrator filter). */
int {prefix}_filter_neighbours(const float x[{state_size}], const float u_nom[3],
                               const float neighbours[][6], int count, float u[3]);

#endif
"""

_SOURCE = """\
/* Generated by robo.safety.c_emitter: CBF safety filter ({model}, {n_round} round obstacles,
 * {n_planes} fence planes, {n_neigh} neighbour slots). Static memory only; every loop is bounded
 * by a constant. The QP is solved by the dual active-set method of robo.safety.active_set, step
 * for step, in single precision. */
#include <math.h>
#include <stdint.h>
#include "{prefix}.h"

#define NR {n_round_c}   /* round obstacles: spheres, then cylinders (mask drops z) */
#define NP {n_planes_c}  /* fence planes n.p >= o */
#define NN {n_neigh}     /* neighbour slots (half of each pairwise constraint) */
#define NB (NR + NP + NN) /* barrier rows */
#define NA (NB + 6)      /* plus lower and upper input bounds */
#define MAX_STEPS (4 * NA + 8) /* Goldfarb-Idnani ends far earlier; this only bounds round-off cycles */

static const float ROUND_C[{n_round_alloc}][3] = {{{round_c}}};
static const float ROUND_M[{n_round_alloc}][3] = {{{round_m}}};
static const float ROUND_R[{n_round_alloc}] = {{{round_r}}};
static const float PLANE_N[{n_planes_alloc}][3] = {{{plane_n}}};
static const float PLANE_O[{n_planes_alloc}] = {{{plane_o}}};
static const float LOWER[3] = {{{lower}}};
static const float UPPER[3] = {{{upper}}};
static const float K1 = {k1};        /* double integrator: alpha1 + alpha2 (multiplies h') */
static const float K0 = {k0};        /* alpha1 * alpha2 (double) or alpha1 (single): multiplies h */
static const float SEPARATION = {separation};
static const float RHO = {rho};      /* slack weight: a barrier multiplier above it is a fault */
static const float BRAKE = {brake};  /* brake gain of the safe command */
static const float TOL = {tol};      /* accepted row violation, single precision */
#define DOUBLE_INTEGRATOR {double}

{solver}
/* The safe output of a fault: brake (a = -BRAKE v, clipped), or stop when v is unknown. */
static void brake(const float x[{state_size}], float u[3]) {{
    float v[3] = {{0.0f, 0.0f, 0.0f}};
#if DOUBLE_INTEGRATOR
    if (is_finite(x[3]) && is_finite(x[4]) && is_finite(x[5])) {{ v[0] = x[3]; v[1] = x[4]; v[2] = x[5]; }}
#else
    (void)x;
#endif
    for (int i = 0; i < 3; i++) u[i] = clampf(-BRAKE * v[i], LOWER[i], UPPER[i]);
}}

/* Row of h = |d| - radius (d = p - centre, w = relative velocity, both masked): writes the unit
 * normal n and h, returns the right-hand side (times this agent's share of the constraint). */
static float round_row(const float d[3], const float w[3], float radius, float share, float n[3], float *h) {{
    float dist = root(dot3(d, d));
    float inv = 1.0f / (dist > 1e-9f ? dist : 1e-9f);
    for (int i = 0; i < 3; i++) n[i] = d[i] * inv;
    *h = dist - radius;
#if DOUBLE_INTEGRATOR
    float vn = dot3(n, w);
    float curv = (dot3(w, w) - vn * vn) * inv;  /* v'Hv of a Euclidean distance */
    if (curv < 0.0f) curv = 0.0f;
    return -share * (curv + K1 * vn + K0 * *h);
#else
    (void)w;
    return -share * K0 * *h;
#endif
}}

int {prefix}_filter(const float x[{state_size}], const float u_nom[3], float u[3]) {{
    return {prefix}_filter_neighbours(x, u_nom, 0, 0, u);
}}

int {prefix}_filter_neighbours(const float x[{state_size}], const float u_nom[3],
                               const float neighbours[][6], int count, float u_out[3]) {{
    float G[NA][3], g[NA], un[3], u[3], mu[3];
    int act[3], k = 0, pass = 1;
    for (int i = 0; i < {state_size}; i++) {{
        if (!is_finite(x[i])) {{ brake(x, u_out); return {PREFIX}_BAD_INPUT; }}
    }}
    for (int i = 0; i < 3; i++) {{
        if (!is_finite(u_nom[i])) {{ brake(x, u_out); return {PREFIX}_BAD_INPUT; }}
        un[i] = u_nom[i];
    }}
    if (count < 0 || count > NN || (count > 0 && !neighbours)) {{
        brake(x, u_out);
        return {PREFIX}_BAD_INPUT;
    }}
    for (int j = 0; j < count; j++) {{
        for (int i = 0; i < 6; i++) {{
            if (!is_finite(neighbours[j][i])) {{ brake(x, u_out); return {PREFIX}_BAD_INPUT; }}
        }}
    }}
    const float *p = x;
    float v[3] = {{0.0f, 0.0f, 0.0f}};
#if DOUBLE_INTEGRATOR
    v[0] = x[3]; v[1] = x[4]; v[2] = x[5];
#endif

    /* Barrier rows grad.u >= -(v'Hv + K1 h' + K0 h) (double) or -K0 h (single). */
    for (int b = 0; b < NR; b++) {{
        float d[3], w[3], h;
        for (int i = 0; i < 3; i++) {{
            d[i] = (p[i] - ROUND_C[b][i]) * ROUND_M[b][i];
            w[i] = v[i] * ROUND_M[b][i];
        }}
        g[b] = round_row(d, w, ROUND_R[b], 1.0f, G[b], &h);
    }}
    for (int b = 0; b < NP; b++) {{
        float h = dot3(PLANE_N[b], p) - PLANE_O[b];
        for (int i = 0; i < 3; i++) G[NR + b][i] = PLANE_N[b][i];
        g[NR + b] = DOUBLE_INTEGRATOR ? -(K1 * dot3(PLANE_N[b], v) + K0 * h) : -K0 * h;
    }}
    for (int j = 0; j < NN; j++) {{
        int row = NR + NP + j;
        if (j >= count) {{  /* empty slot: 0 . u >= -1 always holds */
            G[row][0] = G[row][1] = G[row][2] = 0.0f;
            g[row] = -1.0f;
            continue;
        }}
        float d[3], w[3], h;
        for (int i = 0; i < 3; i++) {{
            d[i] = p[i] - neighbours[j][i];
            w[i] = v[i] - (DOUBLE_INTEGRATOR ? neighbours[j][3 + i] : 0.0f);
        }}
        g[row] = round_row(d, w, SEPARATION, 0.5f, G[row], &h);  /* each agent takes half */
    }}
    for (int i = 0; i < 3; i++) {{
        for (int j = 0; j < 3; j++) {{
            G[NB + i][j] = (i == j) ? 1.0f : 0.0f;
            G[NB + 3 + i][j] = (i == j) ? -1.0f : 0.0f;
        }}
        g[NB + i] = LOWER[i];
        g[NB + 3 + i] = -UPPER[i];
    }}

    int rc = solve(G, g, un, u, act, mu, &k);
    if (rc != SOLVE_OK) {{ brake(x, u_out); return {PREFIX}_INFEASIBLE; }}
    for (int j = 0; j < k; j++) {{
        /* A barrier multiplier 2 mu above RHO: the slack-penalised QP would need slack. */
        if (act[j] < NB && 2.0f * mu[j] > RHO) {{ brake(x, u_out); return {PREFIX}_INFEASIBLE; }}
    }}
    for (int i = 0; i < 3; i++) {{
        u[i] = clampf(u[i], LOWER[i], UPPER[i]);  /* round-off past the bounds only */
        pass &= u[i] == un[i];
    }}
    for (int i = 0; i < 3; i++) u_out[i] = u[i];
    return pass ? {PREFIX}_PASS : {PREFIX}_MODIFIED;
}}
"""


def _rows(values: np.ndarray, width: int) -> str:
    values = np.asarray(values, dtype=np.float32).reshape(-1, width)
    if len(values) == 0:
        values = np.zeros((1, width), np.float32)  # C has no empty arrays; the loop bound is 0
    return ", ".join("{" + c_floats(row) + "}" for row in values)


def emit_c(barriers: BarrierSet, *, model: str = "double_integrator", lower: np.ndarray, upper: np.ndarray,
           alpha1: float = 1.0, alpha2: float | None = None, slack_weight: float = 1e4,
           brake_gain: float = 2.0, tol: float = 1e-4, prefix: str = "robo_cbf") -> dict[str, str]:
    """Return {"<prefix>.h": ..., "<prefix>.c": ...} for this barrier set and these settings."""
    from robo.safety.models import check_gain
    from robo.safety.qp import check_bounds

    if not _NAME.match(prefix):
        raise ValueError(f"prefix: {prefix!r} is not a C identifier")
    if model not in ("double_integrator", "single_integrator"):
        raise ValueError(f"model: unknown {model!r} (known: single_integrator, double_integrator)")
    lower, upper = check_bounds(lower, upper, 3)
    a1 = float(check_gain("alpha1", alpha1, 1)[0])
    a2 = float(check_gain("alpha2", alpha1 if alpha2 is None else alpha2, 1)[0])
    for name, value in (("slack_weight", slack_weight), ("tol", tol)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: must be finite and positive, got {value}")
    if not np.isfinite(brake_gain) or brake_gain < 0:
        raise ValueError(f"brake_gain: must be finite and >= 0, got {brake_gain}")
    double = model == "double_integrator"
    n_round, n_planes = len(barriers._radii), len(barriers._offsets)
    fields = {
        "prefix": prefix, "PREFIX": prefix.upper(), "model": model,
        "state_size": 6 if double else 3, "double": int(double),
        "state_doc": "position (3) and velocity (3)" if double else "position (3)",
        "input_doc": "acceleration (3)" if double else "velocity (3)",
        "n_round": n_round, "n_planes": n_planes,
        "n_round_c": n_round, "n_planes_c": n_planes, "n_neigh": barriers.num_neighbours,
        "separation": c_floats([barriers.separation.distance if barriers.separation else 0.0]),
        # C has no empty arrays: an unused table gets one dummy entry, its loop bound stays 0.
        "n_round_alloc": max(n_round, 1), "n_planes_alloc": max(n_planes, 1),
        "round_c": _rows(barriers._centers, 3), "round_m": _rows(barriers._masks, 3),
        "round_r": c_floats(barriers._radii) if n_round else "0.0f",
        "plane_n": _rows(barriers._planes, 3), "plane_o": c_floats(barriers._offsets) if n_planes else "0.0f",
        "lower": c_floats(lower), "upper": c_floats(upper),
        "solver": SOLVER_C,
        "k1": c_floats([a1 + a2 if double else 0.0]), "k0": c_floats([a1 * a2 if double else a1]),
        "rho": c_floats([slack_weight]),
        "brake": c_floats([brake_gain]), "tol": c_floats([tol]),
    }
    return {
        f"{prefix}.h": _HEADER.format(guard=f"{prefix.upper()}_H", **fields),
        f"{prefix}.c": _SOURCE.format(**fields),
    }


def write_c(files: dict[str, str], out_dir: str | Path) -> list[Path]:
    """Write the emitted files atomically (temporary file + rename) into ``out_dir``."""
    return [write_text(Path(out_dir) / name, text) for name, text in files.items()]
