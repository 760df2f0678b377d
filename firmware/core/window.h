/*
 * The window of held reports (docs/protocol.md section 8), for the board's modules only
 * (board.c, tx.c). Every report is held, while cfg.retransmit_ms > 0, until a REPORT_ACK
 * covers it: at most cfg.window (heartbeats evicted first), never past the hold horizon.
 * Resend bursts (WINDOW, then the held reports oldest first, byte-identical) come on the
 * retransmit timer and on RESEND (with the half-timeout guard); a WINDOW follows each
 * REPORT_ACK while the gateway has not confirmed the dropped count.
 *
 * Work per call is bounded by BOARD_WINDOW reports (one pass, or one burst).
 */
#ifndef QIHE_WINDOW_H
#define QIHE_WINDOW_H

#include <stdint.h>

#include "board_state.h"

/* seq was put on a frame: reports now BOARD_HOLD_HORIZON numbers old fall out. */
void window_numbered(board_t *b, uint16_t seq);
/* A new report went out: hold it (evicting one when full). */
void window_produce(board_t *b, const board_report_t *r, uint32_t now);
/* A REPORT_ACK: forget the reports it covers (unless meant for an earlier boot), then a
 * WINDOW if one is owed. */
void window_report_ack(board_t *b, uint16_t ack, uint32_t now);
/* A RESEND: bring the burst forward to now, or to the end of the half-timeout guard. */
void window_request(board_t *b, uint32_t now);
/* The burst, if the retransmit timer has expired (or a RESEND made it expire). */
void window_resend_if_due(board_t *b, uint32_t now);

#endif
