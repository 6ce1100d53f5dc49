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

#include <openssl/crypto.h>

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
    bool busy;           /* a PLAIN check runs on the thread pool */
    bool failed;         /* a failed login's answer is on its way */
};

void sl__auth_init(sl_conn *c)
{
    c->auth = sl_calloc(1, sizeof(*c->auth));
}

static void end_exchange(sl_auth *a)
{
    sl_sasl_server_free(a->ex);
    a->ex = NULL;
    sl__creds_unref(a->creds);
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

    if (a->busy || a->failed) {
        /* Pipelined behind a login still being checked, or one that
         * failed: a client does not do that. */
        c->srv->sec.failures[SL_AUTH_FAIL_ILLEGAL_STATE]++;
        snprintf(why, sizeof(why), "%s request %s", api ? api->name : "?",
                 a->busy ? "while its SASL login is being checked"
                         : "after a failed SASL login");
        sl__conn_close(c, why);
        return false;
    }
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

/* After the exchange's step: the principal, counters and session. A
 * re-login must name the same principal. May turn DONE into FAILED. */
static sl_sasl_status logged_in(sl_conn *c, sl_sasl_status st, char *why,
                                size_t whylen)
{
    sl_auth *a = c->auth;
    char principal[260];

    if (st != SL_SASL_DONE)
        return st;
    snprintf(principal, sizeof(principal), "User:%s",
             sl_sasl_server_user(a->ex));
    if (a->reauth && c->principal != NULL &&
        strcmp(principal, c->principal) != 0) {
        snprintf(why, whylen, "re-login as %.100s on a connection of "
                 "%.100s: principals cannot change", principal, c->principal);
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
             c->peer, a->reauth ? "logged in again" : "logged in", principal,
             sl_sasl_mech_name(a->mech));
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

/* ---- answers, immediate or delayed ---------------------------------------
 * A failed login is answered after sasl.failed_authentication_delay_ms, as
 * a broker delays it (connection.failed.authentication.delay.ms): a client
 * guessing passwords gets about ten guesses a second per connection, and
 * its reconnects count against limits.max_connections_per_ip. */

typedef struct delayed {
    uv_timer_t timer;
    sl_req *req; /* req->wait points here */
    uint8_t *resp;
    size_t len;
} delayed;

static void delayed_closed(uv_handle_t *h)
{
    sl_free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    delayed *d = t->data;
    sl_req *req = d->req;

    req->wait = NULL;
    sl__req_answer(req, d->resp, d->len); /* an orphan just goes */
    uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

/* Answers req with resp (owned; NULL for no answer) and closes the
 * connection after it, now or after the failure delay. */
static void answer_failure(sl_conn *c, sl_req *req, uint8_t *resp, size_t len)
{
    int64_t ms = c->srv->cfg->sasl_failed_authentication_delay_ms;
    delayed *d;

    req->close_after = true;
    if (ms <= 0 || c->srv->shutting_down) {
        sl__req_answer(req, resp, len);
        return;
    }
    d = sl_calloc(1, sizeof(*d));
    d->req = req;
    d->resp = resp;
    d->len = len;
    req->wait = d;
    uv_timer_init(c->srv->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, (uint64_t)ms, 0);
}

static uint8_t *encode_authenticate(sl_req *req, int16_t err,
                                    const char *msg, const uint8_t *bytes,
                                    size_t n, int64_t lifetime_ms,
                                    size_t *len)
{
    sl_kafka_SaslAuthenticateResponse resp;
    sl_wr w;
    size_t start;

    resp.error_code = err;
    resp.error_message = msg ? SL_KSTR(msg) : SL_KSTR_NULL;
    resp.auth_bytes = (sl_kstr){(const char *)(bytes ? bytes
                                                     : (const uint8_t *)""),
                                (int32_t)n};
    resp.session_lifetime_ms = lifetime_ms;
    sl_wr_init(&w, 128 + n);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_SASL_AUTHENTICATE,
                                     req->hdr.api_version,
                                     req->hdr.correlation_id);
    sl_kafka_SaslAuthenticateResponse_encode(&w, req->hdr.api_version, &resp);
    sl_kafka_frame_end(&w, start);
    return sl_wr_release(&w, len);
}

static void answer_authenticate(sl_req *req, int16_t err, const char *msg,
                                const uint8_t *bytes, size_t n,
                                int64_t lifetime_ms, bool close_after)
{
    size_t len;
    uint8_t *buf = encode_authenticate(req, err, msg, bytes, n, lifetime_ms,
                                       &len);
    req->close_after = close_after;
    sl__req_answer(req, buf, len);
}

/* The step's outcome, answered: a SaslAuthenticate response, or for a v0
 * handshake a bare token (a failure then just closes). */
static void conclude(sl_conn *c, sl_req *req, sl_sasl_status st,
                     const uint8_t *out, size_t out_len, char *why,
                     size_t whylen)
{
    sl_auth *a = c->auth;
    int16_t ver = req->hdr.api_version;
    uint8_t *buf;
    size_t len;

    st = logged_in(c, st, why, whylen);
    if (st == SL_SASL_FAILED) {
        char msg[200];
        log_failure(c, SL_AUTH_FAIL_CREDENTIALS,
                    "SASL %s login failed: %s%s", sl_sasl_mech_name(a->mech),
                    why, a->raw ? "; closing" : ": SASL_AUTHENTICATION_FAILED");
        /* What a broker says, with no detail for the client to probe. */
        snprintf(msg, sizeof(msg),
                 "Authentication failed during authentication due to "
                 "invalid credentials with SASL mechanism %s",
                 sl_sasl_mech_name(a->mech));
        buf = a->raw ? NULL
                     : encode_authenticate(req,
                                           SL_KERR_SASL_AUTHENTICATION_FAILED,
                                           msg, NULL, 0, 0, &len);
        a->failed = true;
        c->close_when_written = true; /* reads no more */
        sl__conn_update_reading(c);
        finish(a, st);
        answer_failure(c, req, buf, a->raw ? 0 : len);
        return;
    }
    if (a->raw) {
        len = 4 + out_len;
        buf = sl_malloc(len);
        sl_wr_put_u32_at(buf, (uint32_t)out_len);
        if (out_len > 0)
            memcpy(buf + 4, out, out_len);
    } else {
        if (st == SL_SASL_DONE && ver >= 1)
            a->can_reauth = true;
        buf = encode_authenticate(
            req, SL_KERR_NONE, NULL, out, out_len,
            st == SL_SASL_DONE ? c->srv->cfg->sasl_session_lifetime_ms : 0,
            &len);
    }
    finish(a, st); /* frees out: copied above */
    sl__req_answer(req, buf, len);
}

/* A login that cannot be attempted: closed, as a broker's internal
 * error during authentication closes the connection. */
static void conclude_error(sl_conn *c, sl_req *req)
{
    c->auth->state = AUTH_HANDSHAKE;
    req->close_after = true;
    sl__req_answer(req, NULL, 0);
}

/* ---- PLAIN on the thread pool ---------------------------------------------
 * A PLAIN login derives the password's SCRAM key with PBKDF2: milliseconds
 * (about 5 ms at 8192 SHA-512 iterations), too long for the loop, which
 * would stall every client while someone tries passwords. The exchange and
 * its credentials move to a libuv worker for the step and come back in the
 * after-work callback (loop thread); a connection closed meanwhile leaves an
 * orphan that frees them. SCRAM steps are a few HMACs: on the loop. */

typedef struct plain_job {
    uv_work_t work;
    sl_req *req;          /* req->wait points here */
    sl_sasl_server *ex;   /* owned by the job while it runs */
    sl_creds_ref *creds;  /* one reference, likewise */
    uint8_t *token;
    size_t token_len;
    sl_sasl_status st;
    const uint8_t *out;
    size_t out_len;
    char why[300];
} plain_job;

static void plain_work(uv_work_t *w)
{
    plain_job *j = w->data;
    j->st = sl_sasl_server_step(j->ex, j->token, j->token_len, &j->out,
                                &j->out_len, j->why, sizeof(j->why));
}

static void plain_done(uv_work_t *w, int status)
{
    plain_job *j = w->data;
    sl_req *req = j->req;
    sl_conn *c = req->conn;

    (void)status;
    req->wait = NULL;
    if (c != NULL)
        c->auth->busy = false;
    OPENSSL_cleanse(j->token, j->token_len);
    sl_free(j->token);
    if (c == NULL) {
        sl_sasl_server_free(j->ex);
        sl__creds_unref(j->creds);
        sl_free(j);
        sl__req_answer(req, NULL, 0); /* frees the orphan */
        return;
    }
    c->auth->ex = j->ex;
    c->auth->creds = j->creds;
    conclude(c, req, j->st, j->out, j->out_len, j->why, sizeof(j->why));
    sl_free(j);
}

/* Runs the client's token through the exchange (made on first use) and
 * answers. */
static void take_token(sl_conn *c, sl_req *req, const uint8_t *in,
                       size_t in_len)
{
    sl_auth *a = c->auth;
    const uint8_t *out = NULL;
    size_t out_len = 0;
    char why[300] = "";
    sl_sasl_status st;

    if (a->ex == NULL) {
        a->creds = c->srv->sec.creds;
        a->creds->refs++;
        a->ex = sl_sasl_server_new(a->mech, a->creds->creds, NULL);
        if (a->ex == NULL) {
            /* No randomness for a nonce: nobody can log in. */
            sl_error("SASL: no random bytes for a SCRAM nonce");
            end_exchange(a);
            conclude_error(c, req);
            return;
        }
    }
    if (a->mech == SL_SASL_PLAIN) {
        plain_job *j = sl_calloc(1, sizeof(*j));
        j->req = req;
        j->ex = a->ex;
        j->creds = a->creds;
        a->ex = NULL;
        a->creds = NULL;
        j->token = sl_malloc(in_len + 1);
        memcpy(j->token, in, in_len);
        j->token_len = in_len;
        j->work.data = j;
        req->wait = j;
        a->busy = true;
        if (uv_queue_work(c->srv->loop, &j->work, plain_work, plain_done) ==
            0)
            return;
        /* No worker: do it here. */
        a->busy = false;
        req->wait = NULL;
        plain_work(&j->work);
        a->ex = j->ex;
        a->creds = j->creds;
        OPENSSL_cleanse(j->token, j->token_len);
        sl_free(j->token);
        conclude(c, req, j->st, j->out, j->out_len, j->why, sizeof(j->why));
        sl_free(j);
        return;
    }
    st = sl_sasl_server_step(a->ex, in, in_len, &out, &out_len, why,
                             sizeof(why));
    conclude(c, req, st, out, out_len, why, sizeof(why));
}

void sl__sasl_raw_token(sl_conn *c, sl_req *req)
{
    take_token(c, req, req->frame, req->frame_len);
}

void sl__sasl_authenticate(sl_conn *c, sl_req *req)
{
    sl_auth *a = c->auth;
    int16_t ver = req->hdr.api_version;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_kstr token;

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
    take_token(c, req, (const uint8_t *)token.p, (size_t)token.len);
}
