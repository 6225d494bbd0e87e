#include "nn4mc_control.h"
#include "nn4mc_model.h"

static MODEL_STATE model_state;

float nr_predict(float x, float v, float u)
{
    float in[3], out[1];
    in[0] = x; in[1] = v; in[2] = u;
    MODEL_STEP(&model_state, in, out);     /* stateless MLP: the state is unused */
    return x + out[0];
}

static float clampf(float u, float lim) { return u > lim ? lim : (u < -lim ? -lim : u); }

float nr_control(float x, float v, float target, float u_guess, float du, float tol, int max_iter,
                 float u_max)
{
    float u = clampf(u_guess, u_max);
    int it;
    for (it = 0; it < max_iter; ++it) {
        float g = nr_predict(x, v, u) - target;
        float slope;
        if (g < tol && g > -tol) break;
        slope = (nr_predict(x, v, u + du) - target - g) / du;
        if (slope < 1e-9f && slope > -1e-9f) break;    /* flat model: keep the last force */
        u = clampf(u - g / slope, u_max);
    }
    return u;
}

float pid_control(float *integral, float *prev_err, float err, float kp, float ki, float kd, float dt,
                  float u_max)
{
    float deriv = (err - *prev_err) / dt;
    float trial = *integral + err * dt;
    float u = kp * err + ki * trial + kd * deriv;
    *prev_err = err;
    if (u > u_max) return u_max;               /* saturated: do not wind up the integrator */
    if (u < -u_max) return -u_max;
    *integral = trial;
    return u;
}
