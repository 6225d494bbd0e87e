/* Cortex-M4F start-up shared by every board: vector table, reset handler, fault handler.
 *
 * The reset handler enables the FPU before anything can execute a float instruction (the code is
 * built with -mfloat-abi=hard, so even newlib may use FPU registers), copies .data from flash,
 * zeroes .bss, lets the board set its clocks, opens the semihosting channel and runs main().
 */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));
void board_init(void) __attribute__((weak));

/* newlib's libc calls these from its init/fini arrays; -nostartfiles leaves them undefined. */
void _init(void) {}
void _fini(void) {}

void board_init(void) {}

__attribute__((section(".isr_vector"), used))
void (*const vector_table[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, 0, 0, 0, 0,
    Default_Handler, Default_Handler, 0, Default_Handler, SysTick_Handler,
};

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void)
{
    uint32_t *src, *dst;
    SCB_CPACR |= (0xFu << 20);          /* CP10 and CP11 full access: the FPU */
    __asm volatile("dsb\n\tisb" ::: "memory");
    for (src = &_sidata, dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
    board_init();
    initialise_monitor_handles();
    exit(main());
}

/* Semihosting by hand: in a fault the C library may be in any state. */
static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

void Fault_Handler(void)
{
    semihost(0x04u, "robo firmware: hard fault\n");      /* SYS_WRITE0 */
    semihost(0x18u, (const void *)0x20024u);              /* SYS_EXIT, ADP_Stopped_RunTimeErrorUnknown */
    for (;;) {}
}

void Default_Handler(void)
{
    Fault_Handler();
}
