/*
 * Metrics: descriptor table checks, the emitter, Prometheus text and JSON
 * renderings, and the latency histogram. See include/sluice/metrics.h.
 *
 * Pure: no I/O, no clock, no locks; an emitter lives on one thread.
 */
#include "sluice/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- histogram ---------------------------------------------------------- */

#define BOUND_ENTRY(b) (uint64_t)(b),
const uint64_t sl_hist_bounds_us[SL_HIST_FINITE] = {
    SL_HIST_BOUNDS_US(BOUND_ENTRY)};
#undef BOUND_ENTRY

void sl_hist_reset(sl_hist *h)
{
    memset(h, 0, sizeof(*h));
}

/* Index of the bucket holding us: the first bound >= us, or the +Inf
 * bucket. */
static size_t hist_bucket(uint64_t us)
{
    size_t lo = 0, hi = SL_HIST_FINITE; /* answer in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (us <= sl_hist_bounds_us[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void sl_hist_record(sl_hist *h, uint64_t us)
{
    h->counts[hist_bucket(us)]++;
    h->count++;
    h->sum_us += us;
}

void sl_hist_merge(sl_hist *dst, const sl_hist *src)
{
    for (size_t i = 0; i < SL_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->count += src->count;
    dst->sum_us += src->sum_us;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

void sl_hist_sub(sl_hist *out, const sl_hist *now, const sl_hist *then)
{
    uint64_t count = 0;
    for (size_t i = 0; i < SL_HIST_BUCKETS; i++) {
        out->counts[i] = sub0(now->counts[i], then->counts[i]);
        count += out->counts[i];
    }
    /* The count is the sum of the buckets even when a bucket went
     * backwards, so quantiles stay consistent. */
    out->count = count;
    out->sum_us = sub0(now->sum_us, then->sum_us);
}

double sl_hist_quantile(const sl_hist *h, double q)
{
    double rank, below = 0, start, end, in_bucket;
    size_t b;

    if (h->count == 0 || !(q >= 0.0 && q <= 1.0))
        return NAN;
    rank = q * (double)h->count;
    /* First bucket whose cumulative count reaches the rank; for rank 0,
     * the first non-empty bucket (histogram_quantile() would divide 0 by
     * 0 there). */
    for (b = 0; b < SL_HIST_BUCKETS; b++) {
        double cum = below + (double)h->counts[b];
        if (h->counts[b] > 0 && cum >= rank)
            break;
        below = cum;
    }
    if (b >= SL_HIST_FINITE) /* +Inf bucket (or rounding past the end) */
        return (double)sl_hist_bounds_us[SL_HIST_FINITE - 1] / 1e6;
    start = b == 0 ? 0.0 : (double)sl_hist_bounds_us[b - 1];
    end = (double)sl_hist_bounds_us[b];
    in_bucket = (double)h->counts[b];
    return (start + (end - start) * ((rank - below) / in_bucket)) / 1e6;
}

/* ---- descriptor table --------------------------------------------------- */

size_t sl_metric_desc_nlabels(const sl_metric_desc *d)
{
    size_t n = 0;
    while (n < SL_METRIC_MAX_LABELS && d->labels[n] != NULL)
        n++;
    return n;
}

static bool name_ok(const char *s, bool colon)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '_' || (colon && c == ':');
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static const char *const type_names[] = {"counter", "gauge", "histogram"};

#define CHECK_FAIL(...)                                                   \
    do {                                                                  \
        snprintf(err, errlen, __VA_ARGS__);                               \
        return SL_E_CONFIG;                                               \
    } while (0)

int sl_metrics_table_check(const sl_metric_desc *table, size_t n, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const sl_metric_desc *d = &table[i];
        const char *name = d->name ? d->name : "(null)";
        size_t nl = sl_metric_desc_nlabels(d);

        if (!name_ok(d->name, true))
            CHECK_FAIL("metrics table entry %zu: name \"%s\" is not a valid "
                       "metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", i, name);
        if ((unsigned)d->type > SL_METRIC_HISTOGRAM)
            CHECK_FAIL("metrics table entry %zu (%s): type %d is not "
                       "counter, gauge or histogram", i, name, (int)d->type);
        if (d->help == NULL || d->help[0] == '\0')
            CHECK_FAIL("metrics table entry %zu (%s): help text expected",
                       i, name);
        if (d->type == SL_METRIC_COUNTER && !ends_with(d->name, "_total"))
            CHECK_FAIL("metrics table entry %zu (%s): a counter's name must "
                       "end in _total", i, name);
        if (d->labels[SL_METRIC_MAX_LABELS] != NULL)
            CHECK_FAIL("metrics table entry %zu (%s): more than %d labels",
                       i, name, SL_METRIC_MAX_LABELS);
        for (size_t l = 0; l < SL_METRIC_MAX_LABELS; l++)
            if (l > nl && d->labels[l] != NULL)
                CHECK_FAIL("metrics table entry %zu (%s): label names must "
                           "be contiguous, NULL-terminated", i, name);
        for (size_t l = 0; l < nl; l++) {
            const char *ln = d->labels[l];
            if (!name_ok(ln, false) || strncmp(ln, "__", 2) == 0)
                CHECK_FAIL("metrics table entry %zu (%s): label \"%s\" is "
                           "not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                           "not starting with __)", i, name, ln);
            if (d->type == SL_METRIC_HISTOGRAM && strcmp(ln, "le") == 0)
                CHECK_FAIL("metrics table entry %zu (%s): a histogram "
                           "cannot have a label named le", i, name);
            for (size_t k = 0; k < l; k++)
                if (strcmp(d->labels[k], ln) == 0)
                    CHECK_FAIL("metrics table entry %zu (%s): label \"%s\" "
                               "appears twice", i, name, ln);
        }
        for (size_t j = 0; j < i; j++) {
            const sl_metric_desc *o = &table[j];
            if (strcmp(o->name, d->name) == 0)
                CHECK_FAIL("metrics table entry %zu: name \"%s\" already "
                           "used by entry %zu", i, name, j);
            /* A histogram's series names must not clash either. */
            for (int pass = 0; pass < 2; pass++) {
                const sl_metric_desc *h = pass ? o : d, *x = pass ? d : o;
                size_t hl = strlen(h->name);
                if (h->type != SL_METRIC_HISTOGRAM ||
                    strncmp(x->name, h->name, hl) != 0)
                    continue;
                if (strcmp(x->name + hl, "_bucket") == 0 ||
                    strcmp(x->name + hl, "_sum") == 0 ||
                    strcmp(x->name + hl, "_count") == 0)
                    CHECK_FAIL("metrics table entries %zu and %zu: \"%s\" "
                               "clashes with histogram \"%s\"'s series", j,
                               i, x->name, h->name);
            }
        }
    }
    return 0;
}

/* ---- emitter ------------------------------------------------------------ */

/* One series, in one allocation: this struct, the label pointers, the
 * histogram (histograms only), then the label strings. */
typedef struct series {
    size_t seq;          /* emit order, to keep the first of duplicates */
    double value;        /* counters and gauges */
    sl_hist *hist;       /* histograms: points into this allocation */
    const char **labels; /* nlabels pointers into this allocation */
} series;

typedef struct family {
    series **v;
    size_t n, cap;
    bool sorted; /* sorted and de-duplicated since the last emit */
} family;

struct sl_metrics {
    const sl_metric_desc *table; /* borrowed; outlives the emitter */
    size_t n;
    family *fams; /* one per table entry */
    size_t seq;
    size_t dropped;
};

sl_metrics *sl_metrics_new(const sl_metric_desc *table, size_t n)
{
    char err[256];
    sl_metrics *em;

    if (sl_metrics_table_check(table, n, err, sizeof(err)) != 0) {
        fprintf(stderr, "sluice: invalid metrics table: %s\n", err);
        abort();
    }
    em = sl_calloc(1, sizeof(*em));
    em->table = table;
    em->n = n;
    em->fams = sl_calloc(n ? n : 1, sizeof(*em->fams));
    return em;
}

void sl_metrics_reset(sl_metrics *em)
{
    for (size_t i = 0; i < em->n; i++) {
        family *f = &em->fams[i];
        for (size_t j = 0; j < f->n; j++)
            sl_free(f->v[j]);
        f->n = 0;
        f->sorted = false;
    }
    em->seq = 0;
    em->dropped = 0;
}

void sl_metrics_free(sl_metrics *em)
{
    if (em == NULL)
        return;
    sl_metrics_reset(em);
    for (size_t i = 0; i < em->n; i++)
        sl_free(em->fams[i].v);
    sl_free(em->fams);
    sl_free(em);
}

size_t sl_metrics_dropped(const sl_metrics *em)
{
    return em->dropped;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there
 * are not one (overlong forms, surrogates and code points above U+10FFFF
 * are invalid). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : 0xBF;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Copies s to dst (if not NULL) replacing each byte that does not start a
 * valid UTF-8 sequence by U+FFFD; returns the length of the result. The
 * reads of s[1..3] stop at the NUL, which never is a continuation byte. */
static size_t utf8_sanitize(const char *s, char *dst)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        size_t k = utf8_seq(p);
        if (k == 0) {
            if (dst)
                memcpy(dst + n, "\xEF\xBF\xBD", 3);
            n += 3;
            p++;
        } else {
            if (dst)
                memcpy(dst + n, p, k);
            n += k;
            p += k;
        }
    }
    return n;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static void check_emit(sl_metrics *em, const sl_metric_desc *desc,
                       size_t nlabels, bool hist)
{
    size_t want;
    /* Compare addresses as integers: relational operators on pointers
     * into different arrays are undefined. */
    uintptr_t p = (uintptr_t)desc, lo = (uintptr_t)em->table;
    if (desc == NULL || p < lo || p >= lo + em->n * sizeof(*desc) ||
        (p - lo) % sizeof(*desc) != 0) {
        /* A descriptor from another table is still a valid object, so
         * its name can be printed. */
        fprintf(stderr,
                "sluice: metrics: descriptor %s is not in the emitter's "
                "table\n",
                desc && desc->name ? desc->name : "(null)");
        abort();
    }
    want = sl_metric_desc_nlabels(desc);
    if (want != nlabels) {
        fprintf(stderr,
                "sluice: metrics: %s takes %zu label values, %zu given\n",
                desc->name, want, nlabels);
        abort();
    }
    if (hist != (desc->type == SL_METRIC_HISTOGRAM)) {
        fprintf(stderr, "sluice: metrics: %s is a %s, emitted with %s\n",
                desc->name, type_names[desc->type],
                hist ? "sl_metrics_emit_hist" : "sl_metrics_emit");
        abort();
    }
}

static void emit(sl_metrics *em, const sl_metric_desc *desc, double value,
                 const sl_hist *hist, const char *const *labels,
                 size_t nlabels)
{
    family *f;
    series *s;
    size_t size, lens[SL_METRIC_MAX_LABELS], off;
    char *mem, *str;

    check_emit(em, desc, nlabels, hist != NULL);
    size = align8(sizeof(series)) + align8(nlabels * sizeof(char *));
    off = size;
    if (hist)
        size += sizeof(sl_hist);
    for (size_t i = 0; i < nlabels; i++) {
        lens[i] = utf8_sanitize(labels[i] ? labels[i] : "", NULL);
        size += lens[i] + 1;
    }
    mem = sl_malloc(size);
    s = (series *)mem;
    s->seq = em->seq++;
    s->value = value;
    s->labels = (const char **)(mem + align8(sizeof(series)));
    s->hist = NULL;
    if (hist) {
        s->hist = (sl_hist *)(mem + off);
        *s->hist = *hist;
        off += sizeof(sl_hist);
    }
    str = mem + off;
    for (size_t i = 0; i < nlabels; i++) {
        utf8_sanitize(labels[i] ? labels[i] : "", str);
        str[lens[i]] = '\0';
        s->labels[i] = str;
        str += lens[i] + 1;
    }

    f = &em->fams[desc - em->table];
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->v = sl_realloc(f->v, f->cap * sizeof(*f->v));
    }
    f->v[f->n++] = s;
    f->sorted = false;
}

void sl_metrics_emitv(sl_metrics *em, const sl_metric_desc *desc,
                      double value, const char *const *labels,
                      size_t nlabels)
{
    emit(em, desc, value, NULL, labels, nlabels);
}

void sl_metrics_emit_histv(sl_metrics *em, const sl_metric_desc *desc,
                           const sl_hist *hist, const char *const *labels,
                           size_t nlabels)
{
    static const sl_hist empty;
    emit(em, desc, 0, hist ? hist : &empty, labels, nlabels);
}

/* qsort context: the number of labels of the family being sorted. qsort
 * has no context argument; the emitter is single-threaded by contract. */
static size_t sort_nlabels;

static int series_labels_cmp(const series *a, const series *b)
{
    for (size_t i = 0; i < sort_nlabels; i++) {
        int c = strcmp(a->labels[i], b->labels[i]);
        if (c)
            return c;
    }
    return 0;
}

static int series_cmp(const void *pa, const void *pb)
{
    const series *a = *(series *const *)pa, *b = *(series *const *)pb;
    int c = series_labels_cmp(a, b);
    if (c)
        return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sorts every family by label values and drops repeated series (keeping
 * the first emitted). */
static void finalize(sl_metrics *em)
{
    for (size_t i = 0; i < em->n; i++) {
        family *f = &em->fams[i];
        size_t out = 0;
        if (f->sorted)
            continue;
        sort_nlabels = sl_metric_desc_nlabels(&em->table[i]);
        if (f->n > 1)
            qsort(f->v, f->n, sizeof(*f->v), series_cmp);
        for (size_t j = 0; j < f->n; j++) {
            if (out > 0 && series_labels_cmp(f->v[out - 1], f->v[j]) == 0) {
                sl_free(f->v[j]);
                em->dropped++;
                continue;
            }
            f->v[out++] = f->v[j];
        }
        f->n = out;
        f->sorted = true;
    }
}

size_t sl_metrics_format_double(double v, char *buf, size_t buflen)
{
    int n;
    if (isnan(v))
        n = snprintf(buf, buflen, "NaN");
    else if (isinf(v))
        n = snprintf(buf, buflen, v > 0 ? "+Inf" : "-Inf");
    else {
        n = snprintf(buf, buflen, "%.15g", v);
        if (strtod(buf, NULL) != v)
            n = snprintf(buf, buflen, "%.17g", v);
    }
    if (n < 0)
        n = 0;
    return (size_t)n < buflen ? (size_t)n : buflen - 1;
}

/* ---- Prometheus text ---------------------------------------------------- */

static void wr_str(sl_wr *w, const char *s)
{
    sl_wr_raw(w, s, strlen(s));
}

static void wr_double(sl_wr *w, double v)
{
    char buf[40];
    size_t n = sl_metrics_format_double(v, buf, sizeof(buf));
    sl_wr_raw(w, buf, n);
}

static void wr_u64(sl_wr *w, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    sl_wr_raw(w, buf, (size_t)n);
}

/* Exposition escaping: HELP text escapes \ and newline; label values also
 * escape ". */
static void wr_escaped(sl_wr *w, const char *s, bool quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            wr_str(w, "\\\\");
        else if (*p == '\n')
            wr_str(w, "\\n");
        else if (quote && *p == '"')
            wr_str(w, "\\\"");
        else
            sl_wr_u8(w, (uint8_t)*p);
    }
}

/* name{l1="v1",l2="v2"[,le="x"]} — or just name without labels. */
static void wr_series_name(sl_wr *w, const sl_metric_desc *d,
                           const char *suffix, const series *s,
                           const char *le)
{
    size_t nl = sl_metric_desc_nlabels(d);
    wr_str(w, d->name);
    wr_str(w, suffix);
    if (nl == 0 && le == NULL)
        return;
    sl_wr_u8(w, '{');
    for (size_t i = 0; i < nl; i++) {
        if (i)
            sl_wr_u8(w, ',');
        wr_str(w, d->labels[i]);
        wr_str(w, "=\"");
        wr_escaped(w, s->labels[i], true);
        sl_wr_u8(w, '"');
    }
    if (le) {
        if (nl)
            sl_wr_u8(w, ',');
        wr_str(w, "le=\"");
        wr_str(w, le);
        sl_wr_u8(w, '"');
    }
    sl_wr_u8(w, '}');
}

void sl_metrics_render_prometheus(sl_metrics *em, sl_wr *w)
{
    finalize(em);
    for (size_t i = 0; i < em->n; i++) {
        const sl_metric_desc *d = &em->table[i];
        const family *f = &em->fams[i];
        if (f->n == 0)
            continue;
        wr_str(w, "# HELP ");
        wr_str(w, d->name);
        sl_wr_u8(w, ' ');
        wr_escaped(w, d->help, false);
        wr_str(w, "\n# TYPE ");
        wr_str(w, d->name);
        sl_wr_u8(w, ' ');
        wr_str(w, type_names[d->type]);
        sl_wr_u8(w, '\n');
        for (size_t j = 0; j < f->n; j++) {
            const series *s = f->v[j];
            if (d->type != SL_METRIC_HISTOGRAM) {
                wr_series_name(w, d, "", s, NULL);
                sl_wr_u8(w, ' ');
                wr_double(w, s->value);
                sl_wr_u8(w, '\n');
                continue;
            }
            uint64_t cum = 0;
            for (size_t b = 0; b < SL_HIST_BUCKETS; b++) {
                char le[40];
                cum += s->hist->counts[b];
                if (b < SL_HIST_FINITE)
                    sl_metrics_format_double(
                        (double)sl_hist_bounds_us[b] / 1e6, le, sizeof(le));
                else
                    snprintf(le, sizeof(le), "+Inf");
                wr_series_name(w, d, "_bucket", s, le);
                sl_wr_u8(w, ' ');
                wr_u64(w, cum);
                sl_wr_u8(w, '\n');
            }
            wr_series_name(w, d, "_sum", s, NULL);
            sl_wr_u8(w, ' ');
            wr_double(w, (double)s->hist->sum_us / 1e6);
            sl_wr_u8(w, '\n');
            wr_series_name(w, d, "_count", s, NULL);
            sl_wr_u8(w, ' ');
            wr_u64(w, s->hist->count);
            sl_wr_u8(w, '\n');
        }
    }
}

/* ---- JSON --------------------------------------------------------------- */

/* A number as JSON: integers exactly representable as such, other finite
 * values as reals, non-finite as null. */
static json_t *json_num(double v)
{
    if (!isfinite(v))
        return json_null();
    /* |v| < 2^53 first, so the cast is defined; no libm needed. */
    if ((v < 0 ? -v : v) < 9007199254740992.0 && v == (double)(int64_t)v)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *json_hist(const sl_hist *h)
{
    json_t *o = json_object(), *buckets = json_array(), *q = json_object();
    uint64_t cum = 0;
    for (size_t b = 0; b < SL_HIST_BUCKETS; b++) {
        json_t *e = json_object();
        char le[40] = "+Inf";
        cum += h->counts[b];
        /* The bound as the text format writes it (and as Prometheus' own
         * JSON API does): a string, so "+Inf" fits the same type. */
        if (b < SL_HIST_FINITE)
            sl_metrics_format_double((double)sl_hist_bounds_us[b] / 1e6, le,
                                     sizeof(le));
        json_object_set_new(e, "le", json_string(le));
        json_object_set_new(e, "count", json_integer((json_int_t)cum));
        json_array_append_new(buckets, e);
    }
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    json_object_set_new(o, "sum", json_num((double)h->sum_us / 1e6));
    json_object_set_new(o, "buckets", buckets);
    json_object_set_new(q, "p50", json_num(sl_hist_quantile(h, 0.50)));
    json_object_set_new(q, "p90", json_num(sl_hist_quantile(h, 0.90)));
    json_object_set_new(q, "p99", json_num(sl_hist_quantile(h, 0.99)));
    json_object_set_new(o, "quantiles", q);
    return o;
}

json_t *sl_metrics_render_json(sl_metrics *em)
{
    json_t *root = json_object(), *fams = json_array();

    finalize(em);
    for (size_t i = 0; i < em->n; i++) {
        const sl_metric_desc *d = &em->table[i];
        const family *f = &em->fams[i];
        size_t nl = sl_metric_desc_nlabels(d);
        json_t *jf, *jl, *js;
        if (f->n == 0)
            continue;
        jf = json_object();
        jl = json_array();
        js = json_array();
        for (size_t l = 0; l < nl; l++)
            json_array_append_new(jl, json_string(d->labels[l]));
        for (size_t j = 0; j < f->n; j++) {
            const series *s = f->v[j];
            json_t *sample, *labels = json_object();
            /* Label values were sanitized to valid UTF-8 when emitted, so
             * json_string cannot fail on them. */
            for (size_t l = 0; l < nl; l++)
                json_object_set_new(labels, d->labels[l],
                                    json_string(s->labels[l]));
            if (s->hist) {
                sample = json_hist(s->hist);
            } else {
                sample = json_object();
                json_object_set_new(sample, "value", json_num(s->value));
            }
            json_object_set_new(sample, "labels", labels);
            json_array_append_new(js, sample);
        }
        json_object_set_new(jf, "name", json_string(d->name));
        json_object_set_new(jf, "type", json_string(type_names[d->type]));
        json_object_set_new(jf, "help", json_string(d->help));
        json_object_set_new(jf, "labels", jl);
        json_object_set_new(jf, "samples", js);
        json_array_append_new(fams, jf);
    }
    json_object_set_new(root, "families", fams);
    return root;
}
