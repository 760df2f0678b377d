/*
 * A fake HAL for the test library: the core's board links against these, and a test
 * sets the inputs and reads what the board wrote (hal_fake.h).
 */
#include "hal_fake.h"

#include "hal.h"

static uint32_t now_ms;
static uint32_t boot_number = 1;
static bool seats[HAL_FAKE_SEATS + 1];
static bool presence[HAL_FAKE_SEATS + 1];
static bool beams[2];
static bool door;
static uint16_t supply_mv = 5000;
static bool led;
static uint32_t reboots;
/* What the board wrote, kept up to HAL_FAKE_OUT bytes; the rest is counted and dropped. */
static uint8_t out[HAL_FAKE_OUT];
static size_t out_len;
static size_t out_total;

uint32_t hal_millis(void) { return now_ms; }

size_t hal_link_write(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (out_len < HAL_FAKE_OUT)
            out[out_len++] = data[i];
    out_total += len;
    return len;
}

uint32_t hal_boot_number(void) { return boot_number; }
bool hal_seat_raw(uint16_t index) { return index <= HAL_FAKE_SEATS && seats[index]; }
bool hal_presence_raw(uint16_t index) { return index <= HAL_FAKE_SEATS && presence[index]; }
bool hal_beam_raw(uint8_t beam) { return beam < 2 && beams[beam]; }
bool hal_door_raw(void) { return door; }
uint16_t hal_supply_mv(void) { return supply_mv; }
void hal_led(bool on) { led = on; }
void hal_reboot(void) { reboots++; }

void hal_fake_set_millis(uint32_t ms) { now_ms = ms; }
void hal_fake_set_boot_number(uint32_t boot) { boot_number = boot; }
void hal_fake_set_seat(uint16_t index, bool occupied)
{
    if (index <= HAL_FAKE_SEATS)
        seats[index] = occupied;
}
void hal_fake_set_presence(uint16_t index, bool present)
{
    if (index <= HAL_FAKE_SEATS)
        presence[index] = present;
}
void hal_fake_set_beam(uint8_t beam, bool interrupted)
{
    if (beam < 2)
        beams[beam] = interrupted;
}
void hal_fake_set_door(bool open) { door = open; }
void hal_fake_set_supply_mv(uint16_t mv) { supply_mv = mv; }
bool hal_fake_led(void) { return led; }
uint32_t hal_fake_reboots(void) { return reboots; }

size_t hal_fake_take_output(uint8_t *dst, size_t max)
{
    size_t n = out_len < max ? out_len : max;
    for (size_t i = 0; i < n; i++)
        dst[i] = out[i];
    /* Keep what did not fit for the next call. */
    for (size_t i = n; i < out_len; i++)
        out[i - n] = out[i];
    out_len -= n;
    return n;
}
size_t hal_fake_output_total(void) { return out_total; }
void hal_fake_reset(void)
{
    now_ms = 0;
    boot_number = 1;
    for (size_t i = 0; i <= HAL_FAKE_SEATS; i++)
        seats[i] = false;
    beams[0] = beams[1] = false;
    door = false;
    supply_mv = 5000;
    led = false;
    reboots = 0;
    out_len = 0;
    out_total = 0;
}
