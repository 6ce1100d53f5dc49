/*
 * Unit tests for proxy/kafka/proto.c: the API table against Kafka's
 * schemas, headers, every served version of ApiVersions, Metadata, Produce
 * and InitProducerId (round trip, hand-written bytes, truncation at every
 * offset) and the error-response templates (walked with a field list
 * derived from Kafka's *Response.json, independent of the templates).
 */
#include <stdlib.h>

#include "sluice/kafka.h"
#include "sl_test.h"

/* ---- helpers ---------------------------------------------------------- */

/* Compares written bytes with an expected vector; prints the first
 * difference in hex. */
#define ASSERT_BYTES(got, got_len, want)                                  \
    assert_bytes(__FILE__, __LINE__, (got), (got_len), (want),            \
                 sizeof(want))

static void assert_bytes(const char *file, int line, const uint8_t *got,
                         size_t got_len, const uint8_t *want,
                         size_t want_len)
{
    size_t i;

    for (i = 0; i < got_len && i < want_len; i++)
        if (got[i] != want[i])
            break;
    if (i == got_len && i == want_len)
        return;
    fprintf(stderr, "  %s:%d: bytes differ at offset %zu (got %zu bytes, "
                    "want %zu):\n   got ",
            file, line, i, got_len, want_len);
    for (size_t j = 0; j < got_len; j++)
        fprintf(stderr, "%02x", got[j]);
    fprintf(stderr, "\n  want ");
    for (size_t j = 0; j < want_len; j++)
        fprintf(stderr, "%02x", want[j]);
    fputc('\n', stderr);
    sl_test__failed_checks++;
}

static bool kstr_eq(sl_kstr a, sl_kstr b)
{
    if (a.len < 0 || b.len < 0)
        return a.len < 0 && b.len < 0;
    return a.len == b.len &&
           (a.len == 0 || memcmp(a.p, b.p, (size_t)a.len) == 0);
}

#define ASSERT_KEQ(a, b)                                                  \
    do {                                                                  \
        sl_kstr ka_ = (a), kb_ = (b);                                     \
        if (!kstr_eq(ka_, kb_))                                           \
            SL__FAIL("%s == %s: \"%.*s\" (len %d) != \"%.*s\" (len %d)",  \
                     #a, #b, ka_.len > 0 ? (int)ka_.len : 0,              \
                     ka_.len > 0 ? ka_.p : "", (int)ka_.len,              \
                     kb_.len > 0 ? (int)kb_.len : 0,                      \
                     kb_.len > 0 ? kb_.p : "", (int)kb_.len);             \
    } while (0)

/*
 * A served message type, seen generically: decode/encode/free wrappers
 * (no function-pointer casts, so UBSan's -fsanitize=function stays quiet)
 * and a field-by-field comparison.
 */
typedef struct codec {
    const char *name;
    size_t size;
    int (*dec)(sl_rd *r, int16_t ver, void *m);
    void (*enc)(sl_wr *w, int16_t ver, const void *m);
    void (*fre)(void *m);
    void (*eq)(const void *want, const void *got);
} codec;

#define CODEC_FNS(T)                                                      \
    static int dec_##T(sl_rd *r, int16_t v, void *m)                      \
    {                                                                     \
        return sl_kafka_##T##_decode(r, v, (sl_kafka_##T *)m);            \
    }                                                                     \
    static void enc_##T(sl_wr *w, int16_t v, const void *m)               \
    {                                                                     \
        sl_kafka_##T##_encode(w, v, (const sl_kafka_##T *)m);             \
    }
#define CODEC_FREE(T)                                                     \
    static void free_##T(void *m) { sl_kafka_##T##_free((sl_kafka_##T *)m); }
#define CODEC_NOFREE(T)                                                   \
    static void free_##T(void *m) { (void)m; }

CODEC_FNS(ApiVersionsRequest)
CODEC_NOFREE(ApiVersionsRequest)
CODEC_FNS(ApiVersionsResponse)
CODEC_FREE(ApiVersionsResponse)
CODEC_FNS(MetadataRequest)
CODEC_FREE(MetadataRequest)
CODEC_FNS(MetadataResponse)
CODEC_FREE(MetadataResponse)
CODEC_FNS(ProduceRequest)
CODEC_FREE(ProduceRequest)
CODEC_FNS(ProduceResponse)
CODEC_FREE(ProduceResponse)
CODEC_FNS(InitProducerIdRequest)
CODEC_NOFREE(InitProducerIdRequest)
CODEC_FNS(InitProducerIdResponse)
CODEC_NOFREE(InitProducerIdResponse)

/* Decodes a copy of bytes[0..len) held in an exact-size heap block, so
 * ASan catches any read past it. Returns the decoder's result; on success
 * *consumed is the number of bytes read and the struct must be freed. */
static int decode_exact(const codec *c, int16_t ver, const uint8_t *bytes,
                        size_t len, void *m, size_t *consumed)
{
    uint8_t *copy = malloc(len ? len : 1);
    sl_rd r;
    int rc;

    memcpy(copy, bytes, len);
    r = sl_rd_init(copy, len);
    rc = c->dec(&r, ver, m);
    if (consumed)
        *consumed = len - sl_rd_left(&r);
    /* Decoded strings would dangle now; callers only look at rc. */
    free(copy);
    return rc;
}

/* Every proper prefix of a valid encoding is truncated input: the decoder
 * must say so (never crash, never read past the end, never leak). */
static void check_truncations(const codec *c, int16_t ver,
                              const uint8_t *bytes, size_t len)
{
    void *m = calloc(1, c->size);

    for (size_t cut = 0; cut < len; cut++) {
        int rc = decode_exact(c, ver, bytes, cut, m, NULL);
        if (rc != SL_E_TRUNCATED) {
            SL__FAIL("%s v%d cut at %zu of %zu: got %s, want SL_E_TRUNCATED",
                     c->name, ver, cut, len, sl_err_name(rc));
            if (rc == 0)
                c->fre(m);
        }
    }
    free(m);
}

/*
 * Encode `want`, decode, compare every field, re-encode the decoded struct
 * to identical bytes, then check every truncation. Returns the number of
 * encoded bytes.
 */
static size_t roundtrip(const codec *c, int16_t ver, const void *want)
{
    sl_wr w1, w2;
    void *got = calloc(1, c->size);
    size_t len;
    sl_rd r;
    int rc;

    /* Non-zero capacity: never a NULL buffer, even for empty bodies. */
    sl_wr_init(&w1, 16);
    sl_wr_init(&w2, 16);
    c->enc(&w1, ver, want);
    len = w1.len;
    r = sl_rd_init(w1.buf, w1.len);
    rc = c->dec(&r, ver, got);
    if (rc != 0) {
        SL__FAIL("%s v%d: decode of own encoding failed: %s", c->name, ver,
                 sl_err_name(rc));
    } else {
        if (sl_rd_left(&r) != 0)
            SL__FAIL("%s v%d: %zu bytes left after decode", c->name, ver,
                     sl_rd_left(&r));
        c->eq(want, got);
        c->enc(&w2, ver, got);
        if (w1.len != w2.len || memcmp(w1.buf, w2.buf, w1.len) != 0)
            SL__FAIL("%s v%d: re-encoding differs (%zu vs %zu bytes)",
                     c->name, ver, w1.len, w2.len);
        c->fre(got);
    }
    check_truncations(c, ver, w1.buf, w1.len);
    sl_wr_free(&w1);
    sl_wr_free(&w2);
    free(got);
    return len;
}

/* ---- field comparisons ------------------------------------------------ */

static void eq_ApiVersionsRequest(const void *want, const void *got)
{
    const sl_kafka_ApiVersionsRequest *a = want, *b = got;
    ASSERT_KEQ(a->client_software_name, b->client_software_name);
    ASSERT_KEQ(a->client_software_version, b->client_software_version);
}

static void eq_ApiVersionsResponse(const void *want, const void *got)
{
    const sl_kafka_ApiVersionsResponse *a = want, *b = got;
    ASSERT_EQ(a->error_code, b->error_code);
    ASSERT_EQ(a->throttle_time_ms, b->throttle_time_ms);
    ASSERT_EQ(a->n_apis, b->n_apis);
    for (int32_t i = 0; i < a->n_apis && i < b->n_apis; i++) {
        ASSERT_EQ(a->apis[i].api_key, b->apis[i].api_key);
        ASSERT_EQ(a->apis[i].min_version, b->apis[i].min_version);
        ASSERT_EQ(a->apis[i].max_version, b->apis[i].max_version);
    }
}

static void eq_MetadataRequest(const void *want, const void *got)
{
    const sl_kafka_MetadataRequest *a = want, *b = got;
    ASSERT_EQ(a->n_topics, b->n_topics);
    for (int32_t i = 0; i < a->n_topics && i < b->n_topics; i++) {
        ASSERT_MEMEQ(a->topics[i].topic_id, b->topics[i].topic_id, 16);
        ASSERT_KEQ(a->topics[i].name, b->topics[i].name);
    }
    ASSERT_EQ(a->allow_auto_topic_creation, b->allow_auto_topic_creation);
    ASSERT_EQ(a->include_cluster_authorized_operations,
              b->include_cluster_authorized_operations);
    ASSERT_EQ(a->include_topic_authorized_operations,
              b->include_topic_authorized_operations);
}

static void eq_int32s(int32_t na, const int32_t *a, int32_t nb,
                      const int32_t *b)
{
    ASSERT_EQ(na, nb);
    for (int32_t i = 0; i < na && i < nb; i++)
        ASSERT_EQ(a[i], b[i]);
}

static void eq_MetadataResponse(const void *want, const void *got)
{
    const sl_kafka_MetadataResponse *a = want, *b = got;
    ASSERT_EQ(a->throttle_time_ms, b->throttle_time_ms);
    ASSERT_EQ(a->n_brokers, b->n_brokers);
    for (int32_t i = 0; i < a->n_brokers && i < b->n_brokers; i++) {
        ASSERT_EQ(a->brokers[i].node_id, b->brokers[i].node_id);
        ASSERT_KEQ(a->brokers[i].host, b->brokers[i].host);
        ASSERT_EQ(a->brokers[i].port, b->brokers[i].port);
        ASSERT_KEQ(a->brokers[i].rack, b->brokers[i].rack);
    }
    ASSERT_KEQ(a->cluster_id, b->cluster_id);
    ASSERT_EQ(a->controller_id, b->controller_id);
    ASSERT_EQ(a->n_topics, b->n_topics);
    for (int32_t i = 0; i < a->n_topics && i < b->n_topics; i++) {
        const sl_kafka_MetadataTopic *ta = &a->topics[i], *tb = &b->topics[i];
        ASSERT_EQ(ta->error_code, tb->error_code);
        ASSERT_KEQ(ta->name, tb->name);
        ASSERT_MEMEQ(ta->topic_id, tb->topic_id, 16);
        ASSERT_EQ(ta->is_internal, tb->is_internal);
        ASSERT_EQ(ta->topic_authorized_operations,
                  tb->topic_authorized_operations);
        ASSERT_EQ(ta->n_partitions, tb->n_partitions);
        for (int32_t j = 0; j < ta->n_partitions && j < tb->n_partitions;
             j++) {
            const sl_kafka_MetadataPartition *pa = &ta->partitions[j],
                                             *pb = &tb->partitions[j];
            ASSERT_EQ(pa->error_code, pb->error_code);
            ASSERT_EQ(pa->partition_index, pb->partition_index);
            ASSERT_EQ(pa->leader_id, pb->leader_id);
            ASSERT_EQ(pa->leader_epoch, pb->leader_epoch);
            eq_int32s(pa->n_replicas, pa->replicas, pb->n_replicas,
                      pb->replicas);
            eq_int32s(pa->n_isr, pa->isr, pb->n_isr, pb->isr);
            eq_int32s(pa->n_offline, pa->offline, pb->n_offline,
                      pb->offline);
        }
    }
    ASSERT_EQ(a->cluster_authorized_operations,
              b->cluster_authorized_operations);
}

static void eq_ProduceRequest(const void *want, const void *got)
{
    const sl_kafka_ProduceRequest *a = want, *b = got;
    ASSERT_KEQ(a->transactional_id, b->transactional_id);
    ASSERT_EQ(a->acks, b->acks);
    ASSERT_EQ(a->timeout_ms, b->timeout_ms);
    ASSERT_EQ(a->n_topics, b->n_topics);
    for (int32_t i = 0; i < a->n_topics && i < b->n_topics; i++) {
        const sl_kafka_ProduceTopicData *ta = &a->topics[i],
                                        *tb = &b->topics[i];
        ASSERT_KEQ(ta->name, tb->name);
        ASSERT_EQ(ta->n_partitions, tb->n_partitions);
        for (int32_t j = 0; j < ta->n_partitions && j < tb->n_partitions;
             j++) {
            ASSERT_EQ(ta->partitions[j].index, tb->partitions[j].index);
            ASSERT_KEQ(ta->partitions[j].records, tb->partitions[j].records);
        }
    }
}

static void eq_ProduceResponse(const void *want, const void *got)
{
    const sl_kafka_ProduceResponse *a = want, *b = got;
    ASSERT_EQ(a->throttle_time_ms, b->throttle_time_ms);
    ASSERT_EQ(a->n_topics, b->n_topics);
    for (int32_t i = 0; i < a->n_topics && i < b->n_topics; i++) {
        const sl_kafka_ProduceTopicResponse *ta = &a->topics[i],
                                            *tb = &b->topics[i];
        ASSERT_KEQ(ta->name, tb->name);
        ASSERT_EQ(ta->n_partitions, tb->n_partitions);
        for (int32_t j = 0; j < ta->n_partitions && j < tb->n_partitions;
             j++) {
            const sl_kafka_ProducePartitionResponse *pa = &ta->partitions[j],
                                                    *pb = &tb->partitions[j];
            ASSERT_EQ(pa->index, pb->index);
            ASSERT_EQ(pa->error_code, pb->error_code);
            ASSERT_EQ(pa->base_offset, pb->base_offset);
            ASSERT_EQ(pa->log_append_time_ms, pb->log_append_time_ms);
            ASSERT_EQ(pa->log_start_offset, pb->log_start_offset);
            ASSERT_KEQ(pa->error_message, pb->error_message);
            ASSERT_EQ(pa->n_record_errors, pb->n_record_errors);
            for (int32_t k = 0;
                 k < pa->n_record_errors && k < pb->n_record_errors; k++) {
                ASSERT_EQ(pa->record_errors[k].batch_index,
                          pb->record_errors[k].batch_index);
                ASSERT_KEQ(pa->record_errors[k].message,
                           pb->record_errors[k].message);
            }
        }
    }
}

static void eq_InitProducerIdRequest(const void *want, const void *got)
{
    const sl_kafka_InitProducerIdRequest *a = want, *b = got;
    ASSERT_KEQ(a->transactional_id, b->transactional_id);
    ASSERT_EQ(a->transaction_timeout_ms, b->transaction_timeout_ms);
    ASSERT_EQ(a->producer_id, b->producer_id);
    ASSERT_EQ(a->producer_epoch, b->producer_epoch);
}

static void eq_InitProducerIdResponse(const void *want, const void *got)
{
    const sl_kafka_InitProducerIdResponse *a = want, *b = got;
    ASSERT_EQ(a->throttle_time_ms, b->throttle_time_ms);
    ASSERT_EQ(a->error_code, b->error_code);
    ASSERT_EQ(a->producer_id, b->producer_id);
    ASSERT_EQ(a->producer_epoch, b->producer_epoch);
}

#define CODEC(T)                                                          \
    static const codec codec_##T = {#T,        sizeof(sl_kafka_##T),      \
                                    dec_##T,   enc_##T,                   \
                                    free_##T,  eq_##T}
CODEC(ApiVersionsRequest);
CODEC(ApiVersionsResponse);
CODEC(MetadataRequest);
CODEC(MetadataResponse);
CODEC(ProduceRequest);
CODEC(ProduceResponse);
CODEC(InitProducerIdRequest);
CODEC(InitProducerIdResponse);

/* ---- the API table against Kafka's schemas ---------------------------- */

/* Key, name, validVersions and first flexible version of every request
 * schema in apache/kafka clients/src/main/resources/common/message (3.9
 * era), transcribed from the JSON files. */
typedef struct schema_api_row {
    int16_t key;
    const char *name;
    int16_t min, max, flex;
} schema_api_row;

static const schema_api_row schema_apis[] = {
    {0, "Produce", 0, 11, 9},
    {1, "Fetch", 0, 17, 12},
    {2, "ListOffsets", 0, 10, 6},
    {3, "Metadata", 0, 12, 9},
    {4, "LeaderAndIsr", 0, 7, 4},
    {5, "StopReplica", 0, 4, 2},
    {6, "UpdateMetadata", 0, 8, 6},
    {7, "ControlledShutdown", 0, 3, 3},
    {8, "OffsetCommit", 0, 9, 8},
    {9, "OffsetFetch", 0, 9, 6},
    {10, "FindCoordinator", 0, 6, 3},
    {11, "JoinGroup", 0, 9, 6},
    {12, "Heartbeat", 0, 4, 4},
    {13, "LeaveGroup", 0, 5, 4},
    {14, "SyncGroup", 0, 5, 4},
    {15, "DescribeGroups", 0, 5, 5},
    {16, "ListGroups", 0, 5, 3},
    {17, "SaslHandshake", 0, 1, -1},
    {18, "ApiVersions", 0, 4, 3},
    {19, "CreateTopics", 0, 7, 5},
    {20, "DeleteTopics", 0, 6, 4},
    {21, "DeleteRecords", 0, 2, 2},
    {22, "InitProducerId", 0, 5, 2},
    {23, "OffsetForLeaderEpoch", 0, 4, 4},
    {24, "AddPartitionsToTxn", 0, 5, 3},
    {25, "AddOffsetsToTxn", 0, 4, 3},
    {26, "EndTxn", 0, 5, 3},
    {27, "WriteTxnMarkers", 0, 1, 1},
    {28, "TxnOffsetCommit", 0, 4, 3},
    {29, "DescribeAcls", 0, 3, 2},
    {30, "CreateAcls", 0, 3, 2},
    {31, "DeleteAcls", 0, 3, 2},
    {32, "DescribeConfigs", 0, 4, 4},
    {33, "AlterConfigs", 0, 2, 2},
    {34, "AlterReplicaLogDirs", 0, 2, 2},
    {35, "DescribeLogDirs", 0, 4, 2},
    {36, "SaslAuthenticate", 0, 2, 2},
    {37, "CreatePartitions", 0, 3, 2},
    {38, "CreateDelegationToken", 0, 3, 2},
    {39, "RenewDelegationToken", 0, 2, 2},
    {40, "ExpireDelegationToken", 0, 2, 2},
    {41, "DescribeDelegationToken", 0, 3, 2},
    {42, "DeleteGroups", 0, 2, 2},
    {43, "ElectLeaders", 0, 2, 2},
    {44, "IncrementalAlterConfigs", 0, 1, 1},
    {45, "AlterPartitionReassignments", 0, 0, 0},
    {46, "ListPartitionReassignments", 0, 0, 0},
    {47, "OffsetDelete", 0, 0, -1},
    {48, "DescribeClientQuotas", 0, 1, 1},
    {49, "AlterClientQuotas", 0, 1, 1},
    {50, "DescribeUserScramCredentials", 0, 0, 0},
    {51, "AlterUserScramCredentials", 0, 0, 0},
    {52, "Vote", 0, 1, 0},
    {53, "BeginQuorumEpoch", 0, 1, 1},
    {54, "EndQuorumEpoch", 0, 1, 1},
    {55, "DescribeQuorum", 0, 2, 0},
    {56, "AlterPartition", 0, 3, 0},
    {57, "UpdateFeatures", 0, 2, 0},
    {58, "Envelope", 0, 0, 0},
    {59, "FetchSnapshot", 0, 1, 0},
    {60, "DescribeCluster", 0, 1, 0},
    {61, "DescribeProducers", 0, 0, 0},
    {62, "BrokerRegistration", 0, 4, 0},
    {63, "BrokerHeartbeat", 0, 1, 0},
    {64, "UnregisterBroker", 0, 0, 0},
    {65, "DescribeTransactions", 0, 0, 0},
    {66, "ListTransactions", 0, 1, 0},
    {67, "AllocateProducerIds", 0, 0, 0},
    {68, "ConsumerGroupHeartbeat", 0, 1, 0},
    {69, "ConsumerGroupDescribe", 0, 0, 0},
    {70, "ControllerRegistration", 0, 0, 0},
    {71, "GetTelemetrySubscriptions", 0, 0, 0},
    {72, "PushTelemetry", 0, 0, 0},
    {73, "AssignReplicasToDirs", 0, 0, 0},
    {74, "ListClientMetricsResources", 0, 0, 0},
    {75, "DescribeTopicPartitions", 0, 0, 0},
    {76, "ShareGroupHeartbeat", 0, 0, 0},
    {77, "ShareGroupDescribe", 0, 0, 0},
    {78, "ShareFetch", 0, 0, 0},
    {79, "ShareAcknowledge", 0, 0, 0},
    {80, "AddRaftVoter", 0, 0, 0},
    {81, "RemoveRaftVoter", 0, 0, 0},
    {82, "UpdateRaftVoter", 0, 0, 0},
    {83, "InitializeShareGroupState", 0, 0, 0},
    {84, "ReadShareGroupState", 0, 0, 0},
    {85, "WriteShareGroupState", 0, 0, 0},
    {86, "DeleteShareGroupState", 0, 0, 0},
    {87, "ReadShareGroupStateSummary", 0, 0, 0},
};

static void test_api_table_matches_schemas(void)
{
    ASSERT_EQ(sl_kafka_apis_count, SL_ARRAY_SIZE(schema_apis));
    for (size_t i = 0; i < sl_kafka_apis_count; i++) {
        const sl_kafka_api *a = &sl_kafka_apis[i];
        if (i > 0)
            ASSERT_TRUE(a->key > sl_kafka_apis[i - 1].key); /* ordered */
        ASSERT_TRUE(sl_kafka_api_find(a->key) == a);
        if (i >= SL_ARRAY_SIZE(schema_apis))
            continue;
        ASSERT_EQ(a->key, schema_apis[i].key);
        ASSERT_STREQ(a->name, schema_apis[i].name);
        ASSERT_EQ(a->flexible_from, schema_apis[i].flex);
        ASSERT_TRUE(a->min_version >= schema_apis[i].min);
        ASSERT_TRUE(a->max_version <= schema_apis[i].max);
        if (!a->advertised) {
            ASSERT_EQ(a->min_version, schema_apis[i].min);
            ASSERT_EQ(a->max_version, schema_apis[i].max);
        }
        ASSERT_TRUE(!a->served || a->advertised);
    }
    ASSERT_TRUE(sl_kafka_api_find(-1) == NULL);
    ASSERT_TRUE(sl_kafka_api_find(1000) == NULL);
}

static void test_api_table_advertised(void)
{
    static const struct {
        int16_t key, min, max;
        bool served;
    } want[] = {
        {SL_KAFKA_PRODUCE, 0, 11, true},
        {SL_KAFKA_FETCH, 0, 12, false},
        {SL_KAFKA_METADATA, 0, 12, true},
        {SL_KAFKA_FIND_COORDINATOR, 0, 4, true}, /* with a refusal */
        {SL_KAFKA_API_VERSIONS, 0, 3, true},
        {SL_KAFKA_INIT_PRODUCER_ID, 0, 4, true},
        {SL_KAFKA_SASL_HANDSHAKE, 0, 1, true},
        {SL_KAFKA_SASL_AUTHENTICATE, 0, 2, true},
    };
    size_t n_adv = 0;

    for (size_t i = 0; i < sl_kafka_apis_count; i++)
        n_adv += sl_kafka_apis[i].advertised;
    ASSERT_EQ(n_adv, SL_ARRAY_SIZE(want));
    for (size_t i = 0; i < SL_ARRAY_SIZE(want); i++) {
        const sl_kafka_api *a = sl_kafka_api_find(want[i].key);
        ASSERT_TRUE(a != NULL);
        if (!a)
            continue;
        ASSERT_TRUE(a->advertised);
        ASSERT_EQ(a->served, want[i].served);
        ASSERT_EQ(a->min_version, want[i].min);
        ASSERT_EQ(a->max_version, want[i].max);
    }
    ASSERT_STREQ(sl_kafka_api_find(SL_KAFKA_SASL_HANDSHAKE)->name,
                 "SaslHandshake");
    ASSERT_STREQ(sl_kafka_api_find(SL_KAFKA_LIST_OFFSETS)->name,
                 "ListOffsets");
}

static void test_is_flexible(void)
{
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_PRODUCE, 8));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_PRODUCE, 9));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_PRODUCE, 13)); /* above max */
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_METADATA, 8));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_METADATA, 9));
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_API_VERSIONS, 2));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_API_VERSIONS, 3));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_API_VERSIONS, 4));
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_INIT_PRODUCER_ID, 1));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_INIT_PRODUCER_ID, 2));
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_FETCH, 11));
    ASSERT_TRUE(sl_kafka_is_flexible(SL_KAFKA_FETCH, 12));
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_SASL_HANDSHAKE, 1));
    ASSERT_TRUE(!sl_kafka_is_flexible(SL_KAFKA_SASL_HANDSHAKE, 9));
    ASSERT_TRUE(!sl_kafka_is_flexible(999, 30));
    ASSERT_TRUE(!sl_kafka_is_flexible(-1, 0));
}

static void test_err_names(void)
{
    ASSERT_STREQ(sl_kafka_err_name(SL_KERR_NONE), "NONE");
    ASSERT_STREQ(sl_kafka_err_name(SL_KERR_UNKNOWN_SERVER_ERROR),
                 "UNKNOWN_SERVER_ERROR");
    /* Every code kafka.h names, under its Kafka name. */
#define NAMED(x) ASSERT_STREQ(sl_kafka_err_name(SL_KERR_##x), #x)
    NAMED(OFFSET_OUT_OF_RANGE);
    NAMED(CORRUPT_MESSAGE);
    NAMED(UNKNOWN_TOPIC_OR_PARTITION);
    NAMED(LEADER_NOT_AVAILABLE);
    NAMED(NOT_LEADER_OR_FOLLOWER);
    NAMED(REQUEST_TIMED_OUT);
    NAMED(MESSAGE_TOO_LARGE);
    NAMED(NETWORK_EXCEPTION);
    NAMED(COORDINATOR_NOT_AVAILABLE);
    NAMED(INVALID_TOPIC_EXCEPTION);
    NAMED(RECORD_LIST_TOO_LARGE);
    NAMED(NOT_ENOUGH_REPLICAS);
    NAMED(INVALID_REQUIRED_ACKS);
    NAMED(TOPIC_AUTHORIZATION_FAILED);
    NAMED(CLUSTER_AUTHORIZATION_FAILED);
    NAMED(UNSUPPORTED_SASL_MECHANISM);
    NAMED(UNSUPPORTED_VERSION);
    NAMED(INVALID_REQUEST);
    NAMED(UNSUPPORTED_FOR_MESSAGE_FORMAT);
    NAMED(OUT_OF_ORDER_SEQUENCE_NUMBER);
    NAMED(DUPLICATE_SEQUENCE_NUMBER);
    NAMED(INVALID_PRODUCER_EPOCH);
    NAMED(TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    NAMED(KAFKA_STORAGE_ERROR);
    NAMED(UNKNOWN_PRODUCER_ID);
#undef NAMED
    ASSERT_STREQ(sl_kafka_err_name(8), "BROKER_NOT_AVAILABLE");
    ASSERT_STREQ(sl_kafka_err_name(99), "POSITION_OUT_OF_RANGE");
    ASSERT_STREQ(sl_kafka_err_name(120), "TRANSACTION_ABORTABLE");
    ASSERT_STREQ(sl_kafka_err_name(-2), "UNKNOWN");
    ASSERT_STREQ(sl_kafka_err_name(1000), "UNKNOWN");
    ASSERT_STREQ(sl_kafka_err_name(INT16_MIN), "UNKNOWN");
    ASSERT_STREQ(sl_kafka_err_name(INT16_MAX), "UNKNOWN");
    /* No gaps from -1 up to the last code in the table. */
    for (int c = -1; c <= 128; c++)
        ASSERT_TRUE(strcmp(sl_kafka_err_name((int16_t)c), "UNKNOWN") != 0);
}

/* ---- headers -------------------------------------------------------- */

static void test_req_hdr_apiversions_v0(void)
{
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x0c,             /* size 12 */
        0x00, 0x12, 0x00, 0x00,             /* ApiVersions v0 */
        0x00, 0x00, 0x00, 0x07,             /* correlation id 7 */
        0x00, 0x02, 's', 'l',               /* client id "sl" */
    };                                      /* empty body */
    sl_kafka_ApiVersionsRequest req = {SL_KSTR_NULL, SL_KSTR_NULL};
    sl_kafka_req_hdr h;
    sl_wr w;
    size_t start;
    sl_rd r;

    sl_wr_init(&w, 0);
    start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_API_VERSIONS, 0, 7,
                                    SL_KSTR("sl"));
    ASSERT_EQ(start, 0);
    sl_kafka_ApiVersionsRequest_encode(&w, 0, &req);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, want);

    ASSERT_EQ(sl_kafka_req_hdr_decode(want + 4, sizeof want - 4, &h), 0);
    ASSERT_EQ(h.api_key, SL_KAFKA_API_VERSIONS);
    ASSERT_EQ(h.api_version, 0);
    ASSERT_EQ(h.correlation_id, 7);
    ASSERT_KSTREQ(h.client_id, "sl");
    ASSERT_EQ(h.len, 12);
    r = sl_rd_init(want + 4 + h.len, sizeof want - 4 - h.len);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, 0, &req), 0);
    ASSERT_EQ(req.client_software_name.len, -1);
    sl_wr_free(&w);
}

static void test_req_hdr_apiversions_v3(void)
{
    /* Header v2: the client id keeps its int16 length; tags follow. */
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x1f,             /* size 31 */
        0x00, 0x12, 0x00, 0x03,             /* ApiVersions v3 */
        0x00, 0x00, 0x00, 0x2a,             /* correlation id 42 */
        0x00, 0x06, 'c', 'l', 'i', 'e', 'n', 't',
        0x00,                               /* header tags: none */
        0x07, 's', 'l', 'u', 'i', 'c', 'e', /* compact "sluice" */
        0x06, '0', '.', '1', '.', '0',      /* compact "0.1.0" */
        0x00,                               /* body tags */
    };
    /* The same with a tagged field in the header (tag 5, 2 bytes) that
     * the decoder must skip. */
    static const uint8_t tagged[] = {
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x2a,
        0xff, 0xff,                         /* null client id */
        0x01, 0x05, 0x02, 'a', 'b',         /* one tag */
        0x07, 's', 'l', 'u', 'i', 'c', 'e',
        0x06, '0', '.', '1', '.', '0',
        0x02, 0x00, 0x01, 'x', 0x01, 0x00,  /* body tags 0 and 1 */
    };
    sl_kafka_ApiVersionsRequest req = {SL_KSTR("sluice"), SL_KSTR("0.1.0")};
    sl_kafka_ApiVersionsRequest got;
    sl_kafka_req_hdr h;
    sl_wr w;
    size_t start;
    sl_rd r;

    sl_wr_init(&w, 16);
    start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_API_VERSIONS, 3, 42,
                                    SL_KSTR("client"));
    sl_kafka_ApiVersionsRequest_encode(&w, 3, &req);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, want);

    ASSERT_EQ(sl_kafka_req_hdr_decode(want + 4, sizeof want - 4, &h), 0);
    ASSERT_EQ(h.len, 17);
    ASSERT_KSTREQ(h.client_id, "client");
    r = sl_rd_init(want + 4 + h.len, sizeof want - 4 - h.len);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, 3, &got), 0);
    ASSERT_KSTREQ(got.client_software_name, "sluice");
    ASSERT_KSTREQ(got.client_software_version, "0.1.0");
    ASSERT_EQ(sl_rd_left(&r), 0);

    ASSERT_EQ(sl_kafka_req_hdr_decode(tagged, sizeof tagged, &h), 0);
    ASSERT_EQ(h.correlation_id, 42);
    ASSERT_EQ(h.client_id.len, -1);
    ASSERT_EQ(h.len, 15);
    r = sl_rd_init(tagged + h.len, sizeof tagged - h.len);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, 3, &got), 0);
    ASSERT_KSTREQ(got.client_software_version, "0.1.0");
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_wr_free(&w);
}

static void test_req_hdr_errors(void)
{
    /* Metadata v9 (flexible): client id "ab" then tags. */
    static const uint8_t frame[] = {0x00, 0x03, 0x00, 0x09, 0x01, 0x02,
                                    0x03, 0x04, 0x00, 0x02, 'a',  'b',
                                    0x00};
    sl_kafka_req_hdr h;

    ASSERT_EQ(sl_kafka_req_hdr_decode(frame, sizeof frame, &h), 0);
    ASSERT_EQ(h.correlation_id, 0x01020304);
    ASSERT_EQ(h.len, sizeof frame);
    /* Too short for key/version/correlation id: truncated. */
    for (size_t n = 0; n < 8; n++)
        ASSERT_EQ(sl_kafka_req_hdr_decode(frame, n, &h), SL_E_TRUNCATED);
    ASSERT_EQ(sl_kafka_req_hdr_decode(NULL, 0, &h), SL_E_TRUNCATED);
    /* Bad client id or tags: parse error, but the ids are known so the
     * daemon can still answer or log with them. */
    for (size_t n = 8; n < sizeof frame; n++) {
        ASSERT_EQ(sl_kafka_req_hdr_decode(frame, n, &h), SL_E_PARSE);
        ASSERT_EQ(h.api_key, SL_KAFKA_METADATA);
        ASSERT_EQ(h.api_version, 9);
        ASSERT_EQ(h.correlation_id, 0x01020304);
    }
    {
        static const uint8_t bad_len[] = {0x00, 0x03, 0x00, 0x01, 0, 0,
                                          0,    1,    0xff, 0xfe};
        ASSERT_EQ(sl_kafka_req_hdr_decode(bad_len, sizeof bad_len, &h),
                  SL_E_PARSE);
        ASSERT_EQ(h.correlation_id, 1);
    }
    /* Unknown API key: header v1, body left to the caller. */
    {
        static const uint8_t unk[] = {0x01, 0x00, 0x00, 0x05, 0, 0,
                                      0,    9,    0x00, 0x00, 0xaa};
        ASSERT_EQ(sl_kafka_req_hdr_decode(unk, sizeof unk, &h), 0);
        ASSERT_EQ(h.api_key, 256);
        ASSERT_EQ(h.len, 10);
        ASSERT_KSTREQ(h.client_id, "");
    }
}

static void test_req_hdr_v0_controlled_shutdown(void)
{
    /* ControlledShutdown v0 is the one user of request header v0: no
     * client id. v1 has one. */
    static const uint8_t v0[] = {0x00, 0x00, 0x00, 0x08, 0x00, 0x07,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x03};
    sl_kafka_req_hdr h;
    sl_wr w;

    sl_wr_init(&w, 0);
    sl_kafka_frame_end(&w, sl_kafka_req_hdr_encode(&w, 7, 0, 3,
                                                   SL_KSTR("ignored")));
    ASSERT_BYTES(w.buf, w.len, v0);
    ASSERT_EQ(sl_kafka_req_hdr_decode(v0 + 4, 8, &h), 0);
    ASSERT_EQ(h.len, 8);
    ASSERT_EQ(h.client_id.len, -1);
    w.len = 0;
    sl_kafka_req_hdr_encode(&w, 7, 1, 3, SL_KSTR("c"));
    ASSERT_EQ(w.len, 4 + 8 + 3);
    sl_wr_free(&w);
}

static void test_resp_hdr(void)
{
    static const uint8_t av3[] = {0x00, 0x00, 0x00, 0x04,
                                  0x00, 0x00, 0x00, 0x09};
    static const uint8_t md9[] = {0x00, 0x00, 0x00, 0x05, 0x00,
                                  0x00, 0x00, 0x09, 0x00};
    static const uint8_t md8[] = {0x00, 0x00, 0x00, 0x04,
                                  0x00, 0x00, 0x00, 0x09};
    /* Header v1 carrying one tagged field (tag 0, 2 bytes). */
    static const uint8_t tagged[] = {0x00, 0x00, 0x00, 0x09, 0x01,
                                     0x00, 0x02, 0x7f, 0xee};
    int32_t corr = 0;
    sl_wr w;
    sl_rd r;

    sl_wr_init(&w, 0);
    /* ApiVersions: header v0 even at flexible v3. */
    sl_kafka_frame_end(&w, sl_kafka_resp_hdr_encode(&w, 18, 3, 9));
    ASSERT_BYTES(w.buf, w.len, av3);
    w.len = 0;
    sl_kafka_frame_end(&w, sl_kafka_resp_hdr_encode(&w, 3, 9, 9));
    ASSERT_BYTES(w.buf, w.len, md9);
    w.len = 0;
    sl_kafka_frame_end(&w, sl_kafka_resp_hdr_encode(&w, 3, 8, 9));
    ASSERT_BYTES(w.buf, w.len, md8);

    r = sl_rd_init(av3 + 4, 4);
    ASSERT_EQ(sl_kafka_resp_hdr_decode(&r, 18, 3, &corr), 0);
    ASSERT_EQ(corr, 9);
    ASSERT_EQ(sl_rd_left(&r), 0);
    r = sl_rd_init(md9 + 4, 5);
    ASSERT_EQ(sl_kafka_resp_hdr_decode(&r, 3, 9, &corr), 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    r = sl_rd_init(tagged, sizeof tagged);
    ASSERT_EQ(sl_kafka_resp_hdr_decode(&r, 0, 9, &corr), 0);
    ASSERT_EQ(corr, 9);
    ASSERT_EQ(sl_rd_left(&r), 0);
    r = sl_rd_init(md9 + 4, 4);
    ASSERT_EQ(sl_kafka_resp_hdr_decode(&r, 3, 9, &corr), SL_E_TRUNCATED);
    sl_wr_free(&w);
}

/* ---- ApiVersions ------------------------------------------------------ */

static void test_apiversions_roundtrip(void)
{
    static const sl_kafka_api_range ranges[] = {
        {0, 0, 11}, {3, 0, 12}, {18, 0, 3}, {22, 0, 4}, {1000, -1, 32767}};
    sl_kafka_ApiVersionsRequest req;
    sl_kafka_ApiVersionsResponse resp;

    for (int16_t v = 0; v <= 3; v++) {
        req.client_software_name = v >= 3 ? SL_KSTR("librdkafka")
                                          : SL_KSTR_NULL;
        req.client_software_version = v >= 3 ? SL_KSTR("2.3.0-RC1.x")
                                             : SL_KSTR_NULL;
        ASSERT_EQ(roundtrip(&codec_ApiVersionsRequest, v, &req),
                  v >= 3 ? 1 + 10 + 1 + 11 + 1 : 0);

        resp.error_code = 0;
        resp.n_apis = (int32_t)SL_ARRAY_SIZE(ranges);
        resp.apis = (sl_kafka_api_range *)ranges;
        resp.throttle_time_ms = v >= 1 ? 250 : 0;
        roundtrip(&codec_ApiVersionsResponse, v, &resp);
        resp.n_apis = 0;
        resp.error_code = SL_KERR_CLUSTER_AUTHORIZATION_FAILED;
        roundtrip(&codec_ApiVersionsResponse, v, &resp);
        sl_kafka_ApiVersionsResponse_build(&resp, false);
        roundtrip(&codec_ApiVersionsResponse, v, &resp);
    }
}

static void test_apiversions_v0_response_bytes(void)
{
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x16,             /* size 22 */
        0x00, 0x00, 0x00, 0x07,             /* correlation id */
        0x00, 0x00,                         /* error_code */
        0x00, 0x00, 0x00, 0x02,             /* 2 api keys */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, /* Produce 0-11 */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
    };                                      /* no throttle in v0 */
    static const sl_kafka_api_range ranges[] = {{0, 0, 11}, {18, 0, 3}};
    sl_kafka_ApiVersionsResponse resp = {0, 2, (sl_kafka_api_range *)ranges,
                                         0};
    sl_wr w;
    size_t start;

    sl_wr_init(&w, 0);
    start = sl_kafka_resp_hdr_encode(&w, 18, 0, 7);
    sl_kafka_ApiVersionsResponse_encode(&w, 0, &resp);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, want);
    sl_wr_free(&w);
}

static void test_apiversions_v3_response_bytes(void)
{
    static const uint8_t want[] = {
        0x00, 0x00,                         /* error_code */
        0x02,                               /* compact: 1 entry */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x00, 0x00, 0x64,             /* throttle 100 */
        0x00,                               /* tags */
    };
    /* A broker's v3 answer with SupportedFeatures (tag 0) and
     * FinalizedFeaturesEpoch (tag 1): skipped. */
    static const uint8_t with_tags[] = {
        0x00, 0x00, 0x02, 0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00,
        0x00, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x01, 0x01,             /* tag 0: empty array */
        0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 5, /* tag 1: int64 5 */
    };
    static const sl_kafka_api_range ranges[] = {{18, 0, 3}};
    sl_kafka_ApiVersionsResponse resp = {0, 1, (sl_kafka_api_range *)ranges,
                                         100};
    sl_kafka_ApiVersionsResponse got;
    sl_wr w;
    sl_rd r;

    sl_wr_init(&w, 0);
    sl_kafka_ApiVersionsResponse_encode(&w, 3, &resp);
    ASSERT_BYTES(w.buf, w.len, want);
    r = sl_rd_init(with_tags, sizeof with_tags);
    ASSERT_EQ(sl_kafka_ApiVersionsResponse_decode(&r, 3, &got), 0);
    ASSERT_EQ(got.n_apis, 1);
    ASSERT_EQ(got.apis[0].max_version, 3);
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_kafka_ApiVersionsResponse_free(&got);
    sl_wr_free(&w);
}

static void test_apiversions_build(void)
{
    sl_kafka_ApiVersionsResponse m;
    size_t n_adv = 0;

    sl_kafka_ApiVersionsResponse_build(&m, false);
    ASSERT_EQ(m.error_code, 0);
    ASSERT_EQ(m.throttle_time_ms, 0);
    for (size_t i = 0; i < sl_kafka_apis_count; i++) {
        const sl_kafka_api *a = &sl_kafka_apis[i];
        if (!a->advertised)
            continue;
        ASSERT_TRUE((int32_t)n_adv < m.n_apis);
        if ((int32_t)n_adv < m.n_apis) {
            ASSERT_EQ(m.apis[n_adv].api_key, a->key);
            ASSERT_EQ(m.apis[n_adv].min_version, a->min_version);
            ASSERT_EQ(m.apis[n_adv].max_version, a->max_version);
        }
        n_adv++;
    }
    ASSERT_EQ(m.n_apis, (int32_t)n_adv);
}

static void test_apiversions_unsupported_answer(void)
{
    /* KIP-511: a v0 body, error 35, only the ApiVersions range. */
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x10,             /* size 16 */
        0x00, 0x00, 0x00, 0x63,             /* correlation id 99 */
        0x00, 0x23,                         /* UNSUPPORTED_VERSION */
        0x00, 0x00, 0x00, 0x01,             /* one entry */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03, /* ApiVersions 0-3 */
    };
    sl_kafka_ApiVersionsResponse m;
    sl_wr w;
    size_t start;

    sl_kafka_ApiVersionsResponse_build(&m, true);
    ASSERT_EQ(m.error_code, SL_KERR_UNSUPPORTED_VERSION);
    ASSERT_EQ(m.n_apis, 1);
    ASSERT_EQ(m.apis[0].api_key, SL_KAFKA_API_VERSIONS);
    sl_wr_init(&w, 0);
    /* The request was e.g. v7: header and body still v0. */
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_API_VERSIONS, 0, 99);
    sl_kafka_ApiVersionsResponse_encode(&w, 0, &m);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, want);
    sl_wr_free(&w);
}

static void test_apiversions_decode_errors(void)
{
    /* v3 software name must not be null (compact length 0). */
    static const uint8_t null_name[] = {0x00, 0x02, 'x', 0x00};
    static const uint8_t null_ver[] = {0x02, 'x', 0x00, 0x00};
    static const uint8_t neg_array[] = {0x00, 0x00, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t huge_array[] = {0x00, 0x00, 0x7f, 0xff, 0xff, 0xff};
    sl_kafka_ApiVersionsRequest req;
    sl_kafka_ApiVersionsResponse resp;
    sl_rd r;

    r = sl_rd_init(null_name, sizeof null_name);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, 3, &req), SL_E_PARSE);
    r = sl_rd_init(null_ver, sizeof null_ver);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, 3, &req), SL_E_PARSE);
    r = sl_rd_init(null_ver, sizeof null_ver);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, 4, &req),
              SL_E_UNSUPPORTED);
    ASSERT_EQ(sl_kafka_ApiVersionsRequest_decode(&r, -1, &req),
              SL_E_UNSUPPORTED);
    r = sl_rd_init(neg_array, sizeof neg_array);
    ASSERT_EQ(sl_kafka_ApiVersionsResponse_decode(&r, 0, &resp), SL_E_PARSE);
    r = sl_rd_init(huge_array, sizeof huge_array);
    ASSERT_EQ(sl_kafka_ApiVersionsResponse_decode(&r, 0, &resp),
              SL_E_TRUNCATED);
}

static void test_software_name_valid(void)
{
    static const char *const good[] = {"a", "Z", "7", "librdkafka",
                                       "apache-kafka-java", "3.7.0",
                                       "2.3.0-RC1", "a.b-c.d", "a--b",
                                       "x..y", "sarama"};
    static const char *const bad[] = {"", "-a", "a-", ".a", "a.", "-",
                                      ".", "a b", "a_b", "kafka/2",
                                      "caf\xc3\xa9", "a\n", " a"};

    for (size_t i = 0; i < SL_ARRAY_SIZE(good); i++)
        if (!sl_kafka_software_name_valid(SL_KSTR(good[i])))
            SL__FAIL("\"%s\" should be valid", good[i]);
    for (size_t i = 0; i < SL_ARRAY_SIZE(bad); i++)
        if (sl_kafka_software_name_valid(SL_KSTR(bad[i])))
            SL__FAIL("\"%s\" should be invalid", bad[i]);
    ASSERT_TRUE(!sl_kafka_software_name_valid(SL_KSTR_NULL));
    /* Length-delimited: a NUL inside is just an invalid character. */
    ASSERT_TRUE(!sl_kafka_software_name_valid((sl_kstr){"ab\0c", 4}));
    ASSERT_TRUE(sl_kafka_software_name_valid((sl_kstr){"ab\0c", 2}));
}

/* ---- Metadata --------------------------------------------------------- */

static const uint8_t id_a[16] = {0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
                                 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
                                 0x1c, 0x1d, 0x1e, 0x1f};
static const uint8_t id_b[16] = {0xff, 0, 0, 0, 0, 0, 0, 0,
                                 0,    0, 0, 0, 0, 0, 0, 0x01};

/* Variant 0: three topics; 1: all topics (null; empty in v0); 2: no
 * topics (empty array; v1+ meaning "none"). Fields absent from `v` hold
 * the decoder's defaults so the comparison can be exhaustive. */
static void fill_metadata_request(int16_t v, int variant,
                                  sl_kafka_MetadataRequest *m,
                                  sl_kafka_MetadataRequestTopic topics[3])
{
    memset(m, 0, sizeof *m);
    memset(topics, 0, 3 * sizeof *topics);
    topics[0].name = SL_KSTR("orders");
    topics[1].name = SL_KSTR("");
    topics[2].name = SL_KSTR("a.b-c_d");
    if (v >= 10) {
        memcpy(topics[0].topic_id, id_a, 16);
        memcpy(topics[2].topic_id, id_b, 16);
        topics[1].name = SL_KSTR_NULL; /* by id only, v10+ */
        memcpy(topics[1].topic_id, id_b, 16);
    }
    m->topics = variant == 0 ? topics : NULL;
    m->n_topics = variant == 0 ? 3 : variant == 1 ? (v >= 1 ? -1 : 0) : 0;
    m->allow_auto_topic_creation = v >= 4 ? variant != 0 : true;
    m->include_cluster_authorized_operations = v >= 8 && v <= 10;
    m->include_topic_authorized_operations = v >= 8 && variant == 0;
}

static void test_metadata_request_roundtrip(void)
{
    sl_kafka_MetadataRequest m;
    sl_kafka_MetadataRequestTopic topics[3];

    for (int16_t v = 0; v <= 12; v++)
        for (int variant = 0; variant < 3; variant++) {
            fill_metadata_request(v, variant, &m, topics);
            roundtrip(&codec_MetadataRequest, v, &m);
        }
}

static void test_metadata_request_bytes(void)
{
    /* v1, null topics = all topics. */
    static const uint8_t v1_all[] = {
        0x00, 0x00, 0x00, 0x10, 0x00, 0x03, 0x00, 0x01, /* Metadata v1 */
        0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 's',  'l',
        0xff, 0xff, 0xff, 0xff,                         /* null array */
    };
    /* v0 "all topics" is the empty array. */
    static const uint8_t v0_all[] = {0x00, 0x00, 0x00, 0x00};
    /* v4: null topics, allow_auto_topic_creation false. */
    static const uint8_t v4[] = {0xff, 0xff, 0xff, 0xff, 0x00};
    /* v9 (flexible): one topic "t", auto-create, include_cluster (v8-10)
     * and include_topic false. */
    static const uint8_t v9[] = {0x02, 0x02, 't', 0x00, 0x01,
                                 0x00, 0x00, 0x00};
    /* v11: null (compact 0) = all; no include_cluster field. */
    static const uint8_t v11[] = {0x00, 0x01, 0x01, 0x00};
    sl_kafka_MetadataRequestTopic t = {{0}, SL_KSTR("t")};
    sl_kafka_MetadataRequest m = {-1, NULL, true, false, false};
    sl_kafka_MetadataRequest got;
    sl_wr w;
    size_t start;
    sl_rd r;

    sl_wr_init(&w, 0);
    start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_METADATA, 1, 1,
                                    SL_KSTR("sl"));
    sl_kafka_MetadataRequest_encode(&w, 1, &m);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, v1_all);
    r = sl_rd_init(v1_all + 16, 4);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 1, &got), 0);
    ASSERT_EQ(got.n_topics, -1);
    ASSERT_TRUE(got.topics == NULL);
    ASSERT_TRUE(got.allow_auto_topic_creation);
    sl_kafka_MetadataRequest_free(&got);

    w.len = 0;
    sl_kafka_MetadataRequest_encode(&w, 0, &m);
    ASSERT_BYTES(w.buf, w.len, v0_all);
    w.len = 0;
    m.allow_auto_topic_creation = false;
    sl_kafka_MetadataRequest_encode(&w, 4, &m);
    ASSERT_BYTES(w.buf, w.len, v4);
    w.len = 0;
    m.allow_auto_topic_creation = true;
    m.n_topics = 1;
    m.topics = &t;
    sl_kafka_MetadataRequest_encode(&w, 9, &m);
    ASSERT_BYTES(w.buf, w.len, v9);
    w.len = 0;
    m.n_topics = -1;
    m.include_topic_authorized_operations = true;
    sl_kafka_MetadataRequest_encode(&w, 11, &m);
    ASSERT_BYTES(w.buf, w.len, v11);
    sl_wr_free(&w);
}

static void test_metadata_request_decode_errors(void)
{
    /* v0 topics are not nullable. */
    static const uint8_t v0_null[] = {0xff, 0xff, 0xff, 0xff};
    /* v1 topic name null (nullable only from v10). */
    static const uint8_t v1_null_name[] = {0, 0, 0, 1, 0xff, 0xff};
    /* v9 name null (compact 0). */
    static const uint8_t v9_null_name[] = {0x02, 0x00, 0x00, 0x01, 0x00,
                                           0x00, 0x00};
    /* -2 array length. */
    static const uint8_t v1_neg[] = {0xff, 0xff, 0xff, 0xfe};
    /* A count far beyond the bytes present must fail before allocating. */
    static const uint8_t v9_huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    sl_kafka_MetadataRequest m;
    sl_rd r;

    r = sl_rd_init(v0_null, sizeof v0_null);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 0, &m), SL_E_PARSE);
    r = sl_rd_init(v1_null_name, sizeof v1_null_name);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 1, &m), SL_E_PARSE);
    r = sl_rd_init(v9_null_name, sizeof v9_null_name);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 9, &m), SL_E_PARSE);
    r = sl_rd_init(v1_neg, sizeof v1_neg);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 1, &m), SL_E_PARSE);
    r = sl_rd_init(v9_huge, sizeof v9_huge);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 9, &m), SL_E_TRUNCATED);
    r = sl_rd_init(v1_neg, sizeof v1_neg);
    ASSERT_EQ(sl_kafka_MetadataRequest_decode(&r, 13, &m), SL_E_UNSUPPORTED);
}

typedef struct metadata_fixture {
    sl_kafka_MetadataResponse m;
    sl_kafka_MetadataBroker brokers[3];
    sl_kafka_MetadataTopic topics[3];
    sl_kafka_MetadataPartition parts[3];
} metadata_fixture;

static const int32_t replicas_123[] = {1, 2, 3};
static const int32_t isr_12[] = {1, 2};
static const int32_t offline_3[] = {3};
static const int32_t replicas_2[] = {2};

/* Variant 0: three brokers (null and non-null racks), three topics (one
 * with two partitions, one empty, one nameless from v12), cluster id set;
 * variant 1: nothing at all, null cluster id. */
static void fill_metadata_response(int16_t v, int variant,
                                   metadata_fixture *f)
{
    sl_kafka_MetadataResponse *m = &f->m;

    memset(f, 0, sizeof *f);
    m->throttle_time_ms = v >= 3 ? 1500 : 0;
    m->controller_id = v >= 1 ? 2 : -1;
    m->cluster_id = v >= 2 && variant == 0 ? SL_KSTR("5L6g3nShT-eMCtK--X86sw")
                                           : SL_KSTR_NULL;
    m->cluster_authorized_operations =
        v >= 8 && v <= 10 ? 0x0ff8 : INT32_MIN;
    if (variant != 0)
        return;

    f->brokers[0] = (sl_kafka_MetadataBroker){
        1, SL_KSTR("broker-1.example.com"), 9092,
        v >= 1 ? SL_KSTR("rack-a") : SL_KSTR_NULL};
    f->brokers[1] = (sl_kafka_MetadataBroker){2, SL_KSTR("10.0.0.2"), 9093,
                                              SL_KSTR_NULL};
    f->brokers[2] = (sl_kafka_MetadataBroker){
        -7, SL_KSTR(""), 65535, v >= 1 ? SL_KSTR("") : SL_KSTR_NULL};
    m->brokers = f->brokers;
    m->n_brokers = 3;

    f->parts[0] = (sl_kafka_MetadataPartition){
        0, 0, 1, v >= 7 ? 17 : -1, 3, (int32_t *)replicas_123, 2,
        (int32_t *)isr_12, v >= 5 ? 1 : 0,
        v >= 5 ? (int32_t *)offline_3 : NULL};
    f->parts[1] = (sl_kafka_MetadataPartition){
        SL_KERR_LEADER_NOT_AVAILABLE, 1, -1, -1, 1, (int32_t *)replicas_2,
        0, NULL, 0, NULL};
    f->topics[0] = (sl_kafka_MetadataTopic){
        0, SL_KSTR("orders"), {0}, false, 2, f->parts,
        v >= 8 ? 0x0df8 : INT32_MIN};
    if (v >= 10)
        memcpy(f->topics[0].topic_id, id_a, 16);
    f->topics[1] = (sl_kafka_MetadataTopic){
        SL_KERR_UNKNOWN_TOPIC_OR_PARTITION, SL_KSTR("missing"), {0},
        false, 0, NULL, v >= 8 ? -2147483647 : INT32_MIN};
    f->topics[2] = (sl_kafka_MetadataTopic){
        SL_KERR_UNKNOWN_TOPIC_OR_PARTITION,
        v >= 12 ? SL_KSTR_NULL : SL_KSTR("__consumer_offsets"),
        {0}, v >= 1, 0, NULL, INT32_MIN};
    if (v >= 10)
        memcpy(f->topics[2].topic_id, id_b, 16);
    m->topics = f->topics;
    m->n_topics = 3;
}

static void test_metadata_response_roundtrip(void)
{
    metadata_fixture f;

    for (int16_t v = 0; v <= 12; v++)
        for (int variant = 0; variant < 2; variant++) {
            fill_metadata_response(v, variant, &f);
            roundtrip(&codec_MetadataResponse, v, &f.m);
        }
}

static void test_metadata_response_bytes(void)
{
    /* v1: brokers [1 "h" 9092 null-rack], controller 1, topics ["t":
     * error 0, internal false, partition 0 leader 1 replicas [1] isr [1]]. */
    static const uint8_t v1[] = {
        0, 0, 0, 1,                         /* 1 broker */
        0, 0, 0, 1, 0, 1, 'h', 0, 0, 0x23, 0x84, 0xff, 0xff,
        0, 0, 0, 1,                         /* controller 1 */
        0, 0, 0, 1,                         /* 1 topic */
        0, 0, 0, 1, 't', 0x00,              /* error, "t", not internal */
        0, 0, 0, 1,                         /* 1 partition */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1,       /* error, index 0, leader 1 */
        0, 0, 0, 1, 0, 0, 0, 1,             /* replicas [1] */
        0, 0, 0, 1, 0, 0, 0, 1,             /* isr [1] */
    };
    /* The same at v12 (flexible, topic id, leader epoch, offline). */
    static const uint8_t v12[] = {
        0, 0, 0, 0,                         /* throttle */
        0x02,                               /* 1 broker */
        0, 0, 0, 1, 0x02, 'h', 0, 0, 0x23, 0x84, 0x00, 0x00,
        0x00,                               /* null cluster id */
        0, 0, 0, 1,                         /* controller */
        0x02,                               /* 1 topic */
        0, 0, 0x02, 't',
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
        0x00,                               /* not internal */
        0x02,                               /* 1 partition */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0xff, 0xff, 0xff, 0xff,             /* leader epoch -1 */
        0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1, 0x01, /* replicas isr offline */
        0x00,                               /* partition tags */
        0x80, 0x00, 0x00, 0x00,             /* topic authorized ops */
        0x00,                               /* topic tags */
        0x00,                               /* tags (no cluster ops v11+) */
    };
    static const int32_t one[] = {1};
    sl_kafka_MetadataBroker b = {1, SL_KSTR("h"), 9092, SL_KSTR_NULL};
    sl_kafka_MetadataPartition p = {0, 0, 1, -1, 1, (int32_t *)one,
                                    1, (int32_t *)one, 0, NULL};
    sl_kafka_MetadataTopic t = {0, SL_KSTR("t"), {0}, false, 1, &p,
                                INT32_MIN};
    sl_kafka_MetadataResponse m = {0, 1, &b, SL_KSTR_NULL, 1, 1, &t,
                                   INT32_MIN};
    sl_wr w;

    memcpy(t.topic_id, id_a, 16);
    sl_wr_init(&w, 0);
    sl_kafka_MetadataResponse_encode(&w, 1, &m);
    ASSERT_BYTES(w.buf, w.len, v1);
    w.len = 0;
    sl_kafka_MetadataResponse_encode(&w, 12, &m);
    ASSERT_BYTES(w.buf, w.len, v12);
    sl_wr_free(&w);
}

static void test_metadata_response_decode_errors(void)
{
    /* v0 broker host null. */
    static const uint8_t null_host[] = {0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff,
                                        0, 0, 0, 1, 0, 0, 0, 0};
    /* v1 topic name null (nullable only from v12). */
    static const uint8_t null_topic[] = {0, 0, 0, 0, 0, 0, 0, 1,
                                         0, 0, 0, 1, 0, 0, 0xff, 0xff,
                                         0, 0, 0, 0, 0};
    /* v0 replicas array -1. */
    static const uint8_t null_replicas[] = {
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 't', 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0};
    sl_kafka_MetadataResponse m;
    sl_rd r;

    r = sl_rd_init(null_host, sizeof null_host);
    ASSERT_EQ(sl_kafka_MetadataResponse_decode(&r, 0, &m), SL_E_PARSE);
    r = sl_rd_init(null_topic, sizeof null_topic);
    ASSERT_EQ(sl_kafka_MetadataResponse_decode(&r, 1, &m), SL_E_PARSE);
    r = sl_rd_init(null_replicas, sizeof null_replicas);
    ASSERT_EQ(sl_kafka_MetadataResponse_decode(&r, 0, &m), SL_E_PARSE);
}

/* ---- Produce ---------------------------------------------------------- */

typedef struct produce_req_fixture {
    sl_kafka_ProduceRequest m;
    sl_kafka_ProduceTopicData topics[3];
    sl_kafka_ProducePartitionData parts[3];
    uint8_t big[300];
} produce_req_fixture;

/* Variant 0: two topics, three partitions (records, null records, 300
 * bytes), transactional id; 1: no topics, null transactional id; 2: a
 * topic with no partitions and one with empty (non-null) records. */
static void fill_produce_request(int16_t v, int variant,
                                 produce_req_fixture *f)
{
    sl_kafka_ProduceRequest *m = &f->m;

    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < sizeof f->big; i++)
        f->big[i] = (uint8_t)(i * 7);
    m->transactional_id = v >= 3 && variant == 0 ? SL_KSTR("txn-1")
                                                 : SL_KSTR_NULL;
    m->acks = variant == 1 ? 0 : -1;
    m->timeout_ms = 30000 + variant;
    if (variant == 1)
        return;
    if (variant == 0) {
        f->parts[0] = (sl_kafka_ProducePartitionData){0, SL_KSTR("batch-0")};
        f->parts[1] = (sl_kafka_ProducePartitionData){5, SL_KSTR_NULL};
        f->parts[2] = (sl_kafka_ProducePartitionData){
            2, {(const char *)f->big, (int32_t)sizeof f->big}};
        f->topics[0] = (sl_kafka_ProduceTopicData){SL_KSTR("orders"), 2,
                                                   &f->parts[0]};
        f->topics[1] = (sl_kafka_ProduceTopicData){SL_KSTR("logs"), 1,
                                                   &f->parts[2]};
    } else {
        f->parts[0] = (sl_kafka_ProducePartitionData){7, SL_KSTR("")};
        f->topics[0] = (sl_kafka_ProduceTopicData){SL_KSTR("empty"), 0,
                                                   NULL};
        f->topics[1] = (sl_kafka_ProduceTopicData){SL_KSTR(""), 1,
                                                   &f->parts[0]};
    }
    m->topics = f->topics;
    m->n_topics = 2;
}

static void test_produce_request_roundtrip(void)
{
    produce_req_fixture f;

    for (int16_t v = 0; v <= 11; v++)
        for (int variant = 0; variant < 3; variant++) {
            fill_produce_request(v, variant, &f);
            roundtrip(&codec_ProduceRequest, v, &f.m);
        }
}

static void test_produce_request_v3_bytes(void)
{
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x2a,             /* size 42 */
        0x00, 0x00, 0x00, 0x03,             /* Produce v3 */
        0x00, 0x00, 0x00, 0x05,             /* correlation id 5 */
        0x00, 0x02, 's', 'l',               /* client id */
        0xff, 0xff,                         /* transactional_id null */
        0xff, 0xff,                         /* acks -1 */
        0x00, 0x00, 0x75, 0x30,             /* timeout 30000 */
        0x00, 0x00, 0x00, 0x01,             /* 1 topic */
        0x00, 0x01, 't',
        0x00, 0x00, 0x00, 0x01,             /* 1 partition */
        0x00, 0x00, 0x00, 0x00,             /* index 0 */
        0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c', /* records */
    };
    sl_kafka_ProducePartitionData p = {0, SL_KSTR("abc")};
    sl_kafka_ProduceTopicData t = {SL_KSTR("t"), 1, &p};
    sl_kafka_ProduceRequest m = {SL_KSTR_NULL, -1, 30000, 1, &t};
    sl_kafka_ProduceRequest got;
    sl_kafka_req_hdr h;
    sl_wr w;
    size_t start;
    sl_rd r;

    sl_wr_init(&w, 0);
    start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_PRODUCE, 3, 5,
                                    SL_KSTR("sl"));
    sl_kafka_ProduceRequest_encode(&w, 3, &m);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, want);

    ASSERT_EQ(sl_kafka_req_hdr_decode(want + 4, sizeof want - 4, &h), 0);
    r = sl_rd_init(want + 4 + h.len, sizeof want - 4 - h.len);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, h.api_version, &got), 0);
    ASSERT_EQ(got.transactional_id.len, -1);
    ASSERT_EQ(got.acks, -1);
    ASSERT_EQ(got.timeout_ms, 30000);
    ASSERT_EQ(got.n_topics, 1);
    ASSERT_KSTREQ(got.topics[0].name, "t");
    ASSERT_EQ(got.topics[0].n_partitions, 1);
    ASSERT_KSTREQ(got.topics[0].partitions[0].records, "abc");
    /* Records point into the frame, not a copy. */
    ASSERT_TRUE(got.topics[0].partitions[0].records.p ==
                (const char *)want + sizeof want - 3);
    sl_kafka_ProduceRequest_free(&got);
    sl_wr_free(&w);
}

static void test_produce_request_v9_bytes(void)
{
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x25,             /* size 37 */
        0x00, 0x00, 0x00, 0x09,             /* Produce v9 */
        0x00, 0x00, 0x00, 0x05,
        0x00, 0x02, 's', 'l',               /* client id: int16 length */
        0x00,                               /* header tags */
        0x03, 't', 'x',                     /* compact "tx" */
        0xff, 0xff,                         /* acks -1 */
        0x00, 0x00, 0x75, 0x30,
        0x02,                               /* compact: 1 topic */
        0x02, 't',
        0x02,                               /* 1 partition */
        0x00, 0x00, 0x00, 0x00,
        0x04, 'a', 'b', 'c',                /* compact bytes */
        0x00,                               /* partition tags */
        0x00,                               /* topic tags */
        0x00,                               /* request tags */
    };
    /* Same body with a null records field and unknown tags at each level,
     * which the decoder skips. */
    static const uint8_t tagged[] = {
        0x00, 0xff, 0xff, 0x00, 0x00, 0x03, 0xe8,
        0x02, 0x02, 't', 0x02, 0x00, 0x00, 0x00, 0x01,
        0x00,                               /* null records */
        0x01, 0x07, 0x01, 0xaa,             /* partition tag 7 */
        0x01, 0x00, 0x00,                   /* topic tag 0, empty */
        0x02, 0x00, 0x01, 0x01, 0x81, 0x01, 0x00, /* tags 0 and 129 */
    };
    sl_kafka_ProducePartitionData p = {0, SL_KSTR("abc")};
    sl_kafka_ProduceTopicData t = {SL_KSTR("t"), 1, &p};
    sl_kafka_ProduceRequest m = {SL_KSTR("tx"), -1, 30000, 1, &t};
    sl_kafka_ProduceRequest got;
    sl_kafka_req_hdr h;
    sl_wr w;
    size_t start;
    sl_rd r;

    sl_wr_init(&w, 0);
    start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_PRODUCE, 9, 5,
                                    SL_KSTR("sl"));
    sl_kafka_ProduceRequest_encode(&w, 9, &m);
    sl_kafka_frame_end(&w, start);
    ASSERT_BYTES(w.buf, w.len, want);

    ASSERT_EQ(sl_kafka_req_hdr_decode(want + 4, sizeof want - 4, &h), 0);
    ASSERT_EQ(h.len, 13);
    r = sl_rd_init(want + 4 + h.len, sizeof want - 4 - h.len);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 9, &got), 0);
    ASSERT_KSTREQ(got.transactional_id, "tx");
    ASSERT_KSTREQ(got.topics[0].partitions[0].records, "abc");
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_kafka_ProduceRequest_free(&got);

    r = sl_rd_init(tagged, sizeof tagged);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 10, &got), 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    ASSERT_EQ(got.transactional_id.len, -1);
    ASSERT_EQ(got.timeout_ms, 1000);
    ASSERT_EQ(got.topics[0].partitions[0].index, 1);
    ASSERT_EQ(got.topics[0].partitions[0].records.len, -1);
    sl_kafka_ProduceRequest_free(&got);
    sl_wr_free(&w);
}

static void test_produce_request_decode_errors(void)
{
    /* v3 topic name null. */
    static const uint8_t null_name[] = {0xff, 0xff, 0, 1, 0, 0, 0, 0,
                                        0,    0,    0, 1, 0xff, 0xff,
                                        0,    0,    0, 0};
    /* v3 partitions array null. */
    static const uint8_t null_parts[] = {0xff, 0xff, 0, 1, 0, 0, 0, 0,
                                         0,    0,    0, 1, 0, 1, 't',
                                         0xff, 0xff, 0xff, 0xff};
    /* v3 records length -2. */
    static const uint8_t neg_records[] = {
        0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 't',
        0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe};
    /* v0-2 have no transactional id: these bytes are acks/timeout. */
    static const uint8_t v0[] = {0, 1, 0, 0, 0x03, 0xe8, 0, 0, 0, 0};
    /* v9 a topic count of 2^31 in a few bytes. */
    static const uint8_t huge[] = {0x00, 0, 1, 0, 0, 0, 0,
                                   0x80, 0x80, 0x80, 0x80, 0x08};
    sl_kafka_ProduceRequest m;
    sl_rd r;

    r = sl_rd_init(null_name, sizeof null_name);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 3, &m), SL_E_PARSE);
    r = sl_rd_init(null_parts, sizeof null_parts);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 3, &m), SL_E_PARSE);
    r = sl_rd_init(neg_records, sizeof neg_records);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 3, &m), SL_E_PARSE);
    r = sl_rd_init(huge, sizeof huge);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 9, &m), SL_E_TRUNCATED);
    r = sl_rd_init(v0, sizeof v0);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 0, &m), 0);
    ASSERT_EQ(m.acks, 1);
    ASSERT_EQ(m.timeout_ms, 1000);
    ASSERT_EQ(m.n_topics, 0);
    ASSERT_EQ(m.transactional_id.len, -1);
    sl_kafka_ProduceRequest_free(&m);
    r = sl_rd_init(v0, sizeof v0);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, 12, &m), SL_E_UNSUPPORTED);
    ASSERT_EQ(sl_kafka_ProduceRequest_decode(&r, -1, &m), SL_E_UNSUPPORTED);
}

typedef struct produce_resp_fixture {
    sl_kafka_ProduceResponse m;
    sl_kafka_ProduceTopicResponse topics[2];
    sl_kafka_ProducePartitionResponse parts[3];
    sl_kafka_ProduceRecordError errs[2];
} produce_resp_fixture;

static void fill_produce_response(int16_t v, int variant,
                                  produce_resp_fixture *f)
{
    sl_kafka_ProduceResponse *m = &f->m;

    memset(f, 0, sizeof *f);
    m->throttle_time_ms = v >= 1 ? 42 + variant : 0;
    if (variant == 1)
        return;
    f->errs[0] = (sl_kafka_ProduceRecordError){3, SL_KSTR("bad key")};
    f->errs[1] = (sl_kafka_ProduceRecordError){9, SL_KSTR_NULL};
    f->parts[0] = (sl_kafka_ProducePartitionResponse){
        0, 0, 1234567890123LL, v >= 2 ? 1700000000000LL : -1,
        v >= 5 ? 17 : -1, 0, NULL, SL_KSTR_NULL};
    f->parts[1] = (sl_kafka_ProducePartitionResponse){
        3, SL_KERR_INVALID_REQUEST, -1, -1, -1, v >= 8 ? 2 : 0,
        v >= 8 ? f->errs : NULL,
        v >= 8 ? SL_KSTR("2 records rejected") : SL_KSTR_NULL};
    f->parts[2] = (sl_kafka_ProducePartitionResponse){
        1, SL_KERR_NOT_ENOUGH_REPLICAS, -1, -1, v >= 5 ? 0 : -1, 0, NULL,
        v >= 8 ? SL_KSTR("") : SL_KSTR_NULL};
    f->topics[0] = (sl_kafka_ProduceTopicResponse){SL_KSTR("orders"), 2,
                                                   &f->parts[0]};
    f->topics[1] = (sl_kafka_ProduceTopicResponse){SL_KSTR("logs"), 1,
                                                   &f->parts[2]};
    m->topics = f->topics;
    m->n_topics = 2;
}

static void test_produce_response_roundtrip(void)
{
    produce_resp_fixture f;

    for (int16_t v = 0; v <= 11; v++)
        for (int variant = 0; variant < 2; variant++) {
            fill_produce_response(v, variant, &f);
            roundtrip(&codec_ProduceResponse, v, &f.m);
        }
}

static void test_produce_response_bytes(void)
{
    /* v9: ["t": [0, error 0, base 5, append -1, start 0, no record
     * errors, null message]], throttle 0; compact forms and tags. */
    static const uint8_t v9[] = {
        0x02, 0x02, 't', 0x02,
        0, 0, 0, 0, 0, 0,                   /* index, error */
        0, 0, 0, 0, 0, 0, 0, 5,             /* base offset */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0, 0, 0, 0, 0,             /* log start offset */
        0x01,                               /* record_errors: [] */
        0x00,                               /* error_message: null */
        0x00, 0x00,                         /* partition, topic tags */
        0, 0, 0, 0,                         /* throttle after topics */
        0x00,
    };
    /* v0: no throttle, no log append time. */
    static const uint8_t v0[] = {
        0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
    };
    /* v1: throttle time after the topics; v2: and log append time after
     * the base offset (the answers legacy producers read, issue 15). */
    static const uint8_t v1[] = {
        0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
        0, 0, 0, 0,
    };
    static const uint8_t v2[] = {
        0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0,
    };
    /* v10 with CurrentLeader (partition tag 0) and NodeEndpoints
     * (top-level tag 0) from a real broker: skipped. */
    static const uint8_t v10_tags[] = {
        0x02, 0x02, 't', 0x02, 0, 0, 0, 0, 0, 6,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x01, 0x00,
        0x01, 0x00, 0x09, 0, 0, 0, 2, 0, 0, 0, 4, 0x00, /* CurrentLeader */
        0x00,
        0, 0, 0, 0,
        0x01, 0x00, 0x0d, 0x02, 0, 0, 0, 2, 0x02, 'h', 0, 0, 0x23, 0x84,
        0x00, 0x00,                         /* NodeEndpoints */
    };
    sl_kafka_ProducePartitionResponse p = {0, 0, 5, -1, 0, 0, NULL,
                                           SL_KSTR_NULL};
    sl_kafka_ProduceTopicResponse t = {SL_KSTR("t"), 1, &p};
    sl_kafka_ProduceResponse m = {1, &t, 0};
    sl_kafka_ProduceResponse got;
    sl_wr w;
    sl_rd r;

    sl_wr_init(&w, 0);
    sl_kafka_ProduceResponse_encode(&w, 9, &m);
    ASSERT_BYTES(w.buf, w.len, v9);
    w.len = 0;
    sl_kafka_ProduceResponse_encode(&w, 0, &m);
    ASSERT_BYTES(w.buf, w.len, v0);
    w.len = 0;
    sl_kafka_ProduceResponse_encode(&w, 1, &m);
    ASSERT_BYTES(w.buf, w.len, v1);
    w.len = 0;
    sl_kafka_ProduceResponse_encode(&w, 2, &m);
    ASSERT_BYTES(w.buf, w.len, v2);
    r = sl_rd_init(v10_tags, sizeof v10_tags);
    ASSERT_EQ(sl_kafka_ProduceResponse_decode(&r, 10, &got), 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    ASSERT_EQ(got.n_topics, 1);
    ASSERT_EQ(got.topics[0].partitions[0].error_code,
              SL_KERR_NOT_LEADER_OR_FOLLOWER);
    sl_kafka_ProduceResponse_free(&got);
    sl_wr_free(&w);
}

/* ---- InitProducerId --------------------------------------------------- */

static void test_init_producer_id_roundtrip(void)
{
    for (int16_t v = 0; v <= 4; v++) {
        sl_kafka_InitProducerIdRequest req = {SL_KSTR_NULL, 60000, -1, -1};
        sl_kafka_InitProducerIdResponse resp = {0, 0, 4000, 0};

        roundtrip(&codec_InitProducerIdRequest, v, &req);
        req.transactional_id = SL_KSTR("my-txn");
        req.transaction_timeout_ms = INT32_MAX;
        if (v >= 3) {
            req.producer_id = 0x0102030405060708LL;
            req.producer_epoch = 32000;
        }
        roundtrip(&codec_InitProducerIdRequest, v, &req);
        req.transactional_id = SL_KSTR("");
        roundtrip(&codec_InitProducerIdRequest, v, &req);

        ASSERT_EQ(roundtrip(&codec_InitProducerIdResponse, v, &resp),
                  v >= 2 ? 17 : 16);
        resp = (sl_kafka_InitProducerIdResponse){
            5000, SL_KERR_CLUSTER_AUTHORIZATION_FAILED, -1, -1};
        roundtrip(&codec_InitProducerIdResponse, v, &resp);
    }
}

static void test_init_producer_id_bytes(void)
{
    static const uint8_t req_v0[] = {0xff, 0xff, 0x00, 0x00, 0xea, 0x60};
    static const uint8_t req_v3[] = {0x00, 0x00, 0x00, 0xea, 0x60,
                                     0xff, 0xff, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0xff,
                                     0x00};
    static const uint8_t resp_v2[] = {0, 0, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0x0f, 0xa0,
                                      0, 0, 0x00};
    sl_kafka_InitProducerIdRequest req = {SL_KSTR_NULL, 60000, -1, -1};
    sl_kafka_InitProducerIdResponse resp = {0, 0, 4000, 0};
    sl_wr w;

    sl_wr_init(&w, 0);
    sl_kafka_InitProducerIdRequest_encode(&w, 0, &req);
    ASSERT_BYTES(w.buf, w.len, req_v0);
    w.len = 0;
    sl_kafka_InitProducerIdRequest_encode(&w, 3, &req);
    ASSERT_BYTES(w.buf, w.len, req_v3);
    w.len = 0;
    sl_kafka_InitProducerIdResponse_encode(&w, 2, &resp);
    ASSERT_BYTES(w.buf, w.len, resp_v2);
    sl_wr_free(&w);
}

/* ---- FindCoordinator: decoded only to refuse transactions by name ---- */

static void test_find_coordinator_request_bytes(void)
{
    /* v0: key "g" (a group). */
    static const uint8_t v0[] = {0x00, 0x01, 'g'};
    /* v2 (librdkafka's transactional producer): key "tx", key_type 1. */
    static const uint8_t v2[] = {0x00, 0x02, 't', 'x', 0x01};
    /* v3 flexible: compact key "tx", key_type 1, no tags. */
    static const uint8_t v3[] = {0x03, 't', 'x', 0x01, 0x00};
    /* v4 (Java 3.x/4.x, KIP-699): key_type 1, keys ["tx", "ab"], no tags. */
    static const uint8_t v4[] = {0x01, 0x03, 0x03, 't', 'x', 0x03, 'a', 'b',
                                 0x00};
    sl_kafka_FindCoordinatorRequest m;
    sl_rd r;
    sl_wr w;

    r = sl_rd_init(v0, sizeof v0);
    ASSERT_EQ(sl_kafka_FindCoordinatorRequest_decode(&r, 0, &m), 0);
    ASSERT_EQ(m.key_type, SL_KAFKA_COORDINATOR_GROUP);
    ASSERT_EQ(m.n_keys, 1);
    ASSERT_KSTREQ(m.keys[0], "g");
    r = sl_rd_init(v2, sizeof v2);
    ASSERT_EQ(sl_kafka_FindCoordinatorRequest_decode(&r, 2, &m), 0);
    ASSERT_EQ(m.key_type, SL_KAFKA_COORDINATOR_TRANSACTION);
    ASSERT_KSTREQ(m.keys[0], "tx");
    r = sl_rd_init(v3, sizeof v3);
    ASSERT_EQ(sl_kafka_FindCoordinatorRequest_decode(&r, 3, &m), 0);
    ASSERT_EQ(m.key_type, SL_KAFKA_COORDINATOR_TRANSACTION);
    ASSERT_KSTREQ(m.keys[0], "tx");
    r = sl_rd_init(v4, sizeof v4);
    ASSERT_EQ(sl_kafka_FindCoordinatorRequest_decode(&r, 4, &m), 0);
    ASSERT_EQ(m.key_type, SL_KAFKA_COORDINATOR_TRANSACTION);
    ASSERT_EQ(m.n_keys, 2);
    ASSERT_KSTREQ(m.keys[0], "tx");
    ASSERT_KSTREQ(m.keys[1], "ab");
    sl_wr_init(&w, 0);
    sl_kafka_FindCoordinatorRequest_encode(&w, 4, &m);
    ASSERT_BYTES(w.buf, w.len, v4);
    w.len = 0;
    m.n_keys = 1;
    sl_kafka_FindCoordinatorRequest_encode(&w, 2, &m);
    ASSERT_BYTES(w.buf, w.len, v2);
    sl_wr_free(&w);
    /* Truncated anywhere: an error, never a read past the end. */
    for (size_t n = 0; n < sizeof v4; n++) {
        r = sl_rd_init(v4, n);
        ASSERT_NE(sl_kafka_FindCoordinatorRequest_decode(&r, 4, &m), 0);
    }
    /* More keys than answered: refused, not truncated silently. */
    {
        uint8_t many[2 + 2 * (SL_KAFKA_FIND_COORDINATOR_MAX_KEYS + 1) + 1];
        size_t k = 0;
        many[k++] = 1;
        many[k++] = SL_KAFKA_FIND_COORDINATOR_MAX_KEYS + 2;
        for (int i = 0; i <= SL_KAFKA_FIND_COORDINATOR_MAX_KEYS; i++) {
            many[k++] = 0x02;
            many[k++] = 'k';
        }
        many[k++] = 0;
        r = sl_rd_init(many, k);
        ASSERT_EQ(sl_kafka_FindCoordinatorRequest_decode(&r, 4, &m),
                  SL_E_UNSUPPORTED);
    }
    r = sl_rd_init(v0, sizeof v0);
    ASSERT_EQ(sl_kafka_FindCoordinatorRequest_decode(&r, 5, &m),
              SL_E_UNSUPPORTED);
}

static void test_find_coordinator_response_bytes(void)
{
    /* v2: throttle 0, error 53, message "no", node -1, host "", port -1. */
    static const uint8_t v2[] = {0, 0, 0, 0, 0x00, 0x35, 0x00, 0x02, 'n', 'o',
                                 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
                                 0xff, 0xff, 0xff, 0xff};
    /* v0: error 53, node -1, host "", port -1. */
    static const uint8_t v0[] = {0x00, 0x35, 0xff, 0xff, 0xff, 0xff, 0x00,
                                 0x00, 0xff, 0xff, 0xff, 0xff};
    /* v4: throttle 0, one coordinator {key "tx", node -1, host "",
     * port -1, error 53, message "no", tags}, tags. */
    static const uint8_t v4[] = {0, 0, 0, 0, 0x02, 0x03, 't', 'x',
                                 0xff, 0xff, 0xff, 0xff, 0x01,
                                 0xff, 0xff, 0xff, 0xff, 0x00, 0x35,
                                 0x03, 'n', 'o', 0x00, 0x00};
    sl_kafka_FindCoordinatorRequest req = {SL_KAFKA_COORDINATOR_TRANSACTION,
                                           1, {SL_KSTR("tx")}};
    sl_wr w;

    sl_wr_init(&w, 0);
    sl_kafka_FindCoordinatorResponse_encode(
        &w, 2, &req, SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        SL_KSTR("no"));
    ASSERT_BYTES(w.buf, w.len, v2);
    w.len = 0;
    sl_kafka_FindCoordinatorResponse_encode(
        &w, 0, &req, SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        SL_KSTR("no"));
    ASSERT_BYTES(w.buf, w.len, v0);
    w.len = 0;
    sl_kafka_FindCoordinatorResponse_encode(
        &w, 4, &req, SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        SL_KSTR("no"));
    ASSERT_BYTES(w.buf, w.len, v4);
    sl_wr_free(&w);
}

/* ---- error-response templates ----------------------------------------- */

/*
 * The top-level fields of Kafka's *Response.json for every API with an
 * error template, transcribed from the schemas (tagged fields omitted: they
 * live in the tag section). Types: i int32, h int16, E int16 ErrorCode,
 * b int8, l int64, B bool, u uuid, s string, y bytes, a array, S struct
 * (nullable here). Versions are [vmin, vmax] (127: open-ended), nullable
 * versions [nmin, nmax] (-1: never).
 */
typedef struct walk_field {
    int16_t key;
    const char *name;
    char type;
    int8_t vmin, vmax, nmin, nmax;
} walk_field;

static const walk_field walk_fields[] = {
    /* FetchResponse 0-17, flexible 12+ */
    {1, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {1, "ErrorCode", 'E', 7, 127, -1, -1},
    {1, "SessionId", 'i', 7, 127, -1, -1},
    {1, "Responses", 'a', 0, 127, -1, -1},
    /* ListOffsetsResponse 0-10, flexible 6+ */
    {2, "ThrottleTimeMs", 'i', 2, 127, -1, -1},
    {2, "Topics", 'a', 0, 127, -1, -1},
    /* OffsetCommitResponse 0-9, flexible 8+ */
    {8, "ThrottleTimeMs", 'i', 3, 127, -1, -1},
    {8, "Topics", 'a', 0, 127, -1, -1},
    /* OffsetFetchResponse 0-9, flexible 6+ */
    {9, "ThrottleTimeMs", 'i', 3, 127, -1, -1},
    {9, "Topics", 'a', 0, 7, -1, -1},
    {9, "ErrorCode", 'E', 2, 7, -1, -1},
    {9, "Groups", 'a', 8, 127, -1, -1},
    /* FindCoordinatorResponse 0-6, flexible 3+ */
    {10, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {10, "ErrorCode", 'E', 0, 3, -1, -1},
    {10, "ErrorMessage", 's', 1, 3, 1, 3},
    {10, "NodeId", 'i', 0, 3, -1, -1},
    {10, "Host", 's', 0, 3, -1, -1},
    {10, "Port", 'i', 0, 3, -1, -1},
    {10, "Coordinators", 'a', 4, 127, -1, -1},
    /* JoinGroupResponse 0-9, flexible 6+ */
    {11, "ThrottleTimeMs", 'i', 2, 127, -1, -1},
    {11, "ErrorCode", 'E', 0, 127, -1, -1},
    {11, "GenerationId", 'i', 0, 127, -1, -1},
    {11, "ProtocolType", 's', 7, 127, 7, 127},
    {11, "ProtocolName", 's', 0, 127, 7, 127},
    {11, "Leader", 's', 0, 127, -1, -1},
    {11, "SkipAssignment", 'B', 9, 127, -1, -1},
    {11, "MemberId", 's', 0, 127, -1, -1},
    {11, "Members", 'a', 0, 127, -1, -1},
    /* HeartbeatResponse 0-4, flexible 4+ */
    {12, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {12, "ErrorCode", 'E', 0, 127, -1, -1},
    /* LeaveGroupResponse 0-5, flexible 4+ */
    {13, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {13, "ErrorCode", 'E', 0, 127, -1, -1},
    {13, "Members", 'a', 3, 127, -1, -1},
    /* SyncGroupResponse 0-5, flexible 4+ */
    {14, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {14, "ErrorCode", 'E', 0, 127, -1, -1},
    {14, "ProtocolType", 's', 5, 127, 5, 127},
    {14, "ProtocolName", 's', 5, 127, 5, 127},
    {14, "Assignment", 'y', 0, 127, -1, -1},
    /* DescribeGroupsResponse 0-5, flexible 5+ */
    {15, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {15, "Groups", 'a', 0, 127, -1, -1},
    /* ListGroupsResponse 0-5, flexible 3+ */
    {16, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {16, "ErrorCode", 'E', 0, 127, -1, -1},
    {16, "Groups", 'a', 0, 127, -1, -1},
    /* SaslHandshakeResponse 0-1, flexible none */
    {17, "ErrorCode", 'E', 0, 127, -1, -1},
    {17, "Mechanisms", 'a', 0, 127, -1, -1},
    /* CreateTopicsResponse 0-7, flexible 5+ */
    {19, "ThrottleTimeMs", 'i', 2, 127, -1, -1},
    {19, "Topics", 'a', 0, 127, -1, -1},
    /* DeleteTopicsResponse 0-6, flexible 4+ */
    {20, "ThrottleTimeMs", 'i', 1, 127, -1, -1},
    {20, "Responses", 'a', 0, 127, -1, -1},
    /* DeleteRecordsResponse 0-2, flexible 2+ */
    {21, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {21, "Topics", 'a', 0, 127, -1, -1},
    /* InitProducerIdResponse 0-5, flexible 2+ */
    {22, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {22, "ErrorCode", 'E', 0, 127, -1, -1},
    {22, "ProducerId", 'l', 0, 127, -1, -1},
    {22, "ProducerEpoch", 'h', 0, 127, -1, -1},
    /* OffsetForLeaderEpochResponse 0-4, flexible 4+ */
    {23, "ThrottleTimeMs", 'i', 2, 127, -1, -1},
    {23, "Topics", 'a', 0, 127, -1, -1},
    /* AddPartitionsToTxnResponse 0-5, flexible 3+ */
    {24, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {24, "ErrorCode", 'E', 4, 127, -1, -1},
    {24, "ResultsByTransaction", 'a', 4, 127, -1, -1},
    {24, "ResultsByTopicV3AndBelow", 'a', 0, 3, -1, -1},
    /* AddOffsetsToTxnResponse 0-4, flexible 3+ */
    {25, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {25, "ErrorCode", 'E', 0, 127, -1, -1},
    /* EndTxnResponse 0-5, flexible 3+ */
    {26, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {26, "ErrorCode", 'E', 0, 127, -1, -1},
    {26, "ProducerId", 'l', 5, 127, -1, -1},
    {26, "ProducerEpoch", 'h', 5, 127, -1, -1},
    /* TxnOffsetCommitResponse 0-4, flexible 3+ */
    {28, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {28, "Topics", 'a', 0, 127, -1, -1},
    /* DescribeAclsResponse 0-3, flexible 2+ */
    {29, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {29, "ErrorCode", 'E', 0, 127, -1, -1},
    {29, "ErrorMessage", 's', 0, 127, 0, 127},
    {29, "Resources", 'a', 0, 127, -1, -1},
    /* CreateAclsResponse 0-3, flexible 2+ */
    {30, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {30, "Results", 'a', 0, 127, -1, -1},
    /* DeleteAclsResponse 0-3, flexible 2+ */
    {31, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {31, "FilterResults", 'a', 0, 127, -1, -1},
    /* DescribeConfigsResponse 0-4, flexible 4+ */
    {32, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {32, "Results", 'a', 0, 127, -1, -1},
    /* AlterConfigsResponse 0-2, flexible 2+ */
    {33, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {33, "Responses", 'a', 0, 127, -1, -1},
    /* DescribeLogDirsResponse 0-4, flexible 2+ */
    {35, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {35, "ErrorCode", 'E', 3, 127, -1, -1},
    {35, "Results", 'a', 0, 127, -1, -1},
    /* SaslAuthenticateResponse 0-2, flexible 2+ */
    {36, "ErrorCode", 'E', 0, 127, -1, -1},
    {36, "ErrorMessage", 's', 0, 127, 0, 127},
    {36, "AuthBytes", 'y', 0, 127, -1, -1},
    {36, "SessionLifetimeMs", 'l', 1, 127, -1, -1},
    /* CreatePartitionsResponse 0-3, flexible 2+ */
    {37, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {37, "Results", 'a', 0, 127, -1, -1},
    /* DeleteGroupsResponse 0-2, flexible 2+ */
    {42, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {42, "Results", 'a', 0, 127, -1, -1},
    /* ElectLeadersResponse 0-2, flexible 2+ */
    {43, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {43, "ErrorCode", 'E', 1, 127, -1, -1},
    {43, "ReplicaElectionResults", 'a', 0, 127, -1, -1},
    /* IncrementalAlterConfigsResponse 0-1, flexible 1+ */
    {44, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {44, "Responses", 'a', 0, 127, -1, -1},
    /* OffsetDeleteResponse 0, flexible none */
    {47, "ErrorCode", 'E', 0, 127, -1, -1},
    {47, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {47, "Topics", 'a', 0, 127, -1, -1},
    /* DescribeClientQuotasResponse 0-1, flexible 1+ */
    {48, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {48, "ErrorCode", 'E', 0, 127, -1, -1},
    {48, "ErrorMessage", 's', 0, 127, 0, 127},
    {48, "Entries", 'a', 0, 127, 0, 127},
    /* DescribeClusterResponse 0-1, flexible 0+ */
    {60, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {60, "ErrorCode", 'E', 0, 127, -1, -1},
    {60, "ErrorMessage", 's', 0, 127, 0, 127},
    {60, "EndpointType", 'b', 1, 127, -1, -1},
    {60, "ClusterId", 's', 0, 127, -1, -1},
    {60, "ControllerId", 'i', 0, 127, -1, -1},
    {60, "Brokers", 'a', 0, 127, -1, -1},
    {60, "ClusterAuthorizedOperations", 'i', 0, 127, -1, -1},
    /* DescribeProducersResponse 0, flexible 0+ */
    {61, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {61, "Topics", 'a', 0, 127, -1, -1},
    /* DescribeTransactionsResponse 0, flexible 0+ */
    {65, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {65, "TransactionStates", 'a', 0, 127, -1, -1},
    /* ListTransactionsResponse 0-1, flexible 0+ */
    {66, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {66, "ErrorCode", 'E', 0, 127, -1, -1},
    {66, "UnknownStateFilters", 'a', 0, 127, -1, -1},
    {66, "TransactionStates", 'a', 0, 127, -1, -1},
    /* ConsumerGroupHeartbeatResponse 0-1, flexible 0+ */
    {68, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {68, "ErrorCode", 'E', 0, 127, -1, -1},
    {68, "ErrorMessage", 's', 0, 127, 0, 127},
    {68, "MemberId", 's', 0, 127, 0, 127},
    {68, "MemberEpoch", 'i', 0, 127, -1, -1},
    {68, "HeartbeatIntervalMs", 'i', 0, 127, -1, -1},
    {68, "Assignment", 'S', 0, 127, 0, 127},
    /* ConsumerGroupDescribeResponse 0, flexible 0+ */
    {69, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {69, "Groups", 'a', 0, 127, -1, -1},
    /* GetTelemetrySubscriptionsResponse 0, flexible 0+ */
    {71, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {71, "ErrorCode", 'E', 0, 127, -1, -1},
    {71, "ClientInstanceId", 'u', 0, 127, -1, -1},
    {71, "SubscriptionId", 'i', 0, 127, -1, -1},
    {71, "AcceptedCompressionTypes", 'a', 0, 127, -1, -1},
    {71, "PushIntervalMs", 'i', 0, 127, -1, -1},
    {71, "TelemetryMaxBytes", 'i', 0, 127, -1, -1},
    {71, "DeltaTemporality", 'B', 0, 127, -1, -1},
    {71, "RequestedMetrics", 'a', 0, 127, -1, -1},
    /* PushTelemetryResponse 0, flexible 0+ */
    {72, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {72, "ErrorCode", 'E', 0, 127, -1, -1},
    /* DescribeTopicPartitionsResponse 0, flexible 0+ */
    {75, "ThrottleTimeMs", 'i', 0, 127, -1, -1},
    {75, "Topics", 'a', 0, 127, -1, -1},
    {75, "NextCursor", 'S', 0, 127, 0, 127},
};

static const schema_api_row *schema_api(int16_t key)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(schema_apis); i++)
        if (schema_apis[i].key == key)
            return &schema_apis[i];
    return NULL;
}

static bool has_walk_fields(int16_t key)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(walk_fields); i++)
        if (walk_fields[i].key == key)
            return true;
    return false;
}

/* Length of a string/bytes/array in either form; -1 = null. */
static int64_t walk_len(sl_rd *r, bool flex, int classic_width)
{
    if (flex)
        return (int64_t)sl_rd_uvarint(r) - 1;
    return classic_width == 2 ? sl_rd_i16(r) : sl_rd_i32(r);
}

/* Parses an error response body the way a Kafka client would, from the
 * schema's field list; every error field must hold `code`, every throttle
 * 0, every collection be empty, and the bytes be consumed exactly. */
static bool walk_response(int16_t key, int16_t ver, int16_t code,
                          const uint8_t *buf, size_t len)
{
    const schema_api_row *api = schema_api(key);
    bool flex = api && api->flex >= 0 && ver >= api->flex;
    sl_rd r = sl_rd_init(buf, len);
    int failed_before = sl_test__failed_checks;

    for (size_t i = 0; i < SL_ARRAY_SIZE(walk_fields); i++) {
        const walk_field *f = &walk_fields[i];
        bool nullable = f->nmin >= 0 && ver >= f->nmin && ver <= f->nmax;
        int64_t n;

        if (f->key != key || ver < f->vmin || ver > f->vmax)
            continue;
        switch (f->type) {
        case 'b':
            (void)sl_rd_i8(&r);
            break;
        case 'h':
            (void)sl_rd_i16(&r);
            break;
        case 'E':
            if (sl_rd_i16(&r) != code && !r.err)
                SL__FAIL("api %d v%d %s != %d", key, ver, f->name, code);
            break;
        case 'i':
            if (sl_rd_i32(&r) != 0 && !r.err &&
                strcmp(f->name, "ThrottleTimeMs") == 0)
                SL__FAIL("api %d v%d: throttle not 0", key, ver);
            break;
        case 'l':
            (void)sl_rd_i64(&r);
            break;
        case 'B': {
            uint8_t b = sl_rd_u8(&r);
            if (b > 1)
                SL__FAIL("api %d v%d %s: bool %u", key, ver, f->name, b);
            break;
        }
        case 'u':
            sl_rd_skip(&r, 16);
            break;
        case 's':
        case 'y':
            n = walk_len(&r, flex, f->type == 's' ? 2 : 4);
            if (r.err)
                break;
            if (n < -1 || (n == -1 && !nullable))
                SL__FAIL("api %d v%d %s: length %lld not allowed", key, ver,
                         f->name, (long long)n);
            else if (n > 0)
                sl_rd_skip(&r, (size_t)n);
            break;
        case 'a':
            n = walk_len(&r, flex, 4);
            if (r.err)
                break;
            if (n < -1 || (n == -1 && !nullable) || n > 0)
                SL__FAIL("api %d v%d %s: array length %lld", key, ver,
                         f->name, (long long)n);
            break;
        case 'S':
            if (sl_rd_i8(&r) != -1 || !nullable)
                SL__FAIL("api %d v%d %s: expected a null struct", key, ver,
                         f->name);
            break;
        default:
            SL__FAIL("api %d: unknown walk type %c", key, f->type);
        }
    }
    if (flex && sl_rd_uvarint(&r) != 0)
        SL__FAIL("api %d v%d: unexpected tagged fields", key, ver);
    if (r.err)
        SL__FAIL("api %d v%d: walk failed: %s", key, ver,
                 sl_err_name(r.err));
    else if (sl_rd_left(&r) != 0)
        SL__FAIL("api %d v%d: %zu bytes left after the last field", key,
                 ver, sl_rd_left(&r));
    return sl_test__failed_checks == failed_before;
}

static void test_error_templates_walk(void)
{
    /* The APIs the brief names; each must have a template. */
    static const int16_t required[] = {1,  2,  8,  9,  10, 11, 12,
                                       13, 14, 15, 16, 17, 19, 20,
                                       24, 25, 26, 28, 32};
    static const int16_t codes[] = {SL_KERR_COORDINATOR_NOT_AVAILABLE,
                                    SL_KERR_UNSUPPORTED_VERSION,
                                    SL_KERR_UNKNOWN_SERVER_ERROR};
    int n_templates = 0, n_walked = 0;

    for (int key = -2; key < 200; key++) {
        const sl_kafka_api *a = sl_kafka_api_find((int16_t)key);
        for (int ver = -1; ver <= 20; ver++) {
            sl_wr w;
            int rc;

            sl_wr_init(&w, 0);
            rc = sl_kafka_error_response_encode(&w, (int16_t)key,
                                                (int16_t)ver, codes[0]);
            if (rc == SL_E_UNSUPPORTED) {
                ASSERT_EQ(w.len, 0);
                /* A template must cover its API's whole table range. */
                if (a && has_walk_fields(a->key) && ver >= a->min_version &&
                    ver <= a->max_version)
                    SL__FAIL("api %d v%d: no template", key, ver);
            } else {
                ASSERT_EQ(rc, 0);
                ASSERT_TRUE(a != NULL);
                if (!a) {
                    sl_wr_free(&w);
                    continue;
                }
                if (ver == a->min_version)
                    n_templates++;
                ASSERT_TRUE(ver >= a->min_version && ver <= a->max_version);
                if (!has_walk_fields((int16_t)key))
                    SL__FAIL("api %d has a template but no schema fields",
                             key);
                for (size_t c = 0; c < SL_ARRAY_SIZE(codes); c++) {
                    w.len = 0;
                    ASSERT_EQ(sl_kafka_error_response_encode(
                                  &w, (int16_t)key, (int16_t)ver, codes[c]),
                              0);
                    if (walk_response((int16_t)key, (int16_t)ver, codes[c],
                                      w.buf, w.len))
                        n_walked++;
                    else
                        SL__FAIL("api %d (%s) v%d code %d", key, a->name,
                                 ver, codes[c]);
                }
            }
            sl_wr_free(&w);
        }
    }
    for (size_t i = 0; i < SL_ARRAY_SIZE(required); i++) {
        sl_wr w;
        sl_wr_init(&w, 0);
        if (sl_kafka_error_response_encode(&w, required[i], 0, 1) != 0)
            SL__FAIL("api %d has no error template", required[i]);
        sl_wr_free(&w);
    }
    /* Served APIs other than InitProducerId answer errors themselves. */
    {
        sl_wr w;
        sl_wr_init(&w, 0);
        ASSERT_EQ(sl_kafka_error_response_encode(&w, SL_KAFKA_PRODUCE, 3, 1),
                  SL_E_UNSUPPORTED);
        ASSERT_EQ(sl_kafka_error_response_encode(&w, 18, 0, 35),
                  SL_E_UNSUPPORTED);
        sl_wr_free(&w);
    }
    /* 43 APIs today, each walked for every version and three codes. */
    ASSERT_TRUE(n_templates >= 40);
    ASSERT_TRUE(n_walked >= 3 * n_templates);
}

#define ASSERT_TPL(key, ver, code, want)                                  \
    do {                                                                  \
        sl_wr w_;                                                         \
        sl_wr_init(&w_, 0);                                               \
        ASSERT_EQ(sl_kafka_error_response_encode(&w_, key, ver, code), 0); \
        ASSERT_BYTES(w_.buf, w_.len, want);                               \
        sl_wr_free(&w_);                                                  \
    } while (0)

static void test_error_template_bytes(void)
{
    /* Fetch: v0 just the empty responses array; v1-6 throttle first;
     * v7+ error and session id; v12 compact with tags. */
    static const uint8_t fetch_v0[] = {0, 0, 0, 0};
    static const uint8_t fetch_v4[] = {0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t fetch_v7[] = {0, 0, 0, 0, 0x00, 0x23,
                                       0, 0, 0, 0, 0,    0, 0, 0};
    static const uint8_t fetch_v12[] = {0, 0, 0, 0, 0x00, 0x23, 0, 0,
                                        0, 0, 0x01, 0x00};
    /* FindCoordinator: v0 error, node -1, host "", port -1; v1 adds
     * throttle and a null message; v3 compact; v4 coordinators array. */
    static const uint8_t fc_v0[] = {0x00, 0x0f, 0xff, 0xff, 0xff, 0xff,
                                    0x00, 0x00, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t fc_v1[] = {0, 0, 0, 0, 0x00, 0x0f, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
                                    0xff, 0xff, 0xff, 0xff};
    static const uint8_t fc_v3[] = {0, 0, 0, 0, 0x00, 0x0f, 0x00,
                                    0xff, 0xff, 0xff, 0xff, 0x01,
                                    0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t fc_v4[] = {0, 0, 0, 0, 0x01, 0x00};
    static const uint8_t hb_v0[] = {0x00, 0x0f};
    static const uint8_t hb_v1[] = {0, 0, 0, 0, 0x00, 0x0f};
    static const uint8_t hb_v4[] = {0, 0, 0, 0, 0x00, 0x0f, 0x00};
    static const uint8_t et_v0[] = {0, 0, 0, 0, 0x00, 0x30};
    static const uint8_t et_v3[] = {0, 0, 0, 0, 0x00, 0x30, 0x00};
    static const uint8_t et_v5[] = {0, 0, 0, 0, 0x00, 0x30, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0x00};
    /* SaslHandshake: error 33, no mechanisms, never flexible. */
    static const uint8_t sasl_v1[] = {0x00, 0x21, 0, 0, 0, 0};
    /* InitProducerId v2: throttle, error, id -1, epoch -1, tags. */
    static const uint8_t ipid_v2[] = {0, 0, 0, 0, 0x00, 0x0f, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0x00};

    ASSERT_TPL(1, 0, 35, fetch_v0);
    ASSERT_TPL(1, 4, 35, fetch_v4);
    ASSERT_TPL(1, 7, 35, fetch_v7);
    ASSERT_TPL(1, 12, 35, fetch_v12);
    ASSERT_TPL(10, 0, 15, fc_v0);
    ASSERT_TPL(10, 1, 15, fc_v1);
    ASSERT_TPL(10, 3, 15, fc_v3);
    ASSERT_TPL(10, 4, 15, fc_v4);
    ASSERT_TPL(12, 0, 15, hb_v0);
    ASSERT_TPL(12, 1, 15, hb_v1);
    ASSERT_TPL(12, 4, 15, hb_v4);
    ASSERT_TPL(26, 0, 48, et_v0);
    ASSERT_TPL(26, 3, 48, et_v3);
    ASSERT_TPL(26, 5, 48, et_v5);
    ASSERT_TPL(17, 1, 33, sasl_v1);
    ASSERT_TPL(22, 2, 15, ipid_v2);

    /* Out of the table's range (Fetch is advertised up to 12). */
    {
        sl_wr w;
        sl_wr_init(&w, 0);
        ASSERT_EQ(sl_kafka_error_response_encode(&w, 1, 13, 35),
                  SL_E_UNSUPPORTED);
        ASSERT_EQ(sl_kafka_error_response_encode(&w, 1, -1, 35),
                  SL_E_UNSUPPORTED);
        ASSERT_EQ(sl_kafka_error_response_encode(&w, 9999, 0, 35),
                  SL_E_UNSUPPORTED);
        ASSERT_EQ(w.len, 0);
        sl_wr_free(&w);
    }
}

/* SaslHandshake and SaslAuthenticate, byte for byte from the schemas
 * (SaslHandshake never flexible; SaslAuthenticate v2 flexible, v1+ has
 * session_lifetime_ms). */
static void test_sasl_bytes(void)
{
    static const char *const mechs[] = {"PLAIN", "X"};
    static const uint8_t hs[] = {0x00, 0x21, 0, 0, 0, 2, 0, 5, 'P', 'L',
                                 'A', 'I', 'N', 0, 1, 'X'};
    /* v2: error 58, message "no" (compact), bytes "" (compact), lifetime
     * 7, tags. */
    static const uint8_t a2[] = {0x00, 0x3a, 0x03, 'n', 'o', 0x01,
                                 0, 0, 0, 0, 0, 0, 0, 7, 0x00};
    /* v0: error 0, message null, bytes "v=" (int32 length). */
    static const uint8_t a0[] = {0, 0, 0xff, 0xff, 0, 0, 0, 2, 'v', '='};
    static const uint8_t req2[] = {0x04, 'a', 'b', 'c', 0x00};
    static const uint8_t req0[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    static const uint8_t hreq[] = {0, 5, 'P', 'L', 'A', 'I', 'N'};
    sl_kafka_SaslHandshakeResponse h = {SL_KERR_UNSUPPORTED_SASL_MECHANISM,
                                        mechs, 2};
    sl_kafka_SaslAuthenticateResponse r = {SL_KERR_SASL_AUTHENTICATION_FAILED,
                                           SL_KSTR("no"), SL_KSTR(""), 7};
    sl_kafka_SaslAuthenticateResponse back;
    sl_kstr tok;
    sl_rd rd;
    sl_wr w;

    sl_wr_init(&w, 0);
    sl_kafka_SaslHandshakeResponse_encode(&w, 1, &h);
    ASSERT_BYTES(w.buf, w.len, hs);
    w.len = 0;
    sl_kafka_SaslAuthenticateResponse_encode(&w, 2, &r);
    ASSERT_BYTES(w.buf, w.len, a2);
    rd = sl_rd_init(w.buf, w.len);
    ASSERT_EQ(sl_kafka_SaslAuthenticateResponse_decode(&rd, 2, &back), 0);
    ASSERT_EQ(back.error_code, 58);
    ASSERT_EQ(back.session_lifetime_ms, 7);
    w.len = 0;
    r = (sl_kafka_SaslAuthenticateResponse){0, SL_KSTR_NULL, SL_KSTR("v="),
                                            99};
    sl_kafka_SaslAuthenticateResponse_encode(&w, 0, &r);
    ASSERT_BYTES(w.buf, w.len, a0);
    sl_wr_free(&w);

    rd = sl_rd_init(req2, sizeof(req2));
    ASSERT_EQ(sl_kafka_SaslAuthenticateRequest_decode(&rd, 2, &tok), 0);
    ASSERT_EQ(tok.len, 3);
    ASSERT_TRUE(memcmp(tok.p, "abc", 3) == 0);
    rd = sl_rd_init(req0, sizeof(req0));
    ASSERT_EQ(sl_kafka_SaslAuthenticateRequest_decode(&rd, 0, &tok), 0);
    ASSERT_EQ(tok.len, 3);
    rd = sl_rd_init(req0, sizeof(req0) - 1); /* truncated */
    ASSERT_NE(sl_kafka_SaslAuthenticateRequest_decode(&rd, 0, &tok), 0);
    rd = sl_rd_init(hreq, sizeof(hreq));
    ASSERT_EQ(sl_kafka_SaslHandshakeRequest_decode(&rd, 1, &tok), 0);
    ASSERT_EQ(tok.len, 5);
    rd = sl_rd_init(hreq, sizeof(hreq));
    ASSERT_EQ(sl_kafka_SaslHandshakeRequest_decode(&rd, 2, &tok),
              SL_E_UNSUPPORTED);
}

SL_TEST_MAIN(SL_TEST(test_api_table_matches_schemas),
             SL_TEST(test_sasl_bytes),
             SL_TEST(test_api_table_advertised),
             SL_TEST(test_is_flexible),
             SL_TEST(test_err_names),
             SL_TEST(test_req_hdr_apiversions_v0),
             SL_TEST(test_req_hdr_apiversions_v3),
             SL_TEST(test_req_hdr_errors),
             SL_TEST(test_req_hdr_v0_controlled_shutdown),
             SL_TEST(test_resp_hdr),
             SL_TEST(test_apiversions_roundtrip),
             SL_TEST(test_apiversions_v0_response_bytes),
             SL_TEST(test_apiversions_v3_response_bytes),
             SL_TEST(test_apiversions_build),
             SL_TEST(test_apiversions_unsupported_answer),
             SL_TEST(test_apiversions_decode_errors),
             SL_TEST(test_software_name_valid),
             SL_TEST(test_metadata_request_roundtrip),
             SL_TEST(test_metadata_request_bytes),
             SL_TEST(test_metadata_request_decode_errors),
             SL_TEST(test_metadata_response_roundtrip),
             SL_TEST(test_metadata_response_bytes),
             SL_TEST(test_metadata_response_decode_errors),
             SL_TEST(test_produce_request_roundtrip),
             SL_TEST(test_produce_request_v3_bytes),
             SL_TEST(test_produce_request_v9_bytes),
             SL_TEST(test_produce_request_decode_errors),
             SL_TEST(test_produce_response_roundtrip),
             SL_TEST(test_produce_response_bytes),
             SL_TEST(test_init_producer_id_roundtrip),
             SL_TEST(test_init_producer_id_bytes),
             SL_TEST(test_find_coordinator_request_bytes),
             SL_TEST(test_find_coordinator_response_bytes),
             SL_TEST(test_error_templates_walk),
             SL_TEST(test_error_template_bytes))
