/*
 * The serial wire protocol of docs/protocol.md: COBS framing, CRC-16/CCITT-FALSE and the
 * frame layouts, sans-IO. No allocation: callers pass the buffers.
 */
#ifndef QIHE_PROTO_H
#define QIHE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QP_VERSION 1
#define QP_MIN_BODY 6      /* version, type, seq, crc: a message without payload */
#define QP_MAX_BODY 254    /* version..crc */
#define QP_MAX_ENCODED 256 /* COBS bytes between delimiters a receiver accepts */
#define QP_MAX_WIRE 257    /* 00 COBS(body) 00 as a sender writes it (short COBS form) */
#define QP_MAX_SENSORS 78
#define QP_MAX_ID 32

typedef enum {
    QP_HELLO = 0x01, QP_SEAT = 0x02, QP_PEOPLE = 0x03, QP_DOOR = 0x04, QP_HEARTBEAT = 0x05,
    QP_FAULT = 0x06, QP_WINDOW = 0x07, QP_SEAT_PRESENCE = 0x08,
    QP_PING = 0x40, QP_SET_REPORT_INTERVAL = 0x41, QP_IDENTIFY = 0x42, QP_REBOOT = 0x43,
    QP_REPORT_ACK = 0x44, QP_RESEND = 0x45,
    QP_ACK = 0x80, QP_NACK = 0x81,
} qp_type_t;

typedef enum { QP_KIND_SEAT = 0x01, QP_KIND_PEOPLE = 0x02, QP_KIND_DOOR = 0x03 } qp_kind_t;
typedef enum {
    QP_FAULT_STUCK = 0x01, QP_FAULT_NO_RESPONSE = 0x02, QP_FAULT_OUT_OF_RANGE = 0x03,
    QP_FAULT_SUPPLY_LOW = 0x04, QP_FAULT_OTHER = 0xFF,
} qp_fault_t;
typedef enum { QP_NACK_UNKNOWN_COMMAND = 0x01, QP_NACK_BAD_ARGUMENT = 0x02, QP_NACK_BUSY = 0x03 } qp_nack_t;

/* Why a frame was refused: the same kinds, in the same order of checks, as the Python codec. */
typedef enum {
    QP_OK = 0, QP_ERR_COBS, QP_ERR_TOO_SHORT, QP_ERR_TOO_LONG, QP_ERR_CRC, QP_ERR_VERSION,
    QP_ERR_UNKNOWN_TYPE, QP_ERR_PAYLOAD,
} qp_error_t;

/* The error names the Python codec counts by (FrameError.kind): "cobs", "crc", ...; "ok" for
 * QP_OK, "none" for anything else. */
const char *qp_error_kind(int error);

typedef struct { uint8_t kind; uint16_t index; } qp_sensor_t;

typedef struct {
    uint8_t type; /* qp_type_t */
    uint16_t seq;
    union {
        struct {
            uint8_t id_len; char device_id[QP_MAX_ID + 1];
            uint8_t firmware[3]; uint16_t report_interval_s;
            uint8_t sensor_count; qp_sensor_t sensors[QP_MAX_SENSORS]; uint32_t boot;
        } hello;
        struct { uint16_t seat; bool occupied; } seat;
        struct { uint16_t seat; bool occupied, present; } seat_presence;
        struct { uint16_t counter; uint32_t in_total, out_total; } people;
        struct { uint16_t door; bool open; } door;
        struct { uint32_t uptime_s; uint16_t supply_mv; } heartbeat;
        struct { qp_sensor_t sensor; uint8_t code; bool active; } fault;
        struct { uint32_t boot, dropped; uint8_t held[32]; } window;
        struct { uint16_t seconds; } set_report_interval;
        struct { uint8_t seconds; } identify;
        struct { uint16_t seq; } report_ack;
        struct { uint16_t ref_seq; } ack;
        struct { uint16_t ref_seq; uint8_t reason; } nack;
    } m;
} qp_frame_t;

uint16_t qp_crc16(const uint8_t *data, size_t len);

/* COBS, shortest form. Returns the encoded length; out needs len + len/254 + 1 bytes. */
size_t qp_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* Lenient (the paper's final 01 too). Returns the decoded length, or -1 when a code byte
 * points past the end or is 00. Safe in place (out == in). */
int qp_cobs_decode(const uint8_t *in, size_t len, uint8_t *out);

/* Body (version..crc) of a frame into out[QP_MAX_BODY]; returns its length, 0 if the
 * frame cannot be carried (a field out of range, a body over 254 bytes). */
size_t qp_encode_body(const qp_frame_t *frame, uint8_t *out);
/* 00 COBS(body) 00 into out[QP_MAX_WIRE]; returns the wire length, 0 if it cannot be encoded. */
size_t qp_encode_wire(const qp_frame_t *frame, uint8_t *out);
/* The same from a body qp_encode_body made (a held report kept as its body is resent
 * byte-identical); returns 0 unless QP_MIN_BODY <= len <= QP_MAX_BODY. */
size_t qp_wire_of_body(const uint8_t *body, size_t len, uint8_t *out);
/* Check and decode a body; QP_OK and *frame filled, or the first failing check. On
 * QP_ERR_UNKNOWN_TYPE and QP_ERR_PAYLOAD (CRC good, version 1) frame->type and frame->seq
 * still hold the frame's header, so a board can answer NACK UNKNOWN_COMMAND (section 7). */
qp_error_t qp_decode_body(const uint8_t *body, size_t len, qp_frame_t *frame);

/* The receiver: feed bytes one at a time, bounded memory (QP_MAX_ENCODED), bounded work. */
typedef struct {
    uint8_t buf[QP_MAX_ENCODED];
    uint16_t len;
    bool skipping; /* over-long run: discard through the next 00 */
} qp_decoder_t;

#define QP_NONE (-1)

void qp_decoder_init(qp_decoder_t *d);
/* Returns QP_OK with *frame filled when byte completes a good frame; a qp_error_t when it
 * completes a malformed one (too_long is reported once per over-long run; type and seq
 * filled as qp_decode_body says); QP_NONE (-1) otherwise (need more bytes, or an empty
 * frame skipped). *frame is written only when the byte is a 00 that ends a non-empty frame. */
int qp_decoder_feed(qp_decoder_t *d, uint8_t byte, qp_frame_t *frame);

#endif
