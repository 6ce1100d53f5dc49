/*
 * Policy glue: loads and live-reloads the policy file, attaches every
 * connection to its policy account, and turns policy decisions into
 * throttle hints plus muted sockets. The decisions themselves are made by
 * the pure engine in policy/.
 *
 * Reload: SIGHUP, or a change of the file seen by uv_fs_poll (stat every
 * 500 ms, which also catches editors that replace the file). The new file
 * is validated completely before anything changes; an invalid one is
 * logged with file, line and field and the running policy stays. A valid
 * one is bound to the accounting state (bucket levels survive) and every
 * live connection is re-resolved, without disconnecting anyone.
 *
 * Loop thread only. The file is read on the loop thread: policy files are
 * small next to a 500 ms poll (10,000 connectors parse in tens of ms).
 */
#include "sluice/server.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define POLL_INTERVAL_MS 500
/* Shadow-mode report lines per connection at most this often. */
#define SHADOW_REPORT_MS 10000

typedef struct sl_mute {
    uv_timer_t timer;
    sl_conn *conn; /* NULL once the connection is gone */
} sl_mute;

int64_t sl__now_us(void)
{
    return (int64_t)(uv_hrtime() / 1000);
}

/* ---- muting ---------------------------------------------------------------- */

static void conn_unmute(sl_conn *c)
{
    uv_timer_stop(&c->mute->timer);
    c->muted = c->muted_by_pressure = false;
    sl__conn_update_reading(c);
}

static void on_unmute(uv_timer_t *t)
{
    sl_mute *m = t->data;
    if (m->conn != NULL)
        conn_unmute(m->conn);
}

static void mute_closed(uv_handle_t *h)
{
    sl_free(h->data);
}

void sl__conn_mute(sl_conn *c, uint32_t ms)
{
    if (c->closing || ms == 0)
        return;
    if (c->mute == NULL) {
        c->mute = sl_calloc(1, sizeof(*c->mute));
        c->mute->conn = c;
        uv_timer_init(c->srv->loop, &c->mute->timer);
        c->mute->timer.data = c->mute;
    }
    c->muted = true;
    uv_timer_start(&c->mute->timer, on_unmute, ms, 0);
    sl__conn_update_reading(c);
}

/* ---- accounts --------------------------------------------------------------- */

static void detach(sl_conn *c)
{
    if (c->acct)
        sl_policy_account_put(c->srv->pstate, c->acct);
    c->acct = NULL;
    c->connector = NULL;
    sl_free(c->refused);
    c->refused = NULL;
}

static void attach(sl_conn *c)
{
    sl_server *srv = c->srv;
    sl_policy_identity id = {c->policy_cid,
                             (const struct sockaddr *)&c->peer_addr,
                             c->principal};
    sl_policy_resolution res;

    detach(c);
    c->acct = sl_policy_account_get(srv->pstate, &id, sl__now_us(), &res);
    c->connector = res.connector;
    if (c->acct == NULL) {
        c->refused = sl_strdup(res.why);
        sl_warn_client(
            "conn %llu %s (client.id \"%s\"): refused by policy: %s",
            (unsigned long long)c->id, c->peer, c->client_id, res.why);
    } else {
        sl_debug("conn %llu %s (client.id \"%s\"): %s", (unsigned long long)c->id,
                 c->peer, c->client_id, res.why);
    }
}

void sl__quota_identify(sl_conn *c, sl_kstr client_id)
{
    if (c->srv->pstate == NULL)
        return;
    if (c->policy_resolved) {
        const char *old = c->policy_cid ? c->policy_cid : "";
        size_t len = client_id.len > 0 ? (size_t)client_id.len : 0;
        if (strlen(old) == len && memcmp(old, client_id.p, len) == 0)
            return;
    }
    sl_free(c->policy_cid);
    c->policy_cid = client_id.len > 0
                        ? sl_strndup(client_id.p, (size_t)client_id.len)
                        : NULL;
    c->policy_resolved = true;
    attach(c);
}

void sl__quota_principal_changed(sl_conn *c)
{
    /* Resolved already (a request came before the login, or a re-login
     * named someone else): resolve again. Else the next request does. */
    if (c->srv->pstate != NULL && c->policy_resolved)
        attach(c);
}

void sl__quota_conn_release(sl_conn *c)
{
    if (c->srv->pstate)
        detach(c);
    sl_free(c->policy_cid);
    c->policy_cid = NULL;
    sl_free(c->refused);
    c->refused = NULL;
    if (c->mute) {
        c->mute->conn = NULL;
        uv_close((uv_handle_t *)&c->mute->timer, mute_closed);
        c->mute = NULL;
    }
}

bool sl__quota_topic_allowed(sl_conn *c, sl_kstr topic)
{
    if (c->srv->policy == NULL)
        return true;
    return sl_policy_topic_allowed(c->srv->policy, c->connector, topic.p,
                                   topic.len > 0 ? (size_t)topic.len : 0);
}

uint32_t sl__quota_charge(sl_conn *c, uint64_t bytes, uint64_t records,
                          const sl_policy_broker_bytes *per, size_t n)
{
    sl_policy_decision d;

    if (c->srv->pstate == NULL || c->acct == NULL)
        return 0;
    sl_policy_charge_brokers(c->srv->pstate, c->acct, bytes, records, per, n,
                             sl__now_us(), &d);
    if (d.throttle_ms == 0)
        return 0;
    if (!d.enforced) {
        uint64_t now = sl__now_ms(c->srv);
        sl_debug("conn %llu (%s): shadow mode: would throttle %u ms (%s)",
                 (unsigned long long)c->id, sl_policy_account_name(c->acct),
                 d.throttle_ms, sl_throttle_reason_name(d.reason));
        c->shadow_events++;
        c->shadow_ms += d.throttle_ms;
        if (c->shadow_reported_ms == 0 ||
            now - c->shadow_reported_ms >= SHADOW_REPORT_MS) {
            sl_info("shadow mode: connector \"%s\" (conn %llu %s) would have "
                    "been throttled %llu times for %llu ms in all since the "
                    "last report (latest: %u ms, %s); nothing enforced",
                    sl_policy_account_name(c->acct), (unsigned long long)c->id,
                    c->peer, (unsigned long long)c->shadow_events,
                    (unsigned long long)c->shadow_ms, d.throttle_ms,
                    sl_throttle_reason_name(d.reason));
            c->shadow_reported_ms = now;
            c->shadow_events = c->shadow_ms = 0;
        }
        return 0;
    }
    sl_debug("conn %llu (%s): throttle %u ms (%s)", (unsigned long long)c->id,
             sl_policy_account_name(c->acct), d.throttle_ms,
             sl_throttle_reason_name(d.reason));
    sl__conn_mute(c, d.throttle_ms);
    c->muted_by_pressure = d.reason == SL_THROTTLE_BROKER_LATENCY ||
                           d.reason == SL_THROTTLE_BROKER_THROTTLE ||
                           d.reason == SL_THROTTLE_MEMORY;
    return d.throttle_ms;
}

bool sl__quota_held(sl_conn *c)
{
    const sl_policy *pol = c->srv->policy;
    if (c->acct == NULL || !sl_policy_account_paused(c->acct, sl__now_us()))
        return false;
    if (c->connector != NULL)
        return sl_policy_connector_mode(c->connector) == SL_POLICY_ENFORCE;
    return sl_policy_mode_of(pol) == SL_POLICY_ENFORCE;
}

/* ---- pressure ---------------------------------------------------------------- */

/* Every PRESSURE_INTERVAL_MS each upstream broker's signals become one
 * controller step (policy/pressure.c): the p90 of the delivery latencies
 * reported in the interval, or, when nothing was delivered but records
 * are out, how long the broker has made no progress (a broker that stops
 * answering sends no samples at all); the largest throttle time it
 * returned; and the memory budget's fill. */
#define PRESSURE_INTERVAL_MS 100

static void pressure_log(sl_server *srv, const sl_policy_pressure_view *v)
{
    char who[32], rate[32];
    const char *unit = v->broker == SL_POLICY_BROKER_MEMORY ? "permille"
                                                             : "ms";

    if (v->broker == SL_POLICY_BROKER_MEMORY)
        snprintf(who, sizeof(who), "memory budget");
    else
        snprintf(who, sizeof(who), "broker %d", (int)v->broker);
    snprintf(rate, sizeof(rate), "%.2f MiB/s", v->admitted_bps / 1048576.0);
    switch (v->last_event) {
    case SL_CTL_BEGIN:
        sl_info("pressure: %s limited (%s, signal %.1f %s, was taking "
                "%.2f MiB/s): admitted rate %s, shed by class order",
                who, sl_throttle_reason_name(v->reason), v->signal, unit,
                v->measured_bps / 1048576.0, rate);
        sl__event(srv, "pressure",
                  "%s limited (%s, signal %.0f %s): admitted %s, shed by "
                  "class order",
                  who, sl_throttle_reason_name(v->reason), v->signal, unit,
                  rate);
        break;
    case SL_CTL_RELEASE:
        sl_info("pressure: %s recovered (signal %.1f %s); no limit after "
                "%llu cuts in all", who, v->signal, unit,
                (unsigned long long)v->cuts);
        sl__event(srv, "pressure", "%s recovered (signal %.0f %s)", who,
                  v->signal, unit);
        break;
    case SL_CTL_CUT:
    case SL_CTL_RAISE:
        sl_debug("pressure: %s %s to %s (%s, signal %.1f %s, measured "
                 "%.2f MiB/s)", who,
                 v->last_event == SL_CTL_CUT ? "cut" : "raised", rate,
                 sl_throttle_reason_name(v->reason), v->signal, unit,
                 v->measured_bps / 1048576.0);
        break;
    default:
        break;
    }
}

static void on_pressure_tick(uv_timer_t *t)
{
    sl_server *srv = t->data;
    sl_upstream *up = &srv->up;
    sl_pressure_sample *s;
    size_t n = 0;
    uint64_t now = sl__now_ms(srv);
    double fill = 0;

    if (srv->pstate == NULL)
        return;
    s = sl_malloc((up->n_brokers + 1) * sizeof(*s));
    for (size_t i = 0; i < up->n_brokers; i++) {
        sl_broker_stats *bs = &up->brokers[i];
        sl_hist d;
        double lat = NAN;

        sl_hist_sub(&d, &bs->latency, &bs->tick_snap);
        bs->tick_snap = bs->latency;
        if (bs->id < 0)
            continue;
        if (d.count > 0) {
            lat = sl_hist_quantile(&d, 0.9) * 1000.0;
        } else if (bs->inflight > 0) {
            uint64_t since = SL_MAX(bs->busy_since_ms, bs->last_dr_ms);
            lat = now > since ? (double)(now - since) : 0;
        }
        s[n].broker = bs->id;
        s[n].latency_ms = lat;
        s[n].throttle_ms = bs->tick_throttle_ms;
        s[n].acked_bytes = bs->tick_acked_bytes;
        bs->tick_throttle_ms = 0;
        bs->tick_acked_bytes = 0;
        n++;
    }
    if (srv->cfg->memory_budget_bytes > 0)
        fill = (double)srv->mem_used * 1000.0 /
               (double)srv->cfg->memory_budget_bytes;
    if (sl_policy_pressure_tick(srv->pstate, sl__now_us(), s, n, fill) > 0) {
        bool raised = false;
        for (size_t i = 0; i < sl_policy_pressure_count(srv->pstate); i++) {
            sl_policy_pressure_view v;
            if (sl_policy_pressure_at(srv->pstate, i, &v) != 0 ||
                v.last_event == SL_CTL_STEADY)
                continue;
            pressure_log(srv, &v);
            raised |= v.last_event == SL_CTL_RAISE ||
                      v.last_event == SL_CTL_RELEASE;
        }
        /* A client muted for a pressure throttle was muted for the debt at
         * the share of the time; the share just grew, so let it ask
         * again: its next request is charged at the new share (and muted
         * again if still in debt). Without this, an elastic source muted
         * for its class's max_pause_ms just before the broker recovered
         * would sit out the whole pause. */
        if (raised)
            for (sl_conn *c = srv->conns; c; c = c->next)
                if (c->muted && c->muted_by_pressure && !c->closing)
                    conn_unmute(c);
    }
    sl_free(s);
}

/* ---- loading ----------------------------------------------------------------- */

int sl__quota_reload(sl_server *srv, const char *why)
{
    char err[1024], summary[256];
    sl_policy *pol, *old = srv->policy;

    if (srv->cfg->policy_file == NULL)
        return 0;
    if (sl_policy_load_file(srv->cfg->policy_file, &pol, err,
                            sizeof(err)) != 0) {
        srv->policy_reload_failures++;
        sl_error("policy reload (%s) failed; keeping generation %llu: %s",
                 why, (unsigned long long)srv->policy_generation, err);
        return SL_E_CONFIG;
    }
    srv->policy = pol;
    sl_policy_state_rebind(srv->pstate, pol, sl__now_us());
    for (sl_conn *c = srv->conns; c; c = c->next)
        if (c->policy_resolved && !c->closing)
            attach(c);
    sl_policy_free(old);
    srv->policy_generation++;
    snprintf(summary, sizeof(summary), "%zu classes, %zu connectors, %s",
             sl_policy_class_count(pol), sl_policy_connector_count(pol),
             sl_policy_mode_of(pol) == SL_POLICY_SHADOW ? "shadow mode"
                                                         : "enforcing");
    sl_info("policy reloaded (%s): generation %llu from %s: %s", why,
            (unsigned long long)srv->policy_generation,
            srv->cfg->policy_file, summary);
    sl__event(srv, "policy", "policy reloaded (%s): generation %llu, %s", why,
              (unsigned long long)srv->policy_generation, summary);
    return 0;
}

static void on_hup(uv_signal_t *s, int signum)
{
    sl_server *srv = s->data;
    if (srv->cfg->policy_file != NULL)
        sl__quota_reload(srv, "SIGHUP");
    sl__security_reload(srv, "SIGHUP");
}

static void on_file(uv_fs_poll_t *p, int status, const uv_stat_t *prev,
                    const uv_stat_t *curr)
{
    sl_server *srv = p->data;
    if (status < 0) {
        sl_warn("policy file %s: %s; keeping generation %llu",
                srv->cfg->policy_file, uv_strerror(status),
                (unsigned long long)srv->policy_generation);
        return;
    }
    sl__quota_reload(srv, "file changed");
}

int sl__quota_init(sl_server *srv, char *err, size_t errlen)
{
    const char *path = srv->cfg->policy_file;

    uv_signal_init(srv->loop, &srv->sig_hup);
    srv->sig_hup.data = srv;
    uv_signal_start(&srv->sig_hup, on_hup, SIGHUP);
    if (path == NULL) {
        sl_info("no policy_file: no quotas or class budgets are enforced");
        return 0;
    }
    if (sl_policy_load_file(path, &srv->policy, err, errlen) != 0)
        return SL_E_CONFIG;
    srv->pstate = sl_policy_state_new(srv->policy, sl__now_us());
    srv->policy_generation = 1;
    uv_timer_init(srv->loop, &srv->pressure_timer);
    srv->pressure_timer.data = srv;
    uv_timer_start(&srv->pressure_timer, on_pressure_tick,
                   PRESSURE_INTERVAL_MS, PRESSURE_INTERVAL_MS);
    uv_fs_poll_init(srv->loop, &srv->policy_poll);
    srv->policy_poll.data = srv;
    uv_fs_poll_start(&srv->policy_poll, on_file, path, POLL_INTERVAL_MS);
    srv->policy_watching = true;
    sl_info("policy %s: %zu classes, %zu connectors, %s", path,
            sl_policy_class_count(srv->policy),
            sl_policy_connector_count(srv->policy),
            sl_policy_mode_of(srv->policy) == SL_POLICY_SHADOW
                ? "shadow mode (nothing enforced)"
                : "enforcing");
    return 0;
}

void sl__quota_close(sl_server *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->sig_hup))
        uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    if (srv->policy_watching) {
        uv_close((uv_handle_t *)&srv->policy_poll, NULL);
        uv_close((uv_handle_t *)&srv->pressure_timer, NULL);
        srv->policy_watching = false;
    }
}

void sl__quota_free(sl_server *srv)
{
    sl_policy_state_free(srv->pstate);
    srv->pstate = NULL;
    sl_policy_free(srv->policy);
    srv->policy = NULL;
}
