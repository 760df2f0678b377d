/*
 * The board's protocol behaviour (docs/protocol.md sections 5-8), with the Python emulator
 * (firmware_bridge/emulator/board.py, model.py) as the reference:
 *
 *   - boot: numbering from 0, HELLO first, then the state of every sensor and a heartbeat;
 *   - reports: SEAT / DOOR on a debounced change (a seat with a presence channel: SEAT_PRESENCE
 *     on a change of either channel, just before the SEAT), PEOPLE on every counted crossing and after
 *     every HEARTBEAT, HEARTBEAT every report interval, FAULT SUPPLY_LOW raised and cleared
 *     with hysteresis on the counter, else the door, never a seat;
 *   - commands: PING, SET_REPORT_INTERVAL, IDENTIFY, REBOOT answered ACK / NACK; any other
 *     type that is not a board-bound command NACK UNKNOWN_COMMAND; malformed frames dropped;
 *     REPORT_ACK and RESEND go to the window.
 *
 * Numbering and writing frames are tx.c's job; the window of held reports (section 8:
 * holding, REPORT_ACK, WINDOW, resend bursts, the RESEND guard) is window.c's.
 *
 * Work per byte received is bounded: the decoder's, plus at the end of a frame one pass over
 * the window (REPORT_ACK) or one resend burst (RESEND), both at most BOARD_WINDOW reports.
 */
#include "board.h"

#include "board_state.h"
#include "hal.h"
#include "inputs.h"
#include "proto.h"
#include "tx.h"
#include "window.h"

static const char DEFAULT_ID[] = "qihe-board";

static bool id_valid(const char *id)
{
    size_t n = board_id_length(id);
    if (n < 1 || n > QP_MAX_ID)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '_' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

/* -- configuration --------------------------------------------------------------------- */

board_config_t board_default_config(void)
{
    board_config_t cfg;
    board_zero(&cfg, sizeof cfg);
    cfg.device_id = DEFAULT_ID;
    cfg.seats = 4;
    cfg.counter = true;
    cfg.door = true;
    cfg.report_interval_s = 60;
    cfg.retransmit_ms = 3000;
    cfg.debounce_ms = 50;
    cfg.supply_low_mv = 3400;
    cfg.supply_hysteresis_mv = 50;
    cfg.window = BOARD_WINDOW;
    cfg.supply_hold_ms = 1000;
    return cfg;
}

static uint32_t interval_ms(const board_t *b) { return (uint32_t)b->interval_s * 1000u; }

/* -- reports --------------------------------------------------------------------------- */

static void report_seat(board_t *b, uint16_t index, bool occupied, uint32_t now)
{
    board_report_t r = {.type = QP_SEAT, .index = index, .flag = occupied};
    tx_send_report(b, &r, now);
}

static void report_seat_presence(board_t *b, uint16_t index, bool occupied, bool present,
                                 uint32_t now)
{
    board_report_t r = {.type = QP_SEAT_PRESENCE, .index = index, .flag = occupied, .code = present};
    tx_send_report(b, &r, now);
}

static void report_door(board_t *b, bool open, uint32_t now)
{
    board_report_t r = {.type = QP_DOOR, .index = BOARD_DOOR_INDEX, .flag = open};
    tx_send_report(b, &r, now);
}

static void report_people(board_t *b, uint32_t now)
{
    board_report_t r = {
        .type = QP_PEOPLE, .index = BOARD_COUNTER_INDEX, .a = b->in_total, .b = b->out_total};
    tx_send_report(b, &r, now);
}

/* SUPPLY_LOW is about the board; the protocol has no board kind, so it goes on the counter,
 * else the door; a board with seats only raises none (its HEARTBEAT's supply_mv tells). */
static bool supply_sensor(const board_t *b, uint8_t *kind, uint16_t *index)
{
    if (b->cfg.counter) {
        *kind = QP_KIND_PEOPLE;
        *index = BOARD_COUNTER_INDEX;
        return true;
    }
    if (b->cfg.door) {
        *kind = QP_KIND_DOOR;
        *index = BOARD_DOOR_INDEX;
        return true;
    }
    return false;
}

static void report_supply_fault(board_t *b, bool active, uint32_t now)
{
    board_report_t r = {.type = QP_FAULT, .code = QP_FAULT_SUPPLY_LOW, .flag = active};
    if (supply_sensor(b, &r.kind, &r.index))
        tx_send_report(b, &r, now);
}

static void heartbeat(board_t *b, uint32_t now)
{
    board_report_t r = {.type = QP_HEARTBEAT, .a = b->uptime_s, .b = hal_supply_mv()};
    tx_send_report(b, &r, now);
    if (b->cfg.counter) /* the totals again: a lost PEOPLE is repaired within a period */
        report_people(b, now);
}

/* Below low it is low; once low, it is low until above low + hysteresis. */
static bool supply_looks_low(const board_t *b, uint16_t mv)
{
    uint32_t clear_above = (uint32_t)b->cfg.supply_low_mv + b->cfg.supply_hysteresis_mv;
    return b->supply.stable ? mv <= clear_above : mv < b->cfg.supply_low_mv;
}

/* -- inputs ---------------------------------------------------------------------------- */

static void sample_inputs(board_t *b, uint32_t now)
{
    uint16_t debounce = b->cfg.debounce_ms;
    for (uint16_t i = 0; i < b->cfg.seats; i++) {
        uint16_t index = (uint16_t)(i + 1u);
        in_debounce_t *seat = &b->seat[i];
        bool taken = in_debounce_update(seat, hal_seat_raw(index), now, debounce);
        /* SEAT_PRESENCE first: a gateway then never sees the new occupancy with the old
         * presence (docs/protocol.md); SEAT still follows, for gateways that predate it. */
        if (i < b->cfg.presence_seats) {
            in_debounce_t *here = &b->presence[i];
            bool moved = in_debounce_update(here, hal_presence_raw(index), now, debounce);
            if (taken || moved)
                report_seat_presence(b, index, seat->stable, here->stable, now);
        }
        if (taken)
            report_seat(b, index, seat->stable, now);
    }
    if (b->cfg.door && in_debounce_update(&b->door, hal_door_raw(), now, debounce))
        report_door(b, b->door.stable, now);
    if (b->cfg.counter) {
        bool outer = in_debounce_update(&b->beam[0], hal_beam_raw(0), now, debounce);
        bool inner = in_debounce_update(&b->beam[1], hal_beam_raw(1), now, debounce);
        if (outer || inner) {
            in_cross_t crossed = in_beams_update(&b->crossing, b->beam[0].stable, b->beam[1].stable);
            if (crossed == IN_CROSS_IN)
                b->in_total++; /* u32, wraps like the protocol's totals */
            if (crossed == IN_CROSS_OUT)
                b->out_total++;
            if (crossed != IN_CROSS_NONE)
                report_people(b, now);
        }
    }
    if (b->cfg.counter || b->cfg.door) {
        bool low = supply_looks_low(b, hal_supply_mv());
        if (in_debounce_update(&b->supply, low, now, b->cfg.supply_hold_ms))
            report_supply_fault(b, b->supply.stable, now);
    }
}

/* -- boot ------------------------------------------------------------------------------ */

void board_init(board_t *b, const board_config_t *cfg, uint32_t now_ms)
{
    board_zero(b, sizeof *b);
    b->cfg = *cfg;
    if (!id_valid(b->cfg.device_id))
        b->cfg.device_id = DEFAULT_ID;
    if (b->cfg.seats > BOARD_MAX_SEATS)
        b->cfg.seats = BOARD_MAX_SEATS;
    if (b->cfg.presence_seats > b->cfg.seats)
        b->cfg.presence_seats = b->cfg.seats;
    if (b->cfg.window == 0 || b->cfg.window > BOARD_WINDOW)
        b->cfg.window = BOARD_WINDOW;
    b->interval_s = b->cfg.report_interval_s;
    if (b->interval_s < BOARD_MIN_INTERVAL_S)
        b->interval_s = BOARD_MIN_INTERVAL_S;
    if (b->interval_s > BOARD_MAX_INTERVAL_S)
        b->interval_s = BOARD_MAX_INTERVAL_S;
    b->boot = hal_boot_number();
    b->last_tick_ms = now_ms;
    b->next_heartbeat_ms = now_ms + interval_ms(b);
    qp_decoder_init(&b->rx);
    hal_led(false);

    /* The levels at power-up are the state (nothing to debounce against). */
    for (uint16_t i = 0; i < b->cfg.seats; i++)
        in_debounce_init(&b->seat[i], hal_seat_raw((uint16_t)(i + 1u)), now_ms);
    for (uint16_t i = 0; i < b->cfg.presence_seats; i++)
        in_debounce_init(&b->presence[i], hal_presence_raw((uint16_t)(i + 1u)), now_ms);
    in_debounce_init(&b->door, b->cfg.door && hal_door_raw(), now_ms);
    bool outer = b->cfg.counter && hal_beam_raw(0);
    bool inner = b->cfg.counter && hal_beam_raw(1);
    in_debounce_init(&b->beam[0], outer, now_ms);
    in_debounce_init(&b->beam[1], inner, now_ms);
    in_beams_init(&b->crossing, outer, inner);
    /* A board with seats only raises no SUPPLY_LOW, so it never counts as low either. */
    bool low = (b->cfg.counter || b->cfg.door) && hal_supply_mv() < b->cfg.supply_low_mv;
    in_debounce_init(&b->supply, low, now_ms);

    /* HELLO, then what a gateway needs to know the present state (as the emulator's
     * power_up: every seat, the door, the supply fault, a heartbeat, the counter). */
    board_report_t hello = {.type = QP_HELLO, .a = b->interval_s};
    tx_send_report(b, &hello, now_ms);
    for (uint16_t i = 0; i < b->cfg.seats; i++) {
        if (i < b->cfg.presence_seats)
            report_seat_presence(b, (uint16_t)(i + 1u), b->seat[i].stable, b->presence[i].stable,
                                 now_ms);
        report_seat(b, (uint16_t)(i + 1u), b->seat[i].stable, now_ms);
    }
    if (b->cfg.door)
        report_door(b, b->door.stable, now_ms);
    if (low)
        report_supply_fault(b, true, now_ms);
    heartbeat(b, now_ms);
}

/* -- receiving ------------------------------------------------------------------------- */

/* Type and seq of the frame that just failed, from its first encoded bytes (its CRC was
 * good, so its COBS is too). */
static bool failed_header(const board_t *b, uint8_t *type, uint16_t *seq)
{
    uint8_t body[4];
    size_t in = 0, out = 0;
    while (out < sizeof body && in < b->rx_head_len) {
        uint8_t code = b->rx_head[in++];
        if (code == 0)
            return false;
        for (uint8_t k = 1; k < code && out < sizeof body; k++) {
            if (in >= b->rx_head_len)
                return false;
            body[out++] = b->rx_head[in++];
        }
        if (out < sizeof body && code < 0xFFu)
            body[out++] = 0; /* the body is at least 6 bytes: a zero follows this block */
    }
    if (out < sizeof body)
        return false;
    *type = body[1];
    *seq = (uint16_t)((body[2] << 8) | body[3]);
    return true;
}

/* The types this board implements as a gateway → board message: a malformed one of these is
 * dropped without a reply; any other type with a good CRC is NACKed UNKNOWN_COMMAND. */
static bool board_bound(uint8_t type)
{
    return type == QP_PING || type == QP_SET_REPORT_INTERVAL || type == QP_IDENTIFY ||
           type == QP_REBOOT || type == QP_REPORT_ACK || type == QP_RESEND;
}

static void on_malformed(board_t *b, int error)
{
    b->stats.rx_malformed++;
    if (error != QP_ERR_UNKNOWN_TYPE && error != QP_ERR_PAYLOAD)
        return; /* its seq cannot be trusted: dropped */
    uint8_t type;
    uint16_t seq;
    if (failed_header(b, &type, &seq) && !board_bound(type))
        tx_send_reply(b, QP_NACK, seq, QP_NACK_UNKNOWN_COMMAND);
}

static void identify(board_t *b, uint8_t seconds, uint32_t now)
{
    b->identifying = seconds > 0;
    b->led = b->identifying;
    b->identify_until_ms = now + (uint32_t)seconds * 1000u;
    b->blink_next_ms = now + BOARD_BLINK_MS;
    hal_led(b->led);
}

static void on_frame(board_t *b, uint32_t now)
{
    const qp_frame_t *f = &b->rx_frame;
    uint16_t ref = f->seq;
    b->stats.rx_frames++;
    switch (f->type) {
    case QP_REPORT_ACK: /* not a command: never answered */
        b->stats.report_acks++;
        window_report_ack(b, f->m.report_ack.seq, now);
        return;
    case QP_RESEND: /* not a command either: its answer is a burst, at the end of board_rx */
        b->stats.resend_requests++;
        window_request(b, now);
        return;
    case QP_PING:
        b->stats.commands++;
        tx_send_reply(b, QP_ACK, ref, 0);
        return;
    case QP_SET_REPORT_INTERVAL: {
        uint16_t s = f->m.set_report_interval.seconds;
        b->stats.commands++;
        if (s < BOARD_MIN_INTERVAL_S || s > BOARD_MAX_INTERVAL_S) {
            tx_send_reply(b, QP_NACK, ref, QP_NACK_BAD_ARGUMENT);
            return;
        }
        b->interval_s = s;
        b->next_heartbeat_ms = now + interval_ms(b);
        tx_send_reply(b, QP_ACK, ref, 0);
        return;
    }
    case QP_IDENTIFY: {
        uint8_t s = f->m.identify.seconds;
        b->stats.commands++;
        tx_send_reply(b, QP_ACK, ref, 0);
        identify(b, s, now);
        return;
    }
    case QP_REBOOT:
        b->stats.commands++;
        tx_send_reply(b, QP_ACK, ref, 0);
        b->halted = true;
        hal_led(false);
        hal_reboot();
        return;
    default: /* a well-formed frame of a type the board does not take */
        tx_send_reply(b, QP_NACK, ref, QP_NACK_UNKNOWN_COMMAND);
        return;
    }
}

void board_rx(board_t *b, const uint8_t *data, size_t len, uint32_t now_ms)
{
    for (size_t i = 0; i < len && !b->halted; i++) {
        uint8_t byte = data[i];
        if (byte != 0 && b->rx_head_len < sizeof b->rx_head)
            b->rx_head[b->rx_head_len++] = byte;
        int result = qp_decoder_feed(&b->rx, byte, &b->rx_frame);
        if (result == QP_OK)
            on_frame(b, now_ms);
        else if (result != QP_NONE)
            on_malformed(b, result);
        if (byte == 0)
            b->rx_head_len = 0;
    }
    if (!b->halted)
        window_resend_if_due(b, now_ms); /* a RESEND made the burst due now */
}

/* -- time ------------------------------------------------------------------------------ */

void board_tick(board_t *b, uint32_t now_ms)
{
    if (b->halted)
        return;
    uint32_t elapsed = now_ms - b->last_tick_ms;
    b->last_tick_ms = now_ms;
    b->uptime_rest_ms += elapsed;
    b->uptime_s += b->uptime_rest_ms / 1000u;
    b->uptime_rest_ms %= 1000u;

    sample_inputs(b, now_ms);

    if (board_reached(now_ms, b->next_heartbeat_ms)) {
        b->next_heartbeat_ms += interval_ms(b);
        /* fell behind (a stall): no catch-up burst */
        if (board_reached(now_ms, b->next_heartbeat_ms))
            b->next_heartbeat_ms = now_ms + interval_ms(b);
        heartbeat(b, now_ms);
    }

    if (b->identifying) {
        if (board_reached(now_ms, b->identify_until_ms)) {
            b->identifying = false;
            b->led = false;
            hal_led(false);
        } else if (board_reached(now_ms, b->blink_next_ms)) {
            b->blink_next_ms += BOARD_BLINK_MS;
            b->led = !b->led;
            hal_led(b->led);
        }
    }

    window_resend_if_due(b, now_ms);
}

/* -- accessors ------------------------------------------------------------------------- */

uint16_t board_report_interval(const board_t *b) { return b->interval_s; }
uint16_t board_held(const board_t *b) { return b->held_count; }
uint32_t board_dropped(const board_t *b) { return b->dropped; }
bool board_owes_window(const board_t *b) { return b->dropped != b->confirmed; }
bool board_halted(const board_t *b) { return b->halted; }
uint32_t board_boot(const board_t *b) { return b->boot; }
const board_stats_t *board_stats(const board_t *b) { return &b->stats; }
