/*
 * The ARM build's main: the HAL, the board with its build-time configuration, and the
 * loop (received bytes to board_rx, inputs, board_tick, watchdog, sleep until the next
 * interrupt: SysTick wakes it every millisecond, a received byte sooner).
 *
 * The configuration comes from defines (make arm ARM_DEFINES='-DQIHE_SEATS=12 ...'):
 *   QIHE_DEVICE_ID     the id in HELLO, a string: -DQIHE_DEVICE_ID='"rr-qibin-01"'
 *   QIHE_SEATS         seats 1..N (the real board: at most QIHE_GPIO_SEATS)
 *   QIHE_COUNTER       1: an entrance beam pair (PEOPLE 1); 0: none
 *   QIHE_DOOR          1: a door contact (DOOR 1); 0: none
 *   QIHE_INTERVAL_S    the heartbeat period at boot (SET_REPORT_INTERVAL changes it)
 *   QIHE_RETRANSMIT_MS resend timeout of unacknowledged reports; 0 = reports not held
 *   QIHE_SUPPLY_LOW_MV SUPPLY_LOW below this (default 3400: a 1S Li-ion cell behind the
 *                      3.3 V regulator; 4600 for a board fed 5 V over USB)
 * Unset ones keep board_default_config()'s values. An interval the gateway set
 * (SET_REPORT_INTERVAL) outlives a warm reset: see hal_keep_interval.
 */
#include "board.h"
#include "board_state.h"
#include "hal.h"
#include "port_arm.h"

#ifndef QIHE_DEVICE_ID
#define QIHE_DEVICE_ID "qihe-board"
#endif
#ifndef QIHE_SEATS
#define QIHE_SEATS 8
#endif
#ifndef QIHE_COUNTER
#define QIHE_COUNTER 1
#endif
#ifndef QIHE_DOOR
#define QIHE_DOOR 1
#endif

_Static_assert(QIHE_SEATS >= 0 && QIHE_SEATS <= BOARD_MAX_SEATS, "QIHE_SEATS: 0..BOARD_MAX_SEATS");
#if !QIHE_QEMU
_Static_assert(QIHE_SEATS <= QIHE_GPIO_SEATS, "QIHE_SEATS: more seats than seat pins");
#endif

static board_t board;

int main(void)
{
    hal_init();
    inputs_init(hal_core_hz(), QIHE_SEATS);

    board_config_t cfg = board_default_config();
    cfg.device_id = QIHE_DEVICE_ID;
    cfg.seats = QIHE_SEATS;
    cfg.counter = QIHE_COUNTER;
    cfg.door = QIHE_DOOR;
#ifdef QIHE_INTERVAL_S
    cfg.report_interval_s = QIHE_INTERVAL_S;
#endif
    uint16_t kept = hal_kept_interval(); /* set by the gateway before a warm reset */
    if (kept >= BOARD_MIN_INTERVAL_S && kept <= BOARD_MAX_INTERVAL_S) {
        cfg.report_interval_s = kept;
    }
#ifdef QIHE_RETRANSMIT_MS
    cfg.retransmit_ms = QIHE_RETRANSMIT_MS;
#endif
#ifdef QIHE_SUPPLY_LOW_MV
    cfg.supply_low_mv = QIHE_SUPPLY_LOW_MV;
#endif
    board_init(&board, &cfg, hal_millis());

    uint32_t last_tick = hal_millis();
    for (;;) {
        uint8_t buf[64];
        size_t n;
        while ((n = hal_link_read(buf, sizeof buf)) > 0) {
            board_rx(&board, buf, n, hal_millis());
        }
        uint32_t now = hal_millis();
        inputs_poll(now);
        if (now != last_tick) {
            board_tick(&board, now);
            last_tick = now;
        }
        hal_keep_interval(board_report_interval(&board));
        hal_watchdog_kick();
        hal_idle();
    }
}
