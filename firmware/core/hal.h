/*
 * The hardware-abstraction layer: everything the portable core needs from a board.
 *
 * Each port (port/host, port/arm) implements these. All calls are non-blocking and
 * allocation-free; the core calls them from its single thread of control
 * (board_tick / board_rx), never from an interrupt.
 */
#ifndef QIHE_HAL_H
#define QIHE_HAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Milliseconds since reset; wraps after ~49 days (the core compares differences). */
uint32_t hal_millis(void);

/* Put bytes on the link to the gateway. Returns how many were accepted; the core
 * never retries a short write (a frame cut short is what noise would do: the
 * gateway drops it and the report is resent from the window). */
size_t hal_link_write(const uint8_t *data, size_t len);

/* A number drawn at random at every reset (docs/protocol.md, HELLO "boot"). */
uint32_t hal_boot_number(void);

/* Raw input levels, sampled by the core every tick and debounced there.
 * Seat and door: true = occupied / open. Beams: true = the beam is interrupted;
 * beam 0 is the outer one (street side), beam 1 the inner one (room side). */
bool hal_seat_raw(uint16_t index); /* index 1..seats */
/* A seat's presence channel (an mmWave radar above the desk): true = someone is there.
 * Read only for seats 1..presence_seats (board_config_t); a port without one returns false. */
bool hal_presence_raw(uint16_t index);
bool hal_beam_raw(uint8_t beam);
bool hal_door_raw(void);
uint16_t hal_supply_mv(void);

/* The identify LED. */
void hal_led(bool on);

/* Reset the board (REBOOT). May return on a port that restarts the core in place;
 * the core then expects board_init again. */
void hal_reboot(void);

#endif
