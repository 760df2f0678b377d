/*
 * The window of held reports (window.h), following the Python emulator's window
 * (firmware_bridge/emulator/window.py): holding, eviction, the hold horizon, REPORT_ACK,
 * WINDOW frames and resend bursts with the RESEND guard.
 */
#include "window.h"

#include "board.h"
#include "board_state.h"
#include "proto.h"
#include "tx.h"

#define SEQ_HALF 0x8000u

/* REPORT_ACK(ack) covers seq: seq is at or before ack in sequence order, wrap included. */
static bool covers(uint16_t ack, uint16_t seq) { return (uint16_t)(ack - seq) < SEQ_HALF; }

static void held_remove(board_t *b, uint16_t at)
{
    for (uint16_t i = at; i + 1u < b->held_count; i++)
        b->held[i] = b->held[i + 1u];
    b->held_count--;
}

/* seq was put on a frame: reports now 256 numbers old fall out, as does the pending WINDOW. */
void window_numbered(board_t *b, uint16_t seq)
{
    if (!board_holding(b))
        return;
    uint16_t old = 0;
    while (old < b->held_count && (uint16_t)(seq - b->held[old].seq) >= BOARD_HOLD_HORIZON)
        old++;
    if (old > 0) {
        for (uint16_t i = old; i < b->held_count; i++)
            b->held[i - old] = b->held[i];
        b->held_count = (uint16_t)(b->held_count - old);
        b->dropped += old;
    }
    if (b->held_count == 0)
        b->deadline_set = false;
    if (b->pending_set && (uint16_t)(seq - b->pending_seq) >= BOARD_HOLD_HORIZON)
        b->pending_set = false; /* too old to tell from a future number: send another */
}

/* A new report went out: hold it; when full, give up the oldest HEARTBEAT, else the oldest. */
void window_produce(board_t *b, const board_report_t *r, uint32_t now)
{
    if (!board_holding(b))
        return;
    if (b->held_count == 0) {
        b->deadline_ms = now + b->cfg.retransmit_ms;
        b->deadline_set = true;
    }
    b->held[b->held_count++] = *r;
    if (b->held_count <= b->cfg.window)
        return;
    uint16_t victim = 0;
    for (uint16_t i = 0; i < b->held_count; i++) {
        if (b->held[i].type == QP_HEARTBEAT) {
            victim = i;
            break;
        }
    }
    held_remove(b, victim);
    b->dropped++;
}

static void window_ack(board_t *b, uint16_t ack, uint32_t now)
{
    uint16_t kept = 0;
    for (uint16_t i = 0; i < b->held_count; i++) {
        if (!covers(ack, b->held[i].seq))
            b->held[kept++] = b->held[i];
    }
    uint16_t forgotten = (uint16_t)(b->held_count - kept);
    b->held_count = kept;
    b->stats.acked += forgotten;
    if (forgotten > 0) { /* progress: the timer starts again */
        b->deadline_set = kept > 0;
        b->deadline_ms = now + b->cfg.retransmit_ms;
    }
    if (b->pending_set && covers(ack, b->pending_seq)) {
        b->confirmed = b->pending_count; /* the gateway stored that count */
        b->pending_set = false;
    }
}

/* WINDOW: numbered first (which may let the oldest held report fall out), then the map. */
static void send_window(board_t *b)
{
    qp_frame_t *f = &b->tx_frame;
    uint16_t seq = tx_take_seq(b);
    f->type = QP_WINDOW;
    f->seq = seq;
    f->m.window.boot = b->boot;
    f->m.window.dropped = b->dropped;
    board_zero(f->m.window.held, sizeof f->m.window.held);
    for (uint16_t i = 0; i < b->held_count; i++) {
        uint16_t back = (uint16_t)(seq - 1u - b->held[i].seq);
        if (back < BOARD_HOLD_HORIZON)
            f->m.window.held[back >> 3] |= (uint8_t)(1u << (back & 7u));
    }
    tx_write_frame(b);
    b->stats.windows++;
    /* The first WINDOW with a count is the one to confirm: an ack covering it covers the
     * later ones too. */
    if (!b->pending_set || b->pending_count != b->dropped) {
        b->pending_set = true;
        b->pending_seq = seq;
        b->pending_count = b->dropped;
    }
}

void window_report_ack(board_t *b, uint16_t ack, uint32_t now)
{
    if (!board_holding(b))
        return;
    /* An ack for a number not used since the reset was meant for an earlier boot. */
    bool used = b->numbered >= BOARD_ALL_NUMBERS || ack < b->numbered;
    if (!used) {
        b->stats.stale_acks++;
        return;
    }
    window_ack(b, ack, now);
    if (b->dropped != b->confirmed)
        send_window(b); /* acks that keep coming keep the timer from firing: say it now */
}

/* A RESEND: expiry := min(expiry, max(now, last burst + timeout / 2)). */
void window_request(board_t *b, uint32_t now)
{
    if (!board_holding(b) || !b->deadline_set)
        return; /* holding nothing (or holding off): nothing to send */
    uint32_t at = now;
    if (b->burst_set) {
        uint32_t guard_end = b->last_burst_ms + b->cfg.retransmit_ms / 2u;
        if (!board_reached(now, guard_end))
            at = guard_end;
    }
    if (!board_reached(at, b->deadline_ms))
        b->deadline_ms = at;
}

/* The timer expired (or a RESEND made it): WINDOW, then every held report oldest first. */
void window_resend_if_due(board_t *b, uint32_t now)
{
    if (!b->deadline_set || !board_reached(now, b->deadline_ms))
        return;
    b->deadline_ms = now + b->cfg.retransmit_ms;
    b->last_burst_ms = now;
    b->burst_set = true;
    b->stats.bursts++;
    send_window(b);
    for (uint16_t i = 0; i < b->held_count; i++) {
        tx_build_report(b, &b->held[i]);
        tx_write_frame(b);
        b->stats.resent++;
    }
}
