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

static void on_unmute(uv_timer_t *t)
{
    sl_mute *m = t->data;
    if (m->conn == NULL)
        return;
    m->conn->muted = false;
    sl__conn_update_reading(m->conn);
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
                             (const struct sockaddr *)&c->peer_addr, NULL};
    sl_policy_resolution res;

    detach(c);
    c->acct = sl_policy_account_get(srv->pstate, &id, sl__now_us(), &res);
    c->connector = res.connector;
    if (c->acct == NULL) {
        c->refused = sl_strdup(res.why);
        sl_warn("conn %llu %s (client.id \"%s\"): refused by policy: %s",
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

uint32_t sl__quota_charge(sl_conn *c, uint64_t bytes, uint64_t records)
{
    sl_policy_decision d;

    if (c->srv->pstate == NULL || c->acct == NULL)
        return 0;
    sl_policy_charge(c->srv->pstate, c->acct, bytes, records, sl__now_us(),
                     &d);
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
    return 0;
}

static void on_hup(uv_signal_t *s, int signum)
{
    sl__quota_reload(s->data, "SIGHUP");
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
    if (path == NULL) {
        sl_info("no policy_file: no quotas or class budgets are enforced");
        return 0;
    }
    if (sl_policy_load_file(path, &srv->policy, err, errlen) != 0)
        return SL_E_CONFIG;
    srv->pstate = sl_policy_state_new(srv->policy, sl__now_us());
    srv->policy_generation = 1;
    uv_signal_start(&srv->sig_hup, on_hup, SIGHUP);
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
