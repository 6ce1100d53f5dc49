/*
 * The operator surface on the daemon's loop: Prometheus metrics, health,
 * the JSON admin API and the status page, served by proxy/http.c.
 *
 * Every metric family is declared once, in SL_DAEMON_METRICS below; the
 * same emitted samples render as Prometheus text (/metrics) and JSON
 * (/v1/metrics). Label values are bounded sets (connector, class, broker,
 * reason, Kafka error): no per-connection or per-record labels, no secrets.
 *
 * Loop thread only: handlers read loop-owned state directly.
 */
#include "sluice/http.h"
#include "sluice/sasl.h"
#include "sluice/server.h"
#include "sluice/tls.h"
#include "sluice/www.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SL_DAEMON_METRICS(X)                                                   \
    X(M_CONN_BYTES, "sluice_connector_bytes_total", COUNTER,                   \
      "Record batch bytes received from the connector's clients.",             \
      "connector", "class")                                                    \
    X(M_CONN_RECORDS, "sluice_connector_records_total", COUNTER,               \
      "Records received from the connector's clients.", "connector", "class")  \
    X(M_CONN_REQUESTS, "sluice_connector_requests_total", COUNTER,             \
      "Produce requests charged to the connector.", "connector", "class")      \
    X(M_CONN_THR_SEC, "sluice_connector_throttle_seconds_total", COUNTER,      \
      "Throttle time decided for the connector, by reason (also counted in "   \
      "shadow mode).", "connector", "class", "reason")                         \
    X(M_CONN_THR_EV, "sluice_connector_throttle_events_total", COUNTER,        \
      "Throttles decided for the connector, by reason.", "connector",          \
      "class", "reason")                                                       \
    X(M_CONN_ERRORS, "sluice_connector_errors_total", COUNTER,                 \
      "Partition answers with a Kafka error, by error name.", "connector",     \
      "class", "error")                                                        \
    X(M_CONN_PAUSED, "sluice_connector_paused", GAUGE,                         \
      "1 while an admin pause holds the connector.", "connector", "class")     \
    X(M_CLASS_BUDGET, "sluice_class_budget_bytes_per_second", GAUGE,           \
      "The class's current share of the capacity.", "class")                   \
    X(M_CLASS_BYTES, "sluice_class_bytes_total", COUNTER,                      \
      "Bytes charged to the class.", "class")                                  \
    X(M_CLASS_ACTIVE, "sluice_class_active", GAUGE,                            \
      "1 if the class had traffic within the active window.", "class")         \
    X(M_BROKER_LAT, "sluice_broker_produce_latency_seconds", HISTOGRAM,        \
      "Upstream produce latency from hand-off to delivery report.", "broker")  \
    X(M_BROKER_INFLIGHT, "sluice_broker_inflight_records", GAUGE,              \
      "Records handed to librdkafka for partitions this broker leads, not "    \
      "yet settled.", "broker")                                                \
    X(M_BROKER_THR, "sluice_broker_throttle_seconds_total", COUNTER,           \
      "Throttle time the broker returned to Sluice's producer.", "broker")     \
    X(M_BROKER_RTT, "sluice_broker_rtt_p99_seconds", GAUGE,                    \
      "Round-trip time p99 of requests to the broker (librdkafka statistics, " \
      "last window).", "broker")                                               \
    X(M_BROKER_QUEUE, "sluice_broker_queue_latency_p99_seconds", GAUGE,        \
      "p99 of the time records waited in librdkafka's queue for the broker "   \
      "(int_latency, last window).", "broker")                                 \
    X(M_BROKER_REQS, "sluice_broker_requests_inflight", GAUGE,                 \
      "Produce requests sent to the broker and not yet answered.", "broker")   \
    X(M_BROKER_PRESSURE, "sluice_broker_pressure", GAUGE,                      \
      "1 while the broker's controller limits the rate admitted to it "        \
      "(pressure.latency_target_ms or a broker throttle).", "broker")          \
    X(M_BROKER_ADMITTED, "sluice_broker_admitted_bytes_per_second", GAUGE,     \
      "The controller's admitted rate for the broker; present only while "     \
      "limited.", "broker")                                                    \
    X(M_BROKER_ACKED, "sluice_broker_acked_bytes_per_second", GAUGE,           \
      "Record bytes per second the broker acknowledged over the last 11 s "    \
      "(Kafka's quota window); under a broker quota on Sluice, the quota.",   \
      "broker")                                                                \
    X(M_BROKER_SIGNAL, "sluice_broker_pressure_latency_seconds", GAUGE,        \
      "Smoothed write latency the broker's controller acts on.", "broker")     \
    X(M_BROKER_CUTS, "sluice_broker_pressure_cuts_total", COUNTER,             \
      "Times the controller cut the broker's admitted rate.", "broker")        \
    X(M_BROKER_CLASS_BYTES, "sluice_broker_class_bytes_total", COUNTER,        \
      "Bytes admitted for partitions the broker leads, by class.", "broker",   \
      "class")                                                                 \
    X(M_BROKER_CLASS_SHARE, "sluice_broker_class_share_bytes_per_second",      \
      GAUGE, "The class's share of a limited broker's admitted rate; present " \
      "only while limited.", "broker", "class")                                \
    X(M_MEM_PRESSURE, "sluice_memory_pressure", GAUGE,                         \
      "1 while in-flight bytes above pressure.memory_high_water_pct of the "   \
      "budget limit the admitted rate.", NULL)                                 \
    X(M_MEM_ADMITTED, "sluice_memory_admitted_bytes_per_second", GAUGE,        \
      "The memory controller's admitted rate; present only while limited.",    \
      NULL)                                                                    \
    X(M_BROKER_FAILED, "sluice_broker_failed_records_total", COUNTER,          \
      "Records whose upstream delivery failed.", "broker")                     \
    X(M_CONNS, "sluice_client_connections", GAUGE,                             \
      "Open Kafka client connections.", NULL)                                  \
    X(M_INFLIGHT_BYTES, "sluice_inflight_bytes", GAUGE,                        \
      "Request bytes read and not yet answered (memory budget usage).", NULL)  \
    X(M_BUDGET, "sluice_memory_budget_bytes", GAUGE,                           \
      "limits.memory_budget_bytes.", NULL)                                     \
    X(M_IDEM_ENTRIES, "sluice_idempotence_producer_states", GAUGE,             \
      "Idempotent producer/partition pairs with sequence state "               \
      "(limits.max_producer_states).", NULL)                                   \
    X(M_IDEM_BYTES, "sluice_idempotence_state_bytes", GAUGE,                   \
      "Memory of that state (counted in the memory budget).", NULL)            \
    X(M_IDEM_EVICTED, "sluice_idempotence_states_evicted_total", COUNTER,      \
      "Producer/partition states forgotten at limits.max_producer_states.",    \
      NULL)                                                                    \
    X(M_OUTSTANDING, "sluice_upstream_outstanding_records", GAUGE,             \
      "Records handed to librdkafka and not yet settled.", NULL)               \
    X(M_POLICY_GEN, "sluice_policy_generation", GAUGE,                         \
      "Policy generation in force (0: no policy file).", NULL)                 \
    X(M_RELOAD_FAIL, "sluice_policy_reload_failures_total", COUNTER,           \
      "Policy reloads rejected (the running policy stayed).", NULL)            \
    X(M_TLS_HANDSHAKES, "sluice_tls_handshakes_total", COUNTER,                \
      "TLS handshakes completed on the TLS listeners.", NULL)                  \
    X(M_SASL_LOGINS, "sluice_sasl_logins_total", COUNTER,                      \
      "Successful SASL logins (and re-logins), by mechanism.", "mechanism")   \
    X(M_AUTH_FAILURES, "sluice_authentication_failures_total", COUNTER,        \
      "Connections refused or closed by authentication, by reason: "         \
      "tls_handshake, tls_principal (no mapping rule), credentials (a "      \
      "failed login), mechanism (not offered), unauthenticated_request "     \
      "(a request before the login), session_expired, illegal_state.",      \
      "reason")                                                                \
    X(M_SEC_RELOAD_FAIL, "sluice_security_reload_failures_total", COUNTER,     \
      "TLS certificate or SASL credentials reloads rejected (the running "   \
      "ones stayed).", NULL)                                                   \
    X(M_LOOP_BUSY, "sluice_event_loop_busy_seconds_total", COUNTER,            \
      "Time the event loop spent not waiting for events.", NULL)               \
    X(M_UPTIME, "sluice_uptime_seconds", GAUGE, "Seconds since start.", NULL)

enum { SL_DAEMON_METRICS(SL_METRIC_ENUM) M__COUNT };
static const sl_metric_desc metric_table[] = {
    SL_DAEMON_METRICS(SL_METRIC_DESC)};

static const sl_metric_desc *M(int id)
{
    return &metric_table[id];
}

/* Pressure controllers: the memory budget's, then one per broker. */
static void emit_pressure(sl_server *srv, sl_metrics *em)
{
    sl_policy_state *st = srv->pstate;
    char b[16];

    for (size_t i = 0; i < sl_policy_pressure_count(st); i++) {
        sl_policy_pressure_view v;
        if (sl_policy_pressure_at(st, i, &v) != 0)
            continue;
        if (v.broker == SL_POLICY_BROKER_MEMORY) {
            sl_metrics_emit(em, M(M_MEM_PRESSURE), v.limited ? 1 : 0);
            if (v.limited)
                sl_metrics_emit(em, M(M_MEM_ADMITTED), v.admitted_bps);
            continue;
        }
        snprintf(b, sizeof(b), "%d", (int)v.broker);
        sl_metrics_emit(em, M(M_BROKER_PRESSURE), v.limited ? 1 : 0, b);
        if (v.limited)
            sl_metrics_emit(em, M(M_BROKER_ADMITTED), v.admitted_bps, b);
        sl_metrics_emit(em, M(M_BROKER_ACKED), v.delivered_bps, b);
        if (!isnan(v.signal))
            sl_metrics_emit(em, M(M_BROKER_SIGNAL), v.signal / 1000.0, b);
        sl_metrics_emit(em, M(M_BROKER_CUTS), (double)v.cuts, b);
        for (size_t c = 0; c < sl_policy_class_count(srv->policy); c++) {
            sl_policy_pressure_class pc;
            sl_policy_class_info ci;
            if (sl_policy_pressure_class_at(st, i, c, &pc) != 0)
                continue;
            sl_policy_class_describe(sl_policy_class_at(srv->policy, c), &ci);
            sl_metrics_emit(em, M(M_BROKER_CLASS_BYTES), (double)pc.bytes, b,
                            ci.name);
            if (v.limited)
                sl_metrics_emit(em, M(M_BROKER_CLASS_SHARE), pc.share_bps, b,
                                ci.name);
        }
    }
}

/* The pressure controller of upstream broker id; a view that is not
 * limited and has no signal when there is none (no policy, or no traffic
 * to the broker yet). */
static void broker_pressure(sl_server *srv, int32_t id,
                            sl_policy_pressure_view *v)
{
    for (size_t k = 0; srv->pstate &&
                       k < sl_policy_pressure_count(srv->pstate);
         k++)
        if (sl_policy_pressure_at(srv->pstate, k, v) == 0 && v->broker == id)
            return;
    memset(v, 0, sizeof(*v));
    v->broker = id;
    v->reason = SL_THROTTLE_NONE;
    v->signal = NAN;
}

static void collect(sl_server *srv, sl_metrics *em)
{
    int64_t now_us = sl__now_us();
    char b[32];

    if (srv->pstate) {
        for (const sl_policy_account *a =
                 sl_policy_state_first_account(srv->pstate);
             a; a = sl_policy_account_next(a)) {
            const sl_policy_counters *c = sl_policy_account_counters(a);
            const char *n = sl_policy_account_is_default(a)
                                ? "(default)"
                                : sl_policy_account_name(a);
            const char *cl = sl_policy_account_class_name(a);
            /* Default accounts (one per unmatched client.id) are folded
             * into one "(default)" series: client.ids are unbounded. */
            if (sl_policy_account_is_default(a))
                continue;
            sl_metrics_emit(em, M(M_CONN_BYTES), (double)c->bytes, n, cl);
            sl_metrics_emit(em, M(M_CONN_RECORDS), (double)c->records, n, cl);
            sl_metrics_emit(em, M(M_CONN_REQUESTS), (double)c->requests, n,
                            cl);
            sl_metrics_emit(em, M(M_CONN_PAUSED),
                            sl_policy_account_paused(a, now_us) ? 1 : 0, n, cl);
            for (int r = 1; r < SL_THROTTLE__COUNT; r++) {
                const char *rn = sl_throttle_reason_name(r);
                sl_metrics_emit(em, M(M_CONN_THR_SEC),
                                (double)c->throttle_ms[r] / 1000.0, n, cl, rn);
                sl_metrics_emit(em, M(M_CONN_THR_EV),
                                (double)c->throttle_events[r], n, cl, rn);
            }
        }
        {
            /* Unmatched clients, summed. */
            sl_policy_counters sum = {0};
            bool any = false;
            for (const sl_policy_account *a =
                     sl_policy_state_first_account(srv->pstate);
                 a; a = sl_policy_account_next(a)) {
                const sl_policy_counters *c = sl_policy_account_counters(a);
                if (!sl_policy_account_is_default(a))
                    continue;
                any = true;
                sum.bytes += c->bytes;
                sum.records += c->records;
                sum.requests += c->requests;
            }
            if (any) {
                sl_metrics_emit(em, M(M_CONN_BYTES), (double)sum.bytes,
                                "(default)", "");
                sl_metrics_emit(em, M(M_CONN_RECORDS), (double)sum.records,
                                "(default)", "");
                sl_metrics_emit(em, M(M_CONN_REQUESTS), (double)sum.requests,
                                "(default)", "");
            }
        }
        for (size_t i = 0; i < sl_policy_state_class_count(srv->pstate); i++) {
            sl_policy_class_state cs;
            if (sl_policy_state_class_at(srv->pstate, i, now_us, &cs) != 0)
                continue;
            sl_metrics_emit(em, M(M_CLASS_BUDGET), cs.share_bps, cs.name);
            sl_metrics_emit(em, M(M_CLASS_BYTES), (double)cs.counters.bytes,
                            cs.name);
            sl_metrics_emit(em, M(M_CLASS_ACTIVE), cs.active ? 1 : 0, cs.name);
        }
    }
    for (size_t i = 0; i < srv->errors_n; i++)
        sl_metrics_emit(em, M(M_CONN_ERRORS), (double)srv->errors[i].count,
                        srv->errors[i].connector, srv->errors[i].klass,
                        sl_kafka_err_name(srv->errors[i].code));
    for (size_t i = 0; i < srv->up.n_brokers; i++) {
        sl_broker_stats *bs = &srv->up.brokers[i];
        if (bs->id < 0)
            continue;
        snprintf(b, sizeof(b), "%d", bs->id);
        sl_metrics_emit_hist(em, M(M_BROKER_LAT), &bs->latency, b);
        sl_metrics_emit(em, M(M_BROKER_INFLIGHT), (double)bs->inflight, b);
        sl_metrics_emit(em, M(M_BROKER_THR), bs->throttle_ms_total / 1000.0,
                        b);
        sl_metrics_emit(em, M(M_BROKER_FAILED), (double)bs->failed, b);
        sl_metrics_emit(em, M(M_BROKER_RTT), bs->rtt_p99_ms / 1000.0, b);
        sl_metrics_emit(em, M(M_BROKER_QUEUE), bs->queue_p99_ms / 1000.0, b);
        sl_metrics_emit(em, M(M_BROKER_REQS), (double)bs->requests_inflight,
                        b);
    }
    if (srv->pstate)
        emit_pressure(srv, em);
    sl_metrics_emit(em, M(M_CONNS), (double)srv->n_conns);
    sl_metrics_emit(em, M(M_INFLIGHT_BYTES), (double)srv->mem_used);
    sl_metrics_emit(em, M(M_BUDGET), (double)srv->cfg->memory_budget_bytes);
    sl_metrics_emit(em, M(M_IDEM_ENTRIES), (double)sl_idem_count(srv->idem));
    sl_metrics_emit(em, M(M_IDEM_BYTES), (double)sl_idem_bytes(srv->idem));
    sl_metrics_emit(em, M(M_IDEM_EVICTED), (double)sl_idem_evicted(srv->idem));
    sl_metrics_emit(em, M(M_OUTSTANDING), (double)srv->up.outstanding);
    sl_metrics_emit(em, M(M_POLICY_GEN), (double)srv->policy_generation);
    sl_metrics_emit(em, M(M_RELOAD_FAIL), (double)srv->policy_reload_failures);
    if (srv->sec.tls != NULL)
        sl_metrics_emit(em, M(M_TLS_HANDSHAKES),
                        (double)srv->sec.tls_handshakes);
    if (srv->sec.creds != NULL)
        for (int m = 0; m < SL_SASL__MECH_COUNT; m++)
            if (srv->sec.mechs & (1u << m))
                sl_metrics_emit(em, M(M_SASL_LOGINS),
                                (double)srv->sec.logins[m],
                                sl_sasl_mech_name((sl_sasl_mech)m));
    if (srv->sec.tls != NULL || srv->sec.creds != NULL) {
        for (int k = 0; k < SL_AUTH_FAIL__COUNT; k++)
            sl_metrics_emit(em, M(M_AUTH_FAILURES),
                            (double)srv->sec.failures[k],
                            sl_auth_failure_names[k]);
        sl_metrics_emit(em, M(M_SEC_RELOAD_FAIL),
                        (double)srv->sec.reload_failures);
    }
    {
        uint64_t wall_ns = uv_hrtime() - srv->start_ns;
        uint64_t idle_ns = uv_metrics_idle_time(srv->loop);
        sl_metrics_emit(em, M(M_LOOP_BUSY),
                        (double)(wall_ns > idle_ns ? wall_ns - idle_ns : 0) /
                            1e9);
        sl_metrics_emit(em, M(M_UPTIME), (double)wall_ns / 1e9);
    }
}

/* ---- error counters ---------------------------------------------------- */

void sl__admin_count_error(sl_server *srv, const char *connector,
                           const char *klass, int16_t code)
{
    for (size_t i = 0; i < srv->errors_n; i++) {
        sl_err_count *e = &srv->errors[i];
        if (e->code == code && strcmp(e->connector, connector) == 0 &&
            strcmp(e->klass, klass) == 0) {
            e->count++;
            return;
        }
    }
    /* Bounded: connectors x errors seen; past the cap, one overflow row. */
    if (srv->errors_n == SL_MAX_ERROR_SERIES) {
        srv->errors[SL_MAX_ERROR_SERIES - 1].count++;
        return;
    }
    srv->errors = sl_realloc(srv->errors,
                             (srv->errors_n + 1) * sizeof(*srv->errors));
    srv->errors[srv->errors_n].code = code;
    snprintf(srv->errors[srv->errors_n].connector,
             sizeof(srv->errors[0].connector), "%s", connector);
    snprintf(srv->errors[srv->errors_n].klass, sizeof(srv->errors[0].klass),
             "%s", klass);
    srv->errors[srv->errors_n].count = 1;
    srv->errors_n++;
}

/* ---- handlers ------------------------------------------------------------ */

static void h_metrics(const sl_http_request *req, sl_http_response *resp,
                      void *ud)
{
    sl_server *srv = ud;
    sl_metrics *em = sl_metrics_new(metric_table, M__COUNT);
    sl_wr w;
    uint8_t *buf;
    size_t len;

    collect(srv, em);
    sl_wr_init(&w, 8192);
    sl_metrics_render_prometheus(em, &w);
    sl_metrics_free(em);
    buf = sl_wr_release(&w, &len);
    sl_http_respond_take(resp, 200, "text/plain; version=0.0.4; charset=utf-8",
                         buf, len);
}

static void h_metrics_json(const sl_http_request *req, sl_http_response *resp,
                           void *ud)
{
    sl_metrics *em = sl_metrics_new(metric_table, M__COUNT);
    collect(ud, em);
    sl_http_respond_json(resp, 200, sl_metrics_render_json(em));
    sl_metrics_free(em);
}

static void h_healthz(const sl_http_request *req, sl_http_response *resp,
                      void *ud)
{
    sl_http_respond_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(const sl_http_request *req, sl_http_response *resp,
                     void *ud)
{
    sl_server *srv = ud;
    bool policy_ok = srv->cfg->policy_file == NULL || srv->policy != NULL;
    bool meta_ok = sl__metacache_fresh(srv->meta);
    bool up_ok = !srv->up.fatal;
    bool ready = policy_ok && meta_ok && up_ok && !srv->shutting_down;
    sl_http_respond_json(
        resp, ready ? 200 : 503,
        json_pack("{s:s,s:b,s:b,s:b,s:b}", "status",
                  ready ? "ready" : "not ready", "policy_loaded", policy_ok,
                  "upstream_metadata_fresh", meta_ok, "upstream_producer_ok",
                  up_ok, "shutting_down", srv->shutting_down));
}

static json_t *status_json(sl_server *srv)
{
    int64_t now_us = sl__now_us();
    json_t *root = json_object(), *classes = json_array(),
           *connectors = json_array(), *brokers = json_array();

    {
        uv_timeval64_t tv;
        uv_gettimeofday(&tv);
        json_object_set_new(root, "time_ms",
                            json_integer((json_int_t)tv.tv_sec * 1000 +
                                         tv.tv_usec / 1000));
    }
    json_object_set_new(
        root, "policy",
        json_pack("{s:I,s:s,s:s?,s:I}", "generation",
                  (json_int_t)srv->policy_generation, "mode",
                  srv->policy == NULL ? "none"
                  : sl_policy_mode_of(srv->policy) == SL_POLICY_SHADOW
                      ? "shadow"
                      : "enforce",
                  "source", srv->cfg->policy_file, "reload_failures",
                  (json_int_t)srv->policy_reload_failures));
    if (srv->pstate) {
        for (size_t i = 0; i < sl_policy_state_class_count(srv->pstate); i++) {
            sl_policy_class_state cs;
            if (sl_policy_state_class_at(srv->pstate, i, now_us, &cs) == 0)
                json_array_append_new(
                    classes,
                    json_pack("{s:s,s:f,s:I,s:b}", "name", cs.name,
                              "share_bytes_per_sec", cs.share_bps,
                              "bytes_total", (json_int_t)cs.counters.bytes,
                              "active", cs.active));
        }
        for (const sl_policy_account *a =
                 sl_policy_state_first_account(srv->pstate);
             a; a = sl_policy_account_next(a)) {
            const sl_policy_counters *c = sl_policy_account_counters(a);
            int best = 0, conns = 0;
            uint64_t ms = 0, ev = 0;
            if (sl_policy_account_is_default(a))
                continue;
            for (int r = 1; r < SL_THROTTLE__COUNT; r++) {
                ms += c->throttle_ms[r];
                ev += c->throttle_events[r];
                if (c->throttle_ms[r] > c->throttle_ms[best])
                    best = r;
            }
            for (sl_conn *cn = srv->conns; cn; cn = cn->next)
                conns += cn->acct == a;
            json_array_append_new(
                connectors,
                json_pack("{s:s,s:s,s:I,s:I,s:i,s:{s:s,s:I,s:I},s:b,s:f}",
                          "name", sl_policy_account_name(a), "class",
                          sl_policy_account_class_name(a), "bytes_total",
                          (json_int_t)c->bytes, "records_total",
                          (json_int_t)c->records, "connections", conns,
                          "throttle", "reason", sl_throttle_reason_name(best),
                          "ms_total", (json_int_t)ms, "events_total",
                          (json_int_t)ev, "paused",
                          sl_policy_account_paused(a, now_us), "tokens",
                          sl_policy_account_tokens(a, now_us)));
        }
    }
    for (size_t i = 0; i < srv->up.n_brokers; i++) {
        sl_broker_stats *bs = &srv->up.brokers[i];
        sl_policy_pressure_view pv;
        json_t *admitted = json_null();
        double p50 = sl_hist_quantile(&bs->latency, 0.5) * 1000.0;
        double p99 = sl_hist_quantile(&bs->latency, 0.99) * 1000.0;
        if (bs->id < 0)
            continue;
        broker_pressure(srv, bs->id, &pv);
        if (pv.limited)
            admitted = json_real(pv.admitted_bps);
        json_array_append_new(
            brokers,
            json_pack("{s:i,s:s,s:{s:o,s:o},s:I,s:o,s:b,s:s,s:o,s:f,s:I,s:I}",
                      "id",
                      bs->id, "host", bs->name, "latency_ms", "p50",
                      isnan(p50) ? json_null() : json_real(p50), "p99",
                      isnan(p99) ? json_null() : json_real(p99), "inflight",
                      (json_int_t)bs->inflight, "admitted_bytes_per_sec",
                      admitted, "limited", pv.limited, "pressure_reason",
                      sl_throttle_reason_name(pv.limited ? pv.reason
                                                         : SL_THROTTLE_NONE),
                      "pressure_latency_ms",
                      isnan(pv.signal) ? json_null() : json_real(pv.signal),
                      "throttle_ms_total", bs->throttle_ms_total,
                      "delivered_total", (json_int_t)bs->delivered,
                      "failed_total", (json_int_t)bs->failed));
    }
    json_object_set_new(root, "classes", classes);
    json_object_set_new(root, "connectors", connectors);
    json_object_set_new(root, "brokers", brokers);
    json_object_set_new(
        root, "process",
        json_pack("{s:I,s:I,s:I}", "connections", (json_int_t)srv->n_conns,
                  "inflight_bytes", (json_int_t)srv->mem_used,
                  "upstream_outstanding", (json_int_t)srv->up.outstanding));
    {
        /* The timeline: the last events, oldest first. */
        json_t *events = json_array();
        for (size_t k = 0; k < sl_events_count(&srv->events); k++) {
            const sl_event *e = sl_events_at(&srv->events, k);
            /* The text is UTF-8 cut at a character boundary; an
             * annotation's bytes were valid JSON text to begin with. */
            json_t *o = json_pack("{s:I,s:I,s:s,s:s}", "time_ms",
                                  (json_int_t)e->wall_ms, "seq",
                                  (json_int_t)e->seq, "kind", e->kind,
                                  "text", e->text);
            if (o != NULL)
                json_array_append_new(events, o);
        }
        json_object_set_new(root, "events", events);
    }
    return root;
}

static void h_status(const sl_http_request *req, sl_http_response *resp,
                     void *ud)
{
    sl_http_respond_json(resp, 200, status_json(ud));
}

static void h_policy(const sl_http_request *req, sl_http_response *resp,
                     void *ud)
{
    sl_server *srv = ud;
    char *buf;
    size_t need;

    if (srv->policy == NULL) {
        sl_http_respond_json(resp, 200,
                             json_pack("{s:n,s:s}", "source", "summary",
                                       "no policy_file: nobody is throttled"));
        return;
    }
    /* The summary names classes, quotas and rules; the policy file holds
     * no secrets (principals are names, not credentials). */
    need = sl_policy_summary(srv->policy, NULL, 0) + 1;
    buf = sl_malloc(need);
    sl_policy_summary(srv->policy, buf, need);
    sl_http_respond_json(
        resp, 200,
        json_pack("{s:s,s:I,s:s}", "source", srv->cfg->policy_file,
                  "generation", (json_int_t)srv->policy_generation, "summary",
                  buf));
    sl_free(buf);
}

static void h_reload(const sl_http_request *req, sl_http_response *resp,
                     void *ud)
{
    sl_server *srv = ud;
    if (srv->cfg->policy_file == NULL) {
        sl_http_respond_error(resp, 409, "no policy_file is configured");
        return;
    }
    if (sl__quota_reload(srv, "admin API") != 0) {
        sl_http_respond_error(resp, 422,
                              "the policy file is invalid; the running "
                              "policy (generation %llu) stays; see the log",
                              (unsigned long long)srv->policy_generation);
        return;
    }
    sl_http_respond_json(resp, 200,
                         json_pack("{s:I}", "generation",
                                   (json_int_t)srv->policy_generation));
}

/* POST /v1/connectors/<name>/pause   {"duration_ms": N}   (optional)
 * POST /v1/connectors/<name>/resume
 * POST /v1/connectors/<name>/quota   {"bytes_per_sec": N, "records_per_sec":
 *                                     N, "ttl_ms": N}
 * DELETE-like: POST /v1/connectors/<name>/quota/clear */
static void h_connector_action(const sl_http_request *req,
                               sl_http_response *resp, void *ud)
{
    sl_server *srv = ud;
    char name[256];
    const char *rest = req->route_rest, *slash = strchr(rest, '/');
    const char *action;
    int64_t now = sl__now_us();
    json_t *body = NULL;
    int rc;

    if (slash == NULL || slash == rest || (size_t)(slash - rest) >= sizeof(name)) {
        sl_http_respond_error(resp, 404, "expected /v1/connectors/<name>/"
                                         "pause|resume|quota|quota/clear");
        return;
    }
    memcpy(name, rest, (size_t)(slash - rest));
    name[slash - rest] = '\0';
    action = slash + 1;
    if (srv->pstate == NULL) {
        sl_http_respond_error(resp, 409, "no policy_file is configured");
        return;
    }
    if (req->body_len > 0 && (body = sl_http_request_json(req, resp)) == NULL)
        return; /* 400 answered */
    if (strcmp(action, "pause") == 0) {
        json_t *d = body ? json_object_get(body, "duration_ms") : NULL;
        if (d && (!json_is_integer(d) || json_integer_value(d) <= 0)) {
            sl_http_respond_error(resp, 400, "duration_ms: expected a "
                                             "positive integer");
            goto out;
        }
        rc = sl_policy_pause(srv->pstate, name,
                             d ? now + json_integer_value(d) * 1000 : 0, now);
    } else if (strcmp(action, "resume") == 0) {
        rc = sl_policy_resume(srv->pstate, name, now);
    } else if (strcmp(action, "quota") == 0) {
        sl_policy_quota q = {0};
        json_t *b = body ? json_object_get(body, "bytes_per_sec") : NULL;
        json_t *r = body ? json_object_get(body, "records_per_sec") : NULL;
        json_t *t = body ? json_object_get(body, "ttl_ms") : NULL;
        if ((b && (!json_is_integer(b) || json_integer_value(b) < 0)) ||
            (r && (!json_is_integer(r) || json_integer_value(r) < 0)) ||
            !t || !json_is_integer(t) || json_integer_value(t) <= 0 ||
            (!b && !r)) {
            sl_http_respond_error(resp, 400,
                                  "expected {\"bytes_per_sec\": N, "
                                  "\"records_per_sec\": N, \"ttl_ms\": N} "
                                  "with ttl_ms > 0 and at least one rate");
            goto out;
        }
        q.bytes_per_sec = b ? json_integer_value(b) : 0;
        q.records_per_sec = r ? json_integer_value(r) : 0;
        rc = sl_policy_override(srv->pstate, name, &q,
                                now + json_integer_value(t) * 1000, now);
    } else if (strcmp(action, "quota/clear") == 0) {
        rc = sl_policy_override_clear(srv->pstate, name, now);
    } else {
        sl_http_respond_error(resp, 404, "unknown action \"%s\"", action);
        goto out;
    }
    if (rc == SL_E_NOTFOUND) {
        sl_http_respond_error(resp, 404, "no connector \"%s\" in the policy",
                              name);
    } else if (rc != 0) {
        sl_http_respond_error(resp, 400, "%s: %s", action, sl_strerror(rc));
    } else {
        sl_info("admin API: connector \"%s\": %s", name, action);
        sl__event(srv, "operator", "connector %s: %s", name, action);
        sl_http_respond_json(resp, 200,
                             json_pack("{s:s,s:s}", "connector", name,
                                       "action", action));
    }
out:
    json_decref(body);
}

/* POST /v1/annotations {"text": "..."}: a note on the status page's
 * timeline (as a Grafana annotation), from a person or a script. */
static void h_annotation(const sl_http_request *req, sl_http_response *resp,
                         void *ud)
{
    sl_server *srv = ud;
    json_t *body = sl_http_request_json(req, resp), *t;

    if (body == NULL)
        return; /* 400 answered */
    t = json_object_get(body, "text");
    if (!json_is_string(t) || json_string_length(t) == 0) {
        sl_http_respond_error(resp, 400, "expected {\"text\": \"...\"}");
    } else {
        sl__event(srv, "annotation", "%s", json_string_value(t));
        sl_info("admin API: annotation: %s", json_string_value(t));
        sl_http_respond_json(resp, 200,
                             json_pack("{s:I}", "seq",
                                       (json_int_t)srv->events.total));
    }
    json_decref(body);
}

static void h_static(const sl_http_request *req, sl_http_response *resp,
                     void *ud)
{
    const sl_www_asset *a = sl_www_find(req->path);
    if (a == NULL) {
        sl_http_respond_error(resp, 404, "no such page: %s", req->path);
        return;
    }
    sl_http_respond(resp, 200, a->content_type, a->data, a->len);
}

static const sl_http_route routes[] = {
    {"GET", "/metrics", h_metrics, false},
    {"GET", "/healthz", h_healthz, false},
    {"GET", "/readyz", h_readyz, false},
    {"GET", "/v1/status", h_status, false},
    {"GET", "/v1/metrics", h_metrics_json, false},
    {"GET", "/v1/policy", h_policy, false},
    {"POST", "/v1/policy/reload", h_reload, true},
    {"POST", "/v1/connectors/*", h_connector_action, true},
    {"POST", "/v1/annotations", h_annotation, true},
    {"GET", "/*", h_static, false},
};

int sl__admin_start(sl_server *srv, char *err, size_t errlen)
{
    sl_http_config hc;
    char host[256];
    int port, rc;

    if (srv->cfg->http_listen == NULL)
        return 0;
    if (sl_config_split_hostport(srv->cfg->http_listen, host, sizeof(host),
                                 &port) != 0) {
        snprintf(err, errlen, "http.listen: \"%s\" is not host:port",
                 srv->cfg->http_listen);
        return SL_E_CONFIG;
    }
    memset(&hc, 0, sizeof(hc));
    hc.host = host;
    hc.port = port;
    hc.router.routes = routes;
    hc.router.nroutes = SL_ARRAY_SIZE(routes);
    hc.router.admin_token = srv->cfg->http_admin_token;
    hc.router.ud = srv;
    if ((srv->cfg->http_tls_cert_file == NULL) !=
        (srv->cfg->http_tls_key_file == NULL)) {
        snprintf(err, errlen, "http.tls_cert_file and http.tls_key_file go "
                              "together");
        return SL_E_CONFIG;
    }
    if (srv->cfg->http_tls_cert_file != NULL) {
        /* The TLS module reads tls.* keys: give it the http.* ones. */
        sl_config tc;
        char e[400];
        memset(&tc, 0, sizeof(tc));
        tc.tls_cert_file = srv->cfg->http_tls_cert_file;
        tc.tls_key_file = srv->cfg->http_tls_key_file;
        tc.tls_principal_mapping_rules = (char *)"DEFAULT";
        if (sl_tls_ctx_new(&tc, &hc.tls, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "http: %s", e);
            return SL_E_CONFIG;
        }
    }
    rc = sl_http_server_start(srv->loop, &hc, &srv->http, err, errlen);
    sl_tls_ctx_unref(hc.tls); /* the server holds its own */
    if (rc != 0)
        return SL_E_CONFIG;
    sl_info("operator %s on %s:%d (/metrics, /healthz, /readyz, /v1/, /)%s",
            srv->cfg->http_tls_cert_file ? "HTTPS" : "HTTP", host, sl_http_server_port(srv->http),
            srv->cfg->http_admin_token ? ""
                                       : "; admin calls disabled (no "
                                         "http.admin_token)");
    return 0;
}

void sl__admin_close(sl_server *srv)
{
    if (srv->http) {
        sl_http_server_close(srv->http, NULL, NULL);
        srv->http = NULL;
    }
}
