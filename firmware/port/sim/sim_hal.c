/* The core's input HAL read from the one event-line simulator (events.h). */
#include "events.h"

#include "hal.h"

static sim_t the_sim;

sim_t *sim_instance(void) { return &the_sim; }

#ifndef SIM_NO_HAL
bool hal_seat_raw(uint16_t index) { return index >= 1 && index <= the_sim.seats && the_sim.seat[index]; }
bool hal_presence_raw(uint16_t index)
{
    return index >= 1 && index <= the_sim.seats && the_sim.presence[index];
}
bool hal_beam_raw(uint8_t beam) { return beam < 2 && the_sim.beam[beam]; }
bool hal_door_raw(void) { return the_sim.door; }
uint16_t hal_supply_mv(void) { return the_sim.supply_mv; }
#endif
