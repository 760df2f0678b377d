/*
 * The QEMU build's inputs (QIHE_QEMU=1): QEMU cannot press a seat sensor, so the event
 * lines of port/sim/events.h (`seat 3 1`, `beam in`, `door open`, `supply 3300`,
 * `wait 500`) arrive on USART2, QEMU's second -serial, and port/sim turns them into the
 * raw levels hal_seat_raw & co. return (port/sim/sim_hal.c).
 *
 * While a `wait` or a crossing is in progress port/sim takes no more bytes; they stay in
 * the receive ring, and once that is full in QEMU itself (uart.c, hold_when_full), so a
 * test may write a whole script at once. A line port/sim refuses is reported back on
 * USART2 as `error: WHY: LINE`; `mark TEXT` (this build's own event) as `mark TEXT`.
 */
#include "port_arm.h"

#if QIHE_QEMU

#include "events.h"
#include "hal.h"
#include "stm32f4.h"

#define EVENTS_BAUD 115200u

static uint8_t events_rx[128];
static uint8_t events_tx[128];
static uart_t events;

/* Bytes taken from the ring that port/sim has not consumed yet. */
static uint8_t pending[32];
static size_t pending_len, pending_at;

void USART2_IRQHandler(void) { uart_isr(&events); }

static void put(const char *text, size_t len) { uart_write(&events, (const uint8_t *)text, len); }

static size_t length(const char *text)
{
    size_t n = 0;
    while (text[n] != '\0') {
        n++;
    }
    return n;
}

static void refused(void *ctx, const char *line, size_t len, const char *why)
{
    (void)ctx;
    put("error: ", 7);
    put(why, length(why));
    put(": ", 2);
    put(line, len);
    put("\r\n", 2);
}

/* The QEMU build's own event, `mark TEXT`: it answers `mark TEXT` on USART2 when it takes
 * effect, i.e. after every line before it (their waits and crossings included), so a test
 * knows its script has been played without guessing at timing. */
static bool port_event(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    size_t start = 0;
    while (start < len && (line[start] == ' ' || line[start] == '\t')) {
        start++;
    }
    while (len > start && (line[len - 1] == '\r' || line[len - 1] == ' ')) {
        len--;
    }
    const char *word = "mark";
    for (size_t i = 0; i < 4; i++) {
        if (start + i >= len || line[start + i] != word[i]) {
            return false;
        }
    }
    if (start + 4 < len && line[start + 4] != ' ') {
        return false;
    }
    put(line + start, len - start);
    put("\r\n", 2);
    return true;
}

void inputs_init(uint32_t core_hz, uint16_t seats)
{
    sim_t *sim = sim_instance();
    sim_init(sim, seats);
    sim->error = refused;
    sim->other = port_event;
    rcc_enable(&RCC_APB1ENR, RCC_APB1ENR_USART2EN);
    /* No pins: QEMU models none, and this build never runs on a board. */
    uart_init(&events, USART2_BASE, events_rx, sizeof events_rx, events_tx, sizeof events_tx,
              true, core_hz, EVENTS_BAUD, USART2_IRQn);
}

void inputs_poll(uint32_t now_ms)
{
    sim_t *sim = sim_instance();
    sim_run(sim, now_ms);
    while (!sim_busy(sim, now_ms)) {
        if (pending_at == pending_len) {
            pending_at = 0;
            pending_len = uart_read(&events, pending, sizeof pending);
            if (pending_len == 0) {
                return;
            }
        }
        size_t taken = sim_feed(sim, pending + pending_at, pending_len - pending_at, now_ms);
        pending_at += taken;
        if (taken == 0) {
            return;
        }
    }
}

uint32_t inputs_entropy(void) { return 0; /* none here: QEMU's timing jitter does the work */ }

#endif
