/*
 * Recent events, for the status page and /v1/status: what the operator
 * should see on a timeline beside the rates. Sluice's own (a broker's
 * pressure limit beginning or ending, a connector paused, resumed or given
 * an override, a policy reload) and annotations posted by people or
 * scripts (POST /v1/annotations, as in Grafana).
 *
 * A fixed ring of the last SL_EVENTS_MAX events; an event's text is cut at
 * SL_EVENT_TEXT_MAX - 1 bytes (at a UTF-8 boundary). Pure: time is a
 * parameter; the owner's thread only (the server's loop).
 */
#ifndef SLUICE_EVENTS_H
#define SLUICE_EVENTS_H

#include "sluice/common.h"

#include <stdarg.h>
#include <stddef.h>

#define SL_EVENTS_MAX 64
#define SL_EVENT_KIND_MAX 16
#define SL_EVENT_TEXT_MAX 200

typedef struct sl_event {
    int64_t wall_ms;              /* Unix time */
    uint64_t seq;                 /* 1, 2, ...: order of arrival */
    char kind[SL_EVENT_KIND_MAX]; /* "pressure", "operator", "policy",
                                     "annotation" */
    char text[SL_EVENT_TEXT_MAX];
} sl_event;

typedef struct sl_events {
    sl_event ring[SL_EVENTS_MAX];
    uint64_t total; /* events ever added; ring[(total - 1) % MAX] is last */
} sl_events;

/* Adds an event (the oldest is dropped when the ring is full). */
void sl_events_add(sl_events *ev, int64_t wall_ms, const char *kind,
                   const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void sl_events_vadd(sl_events *ev, int64_t wall_ms, const char *kind,
                    const char *fmt, va_list ap);

/* How many are kept, and the i-th of them, oldest first. */
size_t sl_events_count(const sl_events *ev);
const sl_event *sl_events_at(const sl_events *ev, size_t i);

#endif
