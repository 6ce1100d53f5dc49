/*
 * Kafka wire codec (see include/sluice/kafka.h): the API table, error
 * names, request/response headers, the served messages (ApiVersions,
 * Metadata, Produce, InitProducerId) and error-response templates for the
 * APIs Sluice knows but does not serve.
 *
 * Field lists follow Kafka's clients/src/main/resources/common/message/
 * *.json (apache/kafka, 3.9 era). Every decoder reads through sl_rd and
 * fails into one err_parse: path; arrays are allocated only after
 * sl_rd_array_len() has bounded the count by the bytes left, and a decoder
 * that fails frees what it allocated before returning.
 */
#include "sluice/kafka.h"

#include <string.h>

/* ---- API table ------------------------------------------------------ */

/*
 * The ONE list of Kafka APIs: key, name, version range, first flexible
 * version (-1: none), advertised in ApiVersions (0/1), served (0/1).
 *
 * Advertised rows carry the range Sluice advertises (PROTOCOL.md):
 * Produce 0-11 (v0-2 are answered with an error, but the range must start
 * at 0 or librdkafka <= 2.11 silently stops compressing), Metadata 0-12,
 * ApiVersions 0-3, InitProducerId 0-4, and, needed by librdkafka's
 * feature detection (MsgVer2, zstd, LZ4), Fetch 0-12 (never served) and
 * FindCoordinator 0-4 (served only with a refusal: Sluice coordinates no
 * group or transaction). The other rows carry the range Kafka's schema
 * defines: it picks the header version and bounds the error templates.
 *
 * Columns: X(key, name, min, max, first flexible version, advertised,
 * served).
 */
#define API_MAP(X)                                                        \
    X( 0, Produce,                     0, 11,  9, 1, 1)                   \
    X( 1, Fetch,                       0, 12, 12, 1, 0)                   \
    X( 2, ListOffsets,                 0, 10,  6, 0, 0)                   \
    X( 3, Metadata,                    0, 12,  9, 1, 1)                   \
    X( 4, LeaderAndIsr,                0,  7,  4, 0, 0)                   \
    X( 5, StopReplica,                 0,  4,  2, 0, 0)                   \
    X( 6, UpdateMetadata,              0,  8,  6, 0, 0)                   \
    X( 7, ControlledShutdown,          0,  3,  3, 0, 0)                   \
    X( 8, OffsetCommit,                0,  9,  8, 0, 0)                   \
    X( 9, OffsetFetch,                 0,  9,  6, 0, 0)                   \
    X(10, FindCoordinator,             0,  4,  3, 1, 1)                   \
    X(11, JoinGroup,                   0,  9,  6, 0, 0)                   \
    X(12, Heartbeat,                   0,  4,  4, 0, 0)                   \
    X(13, LeaveGroup,                  0,  5,  4, 0, 0)                   \
    X(14, SyncGroup,                   0,  5,  4, 0, 0)                   \
    X(15, DescribeGroups,              0,  5,  5, 0, 0)                   \
    X(16, ListGroups,                  0,  5,  3, 0, 0)                   \
    X(17, SaslHandshake,               0,  1, -1, 1, 1)                   \
    X(18, ApiVersions,                 0,  3,  3, 1, 1)                   \
    X(19, CreateTopics,                0,  7,  5, 0, 0)                   \
    X(20, DeleteTopics,                0,  6,  4, 0, 0)                   \
    X(21, DeleteRecords,               0,  2,  2, 0, 0)                   \
    X(22, InitProducerId,              0,  4,  2, 1, 1)                   \
    X(23, OffsetForLeaderEpoch,        0,  4,  4, 0, 0)                   \
    X(24, AddPartitionsToTxn,          0,  5,  3, 0, 0)                   \
    X(25, AddOffsetsToTxn,             0,  4,  3, 0, 0)                   \
    X(26, EndTxn,                      0,  5,  3, 0, 0)                   \
    X(27, WriteTxnMarkers,             0,  1,  1, 0, 0)                   \
    X(28, TxnOffsetCommit,             0,  4,  3, 0, 0)                   \
    X(29, DescribeAcls,                0,  3,  2, 0, 0)                   \
    X(30, CreateAcls,                  0,  3,  2, 0, 0)                   \
    X(31, DeleteAcls,                  0,  3,  2, 0, 0)                   \
    X(32, DescribeConfigs,             0,  4,  4, 0, 0)                   \
    X(33, AlterConfigs,                0,  2,  2, 0, 0)                   \
    X(34, AlterReplicaLogDirs,         0,  2,  2, 0, 0)                   \
    X(35, DescribeLogDirs,             0,  4,  2, 0, 0)                   \
    X(36, SaslAuthenticate,            0,  2,  2, 1, 1)                   \
    X(37, CreatePartitions,            0,  3,  2, 0, 0)                   \
    X(38, CreateDelegationToken,       0,  3,  2, 0, 0)                   \
    X(39, RenewDelegationToken,        0,  2,  2, 0, 0)                   \
    X(40, ExpireDelegationToken,       0,  2,  2, 0, 0)                   \
    X(41, DescribeDelegationToken,     0,  3,  2, 0, 0)                   \
    X(42, DeleteGroups,                0,  2,  2, 0, 0)                   \
    X(43, ElectLeaders,                0,  2,  2, 0, 0)                   \
    X(44, IncrementalAlterConfigs,     0,  1,  1, 0, 0)                   \
    X(45, AlterPartitionReassignments, 0,  0,  0, 0, 0)                   \
    X(46, ListPartitionReassignments,  0,  0,  0, 0, 0)                   \
    X(47, OffsetDelete,                0,  0, -1, 0, 0)                   \
    X(48, DescribeClientQuotas,        0,  1,  1, 0, 0)                   \
    X(49, AlterClientQuotas,           0,  1,  1, 0, 0)                   \
    X(50, DescribeUserScramCredentials, 0,  0,  0, 0, 0)                  \
    X(51, AlterUserScramCredentials,   0,  0,  0, 0, 0)                   \
    X(52, Vote,                        0,  1,  0, 0, 0)                   \
    X(53, BeginQuorumEpoch,            0,  1,  1, 0, 0)                   \
    X(54, EndQuorumEpoch,              0,  1,  1, 0, 0)                   \
    X(55, DescribeQuorum,              0,  2,  0, 0, 0)                   \
    X(56, AlterPartition,              0,  3,  0, 0, 0)                   \
    X(57, UpdateFeatures,              0,  2,  0, 0, 0)                   \
    X(58, Envelope,                    0,  0,  0, 0, 0)                   \
    X(59, FetchSnapshot,               0,  1,  0, 0, 0)                   \
    X(60, DescribeCluster,             0,  1,  0, 0, 0)                   \
    X(61, DescribeProducers,           0,  0,  0, 0, 0)                   \
    X(62, BrokerRegistration,          0,  4,  0, 0, 0)                   \
    X(63, BrokerHeartbeat,             0,  1,  0, 0, 0)                   \
    X(64, UnregisterBroker,            0,  0,  0, 0, 0)                   \
    X(65, DescribeTransactions,        0,  0,  0, 0, 0)                   \
    X(66, ListTransactions,            0,  1,  0, 0, 0)                   \
    X(67, AllocateProducerIds,         0,  0,  0, 0, 0)                   \
    X(68, ConsumerGroupHeartbeat,      0,  1,  0, 0, 0)                   \
    X(69, ConsumerGroupDescribe,       0,  0,  0, 0, 0)                   \
    X(70, ControllerRegistration,      0,  0,  0, 0, 0)                   \
    X(71, GetTelemetrySubscriptions,   0,  0,  0, 0, 0)                   \
    X(72, PushTelemetry,               0,  0,  0, 0, 0)                   \
    X(73, AssignReplicasToDirs,        0,  0,  0, 0, 0)                   \
    X(74, ListClientMetricsResources,  0,  0,  0, 0, 0)                   \
    X(75, DescribeTopicPartitions,     0,  0,  0, 0, 0)                   \
    X(76, ShareGroupHeartbeat,         0,  0,  0, 0, 0)                   \
    X(77, ShareGroupDescribe,          0,  0,  0, 0, 0)                   \
    X(78, ShareFetch,                  0,  0,  0, 0, 0)                   \
    X(79, ShareAcknowledge,            0,  0,  0, 0, 0)                   \
    X(80, AddRaftVoter,                0,  0,  0, 0, 0)                   \
    X(81, RemoveRaftVoter,             0,  0,  0, 0, 0)                   \
    X(82, UpdateRaftVoter,             0,  0,  0, 0, 0)                   \
    X(83, InitializeShareGroupState,   0,  0,  0, 0, 0)                   \
    X(84, ReadShareGroupState,         0,  0,  0, 0, 0)                   \
    X(85, WriteShareGroupState,        0,  0,  0, 0, 0)                   \
    X(86, DeleteShareGroupState,       0,  0,  0, 0, 0)                   \
    X(87, ReadShareGroupStateSummary,  0,  0,  0, 0, 0)                   \
    /* end of API_MAP */

#define API_ROW(key, name, min, max, flex, adv, served)                   \
    {key, #name, min, max, flex, adv, served},
const sl_kafka_api sl_kafka_apis[] = {API_MAP(API_ROW)};
#undef API_ROW
const size_t sl_kafka_apis_count = SL_ARRAY_SIZE(sl_kafka_apis);

/* The advertised ranges, generated from the same rows at compile time, so
 * the ApiVersions answer needs no lazily built (and racy) state. */
#define ADV_0(key, min, max)
#define ADV_1(key, min, max) {key, min, max},
#define API_ADV(key, name, min, max, flex, adv, served) ADV_##adv(key, min, max)
static const sl_kafka_api_range advertised_ranges[] = {API_MAP(API_ADV)};
#undef API_ADV
#undef ADV_0
#undef ADV_1

const sl_kafka_api *sl_kafka_api_find(int16_t key)
{
    size_t lo = 0, hi = sl_kafka_apis_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sl_kafka_apis[mid].key == key)
            return &sl_kafka_apis[mid];
        if (sl_kafka_apis[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

bool sl_kafka_is_flexible(int16_t key, int16_t version)
{
    const sl_kafka_api *api = sl_kafka_api_find(key);
    return api && api->flexible_from >= 0 && version >= api->flexible_from;
}

/* Is `ver` inside the codec's range for a served API? The served rows'
 * range is both what is advertised and what the codec implements. */
static bool served_version(int16_t key, int16_t ver)
{
    const sl_kafka_api *api = sl_kafka_api_find(key);
    return api && ver >= api->min_version && ver <= api->max_version;
}

/* ---- Kafka error names ---------------------------------------------- */

/* Kafka's error codes (org.apache.kafka.common.protocol.Errors). */
#define KERR_MAP(X)                                                       \
    X( -1, UNKNOWN_SERVER_ERROR)                                          \
    X(  0, NONE)                                                          \
    X(  1, OFFSET_OUT_OF_RANGE)                                           \
    X(  2, CORRUPT_MESSAGE)                                               \
    X(  3, UNKNOWN_TOPIC_OR_PARTITION)                                    \
    X(  4, INVALID_FETCH_SIZE)                                            \
    X(  5, LEADER_NOT_AVAILABLE)                                          \
    X(  6, NOT_LEADER_OR_FOLLOWER)                                        \
    X(  7, REQUEST_TIMED_OUT)                                             \
    X(  8, BROKER_NOT_AVAILABLE)                                          \
    X(  9, REPLICA_NOT_AVAILABLE)                                         \
    X( 10, MESSAGE_TOO_LARGE)                                             \
    X( 11, STALE_CONTROLLER_EPOCH)                                        \
    X( 12, OFFSET_METADATA_TOO_LARGE)                                     \
    X( 13, NETWORK_EXCEPTION)                                             \
    X( 14, COORDINATOR_LOAD_IN_PROGRESS)                                  \
    X( 15, COORDINATOR_NOT_AVAILABLE)                                     \
    X( 16, NOT_COORDINATOR)                                               \
    X( 17, INVALID_TOPIC_EXCEPTION)                                       \
    X( 18, RECORD_LIST_TOO_LARGE)                                         \
    X( 19, NOT_ENOUGH_REPLICAS)                                           \
    X( 20, NOT_ENOUGH_REPLICAS_AFTER_APPEND)                              \
    X( 21, INVALID_REQUIRED_ACKS)                                         \
    X( 22, ILLEGAL_GENERATION)                                            \
    X( 23, INCONSISTENT_GROUP_PROTOCOL)                                   \
    X( 24, INVALID_GROUP_ID)                                              \
    X( 25, UNKNOWN_MEMBER_ID)                                             \
    X( 26, INVALID_SESSION_TIMEOUT)                                       \
    X( 27, REBALANCE_IN_PROGRESS)                                         \
    X( 28, INVALID_COMMIT_OFFSET_SIZE)                                    \
    X( 29, TOPIC_AUTHORIZATION_FAILED)                                    \
    X( 30, GROUP_AUTHORIZATION_FAILED)                                    \
    X( 31, CLUSTER_AUTHORIZATION_FAILED)                                  \
    X( 32, INVALID_TIMESTAMP)                                             \
    X( 33, UNSUPPORTED_SASL_MECHANISM)                                    \
    X( 34, ILLEGAL_SASL_STATE)                                            \
    X( 35, UNSUPPORTED_VERSION)                                           \
    X( 36, TOPIC_ALREADY_EXISTS)                                          \
    X( 37, INVALID_PARTITIONS)                                            \
    X( 38, INVALID_REPLICATION_FACTOR)                                    \
    X( 39, INVALID_REPLICA_ASSIGNMENT)                                    \
    X( 40, INVALID_CONFIG)                                                \
    X( 41, NOT_CONTROLLER)                                                \
    X( 42, INVALID_REQUEST)                                               \
    X( 43, UNSUPPORTED_FOR_MESSAGE_FORMAT)                                \
    X( 44, POLICY_VIOLATION)                                              \
    X( 45, OUT_OF_ORDER_SEQUENCE_NUMBER)                                  \
    X( 46, DUPLICATE_SEQUENCE_NUMBER)                                     \
    X( 47, INVALID_PRODUCER_EPOCH)                                        \
    X( 48, INVALID_TXN_STATE)                                             \
    X( 49, INVALID_PRODUCER_ID_MAPPING)                                   \
    X( 50, INVALID_TRANSACTION_TIMEOUT)                                   \
    X( 51, CONCURRENT_TRANSACTIONS)                                       \
    X( 52, TRANSACTION_COORDINATOR_FENCED)                                \
    X( 53, TRANSACTIONAL_ID_AUTHORIZATION_FAILED)                         \
    X( 54, SECURITY_DISABLED)                                             \
    X( 55, OPERATION_NOT_ATTEMPTED)                                       \
    X( 56, KAFKA_STORAGE_ERROR)                                           \
    X( 57, LOG_DIR_NOT_FOUND)                                             \
    X( 58, SASL_AUTHENTICATION_FAILED)                                    \
    X( 59, UNKNOWN_PRODUCER_ID)                                           \
    X( 60, REASSIGNMENT_IN_PROGRESS)                                      \
    X( 61, DELEGATION_TOKEN_AUTH_DISABLED)                                \
    X( 62, DELEGATION_TOKEN_NOT_FOUND)                                    \
    X( 63, DELEGATION_TOKEN_OWNER_MISMATCH)                               \
    X( 64, DELEGATION_TOKEN_REQUEST_NOT_ALLOWED)                          \
    X( 65, DELEGATION_TOKEN_AUTHORIZATION_FAILED)                         \
    X( 66, DELEGATION_TOKEN_EXPIRED)                                      \
    X( 67, INVALID_PRINCIPAL_TYPE)                                        \
    X( 68, NON_EMPTY_GROUP)                                               \
    X( 69, GROUP_ID_NOT_FOUND)                                            \
    X( 70, FETCH_SESSION_ID_NOT_FOUND)                                    \
    X( 71, INVALID_FETCH_SESSION_EPOCH)                                   \
    X( 72, LISTENER_NOT_FOUND)                                            \
    X( 73, TOPIC_DELETION_DISABLED)                                       \
    X( 74, FENCED_LEADER_EPOCH)                                           \
    X( 75, UNKNOWN_LEADER_EPOCH)                                          \
    X( 76, UNSUPPORTED_COMPRESSION_TYPE)                                  \
    X( 77, STALE_BROKER_EPOCH)                                            \
    X( 78, OFFSET_NOT_AVAILABLE)                                          \
    X( 79, MEMBER_ID_REQUIRED)                                            \
    X( 80, PREFERRED_LEADER_NOT_AVAILABLE)                                \
    X( 81, GROUP_MAX_SIZE_REACHED)                                        \
    X( 82, FENCED_INSTANCE_ID)                                            \
    X( 83, ELIGIBLE_LEADERS_NOT_AVAILABLE)                                \
    X( 84, ELECTION_NOT_NEEDED)                                           \
    X( 85, NO_REASSIGNMENT_IN_PROGRESS)                                   \
    X( 86, GROUP_SUBSCRIBED_TO_TOPIC)                                     \
    X( 87, INVALID_RECORD)                                                \
    X( 88, UNSTABLE_OFFSET_COMMIT)                                        \
    X( 89, THROTTLING_QUOTA_EXCEEDED)                                     \
    X( 90, PRODUCER_FENCED)                                               \
    X( 91, RESOURCE_NOT_FOUND)                                            \
    X( 92, DUPLICATE_RESOURCE)                                            \
    X( 93, UNACCEPTABLE_CREDENTIAL)                                       \
    X( 94, INCONSISTENT_VOTER_SET)                                        \
    X( 95, INVALID_UPDATE_VERSION)                                        \
    X( 96, FEATURE_UPDATE_FAILED)                                         \
    X( 97, PRINCIPAL_DESERIALIZATION_FAILURE)                             \
    X( 98, SNAPSHOT_NOT_FOUND)                                            \
    X( 99, POSITION_OUT_OF_RANGE)                                         \
    X(100, UNKNOWN_TOPIC_ID)                                              \
    X(101, DUPLICATE_BROKER_REGISTRATION)                                 \
    X(102, BROKER_ID_NOT_REGISTERED)                                      \
    X(103, INCONSISTENT_TOPIC_ID)                                         \
    X(104, INCONSISTENT_CLUSTER_ID)                                       \
    X(105, TRANSACTIONAL_ID_NOT_FOUND)                                    \
    X(106, FETCH_SESSION_TOPIC_ID_ERROR)                                  \
    X(107, INELIGIBLE_REPLICA)                                            \
    X(108, NEW_LEADER_ELECTED)                                            \
    X(109, OFFSET_MOVED_TO_TIERED_STORAGE)                                \
    X(110, FENCED_MEMBER_EPOCH)                                           \
    X(111, UNRELEASED_INSTANCE_ID)                                        \
    X(112, UNSUPPORTED_ASSIGNOR)                                          \
    X(113, STALE_MEMBER_EPOCH)                                            \
    X(114, MISMATCHED_ENDPOINT_TYPE)                                      \
    X(115, UNSUPPORTED_ENDPOINT_TYPE)                                     \
    X(116, UNKNOWN_CONTROLLER_ID)                                         \
    X(117, UNKNOWN_SUBSCRIPTION_ID)                                       \
    X(118, TELEMETRY_TOO_LARGE)                                           \
    X(119, INVALID_REGISTRATION)                                          \
    X(120, TRANSACTION_ABORTABLE)                                         \
    X(121, INVALID_RECORD_STATE)                                          \
    X(122, SHARE_SESSION_NOT_FOUND)                                       \
    X(123, INVALID_SHARE_SESSION_EPOCH)                                   \
    X(124, FENCED_STATE_EPOCH)                                            \
    X(125, INVALID_VOTER_KEY)                                             \
    X(126, DUPLICATE_VOTER)                                               \
    X(127, VOTER_NOT_FOUND)                                               \
    X(128, INVALID_REGULAR_EXPRESSION)                                    \
    /* end of KERR_MAP */

#define KERR_ROW(code, name) [(code) + 1] = #name,
static const char *const kerr_names[] = {KERR_MAP(KERR_ROW)};
#undef KERR_ROW

const char *sl_kafka_err_name(int16_t code)
{
    size_t i = (size_t)((int)code + 1);

    if (code < -1 || i >= SL_ARRAY_SIZE(kerr_names) || !kerr_names[i])
        return "UNKNOWN";
    return kerr_names[i];
}

/* ---- Small field helpers -------------------------------------------- */

/* A STRING field that the schema does not allow to be null (at this
 * version): a null length is malformed. */
static sl_kstr rd_str_nn(sl_rd *r, bool flex)
{
    sl_kstr s = sl_rd_kstr(r, flex);
    if (!r->err && s.len < 0)
        sl_rd_fail(r, SL_E_PARSE);
    return s;
}

/* A non-nullable STRING on the way out: a null from the caller is written
 * as "" so the bytes stay parseable by the schema. */
static void wr_str_nn(sl_wr *w, sl_kstr s, bool flex)
{
    if (s.len < 0)
        s = (sl_kstr){"", 0};
    sl_wr_kstr(w, s, flex);
}

/* A non-nullable array's length: -1 (null) is malformed. */
static int32_t rd_array_nn(sl_rd *r, bool flex, size_t min_elem_size)
{
    int32_t n = sl_rd_array_len(r, flex, min_elem_size);
    if (!r->err && n < 0)
        sl_rd_fail(r, SL_E_PARSE);
    return n;
}

/* BOOLEAN: Kafka reads any non-zero byte as true. */
static bool rd_bool(sl_rd *r)
{
    return sl_rd_u8(r) != 0;
}

static void wr_bool(sl_wr *w, bool b)
{
    sl_wr_u8(w, b ? 1 : 0);
}

/* UUID: 16 raw bytes (topic ids). */
static void rd_uuid(sl_rd *r, uint8_t out[16])
{
    const uint8_t *p = sl_rd_bytes(r, 16);
    if (p)
        memcpy(out, p, 16);
}

static void wr_uuid(sl_wr *w, const uint8_t id[16])
{
    sl_wr_raw(w, id, 16);
}

static void rd_tags(sl_rd *r, bool flex)
{
    if (flex)
        sl_rd_tags_skip(r);
}

/* Reads an int32 array (replica lists) into a fresh allocation. */
static int32_t *rd_int32_array(sl_rd *r, bool flex, int32_t *n_out)
{
    int32_t n = rd_array_nn(r, flex, 4);
    int32_t *a = NULL;

    *n_out = 0;
    if (r->err)
        return NULL;
    if (n > 0) {
        a = sl_calloc((size_t)n, sizeof *a);
        for (int32_t i = 0; i < n; i++)
            a[i] = sl_rd_i32(r);
    }
    *n_out = n;
    return a;
}

static void wr_int32_array(sl_wr *w, bool flex, int32_t n, const int32_t *a)
{
    if (n < 0)
        n = 0;
    sl_wr_array_len(w, n, flex);
    for (int32_t i = 0; i < n; i++)
        sl_wr_i32(w, a[i]);
}

/* ---- Headers --------------------------------------------------------- */

/* Request header v0 (no client id) survives only in ControlledShutdown v0;
 * Kafka's RequestHeader.json keeps it for that one case. */
static bool req_hdr_is_v0(int16_t key, int16_t ver)
{
    return key == 7 && ver == 0;
}

/* Response header v1 (tags) for flexible versions, except ApiVersions:
 * its response header stays v0 at every version so a client that does not
 * yet know the broker's versions can always read it. */
static bool resp_hdr_has_tags(int16_t key, int16_t ver)
{
    return key != SL_KAFKA_API_VERSIONS && sl_kafka_is_flexible(key, ver);
}

int sl_kafka_req_hdr_decode(const uint8_t *frame, size_t len,
                            sl_kafka_req_hdr *h)
{
    sl_rd r;

    memset(h, 0, sizeof *h);
    h->client_id = SL_KSTR_NULL;
    if (frame == NULL || len < 8)
        return SL_E_TRUNCATED;
    r = sl_rd_init(frame, len);
    h->api_key = sl_rd_i16(&r);
    h->api_version = sl_rd_i16(&r);
    h->correlation_id = sl_rd_i32(&r);
    /* Header v1+: client id is an int16-length nullable string even in
     * header v2 (RequestHeader.json: flexibleVersions "none" for it). */
    if (!req_hdr_is_v0(h->api_key, h->api_version))
        h->client_id = sl_rd_str(&r);
    rd_tags(&r, sl_kafka_is_flexible(h->api_key, h->api_version));
    if (r.err) {
        h->client_id = SL_KSTR_NULL;
        return SL_E_PARSE;
    }
    h->len = (size_t)(r.p - frame);
    return 0;
}

size_t sl_kafka_req_hdr_encode(sl_wr *w, int16_t api_key,
                               int16_t api_version, int32_t correlation_id,
                               sl_kstr client_id)
{
    size_t start = w->len;

    sl_wr_i32(w, 0); /* size, patched by sl_kafka_frame_end() */
    sl_wr_i16(w, api_key);
    sl_wr_i16(w, api_version);
    sl_wr_i32(w, correlation_id);
    if (!req_hdr_is_v0(api_key, api_version))
        sl_wr_kstr(w, client_id, false);
    sl_wr_tags_empty(w, sl_kafka_is_flexible(api_key, api_version));
    return start;
}

size_t sl_kafka_resp_hdr_encode(sl_wr *w, int16_t api_key,
                                int16_t api_version, int32_t correlation_id)
{
    size_t start = w->len;

    sl_wr_i32(w, 0);
    sl_wr_i32(w, correlation_id);
    sl_wr_tags_empty(w, resp_hdr_has_tags(api_key, api_version));
    return start;
}

void sl_kafka_frame_end(sl_wr *w, size_t start)
{
    sl_wr_put_u32_at(w->buf + start, (uint32_t)(w->len - start - 4));
}

int sl_kafka_resp_hdr_decode(sl_rd *r, int16_t api_key, int16_t api_version,
                             int32_t *correlation_id)
{
    *correlation_id = sl_rd_i32(r);
    rd_tags(r, resp_hdr_has_tags(api_key, api_version));
    return r->err;
}

/* ---- ApiVersions (key 18) ------------------------------------------- */

int sl_kafka_ApiVersionsRequest_decode(sl_rd *r, int16_t ver,
                                       sl_kafka_ApiVersionsRequest *m)
{
    m->client_software_name = SL_KSTR_NULL;
    m->client_software_version = SL_KSTR_NULL;
    if (!served_version(SL_KAFKA_API_VERSIONS, ver))
        return SL_E_UNSUPPORTED;
    /* v0-v2 have an empty body; v3 adds the two software strings. */
    if (ver >= 3) {
        m->client_software_name = rd_str_nn(r, true);
        m->client_software_version = rd_str_nn(r, true);
        rd_tags(r, true);
    }
    SL_RD_CHECK(r);
    return 0;

err_parse:
    m->client_software_name = SL_KSTR_NULL;
    m->client_software_version = SL_KSTR_NULL;
    return r->err;
}

void sl_kafka_ApiVersionsRequest_encode(sl_wr *w, int16_t ver,
                                        const sl_kafka_ApiVersionsRequest *m)
{
    if (ver >= 3) {
        wr_str_nn(w, m->client_software_name, true);
        wr_str_nn(w, m->client_software_version, true);
        sl_wr_tags_empty(w, true);
    }
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

bool sl_kafka_software_name_valid(sl_kstr s)
{
    if (s.len <= 0 || s.p == NULL)
        return false;
    /* [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? : alphanumeric at both
     * ends, '-' and '.' allowed only in between. */
    if (!is_alnum(s.p[0]) || !is_alnum(s.p[s.len - 1]))
        return false;
    for (int32_t i = 1; i < s.len - 1; i++)
        if (!is_alnum(s.p[i]) && s.p[i] != '-' && s.p[i] != '.')
            return false;
    return true;
}

int sl_kafka_ApiVersionsResponse_decode(sl_rd *r, int16_t ver,
                                        sl_kafka_ApiVersionsResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_API_VERSIONS, ver);

    memset(m, 0, sizeof *m);
    if (!served_version(SL_KAFKA_API_VERSIONS, ver))
        return SL_E_UNSUPPORTED;
    m->error_code = sl_rd_i16(r);
    m->n_apis = rd_array_nn(r, flex, 6);
    SL_RD_CHECK(r);
    if (m->n_apis > 0)
        m->apis = sl_calloc((size_t)m->n_apis, sizeof *m->apis);
    for (int32_t i = 0; i < m->n_apis; i++) {
        m->apis[i].api_key = sl_rd_i16(r);
        m->apis[i].min_version = sl_rd_i16(r);
        m->apis[i].max_version = sl_rd_i16(r);
        rd_tags(r, flex);
        SL_RD_CHECK(r);
    }
    if (ver >= 1)
        m->throttle_time_ms = sl_rd_i32(r);
    /* v3 tags (SupportedFeatures, FinalizedFeatures...) are skipped. */
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    sl_kafka_ApiVersionsResponse_free(m);
    return r->err;
}

void sl_kafka_ApiVersionsResponse_encode(sl_wr *w, int16_t ver,
                                         const sl_kafka_ApiVersionsResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_API_VERSIONS, ver);
    int32_t n = m->n_apis > 0 ? m->n_apis : 0;

    sl_wr_i16(w, m->error_code);
    sl_wr_array_len(w, n, flex);
    for (int32_t i = 0; i < n; i++) {
        sl_wr_i16(w, m->apis[i].api_key);
        sl_wr_i16(w, m->apis[i].min_version);
        sl_wr_i16(w, m->apis[i].max_version);
        sl_wr_tags_empty(w, flex);
    }
    if (ver >= 1)
        sl_wr_i32(w, m->throttle_time_ms);
    sl_wr_tags_empty(w, flex);
}

void sl_kafka_ApiVersionsResponse_free(sl_kafka_ApiVersionsResponse *m)
{
    sl_free(m->apis);
    m->apis = NULL;
    m->n_apis = 0;
}

void sl_kafka_ApiVersionsResponse_build(sl_kafka_ApiVersionsResponse *m,
                                        bool unsupported)
{
    memset(m, 0, sizeof *m);
    /* The arrays are static const; the struct's pointer is non-const only
     * because decoded responses own theirs. Encoders never write. */
    m->apis = (sl_kafka_api_range *)advertised_ranges;
    m->n_apis = (int32_t)SL_ARRAY_SIZE(advertised_ranges);
    if (unsupported) {
        m->error_code = SL_KERR_UNSUPPORTED_VERSION;
        for (size_t i = 0; i < SL_ARRAY_SIZE(advertised_ranges); i++) {
            if (advertised_ranges[i].api_key == SL_KAFKA_API_VERSIONS) {
                m->apis = (sl_kafka_api_range *)&advertised_ranges[i];
                m->n_apis = 1;
            }
        }
    }
}

/* ---- Metadata (key 3) ----------------------------------------------- */

int sl_kafka_MetadataRequest_decode(sl_rd *r, int16_t ver,
                                    sl_kafka_MetadataRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_METADATA, ver);

    memset(m, 0, sizeof *m);
    m->allow_auto_topic_creation = true; /* implied before v4 */
    if (!served_version(SL_KAFKA_METADATA, ver))
        return SL_E_UNSUPPORTED;
    /* v0: non-nullable, empty = all topics; v1+: null = all. */
    m->n_topics = sl_rd_array_len(r, flex, ver >= 10 ? 18 : 2);
    SL_RD_CHECK(r);
    if (m->n_topics < 0 && ver < 1) {
        sl_rd_fail(r, SL_E_PARSE);
        goto err_parse;
    }
    if (m->n_topics > 0)
        m->topics = sl_calloc((size_t)m->n_topics, sizeof *m->topics);
    for (int32_t i = 0; i < m->n_topics; i++) {
        sl_kafka_MetadataRequestTopic *t = &m->topics[i];
        if (ver >= 10)
            rd_uuid(r, t->topic_id);
        /* Name nullable from v10 (lookup by topic id). */
        t->name = ver >= 10 ? sl_rd_kstr(r, flex) : rd_str_nn(r, flex);
        rd_tags(r, flex);
        SL_RD_CHECK(r);
    }
    if (ver >= 4)
        m->allow_auto_topic_creation = rd_bool(r);
    if (ver >= 8 && ver <= 10)
        m->include_cluster_authorized_operations = rd_bool(r);
    if (ver >= 8)
        m->include_topic_authorized_operations = rd_bool(r);
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    sl_kafka_MetadataRequest_free(m);
    return r->err;
}

void sl_kafka_MetadataRequest_encode(sl_wr *w, int16_t ver,
                                     const sl_kafka_MetadataRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_METADATA, ver);
    int32_t n = m->n_topics;

    /* v0 has no null array: "all topics" is the empty array there. */
    if (n < 0 && ver < 1)
        n = 0;
    sl_wr_array_len(w, n, flex);
    for (int32_t i = 0; i < n; i++) {
        const sl_kafka_MetadataRequestTopic *t = &m->topics[i];
        if (ver >= 10) {
            wr_uuid(w, t->topic_id);
            sl_wr_kstr(w, t->name, flex);
        } else {
            wr_str_nn(w, t->name, flex);
        }
        sl_wr_tags_empty(w, flex);
    }
    if (ver >= 4)
        wr_bool(w, m->allow_auto_topic_creation);
    if (ver >= 8 && ver <= 10)
        wr_bool(w, m->include_cluster_authorized_operations);
    if (ver >= 8)
        wr_bool(w, m->include_topic_authorized_operations);
    sl_wr_tags_empty(w, flex);
}

void sl_kafka_MetadataRequest_free(sl_kafka_MetadataRequest *m)
{
    sl_free(m->topics);
    m->topics = NULL;
    m->n_topics = 0;
}

static int rd_metadata_partition(sl_rd *r, int16_t ver, bool flex,
                                 sl_kafka_MetadataPartition *p)
{
    p->error_code = sl_rd_i16(r);
    p->partition_index = sl_rd_i32(r);
    p->leader_id = sl_rd_i32(r);
    p->leader_epoch = ver >= 7 ? sl_rd_i32(r) : -1;
    p->replicas = rd_int32_array(r, flex, &p->n_replicas);
    p->isr = rd_int32_array(r, flex, &p->n_isr);
    if (ver >= 5)
        p->offline = rd_int32_array(r, flex, &p->n_offline);
    rd_tags(r, flex);
    return r->err;
}

static int rd_metadata_topic(sl_rd *r, int16_t ver, bool flex,
                             sl_kafka_MetadataTopic *t)
{
    t->error_code = sl_rd_i16(r);
    /* Name nullable from v12 (topic queried by id and unknown). */
    t->name = ver >= 12 ? sl_rd_kstr(r, flex) : rd_str_nn(r, flex);
    if (ver >= 10)
        rd_uuid(r, t->topic_id);
    if (ver >= 1)
        t->is_internal = rd_bool(r);
    t->n_partitions = rd_array_nn(r, flex, 12);
    if (r->err)
        return r->err;
    if (t->n_partitions > 0)
        t->partitions = sl_calloc((size_t)t->n_partitions,
                                  sizeof *t->partitions);
    for (int32_t i = 0; i < t->n_partitions; i++)
        if (rd_metadata_partition(r, ver, flex, &t->partitions[i]))
            return r->err;
    t->topic_authorized_operations = ver >= 8 ? sl_rd_i32(r) : INT32_MIN;
    rd_tags(r, flex);
    return r->err;
}

int sl_kafka_MetadataResponse_decode(sl_rd *r, int16_t ver,
                                     sl_kafka_MetadataResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_METADATA, ver);

    memset(m, 0, sizeof *m);
    m->controller_id = -1;
    m->cluster_id = SL_KSTR_NULL;
    m->cluster_authorized_operations = INT32_MIN;
    if (!served_version(SL_KAFKA_METADATA, ver))
        return SL_E_UNSUPPORTED;
    if (ver >= 3)
        m->throttle_time_ms = sl_rd_i32(r);
    m->n_brokers = rd_array_nn(r, flex, 10);
    SL_RD_CHECK(r);
    if (m->n_brokers > 0)
        m->brokers = sl_calloc((size_t)m->n_brokers, sizeof *m->brokers);
    for (int32_t i = 0; i < m->n_brokers; i++) {
        sl_kafka_MetadataBroker *b = &m->brokers[i];
        b->node_id = sl_rd_i32(r);
        b->host = rd_str_nn(r, flex);
        b->port = sl_rd_i32(r);
        b->rack = ver >= 1 ? sl_rd_kstr(r, flex) : SL_KSTR_NULL;
        rd_tags(r, flex);
        SL_RD_CHECK(r);
    }
    if (ver >= 2)
        m->cluster_id = sl_rd_kstr(r, flex);
    if (ver >= 1)
        m->controller_id = sl_rd_i32(r);
    m->n_topics = rd_array_nn(r, flex, 4);
    SL_RD_CHECK(r);
    if (m->n_topics > 0)
        m->topics = sl_calloc((size_t)m->n_topics, sizeof *m->topics);
    for (int32_t i = 0; i < m->n_topics; i++)
        if (rd_metadata_topic(r, ver, flex, &m->topics[i]))
            goto err_parse;
    if (ver >= 8 && ver <= 10)
        m->cluster_authorized_operations = sl_rd_i32(r);
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    sl_kafka_MetadataResponse_free(m);
    return r->err;
}

void sl_kafka_MetadataResponse_encode(sl_wr *w, int16_t ver,
                                      const sl_kafka_MetadataResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_METADATA, ver);
    int32_t nb = m->n_brokers > 0 ? m->n_brokers : 0;
    int32_t nt = m->n_topics > 0 ? m->n_topics : 0;

    if (ver >= 3)
        sl_wr_i32(w, m->throttle_time_ms);
    sl_wr_array_len(w, nb, flex);
    for (int32_t i = 0; i < nb; i++) {
        const sl_kafka_MetadataBroker *b = &m->brokers[i];
        sl_wr_i32(w, b->node_id);
        wr_str_nn(w, b->host, flex);
        sl_wr_i32(w, b->port);
        if (ver >= 1)
            sl_wr_kstr(w, b->rack, flex);
        sl_wr_tags_empty(w, flex);
    }
    if (ver >= 2)
        sl_wr_kstr(w, m->cluster_id, flex);
    if (ver >= 1)
        sl_wr_i32(w, m->controller_id);
    sl_wr_array_len(w, nt, flex);
    for (int32_t i = 0; i < nt; i++) {
        const sl_kafka_MetadataTopic *t = &m->topics[i];
        int32_t np = t->n_partitions > 0 ? t->n_partitions : 0;
        sl_wr_i16(w, t->error_code);
        if (ver >= 12)
            sl_wr_kstr(w, t->name, flex);
        else
            wr_str_nn(w, t->name, flex);
        if (ver >= 10)
            wr_uuid(w, t->topic_id);
        if (ver >= 1)
            wr_bool(w, t->is_internal);
        sl_wr_array_len(w, np, flex);
        for (int32_t j = 0; j < np; j++) {
            const sl_kafka_MetadataPartition *p = &t->partitions[j];
            sl_wr_i16(w, p->error_code);
            sl_wr_i32(w, p->partition_index);
            sl_wr_i32(w, p->leader_id);
            if (ver >= 7)
                sl_wr_i32(w, p->leader_epoch);
            wr_int32_array(w, flex, p->n_replicas, p->replicas);
            wr_int32_array(w, flex, p->n_isr, p->isr);
            if (ver >= 5)
                wr_int32_array(w, flex, p->n_offline, p->offline);
            sl_wr_tags_empty(w, flex);
        }
        if (ver >= 8)
            sl_wr_i32(w, t->topic_authorized_operations);
        sl_wr_tags_empty(w, flex);
    }
    if (ver >= 8 && ver <= 10)
        sl_wr_i32(w, m->cluster_authorized_operations);
    sl_wr_tags_empty(w, flex);
}

void sl_kafka_MetadataResponse_free(sl_kafka_MetadataResponse *m)
{
    for (int32_t i = 0; m->topics && i < m->n_topics; i++) {
        sl_kafka_MetadataTopic *t = &m->topics[i];
        for (int32_t j = 0; t->partitions && j < t->n_partitions; j++) {
            sl_free(t->partitions[j].replicas);
            sl_free(t->partitions[j].isr);
            sl_free(t->partitions[j].offline);
        }
        sl_free(t->partitions);
    }
    sl_free(m->topics);
    sl_free(m->brokers);
    m->topics = NULL;
    m->brokers = NULL;
    m->n_topics = m->n_brokers = 0;
}

/* ---- Produce (key 0) ------------------------------------------------- */

static int rd_produce_topic(sl_rd *r, bool flex, sl_kafka_ProduceTopicData *t)
{
    t->name = rd_str_nn(r, flex);
    t->n_partitions = rd_array_nn(r, flex, 5);
    if (r->err)
        return r->err;
    if (t->n_partitions > 0)
        t->partitions = sl_calloc((size_t)t->n_partitions,
                                  sizeof *t->partitions);
    for (int32_t i = 0; i < t->n_partitions; i++) {
        sl_kafka_ProducePartitionData *p = &t->partitions[i];
        p->index = sl_rd_i32(r);
        /* Nullable records: a message set (v0-2, magic 0/1) or record
         * batches (v3+); kept as bytes pointing into the frame. */
        p->records = sl_rd_kbytes(r, flex);
        rd_tags(r, flex);
        if (r->err)
            return r->err;
    }
    rd_tags(r, flex);
    return r->err;
}

int sl_kafka_ProduceRequest_decode(sl_rd *r, int16_t ver,
                                   sl_kafka_ProduceRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_PRODUCE, ver);

    memset(m, 0, sizeof *m);
    m->transactional_id = SL_KSTR_NULL;
    if (!served_version(SL_KAFKA_PRODUCE, ver))
        return SL_E_UNSUPPORTED;
    if (ver >= 3)
        m->transactional_id = sl_rd_kstr(r, flex);
    m->acks = sl_rd_i16(r);
    m->timeout_ms = sl_rd_i32(r);
    m->n_topics = rd_array_nn(r, flex, 2);
    SL_RD_CHECK(r);
    if (m->n_topics > 0)
        m->topics = sl_calloc((size_t)m->n_topics, sizeof *m->topics);
    for (int32_t i = 0; i < m->n_topics; i++)
        if (rd_produce_topic(r, flex, &m->topics[i]))
            goto err_parse;
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    sl_kafka_ProduceRequest_free(m);
    return r->err;
}

void sl_kafka_ProduceRequest_encode(sl_wr *w, int16_t ver,
                                    const sl_kafka_ProduceRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_PRODUCE, ver);
    int32_t nt = m->n_topics > 0 ? m->n_topics : 0;

    if (ver >= 3)
        sl_wr_kstr(w, m->transactional_id, flex);
    sl_wr_i16(w, m->acks);
    sl_wr_i32(w, m->timeout_ms);
    sl_wr_array_len(w, nt, flex);
    for (int32_t i = 0; i < nt; i++) {
        const sl_kafka_ProduceTopicData *t = &m->topics[i];
        int32_t np = t->n_partitions > 0 ? t->n_partitions : 0;
        wr_str_nn(w, t->name, flex);
        sl_wr_array_len(w, np, flex);
        for (int32_t j = 0; j < np; j++) {
            sl_wr_i32(w, t->partitions[j].index);
            sl_wr_kbytes(w, t->partitions[j].records, flex);
            sl_wr_tags_empty(w, flex);
        }
        sl_wr_tags_empty(w, flex);
    }
    sl_wr_tags_empty(w, flex);
}

void sl_kafka_ProduceRequest_free(sl_kafka_ProduceRequest *m)
{
    for (int32_t i = 0; m->topics && i < m->n_topics; i++)
        sl_free(m->topics[i].partitions);
    sl_free(m->topics);
    m->topics = NULL;
    m->n_topics = 0;
}

static int rd_produce_partition_response(sl_rd *r, int16_t ver, bool flex,
                                         sl_kafka_ProducePartitionResponse *p)
{
    p->log_append_time_ms = -1;
    p->log_start_offset = -1;
    p->error_message = SL_KSTR_NULL;
    p->index = sl_rd_i32(r);
    p->error_code = sl_rd_i16(r);
    p->base_offset = sl_rd_i64(r);
    if (ver >= 2)
        p->log_append_time_ms = sl_rd_i64(r);
    if (ver >= 5)
        p->log_start_offset = sl_rd_i64(r);
    if (ver >= 8) {
        p->n_record_errors = rd_array_nn(r, flex, 5);
        if (r->err)
            return r->err;
        if (p->n_record_errors > 0)
            p->record_errors = sl_calloc((size_t)p->n_record_errors,
                                         sizeof *p->record_errors);
        for (int32_t i = 0; i < p->n_record_errors; i++) {
            p->record_errors[i].batch_index = sl_rd_i32(r);
            p->record_errors[i].message = sl_rd_kstr(r, flex);
            rd_tags(r, flex);
        }
        p->error_message = sl_rd_kstr(r, flex);
    }
    /* v10+ CurrentLeader (tag 0) is skipped with the other tags. */
    rd_tags(r, flex);
    return r->err;
}

static int rd_produce_topic_response(sl_rd *r, int16_t ver, bool flex,
                                     sl_kafka_ProduceTopicResponse *t)
{
    t->name = rd_str_nn(r, flex);
    t->n_partitions = rd_array_nn(r, flex, 14);
    if (r->err)
        return r->err;
    if (t->n_partitions > 0)
        t->partitions = sl_calloc((size_t)t->n_partitions,
                                  sizeof *t->partitions);
    for (int32_t i = 0; i < t->n_partitions; i++)
        if (rd_produce_partition_response(r, ver, flex, &t->partitions[i]))
            return r->err;
    rd_tags(r, flex);
    return r->err;
}

int sl_kafka_ProduceResponse_decode(sl_rd *r, int16_t ver,
                                    sl_kafka_ProduceResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_PRODUCE, ver);

    memset(m, 0, sizeof *m);
    if (!served_version(SL_KAFKA_PRODUCE, ver))
        return SL_E_UNSUPPORTED;
    m->n_topics = rd_array_nn(r, flex, 2);
    SL_RD_CHECK(r);
    if (m->n_topics > 0)
        m->topics = sl_calloc((size_t)m->n_topics, sizeof *m->topics);
    for (int32_t i = 0; i < m->n_topics; i++)
        if (rd_produce_topic_response(r, ver, flex, &m->topics[i]))
            goto err_parse;
    /* throttle_time_ms comes after the topics array (v1+). */
    if (ver >= 1)
        m->throttle_time_ms = sl_rd_i32(r);
    /* v10+ NodeEndpoints (tag 0) is skipped. */
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    sl_kafka_ProduceResponse_free(m);
    return r->err;
}

void sl_kafka_ProduceResponse_encode(sl_wr *w, int16_t ver,
                                     const sl_kafka_ProduceResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_PRODUCE, ver);
    int32_t nt = m->n_topics > 0 ? m->n_topics : 0;

    sl_wr_array_len(w, nt, flex);
    for (int32_t i = 0; i < nt; i++) {
        const sl_kafka_ProduceTopicResponse *t = &m->topics[i];
        int32_t np = t->n_partitions > 0 ? t->n_partitions : 0;
        wr_str_nn(w, t->name, flex);
        sl_wr_array_len(w, np, flex);
        for (int32_t j = 0; j < np; j++) {
            const sl_kafka_ProducePartitionResponse *p = &t->partitions[j];
            sl_wr_i32(w, p->index);
            sl_wr_i16(w, p->error_code);
            sl_wr_i64(w, p->base_offset);
            if (ver >= 2)
                sl_wr_i64(w, p->log_append_time_ms);
            if (ver >= 5)
                sl_wr_i64(w, p->log_start_offset);
            if (ver >= 8) {
                int32_t ne = p->n_record_errors > 0 ? p->n_record_errors : 0;
                sl_wr_array_len(w, ne, flex);
                for (int32_t k = 0; k < ne; k++) {
                    sl_wr_i32(w, p->record_errors[k].batch_index);
                    sl_wr_kstr(w, p->record_errors[k].message, flex);
                    sl_wr_tags_empty(w, flex);
                }
                sl_wr_kstr(w, p->error_message, flex);
            }
            sl_wr_tags_empty(w, flex);
        }
        sl_wr_tags_empty(w, flex);
    }
    if (ver >= 1)
        sl_wr_i32(w, m->throttle_time_ms);
    sl_wr_tags_empty(w, flex);
}

void sl_kafka_ProduceResponse_free(sl_kafka_ProduceResponse *m)
{
    for (int32_t i = 0; m->topics && i < m->n_topics; i++) {
        sl_kafka_ProduceTopicResponse *t = &m->topics[i];
        for (int32_t j = 0; t->partitions && j < t->n_partitions; j++)
            sl_free(t->partitions[j].record_errors);
        sl_free(t->partitions);
    }
    sl_free(m->topics);
    m->topics = NULL;
    m->n_topics = 0;
}

/* ---- InitProducerId (key 22) ---------------------------------------- */

/* ---- FindCoordinator ------------------------------------------------ */

int sl_kafka_FindCoordinatorRequest_decode(sl_rd *r, int16_t ver,
                                           sl_kafka_FindCoordinatorRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_FIND_COORDINATOR, ver);
    int32_t n;

    memset(m, 0, sizeof *m);
    if (!served_version(SL_KAFKA_FIND_COORDINATOR, ver))
        return SL_E_UNSUPPORTED;
    if (ver <= 3) {
        m->keys[0] = sl_rd_kstr(r, flex);
        m->n_keys = 1;
    }
    if (ver >= 1)
        m->key_type = sl_rd_i8(r);
    if (ver >= 4) {
        n = sl_rd_array_len(r, flex, 1);
        SL_RD_CHECK(r);
        if (n > SL_KAFKA_FIND_COORDINATOR_MAX_KEYS)
            return SL_E_UNSUPPORTED;
        m->n_keys = n < 0 ? 0 : n;
        for (int32_t i = 0; i < m->n_keys; i++)
            m->keys[i] = sl_rd_kstr(r, flex);
    }
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    m->n_keys = 0;
    return r->err;
}

void sl_kafka_FindCoordinatorRequest_encode(
    sl_wr *w, int16_t ver, const sl_kafka_FindCoordinatorRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_FIND_COORDINATOR, ver);

    if (ver <= 3)
        sl_wr_kstr(w, m->n_keys > 0 ? m->keys[0] : SL_KSTR(""), flex);
    if (ver >= 1)
        sl_wr_i8(w, m->key_type);
    if (ver >= 4) {
        sl_wr_array_len(w, m->n_keys, flex);
        for (int32_t i = 0; i < m->n_keys; i++)
            sl_wr_kstr(w, m->keys[i], flex);
    }
    sl_wr_tags_empty(w, flex);
}

void sl_kafka_FindCoordinatorResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_FindCoordinatorRequest *req,
    int16_t error_code, sl_kstr error_message)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_FIND_COORDINATOR, ver);

    if (ver >= 1)
        sl_wr_i32(w, 0); /* throttle_time_ms */
    if (ver <= 3) {
        sl_wr_i16(w, error_code);
        if (ver >= 1)
            sl_wr_kstr(w, error_message, flex);
        sl_wr_i32(w, -1); /* node_id */
        sl_wr_kstr(w, SL_KSTR(""), flex);
        sl_wr_i32(w, -1); /* port */
    } else {
        sl_wr_array_len(w, req->n_keys, flex);
        for (int32_t i = 0; i < req->n_keys; i++) {
            sl_wr_kstr(w, req->keys[i], flex);
            sl_wr_i32(w, -1);
            sl_wr_kstr(w, SL_KSTR(""), flex);
            sl_wr_i32(w, -1);
            sl_wr_i16(w, error_code);
            sl_wr_kstr(w, error_message, flex);
            sl_wr_tags_empty(w, flex);
        }
    }
    sl_wr_tags_empty(w, flex);
}

int sl_kafka_InitProducerIdRequest_decode(sl_rd *r, int16_t ver,
                                          sl_kafka_InitProducerIdRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_INIT_PRODUCER_ID, ver);

    memset(m, 0, sizeof *m);
    m->transactional_id = SL_KSTR_NULL;
    m->producer_id = -1;
    m->producer_epoch = -1;
    if (!served_version(SL_KAFKA_INIT_PRODUCER_ID, ver))
        return SL_E_UNSUPPORTED;
    m->transactional_id = sl_rd_kstr(r, flex);
    m->transaction_timeout_ms = sl_rd_i32(r);
    /* v3 lets a producer resume its id/epoch after INVALID_PRODUCER_EPOCH. */
    if (ver >= 3) {
        m->producer_id = sl_rd_i64(r);
        m->producer_epoch = sl_rd_i16(r);
    }
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    m->transactional_id = SL_KSTR_NULL;
    return r->err;
}

void sl_kafka_InitProducerIdRequest_encode(
    sl_wr *w, int16_t ver, const sl_kafka_InitProducerIdRequest *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_INIT_PRODUCER_ID, ver);

    sl_wr_kstr(w, m->transactional_id, flex);
    sl_wr_i32(w, m->transaction_timeout_ms);
    if (ver >= 3) {
        sl_wr_i64(w, m->producer_id);
        sl_wr_i16(w, m->producer_epoch);
    }
    sl_wr_tags_empty(w, flex);
}

int sl_kafka_InitProducerIdResponse_decode(sl_rd *r, int16_t ver,
                                           sl_kafka_InitProducerIdResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_INIT_PRODUCER_ID, ver);

    memset(m, 0, sizeof *m);
    if (!served_version(SL_KAFKA_INIT_PRODUCER_ID, ver))
        return SL_E_UNSUPPORTED;
    m->throttle_time_ms = sl_rd_i32(r);
    m->error_code = sl_rd_i16(r);
    m->producer_id = sl_rd_i64(r);
    m->producer_epoch = sl_rd_i16(r);
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    return r->err;
}

void sl_kafka_InitProducerIdResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_InitProducerIdResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_INIT_PRODUCER_ID, ver);

    sl_wr_i32(w, m->throttle_time_ms);
    sl_wr_i16(w, m->error_code);
    sl_wr_i64(w, m->producer_id);
    sl_wr_i16(w, m->producer_epoch);
    sl_wr_tags_empty(w, flex);
}

/* ---- SaslHandshake (key 17) and SaslAuthenticate (key 36) ------------- */

int sl_kafka_SaslHandshakeRequest_decode(sl_rd *r, int16_t ver,
                                         sl_kstr *mechanism)
{
    if (!served_version(SL_KAFKA_SASL_HANDSHAKE, ver))
        return SL_E_UNSUPPORTED;
    *mechanism = sl_rd_str(r);
    SL_RD_CHECK(r);
    if (mechanism->len < 0)
        return SL_E_PARSE;
    return 0;

err_parse:
    return r->err;
}

void sl_kafka_SaslHandshakeRequest_encode(sl_wr *w, int16_t ver,
                                          sl_kstr mechanism)
{
    (void)ver;
    sl_wr_kstr(w, mechanism, false);
}

void sl_kafka_SaslHandshakeResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_SaslHandshakeResponse *m)
{
    (void)ver; /* never flexible; v1 only changed what follows it */
    sl_wr_i16(w, m->error_code);
    sl_wr_array_len(w, m->n_mechanisms, false);
    for (int32_t i = 0; i < m->n_mechanisms; i++)
        sl_wr_kstr(w, SL_KSTR(m->mechanisms[i]), false);
}

int sl_kafka_SaslAuthenticateRequest_decode(sl_rd *r, int16_t ver,
                                            sl_kstr *auth_bytes)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_SASL_AUTHENTICATE, ver);

    if (!served_version(SL_KAFKA_SASL_AUTHENTICATE, ver))
        return SL_E_UNSUPPORTED;
    *auth_bytes = sl_rd_kbytes(r, flex);
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    if (auth_bytes->len < 0)
        return SL_E_PARSE;
    return 0;

err_parse:
    return r->err;
}

void sl_kafka_SaslAuthenticateRequest_encode(sl_wr *w, int16_t ver,
                                             sl_kstr auth_bytes)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_SASL_AUTHENTICATE, ver);

    sl_wr_kbytes(w, auth_bytes, flex);
    sl_wr_tags_empty(w, flex);
}

int sl_kafka_SaslAuthenticateResponse_decode(
    sl_rd *r, int16_t ver, sl_kafka_SaslAuthenticateResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_SASL_AUTHENTICATE, ver);

    memset(m, 0, sizeof *m);
    if (!served_version(SL_KAFKA_SASL_AUTHENTICATE, ver))
        return SL_E_UNSUPPORTED;
    m->error_code = sl_rd_i16(r);
    m->error_message = sl_rd_kstr(r, flex);
    m->auth_bytes = sl_rd_kbytes(r, flex);
    if (ver >= 1)
        m->session_lifetime_ms = sl_rd_i64(r);
    rd_tags(r, flex);
    SL_RD_CHECK(r);
    return 0;

err_parse:
    return r->err;
}

void sl_kafka_SaslAuthenticateResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_SaslAuthenticateResponse *m)
{
    bool flex = sl_kafka_is_flexible(SL_KAFKA_SASL_AUTHENTICATE, ver);

    sl_wr_i16(w, m->error_code);
    sl_wr_kstr(w, m->error_message, flex);
    sl_wr_kbytes(w, m->auth_bytes, flex);
    if (ver >= 1)
        sl_wr_i64(w, m->session_lifetime_ms);
    sl_wr_tags_empty(w, flex);
}

/* ---- Error-response templates ---------------------------------------- */

/*
 * Each unserved API's response, reduced to what an error answer needs:
 * its top-level fields in schema order, each with the versions it exists
 * in, written as the error code, zero throttle, -1 ids, empty or null
 * strings and empty collections. Nested structs never appear because every
 * collection is empty. Whether a version is flexible (compact lengths,
 * trailing tag section) comes from sl_kafka_apis[], and so does the version
 * range a template answers for.
 */
enum tpl_op {
    T_THROTTLE,   /* int32 throttle_time_ms = 0 */
    T_ERROR,      /* int16 = the error code */
    T_I8,         /* int8 .val */
    T_I16,        /* int16 .val */
    T_I32,        /* int32 .val */
    T_I64,        /* int64 .val (sign-extended) */
    T_BOOL,       /* false */
    T_UUID,       /* 16 zero bytes */
    T_STR,        /* "" (non-nullable string) */
    T_NULLSTR,    /* null (nullable string) */
    T_BYTES,      /* empty non-nullable bytes */
    T_ARRAY,      /* empty array */
    T_NULLSTRUCT, /* absent nullable struct: int8 -1 */
};

typedef struct tpl_field {
    uint8_t op;
    int8_t vmin, vmax; /* versions the field exists in */
    int32_t val;
} tpl_field;

typedef struct tpl {
    int16_t api_key;
    const tpl_field *fields;
    size_t n_fields;
} tpl;

#define VMAX 127
/* F(op, range) and FV(op, range, val); the indirection lets ALL and FROM()
 * expand into two arguments before F_/FV_ count them. */
#define F_(op, vmin, vmax) {op, vmin, vmax, 0}
#define FV_(op, vmin, vmax, val) {op, vmin, vmax, val}
#define F(...) F_(__VA_ARGS__)
#define FV(...) FV_(__VA_ARGS__)
#define ALL 0, VMAX
#define FROM(v) v, VMAX

/* Fetch v7+ (KIP-227) has a top-level error and a session id (0: none). */
static const tpl_field t_fetch[] = {
    F(T_THROTTLE, FROM(1)), F(T_ERROR, FROM(7)), FV(T_I32, FROM(7), 0),
    F(T_ARRAY, ALL)}; /* responses */
static const tpl_field t_list_offsets[] = {
    F(T_THROTTLE, FROM(2)), F(T_ARRAY, ALL)};
static const tpl_field t_offset_commit[] = {
    F(T_THROTTLE, FROM(3)), F(T_ARRAY, ALL)};
/* OffsetFetch: v2-7 top-level error after topics; v8+ per-group array. */
static const tpl_field t_offset_fetch[] = {
    F(T_THROTTLE, FROM(3)), F(T_ARRAY, 0, 7), F(T_ERROR, 2, 7),
    F(T_ARRAY, FROM(8))};
/* FindCoordinator v0-3: one coordinator (node -1, host "", port -1);
 * v4+ (KIP-699) a coordinators array, empty since the keys are unknown
 * here. */
static const tpl_field t_find_coordinator[] = {
    F(T_THROTTLE, FROM(1)), F(T_ERROR, 0, 3), F(T_NULLSTR, 1, 3),
    FV(T_I32, 0, 3, -1), F(T_STR, 0, 3), FV(T_I32, 0, 3, -1),
    F(T_ARRAY, FROM(4))};
/* JoinGroup: ProtocolName becomes nullable in v7. */
static const tpl_field t_join_group[] = {
    F(T_THROTTLE, FROM(2)), F(T_ERROR, ALL), FV(T_I32, ALL, -1),
    F(T_NULLSTR, FROM(7)), F(T_STR, 0, 6), F(T_NULLSTR, FROM(7)),
    F(T_STR, ALL), F(T_BOOL, FROM(9)), F(T_STR, ALL), F(T_ARRAY, ALL)};
static const tpl_field t_heartbeat[] = {
    F(T_THROTTLE, FROM(1)), F(T_ERROR, ALL)};
static const tpl_field t_leave_group[] = {
    F(T_THROTTLE, FROM(1)), F(T_ERROR, ALL), F(T_ARRAY, FROM(3))};
static const tpl_field t_sync_group[] = {
    F(T_THROTTLE, FROM(1)), F(T_ERROR, ALL), F(T_NULLSTR, FROM(5)),
    F(T_NULLSTR, FROM(5)), F(T_BYTES, ALL)};
static const tpl_field t_describe_groups[] = {
    F(T_THROTTLE, FROM(1)), F(T_ARRAY, ALL)};
static const tpl_field t_list_groups[] = {
    F(T_THROTTLE, FROM(1)), F(T_ERROR, ALL), F(T_ARRAY, ALL)};
/* SaslHandshake: error plus the (here empty) list of mechanisms. */
static const tpl_field t_sasl_handshake[] = {
    F(T_ERROR, ALL), F(T_ARRAY, ALL)};
static const tpl_field t_create_topics[] = {
    F(T_THROTTLE, FROM(2)), F(T_ARRAY, ALL)};
static const tpl_field t_delete_topics[] = {
    F(T_THROTTLE, FROM(1)), F(T_ARRAY, ALL)};
static const tpl_field t_throttle_array[] = {
    F(T_THROTTLE, ALL), F(T_ARRAY, ALL)};
/* InitProducerId: producer id and epoch -1 with the error. */
static const tpl_field t_init_producer_id[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), FV(T_I64, ALL, -1),
    FV(T_I16, ALL, -1)};
static const tpl_field t_offset_for_leader_epoch[] = {
    F(T_THROTTLE, FROM(2)), F(T_ARRAY, ALL)};
/* AddPartitionsToTxn v4+ (KIP-890) batches by transaction. */
static const tpl_field t_add_partitions_to_txn[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, FROM(4)), F(T_ARRAY, FROM(4)),
    F(T_ARRAY, 0, 3)};
static const tpl_field t_throttle_error[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL)};
/* EndTxn v5 (KIP-890) returns producer id and epoch. */
static const tpl_field t_end_txn[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), FV(T_I64, FROM(5), -1),
    FV(T_I16, FROM(5), -1)};
static const tpl_field t_describe_acls[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), F(T_NULLSTR, ALL), F(T_ARRAY, ALL)};
static const tpl_field t_describe_log_dirs[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, FROM(3)), F(T_ARRAY, ALL)};
static const tpl_field t_sasl_authenticate[] = {
    F(T_ERROR, ALL), F(T_NULLSTR, ALL), F(T_BYTES, ALL),
    FV(T_I64, FROM(1), 0)};
static const tpl_field t_elect_leaders[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, FROM(1)), F(T_ARRAY, ALL)};
/* OffsetDelete puts the error before the throttle time. */
static const tpl_field t_offset_delete[] = {
    F(T_ERROR, ALL), F(T_THROTTLE, ALL), F(T_ARRAY, ALL)};
static const tpl_field t_describe_client_quotas[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), F(T_NULLSTR, ALL), F(T_ARRAY, ALL)};
/* DescribeCluster: endpoint type v1+ (1 = brokers), cluster id "",
 * controller -1, no brokers, authorized operations INT32_MIN (not asked). */
static const tpl_field t_describe_cluster[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), F(T_NULLSTR, ALL),
    FV(T_I8, FROM(1), 1), F(T_STR, ALL), FV(T_I32, ALL, -1),
    F(T_ARRAY, ALL), FV(T_I32, ALL, INT32_MIN)};
static const tpl_field t_list_transactions[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), F(T_ARRAY, ALL), F(T_ARRAY, ALL)};
/* ConsumerGroupHeartbeat (KIP-848): no member id, epoch 0, interval 0, no
 * assignment. */
static const tpl_field t_consumer_group_heartbeat[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), F(T_NULLSTR, ALL),
    F(T_NULLSTR, ALL), FV(T_I32, ALL, 0), FV(T_I32, ALL, 0),
    F(T_NULLSTRUCT, ALL)};
/* GetTelemetrySubscriptions (KIP-714): zero instance id, no metrics. */
static const tpl_field t_get_telemetry_subscriptions[] = {
    F(T_THROTTLE, ALL), F(T_ERROR, ALL), F(T_UUID, ALL), FV(T_I32, ALL, 0),
    F(T_ARRAY, ALL), FV(T_I32, ALL, 0), FV(T_I32, ALL, 0), F(T_BOOL, ALL),
    F(T_ARRAY, ALL)};
/* DescribeTopicPartitions: no topics, no next cursor. */
static const tpl_field t_describe_topic_partitions[] = {
    F(T_THROTTLE, ALL), F(T_ARRAY, ALL), F(T_NULLSTRUCT, ALL)};

#define TPL(key, fields) {key, fields, SL_ARRAY_SIZE(fields)}
static const tpl error_templates[] = {
    TPL(1, t_fetch),
    TPL(2, t_list_offsets),
    TPL(8, t_offset_commit),
    TPL(9, t_offset_fetch),
    TPL(10, t_find_coordinator),
    TPL(11, t_join_group),
    TPL(12, t_heartbeat),
    TPL(13, t_leave_group),
    TPL(14, t_sync_group),
    TPL(15, t_describe_groups),
    TPL(16, t_list_groups),
    TPL(17, t_sasl_handshake),
    TPL(19, t_create_topics),
    TPL(20, t_delete_topics),
    TPL(21, t_throttle_array),          /* DeleteRecords */
    TPL(22, t_init_producer_id),
    TPL(23, t_offset_for_leader_epoch),
    TPL(24, t_add_partitions_to_txn),
    TPL(25, t_throttle_error),          /* AddOffsetsToTxn */
    TPL(26, t_end_txn),
    TPL(28, t_throttle_array),          /* TxnOffsetCommit */
    TPL(29, t_describe_acls),
    TPL(30, t_throttle_array),          /* CreateAcls */
    TPL(31, t_throttle_array),          /* DeleteAcls */
    TPL(32, t_throttle_array),          /* DescribeConfigs */
    TPL(33, t_throttle_array),          /* AlterConfigs */
    TPL(35, t_describe_log_dirs),
    TPL(36, t_sasl_authenticate),
    TPL(37, t_throttle_array),          /* CreatePartitions */
    TPL(42, t_throttle_array),          /* DeleteGroups */
    TPL(43, t_elect_leaders),
    TPL(44, t_throttle_array),          /* IncrementalAlterConfigs */
    TPL(47, t_offset_delete),
    TPL(48, t_describe_client_quotas),
    TPL(60, t_describe_cluster),
    TPL(61, t_throttle_array),          /* DescribeProducers */
    TPL(65, t_throttle_array),          /* DescribeTransactions */
    TPL(66, t_list_transactions),
    TPL(68, t_consumer_group_heartbeat),
    TPL(69, t_throttle_array),          /* ConsumerGroupDescribe */
    TPL(71, t_get_telemetry_subscriptions),
    TPL(72, t_throttle_error),          /* PushTelemetry */
    TPL(75, t_describe_topic_partitions),
};
#undef TPL
#undef F
#undef FV
#undef F_
#undef FV_
#undef ALL
#undef FROM

static void tpl_emit(sl_wr *w, const tpl_field *f, bool flex, int16_t code)
{
    static const uint8_t zero_uuid[16];

    switch ((enum tpl_op)f->op) {
    case T_THROTTLE:
        sl_wr_i32(w, 0);
        break;
    case T_ERROR:
        sl_wr_i16(w, code);
        break;
    case T_I8:
        sl_wr_i8(w, (int8_t)f->val);
        break;
    case T_I16:
        sl_wr_i16(w, (int16_t)f->val);
        break;
    case T_I32:
        sl_wr_i32(w, f->val);
        break;
    case T_I64:
        sl_wr_i64(w, f->val);
        break;
    case T_BOOL:
        wr_bool(w, false);
        break;
    case T_UUID:
        wr_uuid(w, zero_uuid);
        break;
    case T_STR:
        sl_wr_kstr(w, (sl_kstr){"", 0}, flex);
        break;
    case T_NULLSTR:
        sl_wr_kstr(w, SL_KSTR_NULL, flex);
        break;
    case T_BYTES:
        sl_wr_kbytes(w, (sl_kstr){"", 0}, flex);
        break;
    case T_ARRAY:
        sl_wr_array_len(w, 0, flex);
        break;
    case T_NULLSTRUCT:
        sl_wr_i8(w, -1);
        break;
    }
}

bool sl_kafka_error_response_carries_error(int16_t api_key,
                                           int16_t api_version)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(error_templates); i++) {
        const tpl *t = &error_templates[i];
        if (t->api_key != api_key)
            continue;
        for (size_t k = 0; k < t->n_fields; k++)
            if (t->fields[k].op == T_ERROR &&
                api_version >= t->fields[k].vmin &&
                api_version <= t->fields[k].vmax)
                return true;
    }
    return false;
}

int sl_kafka_error_response_encode(sl_wr *w, int16_t api_key,
                                   int16_t api_version, int16_t error_code)
{
    const sl_kafka_api *api = sl_kafka_api_find(api_key);
    const tpl *t = NULL;
    bool flex;

    for (size_t i = 0; i < SL_ARRAY_SIZE(error_templates); i++)
        if (error_templates[i].api_key == api_key)
            t = &error_templates[i];
    if (!api || !t || api_version < api->min_version ||
        api_version > api->max_version)
        return SL_E_UNSUPPORTED;
    flex = sl_kafka_is_flexible(api_key, api_version);
    for (size_t i = 0; i < t->n_fields; i++)
        if (api_version >= t->fields[i].vmin &&
            api_version <= t->fields[i].vmax)
            tpl_emit(w, &t->fields[i], flex, error_code);
    sl_wr_tags_empty(w, flex);
    return 0;
}
