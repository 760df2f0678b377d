/*
 * The few STM32F4 and Cortex-M4 registers the ARM port touches, by address.
 *
 * The same addresses hold on the STM32F401, F411 (WeAct Black Pill) and F405 (QEMU's
 * netduinoplus2): RM0368, RM0383 and RM0090 agree on every register used here. No vendor
 * headers: the build needs nothing beyond Debian's gcc-arm-none-eabi.
 */
#ifndef QIHE_STM32F4_H
#define QIHE_STM32F4_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* -- Cortex-M4 core ------------------------------------------------------------------- */
#define SYST_CSR REG(0xE000E010u) /* SysTick control and status */
#define SYST_RVR REG(0xE000E014u) /* reload value */
#define SYST_CVR REG(0xE000E018u) /* current value */
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE (1u << 2) /* 1 = the processor clock */

#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n)) /* set-enable */
#define NVIC_ICER(n) REG(0xE000E180u + 4u * (n)) /* clear-enable */
#define SCB_AIRCR REG(0xE000ED0Cu)
#define SCB_AIRCR_VECTKEY (0x05FAu << 16)
#define SCB_AIRCR_PRIGROUP_MASK (7u << 8)
#define SCB_AIRCR_SYSRESETREQ (1u << 2)

/* -- RCC (reset and clock control) ---------------------------------------------------- */
#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG(RCC_BASE + 0x44u)
#define RCC_CSR REG(RCC_BASE + 0x74u)
#define RCC_CR_HSIRDY (1u << 1)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CFGR_SW_MASK 3u
#define RCC_CFGR_SW_HSE 1u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_HSE (1u << 2)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_AHB1ENR_GPIOCEN (1u << 2)
#define RCC_APB1ENR_USART2EN (1u << 17)
#define RCC_APB2ENR_USART1EN (1u << 4)
#define RCC_APB2ENR_ADC1EN (1u << 8)
#define RCC_CSR_RMVF (1u << 24)

/* -- GPIO ----------------------------------------------------------------------------- */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIOC_BASE 0x40020800u
#define GPIO_MODER(base) REG((base) + 0x00u)
#define GPIO_PUPDR(base) REG((base) + 0x0Cu)
#define GPIO_IDR(base) REG((base) + 0x10u)
#define GPIO_BSRR(base) REG((base) + 0x18u)
#define GPIO_AFRL(base) REG((base) + 0x20u)
#define GPIO_AFRH(base) REG((base) + 0x24u)
#define GPIO_MODE_INPUT 0u
#define GPIO_MODE_OUTPUT 1u
#define GPIO_MODE_AF 2u
#define GPIO_MODE_ANALOG 3u
#define GPIO_PULL_UP 1u

/* -- USART ---------------------------------------------------------------------------- */
#define USART1_BASE 0x40011000u /* APB2; QEMU netduinoplus2: -serial #1 (serial0) */
#define USART2_BASE 0x40004400u /* APB1; QEMU netduinoplus2: -serial #2 (serial1) */
#define USART_SR(base) REG((base) + 0x00u)
#define USART_DR(base) REG((base) + 0x04u)
#define USART_BRR(base) REG((base) + 0x08u)
#define USART_CR1(base) REG((base) + 0x0Cu)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TC (1u << 6)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_TXEIE (1u << 7)
#define USART_CR1_UE (1u << 13)
#define USART1_IRQn 37u
#define USART2_IRQn 38u

/* -- ADC1 ----------------------------------------------------------------------------- */
#define ADC1_BASE 0x40012000u
#define ADC1_SR REG(ADC1_BASE + 0x00u)
#define ADC1_CR2 REG(ADC1_BASE + 0x08u)
#define ADC1_SMPR2 REG(ADC1_BASE + 0x10u)
#define ADC1_SQR1 REG(ADC1_BASE + 0x2Cu)
#define ADC1_SQR3 REG(ADC1_BASE + 0x34u)
#define ADC1_DR REG(ADC1_BASE + 0x4Cu)
#define ADC_SR_EOC (1u << 1)
#define ADC_CR2_ADON (1u << 0)
#define ADC_CR2_SWSTART (1u << 30)

/* -- independent watchdog (LSI ~32 kHz) ----------------------------------------------- */
#define IWDG_KR REG(0x40003000u)
#define IWDG_PR REG(0x40003004u)
#define IWDG_RLR REG(0x40003008u)
#define IWDG_SR REG(0x4000300Cu) /* PVU, RVU: an update of PR / RLR is under way */

/* -- the 96-bit unique device id (not mapped in QEMU's model: real board only) --------- */
#define UID_WORD(n) REG(0x1FFF7A10u + 4u * (n))

static inline void irq_enable_all(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void irq_disable_all(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void wait_for_interrupt(void) { __asm__ volatile("wfi"); }
static inline void data_sync_barrier(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }

/* Turn a peripheral's clock on. The read back and the barrier are the errata's workaround
 * (ES0182 and its siblings, "delay after an RCC peripheral clock enabling"): the first
 * access to the peripheral must not follow the enabling write too closely. */
static inline void rcc_enable(volatile uint32_t *enr, uint32_t bits)
{
    *enr |= bits;
    (void)*enr;
    data_sync_barrier();
}

#endif
