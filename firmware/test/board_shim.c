/*
 * The board (core/board.c) on the fake HAL (hal_fake.c), for the receive-path fuzz tests:
 * one static board between guard bytes, so a test can see it never writes outside it.
 */
#include "board_state.h"
#include "hal_fake.h"
#include "shim.h"

#define GUARD 64
#define PATTERN 0xA5

static struct {
    uint8_t pre[GUARD];
    board_t board;
    uint8_t post[GUARD];
} g;

size_t qps_board_size(void) { return sizeof(board_t); }

void qps_board_start(uint16_t seats, bool counter, bool door, uint32_t retransmit_ms,
                     uint32_t boot, uint32_t now_ms)
{
    for (size_t i = 0; i < GUARD; i++)
        g.pre[i] = g.post[i] = PATTERN;
    hal_fake_reset();
    hal_fake_set_boot_number(boot);
    hal_fake_set_millis(now_ms);
    board_config_t cfg = board_default_config();
    cfg.device_id = "fuzz-board";
    cfg.seats = seats;
    cfg.counter = counter;
    cfg.door = door;
    cfg.retransmit_ms = retransmit_ms;
    board_init(&g.board, &cfg, now_ms);
}

void qps_board_rx(const uint8_t *data, size_t len, uint32_t now_ms)
{
    hal_fake_set_millis(now_ms);
    board_rx(&g.board, data, len, now_ms);
}

void qps_board_tick(uint32_t now_ms)
{
    hal_fake_set_millis(now_ms);
    board_tick(&g.board, now_ms);
}

int qps_board_halted(void) { return board_halted(&g.board) ? 1 : 0; }

int qps_board_guards_intact(void)
{
    for (size_t i = 0; i < GUARD; i++)
        if (g.pre[i] != PATTERN || g.post[i] != PATTERN)
            return 0;
    return 1;
}
