/*
 * Frame bodies and the stream receiver of docs/protocol.md, agreeing with the Python
 * reference codec (firmware_bridge/codec.py) check for check:
 *
 *   encoded length -> COBS -> body length -> CRC -> version -> type -> payload
 *
 * Every fixed payload layout is one row of LAYOUTS, read by both the encoder and the
 * decoder; HELLO, whose id and sensor list vary in length, has its own pair of functions.
 */
#include "proto.h"

#define QP_HEADER 4 /* version, type, seq */

/* -- helpers (freestanding: no libc) ------------------------------------------------- */

static uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static void zero(void *dst, size_t n)
{
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = 0;
}

static bool kind_ok(uint8_t v) { return v >= QP_KIND_SEAT && v <= QP_KIND_DOOR; }
static bool fault_ok(uint8_t v) { return (v >= QP_FAULT_STUCK && v <= QP_FAULT_SUPPLY_LOW) || v == QP_FAULT_OTHER; }
static bool nack_ok(uint8_t v) { return v >= QP_NACK_UNKNOWN_COMMAND && v <= QP_NACK_BUSY; }

/* ^[a-z0-9][a-z0-9_-]{0,31}$ (it goes into MQTT topics and InfluxDB tags). */
static bool slug_char(uint8_t c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '_' || c == '-');
}
static bool device_id_ok(const uint8_t *id, size_t len)
{
    if (len < 1 || len > QP_MAX_ID)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!slug_char(id[i], i == 0))
            return false;
    return true;
}

/* -- the layout table ----------------------------------------------------------------- */

typedef enum {
    FT_U8,      /* uint8_t */
    FT_U16,     /* uint16_t */
    FT_U32,     /* uint32_t */
    FT_FLAG,    /* bool; 0x00 or 0x01 on the wire */
    FT_KIND,    /* uint8_t sensor kind */
    FT_FAULT,   /* uint8_t fault code */
    FT_NACK,    /* uint8_t NACK reason */
    FT_NONZERO, /* uint16_t, 1..65535 (a report interval) */
    FT_BITMAP,  /* uint8_t[32], as is */
} field_type_t;

typedef struct {
    uint8_t type;   /* field_type_t */
    uint8_t offset; /* into qp_frame_t.m */
} field_t;

#define QP_MAX_FIELDS 4
typedef struct {
    uint8_t type; /* qp_type_t */
    uint8_t count;
    field_t fields[QP_MAX_FIELDS];
} layout_t;

#define AT(member) ((uint8_t)(offsetof(qp_frame_t, m.member) - offsetof(qp_frame_t, m)))
#define F(ft, member) { ft, AT(member) }

/* docs/protocol.md, section 6: every type but HELLO, fields in wire order. */
static const layout_t LAYOUTS[] = {
    { QP_SEAT, 2, { F(FT_U16, seat.seat), F(FT_FLAG, seat.occupied) } },
    { QP_SEAT_PRESENCE, 3, { F(FT_U16, seat_presence.seat), F(FT_FLAG, seat_presence.occupied),
                             F(FT_FLAG, seat_presence.present) } },
    { QP_PEOPLE, 3, { F(FT_U16, people.counter), F(FT_U32, people.in_total), F(FT_U32, people.out_total) } },
    { QP_DOOR, 2, { F(FT_U16, door.door), F(FT_FLAG, door.open) } },
    { QP_HEARTBEAT, 2, { F(FT_U32, heartbeat.uptime_s), F(FT_U16, heartbeat.supply_mv) } },
    { QP_FAULT, 4, { F(FT_KIND, fault.sensor.kind), F(FT_U16, fault.sensor.index),
                     F(FT_FAULT, fault.code), F(FT_FLAG, fault.active) } },
    { QP_WINDOW, 3, { F(FT_U32, window.boot), F(FT_U32, window.dropped), F(FT_BITMAP, window.held) } },
    { QP_PING, 0, { { 0, 0 } } },
    { QP_SET_REPORT_INTERVAL, 1, { F(FT_NONZERO, set_report_interval.seconds) } },
    { QP_IDENTIFY, 1, { F(FT_U8, identify.seconds) } },
    { QP_REBOOT, 0, { { 0, 0 } } },
    { QP_REPORT_ACK, 1, { F(FT_U16, report_ack.seq) } },
    { QP_RESEND, 0, { { 0, 0 } } },
    { QP_ACK, 1, { F(FT_U16, ack.ref_seq) } },
    { QP_NACK, 2, { F(FT_U16, nack.ref_seq), F(FT_NACK, nack.reason) } },
};
#define LAYOUT_COUNT (sizeof LAYOUTS / sizeof LAYOUTS[0])

_Static_assert(sizeof(((qp_frame_t *)0)->m.window.held) == 32, "WINDOW bitmap is 32 bytes");
_Static_assert(offsetof(qp_frame_t, m.window.held) - offsetof(qp_frame_t, m) < 256 - 32,
               "field offsets fit a byte");

static const layout_t *layout_of(uint8_t type)
{
    for (size_t i = 0; i < LAYOUT_COUNT; i++)
        if (LAYOUTS[i].type == type)
            return &LAYOUTS[i];
    return NULL;
}

static size_t field_size(uint8_t ft)
{
    switch (ft) {
    case FT_U16: case FT_NONZERO: return 2;
    case FT_U32: return 4;
    case FT_BITMAP: return 32;
    default: return 1;
    }
}

static size_t payload_size(const layout_t *l)
{
    size_t n = 0;
    for (uint8_t i = 0; i < l->count; i++)
        n += field_size(l->fields[i].type);
    return n;
}

/* A field's wire value is valid: the same rule when encoding and decoding. */
static bool field_ok(uint8_t ft, uint32_t v)
{
    switch (ft) {
    case FT_FLAG: return v <= 1;
    case FT_KIND: return kind_ok((uint8_t)v);
    case FT_FAULT: return fault_ok((uint8_t)v);
    case FT_NACK: return nack_ok((uint8_t)v);
    case FT_NONZERO: return v != 0;
    default: return true;
    }
}

/* Returns the bytes written, 0 when a field cannot be carried. */
static size_t pack_fields(const layout_t *l, const qp_frame_t *f, uint8_t *out)
{
    const uint8_t *m = (const uint8_t *)&f->m;
    size_t o = 0;
    for (uint8_t i = 0; i < l->count; i++) {
        const void *src = m + l->fields[i].offset;
        uint8_t ft = l->fields[i].type;
        uint32_t v = 0;
        switch (ft) {
        case FT_U16: case FT_NONZERO: v = *(const uint16_t *)src; put16(out + o, (uint16_t)v); break;
        case FT_U32: v = *(const uint32_t *)src; put32(out + o, v); break;
        case FT_FLAG: v = *(const bool *)src ? 1u : 0u; out[o] = (uint8_t)v; break;
        case FT_BITMAP:
            for (size_t k = 0; k < 32; k++)
                out[o + k] = ((const uint8_t *)src)[k];
            break;
        default: v = *(const uint8_t *)src; out[o] = (uint8_t)v; break;
        }
        if (!field_ok(ft, v))
            return 0;
        o += field_size(ft);
    }
    return o;
}

/* The payload has exactly the layout's length (checked by the caller). */
static bool unpack_fields(const layout_t *l, const uint8_t *in, qp_frame_t *f)
{
    uint8_t *m = (uint8_t *)&f->m;
    size_t o = 0;
    for (uint8_t i = 0; i < l->count; i++) {
        void *dst = m + l->fields[i].offset;
        uint8_t ft = l->fields[i].type;
        uint32_t v = 0;
        switch (ft) {
        case FT_U16: case FT_NONZERO: v = get16(in + o); *(uint16_t *)dst = (uint16_t)v; break;
        case FT_U32: v = get32(in + o); *(uint32_t *)dst = v; break;
        case FT_FLAG: v = in[o]; *(bool *)dst = v != 0; break;
        case FT_BITMAP:
            for (size_t k = 0; k < 32; k++)
                ((uint8_t *)dst)[k] = in[o + k];
            break;
        default: v = in[o]; *(uint8_t *)dst = (uint8_t)v; break;
        }
        if (!field_ok(ft, v))
            return false;
        o += field_size(ft);
    }
    return true;
}

/* -- HELLO: id_len, id, firmware[3], interval u16, count u8, count x (kind, index), boot -- */

#define HELLO_FIXED 11 /* id_len, firmware, interval, count, boot */

static size_t pack_hello(const qp_frame_t *f, uint8_t *out, size_t room)
{
    size_t id_len = f->m.hello.id_len, count = f->m.hello.sensor_count;
    if (!device_id_ok((const uint8_t *)f->m.hello.device_id, id_len) ||
        f->m.hello.report_interval_s == 0 || count > QP_MAX_SENSORS ||
        HELLO_FIXED + id_len + 3 * count > room)
        return 0;
    size_t o = 0;
    out[o++] = (uint8_t)id_len;
    for (size_t i = 0; i < id_len; i++)
        out[o++] = (uint8_t)f->m.hello.device_id[i];
    for (size_t i = 0; i < 3; i++)
        out[o++] = f->m.hello.firmware[i];
    put16(out + o, f->m.hello.report_interval_s);
    o += 2;
    out[o++] = (uint8_t)count;
    for (size_t i = 0; i < count; i++) {
        const qp_sensor_t *s = &f->m.hello.sensors[i];
        if (!kind_ok(s->kind))
            return 0;
        out[o++] = s->kind;
        put16(out + o, s->index);
        o += 2;
    }
    put32(out + o, f->m.hello.boot);
    return o + 4;
}

static bool unpack_hello(const uint8_t *p, size_t len, qp_frame_t *f)
{
    if (len < 1)
        return false;
    size_t id_len = p[0];
    size_t fixed_end = 1 + id_len + 6;
    if (len < fixed_end || !device_id_ok(p + 1, id_len)) /* also refuses non-ASCII */
        return false;
    size_t count = p[1 + id_len + 5];
    if (len != fixed_end + 3 * count + 4 || count > QP_MAX_SENSORS)
        return false;
    uint16_t interval = get16(p + 1 + id_len + 3);
    if (interval == 0)
        return false;
    f->m.hello.id_len = (uint8_t)id_len;
    for (size_t i = 0; i < id_len; i++)
        f->m.hello.device_id[i] = (char)p[1 + i];
    f->m.hello.device_id[id_len] = '\0';
    for (size_t i = 0; i < 3; i++)
        f->m.hello.firmware[i] = p[1 + id_len + i];
    f->m.hello.report_interval_s = interval;
    f->m.hello.sensor_count = (uint8_t)count;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *s = p + fixed_end + 3 * i;
        if (!kind_ok(s[0]))
            return false;
        f->m.hello.sensors[i].kind = s[0];
        f->m.hello.sensors[i].index = get16(s + 1);
    }
    f->m.hello.boot = get32(p + fixed_end + 3 * count);
    return true;
}

/* -- bodies and wire ------------------------------------------------------------------ */

size_t qp_encode_body(const qp_frame_t *frame, uint8_t *out)
{
    size_t payload;
    out[0] = QP_VERSION;
    out[1] = frame->type;
    put16(out + 2, frame->seq);
    if (frame->type == QP_HELLO) {
        payload = pack_hello(frame, out + QP_HEADER, QP_MAX_BODY - QP_MIN_BODY);
        if (payload == 0)
            return 0;
    } else {
        const layout_t *l = layout_of(frame->type);
        if (l == NULL)
            return 0;
        payload = pack_fields(l, frame, out + QP_HEADER);
        if (payload != payload_size(l))
            return 0; /* a field out of range (payload_size 0 layouts pack to 0: fine) */
    }
    size_t n = QP_HEADER + payload;
    put16(out + n, qp_crc16(out, n));
    return n + 2;
}

size_t qp_wire_of_body(const uint8_t *body, size_t len, uint8_t *out)
{
    if (len < QP_MIN_BODY || len > QP_MAX_BODY)
        return 0;
    out[0] = 0;
    size_t n = qp_cobs_encode(body, len, out + 1);
    out[n + 1] = 0;
    return n + 2;
}

size_t qp_encode_wire(const qp_frame_t *frame, uint8_t *out)
{
    uint8_t body[QP_MAX_BODY];
    size_t len = qp_encode_body(frame, body);
    return len == 0 ? 0 : qp_wire_of_body(body, len, out);
}

qp_error_t qp_decode_body(const uint8_t *body, size_t len, qp_frame_t *frame)
{
    if (len < QP_MIN_BODY)
        return QP_ERR_TOO_SHORT;
    if (len > QP_MAX_BODY)
        return QP_ERR_TOO_LONG;
    if (qp_crc16(body, len - 2) != get16(body + len - 2))
        return QP_ERR_CRC;
    if (body[0] != QP_VERSION)
        return QP_ERR_VERSION;
    uint8_t type = body[1];
    zero(frame, sizeof *frame);
    frame->type = type; /* kept for unknown_type and payload: a board NACKs by them */
    frame->seq = get16(body + 2);
    const layout_t *l = type == QP_HELLO ? NULL : layout_of(type);
    if (type != QP_HELLO && l == NULL)
        return QP_ERR_UNKNOWN_TYPE;
    const uint8_t *payload = body + QP_HEADER;
    size_t plen = len - QP_MIN_BODY;
    bool ok = l == NULL ? unpack_hello(payload, plen, frame)
                        : plen == payload_size(l) && unpack_fields(l, payload, frame);
    return ok ? QP_OK : QP_ERR_PAYLOAD;
}

const char *qp_error_kind(int error)
{
    switch (error) {
    case QP_OK: return "ok";
    case QP_ERR_COBS: return "cobs";
    case QP_ERR_TOO_SHORT: return "too_short";
    case QP_ERR_TOO_LONG: return "too_long";
    case QP_ERR_CRC: return "crc";
    case QP_ERR_VERSION: return "version";
    case QP_ERR_UNKNOWN_TYPE: return "unknown_type";
    case QP_ERR_PAYLOAD: return "payload";
    default: return "none";
    }
}

/* -- the receiver ----------------------------------------------------------------------- */

void qp_decoder_init(qp_decoder_t *d)
{
    d->len = 0;
    d->skipping = false;
}

/* At most one result per byte; the work per byte is bounded by one COBS decode and one CRC
 * of QP_MAX_ENCODED bytes, done when the trailing 00 arrives. */
int qp_decoder_feed(qp_decoder_t *d, uint8_t byte, qp_frame_t *frame)
{
    if (byte == 0) {
        uint16_t n = d->len;
        d->len = 0;
        if (d->skipping) {
            d->skipping = false; /* the 00 that ends an over-long run: resynchronised */
            return QP_NONE;
        }
        if (n == 0)
            return QP_NONE; /* an empty frame: skipped, counted nowhere */
        int body = qp_cobs_decode(d->buf, n, d->buf);
        if (body < 0)
            return QP_ERR_COBS;
        return qp_decode_body(d->buf, (size_t)body, frame);
    }
    if (d->skipping)
        return QP_NONE;
    if (d->len == QP_MAX_ENCODED) {
        d->len = 0;
        d->skipping = true; /* longer than any frame: report once, drop through the next 00 */
        return QP_ERR_TOO_LONG;
    }
    d->buf[d->len++] = byte;
    return QP_NONE;
}
