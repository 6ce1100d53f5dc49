/*
 * Metrics: ONE descriptor table per program, one emitter, two renderings.
 *
 * The daemon declares every metric family it exposes exactly once, in a
 * table of sl_metric_desc (name, type, help, label names). At scrape time
 * it creates an emitter bound to that table, its collect callbacks emit
 * samples into it (sl_metrics_emit / sl_metrics_emit_hist), and the same
 * emitted data is rendered as Prometheus text exposition format 0.0.4
 * (GET /metrics) and as JSON (the /v1/ views). There is no second list of
 * names per output format (HAProxy's stat columns feeding both Prometheus
 * and its CSV/JSON views are the model).
 *
 * What the API makes impossible:
 *  - emitting a family that is not in the emitter's table: the descriptor
 *    is passed by pointer and must point INTO the table the emitter was
 *    created with (checked; a stray descriptor aborts with a message — it
 *    is a programming error found by the first test that scrapes);
 *  - emitting the wrong number of label values: the emit macros count
 *    their arguments at compile time and the count is checked against the
 *    descriptor (abort likewise);
 *  - an invalid exposition: the table is validated when the emitter is
 *    created (metric and label names, counters ending in _total, no "le"
 *    label on histograms, no duplicate names), label values are escaped and
 *    invalid UTF-8 is replaced by U+FFFD, and a series emitted twice with
 *    the same label values is dropped (counted, see sl_metrics_dropped) so
 *    the output never holds a duplicate series.
 *
 * Output order is deterministic: families in table order, series sorted by
 * their label values (byte order). Families with no samples are omitted
 * from both renderings.
 *
 * Declaring a table (an X-macro list gives the ids and the table from one
 * place; labels are a list of names, or NULL for none):
 *
 *   #define MY_METRICS(X)                                                  \
 *       X(M_BYTES, "sluice_connector_bytes_total", COUNTER,                \
 *         "Bytes of record batches received.", "connector", "class")       \
 *       X(M_CONNS, "sluice_client_connections", GAUGE,                     \
 *         "Open client connections.", NULL)
 *   enum { MY_METRICS(SL_METRIC_ENUM) M__COUNT };
 *   static const sl_metric_desc my_table[] = { MY_METRICS(SL_METRIC_DESC) };
 *
 *   sl_metrics *em = sl_metrics_new(my_table, M__COUNT);
 *   sl_metrics_emit(em, &my_table[M_BYTES], 1234, "cdc", "fragile");
 *   sl_metrics_emit(em, &my_table[M_CONNS], 3);
 *   sl_metrics_render_prometheus(em, &wr);   // or sl_metrics_render_json
 *   sl_metrics_free(em);
 *
 * This module is pure: no I/O, no clock, no locks. An emitter belongs to
 * the thread that created it (the loop thread in the daemon).
 *
 * Histogram: sl_hist is a fixed-bucket latency histogram recorded in
 * microseconds (integers, no floating point on the hot path), merged and
 * subtracted bucket-wise, and read as quantiles with the same linear
 * interpolation Prometheus' histogram_quantile() uses, so the status page
 * and a Grafana panel over the same data agree. Not thread-safe: each
 * histogram is recorded on one thread (the loop thread).
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sluice/buf.h"
#include "sluice/common.h"

/* ---- latency histogram ------------------------------------------------- */

/* Upper bounds of the finite buckets, in microseconds, from 0.25 ms to
 * 30 s: 1, 1.5, 2, 3, 5, 7.5 per decade (a roughly geometric series with
 * ratios between 1.33 and 2, so an interpolated quantile is off by less
 * than one bucket width, and every "le" label reads as a round number).
 * One more bucket, +Inf, catches the rest. */
#define SL_HIST_BOUNDS_US(X)                                              \
    X(250) X(500) X(750)                                                  \
    X(1000) X(1500) X(2000) X(3000) X(5000) X(7500)                       \
    X(10000) X(15000) X(20000) X(30000) X(50000) X(75000)                 \
    X(100000) X(150000) X(200000) X(300000) X(500000) X(750000)           \
    X(1000000) X(1500000) X(2000000) X(3000000) X(5000000) X(7500000)     \
    X(10000000) X(15000000) X(20000000) X(30000000)

#define SL__HIST_COUNT_ONE(b) +1
/* Finite buckets (31); counts[SL_HIST_FINITE] is the +Inf bucket. */
#define SL_HIST_FINITE (0 SL_HIST_BOUNDS_US(SL__HIST_COUNT_ONE))
#define SL_HIST_BUCKETS (SL_HIST_FINITE + 1)

/* The bucket bounds in microseconds, ascending; SL_HIST_FINITE entries. */
extern const uint64_t sl_hist_bounds_us[SL_HIST_FINITE];

typedef struct sl_hist {
    /* Per-bucket (not cumulative) counts: counts[i] holds observations v
     * with bounds[i-1] < v <= bounds[i]; counts[SL_HIST_FINITE] those
     * above the last bound. */
    uint64_t counts[SL_HIST_BUCKETS];
    uint64_t count;  /* observations */
    uint64_t sum_us; /* sum of observations, microseconds */
} sl_hist;

/* A zeroed sl_hist is an empty histogram; this is the same. */
void sl_hist_reset(sl_hist *h);
/* Records one observation of us microseconds. O(log buckets). */
void sl_hist_record(sl_hist *h, uint64_t us);
/* dst += src, bucket-wise (e.g. folding per-partition histograms into a
 * broker's). */
void sl_hist_merge(sl_hist *dst, const sl_hist *src);
/* out = now - then, bucket-wise: the observations recorded between two
 * snapshots of the same histogram (a windowed view for the status page).
 * A bucket that went backwards (then is not an earlier snapshot of now)
 * counts as 0. out may alias now. */
void sl_hist_sub(sl_hist *out, const sl_hist *now, const sl_hist *then);
/* The q-quantile (0 <= q <= 1), in SECONDS, interpolated linearly inside
 * the bucket holding the rank q*count, the first bucket starting at 0
 * (histogram_quantile()'s rule). When the rank falls in the +Inf bucket the
 * largest finite bound (30 s) is returned. NaN for an empty histogram or q
 * outside [0, 1]. */
double sl_hist_quantile(const sl_hist *h, double q);

/* ---- descriptor table -------------------------------------------------- */

typedef enum sl_metric_type {
    SL_METRIC_COUNTER,   /* monotonic; the name ends in _total */
    SL_METRIC_GAUGE,
    SL_METRIC_HISTOGRAM, /* emitted with sl_metrics_emit_hist only */
} sl_metric_type;

#define SL_METRIC_MAX_LABELS 4

typedef struct sl_metric_desc {
    const char *name;  /* [a-zA-Z_:][a-zA-Z0-9_:]* */
    sl_metric_type type;
    const char *help;  /* one line; escaped on output */
    /* Label names, NULL-terminated (at most SL_METRIC_MAX_LABELS):
     * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", never "le" on a
     * histogram. Values are bounded sets (connector, class, broker, reason,
     * error code): never per-connection or per-record, never secrets. */
    const char *labels[SL_METRIC_MAX_LABELS + 1];
} sl_metric_desc;

/* X-macro helpers (see the example at the top): an entry is
 * X(ID, "name", COUNTER|GAUGE|HISTOGRAM, "help", label names... | NULL). */
#define SL_METRIC_ENUM(id, name, type, help, ...) id,
#define SL_METRIC_DESC(id, name, type, help, ...)                         \
    {name, SL_METRIC_##type, help, {__VA_ARGS__}},

/* Validates a table: names and label names well-formed and unique, label
 * counts within bounds, counters ending in _total, histograms without an
 * "le" label, help present. Returns 0, or SL_E_CONFIG with a message naming
 * the entry (index and name) and what was expected. Pure; any thread. */
int sl_metrics_table_check(const sl_metric_desc *table, size_t n, char *err,
                           size_t errlen);

/* Number of label names of a descriptor. */
size_t sl_metric_desc_nlabels(const sl_metric_desc *d);

/* ---- emitter ----------------------------------------------------------- */

typedef struct sl_metrics sl_metrics;

/* A collect callback: emits the current values of whatever it owns. Runs on
 * the thread that owns both that state and the emitter (the loop thread). */
typedef void (*sl_metrics_collect_fn)(sl_metrics *em, void *ud);

/* Creates an emitter bound to table[0..n). The table is borrowed: it must
 * outlive the emitter (in practice a static const array). An invalid table
 * aborts with sl_metrics_table_check's message: tables are static, so this
 * is a programming error that every test catches. */
sl_metrics *sl_metrics_new(const sl_metric_desc *table, size_t n);
/* Frees the emitter and every sample it holds. */
void sl_metrics_free(sl_metrics *em);
/* Drops all samples, keeping the table (reuse across scrapes). */
void sl_metrics_reset(sl_metrics *em);

/* Emits one sample of a counter or gauge family. desc must point into the
 * emitter's table and the number of label values must match its label
 * names (both checked; abort on mismatch). Label values are copied: the
 * caller keeps ownership of its strings. A NULL label value is emitted as
 * "". value may be any double (NaN and infinities are rendered as NaN,
 * +Inf, -Inf in Prometheus text and null in JSON). */
#define sl_metrics_emit(em, desc, value, ...)                             \
    sl_metrics_emitv((em), (desc), (value),                               \
                     SL__METRIC_LABELS(__VA_ARGS__),                      \
                     SL__METRIC_NLABELS(__VA_ARGS__))
/* Emits one histogram series; the histogram is copied. */
#define sl_metrics_emit_hist(em, desc, hist, ...)                         \
    sl_metrics_emit_histv((em), (desc), (hist),                           \
                          SL__METRIC_LABELS(__VA_ARGS__),                 \
                          SL__METRIC_NLABELS(__VA_ARGS__))

/* Array forms of the above, for label values computed at run time. */
void sl_metrics_emitv(sl_metrics *em, const sl_metric_desc *desc,
                      double value, const char *const *labels,
                      size_t nlabels);
void sl_metrics_emit_histv(sl_metrics *em, const sl_metric_desc *desc,
                           const sl_hist *hist, const char *const *labels,
                           size_t nlabels);

/* Series dropped because the same family and label values were emitted
 * more than once (the first one emitted wins). Counted at render time. A
 * collect callback bug, worth a warning in the daemon's log. */
size_t sl_metrics_dropped(const sl_metrics *em);

/* Appends the Prometheus text exposition (format 0.0.4; serve it as
 * "text/plain; version=0.0.4; charset=utf-8") of everything emitted so far
 * to w. Families in table order, each with one HELP and one TYPE line;
 * histograms as _bucket{le=...} (cumulative, ending with le="+Inf"), _sum
 * and _count, in seconds. */
void sl_metrics_render_prometheus(sl_metrics *em, sl_wr *w);

/* Returns a new JSON object (the caller owns the reference) holding the
 * same data:
 *   {"families": [{"name": "...", "type": "counter", "help": "...",
 *                  "labels": ["connector", "class"],
 *                  "samples": [{"labels": {"connector": "cdc", ...},
 *                               "value": 123}]}]}
 * A histogram sample has, instead of "value": "count", "sum" (seconds),
 * "buckets": [{"le": "0.00025", "count": <cumulative>}, ..., {"le": "+Inf",
 * "count": <count>}] (le as a string, as in the text format) and "quantiles": {"p50": s, "p90": s, "p99": s}
 * (seconds; null when empty). Non-finite values are null. */
json_t *sl_metrics_render_json(sl_metrics *em);

/* Formats a double the way both renderings do: the shortest of %.15g and
 * %.17g that reads back exactly, "+Inf", "-Inf" or "NaN". Returns the
 * length written (buf of at least 32 bytes). */
size_t sl_metrics_format_double(double v, char *buf, size_t buflen);

/* -- internals of the emit macros: a compound literal of the label values
 * after a placeholder, so that zero labels works too; its size gives the
 * count at compile time. */
#define SL__METRIC_LABELS(...)                                            \
    ((const char *const[]){NULL, ##__VA_ARGS__} + 1)
#define SL__METRIC_NLABELS(...)                                           \
    (sizeof((const char *const[]){NULL, ##__VA_ARGS__}) /                 \
         sizeof(const char *) - 1)

#endif
