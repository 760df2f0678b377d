/* The fake HAL's controls (hal_fake.c), for tests through ctypes. */
#ifndef QIHE_HAL_FAKE_H
#define QIHE_HAL_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HAL_FAKE_SEATS 64
#define HAL_FAKE_OUT 65536

void hal_fake_reset(void);
void hal_fake_set_millis(uint32_t ms);
void hal_fake_set_boot_number(uint32_t boot);
void hal_fake_set_seat(uint16_t index, bool occupied);
void hal_fake_set_presence(uint16_t index, bool present);
void hal_fake_set_beam(uint8_t beam, bool interrupted);
void hal_fake_set_door(bool open);
void hal_fake_set_supply_mv(uint16_t mv);
bool hal_fake_led(void);
uint32_t hal_fake_reboots(void);
/* Up to max bytes of what the board wrote since the last call. */
size_t hal_fake_take_output(uint8_t *dst, size_t max);
/* Every byte the board ever wrote since hal_fake_reset, kept or not. */
size_t hal_fake_output_total(void);

#endif
