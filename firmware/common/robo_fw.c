#include "robo_fw.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static volatile uint32_t wraps;

/* SysTick is 24 bits; count its wraps so long measurements do not overflow. */
void SysTick_Handler(void) { wraps++; }

void robo_timer_start(void)
{
    SYST_CSR = 0u;
    wraps = 0u;
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 7u;      /* enable, interrupt on wrap, processor clock */
}

uint64_t robo_timer_ticks(void)
{
    uint32_t w, v;
    do {
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    return (uint64_t)w * 0x01000000u + (0x00FFFFFFu - v);
}

void robo_spin(uint32_t iterations)
{
    if (iterations == 0u) return;
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(iterations) :: "cc");
}
