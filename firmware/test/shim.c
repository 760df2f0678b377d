/* The test shim (shim.h): a few entry points ctypes finds easier than the core's own. */
#include "shim.h"

size_t qps_frame_size(void) { return sizeof(qp_frame_t); }
size_t qps_decoder_size(void) { return sizeof(qp_decoder_t); }

#define OFF(member) offsetof(qp_frame_t, member)
/* Keep in step with FRAME_OFFSETS in tests/test_firmware_codec.py. */
static const size_t OFFSETS[] = {
    OFF(type), OFF(seq), OFF(m),
    OFF(m.hello.id_len), OFF(m.hello.device_id), OFF(m.hello.firmware),
    OFF(m.hello.report_interval_s), OFF(m.hello.sensor_count), OFF(m.hello.sensors),
    OFF(m.hello.sensors[1].index), OFF(m.hello.boot),
    OFF(m.seat.seat), OFF(m.seat.occupied),
    OFF(m.seat_presence.seat), OFF(m.seat_presence.occupied), OFF(m.seat_presence.present),
    OFF(m.people.counter), OFF(m.people.in_total), OFF(m.people.out_total),
    OFF(m.door.door), OFF(m.door.open),
    OFF(m.heartbeat.uptime_s), OFF(m.heartbeat.supply_mv),
    OFF(m.fault.sensor.kind), OFF(m.fault.sensor.index), OFF(m.fault.code), OFF(m.fault.active),
    OFF(m.window.boot), OFF(m.window.dropped), OFF(m.window.held),
    OFF(m.set_report_interval.seconds), OFF(m.identify.seconds), OFF(m.report_ack.seq),
    OFF(m.ack.ref_seq), OFF(m.nack.ref_seq), OFF(m.nack.reason),
};

size_t qps_frame_offsets(size_t *out, size_t max)
{
    size_t n = sizeof OFFSETS / sizeof OFFSETS[0];
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = OFFSETS[i];
    return n;
}

size_t qps_feed(qp_decoder_t *d, const uint8_t *data, size_t len, int8_t *results,
                qp_frame_t *frames, size_t max_frames)
{
    size_t n = 0, good = 0;
    qp_frame_t scratch;
    for (size_t i = 0; i < len; i++) {
        qp_frame_t *into = good < max_frames ? &frames[good] : &scratch;
        int r = qp_decoder_feed(d, data[i], into);
        if (r == QP_NONE)
            continue;
        results[n++] = (int8_t)r;
        if (r == QP_OK)
            good++;
    }
    return n;
}

uint16_t qps_pending(const qp_decoder_t *d) { return d->len; }
int qps_skipping(const qp_decoder_t *d) { return d->skipping ? 1 : 0; }
