/*
 * Produce: validate every batch of a partition, apply client-side
 * idempotence, hand each record to the upstream producer without copying
 * it, and answer once every record of the request has settled upstream.
 *
 * Ownership: the sl_produce belongs to its request (req->produce) and
 * lives until the last delivery report of its records and of any
 * duplicate it waits on; each record handed to librdkafka carries an
 * sl_pmsg (its partition state, struct ppart, which owns the array, and
 * its index in the batch) as the message opaque and points into the
 * request frame or a decompressed buffer owned here. Loop thread only.
 *
 * A broker appends a batch whole or not at all. Sluice checks everything
 * librdkafka would refuse a record for (its exact size formula; its
 * queue is larger than the memory budget admits) before the first record
 * of a batch is enqueued, so a batch is enqueued whole or refused whole.
 * Upstream, parts of a batch can still fail while others are written (it
 * may span several upstream requests): for an idempotent client the
 * idempotence table records which records are upstream, and the client's
 * retry sends only the others (see sluice/idem.h). A non-idempotent
 * client's retry of a partly written batch duplicates the written part,
 * as its retry of a batch whose answer was lost does behind a broker.
 */
#include "sluice/record.h"
#include "sluice/server.h"

#include <string.h>

typedef struct ppart ppart;

struct ppart {
    sl_produce *pr;
    int32_t index;
    int16_t error;
    const char *error_message; /* static text for v8+ answers */
    int64_t base_offset;       /* lowest upstream offset seen */
    size_t pending;            /* records upstream + duplicates waited on */
    bool settled;
    /* Idempotence: slots of batches first sent in this partition (one
     * per batch, almost always one). */
    sl_idem_slot **slots;
    size_t n_slots;
    /* Retries of our in-flight batches, waiting for our answer. */
    ppart *waiters;
    ppart *wnext;
    bool waiting; /* on another request's in-flight original */
    sl_broker_stats *leader; /* upstream leader at hand-off, for stats */
    sl_pmsg *msgs;  /* opaques of the records handed upstream, owned */
    size_t n_maybe; /* failed records librdkafka says may be written */
};

typedef struct ptopic {
    sl_kstr name;
    int32_t n_parts;
    ppart *parts;
} ptopic;

struct sl_produce {
    sl_server *srv;
    sl_req *req;
    int16_t acks;
    int16_t version;
    int32_t n_topics;
    ptopic *topics;
    size_t unsettled; /* partitions not settled */
    uint8_t **bufs;   /* decompressed record sections, owned */
    size_t n_bufs;
    size_t extra_mem; /* decompressed bytes etc. charged to the budget */
    size_t decompressed; /* bytes decompressed for this request */
    uint64_t sent_bytes;   /* record batch bytes handed upstream */
    uint64_t sent_records;
    uint32_t throttle_ms;  /* throttle_time_ms of the answer */
    /* Bytes handed upstream by partition leader, for pressure control. */
    sl_policy_broker_bytes brk_inline[8], *brk;
    size_t n_brk, cap_brk;
};

/* Adds n bytes led by broker id to the request's per-broker tally. */
static void tally_broker(sl_produce *pr, int32_t id, uint64_t n)
{
    for (size_t i = 0; i < pr->n_brk; i++)
        if (pr->brk[i].broker == id) {
            pr->brk[i].bytes += n;
            return;
        }
    if (pr->n_brk == pr->cap_brk) {
        size_t cap = pr->cap_brk * 2;
        sl_policy_broker_bytes *v = sl_malloc(cap * sizeof(*v));
        memcpy(v, pr->brk, pr->n_brk * sizeof(*v));
        if (pr->brk != pr->brk_inline)
            sl_free(pr->brk);
        pr->brk = v;
        pr->cap_brk = cap;
    }
    pr->brk[pr->n_brk].broker = id;
    pr->brk[pr->n_brk++].bytes = n;
}

/* One parsed batch waiting to be produced. */
typedef struct pbatch {
    sl_batch b;
    const uint8_t *recs; /* decompressed (or wire) records section */
    size_t recs_len;
    bool send;
    sl_idem_slot *slot; /* NEW idempotent batch: records already upstream */
    size_t hdr_bytes;   /* serialized headers of its records */
} pbatch;

/* librdkafka's size of a record for its message.max.bytes check
 * (rd_kafka_msg_max_wire_size, librdkafka 2.0): a v2 record's worst-case
 * overhead (length, attributes, timestamp and offset deltas, key and value
 * lengths, header count: 5+1+10+5+5+5+5 varint bytes), key, value, and
 * each header as serialized: name, value and their unsigned varint
 * lengths (a null value counts as empty). */
#define RDK_MSG_V2_MAX_OVERHEAD 36

static size_t uvarint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t upstream_msg_size(const sl_record *rec)
{
    return RDK_MSG_V2_MAX_OVERHEAD + (size_t)SL_MAX(rec->key_len, 0) +
           (size_t)SL_MAX(rec->value_len, 0);
}

static size_t upstream_header_size(const sl_header *h)
{
    size_t vlen = (size_t)SL_MAX(h->value_len, 0);
    return (size_t)h->key_len + vlen + uvarint_size((uint64_t)h->key_len) +
           uvarint_size(vlen);
}

static bool topic_name_valid(sl_kstr n)
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

int16_t sl__produce_map_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return SL_KERR_REQUEST_TIMED_OUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return SL_KERR_MESSAGE_TOO_LARGE;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        return SL_KERR_TOPIC_AUTHORIZATION_FAILED;
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return SL_KERR_RECORD_LIST_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
        return SL_KERR_CORRUPT_MESSAGE;
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        return (int16_t)err;
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
        return SL_KERR_KAFKA_STORAGE_ERROR;
    default:
        /* Upstream outages, purges at shutdown, a fatal upstream producer,
         * and upstream idempotence errors (which belong to Sluice's own
         * producer id, not the client's): retriable for the client.
         * NOT_ENOUGH_REPLICAS rather than BROKER_NOT_AVAILABLE, which the
         * Java client does not retry. */
        return SL_KERR_NOT_ENOUGH_REPLICAS;
    }
}

static void charge_extra(sl_produce *pr, size_t n)
{
    sl_req *req = pr->req;
    pr->extra_mem += n;
    req->mem += n;
    if (req->conn)
        req->conn->inflight_bytes += n;
    sl__mem_charge(pr->srv, n);
}

static void produce_free(sl_produce *pr)
{
    for (int32_t t = 0; t < pr->n_topics; t++) {
        for (int32_t p = 0; p < pr->topics[t].n_parts; p++) {
            sl_free(pr->topics[t].parts[p].slots);
            sl_free(pr->topics[t].parts[p].msgs);
        }
        sl_free(pr->topics[t].parts);
    }
    sl_free(pr->topics);
    for (size_t i = 0; i < pr->n_bufs; i++)
        sl_free(pr->bufs[i]);
    sl_free(pr->bufs);
    if (pr->brk != pr->brk_inline)
        sl_free(pr->brk);
    sl_free(pr);
}

/* Encodes the answer and hands the request back to its connection. */
static void finish(sl_produce *pr)
{
    sl_req *req = pr->req;
    uint8_t *buf = NULL;
    size_t len = 0;
    bool any_error = false;

    for (int32_t t = 0; t < pr->n_topics; t++)
        for (int32_t p = 0; p < pr->topics[t].n_parts; p++) {
            int16_t e = pr->topics[t].parts[p].error;
            if (e == 0)
                continue;
            any_error = true;
            /* Errors by connector for metrics (the connection may be gone;
             * then the answer goes nowhere and is not counted). */
            if (req->conn != NULL) {
                const sl_policy_account *a = req->conn->acct;
                sl__admin_count_error(
                    pr->srv,
                    a == NULL ? "(none)"
                    : sl_policy_account_is_default(a)
                        ? "(default)"
                        : sl_policy_account_name(a),
                    a ? sl_policy_account_class_name(a) : "", e);
            }
        }

    if (pr->acks != 0) {
        sl_kafka_ProduceResponse resp = {0};
        sl_kafka_ProduceTopicResponse *tr;
        sl_wr w;
        size_t start;

        resp.n_topics = pr->n_topics;
        resp.throttle_time_ms = (int32_t)pr->throttle_ms;
        tr = resp.topics = sl_calloc((size_t)pr->n_topics, sizeof(*tr));
        for (int32_t t = 0; t < pr->n_topics; t++) {
            ptopic *pt = &pr->topics[t];
            tr[t].name = pt->name;
            tr[t].n_partitions = pt->n_parts;
            tr[t].partitions =
                sl_calloc((size_t)pt->n_parts, sizeof(*tr[t].partitions));
            for (int32_t p = 0; p < pt->n_parts; p++) {
                ppart *pp = &pt->parts[p];
                sl_kafka_ProducePartitionResponse *r = &tr[t].partitions[p];
                r->index = pp->index;
                r->error_code = pp->error;
                r->base_offset = pp->error ? -1 : pp->base_offset;
                r->log_append_time_ms = -1;
                r->log_start_offset = -1;
                r->error_message = pp->error_message
                                       ? SL_KSTR(pp->error_message)
                                       : SL_KSTR_NULL;
            }
        }
        sl_wr_init(&w, 128 + 64 * (size_t)pr->n_topics);
        start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_PRODUCE, pr->version,
                                         req->hdr.correlation_id);
        sl_kafka_ProduceResponse_encode(&w, pr->version, &resp);
        sl_kafka_frame_end(&w, start);
        buf = sl_wr_release(&w, &len);
        for (int32_t t = 0; t < pr->n_topics; t++)
            sl_free(tr[t].partitions);
        sl_free(tr);
    } else if (any_error) {
        /* acks=0 has no answer: like a broker, close the connection so
         * the client learns something failed. */
        req->close_after = true;
        sl_warn("conn %llu: acks=0 produce had partition errors; closing "
                "the connection as a broker would",
                req->conn ? (unsigned long long)req->conn->id : 0ULL);
    }
    req->produce = NULL;
    produce_free(pr);
    sl__req_answer(req, buf, len);
}

static void part_settle(ppart *pp);

static void part_maybe_settle(ppart *pp)
{
    if (pp->pending == 0 && !pp->settled)
        part_settle(pp);
}

/* Every record and awaited duplicate of a partition has an outcome. */
static void part_settle(ppart *pp)
{
    sl_produce *pr = pp->pr;
    ppart *w, *wnext;

    pp->settled = true;
    if (pp->n_maybe > 0)
        sl_warn("%zu record(s) of a failed batch may have been written "
                "upstream (librdkafka: possibly persisted); the client's "
                "retry sends them again",
                pp->n_maybe);
    for (size_t i = 0; i < pp->n_slots; i++) {
        sl_idem_slot *s = pp->slots[i];
        int16_t e;
        /* A retry's records written by an earlier attempt count for its
         * base offset too. */
        if (s->owner == pp && s->offset >= 0 && s->offset < pp->base_offset)
            pp->base_offset = s->offset;
        e = sl_idem_complete(pr->srv->idem, s, pp, pp->error,
                             pp->base_offset == INT64_MAX ? -1
                                                          : pp->base_offset);
        if (e != 0 && pp->error == 0) {
            pp->error = e;
            pp->error_message = "an earlier batch of this producer and "
                                "partition failed";
        }
    }
    if (pp->error == 0 && pp->base_offset == INT64_MAX)
        pp->base_offset = -1; /* nothing produced (e.g. all duplicates) */
    /* Retries that waited on us get our answer. */
    for (w = pp->waiters; w; w = wnext) {
        wnext = w->wnext;
        w->wnext = NULL;
        if (w->error == 0) {
            w->error = pp->error;
            w->error_message = pp->error_message;
            if (pp->base_offset >= 0 && pp->base_offset < w->base_offset)
                w->base_offset = pp->base_offset;
        }
        w->pending--;
        part_maybe_settle(w);
    }
    pp->waiters = NULL;
    if (--pr->unsettled == 0)
        finish(pr);
}

void sl__produce_delivered(sl_server *srv, void *opaque,
                           rd_kafka_resp_err_t err, int64_t offset, int status)
{
    const sl_pmsg *pm = opaque;
    ppart *pp = pm->part;

    if (pp->leader)
        pp->leader->inflight--;
    if (err == 0 && pp->n_slots > 0)
        sl_idem_record_upstream(pp->slots[0], pp, pm->index, offset);
    if (err && status == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED)
        pp->n_maybe++;
    if (err) {
        if (pp->error == 0) {
            pp->error = sl__produce_map_error(err);
            pp->error_message = "upstream delivery failed";
            sl_debug("upstream delivery failed: %s -> %s",
                     rd_kafka_err2name(err), sl_kafka_err_name(pp->error));
        }
    } else if (offset >= 0 && offset < pp->base_offset) {
        pp->base_offset = offset;
    }
    pp->pending--;
    part_maybe_settle(pp);
}

static void set_error(ppart *pp, int16_t err, const char *msg)
{
    if (pp->error == 0) {
        pp->error = err;
        pp->error_message = msg;
    }
}

/* Parses and validates the record set of one partition into *out (grown
 * as needed). As a broker does for Produce v3+ (every version Sluice
 * serves): exactly one record batch (none, or a second one, is
 * INVALID_RECORD), and zstd only from Produce v7
 * (UNSUPPORTED_COMPRESSION_TYPE). Returns the number of batches (1), or -1
 * with pp->error set. */
static int parse_batches(sl_produce *pr, ppart *pp, sl_kstr records,
                         pbatch **out, size_t *cap)
{
    const sl_config *cfg = pr->srv->cfg;
    sl_rd r = sl_rd_init(records.p, records.len < 0 ? 0 : records.len);
    int n = 0, rc;

    if (records.len <= 0) {
        set_error(pp, SL_KERR_INVALID_RECORD,
                  "Produce v3 and later carry exactly one record batch per "
                  "partition; this one has none");
        return -1;
    }
    for (;;) {
        pbatch *pb;
        sl_rd rr;
        if ((size_t)n == *cap) {
            *cap = *cap ? *cap * 2 : 4;
            *out = sl_realloc(*out, *cap * sizeof(**out));
        }
        pb = &(*out)[n];
        memset(pb, 0, sizeof(*pb));
        rc = sl_batch_next(&r, &pb->b);
        if (rc == 1)
            break;
        if (rc == 0 && n > 0) {
            set_error(pp, SL_KERR_INVALID_RECORD,
                      "Produce v3 and later carry exactly one record batch per "
                      "partition; this one has more");
            return -1;
        }
        if (rc == SL_E_UNSUPPORTED) {
            set_error(pp, SL_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT,
                      "only record batch format v2 (magic 2) is supported");
            return -1;
        }
        if (rc == SL_E_CRC) {
            set_error(pp, SL_KERR_CORRUPT_MESSAGE, "record batch CRC mismatch");
            return -1;
        }
        if (rc == 0 && pb->b.base_offset != 0) {
            /* LogValidator: a client's batch starts at offset 0. */
            set_error(pp, SL_KERR_INVALID_RECORD,
                      "the baseOffset of a produced record batch must be 0");
            return -1;
        }
        if (rc == SL_E_INVALID) {
            /* Kafka's LogValidator words it as "invalid offset range" or
             * "inconsistent batch offset range and count of records". */
            set_error(pp, SL_KERR_INVALID_RECORD,
                      "record batch has no records, or a lastOffsetDelta "
                      "other than its record count - 1");
            return -1;
        }
        if (rc < 0) {
            set_error(pp, SL_KERR_CORRUPT_MESSAGE, "malformed record batch");
            return -1;
        }
        if (pb->b.attributes &
            (SL_BATCH_ATTR_TRANSACTIONAL | SL_BATCH_ATTR_CONTROL)) {
            set_error(pp, SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                      "transactional batches are not supported by Sluice");
            return -1;
        }
        if (sl_batch_codec(&pb->b) == SL_CODEC_ZSTD && pr->version < 7) {
            set_error(pp, SL_KERR_UNSUPPORTED_COMPRESSION_TYPE,
                      "zstd-compressed batches need Produce v7 or later");
            return -1;
        }
        if (sl_batch_codec(&pb->b) != SL_CODEC_NONE) {
            uint8_t *buf;
            size_t blen;
            /* The limit holds for the request: one request may name a
             * partition many times, each with a bomb. */
            size_t room = (size_t)cfg->max_decompressed_bytes >
                                  pr->decompressed
                              ? (size_t)cfg->max_decompressed_bytes -
                                    pr->decompressed
                              : 0;
            rc = room == 0 ? SL_E_TOO_LARGE
                           : sl_decompress(sl_batch_codec(&pb->b),
                                           pb->b.records, pb->b.records_len,
                                           room, &buf, &blen);
            if (rc == SL_E_TOO_LARGE) {
                set_error(pp, SL_KERR_MESSAGE_TOO_LARGE,
                          "the request's batches decompress to more than "
                          "limits.max_decompressed_bytes");
                return -1;
            }
            pr->decompressed += blen;
            if (rc < 0) {
                set_error(pp, SL_KERR_CORRUPT_MESSAGE,
                          "batch does not decompress");
                return -1;
            }
            pr->bufs = sl_realloc(pr->bufs,
                                  (pr->n_bufs + 1) * sizeof(*pr->bufs));
            pr->bufs[pr->n_bufs++] = buf;
            charge_extra(pr, blen);
            pb->recs = buf;
            pb->recs_len = blen;
        } else {
            pb->recs = pb->b.records;
            pb->recs_len = pb->b.records_len;
        }
        /* Validate every record now, so that producing cannot stop
         * halfway through a partition on bad input. */
        rr = sl_rd_init(pb->recs, pb->recs_len);
        for (int32_t i = 0; i < pb->b.records_count; i++) {
            sl_record rec;
            sl_header h;
            sl_rd hr;
            size_t size;
            /* A broker refuses records it cannot read as INVALID_RECORD
             * (DefaultRecord: "Found invalid record structure"); only a
             * bad CRC is CORRUPT_MESSAGE (broker_refusals_differential). */
            if (sl_record_next(&rr, &rec) != 0) {
                set_error(pp, SL_KERR_INVALID_RECORD, "malformed record");
                return -1;
            }
            size = upstream_msg_size(&rec);
            hr = sl_rd_init(rec.headers, rec.headers_len);
            for (int32_t j = 0; j < rec.n_headers; j++) {
                if (sl_header_next(&hr, &h) != 0) {
                    set_error(pp, SL_KERR_INVALID_RECORD,
                              "malformed record header");
                    return -1;
                }
                size += upstream_header_size(&h);
            }
            /* librdkafka refuses such a record at enqueue (its
             * rd_kafka_msg_new0): refuse the batch before any of it is. */
            if (size > pr->srv->up.max_msg_bytes) {
                set_error(pp, SL_KERR_MESSAGE_TOO_LARGE,
                          "record larger than the upstream message.max.bytes");
                return -1;
            }
            pb->hdr_bytes += size - upstream_msg_size(&rec);
        }
        if (sl_rd_left(&rr) != 0) {
            set_error(pp, SL_KERR_INVALID_RECORD,
                      "record count does not match the batch");
            return -1;
        }
        n++;
    }
    if (n == 0) {
        set_error(pp, SL_KERR_INVALID_RECORD,
                  "Produce v3 and later carry exactly one record batch per "
                  "partition; this one has none");
        return -1;
    }
    return n;
}

/* A partition refused with a retriable error before the idempotence check
 * (Sluice's metadata does not know the topic or partition yet, typically
 * just after a start): an idempotent batch will be retried, so its
 * producer's later batches must not start tracking past it (see
 * sl_idem_expect). Only the first batch's header is read. */
static void idem_hold_place(sl_produce *pr, ppart *pp, sl_kstr topic,
                            sl_kstr records)
{
    sl_rd r;
    sl_batch b;

    if (records.len <= 0 || topic.len <= 0)
        return;
    r = sl_rd_init(records.p, (size_t)records.len);
    if (sl_batch_next(&r, &b) == 0 && b.producer_id >= 0)
        sl_idem_expect(pr->srv->idem, b.producer_id, b.producer_epoch,
                       topic.p, (size_t)topic.len, pp->index, b.base_sequence,
                       (int64_t)sl__now_ms(pr->srv));
}

/* Applies client-side idempotence to the parsed batches of a partition.
 * Returns false if the partition is rejected (pp->error set). */
static bool check_idempotence(sl_produce *pr, ppart *pp, sl_kstr topic,
                              pbatch *pbs, int n)
{
    sl_server *srv = pr->srv;
    uint64_t now = sl__now_ms(srv);

    for (int i = 0; i < n; i++) {
        sl_batch *b = &pbs[i].b;
        sl_idem_slot *slot;
        int16_t kerr;
        int32_t last;
        int rc;

        pbs[i].send = true;
        if (b->producer_id < 0)
            continue;
        last = (int32_t)(((int64_t)b->base_sequence + b->last_offset_delta) %
                         ((int64_t)INT32_MAX + 1));
        if (!sl_idem_issued(srv->idem, b->producer_id))
            sl_debug("batch names producer id %lld, not issued by this "
                     "Sluice (from before a restart, or another instance's)",
                     (long long)b->producer_id);
        rc = sl_idem_check(srv->idem, b->producer_id, b->producer_epoch,
                           topic.p, (size_t)topic.len, pp->index,
                           b->base_sequence, last, (int64_t)now, &slot, &kerr);
        switch (rc) {
        case SL_IDEM_NEW:
            slot->owner = pp;
            pbs[i].slot = slot;
            pp->slots = sl_realloc(pp->slots,
                                   (pp->n_slots + 1) * sizeof(*pp->slots));
            pp->slots[pp->n_slots++] = slot;
            break;
        case SL_IDEM_DUPLICATE:
            pbs[i].send = false;
            if (slot->offset >= 0 && slot->offset < pp->base_offset)
                pp->base_offset = slot->offset;
            sl_debug("duplicate batch pid %lld seq %d: original answer "
                     "offset %lld",
                     (long long)b->producer_id, b->base_sequence,
                     (long long)slot->offset);
            break;
        case SL_IDEM_PENDING: {
            ppart *orig = slot->owner;
            pbs[i].send = false;
            if (pp->waiting || orig == pp) {
                /* Two in-flight originals in one partition of one retry:
                 * too odd to track; the client retries again. */
                set_error(pp, SL_KERR_REQUEST_TIMED_OUT,
                          "retry of a batch still in flight");
                break;
            }
            pp->waiting = true;
            pp->pending++;
            pp->wnext = orig->waiters;
            orig->waiters = pp;
            break;
        }
        default:
            set_error(pp, kerr,
                      kerr == SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER
                          ? "out of order sequence number"
                      : kerr == SL_KERR_DUPLICATE_SEQUENCE_NUMBER
                          ? "duplicate sequence number"
                          : "invalid producer epoch");
            /* Nothing of this partition goes upstream: give back the
             * sequences reserved for earlier batches in it. */
            for (size_t s = 0; s < pp->n_slots; s++)
                sl_idem_complete(srv->idem, pp->slots[s], pp, kerr, -1);
            pp->n_slots = 0;
            return false;
        }
    }
    return true;
}

/* Hands one partition's records to librdkafka. */
static void send_records(sl_produce *pr, ppart *pp, sl_topic *t, pbatch *pbs,
                         int n)
{
    sl_upstream *up = &pr->srv->up;
    rd_kafka_topic_t *rkt = sl__upstream_topic(up, t);

    pp->leader = sl__upstream_broker(
        up, pp->index < t->n_partitions && t->leaders ? t->leaders[pp->index]
                                                      : -1);

    for (int i = 0; i < n && pp->error == 0; i++) {
        int32_t count = pbs[i].b.records_count;
        sl_rd rr;
        if (!pbs[i].send)
            continue;
        pr->sent_bytes += pbs[i].b.raw_len;
        tally_broker(pr, pp->leader->id, pbs[i].b.raw_len);
        pr->sent_records += (uint64_t)count;
        /* One batch per partition (parse_batches): one opaque array. The
         * rd_kafka_msg_t of each record and its headers are charged to
         * the memory budget with the opaques. */
        pp->msgs = sl_malloc((size_t)count * sizeof(*pp->msgs));
        charge_extra(pr, (size_t)count * (sizeof(*pp->msgs) +
                                          SL_UPSTREAM_MSG_OVERHEAD) +
                             pbs[i].hdr_bytes);
        rr = sl_rd_init(pbs[i].recs, pbs[i].recs_len);
        for (int32_t k = 0; k < count; k++) {
            sl_record rec;
            rd_kafka_headers_t *hdrs = NULL;
            rd_kafka_resp_err_t err;

            (void)sl_record_next(&rr, &rec); /* validated before */
            if (pbs[i].slot && sl_idem_slot_upstream(pbs[i].slot, k))
                continue; /* written by an earlier attempt */
            pp->msgs[k].part = pp;
            pp->msgs[k].index = k;
            if (rec.n_headers > 0) {
                sl_rd hr = sl_rd_init(rec.headers, rec.headers_len);
                hdrs = rd_kafka_headers_new((size_t)rec.n_headers);
                for (int32_t j = 0; j < rec.n_headers; j++) {
                    sl_header h;
                    (void)sl_header_next(&hr, &h);
                    rd_kafka_header_add(hdrs, (const char *)h.key, h.key_len,
                                        h.value, h.value_len < 0 ? 0 : h.value_len);
                }
            }
            /* No RD_KAFKA_MSG_F_COPY: key and value stay in the request
             * frame or decompressed buffer until the delivery report. An
             * empty key/value has a non-NULL pointer, a null one NULL, so
             * librdkafka keeps the distinction. */
            err = rd_kafka_producev(
                up->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(pp->index),
                RD_KAFKA_V_KEY(rec.key, rec.key_len < 0 ? 0 : (size_t)rec.key_len),
                RD_KAFKA_V_VALUE((void *)rec.value,
                                 rec.value_len < 0 ? 0 : (size_t)rec.value_len),
                RD_KAFKA_V_TIMESTAMP(pbs[i].b.base_timestamp +
                                     rec.timestamp_delta),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&pp->msgs[k]),
                RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
            if (err) {
                if (hdrs)
                    rd_kafka_headers_destroy(hdrs);
                set_error(pp, sl__produce_map_error(err),
                          "upstream refused the record");
                sl_warn("upstream refused a record for %s [%d]: %s",
                        t->name, pp->index, rd_kafka_err2str(err));
                break;
            }
            up->outstanding++;
            if (pp->leader->inflight++ == 0)
                pp->leader->busy_since_ms = sl__now_ms(pr->srv);
            pp->pending++;
        }
    }
}

void sl__produce_handle(sl_server *srv, sl_req *req)
{
    sl_kafka_ProduceRequest body;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_produce *pr;
    pbatch *pbs = NULL;
    size_t pbs_cap = 0;
    const char *global_msg = NULL;
    int16_t global_err = 0;

    if (sl_kafka_ProduceRequest_decode(&r, req->hdr.api_version, &body) != 0) {
        sl_warn("conn %llu %s (client.id \"%s\"): malformed Produce v%d "
                "body; disconnecting",
                (unsigned long long)req->conn->id, req->conn->peer,
                req->conn->client_id, req->hdr.api_version);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }

    pr = sl_calloc(1, sizeof(*pr));
    pr->brk = pr->brk_inline;
    pr->cap_brk = SL_ARRAY_SIZE(pr->brk_inline);
    pr->srv = srv;
    pr->req = req;
    pr->acks = body.acks;
    pr->version = req->hdr.api_version;
    pr->n_topics = body.n_topics < 0 ? 0 : body.n_topics;
    pr->topics = sl_calloc((size_t)pr->n_topics + 1, sizeof(*pr->topics));
    req->produce = pr;

    if (req->hdr.api_version < 3) {
        global_err = SL_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
        global_msg = "Produce v0-v2 (message format v0/v1) is not supported";
    } else if (body.transactional_id.len >= 0) {
        global_err = SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        global_msg = "transactions are not supported by Sluice";
    } else if (body.acks != 0 && body.acks != 1 && body.acks != -1) {
        global_err = SL_KERR_INVALID_REQUIRED_ACKS;
        global_msg = "acks must be -1, 0 or 1";
    } else if (req->conn->refused != NULL) {
        global_err = SL_KERR_TOPIC_AUTHORIZATION_FAILED;
        global_msg = "client refused by the Sluice policy (defaults.action "
                     "refuse)";
    } else if (sl__quota_held(req->conn)) {
        /* An operator paused this connector: nothing goes upstream. The
         * client hears a retriable error and is muted for one step (the
         * class's max_pause_ms, via the PAUSED decision below), then
         * retries, until resumed. */
        global_err = SL_KERR_REQUEST_TIMED_OUT;
        global_msg = "connector paused by an operator";
        pr->throttle_ms = sl__quota_charge(req->conn, 0, 0, NULL, 0);
    } else if (srv->up.fatal || srv->shutting_down) {
        global_err = SL_KERR_NOT_ENOUGH_REPLICAS;
        global_msg = srv->shutting_down ? "Sluice is shutting down"
                                        : "upstream producer failed";
    }
    if (global_err && global_err != SL_KERR_REQUEST_TIMED_OUT)
        sl_warn("conn %llu %s (client.id \"%s\"): Produce v%d refused: %s",
                (unsigned long long)req->conn->id, req->conn->peer,
                req->conn->client_id, req->hdr.api_version, global_msg);

    /* Count partitions first so that no delivery report can finish the
     * request while later partitions are still being handed over. */
    for (int32_t t = 0; t < pr->n_topics; t++) {
        sl_kafka_ProduceTopicData *td = &body.topics[t];
        ptopic *pt = &pr->topics[t];
        pt->name = td->name;
        pt->n_parts = td->n_partitions < 0 ? 0 : td->n_partitions;
        pt->parts = sl_calloc((size_t)pt->n_parts + 1, sizeof(*pt->parts));
        for (int32_t p = 0; p < pt->n_parts; p++) {
            ppart *pp = &pt->parts[p];
            pp->pr = pr;
            pp->index = td->partitions[p].index;
            pp->base_offset = INT64_MAX;
            pp->pending = 1; /* held until handed over completely */
            pr->unsettled++;
        }
    }
    pr->unsettled++; /* held by this function */

    for (int32_t t = 0; t < pr->n_topics; t++) {
        sl_kafka_ProduceTopicData *td = &body.topics[t];
        ptopic *pt = &pr->topics[t];
        sl_topic *topic = NULL;

        bool allowed = global_err || sl__quota_topic_allowed(req->conn,
                                                             td->name);
        if (!global_err && topic_name_valid(td->name))
            topic = sl__metacache_get(srv->meta, td->name.p,
                                      (size_t)td->name.len);
        if (!allowed)
            sl_warn("conn %llu %s (client.id \"%s\"): topic %.*s is not in "
                    "its connector's allow-list: TOPIC_AUTHORIZATION_FAILED",
                    (unsigned long long)req->conn->id, req->conn->peer,
                    req->conn->client_id, (int)td->name.len, td->name.p);
        for (int32_t p = 0; p < pt->n_parts; p++) {
            ppart *pp = &pt->parts[p];
            int n;

            if (global_err) {
                set_error(pp, global_err, global_msg);
            } else if (!allowed) {
                set_error(pp, SL_KERR_TOPIC_AUTHORIZATION_FAILED,
                          "topic not allowed for this connector by policy");
            } else if (!topic_name_valid(td->name)) {
                set_error(pp, SL_KERR_INVALID_TOPIC_EXCEPTION,
                          "invalid topic name");
            } else if (topic == NULL || !topic->exists) {
                set_error(pp, SL_KERR_UNKNOWN_TOPIC_OR_PARTITION,
                          "unknown topic");
                idem_hold_place(pr, pp, td->name, td->partitions[p].records);
                /* The client may know a topic Sluice has not seen yet
                 * (created since the last refresh): look it up. */
                sl__metacache_want(srv->meta, td->name.p,
                                   (size_t)td->name.len);
                topic = sl__metacache_get(srv->meta, td->name.p,
                                          (size_t)td->name.len);
            } else if (pp->index < 0 || pp->index >= topic->n_partitions) {
                set_error(pp, SL_KERR_UNKNOWN_TOPIC_OR_PARTITION,
                          "unknown partition");
                idem_hold_place(pr, pp, td->name, td->partitions[p].records);
            } else if ((n = parse_batches(pr, pp, td->partitions[p].records,
                                          &pbs, &pbs_cap)) > 0 &&
                       check_idempotence(pr, pp, td->name, pbs, n)) {
                send_records(pr, pp, topic, pbs, n);
            }
            if (pp->error && pp->error != SL_KERR_UNKNOWN_TOPIC_OR_PARTITION)
                sl_debug("conn %llu: %.*s [%d]: %s (%s)",
                         req->conn ? (unsigned long long)req->conn->id : 0ULL,
                         (int)td->name.len, td->name.p, pp->index,
                         sl_kafka_err_name(pp->error),
                         pp->error_message ? pp->error_message : "");
            pp->pending--;
            part_maybe_settle(pp);
        }
    }
    sl_free(pbs);
    sl_kafka_ProduceRequest_free(&body);
    sl__idem_account(srv);
    /* Over-quota data is still accepted: what was handed upstream is
     * charged, and only the connection's next request waits. */
    if (pr->sent_bytes > 0)
        pr->throttle_ms = sl__quota_charge(req->conn, pr->sent_bytes,
                                           pr->sent_records, pr->brk,
                                           pr->n_brk);
    if (--pr->unsettled == 0)
        finish(pr);
}
