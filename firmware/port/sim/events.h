/*
 * Simulated inputs, shared by the host port and the QEMU build: event lines in, raw input
 * levels over time out (the hal_seat_raw / hal_beam_raw / hal_door_raw / hal_supply_mv the
 * core samples). Freestanding: no libc, no allocation; feed it bytes as they come.
 *
 * One event per line (LF or CR LF), words separated by spaces:
 *
 *   seat INDEX 1|0          seat INDEX (1..seats) taken / free
 *   presence INDEX 1|0      someone at seat INDEX / nobody (its presence channel, if it has one)
 *   beam in|out             a person crosses the entrance: outer on, inner on, outer off,
 *                           inner off (in; the mirror image for out), SIM_BEAM_STEP_MS apart
 *   beam outer|inner 1|0    one beam blocked / clear (bounces, aborted crossings)
 *   door open|closed        the door contact
 *   supply MILLIVOLTS       the supply voltage from now on (0..65535)
 *   wait MILLISECONDS       the lines after it take effect this much later
 *   # ...                   a comment; blank lines are skipped too
 *
 * A level changes when its line is read; the board counts it once it has held the board's
 * debounce (50 ms by default), so a change and its undo need a `wait` between them. While a
 * `wait` or a crossing is in progress no further line is read: sim_feed consumes nothing
 * (the caller keeps the bytes), so memory stays bounded however much is queued.
 *
 * A line the simulator does not know goes to the `other` hook (a port's own events, e.g. the
 * host's `unplug` / `plug`) at the moment it takes effect; if there is no hook, or the hook
 * does not take it, or a known line is malformed, to the `error` hook. Neither is required.
 */
#ifndef QIHE_SIM_EVENTS_H
#define QIHE_SIM_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "board.h"

#define SIM_LINE_MAX 80          /* longer lines are an error, skipped through their newline */
#define SIM_BEAM_STEP_MS 100     /* between the four beam changes of a crossing: > debounce */
#define SIM_DEFAULT_SUPPLY_MV 5000

/* A port's own line (not NUL-terminated); returns whether it took it. */
typedef bool (*sim_other_fn)(void *ctx, const char *line, size_t len);
/* A line refused, and why (a short constant English phrase). */
typedef void (*sim_error_fn)(void *ctx, const char *line, size_t len, const char *why);

typedef struct {
    uint16_t seats;
    bool seat[BOARD_MAX_SEATS + 1]; /* 1-based */
    bool presence[BOARD_MAX_SEATS + 1]; /* 1-based: someone at the seat */
    bool beam[2];                   /* 0 outer, 1 inner */
    bool door;
    uint16_t supply_mv;

    char line[SIM_LINE_MAX];
    uint8_t line_len;
    bool line_too_long;

    bool waiting;
    uint32_t wait_until_ms;
    uint8_t cross_step; /* 0 none; 1..4: the next change of a crossing in progress */
    bool cross_in;
    uint32_t cross_next_ms;
    uint16_t beam_step_ms;

    sim_other_fn other;
    sim_error_fn error;
    void *ctx;
    uint32_t lines;  /* lines taken */
    uint32_t errors; /* lines refused */
} sim_t;

void sim_init(sim_t *s, uint16_t seats);
/* Take event bytes; returns how many it consumed (fewer than len while a wait or a crossing
 * is in progress: offer the rest again later). */
size_t sim_feed(sim_t *s, const uint8_t *data, size_t len, uint32_t now_ms);
/* Advance a crossing in progress and end a wait; call it every tick (sim_feed does too). */
void sim_run(sim_t *s, uint32_t now_ms);
/* A wait or a crossing is in progress: sim_feed would take nothing now. */
bool sim_busy(const sim_t *s, uint32_t now_ms);

/* The one simulator the HAL functions below read (port/sim/sim_hal.c): hal_seat_raw,
 * hal_presence_raw, hal_beam_raw, hal_door_raw and hal_supply_mv. A port with real inputs for some of them
 * builds with -DSIM_NO_HAL and writes its own. */
sim_t *sim_instance(void);

#endif
