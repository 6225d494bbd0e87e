/* QEMU driver for the nn4mc benchmark: replays recorded closed-loop inputs through both
 * controllers, prints every force (hex bits) for comparison with the host, and counts instructions
 * per control step. nn4mc_data.h (written by `robo bench codegen`) holds the inputs and gains. */
#include <stdio.h>
#include <string.h>
#include "robo_fw.h"
#include "nn4mc_control.h"
#include "nn4mc_data.h"

static unsigned long bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return (unsigned long)u; }

__attribute__((noinline)) static float empty_control(float a, float b, float c, float d)
{
    __asm volatile("" ::: "memory");
    return a + b + c + d;
}

int main(void)
{
    float u = 0.0f, integ = 0.0f, prev = 0.0f;
    volatile float sink = 0.0f;
    uint64_t t0, t1, t2, t3;
    int k;
    for (k = 0; k < N_STEPS; ++k) {
        u = nr_control(NR_X[k], NR_V[k], NR_TARGET[k], NR_GUESS[k], NR_DU, NR_TOL, NR_ITERS, U_MAX);
        printf("ROBO nr %d %08lx\n", k, bits(u));
    }
    for (k = 0; k < N_STEPS; ++k) {
        u = pid_control(&integ, &prev, PID_ERR[k], KP, KI, KD, DT, U_MAX);
        printf("ROBO pid %d %08lx\n", k, bits(u));
    }
    integ = 0.0f; prev = 0.0f;
    robo_timer_start();
    t0 = robo_timer_ticks();
    for (k = 0; k < N_STEPS; ++k)
        sink = nr_control(NR_X[k], NR_V[k], NR_TARGET[k], NR_GUESS[k], NR_DU, NR_TOL, NR_ITERS, U_MAX);
    t1 = robo_timer_ticks();
    for (k = 0; k < N_STEPS; ++k) sink = pid_control(&integ, &prev, PID_ERR[k], KP, KI, KD, DT, U_MAX);
    t2 = robo_timer_ticks();
    for (k = 0; k < N_STEPS; ++k) sink = empty_control(NR_X[k], NR_V[k], NR_TARGET[k], NR_GUESS[k]);
    t3 = robo_timer_ticks();
    (void)sink;
    printf("ROBO timing steps=%d nr_ticks=%lu pid_ticks=%lu empty_ticks=%lu\n", N_STEPS,
           (unsigned long)(t1 - t0), (unsigned long)(t2 - t1), (unsigned long)(t3 - t2));
    t0 = robo_timer_ticks();
    robo_spin(100000u);
    t1 = robo_timer_ticks();
    printf("ROBO calib instructions=%d ticks=%lu\n", 200000, (unsigned long)(t1 - t0));
    return 0;
}
