/*
 * Kafka wire codec, sans-I/O: bytes in, structs out, and back.
 *
 * Covers what Sluice serves: request/response headers v0-v2, ApiVersions
 * v0-v3, Metadata v0-v12, Produce v3-v11 (v0-v2 decoded for a clean error),
 * InitProducerId v0-v4, plus well-formed error responses for APIs Sluice
 * advertises or knows but does not serve. Field lists follow Kafka's
 * clients/src/main/resources/common/message/ (*.json); see ../shared/PROTOCOL.md.
 *
 * Ownership: decoded structs point into the caller's input buffer (sl_kstr,
 * record bytes) and own only their arrays, freed by the matching _free().
 * The input buffer must outlive the decoded struct. Encoders append to an
 * sl_wr the caller owns. Pure: no I/O, no clock, any thread.
 *
 * Every _decode returns 0, or SL_E_TRUNCATED / SL_E_PARSE / SL_E_UNSUPPORTED
 * (version outside the codec's range); on error nothing needs freeing.
 */
#ifndef SLUICE_KAFKA_H
#define SLUICE_KAFKA_H

#include "sluice/buf.h"

/* API keys used by name in the daemon. */
enum {
    SL_KAFKA_PRODUCE = 0,
    SL_KAFKA_FETCH = 1,
    SL_KAFKA_LIST_OFFSETS = 2,
    SL_KAFKA_METADATA = 3,
    SL_KAFKA_FIND_COORDINATOR = 10,
    SL_KAFKA_SASL_HANDSHAKE = 17,
    SL_KAFKA_API_VERSIONS = 18,
    SL_KAFKA_INIT_PRODUCER_ID = 22,
    SL_KAFKA_SASL_AUTHENTICATE = 36,
};

/* Kafka error codes Sluice produces (int16_t on the wire). */
enum {
    SL_KERR_NONE = 0,
    SL_KERR_OFFSET_OUT_OF_RANGE = 1,
    SL_KERR_CORRUPT_MESSAGE = 2,
    SL_KERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    SL_KERR_LEADER_NOT_AVAILABLE = 5,
    SL_KERR_NOT_LEADER_OR_FOLLOWER = 6,
    SL_KERR_REQUEST_TIMED_OUT = 7,
    SL_KERR_MESSAGE_TOO_LARGE = 10,
    SL_KERR_NETWORK_EXCEPTION = 13,
    SL_KERR_COORDINATOR_NOT_AVAILABLE = 15,
    SL_KERR_INVALID_TOPIC_EXCEPTION = 17,
    SL_KERR_RECORD_LIST_TOO_LARGE = 18,
    SL_KERR_NOT_ENOUGH_REPLICAS = 19,
    SL_KERR_INVALID_REQUIRED_ACKS = 21,
    SL_KERR_TOPIC_AUTHORIZATION_FAILED = 29,
    SL_KERR_CLUSTER_AUTHORIZATION_FAILED = 31,
    SL_KERR_INVALID_TIMESTAMP = 32,
    SL_KERR_UNSUPPORTED_SASL_MECHANISM = 33,
    SL_KERR_ILLEGAL_SASL_STATE = 34,
    SL_KERR_UNSUPPORTED_VERSION = 35,
    SL_KERR_INVALID_REQUEST = 42,
    SL_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT = 43,
    SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    SL_KERR_DUPLICATE_SEQUENCE_NUMBER = 46,
    SL_KERR_INVALID_PRODUCER_EPOCH = 47,
    SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53,
    SL_KERR_KAFKA_STORAGE_ERROR = 56,
    SL_KERR_SASL_AUTHENTICATION_FAILED = 58,
    SL_KERR_UNKNOWN_PRODUCER_ID = 59,
    SL_KERR_UNSUPPORTED_COMPRESSION_TYPE = 76,
    SL_KERR_INVALID_RECORD = 87,
    SL_KERR_UNKNOWN_SERVER_ERROR = -1,
};

/* Human name of a Kafka error code ("CORRUPT_MESSAGE"), "UNKNOWN" if
 * not in the table. */
const char *sl_kafka_err_name(int16_t code);

/* ---- API table: the ONE list of APIs Sluice knows ------------------ */

typedef struct sl_kafka_api {
    int16_t key;
    const char *name;      /* Kafka's name: "Produce", "Metadata", ... */
    int16_t min_version;   /* range advertised in ApiVersions */
    int16_t max_version;
    int16_t flexible_from; /* first flexible version, -1 if none */
    bool advertised;       /* listed in ApiVersions responses */
    bool served;           /* Sluice implements it (else error response) */
} sl_kafka_api;

/* All known APIs (advertised or not), ordered by key. */
extern const sl_kafka_api sl_kafka_apis[];
extern const size_t sl_kafka_apis_count;

/* NULL if the key is not in the table. */
const sl_kafka_api *sl_kafka_api_find(int16_t key);

/* Is (key, version) flexible? Unknown keys: false. Versions above the
 * table's max are treated as flexible if the API has flexible versions. */
bool sl_kafka_is_flexible(int16_t key, int16_t version);

/* ---- Headers ------------------------------------------------------- */

typedef struct sl_kafka_req_hdr {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    sl_kstr client_id; /* nullable; int16 length in every header version */
    size_t len;        /* bytes of header consumed: body starts here */
} sl_kafka_req_hdr;

/* Decodes the request header from a frame (the bytes after the 4-byte
 * size). Header v2 (tagged fields) is used when the API version is
 * flexible per sl_kafka_is_flexible(); ApiVersions v3+ included. For a
 * frame too short to hold api_key/version/correlation_id, returns
 * SL_E_TRUNCATED; if only the client id or tags are bad, returns SL_E_PARSE
 * with api_key/api_version/correlation_id still filled in. */
int sl_kafka_req_hdr_decode(const uint8_t *frame, size_t len,
                            sl_kafka_req_hdr *h);

/* Writes a request frame header: size placeholder, api key, version,
 * correlation id, client id, tags if flexible. Returns the offset of the
 * size field for sl_kafka_frame_end(). */
size_t sl_kafka_req_hdr_encode(sl_wr *w, int16_t api_key,
                               int16_t api_version, int32_t correlation_id,
                               sl_kstr client_id);

/* Writes a response frame header: size placeholder, correlation id, and
 * an empty tag section for header v1 (flexible versions; never for
 * ApiVersions). Returns the offset of the size field. */
size_t sl_kafka_resp_hdr_encode(sl_wr *w, int16_t api_key,
                                int16_t api_version, int32_t correlation_id);

/* Patches the frame size at `start` (as returned above) to cover all bytes
 * written after it. */
void sl_kafka_frame_end(sl_wr *w, size_t start);

/* Decodes a response header (correlation id and, if flexible, tags).
 * For clients of the codec (tests, bench load generator). */
int sl_kafka_resp_hdr_decode(sl_rd *r, int16_t api_key, int16_t api_version,
                             int32_t *correlation_id);

/* ---- ApiVersions (key 18, v0-v3) ---------------------------------- */

typedef struct sl_kafka_ApiVersionsRequest {
    sl_kstr client_software_name;    /* v3+ */
    sl_kstr client_software_version; /* v3+ */
} sl_kafka_ApiVersionsRequest;

typedef struct sl_kafka_api_range {
    int16_t api_key, min_version, max_version;
} sl_kafka_api_range;

typedef struct sl_kafka_ApiVersionsResponse {
    int16_t error_code;
    int32_t n_apis;
    sl_kafka_api_range *apis; /* owned when decoded */
    int32_t throttle_time_ms; /* v1+ */
} sl_kafka_ApiVersionsResponse;

int sl_kafka_ApiVersionsRequest_decode(sl_rd *r, int16_t ver,
                                       sl_kafka_ApiVersionsRequest *m);
void sl_kafka_ApiVersionsRequest_encode(sl_wr *w, int16_t ver,
                                        const sl_kafka_ApiVersionsRequest *m);
/* v3 software name/version rule: [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? */
bool sl_kafka_software_name_valid(sl_kstr s);
int sl_kafka_ApiVersionsResponse_decode(sl_rd *r, int16_t ver,
                                        sl_kafka_ApiVersionsResponse *m);
void sl_kafka_ApiVersionsResponse_encode(sl_wr *w, int16_t ver,
                                         const sl_kafka_ApiVersionsResponse *m);
void sl_kafka_ApiVersionsResponse_free(sl_kafka_ApiVersionsResponse *m);

/* Builds Sluice's own ApiVersions answer from sl_kafka_apis[] (advertised
 * entries). The apis array is static: do not free. For an unsupported
 * request version pass unsupported=true: error 35 and only the ApiVersions
 * range, to be encoded as v0. */
void sl_kafka_ApiVersionsResponse_build(sl_kafka_ApiVersionsResponse *m,
                                        bool unsupported);

/* ---- Metadata (key 3, v0-v12) -------------------------------------- */

typedef struct sl_kafka_MetadataRequestTopic {
    uint8_t topic_id[16]; /* v10+ */
    sl_kstr name;         /* nullable v10+ */
} sl_kafka_MetadataRequestTopic;

typedef struct sl_kafka_MetadataRequest {
    int32_t n_topics; /* -1 = null = all topics (v1+); v0: 0 = all */
    sl_kafka_MetadataRequestTopic *topics;
    bool allow_auto_topic_creation;                /* v4+; older: true */
    bool include_cluster_authorized_operations;    /* v8-v10 */
    bool include_topic_authorized_operations;      /* v8+ */
} sl_kafka_MetadataRequest;

typedef struct sl_kafka_MetadataBroker {
    int32_t node_id;
    sl_kstr host;
    int32_t port;
    sl_kstr rack; /* v1+, nullable */
} sl_kafka_MetadataBroker;

typedef struct sl_kafka_MetadataPartition {
    int16_t error_code;
    int32_t partition_index;
    int32_t leader_id;
    int32_t leader_epoch; /* v7+ */
    int32_t n_replicas;
    int32_t *replicas;
    int32_t n_isr;
    int32_t *isr;
    int32_t n_offline; /* v5+ */
    int32_t *offline;
} sl_kafka_MetadataPartition;

typedef struct sl_kafka_MetadataTopic {
    int16_t error_code;
    sl_kstr name;          /* nullable v12+ */
    uint8_t topic_id[16];  /* v10+ */
    bool is_internal;      /* v1+ */
    int32_t n_partitions;
    sl_kafka_MetadataPartition *partitions;
    int32_t topic_authorized_operations; /* v8+, INT32_MIN = not asked */
} sl_kafka_MetadataTopic;

typedef struct sl_kafka_MetadataResponse {
    int32_t throttle_time_ms; /* v3+ */
    int32_t n_brokers;
    sl_kafka_MetadataBroker *brokers;
    sl_kstr cluster_id;    /* v2+, nullable */
    int32_t controller_id; /* v1+ */
    int32_t n_topics;
    sl_kafka_MetadataTopic *topics;
    int32_t cluster_authorized_operations; /* v8-v10 */
} sl_kafka_MetadataResponse;

int sl_kafka_MetadataRequest_decode(sl_rd *r, int16_t ver,
                                    sl_kafka_MetadataRequest *m);
void sl_kafka_MetadataRequest_encode(sl_wr *w, int16_t ver,
                                     const sl_kafka_MetadataRequest *m);
void sl_kafka_MetadataRequest_free(sl_kafka_MetadataRequest *m);
/* The encoder only reads the response; the daemon may point its arrays at
 * its own storage. A decoded response owns all its arrays. */
int sl_kafka_MetadataResponse_decode(sl_rd *r, int16_t ver,
                                     sl_kafka_MetadataResponse *m);
void sl_kafka_MetadataResponse_encode(sl_wr *w, int16_t ver,
                                      const sl_kafka_MetadataResponse *m);
void sl_kafka_MetadataResponse_free(sl_kafka_MetadataResponse *m);

/* ---- Produce (key 0, v0-v11) ---------------------------------------- */

typedef struct sl_kafka_ProducePartitionData {
    int32_t index;
    sl_kstr records; /* points into the request frame; nullable */
} sl_kafka_ProducePartitionData;

typedef struct sl_kafka_ProduceTopicData {
    sl_kstr name;
    int32_t n_partitions;
    sl_kafka_ProducePartitionData *partitions;
} sl_kafka_ProduceTopicData;

typedef struct sl_kafka_ProduceRequest {
    sl_kstr transactional_id; /* v3+, nullable */
    int16_t acks;
    int32_t timeout_ms;
    int32_t n_topics;
    sl_kafka_ProduceTopicData *topics;
} sl_kafka_ProduceRequest;

typedef struct sl_kafka_ProduceRecordError {
    int32_t batch_index;
    sl_kstr message; /* nullable */
} sl_kafka_ProduceRecordError;

typedef struct sl_kafka_ProducePartitionResponse {
    int32_t index;
    int16_t error_code;
    int64_t base_offset;
    int64_t log_append_time_ms; /* v2+, -1 */
    int64_t log_start_offset;   /* v5+, -1 */
    int32_t n_record_errors;    /* v8+ */
    sl_kafka_ProduceRecordError *record_errors;
    sl_kstr error_message;      /* v8+, nullable */
} sl_kafka_ProducePartitionResponse;

typedef struct sl_kafka_ProduceTopicResponse {
    sl_kstr name;
    int32_t n_partitions;
    sl_kafka_ProducePartitionResponse *partitions;
} sl_kafka_ProduceTopicResponse;

typedef struct sl_kafka_ProduceResponse {
    int32_t n_topics;
    sl_kafka_ProduceTopicResponse *topics;
    int32_t throttle_time_ms; /* v1+, written after the topics array */
} sl_kafka_ProduceResponse;

int sl_kafka_ProduceRequest_decode(sl_rd *r, int16_t ver,
                                   sl_kafka_ProduceRequest *m);
void sl_kafka_ProduceRequest_encode(sl_wr *w, int16_t ver,
                                    const sl_kafka_ProduceRequest *m);
void sl_kafka_ProduceRequest_free(sl_kafka_ProduceRequest *m);
int sl_kafka_ProduceResponse_decode(sl_rd *r, int16_t ver,
                                    sl_kafka_ProduceResponse *m);
void sl_kafka_ProduceResponse_encode(sl_wr *w, int16_t ver,
                                     const sl_kafka_ProduceResponse *m);
void sl_kafka_ProduceResponse_free(sl_kafka_ProduceResponse *m);

/* ---- InitProducerId (key 22, v0-v4) ------------------------------- */

typedef struct sl_kafka_InitProducerIdRequest {
    sl_kstr transactional_id; /* nullable */
    int32_t transaction_timeout_ms;
    int64_t producer_id;    /* v3+, -1 */
    int16_t producer_epoch; /* v3+, -1 */
} sl_kafka_InitProducerIdRequest;

typedef struct sl_kafka_InitProducerIdResponse {
    int32_t throttle_time_ms;
    int16_t error_code;
    int64_t producer_id;
    int16_t producer_epoch;
} sl_kafka_InitProducerIdResponse;

int sl_kafka_InitProducerIdRequest_decode(sl_rd *r, int16_t ver,
                                          sl_kafka_InitProducerIdRequest *m);
void sl_kafka_InitProducerIdRequest_encode(
    sl_wr *w, int16_t ver, const sl_kafka_InitProducerIdRequest *m);
int sl_kafka_InitProducerIdResponse_decode(sl_rd *r, int16_t ver,
                                           sl_kafka_InitProducerIdResponse *m);
void sl_kafka_InitProducerIdResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_InitProducerIdResponse *m);

/* ---- SaslHandshake (key 17, v0-v1) and SaslAuthenticate (36, v0-v2) --
 * Served on SASL listeners (proxy/security.c). After a v0 handshake the
 * SASL tokens travel as bare size-prefixed frames, without Kafka headers
 * (the pre-KIP-152 way); after v1 they travel in SaslAuthenticate. */

typedef struct sl_kafka_SaslHandshakeResponse {
    int16_t error_code;
    const char *const *mechanisms; /* borrowed */
    int32_t n_mechanisms;
} sl_kafka_SaslHandshakeResponse;

/* The mechanism the client asks for (borrowed from the frame). */
int sl_kafka_SaslHandshakeRequest_decode(sl_rd *r, int16_t ver,
                                         sl_kstr *mechanism);
void sl_kafka_SaslHandshakeRequest_encode(sl_wr *w, int16_t ver,
                                          sl_kstr mechanism);
void sl_kafka_SaslHandshakeResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_SaslHandshakeResponse *m);

typedef struct sl_kafka_SaslAuthenticateResponse {
    int16_t error_code;
    sl_kstr error_message;      /* nullable */
    sl_kstr auth_bytes;
    int64_t session_lifetime_ms; /* v1+ */
} sl_kafka_SaslAuthenticateResponse;

/* The client's SASL token (borrowed from the frame). */
int sl_kafka_SaslAuthenticateRequest_decode(sl_rd *r, int16_t ver,
                                            sl_kstr *auth_bytes);
void sl_kafka_SaslAuthenticateRequest_encode(sl_wr *w, int16_t ver,
                                             sl_kstr auth_bytes);
int sl_kafka_SaslAuthenticateResponse_decode(
    sl_rd *r, int16_t ver, sl_kafka_SaslAuthenticateResponse *m);
void sl_kafka_SaslAuthenticateResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_SaslAuthenticateResponse *m);

/* ---- FindCoordinator (key 10, v0-v4) ------------------------------ */

/* Sluice coordinates nothing; it decodes FindCoordinator only to refuse
 * transactions at once and by name (a producer's first request for a
 * transactional.id), instead of an answer the client retries until its
 * time-out. v4+ (KIP-699) batches keys; at most this many are answered. */
#define SL_KAFKA_FIND_COORDINATOR_MAX_KEYS 32

enum { SL_KAFKA_COORDINATOR_GROUP = 0, SL_KAFKA_COORDINATOR_TRANSACTION = 1 };

typedef struct sl_kafka_FindCoordinatorRequest {
    int8_t key_type; /* v1+; v0 asks for a group */
    int32_t n_keys;  /* v0-v3: 1 */
    sl_kstr keys[SL_KAFKA_FIND_COORDINATOR_MAX_KEYS]; /* point into the frame */
} sl_kafka_FindCoordinatorRequest;

/* SL_E_UNSUPPORTED for more than SL_KAFKA_FIND_COORDINATOR_MAX_KEYS keys. */
int sl_kafka_FindCoordinatorRequest_decode(sl_rd *r, int16_t ver,
                                           sl_kafka_FindCoordinatorRequest *m);
void sl_kafka_FindCoordinatorRequest_encode(
    sl_wr *w, int16_t ver, const sl_kafka_FindCoordinatorRequest *m);

/* The answer to `req`: no coordinator (node -1, host "", port -1) and
 * error_code with error_message (nullable) for every key. */
void sl_kafka_FindCoordinatorResponse_encode(
    sl_wr *w, int16_t ver, const sl_kafka_FindCoordinatorRequest *req,
    int16_t error_code, sl_kstr error_message);

/* ---- Error responses for APIs Sluice does not serve ---------------- */

/* Appends a well-formed body (no header) of the response to (api_key,
 * version) carrying error_code at every error field and empty collections,
 * for the APIs in the error-template table (Fetch, ListOffsets,
 * FindCoordinator, group and transaction APIs, SaslHandshake, ...).
 * Returns 0, or SL_E_UNSUPPORTED if there is no template for that API or
 * version (the daemon then logs and disconnects). */
int sl_kafka_error_response_encode(sl_wr *w, int16_t api_key,
                                   int16_t api_version, int16_t error_code);

/* True if that template has a field where the error code goes. Some
 * responses (Fetch v0-v6, ListOffsets, OffsetCommit, CreateTopics, ...)
 * carry errors only per requested topic/partition; their template answer
 * is well-formed but says nothing, so the daemon disconnects instead. */
bool sl_kafka_error_response_carries_error(int16_t api_key,
                                           int16_t api_version);

#endif
