/* Log-linear histogram: see hist.h. */
#include "hist.h"

#include <math.h>
#include <string.h>

void sl_bench_hist_init(sl_bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Bucket k (k >= 1) of the log part covers [2^(k+SUB_BITS-1),
 * 2^(k+SUB_BITS)) in SUB buckets of width 2^(k-1); bucket block 0 is the
 * exact range [0, SUB). */
unsigned sl_bench_hist_index(uint64_t v)
{
    unsigned e, k;

    if (v < SL_BENCH_HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v); /* floor(log2 v) >= SUB_BITS */
    if (e >= SL_BENCH_HIST_MAX_BITS)
        return SL_BENCH_HIST_BUCKETS - 1;
    k = e - SL_BENCH_HIST_SUB_BITS + 1;
    return k * SL_BENCH_HIST_SUB +
           (unsigned)((v >> (k - 1)) & (SL_BENCH_HIST_SUB - 1));
}

uint64_t sl_bench_hist_bucket_lo(unsigned idx)
{
    unsigned k = idx / SL_BENCH_HIST_SUB, m = idx % SL_BENCH_HIST_SUB;

    if (k == 0)
        return m;
    return ((uint64_t)SL_BENCH_HIST_SUB + m) << (k - 1);
}

uint64_t sl_bench_hist_bucket_hi(unsigned idx)
{
    unsigned k = idx / SL_BENCH_HIST_SUB;

    if (k == 0)
        return idx;
    return sl_bench_hist_bucket_lo(idx) + (((uint64_t)1 << (k - 1)) - 1);
}

void sl_bench_hist_record(sl_bench_hist *h, uint64_t v)
{
    h->buckets[sl_bench_hist_index(v)]++;
    h->count++;
    h->sum += (long double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void sl_bench_hist_merge(sl_bench_hist *dst, const sl_bench_hist *src)
{
    for (unsigned i = 0; i < SL_BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t sl_bench_hist_quantile(const sl_bench_hist *h, double q)
{
    uint64_t rank, cum = 0;

    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    rank = (uint64_t)ceill((long double)q * (long double)h->count);
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < SL_BENCH_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        if (cum >= rank) {
            uint64_t v = sl_bench_hist_bucket_hi(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double sl_bench_hist_mean(const sl_bench_hist *h)
{
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
