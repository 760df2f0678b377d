/*
 * qihe-fuzz: the receive paths under AddressSanitizer and UBSan (make fuzz). Reads a byte
 * stream on standard input.
 *
 *   qihe-fuzz          feeds it to qp_decoder_feed one byte at a time and prints one line
 *                      per result: "ok <body hex>" (the good frame encoded again) or the
 *                      error kind; tests/test_firmware_codec.py compares them with Python's.
 *   qihe-fuzz board    feeds it to board_rx (holding reports, on the fake HAL) in pieces of
 *                      1..64 bytes, 7 ms apart, with a board_tick between; REBOOT restarts
 *                      the board. Prints "bytes_sent N" at the end.
 */
#include <stdio.h>
#include <string.h>

#include "board.h"
#include "hal_fake.h"
#include "proto.h"
#include "shim.h"

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static int run_decoder(void)
{
    static qp_decoder_t decoder;
    static uint8_t chunk[4096];
    qp_frame_t frame;
    uint8_t body[QP_MAX_BODY];
    size_t n;

    qp_decoder_init(&decoder);
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        for (size_t i = 0; i < n; i++) {
            int r = qp_decoder_feed(&decoder, chunk[i], &frame);
            if (r == QP_NONE)
                continue;
            if (r != QP_OK) {
                printf("%s\n", qp_error_kind(r));
                continue;
            }
            size_t len = qp_encode_body(&frame, body);
            printf("ok ");
            print_hex(body, len);
            printf("\n");
        }
        if (decoder.len > QP_MAX_ENCODED)
            return 2;
    }
    return 0;
}

static int run_board(void)
{
    static uint8_t chunk[4096];
    static uint8_t out[4096];
    uint32_t now = 1000, boot = 1, piece = 1;
    size_t n, sent = 0;

    qps_board_start(8, true, true, 3000, boot, now);
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        for (size_t at = 0; at < n; at += piece, piece = piece % 64 + 1) {
            size_t len = n - at < piece ? n - at : piece;
            now += 7;
            qps_board_rx(chunk + at, len, now);
            qps_board_tick(now);
            if (qps_board_halted())
                qps_board_start(8, true, true, 3000, ++boot, now);
            if (!qps_board_guards_intact())
                return 3;
            while (hal_fake_take_output(out, sizeof out) > 0)
                continue;
        }
    }
    sent = hal_fake_output_total();
    printf("bytes_sent %zu\n", sent);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "board") == 0)
        return run_board();
    return run_decoder();
}
