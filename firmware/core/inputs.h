/*
 * Input conditioning, free of the protocol: debounce of a contact (seat mat, reed, door,
 * one beam of the entrance pair) and the direction of a crossing of the beam pair.
 */
#ifndef QIHE_INPUTS_H
#define QIHE_INPUTS_H

#include <stdbool.h>
#include <stdint.h>

/* A level counts once it has held debounce_ms without a change (time-based, so the result
 * does not depend on how often it is sampled). */
typedef struct {
    uint32_t since; /* when the raw level last changed */
    bool raw;       /* the last raw sample */
    bool stable;    /* the debounced level */
} in_debounce_t;

void in_debounce_init(in_debounce_t *d, bool level, uint32_t now_ms);
/* Sample the raw level; true when the debounced level changed (read it in d->stable). */
bool in_debounce_update(in_debounce_t *d, bool raw, uint32_t now_ms, uint16_t debounce_ms);

/*
 * The entrance's beam pair, outer (street side) and inner (room side), both debounced.
 * A person walking in blocks outer, then both, then inner only, then neither:
 *
 *     in:   -- -> O- -> OI -> -I -> --        out:  -- -> -I -> OI -> O- -> --
 *
 * A crossing counts when both beams are clear again after the whole sequence, in order.
 * Stepping back along it is allowed (someone hesitating in the doorway); turning round and
 * leaving the way one came, a jump that skips a state (both beams changing in one sample)
 * or a pair found blocked at power-up counts nothing.
 */
typedef enum { IN_CROSS_NONE = 0, IN_CROSS_IN, IN_CROSS_OUT } in_cross_t;

typedef struct {
    uint8_t state;   /* bit 0 outer blocked, bit 1 inner blocked */
    int8_t dir;      /* +1 walking in, -1 walking out, 0 idle */
    uint8_t stage;   /* 1..3 along the sequence of dir */
    bool invalid;    /* nothing counts until both beams are clear */
} in_beams_t;

void in_beams_init(in_beams_t *c, bool outer, bool inner);
/* The debounced levels now; IN_CROSS_IN / IN_CROSS_OUT when a crossing just completed. */
in_cross_t in_beams_update(in_beams_t *c, bool outer, bool inner);

#endif
