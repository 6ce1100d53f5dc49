/*
 * Log-linear latency histogram for the bench load generator, in the
 * manner of HdrHistogram: values below 2^SL_BENCH_HIST_SUB_BITS are counted
 * exactly; above, each power of two is split into 2^SL_BENCH_HIST_SUB_BITS
 * equal buckets, so a bucket is never wider than 1/128 of its lower
 * bound (relative error < 0.79%). Fixed size (no allocation while
 * recording), one add and one shift per record().
 *
 * Units are whatever the caller records (the load generator records
 * nanoseconds). Values up to 2^SL_BENCH_HIST_MAX_BITS - 1 are bucketed; larger
 * values land in the last bucket and still count in max/sum.
 *
 * Not thread-safe: one histogram per thread, merged at the end. Pure.
 */
#ifndef SLUICE_BENCH_HIST_H
#define SLUICE_BENCH_HIST_H

#include <stdint.h>

#define SL_BENCH_HIST_SUB_BITS 7   /* 128 sub-buckets per power of two */
#define SL_BENCH_HIST_MAX_BITS 42  /* 2^42 ns = 73 minutes */
#define SL_BENCH_HIST_SUB (1u << SL_BENCH_HIST_SUB_BITS)
#define SL_BENCH_HIST_BUCKETS                                                   \
    ((SL_BENCH_HIST_MAX_BITS - SL_BENCH_HIST_SUB_BITS + 1) * SL_BENCH_HIST_SUB)

typedef struct sl_bench_hist {
    uint64_t count;
    uint64_t min, max; /* exact; min is UINT64_MAX when empty */
    long double sum;   /* exact enough for the mean of 2^64 ns */
    uint64_t buckets[SL_BENCH_HIST_BUCKETS];
} sl_bench_hist;

void sl_bench_hist_init(sl_bench_hist *h);
void sl_bench_hist_record(sl_bench_hist *h, uint64_t v);
/* Adds src's counts into dst. */
void sl_bench_hist_merge(sl_bench_hist *dst, const sl_bench_hist *src);

/* Bucket of a value, and the value range [lo, hi] a bucket covers. */
unsigned sl_bench_hist_index(uint64_t v);
uint64_t sl_bench_hist_bucket_lo(unsigned idx);
uint64_t sl_bench_hist_bucket_hi(unsigned idx);

/* The q-quantile, 0 <= q <= 1: the highest value equivalent to the
 * bucket holding the ceil(q * count)-th smallest sample (at least the
 * first), clamped to [min, max] so that p0 == min and p100 == max are
 * exact. Never under-reports by more than the bucket width. 0 when
 * empty. */
uint64_t sl_bench_hist_quantile(const sl_bench_hist *h, double q);
double sl_bench_hist_mean(const sl_bench_hist *h);

#endif
