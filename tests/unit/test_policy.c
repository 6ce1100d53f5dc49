/*
 * Policy engine: loading and validation messages, identity resolution and
 * its cost, token buckets, class budgets, admin hooks, rebind. Time is a
 * simulated clock (int64 microseconds); nothing here sleeps.
 *
 * The example policies are read from argv[1], else $SLUICE_POLICY_EXAMPLES,
 * else SL_POLICY_EXAMPLES_DIR (a -D from the build), else
 * ../policy/examples.
 */
#include "sluice/policy.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sl_test.h"
#include "sl_policy_test.h"

#define SEC 1000000LL
#define MS 1000LL

static const char *examples_dir = NULL;


static void expect_error(const char *json, const char *msg)
{
    char err[1024] = "";
    sl_policy *pol = NULL;
    int rc = sl_policy_load_string(json, strlen(json), "t.json", &pol, err,
                                   sizeof(err));
    ASSERT_EQ(rc, SL_E_CONFIG);
    ASSERT_TRUE(pol == NULL);
    ASSERT_STREQ(err, msg);
    sl_policy_free(pol);
}

static struct sockaddr_storage v4(const char *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    ASSERT_EQ(inet_pton(AF_INET, s, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    ASSERT_EQ(inet_pton(AF_INET6, s, &in6->sin6_addr), 1);
    return ss;
}

static sl_policy_account *get(sl_policy_state *st, const char *cid,
                              int64_t now)
{
    sl_policy_identity id = {.client_id = cid};
    return sl_policy_account_get(st, &id, now, NULL);
}

static const char *resolve_name(const sl_policy *pol, const char *cid,
                                const struct sockaddr_storage *peer,
                                const char *principal, sl_policy_match *how)
{
    sl_policy_identity id = {.client_id = cid,
                             .peer = (const struct sockaddr *)peer,
                             .principal = principal};
    sl_policy_resolution r;
    *how = sl_policy_resolve(pol, &id, &r);
    return r.connector ? sl_policy_connector_name(r.connector) : "(none)";
}

/* ---- names -------------------------------------------------------------- */

static void test_name_tables(void)
{
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_NONE), "none");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_QUOTA), "quota");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_CLASS_BUDGET),
                 "class_budget");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_PAUSED), "paused");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_BROKER_LATENCY),
                 "broker_latency");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_BROKER_THROTTLE),
                 "broker_throttle");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE_MEMORY), "memory");
    ASSERT_STREQ(sl_throttle_reason_name(SL_THROTTLE__COUNT), "?");
    ASSERT_STREQ(sl_policy_match_name(SL_MATCH_CONNECT), "connect");
    ASSERT_STREQ(sl_policy_match_name(SL_MATCH_REFUSED), "refused");
}

/* ---- buckets and quotas ------------------------------------------------- */

static const char *quota_policy =
    "{\"classes\": {\"c\": {\"max_pause_ms\": 300000}},\n"
    " \"connectors\": {\"q\": {\"class\": \"c\",\n"
    "   \"quota\": {\"bytes_per_sec\": 1000, \"burst_bytes\": 5000,\n"
    "             \"records_per_sec\": 10}}},\n"
    " \"defaults\": {\"class\": \"c\"}}";

static void test_bucket_refill_burst(void)
{
    sl_policy *pol = load(quota_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "connector-producer-q-0", 0);
    sl_policy_decision d;

    ASSERT_TRUE(a != NULL);
    ASSERT_EQ(sl_policy_account_tokens(a, 0), 5000); /* starts full */
    sl_policy_charge(st, a, 5000, 1, 0, &d);
    ASSERT_EQ(d.throttle_ms, 0);
    ASSERT_EQ(d.reason, SL_THROTTLE_NONE);
    sl_policy_charge(st, a, 250, 1, 0, &d); /* 250 B at 1000 B/s */
    ASSERT_EQ(d.throttle_ms, 250);
    ASSERT_EQ(d.reason, SL_THROTTLE_QUOTA);
    ASSERT_TRUE(d.enforced);
    /* refill: 0.5 s later the debt of 250 is repaid and 250 banked */
    ASSERT_EQ(sl_policy_account_tokens(a, 500 * MS), 250);
    /* burst caps the bank: an hour idle gives 5000, not 3.6 MB */
    ASSERT_EQ(sl_policy_account_tokens(a, 3600 * SEC), 5000);
    sl_policy_charge(st, a, 6000, 1, 3600 * SEC, &d);
    ASSERT_EQ(d.throttle_ms, 1000);
    /* time going backwards counts as no time passing */
    sl_policy_charge(st, a, 0, 0, 3000 * SEC, &d);
    ASSERT_EQ(d.throttle_ms, 1000);
    /* debt is floored at SL_POLICY_MAX_DEBT_MS worth of the rate */
    sl_policy_charge(st, a, 100000000, 0, 3600 * SEC, &d);
    ASSERT_EQ(d.uncapped_ms, SL_POLICY_MAX_DEBT_MS);
    ASSERT_EQ(sl_policy_account_counters(a)->bytes, 100011250);
    ASSERT_EQ(sl_policy_account_counters(a)->requests, 5);
    ASSERT_EQ(sl_policy_account_counters(a)->throttle_events
                  [SL_THROTTLE_QUOTA], 4);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

/* A client that wants 4x its quota and obeys every throttle averages the
 * quota: the throttle is exactly the time to repay the debt. */
static void test_quota_average_4x(void)
{
    sl_policy *pol = load(
        "{\"classes\": {\"c\": {\"max_pause_ms\": 60000}},\n"
        " \"connectors\": {\"q\": {\"class\": \"c\", \"match\": {\"client_ids\": "
        "[\"q\"]}, \"quota\": {\"bytes_per_sec\": \"1MiB\"}}},\n"
        " \"defaults\": {\"class\": \"c\"}}");
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "q", 0);
    const int64_t req = 65536, natural = SEC * req / (4 << 20); /* 4 MiB/s */
    int64_t t = 0, sent = 0, throttled = 0;
    double rate;

    while (t < 60 * SEC) {
        sl_policy_decision d;
        sl_policy_charge(st, a, (uint64_t)req, 100, t, &d);
        sent += req;
        throttled += d.throttle_ms > 0;
        t += SL_MAX(natural, (int64_t)d.throttle_ms * MS);
    }
    rate = (double)sent / 60.0 / (1 << 20);
    printf("     4x client over 60 s: %.4f x quota, %lld throttles\n", rate,
           (long long)throttled);
    ASSERT_TRUE(rate > 0.98 && rate < 1.03); /* + one burst over 60 s */
    ASSERT_TRUE(throttled > 800);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_records_quota(void)
{
    sl_policy *pol = load(quota_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "connector-producer-q-1", 0);
    sl_policy_decision d;

    /* 10 records/s, burst 10: 30 records is 20 in debt = 2 s */
    sl_policy_charge(st, a, 10, 30, 0, &d);
    ASSERT_EQ(d.throttle_ms, 2000);
    ASSERT_EQ(d.reason, SL_THROTTLE_QUOTA);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_max_pause_cap(void)
{
    sl_policy *pol = load(
        "{\"classes\": {\"c\": {\"max_pause_ms\": 50}},\n"
        " \"connectors\": {\"q\": {\"class\": \"c\", \"quota\": "
        "{\"bytes_per_sec\": 1000}}},\n"
        " \"defaults\": {\"class\": \"c\"}}");
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "connector-producer-q-0", 0);
    sl_policy_decision d;

    sl_policy_charge(st, a, 10000, 1, 0, &d);
    ASSERT_EQ(d.uncapped_ms, 9000);
    ASSERT_EQ(d.throttle_ms, 50);
    ASSERT_EQ(d.reason, SL_THROTTLE_QUOTA);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

/* ---- class budgets ------------------------------------------------------ */

static const char *class_policy =
    "{\"capacity\": {\"bytes_per_sec\": 100000000},\n"
    " \"classes\": {\n"
    "   \"fragile\": {\"weight\": 6, \"guarantee_bytes_per_sec\": 60000000,\n"
    "                 \"max_pause_ms\": 50, \"shed_order\": 3},\n"
    "   \"elastic\": {\"weight\": 1, \"max_pause_ms\": 10000, "
    "\"shed_order\": 1}},\n"
    " \"connectors\": {\n"
    "   \"cdc\": {\"class\": \"fragile\"},\n"
    "   \"backfill\": {\"class\": \"elastic\"}},\n"
    " \"defaults\": {\"class\": \"elastic\"}}";

/* A client that sends req bytes every interval (its demand) and obeys
 * throttles. */
typedef struct sim_client {
    sl_policy_account *a;
    int64_t req, interval, next;
    bool on;
} sim_client;

/* Runs clients from t0 to t1, adding bytes sent in [m0, m1) to got[i]. */
static void simulate(sl_policy_state *st, sim_client *c, size_t n, int64_t t0,
                     int64_t t1, int64_t m0, int64_t m1, int64_t *got)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].next < t0)
            c[i].next = t0;
    for (;;) {
        size_t k = n;
        for (size_t i = 0; i < n; i++)
            if (c[i].on && (k == n || c[i].next < c[k].next))
                k = i;
        if (k == n || c[k].next >= t1)
            return;
        {
            sl_policy_decision d;
            int64_t t = c[k].next;
            sl_policy_charge(st, c[k].a, (uint64_t)c[k].req, 1, t, &d);
            if (t >= m0 && t < m1)
                got[k] += c[k].req;
            c[k].next = t + SL_MAX(c[k].interval, (int64_t)d.throttle_ms * MS);
        }
    }
}

static void test_class_borrow_and_giveback(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sim_client c[2] = {
        /* fragile wants 70 MB/s: 700 kB every 10 ms */
        {get(st, "connector-producer-cdc-0", 0), 700000, 10 * MS, 0, false},
        /* elastic wants 1 GB/s: 1 MB every ms */
        {get(st, "connector-producer-backfill-0", 0), 1000000, MS, 0, true},
    };
    int64_t got[2] = {0, 0};
    sl_policy_class_state cs;

    /* 0-10 s: fragile idle; elastic borrows its share: ~100 MB/s */
    simulate(st, c, 2, 0, 10 * SEC, 2 * SEC, 10 * SEC, got);
    printf("     elastic alone: %.1f MB/s\n", got[1] / 8.0 / 1e6);
    ASSERT_TRUE(got[1] / 8.0 > 95e6 && got[1] / 8.0 < 105e6);
    ASSERT_EQ(sl_policy_state_class_at(st, 0, 10 * SEC, &cs), 0);
    ASSERT_TRUE(!cs.active);

    /* 10 s: fragile returns and gets at least its guarantee at once */
    c[0].on = true;
    got[0] = got[1] = 0;
    simulate(st, c, 2, 10 * SEC, 11 * SEC, 10 * SEC, 11 * SEC, got);
    printf("     first second back: fragile %.1f MB/s, elastic %.1f MB/s\n",
           got[0] / 1e6, got[1] / 1e6);
    ASSERT_TRUE(got[0] >= 60000000);
    got[0] = got[1] = 0;
    simulate(st, c, 2, 11 * SEC, 20 * SEC, 12 * SEC, 20 * SEC, got);
    printf("     settled: fragile %.1f MB/s, elastic %.1f MB/s\n",
           got[0] / 8.0 / 1e6, got[1] / 8.0 / 1e6);
    /* fragile gets all it wants (70 < its 85.7 share); elastic the rest */
    ASSERT_TRUE(got[0] / 8.0 > 69e6);
    ASSERT_TRUE(got[1] / 8.0 > 25e6 && got[1] / 8.0 < 33e6);
    ASSERT_TRUE((got[0] + got[1]) / 8.0 < 102e6);
    ASSERT_EQ(sl_policy_state_class_at(st, 0, 20 * SEC, &cs), 0);
    ASSERT_TRUE(cs.active);
    ASSERT_STREQ(cs.name, "fragile");
    ASSERT_TRUE(cs.counters.bytes > 0);

    /* 20 s: fragile leaves; within ~1 s elastic has it all again */
    c[0].on = false;
    got[0] = got[1] = 0;
    simulate(st, c, 2, 20 * SEC, 30 * SEC, 22 * SEC, 30 * SEC, got);
    printf("     fragile gone: elastic %.1f MB/s\n", got[1] / 8.0 / 1e6);
    ASSERT_TRUE(got[1] / 8.0 > 95e6);
    ASSERT_TRUE(sl_policy_account_counters(c[1].a)->throttle_events
                    [SL_THROTTLE_CLASS_BUDGET] > 0);

    sl_policy_account_put(st, c[0].a);
    sl_policy_account_put(st, c[1].a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

/* Both saturating: weights decide (6:1 of 100 MB/s), guarantee respected. */
static void test_class_weighted_split(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sim_client c[2] = {
        {get(st, "connector-producer-cdc-0", 0), 500000, MS, 0, true},
        {get(st, "connector-producer-backfill-0", 0), 1000000, MS, 0, true},
    };
    int64_t got[2] = {0, 0};
    sl_policy_class_state cs;

    simulate(st, c, 2, 0, 20 * SEC, 5 * SEC, 20 * SEC, got);
    printf("     both busy: fragile %.1f MB/s, elastic %.1f MB/s\n",
           got[0] / 15.0 / 1e6, got[1] / 15.0 / 1e6);
    ASSERT_TRUE(got[0] / 15.0 > 81e6 && got[0] / 15.0 < 90e6); /* 85.7 */
    ASSERT_TRUE(got[1] / 15.0 > 12e6 && got[1] / 15.0 < 18e6); /* 14.3 */
    ASSERT_EQ(sl_policy_state_class_at(st, 1, 20 * SEC, &cs), 0);
    ASSERT_TRUE(fabs(cs.share_bps - 100e6 / 7) < 1e4);
    sl_policy_account_put(st, c[0].a);
    sl_policy_account_put(st, c[1].a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_class_ceiling_and_guarantee_floor(void)
{
    /* b's weighted share (1/11 of 100 MB = 9 MB) is below its 20 MB
     * guarantee; a is capped by its 50 MB ceiling even when alone. */
    sl_policy *pol = load(
        "{\"capacity\": {\"bytes_per_sec\": 100000000},\n"
        " \"classes\": {\"a\": {\"weight\": 10, \"ceiling_bytes_per_sec\": "
        "50000000},\n"
        "               \"b\": {\"weight\": 1, \"guarantee_bytes_per_sec\": "
        "20000000}},\n"
        " \"connectors\": {\"x\": {\"class\": \"a\"}, \"y\": {\"class\": "
        "\"b\"}},\n"
        " \"defaults\": {\"class\": \"b\"}}");
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sim_client c[2] = {
        {get(st, "connector-producer-x-0", 0), 1000000, MS, 0, true},
        {get(st, "connector-producer-y-0", 0), 1000000, MS, 0, false},
    };
    int64_t got[2] = {0, 0};
    sl_policy_class_state cs;

    simulate(st, c, 2, 0, 10 * SEC, 2 * SEC, 10 * SEC, got);
    ASSERT_TRUE(got[0] / 8.0 > 48e6 && got[0] / 8.0 < 52e6);
    c[1].on = true;
    got[0] = got[1] = 0;
    simulate(st, c, 2, 10 * SEC, 20 * SEC, 12 * SEC, 20 * SEC, got);
    printf("     ceiling/guarantee: a %.1f MB/s, b %.1f MB/s\n",
           got[0] / 8.0 / 1e6, got[1] / 8.0 / 1e6);
    /* a keeps its ceiling, b gets the other 50: borrowing is fine */
    ASSERT_TRUE(got[0] / 8.0 > 48e6 && got[0] / 8.0 < 52e6);
    ASSERT_TRUE(got[1] / 8.0 >= 20e6);
    ASSERT_EQ(sl_policy_state_class_at(st, 1, 20 * SEC, &cs), 0);
    ASSERT_TRUE(fabs(cs.share_bps - 50e6) < 1e3); /* 100 - a's ceiling */
    sl_policy_account_put(st, c[0].a);
    sl_policy_account_put(st, c[1].a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_shed_order_and_class_budget(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_class_info ci;
    sl_policy_class_state cs;
    sl_policy_account *a = get(st, "connector-producer-backfill-0", 0), *f;
    sl_policy_decision d;

    sl_policy_class_describe(sl_policy_class_find(pol, "fragile"), &ci);
    ASSERT_EQ(ci.shed_order, 3);
    ASSERT_EQ(ci.max_pause_ms, 50);
    ASSERT_EQ(ci.guarantee_bps, 60000000);
    ASSERT_EQ(ci.line, 3);
    sl_policy_class_describe(sl_policy_class_find(pol, "elastic"), &ci);
    ASSERT_EQ(ci.shed_order, 1);
    ASSERT_EQ(sl_policy_state_class_at(st, 0, 0, &cs), 0);
    ASSERT_EQ(cs.shed_order, 3);

    /* Alone, elastic may use the whole capacity (100 MB/s, 1 s of burst):
     * 350 MB leave 250 MB of debt, 2.5 s, within its max_pause_ms. */
    sl_policy_charge(st, a, 350000000, 1, 0, &d);
    ASSERT_EQ(sl_policy_state_class_at(st, 1, 0, &cs), 0);
    ASSERT_TRUE(fabs(cs.share_bps - 100e6) < 1e3);
    ASSERT_EQ(d.reason, SL_THROTTLE_CLASS_BUDGET);
    ASSERT_EQ(d.throttle_ms, 2500);
    ASSERT_EQ(d.uncapped_ms, 2500);
    /* fragile's wait for the same debt is cut to its max_pause_ms */
    f = get(st, "connector-producer-cdc-0", 0);
    ASSERT_TRUE(strcmp(sl_policy_account_class_name(f), "fragile") == 0);
    sl_policy_charge(st, f, 350000000, 1, 0, &d);
    ASSERT_EQ(d.reason, SL_THROTTLE_CLASS_BUDGET);
    ASSERT_EQ(d.throttle_ms, 50);
    ASSERT_TRUE(d.uncapped_ms > 50);
    sl_policy_account_put(st, f);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

/* ---- identity ----------------------------------------------------------- */

static const char *identity_policy =
    "{\"classes\": {\"a\": {}, \"b\": {}},\n"
    " \"connectors\": {\n"
    "   \"by-principal\": {\"class\": \"a\", \"match\": {\"principals\": "
    "[\"User:svc\"]}},\n"
    "   \"by-id\": {\"class\": \"a\", \"match\": {\"client_ids\": "
    "[\"app-1\", \"connector-producer-fleet-3\"]}},\n"
    "   \"fleet\": {\"class\": \"b\", \"match\": {\"connect_names\": "
    "[\"fleet-old\"]}},\n"
    "   \"short\": {\"class\": \"b\", \"match\": {\"connect\": false, "
    "\"client_id_prefixes\": [\"app-\"]}},\n"
    "   \"long\": {\"class\": \"b\", \"match\": {\"connect\": false, "
    "\"client_id_prefixes\": [\"app-pay\"]}},\n"
    "   \"glob\": {\"class\": \"b\", \"match\": {\"connect\": false, "
    "\"client_id_globs\": [\"app-*-batch\", \"*-legacy\", \"conn*\"]}},\n"
    "   \"glob2\": {\"class\": \"b\", \"match\": {\"connect\": false, "
    "\"client_id_globs\": [\"app-x*-batch\"]}},\n"
    "   \"net\": {\"class\": \"b\", \"match\": {\"connect\": false, "
    "\"cidrs\": [\"10.0.0.0/8\", \"2001:db8::/32\"]}},\n"
    "   \"subnet\": {\"class\": \"a\", \"match\": {\"connect\": false, "
    "\"cidrs\": [\"10.1.0.0/16\", \"10.1.2.3\", \"2001:db8:1::/48\"]}}},\n"
    " \"defaults\": {\"class\": \"a\"}}";

static void test_identity_precedence(void)
{
    sl_policy *pol = load(identity_policy);
    struct sockaddr_storage p10 = v4("10.1.2.3");
    sl_policy_match how;

    /* principal beats everything, even an exact client.id */
    ASSERT_STREQ(resolve_name(pol, "app-1", &p10, "User:svc", &how),
                 "by-principal");
    ASSERT_EQ(how, SL_MATCH_PRINCIPAL);
    /* exact client.id beats the Connect pattern, prefixes and CIDRs */
    ASSERT_STREQ(resolve_name(pol, "connector-producer-fleet-3", &p10,
                              "User:other", &how), "by-id");
    ASSERT_EQ(how, SL_MATCH_CLIENT_ID);
    /* Connect task beats a glob ("conn*") and CIDR */
    ASSERT_STREQ(resolve_name(pol, "connector-producer-fleet-4", &p10, NULL,
                              &how), "fleet");
    ASSERT_EQ(how, SL_MATCH_CONNECT);
    /* longest prefix wins, and prefix beats glob and CIDR */
    ASSERT_STREQ(resolve_name(pol, "app-payments", &p10, NULL, &how), "long");
    ASSERT_EQ(how, SL_MATCH_PREFIX);
    ASSERT_STREQ(resolve_name(pol, "app-x-batch", &p10, NULL, &how), "short");
    ASSERT_EQ(how, SL_MATCH_PREFIX);
    /* glob beats CIDR; the longest literal prefix wins among globs */
    ASSERT_STREQ(resolve_name(pol, "etl-legacy", &p10, NULL, &how), "glob");
    ASSERT_EQ(how, SL_MATCH_GLOB);
    ASSERT_STREQ(resolve_name(pol, "conn-x", NULL, NULL, &how), "glob");
    /* CIDR: longest prefix */
    ASSERT_STREQ(resolve_name(pol, "nobody", &p10, NULL, &how), "subnet");
    ASSERT_EQ(how, SL_MATCH_CIDR);
    /* nothing: defaults */
    ASSERT_STREQ(resolve_name(pol, "nobody", NULL, NULL, &how), "(none)");
    ASSERT_EQ(how, SL_MATCH_DEFAULT);
    ASSERT_STREQ(resolve_name(pol, NULL, NULL, "User:unknown", &how),
                 "(none)");
    ASSERT_EQ(how, SL_MATCH_DEFAULT);
    sl_policy_free(pol);
}

static void test_glob_longest_literal(void)
{
    sl_policy *pol = load(identity_policy);
    sl_policy_match how;

    /* both "app-*-batch" (literal "app-") and "app-x*-batch" (literal
     * "app-x") match; prefixes are checked first, so use a client.id no
     * prefix matches by querying a policy without them */
    sl_policy_free(pol);
    pol = load("{\"classes\": {\"a\": {}},\n"
               " \"connectors\": {\n"
               "  \"g1\": {\"class\": \"a\", \"match\": {\"connect\": false, "
               "\"client_id_globs\": [\"app-*-batch\"]}},\n"
               "  \"g2\": {\"class\": \"a\", \"match\": {\"connect\": false, "
               "\"client_id_globs\": [\"app-x*-batch\", \"*\"]}},\n"
               "  \"g3\": {\"class\": \"a\", \"match\": {\"connect\": false, "
               "\"client_id_globs\": [\"a?p-y*\"]}}},\n"
               " \"defaults\": {\"class\": \"a\"}}");
    ASSERT_STREQ(resolve_name(pol, "app-xyz-batch", NULL, NULL, &how), "g2");
    ASSERT_STREQ(resolve_name(pol, "app-yz-batch", NULL, NULL, &how), "g1");
    ASSERT_STREQ(resolve_name(pol, "app-y", NULL, NULL, &how), "g3");
    ASSERT_STREQ(resolve_name(pol, "zzz", NULL, NULL, &how), "g2"); /* "*" */
    ASSERT_EQ(how, SL_MATCH_GLOB);
    sl_policy_free(pol);
}

static void test_connect_grouping(void)
{
    sl_policy *pol = load(identity_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_resolution r;
    sl_policy_identity id = {0};
    sl_policy_account *acc[6];
    const char *ids[] = {
        "connector-producer-fleet-0", "connector-producer-fleet-17",
        "connector-producer-fleet-old-2", "connector-dlq-producer-fleet-5",
        "connector-producer-fleet-0", /* a second connection, same task */
        "connector-producer-fleet-123456",
    };
    sl_policy_match how;

    for (size_t i = 0; i < SL_ARRAY_SIZE(ids); i++) {
        id.client_id = ids[i];
        acc[i] = sl_policy_account_get(st, &id, 0, &r);
        ASSERT_EQ(r.how, SL_MATCH_CONNECT);
        ASSERT_STREQ(sl_policy_connector_name(r.connector), "fleet");
        ASSERT_TRUE(acc[i] == acc[0]); /* one account across tasks */
    }
    id.client_id = "connector-producer-fleet-3";
    sl_policy_resolve(pol, &id, &r);
    ASSERT_EQ(r.how, SL_MATCH_CLIENT_ID); /* listed exactly elsewhere */
    id.client_id = "connector-producer-fleet-17";
    sl_policy_resolve(pol, &id, &r);
    ASSERT_STREQ(r.why, "client.id \"connector-producer-fleet-17\" is Kafka "
                        "Connect task 17 of \"fleet\", grouped as connector "
                        "\"fleet\" (line 5)");
    /* not task producers: no digits, no name, unknown name */
    ASSERT_STREQ(resolve_name(pol, "connector-producer-fleet-x", NULL, NULL,
                              &how), "glob"); /* "conn*" */
    ASSERT_STREQ(resolve_name(pol, "connector-producer-fleet", NULL, NULL,
                              &how), "glob");
    ASSERT_STREQ(resolve_name(pol, "connector-producer--1", NULL, NULL,
                              &how), "glob");
    ASSERT_STREQ(resolve_name(pol, "connector-producer-other-1", NULL, NULL,
                              &how), "glob");
    ASSERT_EQ(how, SL_MATCH_GLOB);
    for (size_t i = 0; i < SL_ARRAY_SIZE(ids); i++)
        sl_policy_account_put(st, acc[i]);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_cidr_v4_v6(void)
{
    sl_policy *pol = load(identity_policy);
    struct sockaddr_storage a;
    sl_policy_match how;

    a = v4("10.1.2.3");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "subnet"); /* /32 */
    a = v4("10.1.9.9");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "subnet"); /* /16 */
    a = v4("10.200.0.1");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "net"); /* /8 */
    a = v4("11.0.0.1");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "(none)");
    a = v6("2001:db8:1:ffff::1");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "subnet"); /* /48 */
    a = v6("2001:db8:2::1");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "net"); /* /32 */
    ASSERT_EQ(how, SL_MATCH_CIDR);
    a = v6("2001:db9::1");
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "(none)");
    a = v6("::ffff:10.1.2.3"); /* IPv4-mapped: matches the IPv4 CIDRs */
    ASSERT_STREQ(resolve_name(pol, "x", &a, NULL, &how), "subnet");
    {
        sl_policy_identity id = {.client_id = "x",
                                 .peer = (struct sockaddr *)&a};
        sl_policy_resolution r;
        sl_policy_resolve(pol, &id, &r);
        ASSERT_STREQ(r.why, "peer address is in 10.1.2.3/32 (longest CIDR), "
                            "listed by connector \"subnet\" (line 11)");
    }
    sl_policy_free(pol);
}

/* 10 vs 10,000 connectors: every stage costs the same number of probes
 * (hash slots inspected + globs tried), counted, not timed. */
static sl_policy *scale_policy(int n)
{
    size_t cap = (size_t)n * 400 + 512, o = 0;
    char *buf = malloc(cap);
    sl_policy *pol;

    o += (size_t)snprintf(buf + o, cap - o,
                          "{\"classes\": {\"a\": {}},\n \"connectors\": {\n");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(
            buf + o, cap - o,
            "  %s\"conn%05d\": {\"class\": \"a\", \"match\": {"
            "\"principals\": [\"User:p%05d\"], \"client_ids\": [\"app%05d\"], "
            "\"client_id_prefixes\": [\"pre%05d-\"], "
            "\"client_id_globs\": [\"glob%05d-*-x\"], "
            "\"cidrs\": [\"10.%d.%d.0/24\"]}}\n",
            i ? "," : "", i, i, i, i, i, i / 256, i % 256);
    o += (size_t)snprintf(buf + o, cap - o,
                          " },\n \"defaults\": {\"class\": \"a\"}}\n");
    pol = load(buf);
    free(buf);
    return pol;
}

static uint64_t probe_cost(const sl_policy *pol, int *matched)
{
    uint64_t total = 0;

    *matched = 0;
    for (int k = 0; k < 10; k++) {
        char cid[6][64], who[32];
        struct sockaddr_storage peer;
        char addr[32];
        snprintf(cid[0], 64, "app%05d", k);
        snprintf(cid[1], 64, "connector-producer-conn%05d-%d", k, k);
        snprintf(cid[2], 64, "pre%05d-instance-7", k);
        snprintf(cid[3], 64, "glob%05d-abc-x", k);
        snprintf(cid[4], 64, "unmatched-%d", k);
        snprintf(cid[5], 64, "z%d", k);
        snprintf(addr, sizeof(addr), "10.0.%d.9", k);
        snprintf(who, sizeof(who), "User:p%05d", k);
        peer = v4(addr);
        for (int j = 0; j < 6; j++) {
            sl_policy_identity id = {.client_id = cid[j],
                                     .peer = (struct sockaddr *)&peer};
            sl_policy_resolution r;
            if (sl_policy_resolve(pol, &id, &r) != SL_MATCH_DEFAULT)
                (*matched)++;
            total += r.probes;
        }
        {
            sl_policy_identity id = {.client_id = "z", .principal = who};
            sl_policy_resolution r;
            if (sl_policy_resolve(pol, &id, &r) == SL_MATCH_PRINCIPAL)
                (*matched)++;
            total += r.probes;
        }
    }
    return total;
}

static void test_resolve_cost_independent_of_size(void)
{
    sl_policy *small = scale_policy(10), *big = scale_policy(10000);
    int m_small, m_big;
    uint64_t p_small = probe_cost(small, &m_small);
    uint64_t p_big = probe_cost(big, &m_big);
    sl_policy_match how;

    printf("     probes for 70 lookups: %llu with 10 connectors, %llu with "
           "10000\n", (unsigned long long)p_small, (unsigned long long)p_big);
    /* all 70 resolve (the unmatched client.ids by the peer's CIDR) */
    ASSERT_EQ(m_small, 70);
    ASSERT_EQ(m_big, 70);
    ASSERT_TRUE(p_big <= p_small + p_small / 2);
    ASSERT_EQ(sl_policy_connector_count(big), 10000);
    ASSERT_STREQ(resolve_name(big, "connector-producer-conn09999-0", NULL,
                              NULL, &how), "conn09999");
    ASSERT_STREQ(resolve_name(big, "glob07777-y-x", NULL, NULL, &how),
                 "conn07777");
    ASSERT_TRUE(sl_policy_connector_find(big, "conn04242") != NULL);
    ASSERT_EQ(sl_policy_connector_line(sl_policy_connector_find(big,
                                                                "conn04242")),
              4245);
    sl_policy_free(small);
    sl_policy_free(big);
}

/* ---- validation messages ------------------------------------------------ */

static void test_malformed_policies(void)
{
    /* unknown keys: suggestion, or the list */
    expect_error("{\"classes\": {\"a\": {}}, \"defaults\": {\"class\": \"a\"},"
                 " \"bogus\": 1}",
                 "t.json:1: bogus: unknown key (expected one of: version, "
                 "mode, description, capacity, pressure, classes, connectors, "
                 "defaults)");
    expect_error("{\"classes\": {\"a\": {}},\n\"defaults\": {\"class\": \"a\"},"
                 "\n\"conectors\": {}}",
                 "t.json:3: conectors: unknown key (did you mean "
                 "\"connectors\"?)");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\",\n  \"match\": {\"clientids\": "
                 "[\"x\"]}}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:3: connectors.x.match.clientids: unknown key (did "
                 "you mean \"client_ids\"?)");
    /* bad type and range */
    expect_error("{\"classes\": {\n  \"a\": {\n    \"weight\": \"high\"}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:3: classes.a.weight: expected an integer in 1..1000, "
                 "got \"high\"");
    expect_error("{\"classes\": {\"a\": {\"weight\": 0}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:1: classes.a.weight: expected an integer in 1..1000, "
                 "got 0");
    expect_error("{\"version\": 2, \"classes\": {\"a\": {}}, \"defaults\": "
                 "{\"class\": \"a\"}}",
                 "t.json:1: version: expected the integer 1, got 2");
    expect_error("{\"mode\": \"loud\", \"classes\": {\"a\": {}}, "
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:1: mode: expected \"enforce\" or \"shadow\", got "
                 "\"loud\"");
    expect_error("{\"classes\": {\"a\": {}},\n\"defaults\": {\"class\": \"a\","
                 "\n  \"quota\": {\"bytes_per_sec\": \"30 potatoes\"}}}",
                 "t.json:3: defaults.quota.bytes_per_sec: expected a byte "
                 "count in 0..1 PiB (an integer or a string like \"30MiB\"), "
                 "got \"30 potatoes\"");
    expect_error("{\"classes\": {\"a\": {\"max_pause_ms\": 1.5}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:1: classes.a.max_pause_ms: expected an integer in "
                 "1..300000, got 1.5");
    /* unknown class names */
    expect_error("{\"classes\": {\"fragile\": {}, \"elastic\": {}},\n"
                 "\"connectors\": {\n  \"cdc\": {\n    \"class\": \"fragil\"}},"
                 "\n\"defaults\": {\"class\": \"elastic\"}}",
                 "t.json:4: connectors.cdc.class: unknown class \"fragil\" "
                 "(did you mean \"fragile\"?)");
    expect_error("{\"classes\": {\"fragile\": {}, \"elastic\": {}},\n"
                 "\"defaults\": {\"class\": \"bulk\"}}",
                 "t.json:2: defaults.class: unknown class \"bulk\" (classes: "
                 "fragile, elastic)");
    /* missing required keys */
    expect_error("{\"classes\": {\"a\": {}}}",
                 "t.json:1: defaults: missing (expected an object saying what "
                 "happens to unmatched clients)");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n  \"x\": "
                 "{\"match\": {}}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:3: connectors.x.class: missing (expected the name of "
                 "one of the classes)");
    expect_error("{\"classes\": {\"a\": {}},\n\"defaults\": {}}",
                 "t.json:2: defaults.class: missing (name the class unmatched "
                 "clients join, or set defaults.action to \"refuse\")");
    expect_error("{\"classes\": {}, \"defaults\": {\"action\": \"refuse\"}}",
                 "t.json:1: classes: expected at least one class");
    /* duplicate names */
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n"
                 "  \"x\": {\"class\": \"a\"},\n  \"x\": {\"class\": \"a\"}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:4: connectors.x: duplicate connector name (first "
                 "defined on line 3)");
    expect_error("{\"classes\": {\"a\": {},\n \"a\": {}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: classes.a: duplicate class name (first defined on "
                 "line 1)");
    /* CIDRs */
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"cidrs\": [\n"
                 "  \"10.0.0.0/8\",\n  \"10.0.0.0/33\"]}}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:4: connectors.x.match.cidrs[1]: invalid CIDR "
                 "\"10.0.0.0/33\": prefix length must be an integer in "
                 "0..32");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"cidrs\": [\"10.0.0.1/8\"]}}},"
                 "\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.cidrs[0]: invalid CIDR "
                 "\"10.0.0.1/8\": host bits set (did you mean "
                 "\"10.0.0.0/8\"?)");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"cidrs\": [\"10.0.0/8\"]}}},"
                 "\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.cidrs[0]: invalid CIDR "
                 "\"10.0.0/8\": \"10.0.0\" is not an IPv4 or IPv6 address");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"cidrs\": [\"fd00::1/64\"]}}},"
                 "\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.cidrs[0]: invalid CIDR "
                 "\"fd00::1/64\": host bits set (did you mean \"fd00::/64\"?)");
    /* globs */
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"client_id_globs\": "
                 "[\"exact\"]}}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.client_id_globs[0]: invalid "
                 "glob \"exact\": has no wildcard (list exact names in "
                 "match.client_ids)");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"client_id_globs\": "
                 "[\"app-[0-9]*\"]}}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.client_id_globs[0]: invalid "
                 "glob \"app-[0-9]*\": unsupported character '[' (globs "
                 "support only * and ?)");
    /* the same rule claimed twice */
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n"
                 "  \"x\": {\"class\": \"a\", \"match\": {\"client_ids\": "
                 "[\"same\"]}},\n"
                 "  \"y\": {\"class\": \"a\", \"match\": {\"client_ids\": "
                 "[\"other\",\n    \"same\"]}}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:5: connectors.y.match.client_ids[1]: client.id "
                 "\"same\" is already claimed by connector \"x\" (line 3)");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n"
                 "  \"x\": {\"class\": \"a\"},\n"
                 "  \"y\": {\"class\": \"a\", \"match\": {\"connect_names\": "
                 "[\"x\"]}}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:4: connectors.y.match.connect_names[0]: Connect name "
                 "\"x\" is already claimed by connector \"x\" (line 3)");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n"
                 "  \"x\": {\"class\": \"a\", \"match\": {\"connect\": false, "
                 "\"cidrs\": [\"10.0.0.0/8\"]}},\n"
                 "  \"y\": {\"class\": \"a\", \"match\": {\"connect\": false, "
                 "\"cidrs\": [\"10.0.0.0/8\"]}}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:4: connectors.y.match.cidrs[0]: CIDR \"10.0.0.0/8\" "
                 "is already claimed by connector \"x\" (line 3)");
    /* capacity arithmetic */
    expect_error("{\"capacity\": {\"bytes_per_sec\": \"100MiB\"},\n"
                 "\"classes\": {\"a\": {\"guarantee_bytes_per_sec\": "
                 "\"60MiB\"},\n  \"b\": {\"guarantee_bytes_per_sec\": "
                 "\"50MiB\"}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: classes: guarantees add up to 110 MiB/s, more "
                 "than capacity.bytes_per_sec 100 MiB/s");
    expect_error("{\"classes\": {\"a\": {\n  \"guarantee_bytes_per_sec\": "
                 "1000}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: classes.a.guarantee_bytes_per_sec: needs "
                 "capacity.bytes_per_sec (class budgets divide a capacity)");
    expect_error("{\"capacity\": {\"bytes_per_sec\": \"1GiB\"},\n"
                 "\"classes\": {\"a\": {\"guarantee_bytes_per_sec\": "
                 "\"50MiB\",\n  \"ceiling_bytes_per_sec\": \"40MiB\"}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: classes.a.guarantee_bytes_per_sec: 50 MiB/s is "
                 "above ceiling_bytes_per_sec 40 MiB/s");
    expect_error("{\"capacity\": {\"burst_ms\": 10},\n"
                 "\"classes\": {\"a\": {}}, \"defaults\": {\"class\": \"a\"}}",
                 "t.json:1: capacity.bytes_per_sec: missing (expected the "
                 "bytes/s the brokers take, e.g. \"200MiB\")");
    /* other cross-field rules */
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n"
                 "  \"x\": {\"class\": \"a\", \"match\": {\"connect\": false}}},"
                 "\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:3: connectors.x.match: matches no client: connect is "
                 "false and no rules are listed");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\n"
                 "  \"x\": {\"class\": \"a\", \"quota\": {\n"
                 "    \"burst_bytes\": 10}}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:4: connectors.x.quota.burst_bytes: needs "
                 "quota.bytes_per_sec (a burst of an unlimited rate means "
                 "nothing)");
    expect_error("{\"classes\": {\"a\": {}},\n\"defaults\": {\"action\": "
                 "\"refuse\",\n  \"class\": \"a\"}}",
                 "t.json:3: defaults.class: only used when defaults.action is "
                 "\"admit\"");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"topics\": [\"ok\", \"a*b\"]}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.topics[1]: invalid topic pattern "
                 "\"a*b\": '*' may only end a prefix, as in \"orders.*\"");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"principals\": "
                 "[\"alice\"]}}},\n\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.principals[0]: expected a "
                 "principal like \"User:alice\", got \"alice\"");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"client_ids\": [\"\"]}}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.client_ids[0]: expected a "
                 "non-empty string");
    expect_error("{\"classes\": {\"a\": {}},\n\"connectors\": {\"x\": "
                 "{\"class\": \"a\", \"match\": {\"client_ids\": \"x\"}}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:2: connectors.x.match.client_ids: expected an array "
                 "of strings, got \"x\"");
    expect_error("{\"classes\": {\"a b\": {}},\n"
                 "\"defaults\": {\"class\": \"a\"}}",
                 "t.json:1: classes.a b: invalid class name: use 1..64 "
                 "characters of [a-zA-Z0-9._-]");
    /* not JSON, not an object */
    expect_error("{\"classes\": {\"a\": {}},\n  \"defaults\": }",
                 "t.json:2:15: invalid JSON: unexpected token near '}'");
    expect_error("\n  [1, 2]", "t.json:2: expected a JSON object at the top "
                               "level, got an array");
}

static void test_load_file_errors(void)
{
    char err[256];
    sl_policy *pol = NULL;

    ASSERT_EQ(sl_policy_load_file("/nonexistent/p.json", &pol, err,
                                  sizeof(err)), SL_E_CONFIG);
    ASSERT_STREQ(err, "/nonexistent/p.json: cannot open: No such file or "
                      "directory");
    ASSERT_TRUE(pol == NULL);
}

/* ---- examples ----------------------------------------------------------- */

static void test_examples_load(void)
{
    DIR *d = opendir(examples_dir);
    struct dirent *e;
    int loaded = 0;

    if (d == NULL) {
        fprintf(stderr, "  cannot open examples dir %s\n", examples_dir);
        ASSERT_TRUE(d != NULL);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[1024], err[1024], text[8192];
        sl_policy *pol = NULL;
        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", examples_dir, e->d_name);
        if (sl_policy_load_file(path, &pol, err, sizeof(err)) != 0) {
            fprintf(stderr, "  %s\n", err);
            ASSERT_TRUE(!"example failed to load");
            continue;
        }
        ASSERT_TRUE(sl_policy_summary(pol, text, sizeof(text)) <
                    sizeof(text));
        ASSERT_TRUE(strstr(text, "classes:") != NULL);
        loaded++;
        sl_policy_free(pol);
    }
    closedir(d);
    ASSERT_EQ(loaded, 4);
}

static sl_policy *load_example(const char *name)
{
    char path[1024], err[1024];
    sl_policy *pol = NULL;

    snprintf(path, sizeof(path), "%s/%s", examples_dir, name);
    if (sl_policy_load_file(path, &pol, err, sizeof(err)) != 0)
        fprintf(stderr, "  %s\n", err);
    ASSERT_TRUE(pol != NULL);
    return pol;
}

static void test_example_fbe(void)
{
    sl_policy *pol = load_example("fragile-bounded-elastic.json");
    struct sockaddr_storage p;
    sl_policy_match how;
    const sl_policy_connector *c;

    if (pol == NULL)
        return;
    ASSERT_EQ(sl_policy_capacity(pol), 200 << 20);
    ASSERT_STREQ(resolve_name(pol, "connector-producer-hubspot-source-12",
                              NULL, NULL, &how), "saas-fleet");
    ASSERT_STREQ(resolve_name(pol, "connector-producer-debezium-orders-0",
                              NULL, NULL, &how), "orders-cdc");
    ASSERT_STREQ(resolve_name(pol, "checkout-7f9c", NULL, NULL, &how),
                 "checkout-app");
    ASSERT_STREQ(resolve_name(pol, "backfill-2024-warehouse", NULL, NULL,
                              &how), "warehouse-backfill");
    p = v6("fd00:40::17");
    ASSERT_STREQ(resolve_name(pol, "", &p, NULL, &how), "legacy-batch-hosts");
    c = sl_policy_connector_find(pol, "saas-fleet");
    ASSERT_EQ(sl_policy_connector_quota(c)->burst_bytes, 80 << 20);
    ASSERT_TRUE(sl_policy_topic_allowed(pol, c, "saas.accounts", 13));
    ASSERT_TRUE(!sl_policy_topic_allowed(pol, c, "saas", 4));
    ASSERT_TRUE(!sl_policy_topic_allowed(pol, c, "orders.cdc.x", 12));
    ASSERT_TRUE(sl_policy_topic_allowed(pol, NULL, "sandbox.me", 10));
    ASSERT_TRUE(!sl_policy_topic_allowed(pol, NULL, "orders", 6));
    sl_policy_free(pol);
}

/* ---- accounting state --------------------------------------------------- */

static void test_rebind_keeps_levels(void)
{
    sl_policy *p1 = load(
        "{\"capacity\": {\"bytes_per_sec\": 10000},\n"
        " \"classes\": {\"a\": {\"max_pause_ms\": 100000}, \"gone\": {}},\n"
        " \"connectors\": {\"c\": {\"class\": \"a\", \"quota\": "
        "{\"bytes_per_sec\": 1000}},\n"
        "   \"old\": {\"class\": \"a\"}},\n"
        " \"defaults\": {\"class\": \"a\"}}");
    sl_policy *p2 = load(
        "{\"capacity\": {\"bytes_per_sec\": 10000},\n"
        " \"classes\": {\"new\": {}, \"a\": {\"max_pause_ms\": 100000}},\n"
        " \"connectors\": {\"n\": {\"class\": \"new\"},\n"
        "   \"c\": {\"class\": \"a\", \"quota\": {\"bytes_per_sec\": 2000}}},\n"
        " \"defaults\": {\"class\": \"new\"}}");
    sl_policy_state *st = sl_policy_state_new(p1, 0);
    sl_policy_account *c = get(st, "connector-producer-c-0", 0);
    sl_policy_account *old = get(st, "connector-producer-old-0", 0);
    sl_policy_account *dflt = get(st, "someone", 0);
    sl_policy_account *c2;
    sl_policy_class_state before, after;
    sl_policy_decision d;

    sl_policy_charge(st, c, 5000, 1, 0, &d); /* 1000 - 5000 = -4000 */
    ASSERT_EQ(d.throttle_ms, 4000);
    ASSERT_EQ(sl_policy_state_class_at(st, 0, 0, &before), 0);
    sl_policy_state_rebind(st, p2, 0);
    sl_policy_free(p1); /* nothing may point into it now */

    ASSERT_EQ(sl_policy_account_tokens(c, 0), -4000);
    ASSERT_TRUE(!sl_policy_account_stale(c));
    ASSERT_TRUE(sl_policy_account_stale(old));
    ASSERT_TRUE(!sl_policy_account_stale(dflt));
    ASSERT_EQ(sl_policy_state_class_at(st, 1, 0, &after), 0);
    ASSERT_STREQ(after.name, "a");
    ASSERT_TRUE(fabs(after.tokens - before.tokens) < 1e-6);
    ASSERT_EQ(after.counters.bytes, 5000);
    /* re-attaching gives the same account; new rate repays faster */
    c2 = get(st, "connector-producer-c-3", 0);
    ASSERT_TRUE(c2 == c);
    sl_policy_charge(st, c, 0, 0, 0, &d);
    ASSERT_EQ(d.throttle_ms, 2000);
    ASSERT_EQ(sl_policy_account_counters(c)->bytes, 5000);
    /* a stale account still works on its last quota, without class */
    sl_policy_charge(st, old, 10, 1, 0, &d);
    ASSERT_EQ(d.throttle_ms, 0);
    sl_policy_account_put(st, old); /* freed here (ASan checks) */
    sl_policy_account_put(st, c2);
    sl_policy_account_put(st, c);
    sl_policy_account_put(st, dflt);
    sl_policy_state_free(st);
    sl_policy_free(p2);
}

static void test_pause_and_expiry(void)
{
    sl_policy *pol = load(
        "{\"classes\": {\"c\": {\"max_pause_ms\": 200}},\n"
        " \"connectors\": {\"q\": {\"class\": \"c\"}},\n"
        " \"defaults\": {\"class\": \"c\"}}");
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "connector-producer-q-0", 0);
    sl_policy_decision d;
    int64_t t = 0;
    int steps = 0;

    ASSERT_EQ(sl_policy_pause(st, "nope", 0, 0), SL_E_NOTFOUND);
    ASSERT_EQ(sl_policy_pause(st, "q", 5 * SEC, 0), 0);
    /* a client obeying is muted step by step, max_pause_ms at a time */
    for (;;) {
        sl_policy_charge(st, a, 100, 1, t, &d);
        if (d.reason != SL_THROTTLE_PAUSED)
            break;
        ASSERT_EQ(d.throttle_ms, 200);
        steps++;
        t += d.throttle_ms * MS;
    }
    ASSERT_EQ(steps, 25);
    ASSERT_EQ(d.throttle_ms, 0);
    ASSERT_EQ(sl_policy_account_counters(a)->throttle_ms[SL_THROTTLE_PAUSED],
              5000);
    /* indefinite pause until resumed */
    ASSERT_EQ(sl_policy_pause(st, "q", 0, t), 0);
    sl_policy_charge(st, a, 1, 1, t + 3600 * SEC, &d);
    ASSERT_EQ(d.reason, SL_THROTTLE_PAUSED);
    ASSERT_EQ(sl_policy_resume(st, "q", t), 0);
    sl_policy_charge(st, a, 1, 1, t + 3600 * SEC, &d);
    ASSERT_EQ(d.reason, SL_THROTTLE_NONE);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_override_and_expiry(void)
{
    sl_policy *pol = load(quota_policy);
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "connector-producer-q-0", 0);
    sl_policy_quota q = {.bytes_per_sec = 100};
    sl_policy_decision d;

    ASSERT_EQ(sl_policy_override(st, "q", &q, 0, 0), SL_E_INVALID);
    ASSERT_EQ(sl_policy_override(st, "zz", &q, 10 * SEC, 0), SL_E_NOTFOUND);
    ASSERT_EQ(sl_policy_override(st, "q", &q, 10 * SEC, 0), 0);
    /* burst 100 now (level clamped from 5000): 300 B is 200 in debt */
    sl_policy_charge(st, a, 300, 0, 0, &d);
    ASSERT_EQ(d.throttle_ms, 2000);
    /* at expiry the file's 1000 B/s applies again; until then the bucket
     * refilled at the override's rate and burst (100) */
    sl_policy_charge(st, a, 0, 0, 10 * SEC, &d);
    ASSERT_EQ(d.throttle_ms, 0);
    ASSERT_EQ(sl_policy_account_tokens(a, 10 * SEC), 100);
    sl_policy_charge(st, a, 1100, 0, 10 * SEC, &d);
    ASSERT_EQ(d.throttle_ms, 1000); /* 1000 in debt at 1000 B/s */
    /* a new override applies its rate to the same debt; clearing it
     * restores the file's rate and keeps the debt */
    ASSERT_EQ(sl_policy_override(st, "q", &q, 20 * SEC, 10 * SEC), 0);
    sl_policy_charge(st, a, 0, 0, 10 * SEC, &d);
    ASSERT_EQ(d.throttle_ms, 10000);
    ASSERT_EQ(sl_policy_override_clear(st, "q", 10 * SEC), 0);
    sl_policy_charge(st, a, 0, 0, 10 * SEC, &d);
    ASSERT_EQ(d.throttle_ms, 1000);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_shadow_flag(void)
{
    sl_policy *pol = load_example("shadow.json");
    sl_policy_state *st;
    sl_policy_account *a, *b;
    sl_policy_decision d;

    if (pol == NULL)
        return;
    ASSERT_EQ(sl_policy_mode_of(pol), SL_POLICY_SHADOW);
    st = sl_policy_state_new(pol, 0);
    a = get(st, "connector-producer-inventory-cdc-0", 0);
    b = get(st, "analytics-export-1", 0);
    sl_policy_charge(st, a, 100 << 20, 1, 0, &d);
    ASSERT_TRUE(d.throttle_ms > 0);    /* computed ... */
    ASSERT_TRUE(!d.enforced);          /* ... not enforced */
    ASSERT_EQ(sl_policy_account_counters(a)->throttle_events[d.reason], 1);
    sl_policy_charge(st, b, 100 << 20, 1, 0, &d);
    ASSERT_TRUE(d.throttle_ms > 0);
    ASSERT_TRUE(d.enforced); /* the connector overrides the file's mode */
    sl_policy_account_put(st, a);
    sl_policy_account_put(st, b);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_defaults_per_client_bounded(void)
{
    sl_policy *pol = load(
        "{\"classes\": {\"c\": {}},\n"
        " \"defaults\": {\"class\": \"c\", \"max_clients\": 2,\n"
        "   \"quota\": {\"bytes_per_sec\": 100}}}");
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    sl_policy_account *a = get(st, "a", 0), *b = get(st, "b", 0), *c, *a2;
    sl_policy_resolution r;
    sl_policy_identity id = {.client_id = "c"};
    sl_policy_decision d;

    ASSERT_TRUE(a != b);
    ASSERT_STREQ(sl_policy_account_name(a), "a");
    ASSERT_TRUE(sl_policy_account_is_default(a));
    sl_policy_charge(st, a, 300, 0, 0, &d); /* own bucket: 2 s debt */
    ASSERT_EQ(d.throttle_ms, 2000);
    sl_policy_charge(st, b, 50, 0, 0, &d); /* b unaffected by a's debt */
    ASSERT_EQ(d.throttle_ms, 0);
    /* limit reached, all held: overflow bucket */
    c = sl_policy_account_get(st, &id, 0, &r);
    ASSERT_STREQ(sl_policy_account_name(c), "(overflow)");
    ASSERT_TRUE(strstr(r.why, "overflow") != NULL);
    ASSERT_EQ(sl_policy_state_default_count(st), 2);
    sl_policy_account_put(st, c);
    /* a reconnecting client keeps its bucket (and its debt) */
    sl_policy_account_put(st, a);
    a2 = get(st, "a", 0);
    ASSERT_TRUE(a2 == a);
    ASSERT_EQ(sl_policy_account_tokens(a2, 0), -200);
    sl_policy_account_put(st, a2);
    /* an idle bucket is reused for a new client at the limit */
    c = get(st, "c", 0);
    ASSERT_STREQ(sl_policy_account_name(c), "c");
    ASSERT_EQ(sl_policy_state_default_count(st), 2);
    sl_policy_account_put(st, c);
    sl_policy_account_put(st, b);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_refuse_unknown(void)
{
    sl_policy *pol = load_example("refuse-unknown.json");
    sl_policy_state *st;
    sl_policy_resolution r;
    sl_policy_identity id = {.client_id = "random"};
    struct sockaddr_storage p = v4("192.168.10.7");

    if (pol == NULL)
        return;
    st = sl_policy_state_new(pol, 0);
    ASSERT_TRUE(sl_policy_account_get(st, &id, 0, &r) == NULL);
    ASSERT_EQ(r.how, SL_MATCH_REFUSED);
    ASSERT_STREQ(r.why, "this cluster only accepts registered producers; ask "
                        "#data-platform to add yours to the Sluice policy");
    id.peer = (struct sockaddr *)&p;
    {
        sl_policy_account *a = sl_policy_account_get(st, &id, 0, &r);
        ASSERT_TRUE(a != NULL);
        ASSERT_STREQ(sl_policy_account_name(a), "audit");
        ASSERT_TRUE(sl_policy_topic_allowed(pol, r.connector, "audit", 5));
        ASSERT_TRUE(!sl_policy_topic_allowed(pol, r.connector, "audit2", 6));
        sl_policy_account_put(st, a);
    }
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static void test_explain_and_summary(void)
{
    sl_policy *pol = load_example("fragile-bounded-elastic.json");
    struct sockaddr_storage p = v4("10.40.1.1");
    sl_policy_identity id = {.client_id = "connector-producer-hubspot-source-3",
                             .peer = (struct sockaddr *)&p};
    char buf[4096], small[16];
    size_t n;

    if (pol == NULL)
        return;
    n = sl_policy_explain(pol, &id, "saas.contacts", buf, sizeof(buf));
    ASSERT_TRUE(n < sizeof(buf));
    ASSERT_EQ(n, strlen(buf));
    printf("%s", buf);
    ASSERT_TRUE(strstr(buf, "  * connect          client.id "
                            "\"connector-producer-hubspot-source-3\" is "
                            "Kafka Connect task 3 of \"hubspot-source\", "
                            "grouped as connector \"saas-fleet\"") != NULL);
    ASSERT_TRUE(strstr(buf, "    cidr             peer address is in "
                            "10.40.0.0/16") != NULL);
    ASSERT_TRUE(strstr(buf, "class \"bounded\"") != NULL);
    ASSERT_TRUE(strstr(buf, "quota: 40 MiB/s (burst 80 MiB), 50000 "
                            "records/s") != NULL);
    ASSERT_TRUE(strstr(buf, "topic \"saas.contacts\": allowed (prefix "
                            "\"saas.*\")") != NULL);
    n = sl_policy_explain(pol, &id, "orders", buf, sizeof(buf));
    ASSERT_TRUE(strstr(buf, "topic \"orders\": denied") != NULL);
    /* truncation: snprintf semantics */
    ASSERT_EQ(sl_policy_explain(pol, &id, "orders", small, sizeof(small)), n);
    ASSERT_EQ(strlen(small), sizeof(small) - 1);

    n = sl_policy_summary(pol, buf, sizeof(buf));
    ASSERT_TRUE(n < sizeof(buf));
    printf("%s", buf);
    ASSERT_TRUE(strstr(buf, "capacity: 200 MiB/s") != NULL);
    ASSERT_TRUE(strstr(buf, "connectors: 5 (0 in shadow mode)") != NULL);
    ASSERT_TRUE(strstr(buf, "shed order 3") != NULL);
    ASSERT_TRUE(strstr(buf, "identity") == NULL);
    n = sl_policy_explain(pol, &id, NULL, buf, sizeof(buf));
    ASSERT_TRUE(strstr(buf, ", peer 10.40.1.1, principal (none)\n") != NULL);
    sl_policy_free(pol);
}

static void test_reference_from_tables(void)
{
    char buf[16384];
    size_t n = sl_policy_reference(buf, sizeof(buf));

    ASSERT_TRUE(n > 0 && n < sizeof(buf));
    ASSERT_TRUE(strstr(buf, "classes.<name>.max_pause_ms") != NULL);
    ASSERT_TRUE(strstr(buf, "connectors.<name>.match.client_id_globs") !=
                NULL);
    ASSERT_TRUE(strstr(buf, "1..300000; default 5000") != NULL);
    ASSERT_TRUE(strstr(buf, "defaults.action") != NULL);
    ASSERT_TRUE(strstr(buf, "admit|refuse; default admit") != NULL);
}

#define main sl__policy_test_cases
SL_TEST_MAIN(SL_TEST(test_name_tables), SL_TEST(test_bucket_refill_burst),
             SL_TEST(test_quota_average_4x), SL_TEST(test_records_quota),
             SL_TEST(test_max_pause_cap),
             SL_TEST(test_class_borrow_and_giveback),
             SL_TEST(test_class_weighted_split),
             SL_TEST(test_class_ceiling_and_guarantee_floor),
             SL_TEST(test_shed_order_and_class_budget),
             SL_TEST(test_identity_precedence),
             SL_TEST(test_glob_longest_literal),
             SL_TEST(test_connect_grouping), SL_TEST(test_cidr_v4_v6),
             SL_TEST(test_resolve_cost_independent_of_size),
             SL_TEST(test_malformed_policies), SL_TEST(test_load_file_errors),
             SL_TEST(test_examples_load), SL_TEST(test_example_fbe),
             SL_TEST(test_rebind_keeps_levels), SL_TEST(test_pause_and_expiry),
             SL_TEST(test_override_and_expiry), SL_TEST(test_shadow_flag),
             SL_TEST(test_defaults_per_client_bounded),
             SL_TEST(test_refuse_unknown), SL_TEST(test_explain_and_summary),
             SL_TEST(test_reference_from_tables))
#undef main

int main(int argc, char **argv)
{
    examples_dir = argc > 1 ? argv[1] : getenv("SLUICE_POLICY_EXAMPLES");
#ifdef SL_POLICY_EXAMPLES_DIR
    if (examples_dir == NULL)
        examples_dir = SL_POLICY_EXAMPLES_DIR;
#endif
    if (examples_dir == NULL)
        examples_dir = "../policy/examples";
    return sl__policy_test_cases();
}
