/*
 * The test shim: what tests/test_firmware_codec.py calls through ctypes in
 * build/host/libqiheboard.so, besides the core's own functions (qp_*), which it calls
 * directly. Host only; never linked into a port.
 */
#ifndef QIHE_SHIM_H
#define QIHE_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* sizeof(qp_frame_t) and sizeof(qp_decoder_t): the ctypes mirror checks its own against them. */
size_t qps_frame_size(void);
size_t qps_decoder_size(void);

/* Offsets of qp_frame_t's fields in the order of QPS_OFFSET_NAMES (shim.c), so the ctypes
 * mirror can check every one of its own. Returns how many were written (at most max). */
size_t qps_frame_offsets(size_t *out, size_t max);

/* Feed len bytes to the receiver one at a time. Every result that is not QP_NONE goes into
 * results (room for len entries: at most one per byte); the k-th good frame into frames[k]
 * while k < max_frames. Returns the number of results. */
size_t qps_feed(qp_decoder_t *d, const uint8_t *data, size_t len, int8_t *results,
                qp_frame_t *frames, size_t max_frames);

/* The receiver's state: bytes held while waiting for a 00, and whether it is discarding an
 * over-long run. */
uint16_t qps_pending(const qp_decoder_t *d);
int qps_skipping(const qp_decoder_t *d);

/* The board on the fake HAL (board_shim.c, hal_fake.h): one static board_t between guard
 * bytes. Start it (config defaults but these fields, device "fuzz-board"), feed it, tick it;
 * read what it wrote with hal_fake_take_output. */
size_t qps_board_size(void);
void qps_board_start(uint16_t seats, bool counter, bool door, uint32_t retransmit_ms,
                     uint32_t boot, uint32_t now_ms);
void qps_board_rx(const uint8_t *data, size_t len, uint32_t now_ms);
void qps_board_tick(uint32_t now_ms);
int qps_board_halted(void);
/* 1 while the guard bytes on both sides of the board are as qps_board_start left them. */
int qps_board_guards_intact(void);

#endif
