/*
 * Security glue: the TLS context of the TLS listeners and the SASL
 * credentials, their reloads (SIGHUP, file changes), and what a connection
 * needs from them when it opens, completes its TLS handshake and closes.
 * The SASL Kafka APIs are in sasl_api.c. Loop thread only.
 */
#include "sluice/server.h"
#include "sluice/sasl.h"
#include "sluice/tls.h"

#include <stdio.h>
#include <string.h>

#define WATCH_INTERVAL_MS 2000
enum { W_CERT, W_KEY, W_CREDS };

#define SL__AF_NAME(n, s) s,
const char *const sl_auth_failure_names[SL_AUTH_FAIL__COUNT] = {
    SL_AUTH_FAILURE_MAP(SL__AF_NAME)};
#undef SL__AF_NAME

static bool any_sasl(const sl_server *srv)
{
    for (size_t f = 0; f < SL_N_FAMILIES; f++)
        if (srv->fam[f].enabled && SL_PROTO_IS_SASL(srv->fam[f].proto))
            return true;
    return false;
}

/* Parses sasl.mechanisms into a bit set. */
static int parse_mechs(const char *list, unsigned *out, char *err,
                       size_t errlen)
{
    const char *p = list;
    unsigned set = 0;

    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        sl_sasl_mech m;
        while (n > 0 && *p == ' ')
            p++, n--;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (sl_sasl_mech_parse(p, n, &m) != 0) {
            snprintf(err, errlen, "sasl.mechanisms: unknown mechanism "
                     "\"%.*s\" (Sluice offers SCRAM-SHA-512, SCRAM-SHA-256 "
                     "and PLAIN)", (int)n, p);
            return SL_E_CONFIG;
        }
        set |= 1u << m;
        p = e ? e + 1 : p + strlen(p);
    }
    if (set == 0) {
        snprintf(err, errlen, "sasl.mechanisms: no mechanism");
        return SL_E_CONFIG;
    }
    *out = set;
    return 0;
}

void sl__creds_unref(sl_creds_ref *r)
{
    if (r != NULL && --r->refs == 0) {
        sl_sasl_creds_free(r->creds);
        sl_free(r);
    }
}

static int load_creds(sl_server *srv, char *err, size_t errlen)
{
    const char *path = srv->cfg->sasl_credentials_file;
    sl_sasl_creds *creds;
    sl_creds_ref *r;
    char msg[512];

    if (sl_sasl_creds_load(path, &creds, err, errlen) != 0)
        return SL_E_CONFIG;
    if (sl_sasl_creds_mode_warning(path, msg, sizeof(msg)) > 0)
        sl_warn("sasl.credentials_file %s", msg);
    r = sl_calloc(1, sizeof(*r));
    r->creds = creds;
    r->refs = 1;
    sl__creds_unref(srv->sec.creds);
    srv->sec.creds = r;
    return 0;
}

static void on_watch(uv_fs_poll_t *p, int status, const uv_stat_t *prev,
                     const uv_stat_t *curr)
{
    (void)prev;
    (void)curr;
    if (status < 0)
        return; /* a missing file is reported when it is next loaded */
    sl__security_reload(p->data, "file changed");
}

static void watch(sl_server *srv, int which, const char *path)
{
    if (path == NULL)
        return;
    uv_fs_poll_init(srv->loop, &srv->sec.watch[which]);
    srv->sec.watch[which].data = srv;
    uv_fs_poll_start(&srv->sec.watch[which], on_watch, path,
                     WATCH_INTERVAL_MS);
    srv->sec.watching[which] = true;
}

int sl__security_init(sl_server *srv, char *err, size_t errlen)
{
    const sl_config *cfg = srv->cfg;
    char e[512];

    if (srv->fam[1].enabled) {
        if (sl_tls_ctx_new(cfg, &srv->sec.tls, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "%s", e);
            return SL_E_CONFIG;
        }
        sl_info("TLS: certificate %s; client certificates %s",
                sl_tls_ctx_describe(srv->sec.tls),
                cfg->tls_client_auth == SL_TLS_CLIENT_AUTH_REQUIRED
                    ? "required"
                : cfg->tls_client_auth == SL_TLS_CLIENT_AUTH_REQUESTED
                    ? "requested"
                    : "not asked for");
        watch(srv, W_CERT, cfg->tls_cert_file);
        watch(srv, W_KEY, cfg->tls_key_file);
    }
    if (any_sasl(srv)) {
        if (parse_mechs(cfg->sasl_mechanisms, &srv->sec.mechs, err,
                        errlen) != 0)
            return SL_E_CONFIG;
        if (cfg->sasl_credentials_file == NULL) {
            snprintf(err, errlen, "a SASL listener (listen_protocol or "
                     "tls.protocol) needs sasl.credentials_file (create it "
                     "with `sluice users add FILE USER`)");
            return SL_E_CONFIG;
        }
        if (load_creds(srv, err, errlen) != 0)
            return SL_E_CONFIG;
        sl_info("SASL: %zu users in %s; mechanisms %s",
                sl_sasl_creds_users(srv->sec.creds->creds),
                cfg->sasl_credentials_file, cfg->sasl_mechanisms);
        if (srv->fam[0].proto == SL_PROTO_SASL_PLAINTEXT &&
            (srv->sec.mechs & (1u << SL_SASL_PLAIN)))
            sl_warn("SASL PLAIN on a plaintext listener: passwords cross "
                    "the network in the clear");
        watch(srv, W_CREDS, cfg->sasl_credentials_file);
    }
    if (cfg->require_principal && !any_sasl(srv) &&
        (!srv->fam[1].enabled ||
         cfg->tls_client_auth == SL_TLS_CLIENT_AUTH_NONE))
        sl_warn("require_principal is set but no listener authenticates "
                "clients (SASL or TLS client certificates): every Produce "
                "will be refused");
    return 0;
}

void sl__security_reload(sl_server *srv, const char *why)
{
    const sl_config *cfg = srv->cfg;
    char err[512];

    if (srv->sec.tls != NULL) {
        sl_tls_ctx *ctx;
        if (sl_tls_ctx_new(cfg, &ctx, err, sizeof(err)) != 0) {
            srv->sec.reload_failures++;
            sl_error("TLS reload (%s) failed, keeping the running "
                     "certificate: %s", why, err);
        } else {
            sl_tls_ctx_unref(srv->sec.tls); /* open connections keep it */
            srv->sec.tls = ctx;
            sl_info("TLS reloaded (%s): certificate %s", why,
                    sl_tls_ctx_describe(ctx));
        }
    }
    if (srv->sec.creds != NULL) {
        if (load_creds(srv, err, sizeof(err)) != 0) {
            srv->sec.reload_failures++;
            sl_error("SASL credentials reload (%s) failed, keeping the "
                     "running ones: %s", why, err);
        } else {
            sl_info("SASL credentials reloaded (%s): %zu users", why,
                    sl_sasl_creds_users(srv->sec.creds->creds));
        }
    }
}

void sl__security_close(sl_server *srv)
{
    for (int i = 0; i < 3; i++)
        if (srv->sec.watching[i]) {
            uv_close((uv_handle_t *)&srv->sec.watch[i], NULL);
            srv->sec.watching[i] = false;
        }
}

void sl__security_free(sl_server *srv)
{
    sl_tls_ctx_unref(srv->sec.tls);
    srv->sec.tls = NULL;
    sl__creds_unref(srv->sec.creds);
    srv->sec.creds = NULL;
}

/* ---- connections ---------------------------------------------------------- */

void sl__security_conn_init(sl_conn *c)
{
    sl_server *srv = c->srv;

    if (SL_PROTO_IS_TLS(c->fam->proto) && srv->sec.tls != NULL)
        c->tls = sl_tls_conn_new(srv->sec.tls);
    if (SL_PROTO_IS_SASL(c->fam->proto))
        sl__auth_init(c);
}

void sl__security_conn_free(sl_conn *c)
{
    sl_tls_conn_free(c->tls);
    c->tls = NULL;
    sl__auth_free(c);
    sl_free(c->principal);
    c->principal = NULL;
}

bool sl__security_tls_up(sl_conn *c, char *why, size_t whylen)
{
    char principal[600];
    int rc;

    c->tls_up = true;
    c->frame_start_ms = 0; /* the handshake's clock stops */
    c->srv->sec.tls_handshakes++;
    rc = sl_tls_conn_principal(c->tls, principal, sizeof(principal), why,
                               whylen);
    if (rc < 0) {
        c->srv->sec.failures[SL_AUTH_FAIL_TLS_PRINCIPAL]++;
        return false;
    }
    if (rc > 0 && c->auth == NULL) {
        /* On SSL listeners the certificate names the client; on SASL_SSL
         * the SASL login does, as in Kafka. */
        c->principal = sl_strdup(principal);
        sl__quota_principal_changed(c);
    }
    sl_debug("conn %llu %s: %s%s%s", (unsigned long long)c->id, c->peer,
             sl_tls_conn_describe(c->tls), rc > 0 ? ", client certificate " : "",
             rc > 0 ? principal : "");
    return true;
}
