/* Debounce and beam-pair direction (inputs.h). */
#include "inputs.h"

void in_debounce_init(in_debounce_t *d, bool level, uint32_t now_ms)
{
    d->since = now_ms;
    d->raw = level;
    d->stable = level;
}

bool in_debounce_update(in_debounce_t *d, bool raw, uint32_t now_ms, uint16_t debounce_ms)
{
    if (raw != d->raw) {
        d->raw = raw;
        d->since = now_ms;
    }
    if (d->raw == d->stable || (uint32_t)(now_ms - d->since) < debounce_ms)
        return false;
    d->stable = d->raw;
    return true;
}

enum { IDLE = 0, OUTER = 1, INNER = 2, BOTH = 3 };

/* Position of a state along the sequence of a direction: 0 idle, 1..3 in order. */
static const uint8_t POS_IN[4] = {[IDLE] = 0, [OUTER] = 1, [BOTH] = 2, [INNER] = 3};
static const uint8_t POS_OUT[4] = {[IDLE] = 0, [INNER] = 1, [BOTH] = 2, [OUTER] = 3};

static uint8_t state_of(bool outer, bool inner)
{
    return (uint8_t)((outer ? OUTER : 0) | (inner ? INNER : 0));
}

void in_beams_init(in_beams_t *c, bool outer, bool inner)
{
    c->state = state_of(outer, inner);
    c->dir = 0;
    c->stage = 0;
    c->invalid = c->state != IDLE; /* someone in the doorway at power-up: not counted */
}

in_cross_t in_beams_update(in_beams_t *c, bool outer, bool inner)
{
    uint8_t s = state_of(outer, inner);
    if (s == c->state)
        return IN_CROSS_NONE;
    c->state = s;
    if (s == IDLE) {
        in_cross_t done = IN_CROSS_NONE;
        if (!c->invalid && c->stage == 3)
            done = c->dir > 0 ? IN_CROSS_IN : IN_CROSS_OUT;
        c->dir = 0;
        c->stage = 0;
        c->invalid = false;
        return done;
    }
    if (c->invalid)
        return IN_CROSS_NONE;
    if (c->dir == 0) { /* leaving idle: the first beam blocked tells the direction */
        if (s == OUTER || s == INNER) {
            c->dir = s == OUTER ? 1 : -1;
            c->stage = 1;
        } else {
            c->invalid = true; /* both at once: no direction */
        }
        return IN_CROSS_NONE;
    }
    uint8_t pos = c->dir > 0 ? POS_IN[s] : POS_OUT[s];
    if (pos == c->stage + 1 || pos + 1 == c->stage)
        c->stage = pos;
    else
        c->invalid = true;
    return IN_CROSS_NONE;
}
