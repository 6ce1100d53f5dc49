/* Produce planning, the pure half of the produce path (see
 * include/sluice/plan.h). */
#include "sluice/plan.h"

#include <string.h>

#include "sluice/msgset.h"

int16_t sl_plan_request(int16_t version, sl_kstr transactional_id,
                        int16_t acks, const char **msg)
{
    if (transactional_id.len >= 0) {
        *msg = "transactions are not supported by Sluice";
        return SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    }
    if (acks != 0 && acks != 1 && acks != -1) {
        *msg = "acks must be -1, 0 or 1";
        return SL_KERR_INVALID_REQUIRED_ACKS;
    }
    *msg = NULL;
    return 0;
}

bool sl_plan_topic_name_valid(sl_kstr n)
{
    if (n.len <= 0 || n.len > 249)
        return false;
    if ((n.len == 1 && n.p[0] == '.') ||
        (n.len == 2 && n.p[0] == '.' && n.p[1] == '.'))
        return false;
    for (int32_t i = 0; i < n.len; i++) {
        char ch = n.p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '-'))
            return false;
    }
    return true;
}

static size_t uvarint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t sl_plan_record_size(const sl_record *rec)
{
    return SL_RDK_MSG_V2_MAX_OVERHEAD + (size_t)SL_MAX(rec->key_len, 0) +
           (size_t)SL_MAX(rec->value_len, 0);
}

size_t sl_plan_header_size(const sl_header *h)
{
    size_t vlen = (size_t)SL_MAX(h->value_len, 0);
    return (size_t)h->key_len + vlen + uvarint_size((uint64_t)h->key_len) +
           uvarint_size(vlen);
}

/* Kafka's LogValidator.recordHasInvalidTimestamp, with Java's wrapping
 * long arithmetic (diff = now - ts; refused if diff > before or
 * -diff > after), so that extreme timestamps get the broker's answer
 * (topic_limits_differential@kafka). */
static bool timestamp_out_of_range(int64_t ts, int64_t now,
                                   const sl_plan_topic *lim)
{
    int64_t diff = (int64_t)((uint64_t)now - (uint64_t)ts);
    int64_t neg = (int64_t)(0 - (uint64_t)diff);
    return diff > lim->before_max_ms || neg > lim->after_max_ms;
}

size_t sl_plan_lone_batch_size(const sl_record *rec, size_t headers_len)
{
    size_t klen = (size_t)SL_MAX(rec->key_len, 0);
    size_t vlen = (size_t)SL_MAX(rec->value_len, 0);
    /* attributes, timestamp delta 0, offset delta 0, key and value with
     * their zigzag varint lengths (-1 is one byte), header count and the
     * headers as sent; then the record's own length varint. */
    size_t body = 1 + 1 + 1 + uvarint_size(rec->key_len < 0 ? 1 : klen * 2) +
                  klen + uvarint_size(rec->value_len < 0 ? 1 : vlen * 2) +
                  vlen + uvarint_size((uint64_t)rec->n_headers * 2) +
                  headers_len;
    return 61 + uvarint_size(body * 2) + body;
}

static bool refuse(sl_plan_part *out, int16_t err, const char *msg)
{
    out->error = err;
    out->message = msg;
    out->send = false;
    return false;
}

/* The answer to sl_batch_next's result rc (not 1: a batch is there). */
static bool batch_ok(int rc, const sl_batch *b, sl_plan_part *out)
{
    if (rc == SL_E_UNSUPPORTED)
        /* ProduceRequest.validateRecords (v3+; below v3, message sets of
         * magic 0/1 were converted before, see convert_legacy). */
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "Produce requests with version 3 and later are only "
                      "allowed to contain record batches with magic "
                      "version 2");
    if (rc == SL_E_CRC)
        return refuse(out, SL_KERR_CORRUPT_MESSAGE,
                      "record batch CRC mismatch");
    if (rc == 0 && b->base_offset != 0)
        /* LogValidator: a client's batch starts at offset 0. */
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "the baseOffset of a produced record batch must be 0");
    if (rc == SL_E_INVALID)
        /* Kafka's LogValidator words it as "invalid offset range" or
         * "inconsistent batch offset range and count of records". */
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "record batch has no records, or a lastOffsetDelta "
                      "other than its record count - 1");
    if (rc < 0)
        return refuse(out, SL_KERR_CORRUPT_MESSAGE, "malformed record batch");
    return true;
}

/* A Produce v0-v2 partition holding a message set of magic 0 or 1 (not a
 * record batch, which those versions may carry too): converted to one
 * record batch v2 in a buffer of the plan's, charged to the request's
 * decompression bound, which *records then names. Returns 1 when
 * converted, 0 for a set with no whole message (success, nothing to
 * write, as a broker answers it), -1 with out->error set. */
static int convert_legacy(sl_plan *pl, const sl_plan_env *env,
                          sl_kstr *records, bool *lat, sl_plan_part *out)
{
    size_t room = env->max_decompressed > pl->decompressed
                      ? env->max_decompressed - pl->decompressed
                      : 0;
    sl_msgset_info info;
    uint8_t *buf;
    size_t blen;
    int16_t err;
    sl_wr w;

    sl_wr_init(&w, (size_t)records->len + SL_BATCH_HEADER_SIZE);
    err = sl_msgset_to_batch((const uint8_t *)records->p,
                             (size_t)records->len, room, &w, &info);
    if (err != 0 || info.count == 0) {
        sl_wr_free(&w);
        if (err != 0)
            refuse(out, err, info.message);
        return err != 0 ? -1 : 0;
    }
    buf = sl_wr_release(&w, &blen);
    pl->bufs = sl_realloc(pl->bufs, (pl->n_bufs + 1) * sizeof(*pl->bufs));
    pl->bufs[pl->n_bufs++] = buf;
    pl->decompressed += blen;
    out->decompressed = blen;
    *records = (sl_kstr){(const char *)buf, (int32_t)blen};
    *lat = info.log_append_time;
    return 1;
}

/* Parses and validates the record set of one partition. As a broker does:
 * exactly one record batch (none, or a second one, is INVALID_RECORD), and
 * zstd only from Produce v7 (UNSUPPORTED_COMPRESSION_TYPE); below v3, a
 * message set of magic 0/1 instead, converted first (convert_legacy).
 * False with out->error set. */
static bool parse_batch(sl_plan *pl, const sl_plan_env *env, sl_kstr records,
                        const sl_plan_topic *lim, sl_plan_part *out)
{
    sl_batch *b = &out->batch, next;
    sl_rd r, rr;
    bool lat = false;
    int rc;

    /* Below v3, anything but a record batch is a legacy message set; an
     * empty or cut one means nothing to write, and success (out->error
     * stays 0 with nothing to send). */
    if (env->version < 3 && records.len >= 0 &&
        (records.len <= SL_MSGSET_MAGIC_OFFSET ||
         records.p[SL_MSGSET_MAGIC_OFFSET] < 2) &&
        convert_legacy(pl, env, &records, &lat, out) <= 0)
        return false;
    if (records.len <= 0) /* a null one has no pointer to read from */
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "a partition of a Produce request carries exactly one "
                      "record batch; this one has none");
    r = sl_rd_init(records.p, (size_t)records.len);
    rc = sl_batch_next(&r, b);
    if (rc == 1)
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "Produce v3 and later carry exactly one record batch "
                      "per partition; this one has none");
    if (!batch_ok(rc, b, out))
        return false;
    if (b->attributes & SL_BATCH_ATTR_LOG_APPEND_TIME)
        lat = true;
    if (b->attributes & (SL_BATCH_ATTR_TRANSACTIONAL | SL_BATCH_ATTR_CONTROL))
        return refuse(out, SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                      "transactional batches are not supported by Sluice");
    if (sl_batch_codec(b) == SL_CODEC_ZSTD && env->version < 7)
        return refuse(out, SL_KERR_UNSUPPORTED_COMPRESSION_TYPE,
                      "zstd-compressed batches need Produce v7 or later");
    if (sl_batch_codec(b) != SL_CODEC_NONE) {
        /* The bound holds for the request: one request may name a
         * partition many times, each with a bomb. */
        size_t room = env->max_decompressed > pl->decompressed
                          ? env->max_decompressed - pl->decompressed
                          : 0;
        uint8_t *buf;
        size_t blen;
        rc = room == 0 ? SL_E_TOO_LARGE
                       : sl_decompress(sl_batch_codec(b), b->records,
                                       b->records_len, room, &buf, &blen);
        if (rc == SL_E_TOO_LARGE)
            return refuse(out, SL_KERR_MESSAGE_TOO_LARGE,
                          "the request's batches decompress to more than "
                          "limits.max_decompressed_bytes");
        if (rc < 0)
            /* Kafka 4.1.1 fails the append with an exception of no API
             * error: UNKNOWN_SERVER_ERROR (broker_refusals_differential). */
            return refuse(out, SL_KERR_UNKNOWN_SERVER_ERROR,
                          "batch does not decompress");
        pl->bufs = sl_realloc(pl->bufs, (pl->n_bufs + 1) * sizeof(*pl->bufs));
        pl->bufs[pl->n_bufs++] = buf;
        pl->decompressed += blen;
        out->decompressed = blen;
        out->recs = buf;
        out->recs_len = blen;
    } else {
        out->recs = b->records;
        out->recs_len = b->records_len;
    }
    /* Validate every record now, so that producing cannot stop halfway
     * through a batch on bad input, and check it against librdkafka's
     * size limit, which would refuse it at enqueue (rd_kafka_msg_new0)
     * after the records before it were enqueued. */
    rr = sl_rd_init(out->recs, out->recs_len);
    for (int32_t i = 0; i < b->records_count; i++) {
        sl_record rec;
        sl_header h;
        sl_rd hr;
        size_t size, hsize = 0;
        int64_t ts;
        /* A broker refuses records it cannot read as INVALID_RECORD
         * (DefaultRecord: "Found invalid record structure"); only a bad
         * CRC is CORRUPT_MESSAGE (broker_refusals_differential). */
        if (sl_record_next(&rr, &rec) != 0)
            return refuse(out, SL_KERR_INVALID_RECORD, "malformed record");
        hr = sl_rd_init(rec.headers, rec.headers_len);
        for (int32_t j = 0; j < rec.n_headers; j++) {
            if (sl_header_next(&hr, &h) != 0)
                return refuse(out, SL_KERR_INVALID_RECORD,
                              "malformed record header");
            hsize += sl_plan_header_size(&h);
        }
        size = sl_plan_record_size(&rec) + hsize;
        if (size > env->max_msg_bytes)
            return refuse(out, SL_KERR_MESSAGE_TOO_LARGE,
                          "record larger than the upstream message.max.bytes");
        out->hdr_bytes += hsize;
        ts = (int64_t)((uint64_t)b->base_timestamp +
                       (uint64_t)rec.timestamp_delta);
        /* LogValidator.validateTimestamp: a producer's LogAppendTime flag
         * is refused unless a CreateTime topic has a timestamp to check
         * instead (a topic whose configs are not read yet counts as
         * CreateTime, Kafka's default). */
        if (lat && ((lim != NULL && lim->log_append_time) || ts == -1))
            return refuse(out, SL_KERR_INVALID_TIMESTAMP,
                          "Producer should not set timestamp type to "
                          "LogAppendTime");
        if (lim != NULL) {
            if (!lim->log_append_time && ts != -1 &&
                timestamp_out_of_range(ts, env->wall_ms, lim))
                return refuse(out, SL_KERR_INVALID_TIMESTAMP,
                              "record timestamp out of the range the "
                              "topic's message.timestamp.before.max.ms and "
                              "after.max.ms allow");
            if ((int64_t)sl_plan_lone_batch_size(&rec, rec.headers_len) >
                lim->max_message_bytes)
                return refuse(out, SL_KERR_MESSAGE_TOO_LARGE,
                              "record larger than the topic's "
                              "max.message.bytes");
        }
    }
    if (sl_rd_left(&rr) != 0)
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "record count does not match the batch");
    /* Whatever follows the batch: nothing, or a refusal. */
    rc = sl_batch_next(&r, &next);
    if (rc == 0)
        return refuse(out, SL_KERR_INVALID_RECORD,
                      "a partition of a Produce request carries exactly one "
                      "record batch; this one has more");
    return rc == 1 || batch_ok(rc, &next, out);
}

/* A partition refused with a retriable error before the idempotence check
 * (the metadata does not know the topic or partition yet, typically just
 * after a start): an idempotent batch will be retried, so its producer's
 * later batches must not start tracking past it (see sl_idem_expect).
 * Only the first batch's header is read. */
static void hold_place(const sl_plan_env *env, sl_kstr topic,
                       int32_t partition, sl_kstr records)
{
    sl_rd r;
    sl_batch b;

    if (env->idem == NULL || records.len <= 0 || topic.len <= 0)
        return;
    r = sl_rd_init(records.p, (size_t)records.len);
    if (sl_batch_next(&r, &b) == 0 && b.producer_id >= 0)
        sl_idem_expect(env->idem, b.producer_id, b.producer_epoch, topic.p,
                       (size_t)topic.len, partition, b.base_sequence,
                       env->now_ms);
}

/* Client-side idempotence for the parsed batch. */
static void check_idempotence(const sl_plan_env *env, sl_kstr topic,
                              int32_t partition, sl_plan_part *out)
{
    sl_batch *b = &out->batch;
    int16_t kerr;
    int32_t last;

    if (b->producer_id < 0 || env->idem == NULL)
        return;
    last = (int32_t)(((int64_t)b->base_sequence + b->last_offset_delta) %
                     ((int64_t)INT32_MAX + 1));
    out->idem = sl_idem_check(env->idem, b->producer_id, b->producer_epoch,
                              topic.p, (size_t)topic.len, partition,
                              b->base_sequence, last, env->now_ms,
                              &out->slot, &kerr);
    switch (out->idem) {
    case SL_IDEM_NEW:
        /* A retry whose records are all upstream came back DUPLICATE;
         * one with some upstream sends the rest. */
        break;
    case SL_IDEM_DUPLICATE:
    case SL_IDEM_PENDING:
        out->send = false;
        break;
    default:
        refuse(out, kerr,
               kerr == SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER
                   ? "out of order sequence number"
                   : "invalid producer epoch");
        break;
    }
}

void sl_plan_partition(sl_plan *pl, const sl_plan_env *env, sl_kstr topic,
                       int32_t partition, sl_kstr records, int where,
                       const sl_plan_topic *limits, sl_plan_part *out)
{
    memset(out, 0, sizeof(*out));
    out->idem = -1;
    if (where == SL_PLAN_NOT_ALLOWED) {
        refuse(out, SL_KERR_TOPIC_AUTHORIZATION_FAILED,
               "topic not allowed for this connector by policy");
        return;
    }
    if (!sl_plan_topic_name_valid(topic)) {
        refuse(out, SL_KERR_INVALID_TOPIC_EXCEPTION, "invalid topic name");
        return;
    }
    if (where == SL_PLAN_UNKNOWN_TOPIC ||
        where == SL_PLAN_UNKNOWN_PARTITION) {
        refuse(out, SL_KERR_UNKNOWN_TOPIC_OR_PARTITION,
               where == SL_PLAN_UNKNOWN_TOPIC ? "unknown topic"
                                              : "unknown partition");
        hold_place(env, topic, partition, records);
        return;
    }
    if (!parse_batch(pl, env, records, limits, out))
        return;
    out->send = true;
    check_idempotence(env, topic, partition, out);
}

void sl_plan_free(sl_plan *pl)
{
    for (size_t i = 0; i < pl->n_bufs; i++)
        sl_free(pl->bufs[i]);
    sl_free(pl->bufs);
    pl->bufs = NULL;
    pl->n_bufs = 0;
}
