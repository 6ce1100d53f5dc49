/* RecordBatch v2: a hand-made wire vector, builder round trips for every
 * codec, and malformed input of every kind. */
#include "sluice/record.h"

#include <stdio.h>
#include <stdlib.h>

#include "sl_test.h"

/*
 * A two-record batch written field by field from the v2 layout. The same
 * bytes come out of kafka-python 2.0.2's DefaultRecordBatchBuilder for
 * these records, and the CRC was checked with crcmod's "crc-32c".
 */
static const uint8_t kafka_batch[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* baseOffset 0 */
    0x00, 0x00, 0x00, 0x4a,                         /* batchLength 74 */
    0x00, 0x00, 0x00, 0x00,                         /* partitionLeaderEpoch */
    0x02,                                           /* magic 2 */
    0x5e, 0x79, 0x28, 0x23,                         /* crc 0x5E792823 */
    0x00, 0x00,                                     /* attributes: none */
    0x00, 0x00, 0x00, 0x01,                         /* lastOffsetDelta 1 */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, /* baseTs 1700000000000 */
    0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05, /* maxTs +5 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* producerId -1 */
    0xff, 0xff,                                     /* producerEpoch -1 */
    0xff, 0xff, 0xff, 0xff,                         /* baseSequence -1 */
    0x00, 0x00, 0x00, 0x02,                         /* recordsCount 2 */
    /* record 0 */
    0x22,                         /* length 17 */
    0x00,                         /* attributes */
    0x00,                         /* timestampDelta 0 */
    0x00,                         /* offsetDelta 0 */
    0x04, 'k', '1',               /* key "k1" */
    0x0a, 'h', 'e', 'l', 'l', 'o', /* value "hello" */
    0x02,                         /* 1 header */
    0x02, 'h', 0x02, 'v',         /* "h" = "v" */
    /* record 1 */
    0x0c, /* length 6 */
    0x00, /* attributes */
    0x0a, /* timestampDelta 5 */
    0x02, /* offsetDelta 1 */
    0x01, /* key null (-1) */
    0x00, /* value "" */
    0x00, /* no headers */
};

/* ---- helpers ---------------------------------------------------------- */

typedef struct trec {
    int64_t ts;
    const char *key;
    int32_t key_len;
    const char *value;
    int32_t value_len;
    const sl_header *headers;
    int32_t n_headers;
} trec;

static void check_bytes(const uint8_t *got, int32_t got_len, const void *want,
                        int32_t want_len, const char *what, int idx)
{
    if (got_len != want_len) {
        fprintf(stderr, "  record %d %s: len %d != %d\n", idx, what,
                (int)got_len, (int)want_len);
        ASSERT_EQ(got_len, want_len);
        return;
    }
    if (want_len < 0) {
        ASSERT_TRUE(got == NULL);
        return;
    }
    ASSERT_TRUE(got != NULL);
    if (got != NULL && want_len > 0)
        ASSERT_MEMEQ(got, want, (size_t)want_len);
}

/* Decodes one record from r and compares every field with want. */
static void check_record(sl_rd *r, const trec *want, int64_t base_ts, int idx)
{
    sl_record rec;
    int rc = sl_record_next(r, &rec);

    ASSERT_EQ(rc, 0);
    if (rc != 0)
        return;
    ASSERT_EQ(rec.attributes, 0);
    ASSERT_EQ(rec.timestamp_delta, want->ts - base_ts);
    ASSERT_EQ(rec.offset_delta, idx);
    check_bytes(rec.key, rec.key_len, want->key, want->key_len, "key", idx);
    check_bytes(rec.value, rec.value_len, want->value, want->value_len,
                "value", idx);
    ASSERT_EQ(rec.n_headers, want->n_headers);
    {
        sl_rd hr = sl_rd_init(rec.headers, rec.headers_len);
        for (int32_t i = 0; i < rec.n_headers && i < want->n_headers; i++) {
            sl_header h;
            ASSERT_EQ(sl_header_next(&hr, &h), 0);
            check_bytes(h.key, h.key_len, want->headers[i].key,
                        want->headers[i].key_len, "header key", idx);
            check_bytes(h.value, h.value_len, want->headers[i].value,
                        want->headers[i].value_len, "header value", idx);
        }
        ASSERT_EQ(sl_rd_left(&hr), 0);
    }
}

/* Builds a batch of n records with the builder, appended to w. */
static int build(sl_wr *w, const trec *recs, int n, int64_t base_ts,
                 int codec, bool xerial)
{
    sl_batch_builder bb;
    int rc;

    sl_batch_builder_init(&bb, base_ts);
    for (int i = 0; i < n; i++)
        sl_batch_builder_add(&bb, recs[i].ts, recs[i].key, recs[i].key_len,
                             recs[i].value, recs[i].value_len,
                             recs[i].headers, recs[i].n_headers);
    rc = sl_batch_builder_finish(&bb, w, codec, xerial, 4242, 7, 100);
    sl_batch_builder_free(&bb);
    return rc;
}

/* Checks a decoded batch against recs (decompressing if needed). */
static void check_batch(const sl_batch *b, const trec *recs, int n,
                        int64_t base_ts, int codec)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    const uint8_t *p = b->records;
    size_t len = b->records_len;
    int64_t max_ts = base_ts;
    sl_rd r;

    ASSERT_EQ(sl_batch_codec(b), codec);
    ASSERT_EQ(b->records_count, n);
    ASSERT_EQ(b->last_offset_delta, n - 1);
    ASSERT_EQ(b->base_timestamp, base_ts);
    for (int i = 0; i < n; i++)
        if (i == 0 || recs[i].ts > max_ts)
            max_ts = recs[i].ts;
    ASSERT_EQ(b->max_timestamp, max_ts);
    ASSERT_EQ(b->producer_id, 4242);
    ASSERT_EQ(b->producer_epoch, 7);
    ASSERT_EQ(b->base_sequence, 100);
    ASSERT_EQ(b->magic, 2);
    if (codec != SL_CODEC_NONE) {
        int rc = sl_decompress(codec, b->records, b->records_len, 64 << 20,
                               &plain, &plain_len);
        ASSERT_EQ(rc, 0);
        if (rc != 0)
            return;
        p = plain;
        len = plain_len;
    }
    r = sl_rd_init(p, len);
    for (int i = 0; i < n; i++)
        check_record(&r, &recs[i], base_ts, i);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_free(plain);
}

/* Wraps a records section (trusted to hold `count` records or not) into
 * a v2 batch with a correct CRC, so record-level errors can be tested. */
static void wrap_records(sl_wr *w, const void *recs, size_t len,
                         int32_t count, int16_t attrs)
{
    size_t start = w->len;

    sl_wr_i64(w, 0);
    sl_wr_i32(w, (int32_t)(SL_BATCH_HEADER_SIZE - 12 + len));
    sl_wr_i32(w, -1);
    sl_wr_i8(w, 2);
    sl_wr_u32(w, 0);
    sl_wr_i16(w, attrs);
    sl_wr_i32(w, count - 1);
    sl_wr_i64(w, 1000);
    sl_wr_i64(w, 1000);
    sl_wr_i64(w, -1);
    sl_wr_i16(w, -1);
    sl_wr_i32(w, -1);
    sl_wr_i32(w, count);
    sl_wr_raw(w, recs, len);
    sl_wr_put_u32_at(w->buf + start + 17,
                     sl_crc32c(0, w->buf + start + 21, w->len - start - 21));
}

/* Recomputes the CRC of a batch whose covered bytes were patched. */
static void fix_crc(uint8_t *batch, size_t len)
{
    sl_wr_put_u32_at(batch + 17, sl_crc32c(0, batch + 21, len - 21));
}

/* Decodes the first batch of buf and its first record. */
static int record_error(const void *recs, size_t len, int32_t count)
{
    sl_wr w;
    sl_batch b;
    sl_record rec;
    sl_rd r;
    int rc;

    sl_wr_init(&w, 0);
    wrap_records(&w, recs, len, count, 0);
    r = sl_rd_init(w.buf, w.len);
    rc = sl_batch_next(&r, &b);
    ASSERT_EQ(rc, 0);
    if (rc == 0) {
        sl_rd rr = sl_rd_init(b.records, b.records_len);
        rc = sl_record_next(&rr, &rec);
        if (rc != 0) {
            ASSERT_EQ(rr.err, rc);            /* sticky */
            ASSERT_TRUE(rr.p == b.records);   /* not advanced */
            ASSERT_EQ(sl_record_next(&rr, &rec), rc);
        }
    }
    sl_wr_free(&w);
    return rc;
}

/* ---- tests ------------------------------------------------------------ */

static const sl_header hello_hdr[] = {{(const uint8_t *)"h", 1,
                                       (const uint8_t *)"v", 1}};
static const trec kafka_recs[] = {
    {1700000000000LL, "k1", 2, "hello", 5, hello_hdr, 1},
    {1700000000005LL, NULL, -1, "", 0, NULL, 0},
};

static void test_kafka_vector(void)
{
    sl_rd r = sl_rd_init(kafka_batch, sizeof(kafka_batch));
    sl_batch b;
    int rc;

    ASSERT_UEQ(sl_crc32c(0, kafka_batch + 21, sizeof(kafka_batch) - 21),
               0x5E792823u);
    rc = sl_batch_next(&r, &b);
    ASSERT_EQ(rc, 0);
    if (rc != 0)
        return;
    ASSERT_EQ(b.base_offset, 0);
    ASSERT_EQ(b.batch_length, 74);
    ASSERT_EQ(b.partition_leader_epoch, 0);
    ASSERT_EQ(b.magic, 2);
    ASSERT_UEQ(b.crc, 0x5E792823u);
    ASSERT_EQ(b.attributes, 0);
    ASSERT_EQ(b.last_offset_delta, 1);
    ASSERT_EQ(b.base_timestamp, 1700000000000LL);
    ASSERT_EQ(b.max_timestamp, 1700000000005LL);
    ASSERT_EQ(b.producer_id, -1);
    ASSERT_EQ(b.producer_epoch, -1);
    ASSERT_EQ(b.base_sequence, -1);
    ASSERT_EQ(b.records_count, 2);
    ASSERT_TRUE(b.raw == kafka_batch); /* zero-copy */
    ASSERT_EQ(b.raw_len, sizeof(kafka_batch));
    ASSERT_TRUE(b.records == kafka_batch + 61);
    ASSERT_EQ(b.records_len, sizeof(kafka_batch) - 61);
    ASSERT_EQ(sl_batch_next(&r, &b), 1); /* end */

    {
        sl_rd rr = sl_rd_init(b.records, b.records_len);
        for (int i = 0; i < 2; i++)
            check_record(&rr, &kafka_recs[i], 1700000000000LL, i);
        ASSERT_EQ(sl_rd_left(&rr), 0);
    }
    {
        /* Key and value point into the caller's buffer. */
        sl_rd rr = sl_rd_init(b.records, b.records_len);
        sl_record rec;
        ASSERT_EQ(sl_record_next(&rr, &rec), 0);
        ASSERT_TRUE(rec.key == kafka_batch + 61 + 5);
        ASSERT_TRUE(rec.value == kafka_batch + 61 + 8);
        ASSERT_EQ(rec.headers_len, 4);
    }
}

/* The builder writes the same bytes, except partitionLeaderEpoch (Java
 * producers send -1, kafka-python 0; the CRC does not cover it). */
static void test_builder_matches_vector(void)
{
    sl_batch_builder bb;
    sl_wr w;

    sl_wr_init(&w, 0);
    sl_batch_builder_init(&bb, 1700000000000LL);
    for (int i = 0; i < 2; i++)
        sl_batch_builder_add(&bb, kafka_recs[i].ts, kafka_recs[i].key,
                             kafka_recs[i].key_len, kafka_recs[i].value,
                             kafka_recs[i].value_len, kafka_recs[i].headers,
                             kafka_recs[i].n_headers);
    ASSERT_EQ(sl_batch_builder_finish(&bb, &w, SL_CODEC_NONE, false, -1, -1,
                                      -1),
              0);
    sl_batch_builder_free(&bb);
    ASSERT_EQ(w.len, sizeof(kafka_batch));
    if (w.len == sizeof(kafka_batch)) {
        static const uint8_t minus1[4] = {0xff, 0xff, 0xff, 0xff};
        ASSERT_MEMEQ(w.buf + 12, minus1, 4);
        ASSERT_MEMEQ(w.buf, kafka_batch, 12);
        ASSERT_MEMEQ(w.buf + 16, kafka_batch + 16, sizeof(kafka_batch) - 16);
    }
    sl_wr_free(&w);
}

static const sl_header mixed_hdrs[] = {
    {(const uint8_t *)"trace-id", 8, (const uint8_t *)"abc123", 6},
    {(const uint8_t *)"null-value", 10, NULL, -1},
    {(const uint8_t *)"empty-value", 11, (const uint8_t *)"", 0},
    {(const uint8_t *)"", 0, (const uint8_t *)"empty key", 9},
};
static const trec edge_recs[] = {
    {5000, NULL, -1, "null key", 8, NULL, 0},
    {5001, "", 0, "empty key", 9, NULL, 0},
    {5002, "tombstone", 9, NULL, -1, NULL, 0},
    {5003, "empty value", 11, "", 0, NULL, 0},
    {5004, NULL, -1, NULL, -1, mixed_hdrs, 4},
    {4000, "older", 5, "negative delta", 14, mixed_hdrs + 1, 1},
    {9000, "", 0, "", 0, mixed_hdrs, 2},
};

static const struct {
    int codec;
    bool xerial;
} codecs[] = {
    {SL_CODEC_NONE, false},   {SL_CODEC_GZIP, false}, {SL_CODEC_SNAPPY, false},
    {SL_CODEC_SNAPPY, true},  {SL_CODEC_LZ4, false},  {SL_CODEC_ZSTD, false},
};

static void round_trip(const trec *recs, int n, int64_t base_ts)
{
    for (size_t c = 0; c < SL_ARRAY_SIZE(codecs); c++) {
        sl_wr w;
        sl_batch b;
        sl_rd r;
        int rc;

        sl_wr_init(&w, 0);
        rc = build(&w, recs, n, base_ts, codecs[c].codec, codecs[c].xerial);
        ASSERT_EQ(rc, 0);
        r = sl_rd_init(w.buf, w.len);
        rc = sl_batch_next(&r, &b);
        ASSERT_EQ(rc, 0);
        if (rc == 0)
            check_batch(&b, recs, n, base_ts, codecs[c].codec);
        ASSERT_EQ(sl_batch_next(&r, &b), 1);
        if (codecs[c].xerial)
            ASSERT_MEMEQ(b.records, "\x82SNAPPY\0", 8);
        sl_wr_free(&w);
    }
}

static void test_round_trip_edge_records(void)
{
    round_trip(edge_recs, (int)SL_ARRAY_SIZE(edge_recs), 5000);
}

/* A batch of no records builds (count 0, lastOffsetDelta -1), and the
 * decoder refuses it as a broker does: INVALID_RECORD, not corrupt. */
static void test_round_trip_empty_batch(void)
{
    for (size_t c = 0; c < SL_ARRAY_SIZE(codecs); c++) {
        sl_wr w;
        sl_batch b;
        sl_rd r;

        sl_wr_init(&w, 0);
        ASSERT_EQ(build(&w, NULL, 0, 123, codecs[c].codec, codecs[c].xerial),
                  0);
        r = sl_rd_init(w.buf, w.len);
        ASSERT_EQ(sl_batch_next(&r, &b), SL_E_INVALID);
        sl_wr_free(&w);
    }
}

static void test_round_trip_many(void)
{
    enum { N = 5000 };
    trec *recs = calloc(N, sizeof(*recs));
    char (*keys)[16] = calloc(N, 16);
    char *value = malloc(3000);

    for (int i = 0; i < 3000; i++)
        value[i] = (char)('a' + (i * 7) % 26);
    for (int i = 0; i < N; i++) {
        recs[i].ts = 1700000000000LL + i * 3;
        recs[i].key_len = snprintf(keys[i], 16, "key-%d", i);
        recs[i].key = keys[i];
        recs[i].value = value + i % 100;
        recs[i].value_len = (i * 37) % 2900; /* 0 .. 2899 bytes */
        recs[i].headers = i % 3 ? mixed_hdrs : NULL;
        recs[i].n_headers = i % 3 ? 1 + i % 4 : 0;
    }
    round_trip(recs, N, 1700000000000LL);
    free(value);
    free(keys);
    free(recs);
}

/* Several batches in one partition's records, as a Produce may carry. */
static void test_multiple_batches(void)
{
    sl_wr w;
    sl_batch b;
    sl_rd r;
    int n = 0;

    sl_wr_init(&w, 0);
    ASSERT_EQ(build(&w, edge_recs, 3, 5000, SL_CODEC_NONE, false), 0);
    ASSERT_EQ(build(&w, edge_recs, 5, 5000, SL_CODEC_ZSTD, false), 0);
    ASSERT_EQ(build(&w, edge_recs, 7, 5000, SL_CODEC_SNAPPY, true), 0);
    r = sl_rd_init(w.buf, w.len);
    while (sl_batch_next(&r, &b) == 0) {
        static const int counts[] = {3, 5, 7};
        ASSERT_EQ(b.records_count, counts[n]);
        n++;
    }
    ASSERT_EQ(n, 3);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_wr_free(&w);
}

static void test_crc_mismatch(void)
{
    uint8_t b[sizeof(kafka_batch)];
    sl_batch batch;
    int bad = 0;

    /* Any single flipped bit in the covered range (attributes .. end) or
     * in the CRC itself is caught. */
    for (size_t i = 17; i < sizeof(b); i++) {
        sl_rd r;
        int rc;

        memcpy(b, kafka_batch, sizeof(b));
        b[i] ^= (uint8_t)(1u << (i % 8));
        r = sl_rd_init(b, sizeof(b));
        rc = sl_batch_next(&r, &batch);
        if (rc != SL_E_CRC)
            bad++;
        if (i == 40) {
            ASSERT_EQ(rc, SL_E_CRC);
            ASSERT_EQ(r.err, SL_E_CRC);
            ASSERT_TRUE(r.p == b); /* not advanced */
            ASSERT_EQ(sl_batch_next(&r, &batch), SL_E_CRC); /* sticky */
        }
    }
    ASSERT_EQ(bad, 0);
}

static void test_legacy_magic(void)
{
    /* A real v1 message (offset, size 24, crc, magic 1, attributes,
     * timestamp, null key, value "hi"): shorter than a v2 header. */
    static const uint8_t v1[] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0x12, 0x34, 0x56, 0x78,
        0x01, 0x00, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,
        0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 'h', 'i'};
    uint8_t b[sizeof(kafka_batch)];
    sl_batch batch;
    sl_rd r;

    r = sl_rd_init(v1, sizeof(v1));
    ASSERT_EQ(sl_batch_next(&r, &batch), SL_E_UNSUPPORTED);
    memcpy(b, v1, sizeof(v1));
    b[16] = 0; /* magic 0 */
    r = sl_rd_init(b, sizeof(v1));
    ASSERT_EQ(sl_batch_next(&r, &batch), SL_E_UNSUPPORTED);

    /* A v2 batch with magic 1 (the magic is outside the CRC). */
    memcpy(b, kafka_batch, sizeof(b));
    b[16] = 1;
    r = sl_rd_init(b, sizeof(b));
    ASSERT_EQ(sl_batch_next(&r, &batch), SL_E_UNSUPPORTED);
    b[16] = 3;
    r = sl_rd_init(b, sizeof(b));
    ASSERT_EQ(sl_batch_next(&r, &batch), SL_E_UNSUPPORTED);
}

/* Every prefix of a batch fails with SL_E_TRUNCATED (the empty prefix is
 * "no more batches"), read from an exactly sized copy so ASan sees any
 * overread. */
static void test_truncated_everywhere(void)
{
    sl_wr w;
    int bad = 0;

    sl_wr_init(&w, 0);
    ASSERT_EQ(build(&w, edge_recs, (int)SL_ARRAY_SIZE(edge_recs), 5000,
                    SL_CODEC_NONE, false),
              0);
    for (size_t cut = 0; cut < w.len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        sl_batch b;
        sl_rd r;
        int rc;

        memcpy(p, w.buf, cut);
        r = sl_rd_init(p, cut);
        rc = sl_batch_next(&r, &b);
        if (rc != (cut == 0 ? 1 : SL_E_TRUNCATED)) {
            fprintf(stderr, "  cut %zu: %s\n", cut, sl_err_name(rc));
            bad++;
        }
        free(p);
    }
    ASSERT_EQ(bad, 0);

    /* The records section cut anywhere: each record either decodes whole
     * or fails, never reads past the cut. */
    {
        sl_rd r = sl_rd_init(w.buf, w.len);
        sl_batch b;
        int errors = 0;

        ASSERT_EQ(sl_batch_next(&r, &b), 0);
        for (size_t cut = 0; cut < b.records_len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1);
            sl_rd rr = sl_rd_init(p, cut);
            sl_record rec;
            int decoded = 0, rc = 0;

            memcpy(p, b.records, cut);
            while (sl_rd_left(&rr) > 0 && (rc = sl_record_next(&rr, &rec)) == 0)
                decoded++;
            if (rc != 0) {
                errors++;
                if (rc != SL_E_TRUNCATED && rc != SL_E_PARSE)
                    bad++;
            }
            if (decoded >= (int)SL_ARRAY_SIZE(edge_recs))
                bad++;
            free(p);
        }
        ASSERT_EQ(bad, 0);
        /* Cuts on a record boundary decode cleanly; all others fail. */
        ASSERT_EQ(errors, (int)b.records_len - (int)SL_ARRAY_SIZE(edge_recs));
    }
    sl_wr_free(&w);
}

static void test_batch_header_checks(void)
{
    sl_wr w;
    sl_batch b;
    sl_rd r;
    uint8_t *p;

    sl_wr_init(&w, 0);
    ASSERT_EQ(build(&w, edge_recs, 3, 5000, SL_CODEC_NONE, false), 0);
    p = w.buf;

    /* batchLength below the v2 minimum of 49. */
    sl_wr_put_u32_at(p + 8, 48);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_PARSE);
    sl_wr_put_u32_at(p + 8, (uint32_t)-5);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_PARSE);
    /* batchLength beyond the buffer. */
    sl_wr_put_u32_at(p + 8, (uint32_t)(w.len - 12 + 1));
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_TRUNCATED);
    sl_wr_put_u32_at(p + 8, 0x7fffffff);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_TRUNCATED);
    sl_wr_put_u32_at(p + 8, (uint32_t)(w.len - 12));

    /* Negative recordsCount (CRC fixed so only the count is wrong). */
    sl_wr_put_u32_at(p + 57, (uint32_t)-1);
    sl_wr_put_u32_at(p + 23, (uint32_t)-2);
    fix_crc(p, w.len);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_INVALID);
    /* No records, lastOffsetDelta -1: consistent, still not a batch a
     * broker appends. */
    sl_wr_put_u32_at(p + 57, 0);
    sl_wr_put_u32_at(p + 23, (uint32_t)-1);
    fix_crc(p, w.len);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_INVALID);
    /* lastOffsetDelta inconsistent with recordsCount 3. */
    sl_wr_put_u32_at(p + 57, 3);
    sl_wr_put_u32_at(p + 23, 5);
    fix_crc(p, w.len);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_INVALID);
    /* More records than the uncompressed bytes could hold. */
    sl_wr_put_u32_at(p + 57, 1000);
    sl_wr_put_u32_at(p + 23, 999);
    fix_crc(p, w.len);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_INVALID);
    /* Restored: decodes again. */
    sl_wr_put_u32_at(p + 57, 3);
    sl_wr_put_u32_at(p + 23, 2);
    fix_crc(p, w.len);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), 0);

    /* Fewer than 12 bytes of a batch. */
    r = sl_rd_init(p, 11);
    ASSERT_EQ(sl_batch_next(&r, &b), SL_E_TRUNCATED);

    /* An unknown codec decodes as a batch; sl_decompress refuses it. */
    p[22] = 6;
    fix_crc(p, w.len);
    r = sl_rd_init(p, w.len);
    ASSERT_EQ(sl_batch_next(&r, &b), 0);
    {
        uint8_t *out = NULL;
        size_t out_len;
        ASSERT_EQ(sl_decompress(sl_batch_codec(&b), b.records, b.records_len,
                                1 << 20, &out, &out_len),
                  SL_E_UNSUPPORTED);
        ASSERT_TRUE(out == NULL);
    }
    sl_wr_free(&w);
}

static void test_record_errors(void)
{
    /* A good record for reference: len 6, attrs, ts 0, off 0, key null,
     * value "", no headers. */
    static const uint8_t good[] = {0x0c, 0, 0, 0, 0x01, 0x00, 0x00};
    /* Length prefix of 10+ continuation bytes. */
    static const uint8_t long_len[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                       0x80, 0x80, 0x80, 0x80, 0x00, 0, 0};
    /* A 10-byte varlong timestamp delta with bits past 63. */
    static const uint8_t long_ts[] = {0x1c, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0x01,
                                      0x00, 0x00};
    /* An overlong key length inside the record. */
    static const uint8_t long_key[] = {0x12, 0, 0, 0, 0x80, 0x80, 0x80,
                                       0x80, 0x80, 0x01, 0x00, 0x00};
    /* Length prefix 7, fields only 6: trailing byte. */
    static const uint8_t len_long[] = {0x0e, 0, 0, 0, 0x01, 0x00, 0x00, 0x00};
    /* Length prefix 5, fields need 6. */
    static const uint8_t len_short[] = {0x0a, 0, 0, 0, 0x01, 0x00, 0x00};
    /* Length prefix beyond the records section. */
    static const uint8_t len_past[] = {0x20, 0, 0, 0, 0x01, 0x00, 0x00};
    /* Negative length prefix. */
    static const uint8_t len_neg[] = {0x03, 0, 0, 0, 0x01, 0x00, 0x00};
    /* Key length -2. */
    static const uint8_t key_m2[] = {0x0c, 0, 0, 0, 0x03, 0x00, 0x00};
    /* Value length -5. */
    static const uint8_t val_m5[] = {0x0c, 0, 0, 0, 0x01, 0x09, 0x00};
    /* Header count -1. */
    static const uint8_t hdr_neg[] = {0x0c, 0, 0, 0, 0x01, 0x00, 0x01};
    /* One header with a null key. */
    static const uint8_t hdr_null_key[] = {0x10, 0, 0, 0, 0x01, 0x00, 0x02,
                                           0x01, 0x00};
    /* One header whose value length -3. */
    static const uint8_t hdr_val_m3[] = {0x12, 0, 0, 0, 0x01, 0x00, 0x02,
                                         0x02, 'k', 0x05};
    /* Header count 3, one header present. */
    static const uint8_t hdr_missing[] = {0x12, 0, 0, 0, 0x01, 0x00, 0x06,
                                          0x02, 'k', 0x00};
    /* Key length 100 within a 6-byte record. */
    static const uint8_t key_past[] = {0x0c, 0, 0, 0, 0xc8, 0x01, 0x00};

    ASSERT_EQ(record_error(good, sizeof(good), 1), 0);
    ASSERT_EQ(record_error(long_len, sizeof(long_len), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(long_ts, sizeof(long_ts), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(long_key, sizeof(long_key), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(len_long, sizeof(len_long), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(len_short, sizeof(len_short), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(len_past, sizeof(len_past), 1), SL_E_TRUNCATED);
    ASSERT_EQ(record_error(len_neg, sizeof(len_neg), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(key_m2, sizeof(key_m2), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(val_m5, sizeof(val_m5), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(hdr_neg, sizeof(hdr_neg), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(hdr_null_key, sizeof(hdr_null_key), 1),
              SL_E_PARSE);
    ASSERT_EQ(record_error(hdr_val_m3, sizeof(hdr_val_m3), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(hdr_missing, sizeof(hdr_missing), 1), SL_E_PARSE);
    ASSERT_EQ(record_error(key_past, sizeof(key_past), 1), SL_E_PARSE);
}

static void test_header_next_errors(void)
{
    /* "a" = null, then a header cut short. */
    static const uint8_t hdrs[] = {0x02, 'a', 0x01, 0x04, 'x'};
    sl_rd hr = sl_rd_init(hdrs, sizeof(hdrs));
    sl_header h;

    ASSERT_EQ(sl_header_next(&hr, &h), 0);
    check_bytes(h.key, h.key_len, "a", 1, "header key", 0);
    ASSERT_TRUE(h.value == NULL);
    ASSERT_EQ(h.value_len, -1);
    ASSERT_EQ(sl_header_next(&hr, &h), SL_E_TRUNCATED);
    ASSERT_TRUE(hr.p == hdrs + 3);
    ASSERT_EQ(sl_header_next(&hr, &h), SL_E_TRUNCATED);
}

static void test_builder_bad_codec(void)
{
    sl_batch_builder bb;
    sl_wr w;

    sl_wr_init(&w, 0);
    sl_wr_raw(&w, "keep", 4);
    sl_batch_builder_init(&bb, 0);
    sl_batch_builder_add(&bb, 0, "k", 1, "v", 1, NULL, 0);
    ASSERT_EQ(sl_batch_builder_finish(&bb, &w, 5, false, -1, -1, -1),
              SL_E_UNSUPPORTED);
    ASSERT_EQ(w.len, 4); /* nothing half-written left behind */
    sl_batch_builder_free(&bb);
    sl_wr_free(&w);
}

SL_TEST_MAIN(SL_TEST(test_kafka_vector), SL_TEST(test_builder_matches_vector),
             SL_TEST(test_round_trip_edge_records),
             SL_TEST(test_round_trip_empty_batch),
             SL_TEST(test_round_trip_many), SL_TEST(test_multiple_batches),
             SL_TEST(test_crc_mismatch), SL_TEST(test_legacy_magic),
             SL_TEST(test_truncated_everywhere),
             SL_TEST(test_batch_header_checks), SL_TEST(test_record_errors),
             SL_TEST(test_header_next_errors), SL_TEST(test_builder_bad_codec))
