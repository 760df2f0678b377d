/* The event-line simulator (events.h). */
#include "events.h"

static bool reached(uint32_t now, uint32_t at) { return (int32_t)(now - at) >= 0; }

void sim_init(sim_t *s, uint16_t seats)
{
    uint8_t *p = (uint8_t *)s;
    for (size_t i = 0; i < sizeof *s; i++)
        p[i] = 0;
    s->seats = seats > BOARD_MAX_SEATS ? BOARD_MAX_SEATS : seats;
    s->supply_mv = SIM_DEFAULT_SUPPLY_MV;
    s->beam_step_ms = SIM_BEAM_STEP_MS;
}

/* -- words ------------------------------------------------------------------------------ */

typedef struct {
    const char *p;
    size_t n;
} word_t;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Up to max words of line; returns how many there are (max + 1 when there are more). */
static size_t split(const char *line, size_t len, word_t *words, size_t max)
{
    size_t count = 0, i = 0;
    while (i < len) {
        while (i < len && is_space(line[i]))
            i++;
        if (i >= len)
            break;
        size_t start = i;
        while (i < len && !is_space(line[i]))
            i++;
        if (count == max)
            return max + 1;
        words[count].p = line + start;
        words[count].n = i - start;
        count++;
    }
    return count;
}

static bool is(word_t w, const char *text)
{
    size_t i = 0;
    for (; i < w.n; i++)
        if (text[i] == '\0' || text[i] != w.p[i])
            return false;
    return text[i] == '\0';
}

/* A decimal number 0..max. */
static bool number(word_t w, uint32_t max, uint32_t *out)
{
    if (w.n == 0 || w.n > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < w.n; i++) {
        char c = w.p[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10u + (uint64_t)(c - '0');
    }
    if (v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool level(word_t w, bool *out)
{
    if (is(w, "1") || is(w, "0")) {
        *out = is(w, "1");
        return true;
    }
    return false;
}

/* -- lines ------------------------------------------------------------------------------ */

static void refuse(sim_t *s, const char *line, size_t len, const char *why)
{
    s->errors++;
    if (s->error != NULL)
        s->error(s->ctx, line, len, why);
}

static void start_crossing(sim_t *s, bool in, uint32_t now)
{
    s->cross_in = in;
    s->beam[in ? 0 : 1] = true; /* step 0 now */
    s->cross_step = 1;
    s->cross_next_ms = now + s->beam_step_ms;
}

static void run_line(sim_t *s, const char *line, size_t len, uint32_t now)
{
    word_t w[4];
    size_t n = split(line, len, w, 3);
    if (n == 0 || (w[0].n > 0 && w[0].p[0] == '#'))
        return;
    uint32_t v;
    bool on;
    if (is(w[0], "seat")) {
        if (n != 3 || !number(w[1], s->seats, &v) || v == 0 || !level(w[2], &on))
            return refuse(s, line, len, "expected: seat INDEX 1|0 (INDEX 1..seats)");
        s->seat[v] = on;
    } else if (is(w[0], "presence")) {
        if (n != 3 || !number(w[1], s->seats, &v) || v == 0 || !level(w[2], &on))
            return refuse(s, line, len, "expected: presence INDEX 1|0 (INDEX 1..seats)");
        s->presence[v] = on;
    } else if (is(w[0], "beam")) {
        if (n == 2 && (is(w[1], "in") || is(w[1], "out")))
            start_crossing(s, is(w[1], "in"), now);
        else if (n == 3 && (is(w[1], "outer") || is(w[1], "inner")) && level(w[2], &on))
            s->beam[is(w[1], "outer") ? 0 : 1] = on;
        else
            return refuse(s, line, len, "expected: beam in|out, or beam outer|inner 1|0");
    } else if (is(w[0], "door")) {
        if (n != 2 || !(is(w[1], "open") || is(w[1], "closed")))
            return refuse(s, line, len, "expected: door open|closed");
        s->door = is(w[1], "open");
    } else if (is(w[0], "supply")) {
        if (n != 2 || !number(w[1], 0xFFFFu, &v))
            return refuse(s, line, len, "expected: supply MILLIVOLTS (0..65535)");
        s->supply_mv = (uint16_t)v;
    } else if (is(w[0], "wait")) {
        if (n != 2 || !number(w[1], 86400000u, &v))
            return refuse(s, line, len, "expected: wait MILLISECONDS (0..86400000)");
        s->waiting = v > 0;
        s->wait_until_ms = now + v;
    } else if (s->other == NULL || !s->other(s->ctx, line, len)) {
        return refuse(s, line, len, "unknown event");
    }
    s->lines++;
}

/* -- time ------------------------------------------------------------------------------- */

void sim_run(sim_t *s, uint32_t now_ms)
{
    while (s->cross_step > 0 && reached(now_ms, s->cross_next_ms)) {
        /* in: outer on (step 0), inner on, outer off, inner off; out: the mirror image */
        uint8_t first = s->cross_in ? 0 : 1, second = (uint8_t)(1 - first);
        switch (s->cross_step) {
        case 1: s->beam[second] = true; break;
        case 2: s->beam[first] = false; break;
        case 3: s->beam[second] = false; break;
        default: break;
        }
        /* step 4 changes nothing: the pair stays clear one step before the next line */
        s->cross_step = s->cross_step == 4 ? 0 : (uint8_t)(s->cross_step + 1);
        s->cross_next_ms += s->beam_step_ms;
    }
    if (s->waiting && reached(now_ms, s->wait_until_ms))
        s->waiting = false;
}

bool sim_busy(const sim_t *s, uint32_t now_ms)
{
    return s->cross_step > 0 || (s->waiting && !reached(now_ms, s->wait_until_ms));
}

size_t sim_feed(sim_t *s, const uint8_t *data, size_t len, uint32_t now_ms)
{
    size_t used = 0;
    sim_run(s, now_ms);
    while (used < len && !sim_busy(s, now_ms)) {
        char c = (char)data[used++];
        if (c != '\n') {
            if (s->line_len < SIM_LINE_MAX)
                s->line[s->line_len++] = c;
            else
                s->line_too_long = true;
            continue;
        }
        if (s->line_too_long)
            refuse(s, s->line, s->line_len, "line too long");
        else
            run_line(s, s->line, s->line_len, now_ms);
        s->line_len = 0;
        s->line_too_long = false;
    }
    return used;
}
