/*
 * The real board's inputs (not in the QEMU build): contacts on GPIO pins with the chip's
 * internal pull-ups, the supply voltage through a divider on the ADC.
 *
 * Every contact is wired between its pin and GND (docs/firmware.md, "Wiring"): an open
 * contact reads high through the ~40 kOhm pull-up, a closed one low. The raw levels go to
 * the core as they are; it debounces them.
 *
 *   seat 1..16   PB0 PB1 PB3 PB4 PB5 PB6 PB7 PB8 PB9 PB10 PB12 PB13 PB14 PB15 PA15 PA8
 *                pressure mat or reed contact, closed = occupied
 *   beam outer   PA4   break-beam receiver, open-collector, low = beam interrupted
 *   beam inner   PA5
 *   door         PA6   reed contact, closed while the door is shut: high = open
 *   supply       PA1   ADC1 channel 1 through a 1:2 divider (10k/10k): 0..6.6 V
 *
 * Left free: PA0 (the Black Pill's KEY button), PA2/PA3 (USART2), PA7, PA9/PA10 (the
 * link), PA11/PA12 (USB), PA13/PA14 (SWD), PB2 (BOOT1), PC13 (LED), PC14/PC15 (32 kHz).
 * PB3, PB4 and PA15 are JTAG pins after reset; making them inputs frees them (SWD stays).
 */
#include "port_arm.h"

#if !QIHE_QEMU

#include "board.h"
#include "hal.h"
#include "stm32f4.h"

#ifndef QIHE_SEAT_ACTIVE_LOW
#define QIHE_SEAT_ACTIVE_LOW 1 /* a closed contact (low) = occupied */
#endif
#ifndef QIHE_BEAM_ACTIVE_LOW
#define QIHE_BEAM_ACTIVE_LOW 1 /* low = interrupted */
#endif
#ifndef QIHE_DOOR_OPEN_HIGH
#define QIHE_DOOR_OPEN_HIGH 1 /* the contact opens (high) when the door does */
#endif
/* The supply divider: supply = pin voltage * NUM / DEN; VDDA is the Black Pill's 3.3 V. */
#ifndef QIHE_SUPPLY_DIVIDER_NUM
#define QIHE_SUPPLY_DIVIDER_NUM 2u
#endif
#ifndef QIHE_SUPPLY_DIVIDER_DEN
#define QIHE_SUPPLY_DIVIDER_DEN 1u
#endif
#define VDDA_MV 3300u

typedef struct {
    uint32_t port;
    uint8_t pin;
} pin_t;

static const pin_t seat_pins[] = {
    {GPIOB_BASE, 0},  {GPIOB_BASE, 1},  {GPIOB_BASE, 3},  {GPIOB_BASE, 4},
    {GPIOB_BASE, 5},  {GPIOB_BASE, 6},  {GPIOB_BASE, 7},  {GPIOB_BASE, 8},
    {GPIOB_BASE, 9},  {GPIOB_BASE, 10}, {GPIOB_BASE, 12}, {GPIOB_BASE, 13},
    {GPIOB_BASE, 14}, {GPIOB_BASE, 15}, {GPIOA_BASE, 15}, {GPIOA_BASE, 8},
};
#define SEAT_PINS (sizeof seat_pins / sizeof seat_pins[0])
_Static_assert(SEAT_PINS == QIHE_GPIO_SEATS, "port_arm.h names the number of seat pins");
static const pin_t beam_pins[2] = {{GPIOA_BASE, 4}, {GPIOA_BASE, 5}};
static const pin_t door_pin = {GPIOA_BASE, 6};
#define SUPPLY_PORT GPIOA_BASE
#define SUPPLY_PIN 1u
#define SUPPLY_CHANNEL 1u

static uint32_t supply_filtered; /* raw ADC counts << 4, an exponential average */

static void pin_input_pull_up(pin_t p)
{
    uint32_t shift = 2u * p.pin;
    GPIO_MODER(p.port) = (GPIO_MODER(p.port) & ~(3u << shift)) | (GPIO_MODE_INPUT << shift);
    GPIO_PUPDR(p.port) = (GPIO_PUPDR(p.port) & ~(3u << shift)) | (GPIO_PULL_UP << shift);
}

static bool pin_high(pin_t p) { return (GPIO_IDR(p.port) >> p.pin) & 1u; }

/* One conversion, waiting at most ~1 ms for it; 0 if the ADC did not answer. */
static uint32_t adc_convert_blocking(void)
{
    ADC1_CR2 |= ADC_CR2_SWSTART;
    for (uint32_t i = 0; i < 20000u && !(ADC1_SR & ADC_SR_EOC); i++) {
    }
    return (ADC1_SR & ADC_SR_EOC) ? (ADC1_DR & 0xFFFu) : 0u;
}

void inputs_init(uint32_t core_hz, uint16_t seats)
{
    (void)core_hz; /* the ADC runs at PCLK2 / 2 (reset value): at most 12.5 MHz here */
    (void)seats;   /* every seat pin gets its pull-up: an unused one reads free */
    rcc_enable(&RCC_AHB1ENR, RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN);
    for (size_t i = 0; i < SEAT_PINS; i++) {
        pin_input_pull_up(seat_pins[i]);
    }
    pin_input_pull_up(beam_pins[0]);
    pin_input_pull_up(beam_pins[1]);
    pin_input_pull_up(door_pin);

    GPIO_MODER(SUPPLY_PORT) |= GPIO_MODE_ANALOG << (2u * SUPPLY_PIN);
    rcc_enable(&RCC_APB2ENR, RCC_APB2ENR_ADC1EN);
    ADC1_SMPR2 = 7u << (3u * SUPPLY_CHANNEL); /* 480 cycles: the divider is high-impedance */
    ADC1_SQR1 = 0;                            /* one conversion per sequence */
    ADC1_SQR3 = SUPPLY_CHANNEL;
    ADC1_CR2 = ADC_CR2_ADON;
    for (volatile uint32_t i = 0; i < 1000u; i++) {
        /* tSTAB, the ADC's power-up time (3 us) */
    }
    supply_filtered = adc_convert_blocking() << 4;
    ADC1_CR2 |= ADC_CR2_SWSTART;
}

void inputs_poll(uint32_t now_ms)
{
    (void)now_ms;
    if (ADC1_SR & ADC_SR_EOC) {
        uint32_t raw = ADC1_DR & 0xFFFu;
        /* An average over ~16 conversions: the divider picks up the mains hum of a long
         * supply cable; a supply fault is judged over seconds anyway. */
        supply_filtered = supply_filtered - (supply_filtered >> 4) + raw;
        ADC1_CR2 |= ADC_CR2_SWSTART;
    }
}

uint32_t inputs_entropy(void)
{
    uint32_t h = 0;
    for (uint32_t i = 0; i < 32u; i++) {
        h = (h << 1 | h >> 31) ^ adc_convert_blocking(); /* the noisy low bits */
    }
    ADC1_CR2 |= ADC_CR2_SWSTART;
    return h;
}

bool hal_seat_raw(uint16_t index)
{
    if (index < 1u || index > SEAT_PINS) {
        return false;
    }
    return pin_high(seat_pins[index - 1u]) != QIHE_SEAT_ACTIVE_LOW;
}

/* No presence channel is wired on the Black Pill (a radar module would take a pin per seat
 * here): nobody is ever there, and the board runs with presence_seats 0. */
bool hal_presence_raw(uint16_t index)
{
    (void)index;
    return false;
}

bool hal_beam_raw(uint8_t beam)
{
    if (beam > 1u) {
        return false;
    }
    return pin_high(beam_pins[beam]) != QIHE_BEAM_ACTIVE_LOW;
}

bool hal_door_raw(void) { return pin_high(door_pin) == QIHE_DOOR_OPEN_HIGH; }

uint16_t hal_supply_mv(void)
{
    uint32_t raw = supply_filtered >> 4;
    uint32_t mv = raw * VDDA_MV * QIHE_SUPPLY_DIVIDER_NUM / (4095u * QIHE_SUPPLY_DIVIDER_DEN);
    return (uint16_t)(mv > 65535u ? 65535u : mv);
}

#endif
