/*
 * Inside the ARM port: what main_arm.c needs from the HAL beyond core/hal.h, and the
 * seam between the HAL and the two input sources chosen at build time:
 *
 *   inputs_gpio.c  the real board: seat contacts, the beam pair and the door contact on
 *                  GPIO pins with pull-ups, the supply through a divider on the ADC
 *   inputs_sim.c   QEMU (QIHE_QEMU=1): event lines (port/sim) on the second USART
 *
 * Each file compiles to nothing in the other build.
 */
#ifndef QIHE_PORT_ARM_H
#define QIHE_PORT_ARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef QIHE_QEMU
#define QIHE_QEMU 0
#endif

/* Clocks, SysTick, the link USART, the LED, the watchdog (main calls inputs_init next). */
void hal_init(void);
/* Bytes the link USART received since the last call (at most max). */
size_t hal_link_read(uint8_t *out, size_t max);
/* Restart the watchdog's count; main's loop calls it once a pass. */
void hal_watchdog_kick(void);
/* Sleep until the next interrupt (SysTick every millisecond, or a byte received). */
void hal_idle(void);

/* The core clock the HAL set up, in Hz (bauds and SysTick are derived from it). */
uint32_t hal_core_hz(void);
/* The report interval to restore after a warm reset (REBOOT, watchdog): main keeps the
 * one in force; 0 when there is none (power-up). Draws the boot number first (inputs_init
 * must have run), as that is what tells a warm reset from a power-up. */
void hal_keep_interval(uint16_t seconds);
uint16_t hal_kept_interval(void);

/* -- the input source -- */
#define QIHE_GPIO_SEATS 16 /* seat pins of the real board (inputs_gpio.c) */
void inputs_init(uint32_t core_hz, uint16_t seats);
void inputs_poll(uint32_t now_ms); /* QEMU: feed the event USART's bytes to port/sim */
uint32_t inputs_entropy(void);     /* noise for the boot number (ADC LSBs), 0 if none */

/* -- the USART driver, shared by the link and the QEMU event input -- */
typedef struct {
    uint32_t base;
    uint8_t *rx, *tx;                   /* rings, sizes powers of two (tx may be none) */
    uint16_t rx_mask, tx_mask;          /* size - 1 */
    volatile uint16_t rx_head, rx_tail; /* the ISR writes at head, main reads at tail */
    volatile uint16_t tx_head, tx_tail; /* main writes at head, the ISR sends from tail */
    volatile uint32_t rx_overruns;      /* bytes lost: ring full, or the USART's ORE */
    uint32_t irqn;
    bool hold_when_full;                /* stop reading DR while the ring is full (below) */
    volatile bool held;                 /* the interrupt is off until uart_read makes room */
} uart_t;

/* rx_size and tx_size are powers of two; tx_size 0 = receive only. hold_when_full: when
 * the receive ring is full the interrupt stops reading DR instead of dropping bytes. On a
 * real line that only moves the loss to the USART (ORE); in QEMU it is flow control, since
 * QEMU hands over the next byte only once DR was read: the QEMU event input uses it so
 * that a long script of event lines, written at once, waits in QEMU rather than being cut. */
void uart_init(uart_t *u, uint32_t base, uint8_t *rx, uint16_t rx_size, uint8_t *tx,
               uint16_t tx_size, bool hold_when_full, uint32_t pclk_hz, uint32_t baud,
               uint32_t irqn);
void uart_isr(uart_t *u);
size_t uart_read(uart_t *u, uint8_t *out, size_t max);
/* Queue every byte; waits while the ring is full (115200 baud drains a byte each 87 us). */
void uart_write(uart_t *u, const uint8_t *data, size_t len);
/* Send what the data register takes now (main's loop calls it: see uart.c). */
void uart_pump(uart_t *u);
/* Wait (at most timeout_ms) until every queued byte has left the shift register. */
void uart_flush(uart_t *u, uint32_t timeout_ms);

#endif
