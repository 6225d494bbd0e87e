/* STM32F405 clocks: 168 MHz from the 16 MHz internal oscillator through the PLL
 * (M=16, N=336, P=2 -> 168 MHz; Q=7 -> 48 MHz for USB), flash 5 wait states, APB1 /4, APB2 /2.
 * Every wait is bounded: where the PLL never locks (QEMU's netduinoplus2 does not model the RCC)
 * the chip keeps running from the internal oscillator instead of hanging.
 */
#include <stdint.h>

#define RCC_BASE   0x40023800u
#define RCC_CR     (*(volatile uint32_t *)(RCC_BASE + 0x00u))
#define RCC_PLLCFGR (*(volatile uint32_t *)(RCC_BASE + 0x04u))
#define RCC_CFGR   (*(volatile uint32_t *)(RCC_BASE + 0x08u))
#define RCC_APB1ENR (*(volatile uint32_t *)(RCC_BASE + 0x40u))
#define PWR_CR     (*(volatile uint32_t *)0x40007000u)
#define FLASH_ACR  (*(volatile uint32_t *)0x40023C00u)

static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    uint32_t n;
    for (n = 0; n < 100000u; ++n)
        if ((*reg & mask) == want) return 1;
    return 0;
}

void board_init(void)
{
    RCC_APB1ENR |= 1u << 28;                         /* power interface clock */
    PWR_CR |= 1u << 14;                              /* voltage scale 1 for 168 MHz */
    FLASH_ACR = (1u << 8) | (1u << 9) | (1u << 10) | 5u;   /* prefetch, I/D cache, 5 wait states */
    RCC_PLLCFGR = 16u | (336u << 6) | (0u << 16) | (0u << 22) | (7u << 24);  /* HSI source */
    RCC_CFGR = (5u << 10) | (4u << 13);              /* APB1 = HCLK/4, APB2 = HCLK/2 */
    RCC_CR |= 1u << 24;                              /* PLL on */
    if (!wait_set(&RCC_CR, 1u << 25, 1u << 25)) return;
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;                /* system clock = PLL */
    wait_set(&RCC_CFGR, 0xCu, 0x8u);
}
