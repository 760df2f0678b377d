/*
 * struct board: everything a board holds, fixed at build time (board.h sizes it). Ports
 * allocate one statically; only the board's modules look inside: board.c (boot, inputs,
 * commands, receiving), tx.c (numbering and writing frames) and window.c (held reports).
 */
#ifndef QIHE_BOARD_STATE_H
#define QIHE_BOARD_STATE_H

#include "board.h"
#include "inputs.h"
#include "proto.h"

/*
 * A held report, compactly: the fields it was built from, not its bytes. Re-encoding
 * gives the same bytes (the encoder is deterministic, and a HELLO keeps the interval it
 * was sent with; its id, sensors and boot number do not change within a boot), so a
 * resend is byte-identical at 16 bytes a report instead of a 257-byte frame buffer.
 */
/* b->numbered stops here: from then on every sequence number has been used this boot. */
#define BOARD_ALL_NUMBERS 0x10000u

typedef struct {
    uint32_t a;     /* PEOPLE in_total, HEARTBEAT uptime_s, HELLO report_interval_s */
    uint32_t b;     /* PEOPLE out_total, HEARTBEAT supply_mv */
    uint16_t seq;   /* its number, from its first sending */
    uint16_t index; /* SEAT, DOOR, PEOPLE, FAULT sensor index */
    uint8_t type;   /* QP_HELLO .. QP_FAULT */
    uint8_t flag;   /* SEAT and SEAT_PRESENCE occupied, DOOR open, FAULT active */
    uint8_t kind;   /* FAULT sensor kind */
    uint8_t code;   /* FAULT code, SEAT_PRESENCE present */
} board_report_t;

struct board {
    board_config_t cfg;
    uint32_t boot;       /* this boot's number (HELLO, WINDOW) */
    uint16_t interval_s; /* the report interval in force */
    uint16_t next_seq;
    uint32_t numbered;   /* frames numbered this boot, up to 0x10000 (then every number is used) */
    bool halted;         /* REBOOT carried out: waiting for board_init */

    /* clocks */
    uint32_t last_tick_ms;
    uint32_t uptime_s;
    uint32_t uptime_rest_ms;
    uint32_t next_heartbeat_ms;

    /* inputs */
    in_debounce_t seat[BOARD_MAX_SEATS];
    in_debounce_t presence[BOARD_MAX_SEATS]; /* seats 1..presence_seats */
    in_debounce_t door;
    in_debounce_t beam[2]; /* 0 outer, 1 inner */
    in_beams_t crossing;
    uint32_t in_total, out_total;
    in_debounce_t supply; /* stable = SUPPLY_LOW raised */

    /* identify */
    bool identifying, led;
    uint32_t identify_until_ms, blink_next_ms;

    /* the window of held reports, oldest first (section 8) */
    board_report_t held[BOARD_WINDOW + 1]; /* + 1: the newest may be the one evicted */
    uint16_t held_count;
    bool deadline_set;
    uint32_t deadline_ms; /* the retransmit timer's expiry */
    bool burst_set;
    uint32_t last_burst_ms;
    uint32_t dropped;   /* reports given up this boot */
    uint32_t confirmed; /* the dropped count the gateway is known to have stored */
    bool pending_set;   /* the pending WINDOW: its number and the count it carried */
    uint16_t pending_seq;
    uint32_t pending_count;

    /* receiving */
    qp_decoder_t rx;
    uint8_t rx_head[8]; /* the first encoded bytes of the frame in flight (its header) */
    uint8_t rx_head_len;
    qp_frame_t rx_frame;

    /* sending */
    qp_frame_t tx_frame;
    uint8_t wire[QP_MAX_WIRE];

    board_stats_t stats;
};

/* -- small helpers the board's modules share (freestanding: no libc) ------------------- */

static inline void board_zero(void *dst, size_t n)
{
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = 0;
}

/* now at or after at on the wrapping millisecond clock */
static inline bool board_reached(uint32_t now, uint32_t at) { return (int32_t)(now - at) >= 0; }

/* Reports are held for REPORT_ACK (section 8 on). */
static inline bool board_holding(const board_t *b) { return b->cfg.retransmit_ms != 0; }

static inline size_t board_id_length(const char *id)
{
    size_t n = 0;
    if (id == NULL)
        return 0;
    while (id[n] != '\0' && n <= QP_MAX_ID)
        n++;
    return n;
}

#endif
