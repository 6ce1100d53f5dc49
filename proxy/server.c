/*
 * The server: listener, signals, memory budget, housekeeping and the
 * shutdown sequence. Loop thread only.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting and reading; every request
 * already read is finished (its records settle upstream and it is
 * answered); when nothing is in flight the connections close and the loop
 * ends. If that takes longer than shutdown_timeout_ms, whatever is still
 * queued upstream is purged, which fails those records (the clients get
 * retriable errors, never a success for a record the cluster did not
 * acknowledge), and one second later everything is closed. A second
 * signal goes straight to the purge.
 */
#include "sluice/server.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Reading resumes when the budget falls below this share of the limit. */
#define BUDGET_RESUME_PCT 80

uint64_t sl__now_ms(sl_server *srv)
{
    return uv_now(srv->loop);
}

void sl__event(sl_server *srv, const char *kind, const char *fmt, ...)
{
    uv_timeval64_t tv;
    va_list ap;

    uv_gettimeofday(&tv);
    va_start(ap, fmt);
    sl_events_vadd(&srv->events, tv.tv_sec * 1000 + tv.tv_usec / 1000, kind,
                   fmt, ap);
    va_end(ap);
}

static void set_all_reading(sl_server *srv)
{
    for (sl_conn *c = srv->conns; c; c = c->next)
        sl__conn_update_reading(c);
}

void sl__mem_charge(sl_server *srv, size_t n)
{
    srv->mem_used += n;
    if (!srv->mem_paused &&
        srv->mem_used > (size_t)srv->cfg->memory_budget_bytes) {
        srv->mem_paused = true;
        sl_warn("memory budget: %zu bytes in flight exceed "
                "limits.memory_budget_bytes=%lld; pausing reads from all "
                "clients",
                srv->mem_used, (long long)srv->cfg->memory_budget_bytes);
        set_all_reading(srv);
    }
}

/* Charges the idempotence table's growth to the memory budget (and gives
 * back what it shrank by): its entries are memory requests caused. */
void sl__idem_account(sl_server *srv)
{
    size_t now = sl_idem_bytes(srv->idem);
    if (now > srv->idem_charged)
        sl__mem_charge(srv, now - srv->idem_charged);
    else if (now < srv->idem_charged)
        sl__mem_release(srv, srv->idem_charged - now);
    srv->idem_charged = now;
}

void sl__mem_release(sl_server *srv, size_t n)
{
    srv->mem_used -= n;
    if (srv->mem_paused &&
        srv->mem_used <
            (size_t)srv->cfg->memory_budget_bytes / 100 * BUDGET_RESUME_PCT) {
        srv->mem_paused = false;
        sl_info("memory budget: back to %zu bytes in flight; reading again",
                srv->mem_used);
        set_all_reading(srv);
    }
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish_now(sl_server *srv)
{
    sl_conn *c, *next;
    if (srv->finished)
        return;
    srv->finished = true;
    for (c = srv->conns; c; c = next) {
        next = c->next;
        sl__conn_close(c, NULL);
    }
    close_handle((uv_handle_t *)&srv->shutdown_timer);
    close_handle((uv_handle_t *)&srv->tick);
    close_handle((uv_handle_t *)&srv->flush);
    close_handle((uv_handle_t *)&srv->sig_term);
    close_handle((uv_handle_t *)&srv->sig_int);
    sl__metacache_stop(srv->meta);
    sl__quota_close(srv);
    sl__security_close(srv);
    sl__admin_close(srv);
    sl__upstream_close(&srv->up);
    sl_info("shutdown: all requests answered; exiting");
}

void sl__server_maybe_finish(sl_server *srv)
{
    if (!srv->shutting_down || srv->finished)
        return;
    if (srv->up.outstanding > 0)
        return;
    for (sl_conn *c = srv->conns; c; c = c->next)
        if (c->q_head != NULL || c->writes_pending > 0)
            return;
    finish_now(srv);
}

static void on_hard_deadline(uv_timer_t *t)
{
    sl_server *srv = t->data;
    sl_warn("shutdown: closing with %zu records still upstream",
            srv->up.outstanding);
    finish_now(srv);
}

static void purge_and_finish(sl_server *srv)
{
    sl_warn("shutdown: deadline reached with %zu records upstream; failing "
            "them (clients get retriable errors)",
            srv->up.outstanding);
    sl__upstream_purge(&srv->up);
    uv_timer_stop(&srv->shutdown_timer);
    uv_timer_start(&srv->shutdown_timer, on_hard_deadline, 1000, 0);
}

static void on_deadline(uv_timer_t *t)
{
    purge_and_finish(t->data);
}

static void begin_shutdown(sl_server *srv, const char *why)
{
    if (srv->shutting_down) {
        if (!srv->finished && !srv->purged) {
            srv->purged = true;
            purge_and_finish(srv);
        }
        return;
    }
    srv->shutting_down = true;
    sl_info("shutdown (%s): no new connections or requests; finishing %zu "
            "records in flight (deadline %lld ms)",
            why, srv->up.outstanding, (long long)srv->cfg->shutdown_timeout_ms);
    for (size_t f = 0; f < SL_N_FAMILIES; f++) {
        sl_family *fam = &srv->fam[f];
        if (!fam->enabled)
            continue;
        close_handle((uv_handle_t *)&fam->listener.tcp);
        for (size_t i = 0; i < fam->n_blisten; i++)
            close_handle((uv_handle_t *)&fam->blisten[i]->tcp);
    }
    uv_timer_stop(&srv->tick);
    set_all_reading(srv);
    uv_timer_start(&srv->shutdown_timer, on_deadline,
                   (uint64_t)srv->cfg->shutdown_timeout_ms, 0);
    sl__server_maybe_finish(srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
    begin_shutdown(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_connection(uv_stream_t *ls, int status)
{
    sl_listener *l = ls->data;
    sl_server *srv = l->srv;
    if (status < 0) {
        sl_warn("listener: %s", uv_strerror(status));
        return;
    }
    if (srv->shutting_down)
        return;
    if (srv->n_conns >= (size_t)srv->cfg->max_connections) {
        /* Leave it in the backlog: libuv stops polling the listener until
         * we accept, which on_close does when a connection goes. */
        if (!srv->accept_paused)
            sl_warn("limits.max_connections=%lld reached; new connections "
                    "wait",
                    (long long)srv->cfg->max_connections);
        srv->accept_paused = true;
        l->pending = true;
        return;
    }
    sl__conn_accept(srv, l);
}

static int sockaddr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6
                     ? ((const struct sockaddr_in6 *)ss)->sin6_port
                     : ((const struct sockaddr_in *)ss)->sin_port);
}

static int listener_open(sl_server *srv, sl_family *fam, sl_listener *l,
                         int32_t broker, int port)
{
    struct sockaddr_storage ss = fam->listen_addr, bound;
    int blen = sizeof(bound), rc;

    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    l->srv = srv;
    l->fam = fam;
    l->broker = broker;
    uv_tcp_init(srv->loop, &l->tcp);
    l->tcp.data = l;
    l->open = true;
    if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection)) != 0) {
        uv_close((uv_handle_t *)&l->tcp, NULL);
        l->open = false;
        return rc;
    }
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen) == 0)
        l->port = sockaddr_port(&bound);
    return 0;
}

sl_listener *sl__server_broker_listener(sl_family *fam, int32_t id)
{
    for (size_t i = 0; i < fam->n_blisten; i++)
        if (fam->blisten[i]->broker == id && fam->blisten[i]->open)
            return fam->blisten[i];
    return NULL;
}

/* Called with every broker list the upstream metadata names. A broker that
 * leaves the cluster keeps its listener (clients may still hold its
 * address; whatever they send is forwarded as usual). */
static void family_broker_listeners(sl_server *srv, sl_family *fam,
                                    const int32_t *ids, size_t n)
{
    int64_t base = fam->port_base;

    if (!fam->enabled || base < 0 || srv->shutting_down)
        return;
    for (size_t i = 0; i < n; i++) {
        sl_listener *l;
        int64_t port = base == 0 ? 0 : base + ids[i];
        int rc;
        bool known = false;

        for (size_t k = 0; k < fam->n_blisten; k++)
            known |= fam->blisten[k]->broker == ids[i];
        if (known || ids[i] < 0)
            continue;
        l = sl_calloc(1, sizeof(*l));
        fam->blisten = sl_realloc(fam->blisten, (fam->n_blisten + 1) *
                                                    sizeof(*fam->blisten));
        fam->blisten[fam->n_blisten++] = l; /* kept even if it failed */
        if (port > 65535) {
            sl_error("%s %lld + broker id %d is past port "
                     "65535: broker %d's partitions are advertised on the "
                     "bootstrap listener",
                     SL_PROTO_IS_TLS(fam->proto) ? "tls.broker_port_base"
                                                 : "broker_port_base",
                     (long long)base, (int)ids[i], (int)ids[i]);
            continue;
        }
        if ((rc = listener_open(srv, fam, l, ids[i], (int)port)) != 0) {
            sl_error("listen (%s) for upstream broker %d on port %lld: %s; "
                     "its partitions are advertised on the bootstrap "
                     "listener", sl_security_protocol_name(fam->proto),
                     (int)ids[i], (long long)port, uv_strerror(rc));
            continue;
        }
        sl_info("upstream broker %d: %s clients reach it through %s:%d "
                "(listening on port %d)", (int)ids[i],
                sl_security_protocol_name(fam->proto), fam->adv_host, l->port,
                l->port);
    }
}

void sl__server_broker_listeners(sl_server *srv, const int32_t *ids, size_t n)
{
    for (size_t f = 0; f < SL_N_FAMILIES; f++)
        family_broker_listeners(srv, &srv->fam[f], ids, n);
}

/* Check phase: after this iteration's I/O callbacks, write what they
 * answered. */
static void on_flush(uv_check_t *h)
{
    sl__conn_flush_all(h->data);
}

static void on_tick(uv_timer_t *t)
{
    sl_server *srv = t->data;
    uint64_t now = sl__now_ms(srv);
    sl_idem_expire(srv->idem, (int64_t)now);
    sl__idem_account(srv);
    sl__conn_sweep(srv, now);
    if (now - srv->last_refresh_ms >= (uint64_t)srv->cfg->metadata_refresh_ms) {
        srv->last_refresh_ms = now;
        sl__metacache_refresh_now(srv->meta);
    }
}

/* Fills a family from its configured addresses. key names the listen
 * key for messages ("listen" or "tls.listen"). */
static int family_resolve(sl_family *fam, const char *key, const char *listen,
                          const char *advertised, char *err, size_t errlen)
{
    struct sockaddr_storage *ss = &fam->listen_addr;
    char host[256];
    int port;
    const char *adv = advertised ? advertised : listen;

    fam->listen = listen;
    if (sl_config_split_hostport(listen, host, sizeof(host), &port) != 0 ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) != 0)) {
        snprintf(err, errlen,
                 "%s: \"%s\" is not an IP address and port (e.g. "
                 "127.0.0.1:9092)",
                 key, listen);
        return SL_E_CONFIG;
    }
    if (sl_config_split_hostport(adv, fam->adv_host, sizeof(fam->adv_host),
                                 &fam->adv_port) != 0) {
        snprintf(err, errlen, "advertised address: \"%s\" is not host:port",
                 adv);
        return SL_E_CONFIG;
    }
    if (strcmp(fam->adv_host, "0.0.0.0") == 0 ||
        strcmp(fam->adv_host, "::") == 0)
        sl_warn("advertised address %s is a wildcard; clients elsewhere "
                "cannot reach it: set advertised_listener",
                fam->adv_host);
    fam->enabled = true;
    return 0;
}

static int resolve_listen(sl_server *srv, char *err, size_t errlen)
{
    const sl_config *cfg = srv->cfg;
    sl_family *plain = &srv->fam[0], *tls = &srv->fam[1];

    plain->proto = (sl_security_protocol)(SL_PROTO_PLAINTEXT +
                                          cfg->listen_protocol);
    plain->port_base = cfg->broker_port_base;
    if (family_resolve(plain, "listen", cfg->listen, cfg->advertised_listener,
                       err, errlen) != 0)
        return SL_E_CONFIG;
    tls->proto = (sl_security_protocol)(SL_PROTO_SSL + cfg->tls_protocol);
    tls->port_base = cfg->broker_port_base < 0 ? -1
                                               : cfg->tls_broker_port_base;
    if (cfg->tls_listen != NULL &&
        family_resolve(tls, "tls.listen", cfg->tls_listen,
                       cfg->tls_advertised_listener, err, errlen) != 0)
        return SL_E_CONFIG;
    return 0;
}

int sl_server_run(sl_config *cfg)
{
    sl_server *srv = sl_calloc(1, sizeof(*srv));
    char err[512];
    int rc, exit_code = 0;

    srv->cfg = cfg;
    srv->loop = uv_default_loop();
    srv->start_ms = uv_now(srv->loop);
    srv->start_ns = uv_hrtime();
    /* Idle time for sluice_event_loop_busy_seconds_total. */
    uv_loop_configure(srv->loop, UV_METRICS_IDLE_TIME);
    signal(SIGPIPE, SIG_IGN);

    if (resolve_listen(srv, err, sizeof(err)) != 0 ||
        (cfg->max_connections_per_ip_overrides != NULL &&
         sl_iplimits_parse(cfg->max_connections_per_ip_overrides,
                           &srv->iplimits, err, sizeof(err)) != 0)) {
        sl_error("%s", err);
        sl_free(srv);
        return 2;
    }
    if (sl__security_init(srv, err, sizeof(err)) != 0) {
        sl_error("%s", err);
        sl__security_close(srv);
        uv_run(srv->loop, UV_RUN_DEFAULT);
        sl__security_free(srv);
        sl_iplimits_free(&srv->iplimits);
        uv_loop_close(srv->loop);
        sl_free(srv);
        return 2;
    }
    srv->ipcount = sl_ipcount_new();
    if (sl__upstream_init(&srv->up, srv, err, sizeof(err)) != 0) {
        sl_error("%s", err);
        sl_free(srv);
        return 2;
    }
    if (sl__quota_init(srv, err, sizeof(err)) != 0) {
        sl_error("%s", err);
        uv_close((uv_handle_t *)&srv->sig_hup, NULL);
        sl__security_close(srv);
        sl__upstream_close(&srv->up);
        uv_run(srv->loop, UV_RUN_DEFAULT);
        sl__upstream_destroy(&srv->up);
        uv_loop_close(srv->loop);
        sl_free(srv);
        return 2;
    }
    srv->meta = sl__metacache_new(srv);
    if (sl__admin_start(srv, err, sizeof(err)) != 0) {
        sl_error("%s", err);
        exit_code = 2;
        sl__quota_close(srv);
        sl__security_close(srv);
        sl__upstream_close(&srv->up);
        uv_run(srv->loop, UV_RUN_DEFAULT);
        goto cleanup;
    }
    /* Producer ids under a random prefix (see sluice/idem.h): they differ
     * across restarts and across instances, so no client is handed the id
     * of another one still retrying. */
    {
        uint32_t prefix = 0;
        int rr = uv_random(NULL, NULL, &prefix, sizeof(prefix), 0, NULL);
        if (rr != 0) {
            /* No entropy source: time and pid, still unlikely to repeat. */
            sl_warn("uv_random: %s; producer ids from the clock instead",
                    uv_strerror(rr));
            prefix = (uint32_t)time(NULL) ^ ((uint32_t)uv_os_getpid() << 16);
        }
        prefix &= 0x7fffffffu;
        prefix += prefix == 0;
        srv->idem = sl_idem_new(prefix, 15 * 60 * 1000);
        sl_idem_set_limit(srv->idem, (size_t)cfg->max_producer_states);
        sl_info("producer ids: prefix %u (ids from %llu)", (unsigned)prefix,
                (unsigned long long)prefix << 32);
    }

    for (size_t f = 0; f < SL_N_FAMILIES; f++) {
        sl_family *fam = &srv->fam[f];
        if (!fam->enabled)
            continue;
        if ((rc = listener_open(srv, fam, &fam->listener, -1,
                                sockaddr_port(&fam->listen_addr))) != 0) {
            sl_error("listen on %s: %s", fam->listen, uv_strerror(rc));
            exit_code = 1;
            for (size_t g = 0; g < f; g++)
                if (srv->fam[g].enabled)
                    close_handle((uv_handle_t *)&srv->fam[g].listener.tcp);
            sl__quota_close(srv);
            sl__security_close(srv);
            sl__admin_close(srv);
            sl__upstream_close(&srv->up);
            uv_run(srv->loop, UV_RUN_DEFAULT);
            goto cleanup;
        }
        /* Port 0 picks a free port: report (and advertise) the real one. */
        if (fam->adv_port == 0)
            fam->adv_port = fam->listener.port;
        fam->listen_port = fam->listener.port;
    }
    uv_signal_init(srv->loop, &srv->sig_term);
    uv_signal_init(srv->loop, &srv->sig_int);
    srv->sig_term.data = srv->sig_int.data = srv;
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_timer_init(srv->loop, &srv->shutdown_timer);
    srv->shutdown_timer.data = srv;
    uv_timer_init(srv->loop, &srv->tick);
    srv->tick.data = srv;
    uv_check_init(srv->loop, &srv->flush);
    srv->flush.data = srv;
    uv_check_start(&srv->flush, on_flush);
    /* The check handle must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&srv->flush);
    uv_timer_start(&srv->tick, on_tick, 1000, 1000);
    sl__metacache_refresh_now(srv->meta);
    srv->last_refresh_ms = sl__now_ms(srv);

    sl_info("sluice %s listening on %s (port %d, %s), advertised as %s:%d, "
            "upstream %s",
            SL_VERSION, cfg->listen, srv->fam[0].listen_port,
            sl_security_protocol_name(srv->fam[0].proto), srv->fam[0].adv_host,
            srv->fam[0].adv_port, srv->up.bootstrap);
    if (srv->fam[1].enabled)
        sl_info("TLS listener on %s (port %d, %s), advertised as %s:%d",
                cfg->tls_listen, srv->fam[1].listen_port,
                sl_security_protocol_name(srv->fam[1].proto),
                srv->fam[1].adv_host, srv->fam[1].adv_port);
    uv_run(srv->loop, UV_RUN_DEFAULT);

cleanup:
    sl_free(srv->rslab);
    for (size_t f = 0; f < SL_N_FAMILIES; f++) {
        for (size_t i = 0; i < srv->fam[f].n_blisten; i++)
            sl_free(srv->fam[f].blisten[i]);
        sl_free(srv->fam[f].blisten);
    }
    sl__metacache_free(srv->meta);
    sl__quota_free(srv);
    sl__security_free(srv);
    sl__upstream_destroy(&srv->up);
    sl_idem_free(srv->idem);
    sl_ipcount_free(srv->ipcount);
    sl_iplimits_free(&srv->iplimits);
    sl_free(srv->errors);
    uv_loop_close(srv->loop);
    sl_free(srv);
    return exit_code;
}
