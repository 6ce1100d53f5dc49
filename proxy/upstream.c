/*
 * The upstream: one shared, idempotent librdkafka producer that re-produces
 * every client record to the real cluster, and optionally an embedded mock
 * cluster ("mock:N") for trying Sluice without Kafka.
 *
 * Threads: sl__upstream_* run on the loop thread. librdkafka's own threads
 * enqueue delivery reports and errors on its main queue; that queue writes
 * a byte to pipe_fds[1] when it goes from empty to non-empty, uv_poll wakes
 * the loop, and on_events() drains the queue completely on the loop thread.
 * No loop state is ever touched from a librdkafka thread.
 */
#include "sluice/server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <librdkafka/rdkafka_mock.h>

/* Messages taken from the queue per rd_kafka_event_message_array call. */
#define DR_BATCH 1024

static void on_events(uv_poll_t *poll, int status, int events);
static void on_throttle(rd_kafka_t *rk, const char *name, int32_t id,
                        int throttle_ms, void *opaque);

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                    char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "upstream property %s=%s: %s", k, v, e);
        return SL_E_CONFIG;
    }
    return 0;
}

/* Starts an embedded mock cluster of n brokers owned by a throwaway
 * producer handle (kept in up->mock_rk, destroyed last). */
static int start_mock(sl_upstream *up, int n, char *err, size_t errlen)
{
    char e[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;

    rd_kafka_conf_set(conf, "log_level", "3", e, sizeof(e));
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (rk == NULL) {
        snprintf(err, errlen, "mock cluster: %s", e);
        return SL_E_UPSTREAM;
    }
    mc = rd_kafka_mock_cluster_new(rk, n);
    if (mc == NULL) {
        rd_kafka_destroy(rk);
        snprintf(err, errlen, "mock cluster: could not start %d brokers", n);
        return SL_E_UPSTREAM;
    }
    up->mock_rk = rk;
    up->mock_cluster = mc;
    up->bootstrap = sl_strdup(rd_kafka_mock_cluster_bootstraps(mc));
    sl_info("embedded mock cluster: %d brokers at %s", n, up->bootstrap);
    return 0;
}

int sl__upstream_init(sl_upstream *up, sl_server *srv, char *err,
                      size_t errlen)
{
    const sl_config *cfg = srv->cfg;
    rd_kafka_conf_t *conf;
    char e[512], buf[64];
    int rc;

    memset(up, 0, sizeof(*up));
    up->srv = srv;
    up->pipe_fds[0] = up->pipe_fds[1] = -1;

    if (strncmp(cfg->upstream_bootstrap, "mock:", 5) == 0) {
        char *end;
        long n = strtol(cfg->upstream_bootstrap + 5, &end, 10);
        if (*end != '\0' || n < 1 || n > 16) {
            snprintf(err, errlen,
                     "upstream.bootstrap_servers: \"%s\": expected mock:N "
                     "with N in 1..16",
                     cfg->upstream_bootstrap);
            return SL_E_CONFIG;
        }
        if ((rc = start_mock(up, (int)n, err, errlen)) != 0)
            return rc;
    } else {
        up->bootstrap = sl_strdup(cfg->upstream_bootstrap);
    }

    conf = rd_kafka_conf_new();
    /* Defaults first, so the operator's properties can override them. */
    snprintf(buf, sizeof(buf), "%lld",
             (long long)cfg->upstream_message_timeout_ms);
    if ((rc = conf_set(conf, "bootstrap.servers", up->bootstrap, err,
                       errlen)) ||
        (rc = conf_set(conf, "enable.idempotence", "true", err, errlen)) ||
        (rc = conf_set(conf, "message.timeout.ms", buf, err, errlen)) ||
        /* No linger: the records of one client request arrive together
         * and are batched anyway, and each request's answer waits for its
         * records' delivery, so lingering only adds latency. linger.ms=1
         * put a 1.3 ms floor under every request (bench/run: 1 KiB, one
         * connection, 8 in flight: 95k -> 472k records/s, p50 1.34 ->
         * 0.26 ms). While librdkafka is busy, batches still form. */
        (rc = conf_set(conf, "linger.ms", "0", err, errlen)) ||
        /* Sluice's own limits (memory budget) bound what is queued; make
         * librdkafka's queue larger than anything the budget admits so a
         * record is never refused halfway through a batch. */
        (rc = conf_set(conf, "queue.buffering.max.messages", "10000000",
                       err, errlen)) ||
        (rc = conf_set(conf, "queue.buffering.max.kbytes", "2097151", err,
                       errlen)) ||
        /* librdkafka notices message timeouts of a partition whose leader
         * is down only when that broker's thread wakes up from its
         * reconnect backoff (up to 10 s by default): keep it short so a
         * client hears of a timeout soon after message_timeout_ms, well
         * inside its own request.timeout.ms (30 s in Java). */
        (rc = conf_set(conf, "reconnect.backoff.max.ms", "1000", err,
                       errlen)) ||
        /* Per-broker throttle and round-trip time for metrics. */
        (rc = conf_set(conf, "statistics.interval.ms", "1000", err,
                       errlen)) ||
        (rc = conf_set(conf, "client.id", "sluice", err, errlen)))
        goto fail_conf;
    for (size_t i = 0; i < cfg->n_upstream_props; i++) {
        if ((rc = conf_set(conf, cfg->upstream_props[i].key,
                           cfg->upstream_props[i].value, err, errlen)))
            goto fail_conf;
    }
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR |
                                       RD_KAFKA_EVENT_STATS);
    rd_kafka_conf_set_throttle_cb(conf, on_throttle);
    rd_kafka_conf_set_opaque(conf, up);

    /* rd_kafka_new takes the conf on success only. */
    up->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
    if (up->rk == NULL) {
        snprintf(err, errlen, "upstream producer: %s", e);
        rc = SL_E_UPSTREAM;
        goto fail_conf;
    }

    {
        char v[32];
        size_t vlen = sizeof(v);
        up->max_msg_bytes = 1000000;
        if (rd_kafka_conf_get(rd_kafka_conf(up->rk), "message.max.bytes", v,
                              &vlen) == RD_KAFKA_CONF_OK)
            up->max_msg_bytes = (size_t)strtoull(v, NULL, 10);
    }
    if (pipe2(up->pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        rc = SL_E_IO;
        goto fail_rk;
    }
    up->mainq = rd_kafka_queue_get_main(up->rk);
    rd_kafka_queue_io_event_enable(up->mainq, up->pipe_fds[1], "1", 1);
    uv_poll_init(srv->loop, &up->poll, up->pipe_fds[0]);
    up->poll.data = up;
    uv_poll_start(&up->poll, UV_READABLE, on_events);
    sl_info("upstream producer to %s (idempotent, message.timeout.ms=%lld)",
            up->bootstrap, (long long)cfg->upstream_message_timeout_ms);
    return 0;

fail_rk:
    rd_kafka_destroy(up->rk);
    up->rk = NULL;
    goto fail;
fail_conf:
    rd_kafka_conf_destroy(conf);
fail:
    sl_free(up->bootstrap);
    up->bootstrap = NULL;
    if (up->mock_rk) {
        rd_kafka_mock_cluster_destroy(up->mock_cluster);
        rd_kafka_destroy(up->mock_rk);
    }
    up->mock_rk = NULL;
    return rc;
}

rd_kafka_topic_t *sl__upstream_topic(sl_upstream *up, sl_topic *t)
{
    if (t->rkt == NULL) {
        t->rkt = rd_kafka_topic_new(up->rk, t->name, NULL);
        /* First produced to: learn what the topic's configs refuse. */
        sl__metacache_want_configs(up->srv->meta, t);
    }
    return t->rkt;
}

/* At most this many brokers are tracked; more share the last slot. */
#define MAX_BROKERS 256

sl_broker_stats *sl__upstream_broker(sl_upstream *up, int32_t id)
{
    for (size_t i = 0; i < up->n_brokers; i++)
        if (up->brokers[i].id == id)
            return &up->brokers[i];
    if (up->brokers == NULL)
        up->brokers = sl_calloc(MAX_BROKERS, sizeof(*up->brokers));
    if (up->n_brokers == MAX_BROKERS)
        return &up->brokers[MAX_BROKERS - 1];
    up->brokers[up->n_brokers].id = id;
    return &up->brokers[up->n_brokers++];
}

/* librdkafka statistics (JSON, every statistics.interval.ms): per broker
 * the throttle time the broker returned, the round-trip time and the time
 * records wait in librdkafka's queue (window statistics since the previous
 * emission), and the requests awaiting an answer. */
static void handle_stats(sl_upstream *up, const char *json)
{
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr), *brokers, *b;
    const char *name;

    if (root == NULL)
        return;
    brokers = json_object_get(root, "brokers");
    json_object_foreach(brokers, name, b) {
        json_t *nodeid = json_object_get(b, "nodeid");
        json_t *thr = json_object_get(b, "throttle");
        json_t *rtt = json_object_get(b, "rtt");
        sl_broker_stats *bs;
        if (!json_is_integer(nodeid) || json_integer_value(nodeid) < 0)
            continue; /* bootstrap and internal entries */
        bs = sl__upstream_broker(up, (int32_t)json_integer_value(nodeid));
        snprintf(bs->name, sizeof(bs->name), "%s",
                 json_string_value(json_object_get(b, "nodename"))
                     ? json_string_value(json_object_get(b, "nodename"))
                     : name);
        if (thr) {
            /* Window statistics in milliseconds: sum of this window. */
            json_t *sum = json_object_get(thr, "sum");
            if (json_is_number(sum))
                bs->throttle_ms_total += json_number_value(sum);
        }
        if (rtt) {
            json_t *p99 = json_object_get(rtt, "p99");
            if (json_is_number(p99))
                bs->rtt_p99_ms = json_number_value(p99) / 1000.0; /* us */
        }
        {
            json_t *il = json_object_get(b, "int_latency");
            json_t *p99 = il ? json_object_get(il, "p99") : NULL;
            json_t *wr = json_object_get(b, "waitresp_cnt");
            if (json_is_number(p99))
                bs->queue_p99_ms = json_number_value(p99) / 1000.0; /* us */
            if (json_is_integer(wr))
                bs->requests_inflight = json_integer_value(wr);
        }
    }
    json_decref(root);
}

/* A broker answered with a throttle time (or it dropped back to 0).
 * librdkafka serves this callback from rd_kafka_queue_poll() on the main
 * queue, so it runs on the loop thread inside on_events(). */
static void on_throttle(rd_kafka_t *rk, const char *name, int32_t id,
                        int throttle_ms, void *opaque)
{
    sl_upstream *up = opaque;
    sl_broker_stats *bs;

    (void)rk;
    (void)name;
    if (id < 0 || throttle_ms <= 0)
        return;
    bs = sl__upstream_broker(up, id);
    if ((uint32_t)throttle_ms > bs->tick_throttle_ms)
        bs->tick_throttle_ms = (uint32_t)throttle_ms;
    sl_debug("upstream broker %d returned throttle_time_ms %d", id,
             throttle_ms);
}

/* Handles delivery reports in batches, on the loop thread.
 *
 * Latency samples: one per delivered record, as before, but the clock is
 * read once per run of consecutive reports of one client partition (the
 * records of one partition of one request, handed to librdkafka by one
 * send_records call within microseconds of each other and delivered in
 * order by one upstream answer): each record of the run gets the run's
 * first latency. rd_kafka_message_latency() reads the clock on every call;
 * for a 16-record request this saves 15 of its 16 clock reads here. The
 * per-broker histogram (us; pressure control's p90 per interval) keeps
 * one sample per delivered record, each off by at most its request's
 * hand-off spread (microseconds), far below the millisecond latencies
 * pressure control acts on. */
static void handle_dr(sl_upstream *up, rd_kafka_event_t *ev)
{
    const rd_kafka_message_t *msgs[DR_BATCH];
    uint64_t now = sl__now_ms(up->srv);
    size_t n;
    const void *run_opaque = NULL;
    int64_t run_lat = -1;

    while ((n = rd_kafka_event_message_array(ev, msgs, DR_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            const rd_kafka_message_t *m = msgs[i];
            sl_broker_stats *bs =
                sl__upstream_broker(up, rd_kafka_message_broker_id(m));
            const sl_pmsg *pm = m->_private;
            if (pm->part != run_opaque) {
                run_opaque = pm->part;
                run_lat = rd_kafka_message_latency(m);
            }
            bs->last_dr_ms = now;
            if (m->err == 0) {
                bs->delivered++;
                bs->tick_acked_bytes += m->len + m->key_len;
                if (run_lat >= 0)
                    sl_hist_record(&bs->latency, (uint64_t)run_lat);
            } else {
                bs->failed++;
            }
            up->outstanding--;
            sl__produce_delivered(up->srv, m->_private, m->err, m->offset,
                                  (int)rd_kafka_message_status(m));
        }
    }
}

static void on_events(uv_poll_t *poll, int status, int events)
{
    sl_upstream *up = poll->data;
    char drain[256];
    rd_kafka_event_t *ev;

    /* Drain the wake-up bytes first: anything enqueued after this read
     * writes a new byte, so no report can be missed. librdkafka writes one
     * byte per non-polling period, so the first read almost always comes
     * back short, which means the pipe is empty: stop there instead of
     * paying a second read() for EAGAIN on every wake-up. */
    while (read(up->pipe_fds[0], drain, sizeof(drain)) == sizeof(drain))
        ;
    while ((ev = rd_kafka_queue_poll(up->mainq, 0)) != NULL) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR:
            handle_dr(up, ev);
            break;
        case RD_KAFKA_EVENT_STATS:
            handle_stats(up, rd_kafka_event_stats(ev));
            break;
        case RD_KAFKA_EVENT_ERROR:
            if (rd_kafka_event_error_is_fatal(ev)) {
                char reason[512];
                rd_kafka_fatal_error(up->rk, reason, sizeof(reason));
                sl_error("upstream producer fatal error: %s; records still "
                         "queued will fail and new produce requests get "
                         "retriable errors until Sluice is restarted",
                         reason);
                up->fatal = true;
            } else {
                sl_warn("upstream: %s: %s",
                        rd_kafka_err2name(rd_kafka_event_error(ev)),
                        rd_kafka_event_error_string(ev));
            }
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    sl__server_maybe_finish(up->srv);
}

void sl__upstream_purge(sl_upstream *up)
{
    if (up->rk)
        rd_kafka_purge(up->rk, RD_KAFKA_PURGE_F_QUEUE |
                                   RD_KAFKA_PURGE_F_INFLIGHT);
}

void sl__upstream_close(sl_upstream *up)
{
    if (up->pipe_fds[0] >= 0 && !uv_is_closing((uv_handle_t *)&up->poll))
        uv_close((uv_handle_t *)&up->poll, NULL);
}

/* After the loop has stopped: nothing points into client frames any more
 * (every record was settled or purged). */
void sl__upstream_destroy(sl_upstream *up)
{
    if (up->rk) {
        rd_kafka_queue_io_event_enable(up->mainq, -1, NULL, 0);
        rd_kafka_queue_destroy(up->mainq);
        rd_kafka_destroy(up->rk);
        up->rk = NULL;
    }
    if (up->mock_rk) {
        rd_kafka_mock_cluster_destroy(up->mock_cluster);
        rd_kafka_destroy(up->mock_rk);
        up->mock_rk = NULL;
    }
    for (int i = 0; i < 2; i++)
        if (up->pipe_fds[i] >= 0)
            close(up->pipe_fds[i]);
    up->pipe_fds[0] = up->pipe_fds[1] = -1;
    sl_free(up->bootstrap);
    up->bootstrap = NULL;
    sl_free(up->brokers);
    up->brokers = NULL;
    up->n_brokers = 0;
}
