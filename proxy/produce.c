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
 *
 * Priming. A broker accepts any first sequence number from a producer it
 * has no state for, and librdkafka takes a later batch's success as an
 * implicit acknowledgement of the earlier ones (librdkafka 2.0). So if
 * the upstream producer's first write to a partition fails retriably
 * while the records behind it are accepted, those first records are
 * reported delivered and were never written (sluice_killed_idempotent@kafka
 * lost one that way; upstream_first_batch_retried reproduces it on the
 * mock). Sluice therefore sends a single record to a partition it has not
 * written to yet (or not for an hour, well inside Kafka's
 * producer.id.expiration.ms of a day) and holds every other record for
 * that partition until that one is acknowledged.
 */
#include "sluice/plan.h"
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
    /* What is left to send (the plan's pointers stay valid until the
     * request is freed, after this partition settles). */
    sl_plan_part plan;
    sl_topic *topic;
    int32_t next_k;    /* first record not handed over yet */
    ppart *prime_next; /* waiting for the partition's priming record */
    ppart *resumed_next; /* in prime_settled's list of those it resumed */
};

/* Priming state of one upstream partition (see the top of this file). */
enum { PRIME_NONE, PRIME_INFLIGHT, PRIME_DONE };
#define PRIME_IDLE_MS (60 * 60 * 1000)

struct sl_prime {
    uint8_t state;
    const sl_pmsg *msg; /* the priming record, while in flight */
    uint64_t last_ms;   /* last record handed over */
    ppart *head, *tail; /* waiting, in order */
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
    sl_plan plan;     /* decompressed record sections, owned */
    size_t extra_mem; /* decompressed bytes etc. charged to the budget */
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
    sl_plan_free(&pr->plan);
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
        sl_warn_client(
            "conn %llu: acks=0 produce had partition errors; closing "
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

struct sl_prime;
static ppart *prime_settled(struct sl_prime *pm, bool ok);

void sl__produce_delivered(sl_server *srv, void *opaque,
                           rd_kafka_resp_err_t err, int64_t offset, int status)
{
    const sl_pmsg *pm = opaque;
    ppart *pp = pm->part, *resumed = NULL, *next;

    (void)srv;
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
    if (pp->topic != NULL && pp->index < pp->topic->n_prime) {
        struct sl_prime *pm_ = &pp->topic->prime[pp->index];
        if (pm_->state == PRIME_INFLIGHT && pm_->msg == pm)
            resumed = prime_settled(pm_, err == 0);
    }
    pp->pending--;
    part_maybe_settle(pp);
    /* Each resumed partition's hold kept its request alive until now. */
    for (; resumed; resumed = next) {
        next = resumed->resumed_next;
        resumed->resumed_next = NULL;
        resumed->pending--;
        part_maybe_settle(resumed);
    }
}

static void set_error(ppart *pp, int16_t err, const char *msg)
{
    if (pp->error == 0) {
        pp->error = err;
        pp->error_message = msg;
    }
}

/* The priming state of pp's upstream partition. */
static struct sl_prime *prime_of(ppart *pp)
{
    sl_topic *t = pp->topic;
    if (t->n_prime <= pp->index) {
        int32_t n = t->n_partitions > pp->index ? t->n_partitions
                                                : pp->index + 1;
        t->prime = sl_realloc(t->prime, (size_t)n * sizeof(*t->prime));
        memset(t->prime + t->n_prime, 0,
               (size_t)(n - t->n_prime) * sizeof(*t->prime));
        t->n_prime = n;
    }
    return &t->prime[pp->index];
}

/* pp waits for its partition's priming record: at the head of the queue
 * if it holds the rest of the priming batch, which must go first. */
static void prime_wait(struct sl_prime *pm, ppart *pp, bool first)
{
    pp->pending++; /* held while waiting */
    pp->prime_next = NULL;
    if (first) {
        pp->prime_next = pm->head;
        pm->head = pp;
        if (pm->tail == NULL)
            pm->tail = pp;
    } else {
        if (pm->tail)
            pm->tail->prime_next = pp;
        else
            pm->head = pp;
        pm->tail = pp;
    }
}

/* Hands pp's records from pp->next_k to librdkafka: all of them once the
 * partition is primed, else the first alone (the rest wait for it), none
 * while another record is priming it. */
static void send_some(ppart *pp)
{
    sl_produce *pr = pp->pr;
    sl_upstream *up = &pr->srv->up;
    const sl_plan_part *pl = &pp->plan;
    struct sl_prime *pm = prime_of(pp);
    int32_t count = pl->batch.records_count;
    uint64_t now = sl__now_ms(pr->srv);
    rd_kafka_topic_t *rkt;
    bool one;
    sl_rd rr;

    if (pm->state == PRIME_DONE && now - pm->last_ms > PRIME_IDLE_MS)
        pm->state = PRIME_NONE; /* the broker may have forgotten us */
    if (pm->state == PRIME_INFLIGHT) {
        prime_wait(pm, pp, false);
        return;
    }
    one = pm->state == PRIME_NONE;
    rkt = sl__upstream_topic(up, pp->topic);
    rr = sl_rd_init(pl->recs, pl->recs_len);
    for (int32_t k = 0; k < count; k++) {
        sl_record rec;
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_resp_err_t err;

        (void)sl_record_next(&rr, &rec); /* validated by the plan */
        if (k < pp->next_k)
            continue;
        if (pl->idem == SL_IDEM_NEW && sl_idem_slot_upstream(pl->slot, k))
            continue; /* written by an earlier attempt */
        if (pm->state == PRIME_INFLIGHT) {
            /* Our record is priming the partition: the rest waits. */
            pp->next_k = k;
            prime_wait(pm, pp, true);
            return;
        }
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
        /* No RD_KAFKA_MSG_F_COPY: key and value stay in the request frame
         * or decompressed buffer until the delivery report. An empty
         * key/value has a non-NULL pointer, a null one NULL, so librdkafka
         * keeps the distinction. */
        err = rd_kafka_producev(
            up->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(pp->index),
            RD_KAFKA_V_KEY(rec.key, rec.key_len < 0 ? 0 : (size_t)rec.key_len),
            RD_KAFKA_V_VALUE((void *)rec.value,
                             rec.value_len < 0 ? 0 : (size_t)rec.value_len),
            RD_KAFKA_V_TIMESTAMP(pl->batch.base_timestamp +
                                 rec.timestamp_delta),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&pp->msgs[k]),
            RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
        if (err) {
            /* Not a limit the plan checks (those cannot fail here): a
             * partition gone since the metadata, a fatal producer. The
             * records before it are upstream, and an idempotent client's
             * retry sends only the rest. */
            if (hdrs)
                rd_kafka_headers_destroy(hdrs);
            set_error(pp, sl__produce_map_error(err),
                      "upstream refused the record");
            sl_warn("upstream refused a record for %s [%d]: %s",
                    pp->topic->name, pp->index, rd_kafka_err2str(err));
            break;
        }
        up->outstanding++;
        if (pp->leader->inflight++ == 0)
            pp->leader->busy_since_ms = now;
        pp->pending++;
        pm->last_ms = now;
        if (one) {
            pm->state = PRIME_INFLIGHT;
            pm->msg = &pp->msgs[k];
        }
    }
    pp->next_k = count;
}

/* The priming record of a partition has its delivery report: on success
 * the partition is primed, on failure the next record to go primes it
 * again; either way what waited goes on, in order. Returns the list of
 * the partitions resumed, whose holds the caller drops. */
static ppart *prime_settled(struct sl_prime *pm, bool ok)
{
    ppart *w = pm->head, *next, *resumed = NULL, **tail = &resumed;

    pm->state = ok ? PRIME_DONE : PRIME_NONE;
    pm->msg = NULL;
    pm->head = pm->tail = NULL;
    for (; w; w = next) {
        next = w->prime_next;
        w->prime_next = NULL;
        if (w->pr->srv->shutting_down || w->pr->srv->up.fatal)
            set_error(w, SL_KERR_NOT_ENOUGH_REPLICAS,
                      "Sluice is shutting down");
        else if (w->error == 0)
            send_some(w); /* may wait again, which takes a new hold */
        *tail = w;
        tail = &w->resumed_next;
    }
    return resumed;
}

/* Hands the planned records of one partition to librdkafka (all of a
 * batch but those a retry's earlier attempt wrote), or attaches it to the
 * in-flight original it retries, or takes a duplicate's answer. */
static void execute(sl_produce *pr, ppart *pp, sl_topic *t,
                    const sl_plan_part *pl)
{
    sl_upstream *up = &pr->srv->up;
    int32_t count = pl->batch.records_count;

    if (pl->decompressed)
        charge_extra(pr, pl->decompressed);
    if (pl->error) {
        set_error(pp, pl->error, pl->message);
        return;
    }
    if (pl->idem == SL_IDEM_DUPLICATE) {
        if (pl->slot->offset >= 0 && pl->slot->offset < pp->base_offset)
            pp->base_offset = pl->slot->offset;
        sl_debug("duplicate batch pid %lld seq %d: original answer offset "
                 "%lld",
                 (long long)pl->batch.producer_id, pl->batch.base_sequence,
                 (long long)pl->slot->offset);
        return;
    }
    if (pl->idem == SL_IDEM_PENDING) {
        ppart *orig = pl->slot->owner;
        if (orig == NULL || orig == pp) {
            set_error(pp, SL_KERR_REQUEST_TIMED_OUT,
                      "retry of a batch still in flight");
            return;
        }
        pp->waiting = true;
        pp->pending++;
        pp->wnext = orig->waiters;
        orig->waiters = pp;
        return;
    }
    if (pl->idem == SL_IDEM_NEW) {
        pl->slot->owner = pp;
        pp->slots = sl_realloc(pp->slots,
                               (pp->n_slots + 1) * sizeof(*pp->slots));
        pp->slots[pp->n_slots++] = pl->slot;
        if (!sl_idem_issued(pr->srv->idem, pl->batch.producer_id))
            sl_debug("batch names producer id %lld, not issued by this "
                     "Sluice (from before a restart, or another instance's)",
                     (long long)pl->batch.producer_id);
    }
    if (!pl->send)
        return;

    pp->leader = sl__upstream_broker(
        up, pp->index < t->n_partitions && t->leaders ? t->leaders[pp->index]
                                                      : -1);
    pr->sent_bytes += pl->batch.raw_len;
    tally_broker(pr, pp->leader->id, pl->batch.raw_len);
    pr->sent_records += (uint64_t)count;
    /* The rd_kafka_msg_t of each record and its headers are charged to
     * the memory budget with the opaques. */
    pp->msgs = sl_malloc((size_t)count * sizeof(*pp->msgs));
    charge_extra(pr, (size_t)count * (sizeof(*pp->msgs) +
                                      SL_UPSTREAM_MSG_OVERHEAD) +
                         pl->hdr_bytes);
    pp->plan = *pl;
    pp->topic = t;
    pp->next_k = 0;
    send_some(pp);
}

void sl__produce_handle(sl_server *srv, sl_req *req)
{
    sl_kafka_ProduceRequest body;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_produce *pr;
    sl_plan_env env;
    const char *global_msg = NULL;
    int16_t global_err = 0;

    if (sl_kafka_ProduceRequest_decode(&r, req->hdr.api_version, &body) != 0) {
        sl_warn_client(
            "conn %llu %s (client.id \"%s\"): malformed Produce v%d "
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

    env.version = pr->version;
    env.max_decompressed = (size_t)srv->cfg->max_decompressed_bytes;
    env.max_msg_bytes = srv->up.max_msg_bytes;
    env.idem = srv->idem;
    env.now_ms = (int64_t)sl__now_ms(srv);
    {
        uv_timeval64_t tv;
        uv_gettimeofday(&tv);
        env.wall_ms = tv.tv_sec * 1000 + tv.tv_usec / 1000;
    }

    global_err = sl_plan_request(pr->version, body.transactional_id,
                                 body.acks, &global_msg);
    if (global_err) {
        /* as a broker refuses it */
    } else if (srv->cfg->require_principal && req->conn->principal == NULL) {
        /* As a broker whose ACLs give User:ANONYMOUS nothing. */
        global_err = SL_KERR_TOPIC_AUTHORIZATION_FAILED;
        global_msg = "the client is not authenticated (require_principal: "
                     "log in with SASL or a client certificate)";
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
        sl_warn_client(
            "conn %llu %s (client.id \"%s\"): Produce v%d refused: %s",
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
        bool valid = sl_plan_topic_name_valid(td->name);

        if (!global_err && valid)
            topic = sl__metacache_get(srv->meta, td->name.p,
                                      (size_t)td->name.len);
        if (!allowed)
            sl_warn_client(
                "conn %llu %s (client.id \"%s\"): topic %.*s is not in "
                "its connector's allow-list: TOPIC_AUTHORIZATION_FAILED",
                (unsigned long long)req->conn->id, req->conn->peer,
                req->conn->client_id, (int)td->name.len, td->name.p);
        if (!global_err && allowed && valid &&
            (topic == NULL || !topic->exists)) {
            /* The client may know a topic Sluice has not seen yet
             * (created since the last refresh): look it up. */
            sl__metacache_want(srv->meta, td->name.p, (size_t)td->name.len);
            topic = sl__metacache_get(srv->meta, td->name.p,
                                      (size_t)td->name.len);
        }
        for (int32_t p = 0; p < pt->n_parts; p++) {
            ppart *pp = &pt->parts[p];
            sl_plan_part plan;
            sl_plan_topic limits;
            int where;

            if (global_err) {
                set_error(pp, global_err, global_msg);
                pp->pending--;
                part_maybe_settle(pp);
                continue;
            }
            where = !allowed                        ? SL_PLAN_NOT_ALLOWED
                    : topic == NULL || !topic->exists ? SL_PLAN_UNKNOWN_TOPIC
                    : pp->index < 0 || pp->index >= topic->n_partitions
                        ? SL_PLAN_UNKNOWN_PARTITION
                        : SL_PLAN_WRITABLE;
            if (topic != NULL && topic->cfg_known) {
                limits.log_append_time = topic->log_append_time;
                limits.before_max_ms = topic->ts_before_max_ms;
                limits.after_max_ms = topic->ts_after_max_ms;
                limits.max_message_bytes = topic->max_message_bytes;
            }
            sl_plan_partition(&pr->plan, &env, td->name, pp->index,
                              td->partitions[p].records, where,
                              topic != NULL && topic->cfg_known ? &limits
                                                                : NULL,
                              &plan);
            execute(pr, pp, topic, &plan);
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
