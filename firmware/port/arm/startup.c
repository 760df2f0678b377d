/*
 * Start-up for the ARM build: the vector table, the reset handler (copy .data, zero
 * .bss, run main) and the handler for everything the firmware does not expect.
 *
 * Also the four C library functions gcc may emit calls to for struct copies and
 * initialisers even in a freestanding build (-nostdlib leaves them undefined).
 */
#include <stddef.h>
#include <stdint.h>

#include "stm32f4.h"

/* From the linker script. */
extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;

int main(void);
void Reset_Handler(void);
void Default_Handler(void);

/* Everything not handled resets the board: a fault, or an interrupt nothing enabled. A
 * reset is what the protocol is built for: the board says HELLO with a new boot number,
 * and the gateway tells it from a resend. A loop here would only wait for the watchdog
 * (and hang for good under QEMU, which has none). A stack overflow runs into the unmapped
 * addresses below RAM (stm32f405.ld) and faults before it corrupts anything; as the fault
 * cannot be stacked either, the core locks up, and the watchdog resets it. */
void Default_Handler(void)
{
    data_sync_barrier();
    SCB_AIRCR = SCB_AIRCR_VECTKEY | (SCB_AIRCR & SCB_AIRCR_PRIGROUP_MASK) | SCB_AIRCR_SYSRESETREQ;
    data_sync_barrier();
    for (;;) {
    }
}

#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void HardFault_Handler(void) WEAK_DEFAULT;
void MemManage_Handler(void) WEAK_DEFAULT;
void BusFault_Handler(void) WEAK_DEFAULT;
void UsageFault_Handler(void) WEAK_DEFAULT;
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;
void SysTick_Handler(void) WEAK_DEFAULT;
void USART1_IRQHandler(void) WEAK_DEFAULT;
void USART2_IRQHandler(void) WEAK_DEFAULT;

/* 86 interrupt lines: the STM32F411 has the most of the three targets (F401: 85,
 * F405: 82); the firmware enables only the two USARTs. */
#define IRQ_LINES 86
typedef void (*vector_t)(void);

/* Every line defaults to Default_Handler, then the few used ones are named (a later
 * designator overrides an earlier one: what -Woverride-init warns about, meant here). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16 + IRQ_LINES] = {
    [2 ... 16 + IRQ_LINES - 1] = Default_Handler,
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [7] = 0, [8] = 0, [9] = 0, [10] = 0, [13] = 0, /* reserved */
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 + USART1_IRQn] = USART1_IRQHandler,
    [16 + USART2_IRQn] = USART2_IRQHandler,
};
#pragma GCC diagnostic pop

void Reset_Handler(void)
{
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    (void)main();
    Default_Handler();
}

/* -- what gcc may call ------------------------------------------------------------------ */

#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))

NO_LIBCALLS void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

NO_LIBCALLS void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--) {
            *d++ = *s++;
        }
    } else {
        while (n--) {
            d[n] = s[n];
        }
    }
    return dst;
}

NO_LIBCALLS void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

NO_LIBCALLS int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}
