/*
 * An STM32F4 USART, 8N1: a receive ring filled by the interrupt, a transmit ring emptied
 * by the interrupt and by uart_pump.
 *
 * Receiving by interrupt matters on the real board: at 115200 baud a byte arrives every
 * 87 us, and a main loop busy encoding a resend burst would otherwise lose bytes to the
 * USART's one-byte data register (ORE). One reader and one writer per ring index, so the
 * rings need no lock; CR1, the NVIC enables and the transmit tail, which both sides
 * change, are changed with interrupts off.
 *
 * QEMU 7.2's model (hw/char/stm32f2xx_usart.c) differs in three ways the code allows for:
 *   - it raises the interrupt for RXNE only, never for TXE (TXEIE came in QEMU 9.1), so
 *     sending cannot rely on the interrupt: uart_pump sends whatever the data register
 *     takes right now. On the chip that is one byte and the TXE interrupt does the rest;
 *     in QEMU, whose transmit is synchronous and TXE always set, it is the whole ring;
 *   - it lowers the interrupt line only when DR is read, so a receiver that wants to
 *     leave a byte in DR (hold_when_full) masks the line at the NVIC, not with RXNEIE;
 *   - it hands over the next received byte only once DR was read, so with
 *     hold_when_full QEMU keeps the rest (flow control for the event input).
 */
#include "hal.h"
#include "port_arm.h"
#include "stm32f4.h"

void uart_init(uart_t *u, uint32_t base, uint8_t *rx, uint16_t rx_size, uint8_t *tx,
               uint16_t tx_size, bool hold_when_full, uint32_t pclk_hz, uint32_t baud,
               uint32_t irqn)
{
    u->base = base;
    u->rx = rx;
    u->tx = tx;
    u->rx_mask = (uint16_t)(rx_size - 1u);
    u->tx_mask = tx_size ? (uint16_t)(tx_size - 1u) : 0u;
    u->rx_head = u->rx_tail = 0;
    u->tx_head = u->tx_tail = 0;
    u->rx_overruns = 0;
    u->irqn = irqn;
    u->hold_when_full = hold_when_full;
    u->held = false;
    /* Oversampling by 16: BRR = fck / baud, rounded (mantissa and 4-bit fraction). */
    USART_BRR(base) = (pclk_hz + baud / 2u) / baud;
    uint32_t cr1 = USART_CR1_UE | USART_CR1_RE | USART_CR1_RXNEIE;
    if (tx_size) {
        cr1 |= USART_CR1_TE;
    }
    USART_CR1(base) = cr1;
    NVIC_ISER(irqn / 32u) = 1u << (irqn % 32u);
}

/* One byte from the ring to DR if DR is free; the caller has interrupts off. */
static bool send_one(uart_t *u)
{
    uint16_t tail = u->tx_tail;
    if (tail == u->tx_head || !(USART_SR(u->base) & USART_SR_TXE)) {
        return false;
    }
    USART_DR(u->base) = u->tx[tail];
    u->tx_tail = (uint16_t)((tail + 1u) & u->tx_mask);
    return true;
}

void uart_isr(uart_t *u)
{
    uint32_t sr = USART_SR(u->base);
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint16_t head = u->rx_head;
        uint16_t next = (uint16_t)((head + 1u) & u->rx_mask);
        if (next == u->rx_tail && u->hold_when_full) {
            /* Leave the byte in DR and mask the line until uart_read makes room. */
            NVIC_ICER(u->irqn / 32u) = 1u << (u->irqn % 32u);
            u->held = true;
        } else {
            /* Reading DR after SR clears RXNE and ORE alike. */
            uint8_t byte = (uint8_t)USART_DR(u->base);
            if (sr & USART_SR_ORE) {
                u->rx_overruns++;
            }
            if (next == u->rx_tail) {
                u->rx_overruns++; /* the ring is full: the byte is lost, the decoder resyncs */
            } else {
                u->rx[head] = byte;
                u->rx_head = next;
            }
        }
    }
    if (USART_CR1(u->base) & USART_CR1_TXEIE) {
        if (u->tx_tail == u->tx_head) {
            USART_CR1(u->base) &= ~USART_CR1_TXEIE; /* nothing left: stop asking */
        } else {
            (void)send_one(u);
        }
    }
}

size_t uart_read(uart_t *u, uint8_t *out, size_t max)
{
    size_t n = 0;
    uint16_t tail = u->rx_tail;
    while (n < max && tail != u->rx_head) {
        out[n++] = u->rx[tail];
        tail = (uint16_t)((tail + 1u) & u->rx_mask);
    }
    u->rx_tail = tail;
    if (n > 0 && u->held) {
        u->held = false;
        NVIC_ISER(u->irqn / 32u) = 1u << (u->irqn % 32u);
    }
    return n;
}

void uart_pump(uart_t *u)
{
    if (u->tx_mask == 0u) {
        return;
    }
    bool more = true;
    while (more) {
        irq_disable_all();
        more = send_one(u);
        irq_enable_all();
    }
    if (u->tx_tail != u->tx_head) {
        irq_disable_all();
        USART_CR1(u->base) |= USART_CR1_TXEIE; /* the chip: the interrupt sends the rest */
        irq_enable_all();
    }
}

void uart_write(uart_t *u, const uint8_t *data, size_t len)
{
    if (u->tx_mask == 0u) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        uint16_t head = u->tx_head;
        uint16_t next = (uint16_t)((head + 1u) & u->tx_mask);
        while (next == u->tx_tail) {
            uart_pump(u); /* full: wait for the line to take bytes */
        }
        u->tx[head] = data[i];
        u->tx_head = next;
    }
    uart_pump(u);
}

void uart_flush(uart_t *u, uint32_t timeout_ms)
{
    uint32_t start = hal_millis();
    while ((u->tx_tail != u->tx_head || !(USART_SR(u->base) & USART_SR_TC))
           && hal_millis() - start < timeout_ms) {
        uart_pump(u);
    }
}
