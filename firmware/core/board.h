/*
 * The board: what docs/protocol.md asks of a sensor board, on top of proto.h and hal.h.
 *
 * Sequence numbers, HELLO with its boot number, reports (seats, with a presence channel
 * SEAT_PRESENCE too, entrance counter with
 * direction, door, heartbeat with supply voltage, SUPPLY_LOW faults), the window of held
 * reports with REPORT_ACK, WINDOW, resend bursts and RESEND, and the commands PING,
 * SET_REPORT_INTERVAL, IDENTIFY and REBOOT answered with ACK/NACK.
 *
 * Single-threaded and sans-IO apart from the HAL: a port calls board_rx with the bytes the
 * link received and board_tick often (every millisecond or so). No allocation: a board_t
 * holds everything, its size is fixed at build time.
 */
#ifndef QIHE_BOARD_H
#define QIHE_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#ifndef BOARD_MAX_SEATS
#define BOARD_MAX_SEATS 64 /* a HELLO lists them all: 64 seats + counter + door fit one frame */
#endif
#ifndef BOARD_WINDOW
#define BOARD_WINDOW 128 /* held reports at most (docs/protocol.md: W) */
#endif
#define BOARD_HOLD_HORIZON 256 /* a held report is dropped once 256 numbers old (section 8) */

/* The report intervals SET_REPORT_INTERVAL may set; anything else is NACK BAD_ARGUMENT. */
#define BOARD_MIN_INTERVAL_S 1
#define BOARD_MAX_INTERVAL_S 3600

/* The firmware version in HELLO. */
#ifndef BOARD_FIRMWARE_MAJOR
#define BOARD_FIRMWARE_MAJOR 1
#endif
#ifndef BOARD_FIRMWARE_MINOR
#define BOARD_FIRMWARE_MINOR 0
#endif
#ifndef BOARD_FIRMWARE_PATCH
#define BOARD_FIRMWARE_PATCH 0
#endif

/* Sensor indexes of the entrance's counter and door contact (seats are 1..seats). */
#define BOARD_COUNTER_INDEX 1
#define BOARD_DOOR_INDEX 1

/* How often the identify LED changes while blinking (2 Hz). */
#define BOARD_BLINK_MS 250

#if BOARD_MAX_SEATS > 64 || BOARD_WINDOW < 1 || BOARD_WINDOW > BOARD_HOLD_HORIZON
#error "BOARD_MAX_SEATS must be <= 64 (one HELLO) and BOARD_WINDOW 1..256"
#endif

typedef struct {
    const char *device_id;      /* ^[a-z0-9][a-z0-9_-]{0,31}$; an invalid one becomes "qihe-board" */
    uint16_t seats;             /* 0..BOARD_MAX_SEATS, indexes 1..seats */
    uint16_t presence_seats;    /* seats 1..presence_seats also have a presence channel:
                                   SEAT_PRESENCE (0..seats; default 0) */
    bool counter;               /* an entrance beam pair: PEOPLE counter 1 */
    bool door;                  /* a door contact: DOOR 1 */
    uint16_t report_interval_s; /* heartbeat period, BOARD_MIN_INTERVAL_S..BOARD_MAX_INTERVAL_S */
    uint32_t retransmit_ms;     /* resend timeout; 0 = reports not held (section 8 off) */
    uint16_t debounce_ms;       /* an input level must hold this long to count */
    uint16_t supply_low_mv;     /* SUPPLY_LOW raised below, cleared above low + hysteresis */
    uint16_t supply_hysteresis_mv;
    uint16_t window;            /* held reports at most, 1..BOARD_WINDOW; 0 = BOARD_WINDOW */
    uint16_t supply_hold_ms;    /* the supply must stay beyond a threshold this long */
} board_config_t;

/* The defaults a port starts from: device "qihe-board", 4 seats, counter and door, interval
 * 60 s, retransmit 3000 ms, debounce 50 ms, SUPPLY_LOW below 3400 mV and cleared above
 * 3450 mV after 1000 ms, window BOARD_WINDOW. */
board_config_t board_default_config(void);

typedef struct board board_t; /* defined in board_state.h; ports allocate it statically */

/* What the board did this boot, for a port's logs and status lines. */
typedef struct {
    uint32_t frames_sent;    /* frames numbered and written: reports, replies, WINDOWs */
    uint32_t resent;         /* held reports written again in resend bursts */
    uint32_t windows;        /* WINDOW frames sent */
    uint32_t bursts;         /* resend bursts (timer or RESEND) */
    uint32_t rx_frames;      /* good frames received */
    uint32_t rx_malformed;   /* malformed frames received (dropped, or NACKed if unknown type) */
    uint32_t commands;       /* PING, SET_REPORT_INTERVAL, IDENTIFY, REBOOT carried out or refused */
    uint32_t nacks;          /* NACKs sent */
    uint32_t report_acks;    /* REPORT_ACKs received */
    uint32_t stale_acks;     /* REPORT_ACKs for a number not used this boot: ignored */
    uint32_t resend_requests; /* RESENDs received */
    uint32_t acked;          /* held reports forgotten because a REPORT_ACK covered them */
} board_stats_t;

/* Start a boot: numbering from 0, HELLO first, then the state of every sensor and a
 * heartbeat; empty window. Calls hal_boot_number once. */
void board_init(board_t *b, const board_config_t *cfg, uint32_t now_ms);
/* Bytes the link received, in any pieces. After a REBOOT the rest is ignored: the board
 * has reset (hal_reboot), and a port whose hal_reboot returns calls board_init again. */
void board_rx(board_t *b, const uint8_t *data, size_t len, uint32_t now_ms);
/* Sample inputs, run timers (debounce, heartbeat, retransmit, identify blink). */
void board_tick(board_t *b, uint32_t now_ms);

/* The report interval in force (a port that restarts the core in place after REBOOT keeps it:
 * board_init with it in the config). */
uint16_t board_report_interval(const board_t *b);
/* Reports held for REPORT_ACK now, and given up this boot (window full or too old). */
uint16_t board_held(const board_t *b);
uint32_t board_dropped(const board_t *b);
/* The board gave reports up that no acknowledged WINDOW has told the gateway of yet. */
bool board_owes_window(const board_t *b);
/* REBOOT was carried out: nothing more happens until board_init. */
bool board_halted(const board_t *b);
uint32_t board_boot(const board_t *b);
const board_stats_t *board_stats(const board_t *b);

#endif
