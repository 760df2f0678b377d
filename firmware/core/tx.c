/*
 * Numbering and writing the board's frames (tx.h): reports built from their held fields,
 * so a resend is byte-identical, and the ACK / NACK replies to commands.
 */
#include "tx.h"

#include "board.h"
#include "board_state.h"
#include "hal.h"
#include "proto.h"
#include "window.h"

void tx_write_frame(board_t *b)
{
    size_t n = qp_encode_wire(&b->tx_frame, b->wire);
    if (n > 0)
        (void)hal_link_write(b->wire, n); /* a short write is noise: the window repairs it */
}

uint16_t tx_take_seq(board_t *b)
{
    uint16_t seq = b->next_seq;
    b->next_seq = (uint16_t)(seq + 1u);
    if (b->numbered < BOARD_ALL_NUMBERS)
        b->numbered++;
    b->stats.frames_sent++;
    window_numbered(b, seq);
    return seq;
}

void tx_build_report(board_t *b, const board_report_t *r)
{
    qp_frame_t *f = &b->tx_frame;
    f->type = r->type;
    f->seq = r->seq;
    switch (r->type) {
    case QP_HELLO: {
        size_t n = board_id_length(b->cfg.device_id);
        f->m.hello.id_len = (uint8_t)n;
        for (size_t i = 0; i < n; i++)
            f->m.hello.device_id[i] = b->cfg.device_id[i];
        f->m.hello.device_id[n] = '\0';
        f->m.hello.firmware[0] = BOARD_FIRMWARE_MAJOR;
        f->m.hello.firmware[1] = BOARD_FIRMWARE_MINOR;
        f->m.hello.firmware[2] = BOARD_FIRMWARE_PATCH;
        f->m.hello.report_interval_s = (uint16_t)r->a;
        uint8_t count = 0;
        for (uint16_t i = 1; i <= b->cfg.seats; i++)
            f->m.hello.sensors[count++] = (qp_sensor_t){QP_KIND_SEAT, i};
        if (b->cfg.counter)
            f->m.hello.sensors[count++] = (qp_sensor_t){QP_KIND_PEOPLE, BOARD_COUNTER_INDEX};
        if (b->cfg.door)
            f->m.hello.sensors[count++] = (qp_sensor_t){QP_KIND_DOOR, BOARD_DOOR_INDEX};
        f->m.hello.sensor_count = count;
        f->m.hello.boot = b->boot;
        break;
    }
    case QP_SEAT:
        f->m.seat.seat = r->index;
        f->m.seat.occupied = r->flag != 0;
        break;
    case QP_SEAT_PRESENCE:
        f->m.seat_presence.seat = r->index;
        f->m.seat_presence.occupied = r->flag != 0;
        f->m.seat_presence.present = r->code != 0;
        break;
    case QP_PEOPLE:
        f->m.people.counter = r->index;
        f->m.people.in_total = r->a;
        f->m.people.out_total = r->b;
        break;
    case QP_DOOR:
        f->m.door.door = r->index;
        f->m.door.open = r->flag != 0;
        break;
    case QP_HEARTBEAT:
        f->m.heartbeat.uptime_s = r->a;
        f->m.heartbeat.supply_mv = (uint16_t)r->b;
        break;
    case QP_FAULT:
        f->m.fault.sensor.kind = r->kind;
        f->m.fault.sensor.index = r->index;
        f->m.fault.code = r->code;
        f->m.fault.active = r->flag != 0;
        break;
    default:
        break;
    }
}

void tx_send_report(board_t *b, board_report_t *r, uint32_t now)
{
    r->seq = tx_take_seq(b);
    tx_build_report(b, r);
    tx_write_frame(b);
    window_produce(b, r, now);
}

void tx_send_reply(board_t *b, uint8_t type, uint16_t ref_seq, uint8_t reason)
{
    qp_frame_t *f = &b->tx_frame;
    f->type = type;
    f->seq = tx_take_seq(b);
    if (type == QP_ACK) {
        f->m.ack.ref_seq = ref_seq;
    } else {
        f->m.nack.ref_seq = ref_seq;
        f->m.nack.reason = reason;
        b->stats.nacks++;
    }
    tx_write_frame(b);
}
