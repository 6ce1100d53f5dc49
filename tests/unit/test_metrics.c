/*
 * Unit tests for proxy/metrics.c: table checks, the Prometheus text and
 * JSON renderings of the same emitted data (exact bytes), escaping, and the
 * latency histogram against hand-computed vectors.
 *
 * With SL_METRICS_SAMPLE_OUT=<file> in the environment, the exposition of a
 * table with the daemon's metric names is also written there, for
 * `promtool check metrics`.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sl_test.h"
#include "sluice/metrics.h"

#define ASSERT_NEAR(a, b, eps)                                            \
    do {                                                                  \
        double a_ = (a), b_ = (b);                                        \
        if (!(fabs(a_ - b_) <= (eps)))                                    \
            SL__FAIL("%s ~= %s: %.17g != %.17g", #a, #b, a_, b_);         \
    } while (0)

/* ---- a small table ------------------------------------------------------ */

#define SMALL(X)                                                          \
    X(S_BYTES, "t_bytes_total", COUNTER,                                  \
      "Bytes in; a \\ backslash\nand a \"newline\".", "connector", "class") \
    X(S_CONNS, "t_connections", GAUGE, "Open connections.", NULL)         \
    X(S_LAT, "t_latency_seconds", HISTOGRAM, "Produce latency.", "broker")

enum { SMALL(SL_METRIC_ENUM) S__COUNT };
static const sl_metric_desc small[] = {SMALL(SL_METRIC_DESC)};

static char *render(sl_metrics *em)
{
    sl_wr w;
    sl_wr_init(&w, 64);
    sl_metrics_render_prometheus(em, &w);
    sl_wr_u8(&w, 0);
    return (char *)sl_wr_release(&w, NULL);
}

static void fill_small(sl_metrics *em)
{
    sl_hist h;
    sl_hist_reset(&h);
    sl_hist_record(&h, 400);      /* 0.4 ms: le 0.0005 */
    sl_hist_record(&h, 1000);     /* 1 ms: le 0.001 (bounds inclusive) */
    sl_hist_record(&h, 2000000);  /* 2 s: le 2 */
    sl_hist_record(&h, 40000000); /* 40 s: +Inf only */

    /* Emitted out of order on purpose: the output is sorted. */
    sl_metrics_emit(em, &small[S_BYTES], 5, "zeta", "bulk");
    sl_metrics_emit(em, &small[S_BYTES], 1234, "a\"b\\c\nd", "fragile");
    sl_metrics_emit(em, &small[S_BYTES], 0.1, "bad\xff", "bulk");
    sl_metrics_emit(em, &small[S_CONNS], 3);
    sl_metrics_emit_hist(em, &small[S_LAT], &h, "1");
}

static const char small_expected[] =
    "# HELP t_bytes_total Bytes in; a \\\\ backslash\\nand a \"newline\".\n"
    "# TYPE t_bytes_total counter\n"
    "t_bytes_total{connector=\"a\\\"b\\\\c\\nd\",class=\"fragile\"} 1234\n"
    "t_bytes_total{connector=\"bad\xEF\xBF\xBD\",class=\"bulk\"} 0.1\n"
    "t_bytes_total{connector=\"zeta\",class=\"bulk\"} 5\n"
    "# HELP t_connections Open connections.\n"
    "# TYPE t_connections gauge\n"
    "t_connections 3\n"
    "# HELP t_latency_seconds Produce latency.\n"
    "# TYPE t_latency_seconds histogram\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.00025\"} 0\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.0005\"} 1\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.00075\"} 1\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.001\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.0015\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.002\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.003\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.005\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.0075\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.01\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.015\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.02\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.03\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.05\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.075\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.1\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.15\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.2\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.3\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.5\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"0.75\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"1\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"1.5\"} 2\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"2\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"3\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"5\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"7.5\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"10\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"15\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"20\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"30\"} 3\n"
    "t_latency_seconds_bucket{broker=\"1\",le=\"+Inf\"} 4\n"
    "t_latency_seconds_sum{broker=\"1\"} 42.0014\n"
    "t_latency_seconds_count{broker=\"1\"} 4\n";

static void test_exposition_exact(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    char *text;
    fill_small(em);
    text = render(em);
    ASSERT_STREQ(text, small_expected);
    ASSERT_EQ(sl_metrics_dropped(em), 0);
    sl_free(text);
    /* Rendering twice gives the same bytes (finalize is idempotent). */
    text = render(em);
    ASSERT_STREQ(text, small_expected);
    sl_free(text);
    sl_metrics_free(em);
}

static void test_empty_families_omitted_and_reset(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    char *text = render(em);
    json_t *j;
    ASSERT_STREQ(text, "");
    sl_free(text);
    sl_metrics_emit(em, &small[S_CONNS], 7);
    text = render(em);
    ASSERT_STREQ(text, "# HELP t_connections Open connections.\n"
                       "# TYPE t_connections gauge\n"
                       "t_connections 7\n");
    sl_free(text);
    sl_metrics_reset(em);
    text = render(em);
    ASSERT_STREQ(text, "");
    sl_free(text);
    j = sl_metrics_render_json(em);
    text = json_dumps(j, JSON_COMPACT);
    ASSERT_STREQ(text, "{\"families\":[]}");
    free(text);
    json_decref(j);
    sl_metrics_free(em);
}

static void test_duplicates_dropped(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    char *text;
    sl_metrics_emit(em, &small[S_BYTES], 1, "a", "x");
    sl_metrics_emit(em, &small[S_BYTES], 2, "b", "x");
    sl_metrics_emit(em, &small[S_BYTES], 3, "a", "x"); /* dropped */
    sl_metrics_emit(em, &small[S_CONNS], 1);
    sl_metrics_emit(em, &small[S_CONNS], 2); /* dropped */
    text = render(em);
    ASSERT_STREQ(text,
                 "# HELP t_bytes_total Bytes in; a \\\\ backslash\\nand a "
                 "\"newline\".\n"
                 "# TYPE t_bytes_total counter\n"
                 "t_bytes_total{connector=\"a\",class=\"x\"} 1\n"
                 "t_bytes_total{connector=\"b\",class=\"x\"} 2\n"
                 "# HELP t_connections Open connections.\n"
                 "# TYPE t_connections gauge\n"
                 "t_connections 1\n");
    ASSERT_EQ(sl_metrics_dropped(em), 2);
    sl_free(text);
    sl_metrics_free(em);
}

static void test_json_view(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    json_t *j, *fams, *lat, *s0;
    char *text;

    fill_small(em);
    j = sl_metrics_render_json(em);
    fams = json_object_get(j, "families");
    ASSERT_EQ(json_array_size(fams), 3);

    /* Counter and gauge families, byte for byte (keys sorted for the
     * comparison; integers stay integers, 0.1 stays 0.1). */
    text = json_dumps(json_array_get(fams, 0), JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_STREQ(text,
                 "{\"help\":\"Bytes in; a \\\\ backslash\\nand a "
                 "\\\"newline\\\".\",\"labels\":[\"connector\",\"class\"],"
                 "\"name\":\"t_bytes_total\",\"samples\":["
                 "{\"labels\":{\"class\":\"fragile\",\"connector\":"
                 "\"a\\\"b\\\\c\\nd\"},\"value\":1234},"
                 "{\"labels\":{\"class\":\"bulk\",\"connector\":"
                 "\"bad\xEF\xBF\xBD\"},\"value\":0.10000000000000001},"
                 "{\"labels\":{\"class\":\"bulk\",\"connector\":\"zeta\"},"
                 "\"value\":5}],\"type\":\"counter\"}");
    free(text);
    text = json_dumps(json_array_get(fams, 1), JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_STREQ(text, "{\"help\":\"Open connections.\",\"labels\":[],"
                       "\"name\":\"t_connections\",\"samples\":[{\"labels\":"
                       "{},\"value\":3}],\"type\":\"gauge\"}");
    free(text);

    /* The histogram: same buckets as the text, cumulative. */
    lat = json_array_get(fams, 2);
    ASSERT_STREQ(json_string_value(json_object_get(lat, "type")),
                 "histogram");
    s0 = json_array_get(json_object_get(lat, "samples"), 0);
    ASSERT_STREQ(json_string_value(json_object_get(
                     json_object_get(s0, "labels"), "broker")),
                 "1");
    ASSERT_EQ(json_integer_value(json_object_get(s0, "count")), 4);
    ASSERT_NEAR(json_real_value(json_object_get(s0, "sum")), 42.0014, 1e-12);
    {
        json_t *b = json_object_get(s0, "buckets");
        ASSERT_EQ(json_array_size(b), SL_HIST_BUCKETS);
        ASSERT_STREQ(json_string_value(json_object_get(json_array_get(b, 1),
                                                       "le")),
                     "0.0005");
        ASSERT_EQ(json_integer_value(
                      json_object_get(json_array_get(b, 1), "count")),
                  1);
        ASSERT_EQ(json_integer_value(
                      json_object_get(json_array_get(b, 23), "count")),
                  3); /* le 2 */
        ASSERT_STREQ(json_string_value(json_object_get(
                         json_array_get(b, SL_HIST_FINITE), "le")),
                     "+Inf");
        ASSERT_EQ(json_integer_value(json_object_get(
                      json_array_get(b, SL_HIST_FINITE), "count")),
                  4);
    }
    {
        /* p50: rank 2 is reached in the le=0.001 bucket, which holds one
         * observation above the rank-1 mark: 0.00075 + 0.00025 * 1/1. */
        json_t *q = json_object_get(s0, "quantiles");
        ASSERT_NEAR(json_real_value(json_object_get(q, "p50")), 0.001,
                    1e-12);
        /* p90/p99 fall in +Inf: the largest finite bound. */
        ASSERT_NEAR(json_number_value(json_object_get(q, "p99")), 30, 0);
    }
    json_decref(j);
    sl_metrics_free(em);
}

static void test_nonfinite_values(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    char *text;
    json_t *j;
    sl_metrics_emit(em, &small[S_BYTES], NAN, "n", "c");
    sl_metrics_emit(em, &small[S_BYTES], INFINITY, "p", "c");
    sl_metrics_emit(em, &small[S_BYTES], -INFINITY, "q", "c");
    sl_metrics_emit(em, &small[S_BYTES], 1e21, "r", "c");
    sl_metrics_emit(em, &small[S_BYTES], 12345678901234567.0, "s", "c");
    text = render(em);
    ASSERT_TRUE(strstr(text, "{connector=\"n\",class=\"c\"} NaN\n") != NULL);
    ASSERT_TRUE(strstr(text, "{connector=\"p\",class=\"c\"} +Inf\n") != NULL);
    ASSERT_TRUE(strstr(text, "{connector=\"q\",class=\"c\"} -Inf\n") != NULL);
    ASSERT_TRUE(strstr(text, "{connector=\"r\",class=\"c\"} 1e+21\n") != NULL);
    ASSERT_TRUE(strstr(text, "{connector=\"s\",class=\"c\"} "
                             "12345678901234568\n") != NULL);
    sl_free(text);
    j = sl_metrics_render_json(em);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    ASSERT_TRUE(strstr(text, "\"connector\":\"n\"},\"value\":null") != NULL);
    ASSERT_TRUE(strstr(text, "\"connector\":\"p\"},\"value\":null") != NULL);
    free(text);
    json_decref(j);
    sl_metrics_free(em);
}

static void test_format_double(void)
{
    char b[40];
    ASSERT_EQ(sl_metrics_format_double(0, b, sizeof(b)), 1);
    ASSERT_STREQ(b, "0");
    sl_metrics_format_double(0.1, b, sizeof(b));
    ASSERT_STREQ(b, "0.1");
    sl_metrics_format_double(1.0 / 3.0, b, sizeof(b));
    ASSERT_STREQ(b, "0.33333333333333331"); /* %.15g would not read back */
    sl_metrics_format_double(-2.5e-7, b, sizeof(b));
    ASSERT_STREQ(b, "-2.5e-07");
    sl_metrics_format_double(18446744073709551616.0, b, sizeof(b));
    ASSERT_STREQ(b, "1.8446744073709552e+19"); /* %.15g loses it */
}

/* ---- table checks ------------------------------------------------------- */

static void expect_bad(const sl_metric_desc *t, size_t n, const char *needle)
{
    char err[256] = "";
    ASSERT_EQ(sl_metrics_table_check(t, n, err, sizeof(err)), SL_E_CONFIG);
    if (strstr(err, needle) == NULL)
        SL__FAIL("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_table_check(void)
{
    char err[256];
    ASSERT_EQ(sl_metrics_table_check(small, S__COUNT, err, sizeof(err)), 0);
    {
        static const sl_metric_desc t[] = {
            {"9bad", SL_METRIC_GAUGE, "h", {NULL}}};
        expect_bad(t, 1, "not a valid metric name");
    }
    {
        static const sl_metric_desc t[] = {
            {"x_bytes", SL_METRIC_COUNTER, "h", {NULL}}};
        expect_bad(t, 1, "end in _total");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_GAUGE, "", {NULL}}};
        expect_bad(t, 1, "help text expected");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_HISTOGRAM, "h", {"broker", "le"}}};
        expect_bad(t, 1, "label named le");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_GAUGE, "h", {"a-b"}}};
        expect_bad(t, 1, "not a valid label name");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_GAUGE, "h", {"__reserved"}}};
        expect_bad(t, 1, "not a valid label name");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_GAUGE, "h", {"a", "a"}}};
        expect_bad(t, 1, "appears twice");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_GAUGE, "h", {"a", NULL, "b"}}};
        expect_bad(t, 1, "contiguous");
    }
    {
        static const sl_metric_desc t[] = {
            {"x", SL_METRIC_GAUGE, "h", {NULL}},
            {"x", SL_METRIC_GAUGE, "h", {NULL}}};
        expect_bad(t, 2, "already used by entry 0");
    }
    {
        static const sl_metric_desc t[] = {
            {"lat_count", SL_METRIC_GAUGE, "h", {NULL}},
            {"lat", SL_METRIC_HISTOGRAM, "h", {NULL}}};
        expect_bad(t, 2, "clashes with histogram");
    }
}

/* ---- misuse aborts (checked in a child process) ------------------------- */

static const sl_metric_desc other[] = {
    {"t_connections", SL_METRIC_GAUGE, "Same name, other table.", {NULL}}};

static bool aborts(void (*fn)(void))
{
    int status;
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        /* Quiet child: the abort message is expected. */
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(3);
        fn();
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return false;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void misuse_foreign_desc(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    sl_metrics_emit(em, &other[0], 1);
}

static void misuse_label_count(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    sl_metrics_emit(em, &small[S_BYTES], 1, "only-one");
}

static void misuse_hist_as_value(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    sl_metrics_emit(em, &small[S_LAT], 1, "1");
}

static void misuse_invalid_table(void)
{
    static const sl_metric_desc t[] = {
        {"x_bytes", SL_METRIC_COUNTER, "h", {NULL}}};
    sl_metrics_new(t, 1);
}

static void well_used(void)
{
    sl_metrics *em = sl_metrics_new(small, S__COUNT);
    sl_metrics_emit(em, &small[S_CONNS], 1);
    sl_metrics_free(em);
}

static void test_misuse_aborts(void)
{
    ASSERT_TRUE(aborts(misuse_foreign_desc));
    ASSERT_TRUE(aborts(misuse_label_count));
    ASSERT_TRUE(aborts(misuse_hist_as_value));
    ASSERT_TRUE(aborts(misuse_invalid_table));
    ASSERT_TRUE(!aborts(well_used)); /* the harness itself can fail */
}

/* ---- histogram ---------------------------------------------------------- */

static void test_hist_buckets(void)
{
    sl_hist h;
    sl_hist_reset(&h);
    ASSERT_EQ(SL_HIST_FINITE, 31);
    ASSERT_EQ(sl_hist_bounds_us[0], 250);
    ASSERT_EQ(sl_hist_bounds_us[SL_HIST_FINITE - 1], 30000000);
    for (size_t i = 1; i < SL_HIST_FINITE; i++) {
        double ratio = (double)sl_hist_bounds_us[i] /
                       (double)sl_hist_bounds_us[i - 1];
        ASSERT_TRUE(ratio > 1.3 && ratio <= 2.0);
    }
    sl_hist_record(&h, 0);        /* bucket 0 */
    sl_hist_record(&h, 250);      /* bucket 0: bounds are inclusive */
    sl_hist_record(&h, 251);      /* bucket 1 */
    sl_hist_record(&h, 30000000); /* last finite */
    sl_hist_record(&h, 30000001); /* +Inf */
    sl_hist_record(&h, UINT64_MAX / 4);
    ASSERT_EQ(h.counts[0], 2);
    ASSERT_EQ(h.counts[1], 1);
    ASSERT_EQ(h.counts[SL_HIST_FINITE - 1], 1);
    ASSERT_EQ(h.counts[SL_HIST_FINITE], 2);
    ASSERT_EQ(h.count, 6);
}

static void test_hist_quantiles(void)
{
    sl_hist h;

    sl_hist_reset(&h);
    ASSERT_TRUE(isnan(sl_hist_quantile(&h, 0.5)));

    /* 100 observations of 1 ms, all in (0.75 ms, 1 ms]. */
    for (int i = 0; i < 100; i++)
        sl_hist_record(&h, 1000);
    ASSERT_NEAR(sl_hist_quantile(&h, 0.5), 0.000875, 1e-15);
    ASSERT_NEAR(sl_hist_quantile(&h, 0.0), 0.00075, 1e-15);
    ASSERT_NEAR(sl_hist_quantile(&h, 1.0), 0.001, 1e-15);
    ASSERT_TRUE(isnan(sl_hist_quantile(&h, -0.1)));
    ASSERT_TRUE(isnan(sl_hist_quantile(&h, 1.1)));
    ASSERT_TRUE(isnan(sl_hist_quantile(&h, NAN)));

    /* 50 at 0.1 ms (bucket [0, 0.25 ms]) and 50 at 5 ms (bucket
     * (3 ms, 5 ms]). */
    sl_hist_reset(&h);
    for (int i = 0; i < 50; i++) {
        sl_hist_record(&h, 100);
        sl_hist_record(&h, 5000);
    }
    ASSERT_NEAR(sl_hist_quantile(&h, 0.5), 0.00025, 1e-15);  /* 0+250*50/50 */
    ASSERT_NEAR(sl_hist_quantile(&h, 0.25), 0.000125, 1e-15); /* 250*25/50 */
    ASSERT_NEAR(sl_hist_quantile(&h, 0.75), 0.004, 1e-15); /* 3+2*25/50 ms */
    ASSERT_NEAR(sl_hist_quantile(&h, 0.99), 0.00496, 1e-15); /* 3+2*49/50 */
    ASSERT_EQ(h.sum_us, 50 * 100 + 50 * 5000);

    /* Everything above 30 s: the largest finite bound, as Prometheus. */
    sl_hist_reset(&h);
    sl_hist_record(&h, 60000000);
    ASSERT_NEAR(sl_hist_quantile(&h, 0.5), 30.0, 0);

    /* A spread: 10 observations in each of buckets 3 (0.75..1 ms),
     * 9 (7.5..10 ms) and 15 (75..100 ms). p90 = rank 27 -> bucket 15,
     * 7 of 10 in: 75 + 25 * 0.7 = 92.5 ms. */
    sl_hist_reset(&h);
    for (int i = 0; i < 10; i++) {
        sl_hist_record(&h, 900);
        sl_hist_record(&h, 8000);
        sl_hist_record(&h, 80000);
    }
    ASSERT_NEAR(sl_hist_quantile(&h, 0.9), 0.0925, 1e-12);
    /* p50 = rank 15 -> bucket 9, 5 of 10 in: 7.5 + 2.5 * 0.5 = 8.75 ms. */
    ASSERT_NEAR(sl_hist_quantile(&h, 0.5), 0.00875, 1e-12);
}

static void test_hist_merge_sub(void)
{
    sl_hist a, b, m, d;
    sl_hist_reset(&a);
    sl_hist_reset(&b);
    for (int i = 0; i < 10; i++)
        sl_hist_record(&a, 100);
    for (int i = 0; i < 30; i++)
        sl_hist_record(&b, 5000);
    m = a;
    sl_hist_merge(&m, &b);
    ASSERT_EQ(m.count, 40);
    ASSERT_EQ(m.sum_us, 10 * 100 + 30 * 5000);
    ASSERT_EQ(m.counts[0], 10);
    ASSERT_EQ(m.counts[7], 30);
    /* rank 20 of 40 -> bucket 7, 10 of 30 in: 3 + 2 * 1/3 ms. */
    ASSERT_NEAR(sl_hist_quantile(&m, 0.5), 0.003 + 0.002 / 3.0, 1e-12);

    /* Window: m minus an earlier snapshot a is b. */
    sl_hist_sub(&d, &m, &a);
    ASSERT_TRUE(memcmp(&d, &b, sizeof(d)) == 0);
    /* In place, and never negative. */
    d = a;
    sl_hist_sub(&d, &d, &m);
    ASSERT_EQ(d.count, 0);
    ASSERT_EQ(d.sum_us, 0);
    ASSERT_TRUE(isnan(sl_hist_quantile(&d, 0.5)));
}

/* ---- the daemon's metric names ------------------------------------------ */

/* The names issue 5 exposes (help texts here are placeholders): the table
 * must pass the checks, and its exposition is what promtool is run on. */
#define DAEMON(X)                                                         \
    X(D_CONN_BYTES, "sluice_connector_bytes_total", COUNTER,              \
      "Record batch bytes received per connector.", "connector", "class") \
    X(D_CONN_RECORDS, "sluice_connector_records_total", COUNTER,          \
      "Records received per connector.", "connector", "class")            \
    X(D_CONN_REQS, "sluice_connector_requests_total", COUNTER,            \
      "Produce requests per connector.", "connector", "class")            \
    X(D_CONN_THR_S, "sluice_connector_throttle_seconds_total", COUNTER,   \
      "Time throttled per connector, by reason.", "connector", "class",   \
      "reason")                                                           \
    X(D_CONN_THR_N, "sluice_connector_throttle_events_total", COUNTER,    \
      "Throttle events per connector, by reason.", "connector", "class",  \
      "reason")                                                           \
    X(D_CONN_ERR, "sluice_connector_errors_total", COUNTER,               \
      "Errors answered per connector, by Kafka error.", "connector",      \
      "class", "error")                                                   \
    X(D_CLASS_BUDGET, "sluice_class_budget_bytes_per_second", GAUGE,      \
      "Class budget.", "class")                                           \
    X(D_CLASS_BYTES, "sluice_class_bytes_total", COUNTER,                 \
      "Bytes admitted per class.", "class")                               \
    X(D_BROKER_LAT, "sluice_broker_produce_latency_seconds", HISTOGRAM,   \
      "Produce latency per broker.", "broker")                            \
    X(D_BROKER_INFL, "sluice_broker_inflight_records", GAUGE,             \
      "Records in flight per broker.", "broker")                          \
    X(D_BROKER_THR, "sluice_broker_throttle_seconds_total", COUNTER,      \
      "Broker-returned throttle time.", "broker")                         \
    X(D_CLIENTS, "sluice_client_connections", GAUGE,                      \
      "Open client connections.", NULL)                                   \
    X(D_INFL_BYTES, "sluice_inflight_bytes", GAUGE,                       \
      "Bytes held for in-flight requests.", NULL)                         \
    X(D_UP_OUT, "sluice_upstream_outstanding_records", GAUGE,             \
      "Records buffered upstream.", NULL)                                 \
    X(D_POLICY_GEN, "sluice_policy_generation", GAUGE,                    \
      "Policy generation.", NULL)                                         \
    X(D_POLICY_FAIL, "sluice_policy_reload_failures_total", COUNTER,      \
      "Policy reloads that failed.", NULL)                                \
    X(D_BUSY, "sluice_event_loop_busy_seconds_total", COUNTER,            \
      "Event loop busy time.", NULL)                                      \
    X(D_LAT_TARGET, "sluice_broker_latency_target_seconds", GAUGE,        \
      "Broker latency target.", NULL)

enum { DAEMON(SL_METRIC_ENUM) D__COUNT };
static const sl_metric_desc daemon_table[] = {DAEMON(SL_METRIC_DESC)};

static void test_daemon_table_sample(void)
{
    char err[256];
    sl_metrics *em;
    sl_hist h;
    char *text;
    const char *out = getenv("SL_METRICS_SAMPLE_OUT");

    ASSERT_EQ(sl_metrics_table_check(daemon_table, D__COUNT, err,
                                     sizeof(err)), 0);
    em = sl_metrics_new(daemon_table, D__COUNT);
    sl_hist_reset(&h);
    for (uint64_t us = 100; us < 3000000; us = us * 3 / 2)
        sl_hist_record(&h, us);
    sl_metrics_emit(em, &daemon_table[D_CONN_BYTES], 1048576, "cdc",
                    "fragile");
    sl_metrics_emit(em, &daemon_table[D_CONN_BYTES], 73400320, "bulk-load",
                    "bulk");
    sl_metrics_emit(em, &daemon_table[D_CONN_RECORDS], 1000, "cdc",
                    "fragile");
    sl_metrics_emit(em, &daemon_table[D_CONN_REQS], 20, "cdc", "fragile");
    sl_metrics_emit(em, &daemon_table[D_CONN_THR_S], 1.25, "bulk-load",
                    "bulk", "quota");
    sl_metrics_emit(em, &daemon_table[D_CONN_THR_N], 5, "bulk-load", "bulk",
                    "quota");
    sl_metrics_emit(em, &daemon_table[D_CONN_ERR], 2, "cdc", "fragile",
                    "NOT_LEADER_OR_FOLLOWER");
    sl_metrics_emit(em, &daemon_table[D_CLASS_BUDGET], 1e6, "fragile");
    sl_metrics_emit(em, &daemon_table[D_CLASS_BYTES], 1048576, "fragile");
    sl_metrics_emit_hist(em, &daemon_table[D_BROKER_LAT], &h, "1");
    sl_metrics_emit_hist(em, &daemon_table[D_BROKER_LAT], &h, "2");
    sl_metrics_emit(em, &daemon_table[D_BROKER_INFL], 12, "1");
    sl_metrics_emit(em, &daemon_table[D_BROKER_THR], 0, "1");
    sl_metrics_emit(em, &daemon_table[D_CLIENTS], 3);
    sl_metrics_emit(em, &daemon_table[D_INFL_BYTES], 4096);
    sl_metrics_emit(em, &daemon_table[D_UP_OUT], 17);
    sl_metrics_emit(em, &daemon_table[D_POLICY_GEN], 3);
    sl_metrics_emit(em, &daemon_table[D_POLICY_FAIL], 0);
    sl_metrics_emit(em, &daemon_table[D_BUSY], 12.5);
    sl_metrics_emit(em, &daemon_table[D_LAT_TARGET], 0.05);
    text = render(em);
    ASSERT_TRUE(strstr(text, "sluice_broker_produce_latency_seconds_bucket"
                             "{broker=\"2\",le=\"+Inf\"} ") != NULL);
    if (out) {
        FILE *f = fopen(out, "w");
        ASSERT_TRUE(f != NULL);
        if (f) {
            fputs(text, f);
            fclose(f);
        }
    }
    sl_free(text);
    sl_metrics_free(em);
}

SL_TEST_MAIN(SL_TEST(test_exposition_exact),
             SL_TEST(test_empty_families_omitted_and_reset),
             SL_TEST(test_duplicates_dropped), SL_TEST(test_json_view),
             SL_TEST(test_nonfinite_values), SL_TEST(test_format_double),
             SL_TEST(test_table_check), SL_TEST(test_misuse_aborts),
             SL_TEST(test_hist_buckets), SL_TEST(test_hist_quantiles),
             SL_TEST(test_hist_merge_sub), SL_TEST(test_daemon_table_sample))
