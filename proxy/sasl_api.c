/*
 * SaslHandshake and SaslAuthenticate, as a Kafka broker serves them
 * (SaslServerAuthenticator), over the mechanisms of sasl.c:
 *
 *   1. ApiVersions may come first; then SaslHandshake names a mechanism.
 *      Not offered: UNSUPPORTED_SASL_MECHANISM with the offered list, and
 *      the connection closes.
 *   2. After a v1 handshake the client's tokens come in SaslAuthenticate
 *      requests; after v0, as bare size-prefixed frames answered the same
 *      way (clients from before KIP-152).
 *   3. A failed login: SASL_AUTHENTICATION_FAILED with Kafka's message, and
 *      the connection closes (v0: it just closes).
 *   4. Any other request before the login ends closes the connection, as a
 *      broker's "Unexpected Kafka request of type X during SASL handshake".
 *   5. KIP-368: with sasl.session_lifetime_ms, SaslAuthenticate v1+ tells
 *      the client how long its login lasts; it logs in again on the same
 *      connection (SaslHandshake + SaslAuthenticate, same principal) before
 *      then, and a request after the end closes the connection.
 *
 * Loop thread only. The exchange (sl_sasl_server) and the credentials it
 * borrows are owned by the connection's sl_auth while a login runs.
 */
#include "sluice/sasl.h"
#include "sluice/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct sl_auth sl_auth;

typedef enum auth_state {
    AUTH_HANDSHAKE, /* waiting for SaslHandshake */
    AUTH_TOKEN,     /* mechanism chosen: tokens until DONE or FAILED */
    AUTH_DONE,      /* logged in */
} auth_state;

struct sl_auth {
    auth_state state;
    bool raw;            /* v0 handshake: bare token frames */
    bool reauth;         /* a re-login of an authenticated connection */
    bool can_reauth;     /* the login used SaslAuthenticate v1+ */
    sl_sasl_mech mech;
    sl_sasl_server *ex;  /* the exchange in progress, or NULL */
    sl_creds_ref *creds; /* one reference while ex lives */
    uint64_t expires_ms; /* 0: the login does not expire */
};

void sl__auth_init(sl_conn *c)
{
    c->auth = sl_calloc(1, sizeof(*c->auth));
}

static void end_exchange(sl_auth *a)
{
    sl_sasl_server_free(a->ex);
    a->ex = NULL;
    if (a->creds != NULL && --a->creds->refs == 0) {
        sl_sasl_creds_free(a->creds->creds);
        sl_free(a->creds);
    }
    a->creds = NULL;
}

void sl__auth_free(sl_conn *c)
{
    if (c->auth == NULL)
        return;
    end_exchange(c->auth);
    sl_free(c->auth);
    c->auth = NULL;
}

/* The enabled mechanisms, in sl_sasl_mech order (for answers). */
static int32_t enabled_mechs(const sl_server *srv, const char **out)
{
    int32_t n = 0;
    for (int m = 0; m < SL_SASL__MECH_COUNT; m++)
        if (srv->sec.mechs & (1u << m))
            out[n++] = sl_sasl_mech_name((sl_sasl_mech)m);
    return n;
}

static void log_failure(sl_conn *c, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Counts the failure and logs it once (rate-limited with the other
 * client warnings). */
static void log_failure(sl_conn *c, int kind, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    c->srv->sec.failures[kind]++;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_warn_client("conn %llu %s (client.id \"%s\"): %s",
                   (unsigned long long)c->id, c->peer, c->client_id, msg);
}

bool sl__sasl_expects_raw(const sl_conn *c)
{
    return c->auth->state == AUTH_TOKEN && c->auth->raw;
}

bool sl__sasl_gate(sl_conn *c, sl_req *req)
{
    sl_auth *a = c->auth;
    int16_t key = req->hdr.api_key;
    const sl_kafka_api *api = sl_kafka_api_find(key);
    char why[256];

    switch (a->state) {
    case AUTH_HANDSHAKE:
        if (key == SL_KAFKA_API_VERSIONS || key == SL_KAFKA_SASL_HANDSHAKE)
            return true;
        break;
    case AUTH_TOKEN:
        if (key == SL_KAFKA_SASL_AUTHENTICATE)
            return true;
        break;
    case AUTH_DONE:
        if (a->expires_ms != 0 && sl__now_ms(c->srv) >= a->expires_ms &&
            key != SL_KAFKA_SASL_HANDSHAKE) {
            c->srv->sec.failures[SL_AUTH_FAIL_SESSION_EXPIRED]++;
            /* The client did not log in again in time (KIP-368): it
             * reconnects and logs in afresh. */
            snprintf(why, sizeof(why), "the SASL session of %.100s ended "
                     "(sasl.session_lifetime_ms) before this %s request; "
                     "the client did not log in again", c->principal,
                     api ? api->name : "?");
            sl__conn_close(c, why);
            return false;
        }
        return true;
    }
    c->srv->sec.failures[SL_AUTH_FAIL_UNAUTHENTICATED_REQUEST]++;
    snprintf(why, sizeof(why),
             "unexpected %s request during SASL %s on a %s listener (a "
             "client without SASL configured?)",
             api ? api->name : "?",
             a->state == AUTH_HANDSHAKE ? "handshake" : "authentication",
             sl_security_protocol_name(c->fam->proto));
    sl__conn_close(c, why);
    return false;
}

static void answer_handshake(sl_req *req, int16_t err, bool close_after)
{
    const char *names[SL_SASL__MECH_COUNT];
    sl_kafka_SaslHandshakeResponse resp;
    sl_wr w;
    size_t start, len;
    uint8_t *buf;

    resp.error_code = err;
    resp.mechanisms = names;
    resp.n_mechanisms = req->conn->auth ? enabled_mechs(req->srv, names) : 0;
    sl_wr_init(&w, 128);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_SASL_HANDSHAKE,
                                     req->hdr.api_version,
                                     req->hdr.correlation_id);
    sl_kafka_SaslHandshakeResponse_encode(&w, req->hdr.api_version, &resp);
    sl_kafka_frame_end(&w, start);
    buf = sl_wr_release(&w, &len);
    req->close_after = close_after;
    sl__req_answer(req, buf, len);
}

void sl__sasl_handshake(sl_conn *c, sl_req *req)
{
    sl_auth *a = c->auth;
    int16_t ver = req->hdr.api_version;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_kstr mech_name;
    sl_sasl_mech mech;

    if (a == NULL) {
        /* A listener without SASL: as KafkaApis answers it. */
        sl_debug("conn %llu %s: SaslHandshake on a %s listener: "
                 "ILLEGAL_SASL_STATE", (unsigned long long)c->id, c->peer,
                 sl_security_protocol_name(c->fam->proto));
        answer_handshake(req, SL_KERR_ILLEGAL_SASL_STATE, false);
        return;
    }
    if (sl_kafka_SaslHandshakeRequest_decode(&r, ver, &mech_name) != 0) {
        log_failure(c, SL_AUTH_FAIL_ILLEGAL_STATE,
                    "malformed SaslHandshake v%d; closing", ver);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }
    if (a->state == AUTH_DONE) {
        /* KIP-368 re-login: only clients that logged in with
         * SaslAuthenticate v1+ know to do it. */
        if (!a->can_reauth || ver < 1) {
            log_failure(c, SL_AUTH_FAIL_ILLEGAL_STATE,
                        "SaslHandshake v%d after the login from a client "
                        "that cannot log in again (KIP-368); closing", ver);
            answer_handshake(req, SL_KERR_ILLEGAL_SASL_STATE, true);
            return;
        }
        a->reauth = true;
    } else if (a->state != AUTH_HANDSHAKE) {
        log_failure(c, SL_AUTH_FAIL_ILLEGAL_STATE,
                    "SaslHandshake during a SASL exchange; closing");
        answer_handshake(req, SL_KERR_ILLEGAL_SASL_STATE, true);
        return;
    }
    if (sl_sasl_mech_parse(mech_name.p, (size_t)mech_name.len, &mech) != 0 ||
        !(c->srv->sec.mechs & (1u << mech)) ||
        (a->reauth && mech != a->mech)) {
        log_failure(c, SL_AUTH_FAIL_MECHANISM,
                    "SASL mechanism \"%.*s\" %s (sasl.mechanisms: %s): "
                    "UNSUPPORTED_SASL_MECHANISM",
                    (int)SL_MIN(mech_name.len, 64), mech_name.p,
                    a->reauth ? "differs from the one of the first login"
                              : "is not offered",
                    c->srv->cfg->sasl_mechanisms);
        answer_handshake(req, SL_KERR_UNSUPPORTED_SASL_MECHANISM, true);
        return;
    }
    a->mech = mech;
    a->raw = ver == 0;
    a->state = AUTH_TOKEN;
    answer_handshake(req, SL_KERR_NONE, false);
}

/* Runs one token through the exchange. Returns the status; *out and
 * *out_len: the server's token (owned by the exchange). */
static sl_sasl_status step(sl_conn *c, const uint8_t *in, size_t in_len,
                           const uint8_t **out, size_t *out_len, char *why,
                           size_t whylen)
{
    sl_auth *a = c->auth;
    sl_sasl_status st;

    if (a->ex == NULL) {
        a->creds = c->srv->sec.creds;
        a->creds->refs++;
        a->ex = sl_sasl_server_new(a->mech, a->creds->creds, NULL);
    }
    *out = NULL;
    *out_len = 0;
    st = sl_sasl_server_step(a->ex, in, in_len, out, out_len, why, whylen);
    if (st == SL_SASL_DONE) {
        char principal[260];
        snprintf(principal, sizeof(principal), "User:%s",
                 sl_sasl_server_user(a->ex));
        if (a->reauth && c->principal != NULL &&
            strcmp(principal, c->principal) != 0) {
            snprintf(why, whylen, "re-login as %.100s on a connection of "
                     "%.100s: principals cannot change", principal,
                     c->principal);
            return SL_SASL_FAILED;
        }
        if (c->principal == NULL || strcmp(principal, c->principal) != 0) {
            sl_free(c->principal);
            c->principal = sl_strdup(principal);
            sl__quota_principal_changed(c);
        }
        c->srv->sec.logins[a->mech]++;
        a->expires_ms = c->srv->cfg->sasl_session_lifetime_ms > 0
                            ? sl__now_ms(c->srv) +
                                  (uint64_t)c->srv->cfg->sasl_session_lifetime_ms
                            : 0;
        sl_debug("conn %llu %s: %s as %s (%s)", (unsigned long long)c->id,
                 c->peer, a->reauth ? "logged in again" : "logged in",
                 principal, sl_sasl_mech_name(a->mech));
    }
    return st;
}

/* After a finished exchange (its answer is built): state for what
 * follows. */
static void finish(sl_auth *a, sl_sasl_status st)
{
    if (st == SL_SASL_CONTINUE)
        return;
    end_exchange(a);
    a->reauth = false;
    a->state = st == SL_SASL_DONE ? AUTH_DONE : AUTH_HANDSHAKE;
}

void sl__sasl_raw_token(sl_conn *c, sl_req *req)
{
    sl_auth *a = c->auth;
    const uint8_t *out;
    size_t out_len;
    char why[300] = "";
    sl_sasl_status st;
    uint8_t *buf;

    st = step(c, req->frame, req->frame_len, &out, &out_len, why,
              sizeof(why));
    if (st == SL_SASL_FAILED) {
        /* Before KIP-152 there is no error answer: the broker closes. */
        log_failure(c, SL_AUTH_FAIL_CREDENTIALS,
                    "SASL %s login failed: %s; closing",
                    sl_sasl_mech_name(a->mech), why);
        finish(a, st);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }
    buf = sl_malloc(4 + out_len);
    sl_wr_put_u32_at(buf, (uint32_t)out_len);
    if (out_len > 0)
        memcpy(buf + 4, out, out_len);
    finish(a, st);
    sl__req_answer(req, buf, 4 + out_len);
}

static void answer_authenticate(sl_req *req, int16_t err, const char *msg,
                                const uint8_t *bytes, size_t n,
                                int64_t lifetime_ms, bool close_after)
{
    sl_kafka_SaslAuthenticateResponse resp;
    sl_wr w;
    size_t start, len;
    uint8_t *buf;

    resp.error_code = err;
    resp.error_message = msg ? SL_KSTR(msg) : SL_KSTR_NULL;
    resp.auth_bytes = (sl_kstr){(const char *)(bytes ? bytes : (const uint8_t *)""),
                                (int32_t)n};
    resp.session_lifetime_ms = lifetime_ms;
    sl_wr_init(&w, 128 + n);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_SASL_AUTHENTICATE,
                                     req->hdr.api_version,
                                     req->hdr.correlation_id);
    sl_kafka_SaslAuthenticateResponse_encode(&w, req->hdr.api_version, &resp);
    sl_kafka_frame_end(&w, start);
    buf = sl_wr_release(&w, &len);
    req->close_after = close_after;
    sl__req_answer(req, buf, len);
}

void sl__sasl_authenticate(sl_conn *c, sl_req *req)
{
    sl_auth *a = c->auth;
    int16_t ver = req->hdr.api_version;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_kstr token;
    const uint8_t *out;
    size_t out_len;
    char why[300] = "", msg[200];
    sl_sasl_status st;

    if (a == NULL || a->state != AUTH_TOKEN) {
        /* Kafka's words for both cases. */
        const char *m = a == NULL || a->state == AUTH_DONE
                            ? "SaslAuthenticate request received after "
                              "successful authentication"
                            : "Unexpected SaslAuthenticate request before "
                              "SaslHandshake";
        if (a != NULL)
            log_failure(c, SL_AUTH_FAIL_ILLEGAL_STATE, "%s; closing", m);
        answer_authenticate(req, SL_KERR_ILLEGAL_SASL_STATE, m, NULL, 0, 0,
                            a != NULL);
        return;
    }
    if (a->raw || sl_kafka_SaslAuthenticateRequest_decode(&r, ver, &token) !=
                      0) {
        log_failure(c, SL_AUTH_FAIL_ILLEGAL_STATE,
                    "%s SaslAuthenticate v%d; closing",
                    a->raw ? "after a v0 handshake," : "malformed", ver);
        finish(a, SL_SASL_FAILED);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }
    st = step(c, (const uint8_t *)token.p, (size_t)token.len, &out, &out_len,
              why, sizeof(why));
    if (st == SL_SASL_FAILED) {
        log_failure(c, SL_AUTH_FAIL_CREDENTIALS,
                    "SASL %s login failed: %s: SASL_AUTHENTICATION_FAILED",
                    sl_sasl_mech_name(a->mech), why);
        /* What a broker says, with no detail for the client to probe. */
        snprintf(msg, sizeof(msg),
                 "Authentication failed during authentication due to "
                 "invalid credentials with SASL mechanism %s",
                 sl_sasl_mech_name(a->mech));
        finish(a, st);
        answer_authenticate(req, SL_KERR_SASL_AUTHENTICATION_FAILED, msg,
                            NULL, 0, 0, true);
        return;
    }
    if (st == SL_SASL_DONE && ver >= 1)
        a->can_reauth = true;
    answer_authenticate(req, SL_KERR_NONE, NULL, out, out_len,
                        st == SL_SASL_DONE
                            ? c->srv->cfg->sasl_session_lifetime_ms
                            : 0,
                        false);
    finish(a, st);
}
