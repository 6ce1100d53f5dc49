/* Unit tests for proxy/plan.c, the pure half of the produce path: what a
 * broker would answer each partition, what goes upstream, and the
 * idempotence decisions, for the scenarios of issue 12. No sockets, no
 * librdkafka. */
#include "sl_test.h"
#include "sluice/msgset.h"
#include "sluice/plan.h"

#include <stdio.h>
#include <string.h>

static int owner_a, owner_b;

/* A record batch of n records ("v0", "v1", ...; value_pad extra bytes on
 * record big, if >= 0), in w. */
static sl_kstr batch(sl_wr *w, int n, int codec, int64_t pid, int32_t seq,
                     int big, size_t value_pad)
{
    sl_batch_builder bb;
    char val[4096];

    sl_wr_init(w, 256);
    sl_batch_builder_init(&bb, 1700000000000);
    for (int i = 0; i < n; i++) {
        int len = snprintf(val, sizeof(val), "v%d", i);
        if (i == big) {
            memset(val + len, '.', value_pad);
            len += (int)value_pad;
        }
        sl_batch_builder_add(&bb, 1700000000000 + i, "k", 1, val, len, NULL,
                             0);
    }
    ASSERT_EQ(sl_batch_builder_finish(&bb, w, codec, false, pid, 0, seq), 0);
    sl_batch_builder_free(&bb);
    return (sl_kstr){(const char *)w->buf, (int32_t)w->len};
}

static sl_plan_env env_of(sl_idem *idem, int16_t version)
{
    sl_plan_env env = {.version = version,
                       .max_decompressed = 1 << 20,
                       .max_msg_bytes = 1000000,
                       .idem = idem,
                       .now_ms = 0};
    return env;
}

#define TOPIC SL_KSTR("orders")

static void plan1(sl_plan *pl, const sl_plan_env *env, sl_kstr recs,
                  sl_plan_part *out)
{
    sl_plan_partition(pl, env, TOPIC, 0, recs, SL_PLAN_WRITABLE, NULL, out);
}

/* Request-level refusals, as a broker makes them. */
static void test_request_refusals(void)
{
    const char *msg;
    /* Produce v0-v2 are bridged (issue 15), not refused. */
    ASSERT_EQ(sl_plan_request(0, SL_KSTR_NULL, 1, &msg), 0);
    ASSERT_EQ(sl_plan_request(2, SL_KSTR_NULL, -1, &msg), 0);
    ASSERT_EQ(sl_plan_request(1, SL_KSTR_NULL, 3, &msg),
              SL_KERR_INVALID_REQUIRED_ACKS);
    ASSERT_EQ(sl_plan_request(7, SL_KSTR("txn"), -1, &msg),
              SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    ASSERT_EQ(sl_plan_request(7, SL_KSTR_NULL, 2, &msg),
              SL_KERR_INVALID_REQUIRED_ACKS);
    ASSERT_EQ(sl_plan_request(9, SL_KSTR_NULL, 0, &msg), 0);
    ASSERT_EQ(sl_plan_request(3, SL_KSTR_NULL, 1, &msg), 0);
}

/* Issue 12, item 8: "requests a broker rejects are accepted". Each answer
 * is what Kafka 4.1.1 gives (broker_refusals_differential@kafka). */
static void test_requests_a_broker_rejects(void)
{
    sl_plan pl = {0};
    sl_plan_env env = env_of(NULL, 7);
    sl_plan_part out;
    sl_wr w1, w2;
    sl_kstr one = batch(&w1, 1, SL_CODEC_NONE, -1, -1, -1, 0);
    sl_kstr zstd = batch(&w2, 2, SL_CODEC_ZSTD, -1, -1, -1, 0);
    uint8_t two[512], bad[512];

    /* two batches for one partition */
    memcpy(two, one.p, (size_t)one.len);
    memcpy(two + one.len, one.p, (size_t)one.len);
    plan1(&pl, &env, (sl_kstr){(const char *)two, one.len * 2}, &out);
    ASSERT_EQ(out.error, SL_KERR_INVALID_RECORD);
    ASSERT_TRUE(!out.send);
    /* an empty record set */
    plan1(&pl, &env, (sl_kstr){(const char *)two, 0}, &out);
    ASSERT_EQ(out.error, SL_KERR_INVALID_RECORD);
    /* zstd below Produce v7, and at v7 */
    env.version = 6;
    plan1(&pl, &env, zstd, &out);
    ASSERT_EQ(out.error, SL_KERR_UNSUPPORTED_COMPRESSION_TYPE);
    env.version = 7;
    plan1(&pl, &env, zstd, &out);
    ASSERT_EQ(out.error, 0);
    ASSERT_TRUE(out.send);
    ASSERT_EQ(out.batch.records_count, 2);
    ASSERT_TRUE(out.decompressed > 0);
    /* a compressed batch that does not decompress: Kafka 4.1.1 answers
     * UNKNOWN_SERVER_ERROR (was CORRUPT_MESSAGE) */
    {
        sl_wr gz;
        sl_kstr g = batch(&gz, 3, SL_CODEC_GZIP, -1, -1, -1, 0);
        memset(gz.buf + SL_BATCH_HEADER_SIZE, 'x',
               (size_t)g.len - SL_BATCH_HEADER_SIZE);
        sl_wr_put_u32_at(gz.buf + SL_BATCH_CRC_OFFSET - 4,
                         sl_crc32c(0, gz.buf + SL_BATCH_CRC_OFFSET,
                                   (size_t)g.len - SL_BATCH_CRC_OFFSET));
        plan1(&pl, &env, g, &out);
        ASSERT_EQ(out.error, SL_KERR_UNKNOWN_SERVER_ERROR);
        ASSERT_TRUE(!out.send);
        sl_wr_free(&gz);
    }
    /* a bad CRC */
    memcpy(bad, one.p, (size_t)one.len);
    bad[one.len - 1] ^= 1;
    plan1(&pl, &env, (sl_kstr){(const char *)bad, one.len}, &out);
    ASSERT_EQ(out.error, SL_KERR_CORRUPT_MESSAGE);
    /* a batch followed by garbage */
    memcpy(bad, one.p, (size_t)one.len);
    memset(bad + one.len, 0xff, 20);
    plan1(&pl, &env, (sl_kstr){(const char *)bad, one.len + 20}, &out);
    ASSERT_TRUE(out.error != 0);
    /* a topic name Kafka refuses, a topic the policy refuses */
    sl_plan_partition(&pl, &env, SL_KSTR("a/b"), 0, one, SL_PLAN_WRITABLE,
                      NULL, &out);
    ASSERT_EQ(out.error, SL_KERR_INVALID_TOPIC_EXCEPTION);
    sl_plan_partition(&pl, &env, TOPIC, 0, one, SL_PLAN_NOT_ALLOWED, NULL,
                      &out);
    ASSERT_EQ(out.error, SL_KERR_TOPIC_AUTHORIZATION_FAILED);
    sl_wr_free(&w1);
    sl_wr_free(&w2);
    sl_plan_free(&pl);
}

/* Issue 12, item 1: "a record that librdkafka finds too large after
 * Sluice's own size check passed" made the enqueue fail part-way. The plan
 * applies librdkafka's formula (36 bytes of overhead, key, value, headers
 * as serialized) so the batch is refused before any record is enqueued;
 * exactly at the limit is accepted. */
static void test_size_limit_is_librdkafkas(void)
{
    sl_plan pl = {0};
    sl_plan_env env = env_of(NULL, 9);
    sl_plan_part out;
    sl_wr w;
    /* value "v2" + pad: 36 + 1 (key) + 2 + pad */
    size_t at_limit = 2000 - 36 - 1 - 2;

    env.max_msg_bytes = 2000;
    plan1(&pl, &env, batch(&w, 3, SL_CODEC_NONE, -1, -1, 2, at_limit + 1),
          &out);
    sl_wr_free(&w);
    ASSERT_EQ(out.error, SL_KERR_MESSAGE_TOO_LARGE);
    ASSERT_TRUE(!out.send);
    plan1(&pl, &env, batch(&w, 3, SL_CODEC_NONE, -1, -1, 2, at_limit), &out);
    sl_wr_free(&w);
    ASSERT_EQ(out.error, 0);
    ASSERT_TRUE(out.send);
    {
        sl_header h = {.key = (const uint8_t *)"h", .key_len = 1,
                       .value = (const uint8_t *)"0123456789",
                       .value_len = 10};
        sl_header hn = {.key = (const uint8_t *)"h", .key_len = 1,
                        .value = NULL, .value_len = -1};
        sl_record rec = {.key_len = 1, .value_len = 5};
        ASSERT_EQ(sl_plan_header_size(&h), 13);
        ASSERT_EQ(sl_plan_header_size(&hn), 3);
        ASSERT_EQ(sl_plan_record_size(&rec), 42);
        rec.key_len = -1;
        ASSERT_EQ(sl_plan_record_size(&rec), 41);
    }
    sl_plan_free(&pl);
}

/* Issue 12, item 6: "decompression is bounded per batch, not per request
 * (one request can list a partition many times, each with a 64 MiB zstd
 * bomb)". The bound is the request's: once its batches decompressed to it,
 * the next compressed one is refused. */
static void test_decompression_bounded_per_request(void)
{
    sl_plan pl = {0};
    sl_plan_env env = env_of(NULL, 9);
    sl_plan_part out;
    sl_wr w;
    sl_kstr b = batch(&w, 1, SL_CODEC_ZSTD, -1, -1, 0, 3000);
    int ok = 0, refused = 0;

    env.max_decompressed = 10000;
    for (int i = 0; i < 8; i++) {
        plan1(&pl, &env, b, &out);
        if (out.error == 0)
            ok++;
        else if (out.error == SL_KERR_MESSAGE_TOO_LARGE)
            refused++;
    }
    ASSERT_EQ(ok, 3); /* 3 x ~3 KB fit in 10000 bytes, the fourth not */
    ASSERT_EQ(refused, 5);
    ASSERT_TRUE(pl.decompressed <= 10000);
    sl_wr_free(&w);
    sl_plan_free(&pl);
}

/* Issue 12, item 3: "a split retry is refused forever". */
static void test_split_retry_accepted(void)
{
    sl_idem *id = sl_idem_new(9, 60000);
    sl_plan pl = {0};
    sl_plan_env env = env_of(id, 9);
    sl_plan_part out;
    sl_wr w;

    plan1(&pl, &env, batch(&w, 6, SL_CODEC_NONE, 77, 0, -1, 0), &out);
    sl_wr_free(&w);
    ASSERT_EQ(out.idem, SL_IDEM_NEW);
    out.slot->owner = &owner_a;
    sl_idem_complete(id, out.slot, &owner_a, SL_KERR_MESSAGE_TOO_LARGE, -1);
    plan1(&pl, &env, batch(&w, 3, SL_CODEC_NONE, 77, 0, -1, 0), &out);
    sl_wr_free(&w);
    ASSERT_EQ(out.error, 0);
    ASSERT_EQ(out.idem, SL_IDEM_NEW);
    ASSERT_TRUE(out.send);
    sl_idem_free(id);
    sl_plan_free(&pl);
}

/* Issue 12, items 1 and 2 through the plan: a batch partly written, then
 * failed, is retried in part; one pipelined behind it and written whole is
 * answered 45, and its retry sends nothing and gets a success. */
static void test_partial_retry_and_pipelined_batch(void)
{
    sl_idem *id = sl_idem_new(9, 60000);
    sl_plan pl = {0};
    sl_plan_env env = env_of(id, 9);
    sl_plan_part a, b;
    sl_wr wa, wb;
    sl_kstr ra = batch(&wa, 4, SL_CODEC_NONE, 78, 0, -1, 0);
    sl_kstr rb = batch(&wb, 4, SL_CODEC_NONE, 78, 4, -1, 0);

    plan1(&pl, &env, ra, &a);
    plan1(&pl, &env, rb, &b);
    ASSERT_TRUE(a.idem == SL_IDEM_NEW && b.idem == SL_IDEM_NEW);
    a.slot->owner = &owner_a;
    b.slot->owner = &owner_b;
    sl_idem_record_upstream(a.slot, &owner_a, 3, 0);
    for (int32_t i = 0; i < 4; i++)
        sl_idem_record_upstream(b.slot, &owner_b, i, 1 + i);
    ASSERT_EQ(sl_idem_complete(id, a.slot, &owner_a, 19, 0), 19);
    ASSERT_EQ(sl_idem_complete(id, b.slot, &owner_b, 0, 1),
              SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    plan1(&pl, &env, ra, &a);
    ASSERT_EQ(a.idem, SL_IDEM_NEW);
    ASSERT_TRUE(a.send);
    for (int32_t i = 0; i < 4; i++)
        ASSERT_EQ(sl_idem_slot_upstream(a.slot, i), i == 3);
    a.slot->owner = &owner_a;
    for (int32_t i = 0; i < 3; i++)
        sl_idem_record_upstream(a.slot, &owner_a, i, 5 + i);
    ASSERT_EQ(sl_idem_complete(id, a.slot, &owner_a, 0, 5), 0);
    ASSERT_EQ(a.slot->offset, 0);
    plan1(&pl, &env, rb, &b);
    ASSERT_EQ(b.idem, SL_IDEM_DUPLICATE);
    ASSERT_TRUE(!b.send);
    ASSERT_EQ(b.error, 0);
    ASSERT_EQ(b.slot->offset, 1);
    sl_wr_free(&wa);
    sl_wr_free(&wb);
    sl_idem_free(id);
    sl_plan_free(&pl);
}

/* Issue 12, item 4: ids this instance did not issue are accepted, as a
 * broker accepts them (UNKNOWN_PRODUCER_ID is fatal to librdkafka); and a
 * first batch refused for an unknown partition holds its place, so the
 * batch pipelined behind it is out of order until it is retried. */
static void test_unknown_ids_and_partitions(void)
{
    sl_idem *id = sl_idem_new(9, 60000);
    sl_plan pl = {0};
    sl_plan_env env = env_of(id, 9);
    sl_plan_part out;
    sl_wr w1, w2;
    sl_kstr first = batch(&w1, 2, SL_CODEC_NONE, 123456789, 0, -1, 0);
    sl_kstr second = batch(&w2, 2, SL_CODEC_NONE, 123456789, 2, -1, 0);

    ASSERT_TRUE(!sl_idem_issued(id, 123456789));
    sl_plan_partition(&pl, &env, TOPIC, 0, first, SL_PLAN_UNKNOWN_PARTITION,
                      NULL, &out);
    ASSERT_EQ(out.error, SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    plan1(&pl, &env, second, &out);
    ASSERT_EQ(out.error, SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    plan1(&pl, &env, first, &out);
    ASSERT_EQ(out.error, 0);
    ASSERT_EQ(out.idem, SL_IDEM_NEW);
    sl_wr_free(&w1);
    sl_wr_free(&w2);
    sl_idem_free(id);
    sl_plan_free(&pl);
}

/* Issue 12, item 7: "one client's bad records fail other clients'
 * records that librdkafka packed into the same upstream batch". What the
 * topic's configs refuse is refused for the client that sent it, as Kafka
 * 4.1.1 answers: INVALID_TIMESTAMP for a record more than after.max.ms
 * ahead or before.max.ms behind the clock (CreateTime; -1 is exempt; not
 * on a LogAppendTime topic), MESSAGE_TOO_LARGE for a record that alone
 * exceeds max.message.bytes. */
static void test_topic_limits_per_client(void)
{
    sl_plan pl = {0};
    sl_plan_env env = env_of(NULL, 9);
    sl_plan_topic lim = {.log_append_time = false,
                         .before_max_ms = INT64_MAX,
                         .after_max_ms = 3600000, /* Kafka 4's default */
                         .max_message_bytes = INT64_MAX};
    sl_plan_part out;
    sl_wr w;
    sl_batch_builder bb;
    int64_t now = 1700000000000;

    env.wall_ms = now;
    /* batch() stamps 1700000000000 + i: now */
    sl_plan_partition(&pl, &env, TOPIC, 0,
                      batch(&w, 3, SL_CODEC_NONE, -1, -1, -1, 0),
                      SL_PLAN_WRITABLE, &lim, &out);
    sl_wr_free(&w);
    ASSERT_EQ(out.error, 0);
    for (int k = 0; k < 6; k++) {
        int64_t ts[] = {now + 3600000, now + 3600001, now - 86400000 * 365LL,
                        -1, INT64_MIN, INT64_MAX};
        /* INT64_MIN: Java's now - ts wraps to a large negative number,
         * which after.max.ms refuses (as Kafka 4.1.1 does) */
        int16_t want[] = {0, SL_KERR_INVALID_TIMESTAMP, 0, 0,
                          SL_KERR_INVALID_TIMESTAMP, SL_KERR_INVALID_TIMESTAMP};
        sl_kstr r;
        sl_wr_init(&w, 128);
        sl_batch_builder_init(&bb, ts[k]);
        sl_batch_builder_add(&bb, ts[k], "k", 1, "v", 1, NULL, 0);
        ASSERT_EQ(sl_batch_builder_finish(&bb, &w, SL_CODEC_NONE, false, -1,
                                          -1, -1),
                  0);
        sl_batch_builder_free(&bb);
        r = (sl_kstr){(const char *)w.buf, (int32_t)w.len};
        sl_plan_partition(&pl, &env, TOPIC, 0, r, SL_PLAN_WRITABLE, &lim,
                          &out);
        if (out.error != want[k])
            fprintf(stderr, "timestamp case %d: error %d\n", k, out.error);
        ASSERT_EQ(out.error, want[k]);
        /* the past, bounded */
        lim.before_max_ms = 86400000;
        sl_plan_partition(&pl, &env, TOPIC, 0, r, SL_PLAN_WRITABLE, &lim,
                          &out);
        ASSERT_EQ(out.error, k == 2 || k == 4 ? SL_KERR_INVALID_TIMESTAMP
                                              : want[k]);
        /* LogAppendTime: the broker stamps it, nothing is refused */
        lim.log_append_time = true;
        sl_plan_partition(&pl, &env, TOPIC, 0, r, SL_PLAN_WRITABLE, &lim,
                          &out);
        ASSERT_EQ(out.error, 0);
        lim.log_append_time = false;
        lim.before_max_ms = INT64_MAX;
        sl_wr_free(&w);
    }
    /* max.message.bytes: "v2" + 100 bytes alone in a batch */
    {
        sl_record rec = {.key_len = 1, .value_len = 102, .n_headers = 0};
        int64_t lone = (int64_t)sl_plan_lone_batch_size(&rec, 0);
        sl_kstr r = batch(&w, 3, SL_CODEC_NONE, -1, -1, 2, 100);
        ASSERT_EQ(lone, 61 + 1 + 1 + 1 + 1 + 1 + 1 + 2 + 102 + 1 + 1);
        lim.max_message_bytes = lone;
        sl_plan_partition(&pl, &env, TOPIC, 0, r, SL_PLAN_WRITABLE, &lim,
                          &out);
        ASSERT_EQ(out.error, 0);
        lim.max_message_bytes = lone - 1;
        sl_plan_partition(&pl, &env, TOPIC, 0, r, SL_PLAN_WRITABLE, &lim,
                          &out);
        ASSERT_EQ(out.error, SL_KERR_MESSAGE_TOO_LARGE);
        sl_wr_free(&w);
    }
    sl_plan_free(&pl);
}

/* Issue 15: Produce v0-v2 carry message sets of magic 0/1, which the plan
 * converts to one record batch v2 in a buffer it owns (charged to the
 * request's decompression bound), then plans like any batch; those
 * versions may also carry a v2 batch, taken as it is. */
static void test_legacy_message_sets(void)
{
    sl_plan pl = {0};
    sl_plan_env env = env_of(NULL, 2);
    sl_plan_part out;
    sl_wr set, w;
    sl_kstr v2 = batch(&w, 3, SL_CODEC_NONE, -1, -1, -1, 0);

    sl_wr_init(&set, 0);
    sl_msgset_add(&set, 1, 0, 0, 1700000000000, "k", 1, "a", 1);
    sl_msgset_add(&set, 1, 1, 0, 1700000000001, NULL, -1, "b", 1);
    for (int16_t ver = 0; ver <= 2; ver++) {
        env.version = ver;
        plan1(&pl, &env, (sl_kstr){(const char *)set.buf, (int32_t)set.len},
              &out);
        ASSERT_EQ(out.error, 0);
        ASSERT_TRUE(out.send);
        ASSERT_EQ(out.batch.magic, 2);
        ASSERT_EQ(out.batch.records_count, 2);
        ASSERT_EQ(out.batch.base_timestamp, 1700000000000);
        ASSERT_EQ(out.idem, -1);
        ASSERT_TRUE(out.decompressed > 0);
        plan1(&pl, &env, v2, &out);
        ASSERT_EQ(out.error, 0);
        ASSERT_EQ(out.batch.records_count, 3);
    }
    ASSERT_EQ(pl.n_bufs, 3);
    /* The conversions count against the request's bound. */
    env.max_decompressed = pl.decompressed + 10;
    plan1(&pl, &env, (sl_kstr){(const char *)set.buf, (int32_t)set.len}, &out);
    ASSERT_EQ(out.error, SL_KERR_MESSAGE_TOO_LARGE);
    /* A v3+ request with a message set: as Kafka's
     * ProduceRequest.validateRecords, INVALID_RECORD (Sluice answered
     * UNSUPPORTED_FOR_MESSAGE_FORMAT; broker_refusals_differential). */
    for (int16_t ver = 3; ver <= 11; ver += 4) {
        env = env_of(NULL, ver);
        plan1(&pl, &env, (sl_kstr){(const char *)set.buf, (int32_t)set.len},
              &out);
        ASSERT_EQ(out.error, SL_KERR_INVALID_RECORD);
    }
    /* Broker refusals carry through (a bad CRC). */
    env.version = 1;
    set.buf[SL_MSGSET_LOG_OVERHEAD + 8] ^= 1;
    plan1(&pl, &env, (sl_kstr){(const char *)set.buf, (int32_t)set.len}, &out);
    ASSERT_EQ(out.error, SL_KERR_CORRUPT_MESSAGE);
    ASSERT_TRUE(!out.send);
    sl_wr_free(&set);
    sl_wr_free(&w);
    sl_plan_free(&pl);
}

/* LogValidator.validateTimestamp: a producer's LogAppendTime flag is
 * refused (INVALID_TIMESTAMP) unless a CreateTime topic has a timestamp to
 * check instead; a magic-0 message, which has none, cannot carry it. */
static void test_log_append_time_from_producer(void)
{
    sl_plan pl = {0};
    sl_plan_env env = env_of(NULL, 2);
    sl_plan_topic create = {false, INT64_MAX, INT64_MAX, INT64_MAX};
    sl_plan_topic append = {true, INT64_MAX, INT64_MAX, INT64_MAX};
    sl_plan_part out;
    sl_wr set;

    sl_wr_init(&set, 0);
    sl_msgset_add(&set, 1, 0, SL_MSG_ATTR_LOG_APPEND_TIME, 1700000000000,
                  "k", 1, "a", 1);
    sl_plan_partition(&pl, &env, TOPIC, 0,
                      (sl_kstr){(const char *)set.buf, (int32_t)set.len},
                      SL_PLAN_WRITABLE, &create, &out);
    ASSERT_EQ(out.error, 0);
    sl_plan_partition(&pl, &env, TOPIC, 0,
                      (sl_kstr){(const char *)set.buf, (int32_t)set.len},
                      SL_PLAN_WRITABLE, &append, &out);
    ASSERT_EQ(out.error, SL_KERR_INVALID_TIMESTAMP);
    set.len = 0;
    sl_msgset_add(&set, 1, 0, SL_MSG_ATTR_LOG_APPEND_TIME, -1, "k", 1, "a",
                  1);
    sl_plan_partition(&pl, &env, TOPIC, 0,
                      (sl_kstr){(const char *)set.buf, (int32_t)set.len},
                      SL_PLAN_WRITABLE, NULL, &out);
    ASSERT_EQ(out.error, SL_KERR_INVALID_TIMESTAMP);
    sl_wr_free(&set);
    sl_plan_free(&pl);
}

SL_TEST_MAIN(SL_TEST(test_legacy_message_sets),
             SL_TEST(test_log_append_time_from_producer),
             SL_TEST(test_request_refusals),
             SL_TEST(test_requests_a_broker_rejects),
             SL_TEST(test_size_limit_is_librdkafkas),
             SL_TEST(test_decompression_bounded_per_request),
             SL_TEST(test_split_retry_accepted),
             SL_TEST(test_partial_retry_and_pipelined_batch),
             SL_TEST(test_unknown_ids_and_partitions),
             SL_TEST(test_topic_limits_per_client))
