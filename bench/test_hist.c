/* The load generator's log-linear histogram (bench/hist.h), against
 * inputs whose quantiles are known. */
#include "hist.h"

#include <stdlib.h>

#include "sl_test.h"

static sl_bench_hist h; /* 36 KiB: static, not on the stack */

/* Every value lies inside its own bucket, buckets tile the line without
 * gaps, and no bucket is wider than 1/128 of its lower bound. */
static void test_buckets_tile(void)
{
    uint64_t prev_hi = 0;

    for (unsigned i = 0; i < SL_BENCH_HIST_BUCKETS; i++) {
        uint64_t lo = sl_bench_hist_bucket_lo(i), hi = sl_bench_hist_bucket_hi(i);
        if (i > 0 && lo != prev_hi + 1) {
            ASSERT_EQ(lo, prev_hi + 1);
            return;
        }
        if (lo >= SL_BENCH_HIST_SUB && (hi - lo + 1) * SL_BENCH_HIST_SUB > lo) {
            ASSERT_TRUE((hi - lo + 1) * SL_BENCH_HIST_SUB <= lo);
            return;
        }
        ASSERT_EQ(sl_bench_hist_index(lo), i);
        ASSERT_EQ(sl_bench_hist_index(hi), i);
        prev_hi = hi;
    }
    ASSERT_UEQ(prev_hi, ((uint64_t)1 << SL_BENCH_HIST_MAX_BITS) - 1);
}

static void test_exact_below_sub(void)
{
    for (uint64_t v = 0; v < SL_BENCH_HIST_SUB; v++) {
        ASSERT_EQ(sl_bench_hist_index(v), v);
        ASSERT_EQ(sl_bench_hist_bucket_lo((unsigned)v), v);
        ASSERT_EQ(sl_bench_hist_bucket_hi((unsigned)v), v);
    }
    /* First log bucket block: width 1 still (2^(1-1)). */
    ASSERT_EQ(sl_bench_hist_index(128), 128);
    ASSERT_EQ(sl_bench_hist_index(255), 255);
    /* Second block: width 2. */
    ASSERT_EQ(sl_bench_hist_index(256), 256);
    ASSERT_EQ(sl_bench_hist_index(257), 256);
    ASSERT_EQ(sl_bench_hist_index(258), 257);
    ASSERT_EQ(sl_bench_hist_bucket_hi(256), 257);
}

static void test_huge_values_clamp(void)
{
    sl_bench_hist_init(&h);
    sl_bench_hist_record(&h, UINT64_MAX);
    ASSERT_EQ(sl_bench_hist_index(UINT64_MAX), SL_BENCH_HIST_BUCKETS - 1);
    ASSERT_UEQ(h.max, UINT64_MAX);
    ASSERT_UEQ(sl_bench_hist_quantile(&h, 0.5), UINT64_MAX);
}

static void test_empty(void)
{
    sl_bench_hist_init(&h);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.5), 0);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.999), 0);
    ASSERT_TRUE(sl_bench_hist_mean(&h) == 0.0);
}

/* 1..100: all exact. p50 = 50, p99 = 99, p99.9 = 100 (rank ceil(99.9)). */
static void test_small_uniform_exact(void)
{
    sl_bench_hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++)
        sl_bench_hist_record(&h, v);
    ASSERT_EQ(h.count, 100);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.5), 50);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.99), 99);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.999), 100);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.0), 1);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 1.0), 100);
    ASSERT_TRUE(sl_bench_hist_mean(&h) == 50.5);
}

/* 1..1,000,000 in a shuffled order: the true p50 is 500,000, p99 990,000,
 * p99.9 999,000. The reported value is the top of the holding bucket:
 * never below the truth, never more than 1/128 above it. */
static void check_close(uint64_t got, uint64_t want)
{
    if (got < want || (got - want) * SL_BENCH_HIST_SUB > want)
        SL__FAIL("quantile %llu not within [%llu, %llu * (1 + 1/128)]",
                 (unsigned long long)got, (unsigned long long)want,
                 (unsigned long long)want);
}

static void test_large_uniform_within_error(void)
{
    uint64_t n = 1000000, x = 0;

    sl_bench_hist_init(&h);
    /* x -> (21 x + 7) mod n has full period (Hull-Dobell: 7 is coprime
     * with n = 2^6 5^6, and 20 is divisible by 2, 4 and 5), so x + 1
     * visits 1..n once each in a scrambled order. */
    for (uint64_t i = 0; i < n; i++) {
        sl_bench_hist_record(&h, x + 1);
        x = (21 * x + 7) % n;
    }
    ASSERT_EQ(h.count, n);
    ASSERT_EQ(h.min, 1);
    ASSERT_EQ(h.max, n);
    check_close(sl_bench_hist_quantile(&h, 0.5), 500000);
    check_close(sl_bench_hist_quantile(&h, 0.99), 990000);
    check_close(sl_bench_hist_quantile(&h, 0.999), 999000);
    ASSERT_TRUE(sl_bench_hist_mean(&h) == 500000.5);
}

/* A bimodal latency: 990 requests at 200 us, 9 at 5 ms, 1 at 80 ms.
 * p50 and p99 sit in the fast mode, p99.9 in the slow one, max exact. */
static void test_bimodal_tail(void)
{
    sl_bench_hist_init(&h);
    for (int i = 0; i < 990; i++)
        sl_bench_hist_record(&h, 200000);
    for (int i = 0; i < 9; i++)
        sl_bench_hist_record(&h, 5000000);
    sl_bench_hist_record(&h, 80000000);
    check_close(sl_bench_hist_quantile(&h, 0.5), 200000);
    check_close(sl_bench_hist_quantile(&h, 0.99), 200000);
    check_close(sl_bench_hist_quantile(&h, 0.991), 5000000);
    check_close(sl_bench_hist_quantile(&h, 0.999), 5000000);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.9999), 80000000);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 1.0), 80000000);
}

/* Clamping: one sample reports itself exactly at every quantile even
 * though its bucket is wider. */
static void test_single_sample_exact(void)
{
    sl_bench_hist_init(&h);
    sl_bench_hist_record(&h, 123457);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.5), 123457);
    ASSERT_EQ(sl_bench_hist_quantile(&h, 0.999), 123457);
}

/* Merging two halves equals recording everything in one. */
static void test_merge(void)
{
    static sl_bench_hist a, b;

    sl_bench_hist_init(&h);
    sl_bench_hist_init(&a);
    sl_bench_hist_init(&b);
    for (uint64_t v = 1; v <= 20000; v++) {
        sl_bench_hist_record(&h, v * 37);
        sl_bench_hist_record(v % 2 ? &a : &b, v * 37);
    }
    sl_bench_hist_merge(&a, &b);
    ASSERT_EQ(a.count, h.count);
    ASSERT_EQ(a.min, h.min);
    ASSERT_EQ(a.max, h.max);
    ASSERT_TRUE(memcmp(a.buckets, h.buckets, sizeof(h.buckets)) == 0);
    ASSERT_EQ(sl_bench_hist_quantile(&a, 0.99), sl_bench_hist_quantile(&h, 0.99));
}

SL_TEST_MAIN(SL_TEST(test_buckets_tile), SL_TEST(test_exact_below_sub),
             SL_TEST(test_huge_values_clamp), SL_TEST(test_empty),
             SL_TEST(test_small_uniform_exact),
             SL_TEST(test_large_uniform_within_error),
             SL_TEST(test_bimodal_tail), SL_TEST(test_single_sample_exact),
             SL_TEST(test_merge))
