/* What the firmware offers an application: instruction counting with SysTick.
 *
 * QEMU does not model cycles, but with -icount every executed instruction advances the virtual
 * clock by 2^shift ns, and SysTick counts that clock. So ticks measure instructions; the host
 * converts (robo firmware run does it, using a calibration loop of known length as a check).
 * On a real board the same counter measures core clock cycles.
 */
#ifndef ROBO_FW_H
#define ROBO_FW_H
#include <stdint.h>

void robo_timer_start(void);
uint64_t robo_timer_ticks(void);
/* Spins exactly 2 * iterations instructions (subs + bne), for calibration. */
void robo_spin(uint32_t iterations);

#endif
