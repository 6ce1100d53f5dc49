/*
 * libFuzzer target for the Kafka request path of proxy/kafka/proto.c.
 *
 * Input: one request frame without its 4-byte size, as the daemon hands it
 * to the codec. The header is decoded; for the served APIs (ApiVersions,
 * Metadata, Produce, InitProducerId) the body is decoded as a request and,
 * to reach the response decoders too, as a response. Whatever decodes is
 * re-encoded, decoded again and re-encoded: the two encodings must be
 * identical (the codec is stable on its own output). For any API key the
 * error-response template is encoded as well, as the daemon would.
 * A decoded Produce request is also planned (proxy/plan.c) partition by
 * partition, as the daemon plans it, against a fresh idempotence table:
 * a partition to send has no error and records that iterate to the end;
 * a refused one sends nothing.
 *
 * Seed corpus: tests/fuzz/corpus/request/.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/kafka.h"
#include "sluice/plan.h"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_request: check failed: %s (%s:%d)\n",   \
                    #cond, __FILE__, __LINE__);                           \
            abort();                                                      \
        }                                                                 \
    } while (0)

/* Decode body -> encode -> decode -> encode; the two encodings match. */
#define STABLE(T, ver, body, len, free_stmt1, free_stmt2)                 \
    do {                                                                  \
        sl_kafka_##T m1, m2;                                              \
        sl_rd r = sl_rd_init((body), (len));                              \
        if (sl_kafka_##T##_decode(&r, (ver), &m1) == 0) {                 \
            sl_wr w1, w2;                                                 \
            sl_rd r2;                                                     \
            sl_wr_init(&w1, 64);                                          \
            sl_wr_init(&w2, 64);                                          \
            sl_kafka_##T##_encode(&w1, (ver), &m1);                       \
            r2 = sl_rd_init(w1.buf, w1.len);                              \
            CHECK(sl_kafka_##T##_decode(&r2, (ver), &m2) == 0);           \
            CHECK(sl_rd_left(&r2) == 0);                                  \
            sl_kafka_##T##_encode(&w2, (ver), &m2);                       \
            CHECK(w1.len == w2.len &&                                     \
                  memcmp(w1.buf, w2.buf, w1.len) == 0);                   \
            free_stmt2;                                                   \
            free_stmt1;                                                   \
            sl_wr_free(&w1);                                              \
            sl_wr_free(&w2);                                              \
        }                                                                 \
    } while (0)

static volatile uint8_t sink;

/* Plans every partition of a decoded Produce request. The partition
 * index's low bits pick what the daemon would know of it. */
static void plan_produce(int16_t ver, const uint8_t *body, size_t len)
{
    sl_kafka_ProduceRequest req;
    sl_rd r = sl_rd_init(body, len);
    const char *msg;
    sl_idem *idem;
    sl_plan plan = {0};
    sl_plan_env env = {.version = ver, .max_decompressed = 1 << 20,
                       .max_msg_bytes = 4096, .now_ms = 0};

    sl_plan_topic lim = {.before_max_ms = 1000, .after_max_ms = 1000,
                         .max_message_bytes = 2048};

    if (sl_kafka_ProduceRequest_decode(&r, ver, &req) != 0)
        return;
    (void)sl_plan_request(ver, req.transactional_id, req.acks, &msg);
    idem = env.idem = sl_idem_new(1, 1000);
    for (int32_t t = 0; t < req.n_topics; t++) {
        sl_kafka_ProduceTopicData *td = &req.topics[t];
        for (int32_t p = 0; p < td->n_partitions; p++) {
            sl_plan_part out;
            int32_t idx = td->partitions[p].index;
            sl_plan_partition(&plan, &env, td->name, idx,
                              td->partitions[p].records, idx & 3,
                              (idx & 8) ? &lim : NULL, &out);
            CHECK(!(out.send && out.error));
            CHECK(plan.decompressed <= env.max_decompressed);
            if (out.idem == SL_IDEM_NEW)
                out.slot->owner = &plan;
            if (out.send) {
                sl_rd rr = sl_rd_init(out.recs, out.recs_len);
                for (int32_t i = 0; i < out.batch.records_count; i++) {
                    sl_record rec;
                    CHECK(sl_record_next(&rr, &rec) == 0);
                    if (rec.value_len > 0)
                        sink ^= rec.value[rec.value_len - 1];
                    CHECK(sl_plan_record_size(&rec) <= env.max_msg_bytes);
                }
                CHECK(sl_rd_left(&rr) == 0);
            }
            if (out.idem == SL_IDEM_NEW) /* settle it: a failure, at times */
                sl_idem_complete(idem, out.slot, &plan,
                                 (idx & 4) ? 19 : 0, 0);
        }
    }
    sl_plan_free(&plan);
    sl_idem_free(idem);
    sl_kafka_ProduceRequest_free(&req);
}

static void fuzz_body(int16_t key, int16_t ver, const uint8_t *body,
                      size_t len)
{
    switch (key) {
    case SL_KAFKA_API_VERSIONS:
        STABLE(ApiVersionsRequest, ver, body, len, (void)0, (void)0);
        STABLE(ApiVersionsResponse, ver, body, len,
               sl_kafka_ApiVersionsResponse_free(&m1),
               sl_kafka_ApiVersionsResponse_free(&m2));
        {
            sl_kafka_ApiVersionsRequest m;
            sl_rd r = sl_rd_init(body, len);
            if (sl_kafka_ApiVersionsRequest_decode(&r, ver, &m) == 0 &&
                ver >= 3) {
                (void)sl_kafka_software_name_valid(m.client_software_name);
                (void)sl_kafka_software_name_valid(
                    m.client_software_version);
            }
        }
        break;
    case SL_KAFKA_METADATA:
        STABLE(MetadataRequest, ver, body, len,
               sl_kafka_MetadataRequest_free(&m1),
               sl_kafka_MetadataRequest_free(&m2));
        STABLE(MetadataResponse, ver, body, len,
               sl_kafka_MetadataResponse_free(&m1),
               sl_kafka_MetadataResponse_free(&m2));
        break;
    case SL_KAFKA_PRODUCE:
        plan_produce(ver, body, len);
        STABLE(ProduceRequest, ver, body, len,
               sl_kafka_ProduceRequest_free(&m1),
               sl_kafka_ProduceRequest_free(&m2));
        STABLE(ProduceResponse, ver, body, len,
               sl_kafka_ProduceResponse_free(&m1),
               sl_kafka_ProduceResponse_free(&m2));
        break;
    case SL_KAFKA_FIND_COORDINATOR: {
        /* Decoded to refuse transactions; the answer must encode too. */
        sl_kafka_FindCoordinatorRequest fc;
        sl_rd r = sl_rd_init(body, len);
        sl_wr w;
        if (sl_kafka_FindCoordinatorRequest_decode(&r, ver, &fc) == 0) {
            sl_wr_init(&w, 64);
            sl_kafka_FindCoordinatorResponse_encode(&w, ver, &fc, 53,
                                                    SL_KSTR("x"));
            sl_wr_free(&w);
        }
        break;
    }
    case SL_KAFKA_INIT_PRODUCER_ID:
        STABLE(InitProducerIdRequest, ver, body, len, (void)0, (void)0);
        STABLE(InitProducerIdResponse, ver, body, len, (void)0, (void)0);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_kafka_req_hdr h;
    int rc = sl_kafka_req_hdr_decode(data, size, &h);
    sl_wr w;

    if (rc == SL_E_TRUNCATED)
        return 0;
    if (rc == 0) {
        CHECK(h.len <= size);
        fuzz_body(h.api_key, h.api_version, data + h.len, size - h.len);
    }

    /* The daemon answers unserved APIs (and a header it cannot finish
     * parsing) from the templates; the correlation id picks the code. */
    sl_wr_init(&w, 64);
    {
        size_t start = sl_kafka_resp_hdr_encode(&w, h.api_key,
                                                h.api_version,
                                                h.correlation_id);
        size_t body = w.len;
        if (sl_kafka_error_response_encode(&w, h.api_key, h.api_version,
                                           (int16_t)h.correlation_id) == 0)
            CHECK(w.len > body);
        else
            CHECK(w.len == body);
        sl_kafka_frame_end(&w, start);
    }
    sl_wr_free(&w);
    return 0;
}
