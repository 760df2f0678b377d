/*
 * core/hal.h on an STM32F4: the clock, SysTick as the millisecond clock, USART1 as the
 * link to the gateway, the boot number, the identify LED, reset and the watchdog.
 *
 * Clock. The real board (WeAct Black Pill, STM32F401/F411, 25 MHz crystal) runs straight
 * from the crystal (HSE, 25 MHz, no PLL): the firmware needs little CPU, the UART divider
 * is exact (25 MHz / 115200 = 217.0), flash needs no wait states, and there is no PLL to
 * get wrong. If the crystal does not start within a few tens of milliseconds the board
 * stays on the internal 16 MHz RC oscillator (HSI, factory-trimmed to about 1 % at room
 * temperature: enough for a UART, if not a cold shed). QEMU 7.2 does not
 * model the RCC (its registers read 0) and clocks the CPU, hence SysTick, at a fixed
 * 168 MHz: the QEMU build (QIHE_QEMU=1) leaves the RCC alone and counts on that.
 *
 * Link: USART1, PA9 TX / PA10 RX (AF7), 115200 8N1. In QEMU's netduinoplus2 USART1 is
 * the first -serial (serial_hd(0), hw/arm/stm32f405_soc.c).
 */
#include "hal.h"
#include "port_arm.h"
#include "stm32f4.h"

#ifndef QIHE_HSE_HZ
#define QIHE_HSE_HZ 25000000u /* the WeAct Black Pill's crystal */
#endif
#define HSI_HZ 16000000u
#define QEMU_SYSCLK_HZ 168000000u /* hw/arm/netduinoplus2.c SYSCLK_FRQ */
#define LINK_BAUD 115200u

static uint32_t core_hz = HSI_HZ;
static volatile uint32_t millis;
static uint32_t boot_number;
static bool boot_drawn;

static uint8_t link_rx[256];
static uint8_t link_tx[1024];
static uart_t link;

uint32_t hal_core_hz(void) { return core_hz; }

static void clock_init(void)
{
#if QIHE_QEMU
    core_hz = QEMU_SYSCLK_HZ;
#else
    RCC_CR |= RCC_CR_HSEON;
    for (uint32_t i = 0; i < 100000u && !(RCC_CR & RCC_CR_HSERDY); i++) {
    }
    if (RCC_CR & RCC_CR_HSERDY) {
        /* AHB, APB1 and APB2 prescalers stay at /1 (reset value): 25 MHz is within all. */
        RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_HSE;
        for (uint32_t i = 0; i < 100000u && (RCC_CFGR & RCC_CFGR_SWS_MASK) != RCC_CFGR_SWS_HSE;
             i++) {
        }
        if ((RCC_CFGR & RCC_CFGR_SWS_MASK) == RCC_CFGR_SWS_HSE) {
            core_hz = QIHE_HSE_HZ;
        }
    }
    if (core_hz != QIHE_HSE_HZ) {
        RCC_CR &= ~RCC_CR_HSEON; /* no crystal: stay on HSI */
    }
#endif
}

void SysTick_Handler(void) { millis++; }

uint32_t hal_millis(void) { return millis; }

void USART1_IRQHandler(void) { uart_isr(&link); }

size_t hal_link_write(const uint8_t *data, size_t len)
{
    uart_write(&link, data, len);
    return len;
}

size_t hal_link_read(uint8_t *out, size_t max) { return uart_read(&link, out, max); }

/* -- the boot number ---------------------------------------------------------------------
 *
 * Neither chip family helps: the F401 and F411 have no RNG, and QEMU's F405 model leaves
 * the RNG unimplemented. So the number mixes what differs from one reset to the next:
 *   - 64 bytes of RAM no one initialises (.noinit in stm32f405.ld): SRAM powers up in a
 *     random state, and across a warm reset (REBOOT, watchdog, fault) it still holds the
 *     previous boot's number and a reset count, so consecutive boots always differ;
 *   - the reset-cause flags (RCC_CSR) and the chip's 96-bit unique id, so two boards powered
 *     up together differ;
 *   - timing jitter: how many passes a loop makes while SysTick counts 8 ms, and SysTick's
 *     counter after each (in QEMU virtual time follows the host's clock while the loop's
 *     speed does not, so this is where a fresh QEMU gets its randomness; on the chip both
 *     run off one clock and it adds little);
 *   - on the real board the least significant bits of ADC readings (inputs_entropy).
 * A boot whose number equals the previous boot's (checked through .noinit) takes the next.
 *
 * .noinit also keeps the report interval across a warm reset (hal_keep_interval), so a
 * SET_REPORT_INTERVAL outlives REBOOT and the watchdog, as on the Python emulator and the
 * host port, but not a power cut: the firmware never writes flash.
 */
#define NOINIT_MAGIC 0x51484231u /* "QHB1" */

typedef struct {
    uint32_t magic;
    uint32_t boot;     /* the previous boot's number */
    uint32_t resets;   /* boots since .noinit was last found without the magic */
    uint32_t interval; /* hal_keep_interval: seconds | ~seconds << 16 */
    uint32_t pool[12];
} noinit_t;
_Static_assert(sizeof(noinit_t) == 64, "stm32f405.ld reserves 64 bytes of .noinit");

extern uint32_t _snoinit[];

static uint32_t mix(uint32_t h, uint32_t word)
{
    h ^= word;
    h *= 0x01000193u; /* FNV prime */
    return h ^ (h >> 15);
}

static uint32_t finish(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

static uint32_t draw_boot_number(void)
{
    volatile noinit_t *state = (volatile noinit_t *)_snoinit;
    const volatile uint32_t *words = (const volatile uint32_t *)_snoinit;
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < sizeof(noinit_t) / 4u; i++) {
        h = mix(h, words[i]);
    }
    h = mix(h, RCC_CSR);
    RCC_CSR |= RCC_CSR_RMVF;
    /* The unique id lives in system memory, which QEMU does not map (a read there faults):
     * read it only where the RCC answers, as a chip's always does (HSI is ready after any
     * reset) and QEMU's, unmodelled, never does. So the board's image boots in QEMU too. */
    if (RCC_CR & RCC_CR_HSIRDY) {
        for (uint32_t i = 0; i < 3u; i++) {
            h = mix(h, UID_WORD(i));
        }
    }
    for (uint32_t i = 0; i < 8u; i++) {
        /* Loop passes in one millisecond, and where in it SysTick stands afterwards. */
        uint32_t passes = 0;
        for (uint32_t start = millis; millis == start;) {
            passes++;
        }
        h = mix(h, passes);
        h = mix(h, SYST_CVR);
    }
    h = mix(h, inputs_entropy());
    h = finish(h);

    bool known = state->magic == NOINIT_MAGIC;
    if (known && h == state->boot) {
        h++;
    }
    if (!known) {
        state->interval = 0; /* power-up: SRAM holds noise, not a kept interval */
    }
    state->resets = known ? state->resets + 1u : 0u;
    state->boot = h;
    for (size_t i = 0; i < 12u; i++) {
        state->pool[i] = mix(state->pool[i], h + (uint32_t)i);
    }
    state->magic = NOINIT_MAGIC;
    return h;
}

/* Drawn at the first call (board_init's), once the inputs are set up for their noise. */
uint32_t hal_boot_number(void)
{
    if (!boot_drawn) {
        boot_number = draw_boot_number();
        boot_drawn = true;
    }
    return boot_number;
}

void hal_keep_interval(uint16_t seconds)
{
    ((volatile noinit_t *)_snoinit)->interval = seconds | (uint32_t)(uint16_t)~seconds << 16;
}

uint16_t hal_kept_interval(void)
{
    (void)hal_boot_number(); /* .noinit checked first: at power-up it holds noise */
    uint32_t word = ((volatile noinit_t *)_snoinit)->interval;
    uint16_t seconds = (uint16_t)word;
    return (uint16_t)(word >> 16) == (uint16_t)~seconds ? seconds : 0u;
}

/* -- LED, reset, watchdog ----------------------------------------------------------------- */

/* The Black Pill's blue LED, PC13, lit when low. QEMU ignores GPIO writes. */
#define LED_PIN 13u

static void led_init(void)
{
    rcc_enable(&RCC_AHB1ENR, RCC_AHB1ENR_GPIOCEN);
    GPIO_BSRR(GPIOC_BASE) = 1u << LED_PIN; /* off */
    GPIO_MODER(GPIOC_BASE) = (GPIO_MODER(GPIOC_BASE) & ~(3u << (2u * LED_PIN)))
                             | (GPIO_MODE_OUTPUT << (2u * LED_PIN));
}

void hal_led(bool on) { GPIO_BSRR(GPIOC_BASE) = on ? 1u << (LED_PIN + 16u) : 1u << LED_PIN; }

void hal_reboot(void)
{
    uart_flush(&link, 100); /* the ACK before the reset must leave first */
    data_sync_barrier();
    SCB_AIRCR = SCB_AIRCR_VECTKEY | (SCB_AIRCR & SCB_AIRCR_PRIGROUP_MASK) | SCB_AIRCR_SYSRESETREQ;
    data_sync_barrier();
    for (;;) {
    }
}

/* The independent watchdog (its own ~32 kHz RC oscillator): /256 and 1000 counts, ~8 s.
 * Generous on purpose: a resend burst of a full window keeps the main loop in
 * hal_link_write for a few hundred milliseconds at 115200 baud. Once started it cannot be stopped; openocd's
 * stm32f4x target freezes it while the core is halted in a debugger. QEMU 7.2 does not
 * model it (writes are ignored). */
static void watchdog_init(void)
{
    IWDG_KR = 0xCCCCu; /* start (and the LSI with it): ~0.5 s at the reset values */
    IWDG_KR = 0x5555u; /* unlock PR and RLR */
    IWDG_PR = 6u;      /* /256 */
    IWDG_RLR = 1000u;
    for (uint32_t i = 0; i < 100000u && IWDG_SR != 0u; i++) {
        /* the values cross into the LSI's domain: a few of its cycles */
    }
    IWDG_KR = 0xAAAAu; /* reload with them */
}

void hal_watchdog_kick(void) { IWDG_KR = 0xAAAAu; }

void hal_idle(void) { wait_for_interrupt(); }

/* -- start-up ------------------------------------------------------------------------------ */

void hal_init(void)
{
    irq_disable_all();
    clock_init();
    SYST_RVR = core_hz / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE;

    rcc_enable(&RCC_AHB1ENR, RCC_AHB1ENR_GPIOAEN);
    rcc_enable(&RCC_APB2ENR, RCC_APB2ENR_USART1EN);
    /* PA9 (TX) and PA10 (RX) to alternate function 7, USART1; RX pulled up (idle high
     * when the cable is out, so an unplugged line reads no garbage). */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~((3u << 18) | (3u << 20)))
                             | (GPIO_MODE_AF << 18) | (GPIO_MODE_AF << 20);
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~((0xFu << 4) | (0xFu << 8)))
                            | (7u << 4) | (7u << 8);
    GPIO_PUPDR(GPIOA_BASE) = (GPIO_PUPDR(GPIOA_BASE) & ~(3u << 20)) | (GPIO_PULL_UP << 20);
    uart_init(&link, USART1_BASE, link_rx, sizeof link_rx, link_tx, sizeof link_tx, false,
              core_hz, LINK_BAUD, USART1_IRQn);

    led_init();
    irq_enable_all();
    watchdog_init();
}
