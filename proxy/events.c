/* Recent events (see include/sluice/events.h). */
#include "sluice/events.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Cuts s (NUL-terminated, at most cap - 1 bytes) back to a UTF-8 boundary
 * when vsnprintf truncated it inside a character. */
static void trim_utf8(char *s, size_t len)
{
    size_t i = len;

    /* Back over continuation bytes to the lead byte of the last char. */
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0 && ((unsigned char)s[i - 1] & 0x80)) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (len - (i - 1) < need)
            s[i - 1] = '\0';
    }
}

void sl_events_vadd(sl_events *ev, int64_t wall_ms, const char *kind,
                    const char *fmt, va_list ap)
{
    sl_event *e = &ev->ring[ev->total % SL_EVENTS_MAX];
    int n;

    e->wall_ms = wall_ms;
    e->seq = ++ev->total;
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    n = vsnprintf(e->text, sizeof(e->text), fmt, ap);
    if (n >= (int)sizeof(e->text))
        trim_utf8(e->text, sizeof(e->text) - 1);
}

void sl_events_add(sl_events *ev, int64_t wall_ms, const char *kind,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sl_events_vadd(ev, wall_ms, kind, fmt, ap);
    va_end(ap);
}

size_t sl_events_count(const sl_events *ev)
{
    return ev->total < SL_EVENTS_MAX ? (size_t)ev->total : SL_EVENTS_MAX;
}

const sl_event *sl_events_at(const sl_events *ev, size_t i)
{
    size_t n = sl_events_count(ev);

    if (i >= n)
        return NULL;
    return &ev->ring[(ev->total - n + i) % SL_EVENTS_MAX];
}
