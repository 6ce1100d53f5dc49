/*
 * Pressure control (policy/pressure.c, budget.c): the controller driven by
 * synthetic latency series on a simulated clock, and the class shares it
 * produces when simulated producers honour the throttles they are given.
 */
#include "sluice/policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_test.h"
#include "sl_policy_test.h"

#define SEC 1000000LL
#define MS 1000LL
#define TICK (100 * MS)
#define MiB (1024.0 * 1024.0)

static sl_policy_pressure defaults_pp(void)
{
    sl_policy_pressure pp = {.enabled = true,
                             .latency_target_ms = 50,
                             .memory_high_water_pct = 80,
                             .min_bytes_per_sec = 256 * 1024,
                             .decrease_pct = 30,
                             .recovery_ms = 2000};
    return pp;
}

/* Deterministic noise in [-1, 1]. */
static uint64_t rng_state = 88172645463325252ull;
static double noise(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 52) - 1.0;
}

/* ---- the controller alone ---------------------------------------------- */

/* A step from 5 ms to 300 ms at t = 10 s with 10 MB/s flowing: limited at
 * the first congested sample, at most half the rate within 2 s, never
 * below the floor; back to unlimited within recovery_ms + 1 s of the
 * latency dropping at t = 20 s, climbing monotonically on the way. */
static void test_ctl_step_and_recovery(void)
{
    sl_policy_pressure pp = defaults_pp();
    sl_ctl_params p;
    sl_ctl c;
    int64_t t, began = -1, halved = -1, released = -1;
    double measured = 10e6, prev = 0;
    bool monotone_down = true, monotone_up = true;

    sl_ctl_params_latency(&p, &pp);
    sl_ctl_init(&c, 0);
    for (t = TICK; t <= 30 * SEC; t += TICK) {
        double lat = t >= 10 * SEC && t < 20 * SEC ? 300 : 5;
        sl_ctl_event ev =
            sl_ctl_update(&c, &p, t, &(sl_ctl_input){lat, 0, measured, false, NAN, SL_THROTTLE_BROKER_LATENCY});
        if (c.limited)
            measured = SL_MIN(measured, c.rate); /* clients obey */
        else
            measured = 10e6;
        if (ev == SL_CTL_BEGIN && began < 0)
            began = t;
        if (c.limited && halved < 0 && c.rate <= c.ref / 2)
            halved = t;
        if (t > 20 * SEC && ev == SL_CTL_RELEASE && released < 0)
            released = t;
        if (c.limited) {
            ASSERT_TRUE(c.rate >= (double)pp.min_bytes_per_sec);
            if (t < 20 * SEC && prev > 0 && c.rate > prev)
                monotone_down = false;
            if (t > 20 * SEC + TICK && c.rate < prev)
                monotone_up = false;
            prev = c.rate;
        }
        if (t < 10 * SEC)
            ASSERT_TRUE(!c.limited);
    }
    ASSERT_EQ(began, 10 * SEC); /* the first congested sample */
    ASSERT_TRUE(halved > 0 && halved - 10 * SEC <= 2 * SEC);
    ASSERT_TRUE(monotone_down);
    ASSERT_TRUE(monotone_up);
    ASSERT_TRUE(released > 0);
    ASSERT_TRUE(released - 20 * SEC <= pp.recovery_ms * MS + SEC);
    ASSERT_EQ(c.episodes, 1);
    ASSERT_TRUE(!c.limited);
}

/* After the latency recovers, sources that were held back bring a backlog
 * and send as fast as the limit lets them: the controller keeps climbing
 * (linearly, past the rate before the episode) instead of letting go at
 * once, and releases only when the limit stops binding. */
static void test_ctl_release_waits_for_backlog(void)
{
    sl_policy_pressure pp = defaults_pp();
    sl_ctl_params p;
    sl_ctl c;
    int64_t t = 0;
    double peak = 0;

    sl_ctl_params_latency(&p, &pp);
    sl_ctl_init(&c, 0);
    for (t = TICK; t <= 3 * SEC; t += TICK)
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){300, 0, 10e6, false, NAN, SL_THROTTLE_BROKER_LATENCY});
    ASSERT_TRUE(c.limited);
    /* calm, backlog: the whole limit is used for 4 s */
    for (; t <= 7 * SEC; t += TICK) {
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){2, 0, c.rate, false, NAN, SL_THROTTLE_BROKER_LATENCY});
        ASSERT_TRUE(c.limited);
        ASSERT_TRUE(c.rate >= peak);
        peak = c.rate;
    }
    ASSERT_TRUE(peak > 1.5 * c.ref); /* climbed past the old rate */
    ASSERT_TRUE(peak < 2.5 * c.ref); /* at the linear slope, no jump */
    /* the backlog has drained: back to 10 MB/s, released */
    ASSERT_EQ(sl_ctl_update(&c, &p, t, &(sl_ctl_input){2, 0, 10e6, false, NAN, SL_THROTTLE_BROKER_LATENCY}),
              SL_CTL_RELEASE);
}

/* Noise: latency jittering around 60% of the target (up to +-50% of the
 * target each sample) for a minute never limits; jitter of +-20% right at
 * the target never starts an episode either (dead band); jitter while
 * congested never raises the rate. */
static void test_ctl_noise(void)
{
    sl_policy_pressure pp = defaults_pp();
    sl_ctl_params p;
    sl_ctl c;
    int raises = 0;

    sl_ctl_params_latency(&p, &pp);
    sl_ctl_init(&c, 0);
    for (int64_t t = TICK; t <= 60 * SEC; t += TICK)
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){30 + 25 * noise(), 0, 5e6, false, NAN, SL_THROTTLE_BROKER_LATENCY});
    ASSERT_EQ(c.episodes, 0);

    sl_ctl_init(&c, 0);
    for (int64_t t = TICK; t <= 60 * SEC; t += TICK)
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){50 + 10 * noise(), 0, 5e6, false, NAN, SL_THROTTLE_BROKER_LATENCY});
    ASSERT_EQ(c.episodes, 0);

    sl_ctl_init(&c, 0);
    for (int64_t t = TICK; t <= 20 * SEC; t += TICK)
        if (sl_ctl_update(&c, &p, t, &(sl_ctl_input){100 + 40 * noise(), 0, 5e6, false, NAN, SL_THROTTLE_BROKER_LATENCY}) == SL_CTL_RAISE)
            raises++;
    ASSERT_EQ(raises, 0);
    ASSERT_EQ(c.episodes, 1);
    ASSERT_TRUE(fabs(c.rate - (double)pp.min_bytes_per_sec) < 1);
}

/* A single slow sample among fast ones is smoothed away. */
static void test_ctl_single_spike(void)
{
    sl_policy_pressure pp = defaults_pp();
    sl_ctl_params p;
    sl_ctl c;

    sl_ctl_params_latency(&p, &pp);
    sl_ctl_init(&c, 0);
    for (int64_t t = TICK; t <= 10 * SEC; t += TICK)
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){t == 5 * SEC ? 150 : 10, 0, 5e6, false, NAN, SL_THROTTLE_BROKER_LATENCY});
    ASSERT_EQ(c.episodes, 0);
}

/* Cuts are spaced by the smoothed latency: at 300 ms, no two cuts within
 * 300 ms; at 5 s latency, cuts are still at most 1 s apart. No samples
 * (NAN) keep the smoothed value. */
static void test_ctl_cut_spacing(void)
{
    sl_policy_pressure pp = defaults_pp();
    sl_ctl_params p;
    sl_ctl c;
    int64_t last = -1;
    uint64_t cuts;

    sl_ctl_params_latency(&p, &pp);
    pp.min_bytes_per_sec = 1;
    p.min_rate = 1;
    sl_ctl_init(&c, 0);
    for (int64_t t = TICK; t <= 5 * SEC; t += TICK) {
        uint64_t before = c.cuts;
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){300, 0, 100e6, false, NAN, SL_THROTTLE_BROKER_LATENCY});
        if (c.cuts != before) {
            if (last >= 0)
                ASSERT_TRUE(t - last >= 300 * MS);
            last = t;
        }
    }
    ASSERT_TRUE(c.cuts >= 10 && c.cuts <= 17);
    sl_ctl_init(&c, 0);
    for (int64_t t = TICK; t <= 10 * SEC; t += TICK)
        sl_ctl_update(&c, &p, t, &(sl_ctl_input){t == TICK ? 5000 : NAN, 0, 100e6, false, NAN, SL_THROTTLE_BROKER_LATENCY});
    cuts = c.cuts;
    ASSERT_TRUE(cuts >= 9 && cuts <= 11);
    ASSERT_TRUE(fabs(c.smoothed - 5000) < 1e-9);
}

/* A broker throttle is congestion whatever the latency says, with its own
 * reason; the memory controller reports MEMORY; time going backwards is no
 * time at all. */
static void test_ctl_throttle_memory_time(void)
{
    sl_policy_pressure pp = defaults_pp();
    sl_ctl_params p, m;
    sl_ctl c;

    sl_ctl_params_latency(&p, &pp);
    sl_ctl_params_memory(&m, &pp);
    sl_ctl_init(&c, 0);
    ASSERT_EQ(sl_ctl_update(&c, &p, TICK, &(sl_ctl_input){1, 500, 1e6, false, NAN, SL_THROTTLE_BROKER_LATENCY}),
              SL_CTL_BEGIN);
    ASSERT_EQ(c.reason, SL_THROTTLE_BROKER_THROTTLE);
    ASSERT_TRUE(c.rate < 1e6);

    sl_ctl_init(&c, 0);
    ASSERT_EQ(sl_ctl_update(&c, &m, TICK, &(sl_ctl_input){700, 0, 1e6, false, NAN, SL_THROTTLE_MEMORY}),
              SL_CTL_STEADY);
    /* smoothed 825: inside the narrow band (800..840) */
    ASSERT_EQ(sl_ctl_update(&c, &m, 2 * TICK, &(sl_ctl_input){950, 0, 1e6, false, NAN, SL_THROTTLE_MEMORY}),
              SL_CTL_STEADY);
    ASSERT_EQ(sl_ctl_update(&c, &m, 3 * TICK, &(sl_ctl_input){950, 0, 1e6, false, NAN, SL_THROTTLE_MEMORY}),
              SL_CTL_BEGIN);
    ASSERT_EQ(c.reason, SL_THROTTLE_MEMORY);
    {
        double r = c.rate;
        sl_ctl_update(&c, &m, TICK, &(sl_ctl_input){0, 0, 1e6, false, NAN, SL_THROTTLE_MEMORY});
        ASSERT_TRUE(c.limited); /* smoothed 475: calm, but dt = 0 */
        ASSERT_TRUE(fabs(c.rate - r) < 1e-9);
    }
}

/* ---- the engine: shares among classes ------------------------------------ */

static const char *class_policy =
    "{\"version\": 1,\n"
    " \"capacity\": {\"bytes_per_sec\": \"1GiB\"},\n"
    " \"pressure\": {\"latency_target_ms\": 50},\n"
    " \"classes\": {\n"
    "   \"elastic\": {\"shed_order\": 0, \"max_pause_ms\": 5000},\n"
    "   \"bounded\": {\"shed_order\": 1, \"max_pause_ms\": 1000},\n"
    "   \"fragile\": {\"shed_order\": 2, \"max_pause_ms\": 200,\n"
    "                \"guarantee_bytes_per_sec\": \"2MiB\"}},\n"
    " \"connectors\": {\n"
    "   \"backfill\": {\"class\": \"elastic\", \"match\": {\"client_ids\": "
    "[\"backfill\"]}},\n"
    "   \"saas\": {\"class\": \"bounded\", \"match\": {\"client_ids\": "
    "[\"saas\"]}},\n"
    "   \"cdc\": {\"class\": \"fragile\", \"match\": {\"client_ids\": "
    "[\"cdc\"]}},\n"
    "   \"other\": {\"class\": \"elastic\", \"match\": {\"client_ids\": "
    "[\"other\"]}}},\n"
    " \"defaults\": {\"class\": \"elastic\"}}\n";


/* A producer that wants `want` bytes/s in 10 ms chunks, to one broker,
 * and sends nothing while muted (as a muted socket makes it). */
typedef struct sim_prod {
    const char *cid;
    int32_t broker;
    double want;
    sl_policy_account *a;
    int64_t muted_until;
    double sent;            /* bytes in the current measuring window */
    uint32_t max_throttle;
    sl_throttle_reason last_reason;
} sim_prod;

static void sim_step(sl_policy_state *st, sim_prod *p, int64_t now)
{
    sl_policy_decision d;
    sl_policy_broker_bytes bb;
    uint64_t n = (uint64_t)(p->want / 100);

    if (now < p->muted_until)
        return;
    bb.broker = p->broker;
    bb.bytes = n;
    sl_policy_charge_brokers(st, p->a, n, 1, &bb, 1, now, &d);
    p->sent += (double)n;
    if (d.throttle_ms > 0) {
        p->muted_until = now + (int64_t)d.throttle_ms * MS;
        p->max_throttle = SL_MAX(p->max_throttle, d.throttle_ms);
        p->last_reason = d.reason;
    }
}

/* As the daemon does (proxy/quota.c): when a controller raises its
 * limit, sources muted for a pressure throttle may ask again. */
static void sim_unmute_on_raise(sl_policy_state *st, sim_prod *p, size_t n)
{
    bool raised = false;

    for (size_t i = 0; i < sl_policy_pressure_count(st); i++) {
        sl_policy_pressure_view v;
        if (sl_policy_pressure_at(st, i, &v) == 0)
            raised |= v.last_event == SL_CTL_RAISE ||
                      v.last_event == SL_CTL_RELEASE;
    }
    if (!raised)
        return;
    for (size_t i = 0; i < n; i++)
        if (p[i].last_reason == SL_THROTTLE_BROKER_LATENCY ||
            p[i].last_reason == SL_THROTTLE_BROKER_THROTTLE ||
            p[i].last_reason == SL_THROTTLE_MEMORY)
            p[i].muted_until = 0;
}

/* Bytes/s sent to broker 1 in the previous tick (for load-dependent
 * latency models). */
static double b1_rate, tick_b1;

/* Runs [from, to) with broker latencies lat(t) and returns each producer's
 * mean rate over the window's last `measure` microseconds. */
typedef double (*lat_fn)(int32_t broker, int64_t t);

static void sim_run(sl_policy_state *st, sim_prod *p, size_t n, int64_t from,
                    int64_t to, int64_t measure, lat_fn lat, double *rate)
{
    for (size_t i = 0; i < n; i++)
        rate[i] = 0;
    for (int64_t t = from; t < to; t += 10 * MS) {
        bool measuring = t >= to - measure;
        double before[8];
        for (size_t i = 0; i < n; i++) {
            before[i] = p[i].sent;
            sim_step(st, &p[i], t);
            if (measuring)
                rate[i] += p[i].sent - before[i];
        }
        for (size_t i = 0; i < n; i++)
            if (p[i].broker == 1)
                tick_b1 += p[i].sent - before[i];
        if ((t + 10 * MS) % TICK == 0) {
            b1_rate = tick_b1 / ((double)TICK / 1e6);
            tick_b1 = 0;
            sl_pressure_sample s[3];
            for (int32_t b = 1; b <= 3; b++) {
                s[b - 1].broker = b;
                s[b - 1].latency_ms = lat(b, t);
                s[b - 1].throttle_ms = 0;
            }
            sl_policy_pressure_tick(st, t + 10 * MS, s, 3, 100);
            sim_unmute_on_raise(st, p, n);
        }
    }
    for (size_t i = 0; i < n; i++)
        rate[i] /= (double)measure / 1e6;
}

/* The four producers both class-order tests use: three classes on broker
 * 1, an elastic control on broker 2. */
#define SIM_PRODUCERS                                                     \
    {{.cid = "backfill", .broker = 1, .want = 8 * MiB},                   \
     {.cid = "saas", .broker = 1, .want = 3 * MiB},                       \
     {.cid = "cdc", .broker = 1, .want = 2 * MiB},                        \
     {.cid = "other", .broker = 2, .want = 4 * MiB}}

static sl_policy_state *sim_start(const sl_policy *pol, sim_prod *p, size_t n)
{
    sl_policy_state *st = sl_policy_state_new(pol, 0);
    for (size_t i = 0; i < n; i++) {
        sl_policy_identity id = {p[i].cid, NULL, NULL};
        p[i].a = sl_policy_account_get(st, &id, 0, NULL);
    }
    return st;
}

static void sim_end(sl_policy *pol, sl_policy_state *st, sim_prod *p,
                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        sl_policy_account_put(st, p[i].a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

static int64_t step_at, step_end;
static double lat_step(int32_t broker, int64_t t)
{
    if (broker == 1 && t >= step_at && t < step_end)
        return 300 + 20 * noise();
    return 2 + noise();
}

/* Broker 1 becomes a broker that takes 7 MiB/s: beyond that its latency
 * grows with the excess (a queue). */
static double lat_capacity(int32_t broker, int64_t t)
{
    double cap = 7 * MiB;
    if (broker != 1 || t < step_at || t >= step_end || b1_rate <= cap)
        return 2 + noise();
    return 2 + 400 * (b1_rate - cap) / cap + 5 * noise();
}

/* When broker 1's capacity drops below the offered 13 MiB/s, the
 * controller settles around it and the classes keep their rates in shed
 * order: fragile all of it, bounded most of it, elastic what is left.
 * Broker 2 is not touched. */
static void test_shares_settle_in_class_order(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st;
    sim_prod p[4] = SIM_PRODUCERS;
    double before[4], late[4];

    if (pol == NULL)
        return;
    st = sim_start(pol, p, 4);
    step_at = 5 * SEC;
    step_end = 60 * SEC;
    sim_run(st, p, 4, 0, 5 * SEC, 3 * SEC, lat_capacity, before);
    sim_run(st, p, 4, 5 * SEC, 40 * SEC, 20 * SEC, lat_capacity, late);
    if (getenv("SL_TEST_VERBOSE"))
        for (size_t i = 0; i < 4; i++)
            fprintf(stderr, "  %s: before %.2f settled %.2f MiB/s\n",
                    p[i].cid, before[i] / MiB, late[i] / MiB);
    ASSERT_TRUE(late[2] >= 0.95 * before[2]);
    ASSERT_TRUE(late[1] >= 0.8 * before[1]);
    ASSERT_TRUE(late[0] <= 0.5 * before[0]);
    ASSERT_TRUE(late[0] + late[1] + late[2] <= 8 * MiB);
    ASSERT_TRUE(late[0] + late[1] + late[2] >= 4.5 * MiB);
    ASSERT_TRUE(late[3] >= 0.95 * before[3]);
    sim_end(pol, st, p, 4);
}

/* Three classes on broker 1 and an elastic producer on broker 2. Broker
 * 1's latency steps to 300 ms for 10 s: within 2 s the elastic producer on
 * broker 1 is at most half its rate; the fragile one keeps >= 90% of its
 * guarantee; bounded is shed after elastic; broker 2's producer is not
 * touched; no throttle exceeds a class's max_pause_ms; 5 s after the step
 * ends every producer is back to >= 90%. */
static void test_shares_follow_class_order(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st;
    sim_prod p[4] = SIM_PRODUCERS;
    double before[4], during[4], late[4], after[4];
    sl_policy_pressure_view v;

    if (pol == NULL)
        return;
    st = sim_start(pol, p, 4);
    step_at = 10 * SEC;
    step_end = 20 * SEC;
    sim_run(st, p, 4, 0, 10 * SEC, 5 * SEC, lat_step, before);
    for (size_t i = 0; i < 4; i++)
        ASSERT_TRUE(before[i] > 0.98 * p[i].want);
    /* 2 s into the step, over the next second */
    sim_run(st, p, 4, 10 * SEC, 13 * SEC, 1 * SEC, lat_step, during);
    ASSERT_TRUE(during[0] <= 0.5 * before[0]);
    ASSERT_TRUE(during[2] >= 0.9 * 2 * MiB);
    ASSERT_TRUE(during[3] >= 0.9 * before[3] && during[3] <= 1.1 * before[3]);
    /* late in the step: elastic gone to the floor share, bounded cut too,
     * fragile still at its guarantee */
    sim_run(st, p, 4, 13 * SEC, 20 * SEC, 2 * SEC, lat_step, late);
    ASSERT_TRUE(late[0] < 0.1 * before[0]);
    ASSERT_TRUE(late[1] < before[1]);
    /* a latency the rate cannot move: everything above the guarantees
     * goes down to the floor (class order shows in the next test) */
    ASSERT_TRUE(late[2] >= 0.9 * 2 * MiB);
    ASSERT_TRUE(late[3] >= 0.9 * before[3] && late[3] <= 1.1 * before[3]);
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    ASSERT_EQ(v.broker, 1);
    ASSERT_TRUE(v.limited);
    ASSERT_EQ(v.reason, SL_THROTTLE_BROKER_LATENCY);
    ASSERT_EQ(p[0].last_reason, SL_THROTTLE_BROKER_LATENCY);
    ASSERT_TRUE(p[0].max_throttle <= 5000);
    ASSERT_TRUE(p[1].max_throttle <= 1000);
    ASSERT_TRUE(p[2].max_throttle <= 200);
    ASSERT_EQ(p[3].max_throttle, 0);
    ASSERT_EQ(sl_policy_pressure_at(st, 2, &v), 0);
    ASSERT_TRUE(!v.limited && v.admitted_bps == INFINITY);
    /* recovery: measured over 4..5 s after the step */
    sim_run(st, p, 4, 20 * SEC, 25 * SEC, 1 * SEC, lat_step, after);
    for (size_t i = 0; i < 4; i++)
        ASSERT_TRUE(after[i] >= 0.9 * before[i]);
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    ASSERT_TRUE(!v.limited);
    {
        sl_policy_pressure_class pc;
        ASSERT_EQ(sl_policy_pressure_class_at(st, 1, 0, &pc), 0);
        ASSERT_TRUE(pc.bytes > 0 && pc.share_bps == INFINITY);
        ASSERT_EQ(sl_policy_pressure_class_at(st, 1, 3, &pc), SL_E_INVALID);
    }
    sim_end(pol, st, p, 4);
}

/* Memory fill above the high-water mark limits everyone with reason
 * MEMORY, elastic first; below it again, the limit goes away. */
static void test_memory_pressure(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st;
    sl_policy_identity e = {"backfill", NULL, NULL}, f = {"cdc", NULL, NULL};
    sl_policy_account *ae, *af;
    sl_policy_decision d;
    sl_policy_pressure_view v;
    int64_t t = 0;
    bool elastic_throttled = false;

    if (pol == NULL)
        return;
    st = sl_policy_state_new(pol, 0);
    ae = sl_policy_account_get(st, &e, 0, NULL);
    af = sl_policy_account_get(st, &f, 0, NULL);
    for (; t < 3 * SEC; t += 10 * MS) {
        sl_policy_charge(st, ae, 80000, 10, t, &d);
        if (t >= 2 * SEC && d.throttle_ms > 0) {
            elastic_throttled = true;
            ASSERT_EQ(d.reason, SL_THROTTLE_MEMORY);
        }
        sl_policy_charge(st, af, 10000, 10, t, &d);
        ASSERT_EQ(d.throttle_ms, 0); /* 1 MB/s is within its guarantee */
        if (t % TICK == 0)
            sl_policy_pressure_tick(st, t, NULL, 0, t < 1 * SEC ? 500 : 950);
    }
    ASSERT_TRUE(elastic_throttled);
    ASSERT_EQ(sl_policy_pressure_at(st, 0, &v), 0);
    ASSERT_EQ(v.broker, SL_POLICY_BROKER_MEMORY);
    ASSERT_TRUE(v.limited);
    ASSERT_EQ(v.reason, SL_THROTTLE_MEMORY);
    for (; t < 6 * SEC; t += TICK)
        sl_policy_pressure_tick(st, t, NULL, 0, 300);
    ASSERT_EQ(sl_policy_pressure_at(st, 0, &v), 0);
    ASSERT_TRUE(!v.limited);
    sl_policy_account_put(st, ae);
    sl_policy_account_put(st, af);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

/* A broker throttle reaches the clients writing to that broker as
 * BROKER_THROTTLE, and only them. */
static void test_broker_throttle_selective(void)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st;
    sl_policy_identity e = {"backfill", NULL, NULL}, o = {"other", NULL, NULL};
    sl_policy_account *ae, *ao;
    sl_policy_decision d;
    sl_policy_broker_bytes b1 = {1, 100000}, b2 = {2, 100000};
    bool seen = false;

    if (pol == NULL)
        return;
    st = sl_policy_state_new(pol, 0);
    ae = sl_policy_account_get(st, &e, 0, NULL);
    ao = sl_policy_account_get(st, &o, 0, NULL);
    for (int64_t t = 0; t < 3 * SEC; t += 10 * MS) {
        sl_policy_charge_brokers(st, ae, b1.bytes, 1, &b1, 1, t, &d);
        if (d.throttle_ms > 0) {
            seen = true;
            ASSERT_EQ(d.reason, SL_THROTTLE_BROKER_THROTTLE);
        }
        sl_policy_charge_brokers(st, ao, b2.bytes, 1, &b2, 1, t, &d);
        ASSERT_EQ(d.throttle_ms, 0);
        if (t % TICK == 0) {
            sl_pressure_sample s[2] = {{1, 3, t >= SEC ? 500 : 0, 0},
                                       {2, 3, 0, 0}};
            sl_policy_pressure_tick(st, t, s, 2, 0);
        }
    }
    ASSERT_TRUE(seen);
    sl_policy_account_put(st, ae);
    sl_policy_account_put(st, ao);
    sl_policy_state_free(st);
    sl_policy_free(pol);
}

/* A broker quota as Kafka enforces one (client quotas, KIP-219): the
 * broker measures the client's byte rate over a window of 11 one-second
 * samples; an answer that takes it over the quota carries throttle_time_ms
 * = (rate - quota) / quota * window, and the broker then mutes the
 * connection for that long, so no answers (and no throttle times) come
 * back until it ends. Sluice's upstream queue to the broker fills with
 * what it admitted and empties at what the broker takes. */
typedef struct sim_quota {
    double quota;         /* bytes/s; 0 = no quota */
    double queued;        /* bytes admitted, not yet taken by the broker */
    double taken[12];     /* bytes taken per one-second sample */
    int64_t muted_until;
    int64_t max_queue_at; /* when the queue was largest (after settling) */
    double max_queued;
    bool no_latency;      /* the delivery reports show no queueing */
} sim_quota;

/* One 100 ms tick of broker 1 under q: takes what is queued unless muted,
 * and returns the throttle time of the tick's last answer (0: none). */
static uint32_t sim_quota_tick(sim_quota *q, int64_t t, double admitted)
{
    size_t cur = (size_t)(t / SEC) % 12;
    double sum = 0, window, rate, take;
    uint32_t thr = 0;

    if (t % SEC == 0)
        q->taken[cur] = 0;
    q->queued += admitted;
    if (t < q->muted_until || q->queued <= 0)
        return 0;
    /* An unmuted connection moves what is queued, up to five 1 MB
     * requests per round trip (the upstream producer's in-flight window;
     * 100 ms here). */
    take = SL_MIN(q->queued, 5e6);
    q->queued -= take;
    q->taken[cur] += take;
    if (q->quota <= 0)
        return 0;
    for (size_t i = 0; i < 12; i++)
        if (i != (cur + 1) % 12)
            sum += q->taken[i];
    window = SL_MIN((double)t / 1e6, 10.0) + (double)(t % SEC) / 1e6;
    window = SL_MAX(window, 1.0);
    rate = sum / window;
    if (rate > q->quota) {
        thr = (uint32_t)((rate - q->quota) / q->quota * window * 1000.0);
        q->muted_until = t + (int64_t)thr * MS;
    }
    return thr;
}

/* Runs the producers against broker 1 under quota q for [from, to);
 * returns the mean rate per producer over the last `measure` us and
 * counts broker 1's episodes. */
static void sim_run_quota(sl_policy_state *st, sim_prod *p, size_t n,
                          sim_quota *q, int64_t from, int64_t to,
                          int64_t measure, double *rate)
{
    double tick_adm = 0;

    for (size_t i = 0; i < n; i++)
        rate[i] = 0;
    for (int64_t t = from; t < to; t += 10 * MS) {
        bool measuring = t >= to - measure;
        for (size_t i = 0; i < n; i++) {
            double before = p[i].sent;
            sim_step(st, &p[i], t);
            if (measuring)
                rate[i] += p[i].sent - before;
            if (p[i].broker == 1)
                tick_adm += p[i].sent - before;
        }
        if ((t + 10 * MS) % TICK == 0) {
            int64_t now = t + 10 * MS;
            sl_pressure_sample s[2] = {{1, 2, 0, 0}, {2, 2, 0, 0}};
            double q0 = q->queued + tick_adm;
            /* what the delivery reports show: the wait in the queue */
            if (q->quota > 0 && !q->no_latency)
                s[0].latency_ms = 2 + q->queued / q->quota * 1000.0;
            s[0].throttle_ms = sim_quota_tick(q, now, tick_adm);
            s[0].acked_bytes = (uint64_t)(q0 - q->queued);
            tick_adm = 0;
            if (measuring && q->queued > q->max_queued) {
                q->max_queued = q->queued;
                q->max_queue_at = now;
            }
            sl_policy_pressure_tick(st, now, s, 2, 100);
            sim_unmute_on_raise(st, p, n);
            if (getenv("SL_TEST_TRACE")) {
                sl_policy_pressure_view v;
                sl_policy_pressure_at(st, 1, &v);
                fprintf(stderr, "  %5.1f s thr %5u lim %d rate %6.2f meas "
                        "%6.2f dlv %6.2f queue %6.2f MiB\n",
                        (double)now / 1e6, s[0].throttle_ms, v.limited,
                        v.limited ? v.admitted_bps / MiB : -1,
                        v.measured_bps / MiB, v.delivered_bps / MiB,
                        q->queued / MiB);
                for (size_t ci = 0; ci < 3; ci++) {
                    sl_policy_pressure_class pc;
                    sl_policy_pressure_class_at(st, 1, ci, &pc);
                    fprintf(stderr, "      class %zu share %6.2f demand "
                            "%6.2f\n", ci, pc.share_bps / MiB,
                            pc.demand_bps / MiB);
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        rate[i] /= (double)measure / 1e6;
}

/* Broker 1 gets a 6 MiB/s quota while 13 MiB/s is offered to it. The
 * controller settles under the quota and stays limited while the quota
 * lasts (one episode, not a limit that comes and goes with every muted
 * spell), what waits in Sluice's queue to the broker stays bounded, and
 * the classes keep their shed order; 10 s after the quota is removed
 * nothing is limited and every producer is back at its rate. */
static void quota_run(bool no_latency)
{
    sl_policy *pol = load(class_policy);
    sl_policy_state *st;
    sim_prod p[4] = SIM_PRODUCERS;
    sim_quota q = {.no_latency = no_latency};
    double before[4], late[4], after[4], total;
    sl_policy_pressure_view v;
    uint64_t episodes;

    if (pol == NULL)
        return;
    st = sim_start(pol, p, 4);
    sim_run_quota(st, p, 4, &q, 0, 5 * SEC, 3 * SEC, before);
    q.quota = 6 * MiB;
    sim_run_quota(st, p, 4, &q, 5 * SEC, 15 * SEC, 5 * SEC, late);
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    episodes = v.episodes;
    q.max_queued = 0;
    sim_run_quota(st, p, 4, &q, 15 * SEC, 45 * SEC, 30 * SEC, late);
    total = late[0] + late[1] + late[2];
    if (getenv("SL_TEST_VERBOSE"))
        fprintf(stderr,
                "  quota 6 MiB/s%s: elastic %.2f bounded %.2f fragile %.2f "
                "(sum %.2f) other %.2f MiB/s; queue up to %.2f MiB; "
                "episodes %llu -> %llu\n",
                no_latency ? " (throttles only)" : "", late[0] / MiB,
                late[1] / MiB, late[2] / MiB, total / MiB,
                late[3] / MiB, q.max_queued / MiB,
                (unsigned long long)episodes,
                (unsigned long long)v.episodes);
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    ASSERT_TRUE(v.limited);
    /* (between throttles, the wait in the queue can be the reason) */
    ASSERT_TRUE(v.reason == SL_THROTTLE_BROKER_THROTTLE ||
                v.reason == SL_THROTTLE_BROKER_LATENCY);
    ASSERT_EQ(v.episodes, episodes); /* no release while the quota holds */
    ASSERT_TRUE(total <= 6.3 * MiB);
    ASSERT_TRUE(total >= 0.8 * 6 * MiB);
    /* at most ~2 s waiting; ~3 s when only throttle times tell */
    ASSERT_TRUE(q.max_queued <= (no_latency ? 3 : 2) * 6 * MiB);
    ASSERT_TRUE(late[2] >= 0.95 * 2 * MiB);
    ASSERT_TRUE(late[1] >= 0.7 * 3 * MiB);
    ASSERT_TRUE(late[0] < late[1]);
    ASSERT_TRUE(late[3] >= 0.95 * before[3]);
    q.quota = 0;
    sim_run_quota(st, p, 4, &q, 45 * SEC, 55 * SEC, 2 * SEC, after);
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    ASSERT_TRUE(!v.limited);
    for (size_t i = 0; i < 4; i++)
        ASSERT_TRUE(after[i] >= 0.9 * before[i]);
    sim_end(pol, st, p, 4);
}

static void test_broker_quota_settles(void)
{
    quota_run(false); /* the queue's wait shows in the latency too */
    quota_run(true);  /* only the broker's throttle times tell */
}

/* "pressure": {"enabled": false} never limits; the section's defaults
 * and bounds come from the loader's table; a reload keeps per-broker class
 * state by class name. */
static void test_disabled_defaults_and_rebind(void)
{
    const char *off =
        "{\"version\": 1, \"pressure\": {\"enabled\": false},\n"
        " \"classes\": {\"a\": {}}, \"defaults\": {\"class\": \"a\"}}";
    const char *bad =
        "{\"version\": 1, \"pressure\": {\"decrease_pct\": 95},\n"
        " \"classes\": {\"a\": {}}, \"defaults\": {\"class\": \"a\"}}";
    const char *plain =
        "{\"version\": 1,\n"
        " \"classes\": {\"a\": {}}, \"defaults\": {\"class\": \"a\"}}";
    char err[512] = "";
    sl_policy *pol = load(off), *p2 = load(plain), *p3 = NULL;
    sl_policy_state *st;
    sl_policy_identity id = {"x", NULL, NULL};
    sl_policy_account *a;
    sl_policy_decision d;
    sl_policy_broker_bytes bb = {7, 1000000};
    sl_policy_pressure_view v;
    sl_policy_pressure_class pc;
    const sl_policy_pressure *pp;

    if (pol == NULL || p2 == NULL)
        return;
    ASSERT_TRUE(!sl_policy_pressure_of(pol)->enabled);
    pp = sl_policy_pressure_of(p2);
    ASSERT_TRUE(pp->enabled);
    ASSERT_EQ(pp->latency_target_ms, 200);
    ASSERT_EQ(pp->memory_high_water_pct, 80);
    ASSERT_EQ(pp->min_bytes_per_sec, 262144);
    ASSERT_EQ(pp->decrease_pct, 30);
    ASSERT_EQ(pp->recovery_ms, 2000);
    ASSERT_EQ(sl_policy_load_string(bad, strlen(bad), "t.json", &p3, err,
                                    sizeof(err)),
              SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "t.json:1: pressure.decrease_pct:") != NULL);

    st = sl_policy_state_new(pol, 0);
    a = sl_policy_account_get(st, &id, 0, NULL);
    for (int64_t t = 0; t < 3 * SEC; t += 10 * MS) {
        sl_policy_charge_brokers(st, a, bb.bytes, 1, &bb, 1, t, &d);
        ASSERT_EQ(d.throttle_ms, 0);
        if (t % TICK == 0) {
            sl_pressure_sample s = {7, 5000, 100, 0};
            sl_policy_pressure_tick(st, t, &s, 1, 999);
        }
    }
    ASSERT_EQ(sl_policy_pressure_count(st), 2);
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    ASSERT_TRUE(!v.limited && v.broker == 7);
    /* enabled from the reload on: accounting starts, and survives the
     * next reload by class name */
    sl_policy_state_rebind(st, p2, 3 * SEC);
    sl_policy_account_put(st, a);
    a = sl_policy_account_get(st, &id, 3 * SEC, NULL);
    for (int64_t t = 3 * SEC; t < 4 * SEC; t += 10 * MS) {
        sl_policy_charge_brokers(st, a, bb.bytes, 1, &bb, 1, t, &d);
        if (t % TICK == 0)
            sl_policy_pressure_tick(st, t, NULL, 0, 0);
    }
    ASSERT_EQ(sl_policy_pressure_at(st, 1, &v), 0);
    ASSERT_TRUE(v.measured_bps > 50e6);
    sl_policy_state_rebind(st, pol, 4 * SEC);
    ASSERT_EQ(sl_policy_pressure_class_at(st, 1, 0, &pc), 0);
    ASSERT_UEQ(pc.bytes, 100ull * 1000000ull);
    sl_policy_account_put(st, a);
    sl_policy_state_free(st);
    sl_policy_free(pol);
    sl_policy_free(p2);
}

SL_TEST_MAIN(SL_TEST(test_ctl_step_and_recovery),
             SL_TEST(test_ctl_release_waits_for_backlog), SL_TEST(test_ctl_noise),
             SL_TEST(test_ctl_single_spike), SL_TEST(test_ctl_cut_spacing),
             SL_TEST(test_ctl_throttle_memory_time),
             SL_TEST(test_shares_follow_class_order),
             SL_TEST(test_shares_settle_in_class_order),
             SL_TEST(test_memory_pressure),
             SL_TEST(test_broker_throttle_selective),
             SL_TEST(test_broker_quota_settles),
             SL_TEST(test_disabled_defaults_and_rebind))
