/*
 * Produce planning: the pure half of the produce path. For each partition
 * of a Produce request it decides, as a Kafka broker would, what to answer
 * and what to write: it validates the record batch (one per partition,
 * header against records, CRC, codec against the request version),
 * decompresses it within the request's bound, checks every record against
 * librdkafka's own size limit so that the batch is later enqueued whole
 * or not at all, and applies client-side idempotence (sluice/idem.h),
 * which says whether the batch is new, a duplicate, a retry of one in
 * flight, or refused, and which of a retry's records are upstream already.
 *
 * No sockets, no librdkafka, time passed in: the executor (produce.c)
 * hands the planned records to the upstream producer and reports their
 * deliveries to the idempotence table. The unit tests (test_plan.c) and
 * the request fuzzer drive it directly.
 *
 * Ownership: an sl_plan owns the decompressed record sections of one
 * request; an sl_plan_part's pointers point into the request frame or
 * into those, and live until sl_plan_free. Loop thread only (the
 * idempotence table is the loop's).
 */
#ifndef SLUICE_PLAN_H
#define SLUICE_PLAN_H

#include "sluice/idem.h"
#include "sluice/kafka.h"
#include "sluice/record.h"

/* librdkafka's size of a record for its message.max.bytes check
 * (rd_kafka_msg_max_wire_size, librdkafka 2.0): a v2 record's worst-case
 * overhead (length, attributes, timestamp and offset deltas, key and value
 * lengths, header count: 5+1+10+5+5+5+5 varint bytes), key, value, and
 * each header as serialized: name, value and their unsigned varint
 * lengths (a null value counts as empty). */
#define SL_RDK_MSG_V2_MAX_OVERHEAD 36

typedef struct sl_plan_env {
    int16_t version;         /* of the Produce request */
    size_t max_decompressed; /* per request (limits.max_decompressed_bytes) */
    size_t max_msg_bytes;    /* librdkafka message.max.bytes */
    sl_idem *idem;           /* NULL: no client-side idempotence */
    int64_t now_ms;          /* monotonic, for the idempotence table */
    int64_t wall_ms;         /* Unix time, for record timestamps */
} sl_plan_env;

/* What the upstream topic's configs make a broker refuse (NULL: not
 * known, nothing checked): record timestamps more than before_max_ms
 * behind now_ms or after_max_ms ahead of it (CreateTime topics; -1, no
 * timestamp, is exempt), INVALID_TIMESTAMP for the batch, as Kafka's
 * LogValidator answers; a record that alone makes a batch larger than
 * max_message_bytes, MESSAGE_TOO_LARGE. Refused here, they fail only the
 * client that sent them: upstream, librdkafka packs records of several
 * clients into one batch, which the broker refuses whole. */
typedef struct sl_plan_topic {
    bool log_append_time;
    int64_t before_max_ms, after_max_ms; /* INT64_MAX: unbounded */
    int64_t max_message_bytes;           /* INT64_MAX: unbounded */
} sl_plan_topic;

/* What the executor knows of a partition before it is planned. */
enum {
    SL_PLAN_WRITABLE = 0,      /* a known partition of a known topic */
    SL_PLAN_NOT_ALLOWED,       /* the policy's allow-list refuses the topic */
    SL_PLAN_UNKNOWN_TOPIC,     /* not in the metadata (yet) */
    SL_PLAN_UNKNOWN_PARTITION, /* the topic has no such partition */
};

typedef struct sl_plan_part {
    int16_t error;       /* Kafka error to answer, 0: none (yet) */
    const char *message; /* static text for v8+ answers */
    int idem;            /* SL_IDEM_* of an idempotent batch, else -1 */
    /* NEW: a fresh pending slot whose owner the executor sets; DUPLICATE:
     * the original answer (error 0, offset); PENDING: the original, in
     * flight (slot->owner is its partition). */
    sl_idem_slot *slot;
    sl_batch batch;
    const uint8_t *recs; /* records section, decompressed */
    size_t recs_len;
    size_t hdr_bytes;    /* serialized headers of its records */
    size_t decompressed; /* bytes this partition decompressed */
    bool send;           /* records to hand upstream */
} sl_plan_part;

typedef struct sl_plan {
    uint8_t **bufs; /* decompressed record sections, owned */
    size_t n_bufs;
    size_t decompressed; /* bytes, all partitions so far */
} sl_plan;

/* Request-level refusals a broker makes before looking at partitions:
 * Produce v0-v2, a transactional.id, acks other than -1, 0, 1. Returns the
 * Kafka error (0: none) and *msg. */
int16_t sl_plan_request(int16_t version, sl_kstr transactional_id,
                        int16_t acks, const char **msg);

/* Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], not "." or "..". */
bool sl_plan_topic_name_valid(sl_kstr name);

/* Plans one partition: where is what the executor knows of it (SL_PLAN_*;
 * for an unknown topic or partition, an idempotent batch holds its place
 * in the sequence, see sl_idem_expect). Fills *out. */
void sl_plan_partition(sl_plan *pl, const sl_plan_env *env, sl_kstr topic,
                       int32_t partition, sl_kstr records, int where,
                       const sl_plan_topic *limits, sl_plan_part *out);

/* The size of a batch holding rec alone, as librdkafka writes it
 * uncompressed: 61 bytes of batch header and the record. */
size_t sl_plan_lone_batch_size(const sl_record *rec, size_t headers_len);

/* librdkafka's size of a record, headers aside, and of one header. */
size_t sl_plan_record_size(const sl_record *rec);
size_t sl_plan_header_size(const sl_header *h);

void sl_plan_free(sl_plan *pl);

#endif
