/* QEMU driver for one agent's control step on the Cortex-M4F: the gain tuner (robo codegen c of the
 * online_cbf GNN) and the emitted multi-agent HOCBF-QP (robo.safety.agent_c). Runs every recorded case
 * once and prints the gains and the safe command (hex bits, for exact comparison on the host), then
 * times the gains, the filter alone and the whole step of each case in instructions. agent_data.h
 * (written by robo.safety.agent_mcu) holds the cases. Output lines:
 *   ROBO agent <case> <code> <k1> <k2> [<tilt>] [<slot k1> <slot k2> ...] <u0> .. <u(D-1)>   IEEE-754 bits
 *   ROBO agentt <case> <gains ticks> <filter ticks> <step ticks>
 *   ROBO agent_timing cases=<n> empty_ticks=<t>            ticks of a call to an empty function
 *   ROBO calib instructions=<n> ticks=<t>                  known-length loop: tick/instruction ratio
 */
#include <stdio.h>
#include <string.h>
#include "robo_fw.h"
#include "robo_agent.h"
#include "agent_data.h"

#define D ROBO_AGENT_DIM

static uint32_t ticks[AGENT_CASES][3];

static unsigned long bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return (unsigned long)u; }

/* Same arguments as a step, no work: its cost is the timing overhead subtracted per call. */
__attribute__((noinline)) static int empty_step(const float *p, const float *v, const float *goal,
                                                const float (*nb)[2 * D], const float *mask,
                                                const float (*obs)[D + 1], int n, float *k, float *u)
{
    __asm volatile("" ::: "memory");
    (void)p; (void)v; (void)goal; (void)nb; (void)mask; (void)obs; (void)n;
    k[0] = u[0];
    return 0;
}

int main(void)
{
    float k[ROBO_AGENT_OUTPUTS], u[D], un[D];
    uint64_t t0, t1, empty = ~(uint64_t)0;
    int c, i, code;
    for (c = 0; c < AGENT_CASES; ++c) {
        code = robo_agent_step(AGENT_P[c], AGENT_V[c], AGENT_GOAL[c], AGENT_NB[c], AGENT_MASK[c], AGENT_OBS,
                               AGENT_N_OBS, k, u);
        printf("ROBO agent %d %d", c, code);
        for (i = 0; i < ROBO_AGENT_OUTPUTS; ++i) printf(" %08lx", bits(k[i]));
        for (i = 0; i < D; ++i) printf(" %08lx", bits(u[i]));
        printf("\n");
    }
    robo_timer_start();
    for (c = 0; c < AGENT_CASES; ++c) {
        t0 = robo_timer_ticks();
        robo_agent_gains(AGENT_P[c], AGENT_V[c], AGENT_GOAL[c], AGENT_NB[c], AGENT_MASK[c], AGENT_OBS,
                         AGENT_N_OBS, k);
        t1 = robo_timer_ticks();
        ticks[c][0] = (uint32_t)(t1 - t0);
        robo_agent_nominal(AGENT_P[c], AGENT_V[c], AGENT_GOAL[c], k, un);
        t0 = robo_timer_ticks();
        robo_agent_filter_tuned(AGENT_P[c], AGENT_V[c], un, AGENT_NB[c], AGENT_MASK[c], AGENT_OBS,
                                AGENT_N_OBS, k, u);
        t1 = robo_timer_ticks();
        ticks[c][1] = (uint32_t)(t1 - t0);
        t0 = robo_timer_ticks();
        robo_agent_step(AGENT_P[c], AGENT_V[c], AGENT_GOAL[c], AGENT_NB[c], AGENT_MASK[c], AGENT_OBS,
                        AGENT_N_OBS, k, u);
        t1 = robo_timer_ticks();
        ticks[c][2] = (uint32_t)(t1 - t0);
    }
    for (c = 0; c < AGENT_CASES; ++c) {
        t0 = robo_timer_ticks();
        code = empty_step(AGENT_P[c], AGENT_V[c], AGENT_GOAL[c], AGENT_NB[c], AGENT_MASK[c], AGENT_OBS,
                          AGENT_N_OBS, k, u);
        t1 = robo_timer_ticks();
        if (t1 - t0 < empty) empty = t1 - t0;
    }
    (void)code;
    for (c = 0; c < AGENT_CASES; ++c)
        printf("ROBO agentt %d %lu %lu %lu\n", c, (unsigned long)ticks[c][0], (unsigned long)ticks[c][1],
               (unsigned long)ticks[c][2]);
    printf("ROBO agent_timing cases=%d empty_ticks=%lu\n", AGENT_CASES, (unsigned long)empty);
    t0 = robo_timer_ticks();
    robo_spin(100000u);
    t1 = robo_timer_ticks();
    printf("ROBO calib instructions=%d ticks=%lu\n", 200000, (unsigned long)(t1 - t0));
    return 0;
}
