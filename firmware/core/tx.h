/*
 * The board's sending side, for the board's modules only (board.c, window.c): every frame
 * sent takes the next seq (from 0 at each boot, and the window hears of each number), is
 * encoded into b->tx_frame and written to the link.
 */
#ifndef QIHE_TX_H
#define QIHE_TX_H

#include <stdint.h>

#include "board_state.h"

/* The next number, counted as sent; held reports that fall past the horizon go. */
uint16_t tx_take_seq(board_t *b);
/* Encode b->tx_frame and write it (a short write is noise: the window repairs it). */
void tx_write_frame(board_t *b);
/* Fill b->tx_frame from a held report's fields (the same bytes every time). */
void tx_build_report(board_t *b, const board_report_t *r);
/* Number a new report, send it, hold it. */
void tx_send_report(board_t *b, board_report_t *r, uint32_t now);
/* ACK (reason unused) or NACK with reason, for the frame numbered ref_seq. */
void tx_send_reply(board_t *b, uint8_t type, uint16_t ref_seq, uint8_t reason);

#endif
