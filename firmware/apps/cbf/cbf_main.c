/* QEMU driver for the emitted CBF safety filter: runs every recorded case once and prints its
 * return code and command (hex bits, for exact comparison on the host), then times each case alone
 * in instructions. cbf_data.h (written by robo.safety.mcu) holds the cases; robo_cbf.c/.h are the
 * emitted filter. Output lines:
 *   ROBO cbf <case> <code> <u0> <u1> <u2>      command as IEEE-754 bits
 *   ROBO cbft <case> <ticks>                   SysTick ticks of that one call
 *   ROBO cbf_timing cases=<n> empty_ticks=<t>  ticks of the same call to an empty function
 *   ROBO calib instructions=<n> ticks=<t>      known-length loop, checks the tick/instruction ratio
 */
#include <stdio.h>
#include <string.h>
#include "robo_fw.h"
#include "robo_cbf.h"
#include "cbf_data.h"

static uint32_t case_ticks[CBF_CASES];

static unsigned long bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return (unsigned long)u; }

/* Same arguments as the filter, no work: its cost is the timing overhead subtracted per call. */
__attribute__((noinline)) static int empty_filter(const float *x, const float *u_nom,
                                                  const float (*nb)[6], int count, float *u)
{
    __asm volatile("" ::: "memory");
    (void)x; (void)nb; (void)count;
    u[0] = u_nom[0];
    return 0;
}

int main(void)
{
    float u[3];
    uint64_t t0, t1, empty = ~(uint64_t)0;
    int k, code;
    for (k = 0; k < CBF_CASES; ++k) {
        code = robo_cbf_filter_neighbours(CBF_X[k], CBF_U[k], CBF_NB[k], CBF_NB_COUNT[k], u);
        printf("ROBO cbf %d %d %08lx %08lx %08lx\n", k, code, bits(u[0]), bits(u[1]), bits(u[2]));
    }
    robo_timer_start();
    for (k = 0; k < CBF_CASES; ++k) {
        t0 = robo_timer_ticks();
        code = robo_cbf_filter_neighbours(CBF_X[k], CBF_U[k], CBF_NB[k], CBF_NB_COUNT[k], u);
        t1 = robo_timer_ticks();
        case_ticks[k] = (uint32_t)(t1 - t0);
    }
    for (k = 0; k < CBF_CASES; ++k) {
        t0 = robo_timer_ticks();
        code = empty_filter(CBF_X[k], CBF_U[k], CBF_NB[k], CBF_NB_COUNT[k], u);
        t1 = robo_timer_ticks();
        if (t1 - t0 < empty) empty = t1 - t0;
    }
    (void)code;
    for (k = 0; k < CBF_CASES; ++k) printf("ROBO cbft %d %lu\n", k, (unsigned long)case_ticks[k]);
    printf("ROBO cbf_timing cases=%d empty_ticks=%lu\n", CBF_CASES, (unsigned long)empty);
    t0 = robo_timer_ticks();
    robo_spin(100000u);
    t1 = robo_timer_ticks();
    printf("ROBO calib instructions=%d ticks=%lu\n", 200000, (unsigned long)(t1 - t0));
    return 0;
}
