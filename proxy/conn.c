/*
 * Client connections: frame assembly, request dispatch, answers strictly in
 * request order, and read muting (limits, memory budget, shutdown).
 * Loop thread only.
 */
#include "sluice/server.h"
#include "sluice/tls.h"

#include <stdio.h>
#include <string.h>

/* Read slabs (see sl_slab): reads on the loop thread are sequential, so
 * one unpinned slab serves every connection (10,000 idle connections cost
 * no buffers); on_read copies out only what does not complete a frame and
 * frames under SLAB_MIN_FRAME, so a tiny request cannot pin 64 KiB. */
#define READ_BUF_SIZE 65536
#define SLAB_MIN_FRAME 1024

/* Kafka error for APIs Sluice knows but does not serve. */
static const struct {
    int16_t api_key;
    int16_t error;
} unserved_errors[] = {
    {24, 53},  /* AddPartitionsToTxn: TRANSACTIONAL_ID_AUTHORIZATION_FAILED */
    {25, 53},  /* AddOffsetsToTxn */
    {26, 53},  /* EndTxn */
    {28, 53},  /* TxnOffsetCommit */
};

static int16_t unserved_error(int16_t key)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(unserved_errors); i++)
        if (unserved_errors[i].api_key == key)
            return unserved_errors[i].error;
    return SL_KERR_UNSUPPORTED_VERSION;
}

/* One uv_write of n buffers carrying `answers` answers (on TLS, one
 * buffer of ciphertext for any number, or none for handshake bytes); owns
 * the buffers until it completes. */
typedef struct write_req {
    uv_write_t w;
    size_t answers;
    size_t n;
    uint8_t *data[]; /* response frames, or ciphertext */
} write_req;

static void on_close(uv_handle_t *h);
static void dispatch(sl_conn *c, uint8_t *frame, size_t len, sl_slab *slab);

static void slab_unref(sl_server *srv, sl_slab *s)
{
    if (--s->refs > 0)
        return;
    if (s->extra)
        sl__mem_release(srv, s->extra);
    if (s == srv->rslab) {
        s->framed = s->extra = 0; /* not pinned after all: reuse */
        return;
    }
    sl_free(s);
}

/* ---- answers ------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    sl_conn *c = w->data;
    for (size_t i = 0; i < wr->n; i++)
        sl_free(wr->data[i]);
    c->writes_pending -= wr->answers;
    sl_free(wr);
    if (status < 0 && status != UV_ECANCELED)
        sl__conn_close(c, uv_strerror(status));
    else if (c->close_when_written && c->writes_pending == 0 &&
             c->q_head == NULL)
        sl__conn_close(c, NULL);
    sl__server_maybe_finish(c->srv);
}

static void drop_output(sl_conn *c)
{
    for (size_t i = 0; i < c->n_out; i++)
        sl_free(c->out_data[i]);
    c->writes_pending -= c->n_out;
    c->n_out = 0;
}

/* Queues an answer (takes ownership of data); the connection's queued
 * answers go out in one uv_write in the loop's check phase, after every
 * callback of this iteration had its chance to add more: a batch of
 * delivery reports completing many requests costs one write() per
 * connection, not one per request. */
static void write_frame(sl_conn *c, uint8_t *data, size_t len)
{
    sl_server *srv = c->srv;

    if (c->closing) {
        sl_free(data);
        return;
    }
    if (c->n_out == c->cap_out) {
        c->cap_out = c->cap_out ? c->cap_out * 2 : 8;
        c->out_data = sl_realloc(c->out_data,
                                 c->cap_out * sizeof(*c->out_data));
        c->out_len = sl_realloc(c->out_len, c->cap_out * sizeof(*c->out_len));
    }
    c->out_data[c->n_out] = data;
    c->out_len[c->n_out] = len;
    c->n_out++;
    c->writes_pending++;
    if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = srv->dirty;
        srv->dirty = c;
    }
}

/* Writes the TLS end's ciphertext, if any; `answers` answers ride in it. */
static void tls_send(sl_conn *c, size_t answers)
{
    write_req *wr;
    uv_buf_t buf;
    size_t len;
    uint8_t *data = sl_tls_conn_take_output(c->tls, &len);
    int rc;

    if (data == NULL) {
        c->writes_pending -= answers;
        return;
    }
    wr = sl_malloc(sizeof(*wr) + sizeof(wr->data[0]));
    wr->answers = answers;
    wr->n = 1;
    wr->data[0] = data;
    wr->w.data = c;
    buf = uv_buf_init((char *)data, (unsigned)len);
    rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        sl_free(data);
        c->writes_pending -= answers;
        sl_free(wr);
        sl__conn_close(c, uv_strerror(rc));
    }
}

static void flush_conn(sl_conn *c)
{
    write_req *wr;
    uv_buf_t stack_bufs[64], *bufs = stack_bufs;
    size_t n = c->n_out;
    int rc;

    if (n == 0)
        return;
    if (c->closing) {
        drop_output(c);
        return;
    }
    if (c->tls != NULL) {
        /* Encrypted together: one write of ciphertext for them all. */
        bool failed = false;
        for (size_t i = 0; i < n; i++) {
            failed = failed || sl_tls_conn_write(c->tls, c->out_data[i],
                                                 c->out_len[i]) != 0;
            sl_free(c->out_data[i]);
        }
        c->n_out = 0;
        tls_send(c, n);
        if (failed)
            sl__conn_close(c, "TLS write failed");
        return;
    }
    wr = sl_malloc(sizeof(*wr) + n * sizeof(wr->data[0]));
    wr->answers = n;
    wr->n = n;
    wr->w.data = c;
    if (n > SL_ARRAY_SIZE(stack_bufs))
        bufs = sl_malloc(n * sizeof(*bufs));
    for (size_t i = 0; i < n; i++) {
        wr->data[i] = c->out_data[i];
        bufs[i] = uv_buf_init((char *)c->out_data[i], (unsigned)c->out_len[i]);
    }
    c->n_out = 0;
    /* libuv copies the buf array; the buffers themselves stay ours until
     * on_write. */
    rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, bufs, (unsigned)n, on_write);
    if (bufs != stack_bufs)
        sl_free(bufs);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            sl_free(wr->data[i]);
        c->writes_pending -= n;
        sl_free(wr);
        sl__conn_close(c, uv_strerror(rc));
    }
}

void sl__conn_flush_all(sl_server *srv)
{
    sl_conn *c = srv->dirty, *next;
    srv->dirty = NULL;
    for (; c; c = next) {
        next = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = false;
        flush_conn(c);
    }
}

/* Releases what a finished request charged to its connection and the
 * server budget. */
static void release_charge(sl_conn *c, sl_req *req)
{
    c->inflight_reqs--;
    c->inflight_bytes -= req->mem;
    sl__mem_release(c->srv, req->mem);
    req->mem = 0;
}

void sl__req_free(sl_server *srv, sl_req *req)
{
    if (req->mem)
        sl__mem_release(srv, req->mem);
    if (req->slab != NULL)
        slab_unref(srv, req->slab);
    else
        sl_free(req->frame);
    sl_free(req->resp);
    sl_free(req);
}

static void flush_queue(sl_conn *c)
{
    bool close_now = false, answered_close = false;
    while (c->q_head && c->q_head->answered) {
        sl_req *req = c->q_head;
        c->q_head = req->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        if (req->resp != NULL) {
            write_frame(c, req->resp, req->resp_len);
            req->resp = NULL;
        }
        close_now |= req->close_after;
        answered_close |= req->close_after && c->n_out > 0;
        release_charge(c, req);
        sl__req_free(c->srv, req);
    }
    if (close_now && answered_close) {
        /* The answer says why (a failed login, a refused mechanism): it
         * goes out first, then the connection closes (on_write). The
         * reason was logged where the answer was made. */
        c->close_when_written = true;
        sl__conn_update_reading(c);
        flush_conn(c);
        if (c->writes_pending == 0)
            sl__conn_close(c, NULL);
    } else if (close_now) {
        sl__conn_close(c, "protocol error (see above)");
    } else {
        sl__conn_update_reading(c);
    }
}

void sl__req_answer(sl_req *req, uint8_t *resp, size_t resp_len)
{
    sl_conn *c = req->conn;
    sl_server *srv;

    req->resp = resp;
    req->resp_len = resp_len;
    req->answered = true;
    /* The frame is no longer referenced by anything once answered. */
    if (req->slab != NULL)
        slab_unref(req->srv, req->slab);
    else
        sl_free(req->frame);
    req->slab = NULL;
    req->frame = NULL;
    if (c == NULL) {
        /* Orphaned: its connection is gone. */
        srv = req->srv;
        sl__req_free(srv, req);
        sl__server_maybe_finish(srv);
        return;
    }
    flush_queue(c);
    sl__server_maybe_finish(c->srv);
}

/* ---- reading -------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sl_conn *c = h->data;
    size_t want;

    /* A large frame in progress is read straight into its own buffer
     * (plaintext connections: on TLS, reads are ciphertext). */
    if (c->frame != NULL && c->tls == NULL) {
        want = c->frame_len - c->frame_got;
        if (want >= READ_BUF_SIZE / 2) {
            *buf = uv_buf_init((char *)c->frame + c->frame_got,
                               (unsigned)SL_MIN(want, (size_t)1 << 30));
            return;
        }
    }
    if (c->srv->rslab == NULL) {
        c->srv->rslab = sl_malloc(sizeof(sl_slab) + READ_BUF_SIZE);
        c->srv->rslab->refs = c->srv->rslab->framed = 0;
        c->srv->rslab->extra = 0;
        c->srv->rslab->size = READ_BUF_SIZE;
    }
    *buf = uv_buf_init((char *)c->srv->rslab->data, READ_BUF_SIZE);
}

/* Consumes n bytes read at p (inside slab, or slab NULL): completes
 * frames and keeps partial ones. */
static void consume(sl_conn *c, const uint8_t *p, size_t n, sl_slab *slab)
{
    const sl_config *cfg = c->srv->cfg;

    while (n > 0 && !c->closing) {
        if (c->frame == NULL) {
            size_t take = SL_MIN(n, 4 - c->size_got);
            int32_t size;
            memcpy(c->size_buf + c->size_got, p, take);
            c->size_got += take;
            p += take;
            n -= take;
            if (c->size_got < 4)
                return;
            c->size_got = 0;
            size = (int32_t)(((uint32_t)c->size_buf[0] << 24) |
                             ((uint32_t)c->size_buf[1] << 16) |
                             ((uint32_t)c->size_buf[2] << 8) |
                             c->size_buf[3]);
            if (size < 8 || (int64_t)size > cfg->max_request_bytes) {
                char why[200];
                if (c->tls == NULL && c->size_buf[0] == 22 &&
                    c->size_buf[1] == 3 && c->size_buf[2] <= 4)
                    snprintf(why, sizeof(why),
                             "a TLS handshake on a plaintext listener (a "
                             "client with security.protocol SSL or "
                             "SASL_SSL?)");
                else
                    snprintf(why, sizeof(why),
                             "request frame of %d bytes is outside 8..%lld "
                             "(limits.max_request_bytes)",
                             size, (long long)cfg->max_request_bytes);
                sl__conn_close(c, why);
                return;
            }
            if (slab != NULL && (size_t)size <= n &&
                (size_t)size >= SLAB_MIN_FRAME) {
                /* Whole frame in the slab: dispatch it in place. */
                const uint8_t *f = p;
                p += (size_t)size;
                n -= (size_t)size;
                slab->refs++;
                slab->framed += (size_t)size;
                c->frame_start_ms = 0;
                dispatch(c, (uint8_t *)f, (size_t)size, slab);
                continue;
            }
            c->frame_len = (size_t)size;
            c->frame_got = 0;
            c->frame = sl_malloc(c->frame_len);
        }
        {
            size_t take = SL_MIN(n, c->frame_len - c->frame_got);
            if (p != c->frame + c->frame_got)
                memcpy(c->frame + c->frame_got, p, take);
            c->frame_got += take;
            p += take;
            n -= take;
        }
        if (c->frame_got == c->frame_len) {
            uint8_t *frame = c->frame;
            size_t len = c->frame_len;
            c->frame = NULL;
            c->frame_len = c->frame_got = 0;
            c->frame_start_ms = 0;
            dispatch(c, frame, len, NULL);
        }
    }
}

/* Ciphertext read on a TLS connection: decrypts what it can and consumes
 * the plaintext (copied into frames: the scratch buffer is reused). */
static void tls_read(sl_conn *c, const uint8_t *p, size_t n)
{
    static uint8_t plain[READ_BUF_SIZE]; /* loop thread only */
    char why[320];
    ssize_t got;

    sl_tls_conn_feed(c->tls, p, n);
    while (!c->closing) {
        got = sl_tls_conn_read(c->tls, plain, sizeof(plain), why,
                               sizeof(why));
        if (got == 0)
            break;
        if (got == SL_TLS_CLOSED) {
            sl__conn_close(c, NULL);
            return;
        }
        if (got < 0) {
            if (!c->tls_up) /* later errors are no handshake's */
                c->srv->sec.failures[SL_AUTH_FAIL_TLS_HANDSHAKE]++;
            sl__conn_close(c, why);
            return;
        }
        if (!c->tls_up && !sl__security_tls_up(c, why, sizeof(why))) {
            sl__conn_close(c, why);
            return;
        }
        consume(c, plain, (size_t)got, NULL);
    }
    if (c->closing)
        return;
    if (!c->tls_up && sl_tls_conn_established(c->tls) &&
        !sl__security_tls_up(c, why, sizeof(why))) {
        sl__conn_close(c, why);
        return;
    }
    tls_send(c, 0); /* handshake bytes */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sl_conn *c = s->data;

    if (nread < 0) {
        sl__conn_close(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    c->last_rx_ms = sl__now_ms(c->srv);
    if (c->tls != NULL) {
        tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        sl_server *srv = c->srv;
        sl_slab *slab = srv->rslab != NULL &&
                                (uint8_t *)buf->base == srv->rslab->data
                            ? srv->rslab
                            : NULL;
        if (slab != NULL)
            slab->refs++; /* held across consume: requests may finish in it */
        consume(c, (const uint8_t *)buf->base, (size_t)nread, slab);
        if (slab != NULL) {
            if (slab->refs > 1) {
                /* Pinned: the next read gets a fresh slab, and the bytes
                 * no frame uses count against the memory budget. */
                srv->rslab = NULL;
                slab->extra = slab->size - slab->framed;
                sl__mem_charge(srv, slab->extra);
            } else {
                slab->framed = 0;
            }
            slab_unref(srv, slab);
        }
    }
    /* A request begun and not finished (or a TLS handshake): its clock
     * runs from now. */
    if (!c->closing &&
        (c->frame != NULL || c->size_got > 0 ||
         (c->tls != NULL && !c->tls_up)) &&
        c->frame_start_ms == 0)
        c->frame_start_ms = c->last_rx_ms;
}

void sl__conn_update_reading(sl_conn *c)
{
    sl_server *srv = c->srv;
    const sl_config *cfg = srv->cfg;
    bool want = !c->closing && !c->close_when_written &&
                !srv->shutting_down && !srv->mem_paused &&
                !c->muted &&
                c->inflight_reqs < (size_t)cfg->max_inflight_requests &&
                c->inflight_bytes < (size_t)cfg->max_inflight_bytes;

    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
            /* While Sluice did not read, the client could not send: the
             * idle and request clocks start again. */
            c->reading = true;
            c->last_rx_ms = sl__now_ms(srv);
            if (c->frame_start_ms != 0)
                c->frame_start_ms = c->last_rx_ms;
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

void sl__conn_accept(sl_server *srv, sl_listener *l)
{
    sl_conn *c;
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    c = sl_calloc(1, sizeof(*c));
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    c->srv = srv;
    c->broker = l->broker;
    c->fam = l->fam;
    rc = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        sl_warn_client("accept: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&c->tcp, on_close);
        c->closing = true;
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->id = ++srv->next_conn_id;
    strcpy(c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        c->peer_addr = ss;
        char ip[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
        if (sl_ipaddr_from_sockaddr(&ss, &c->ip)) {
            uint32_t limit = sl_iplimits_for(
                &srv->iplimits, &c->ip,
                srv->cfg->max_connections_per_ip > 0
                    ? (uint32_t)srv->cfg->max_connections_per_ip
                    : UINT32_MAX);
            uint32_t have = sl_ipcount_get(srv->ipcount, &c->ip);
            if (have >= limit) {
                /* As a broker: the new connection is closed at once. */
                sl_warn_client("connection from %s refused: %u from this "
                               "address already "
                               "(limits.max_connections_per_ip%s: %u)",
                               c->peer, have,
                               srv->iplimits.n ? " or its overrides" : "",
                               limit);
                c->closing = true;
                c->id = 0; /* not in the server's list: on_close skips it */
                uv_close((uv_handle_t *)&c->tcp, on_close);
                return;
            }
            sl_ipcount_inc(srv->ipcount, &c->ip);
            c->ip_counted = true;
        }
    }
    c->last_rx_ms = sl__now_ms(srv);
    sl__security_conn_init(c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    sl_debug("conn %llu from %s", (unsigned long long)c->id, c->peer);
    sl__conn_update_reading(c);
}

/* The first listener with a connection left in its backlog (at
 * limits.max_connections), or NULL. */
static sl_listener *first_pending(sl_server *srv)
{
    for (size_t f = 0; f < SL_N_FAMILIES; f++) {
        sl_family *fam = &srv->fam[f];
        if (fam->enabled && fam->listener.pending)
            return &fam->listener;
        for (size_t i = 0; i < fam->n_blisten; i++)
            if (fam->blisten[i]->pending)
                return fam->blisten[i];
    }
    return NULL;
}

static void on_close(uv_handle_t *h)
{
    sl_conn *c = h->data;
    sl_server *srv = c->srv;

    if (c->id != 0) {
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        srv->n_conns--;
    }
    if (c->dirty) {
        /* Still listed for the check phase (closed after it ran, e.g.
         * at shutdown): unlink before freeing. */
        sl_conn **pp = &srv->dirty;
        while (*pp && *pp != c)
            pp = &(*pp)->dirty_next;
        if (*pp)
            *pp = c->dirty_next;
    }
    if (c->ip_counted)
        sl_ipcount_dec(srv->ipcount, &c->ip);
    sl__security_conn_free(c);
    drop_output(c);
    sl_free(c->frame);
    sl_free(c->out_data);
    sl_free(c->out_len);
    sl_free(c);
    if (srv->accept_paused && !srv->shutting_down &&
        srv->n_conns < (size_t)srv->cfg->max_connections) {
        /* Accept from the first listener with a connection waiting. */
        sl_listener *l = first_pending(srv);
        if (l != NULL) {
            l->pending = false;
            sl__conn_accept(srv, l);
        }
        srv->accept_paused = first_pending(srv) != NULL;
    }
    sl__server_maybe_finish(srv);
}

void sl__conn_close(sl_conn *c, const char *why)
{
    sl_req *req, *next;

    if (c->closing)
        return;
    c->closing = true;
    if (why != NULL)
        sl_warn_client("conn %llu %s (client.id \"%s\"): closing: %s",
                       (unsigned long long)c->id, c->peer, c->client_id, why);
    else
        sl_debug("conn %llu %s closed by peer", (unsigned long long)c->id,
                 c->peer);
    if (c->reading)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    drop_output(c);
    sl__quota_conn_release(c);
    /* Requests still working upstream are orphaned: they free themselves
     * when their records settle. The rest go now. */
    for (req = c->q_head; req; req = next) {
        next = req->next;
        req->conn = NULL;
        req->next = NULL;
        /* An orphan keeps its budget charge until freed: its frame is
         * still referenced upstream. */
        if (req->produce == NULL && req->wait == NULL)
            sl__req_free(c->srv, req);
    }
    c->q_head = c->q_tail = NULL;
    c->inflight_reqs = 0;
    c->inflight_bytes = 0;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

void sl__conn_sweep(sl_server *srv, uint64_t now_ms)
{
    const sl_config *cfg = srv->cfg;
    sl_conn *c, *next;
    char why[160];

    for (c = srv->conns; c; c = next) {
        next = c->next;
        if (c->closing || !c->reading)
            continue;
        if (cfg->request_read_timeout_ms > 0 && c->frame_start_ms != 0 &&
            now_ms - c->frame_start_ms >
                (uint64_t)cfg->request_read_timeout_ms) {
            if (c->tls != NULL && !c->tls_up)
                snprintf(why, sizeof(why),
                         "the TLS handshake has taken more than %lld ms "
                         "(limits.request_read_timeout_ms)",
                         (long long)cfg->request_read_timeout_ms);
            else
                snprintf(why, sizeof(why),
                         "a request of %zu bytes has been arriving for more "
                         "than %lld ms (%zu received; "
                         "limits.request_read_timeout_ms)",
                         c->frame ? c->frame_len : 0,
                         (long long)cfg->request_read_timeout_ms,
                         c->frame ? c->frame_got : c->size_got);
            sl__conn_close(c, why);
        } else if (cfg->connections_max_idle_ms > 0 &&
                   c->frame_start_ms == 0 && c->q_head == NULL &&
                   c->inflight_reqs == 0 && c->writes_pending == 0 &&
                   now_ms - c->last_rx_ms >
                       (uint64_t)cfg->connections_max_idle_ms) {
            /* A broker closes idle connections without a word; clients
             * reconnect when they next need one. */
            sl_debug("conn %llu %s (client.id \"%s\"): idle for %llu ms "
                     "(limits.connections_max_idle_ms): closing",
                     (unsigned long long)c->id, c->peer, c->client_id,
                     (unsigned long long)(now_ms - c->last_rx_ms));
            sl__conn_close(c, NULL);
        }
    }
}

/* ---- dispatch ------------------------------------------------------------- */

static void enqueue(sl_conn *c, sl_req *req)
{
    if (c->q_tail)
        c->q_tail->next = req;
    else
        c->q_head = req;
    c->q_tail = req;
}

/* Encodes a complete response frame around body bytes produced by fn. */
static void answer_apiversions(sl_req *req)
{
    sl_kafka_ApiVersionsResponse resp;
    int16_t ver = req->hdr.api_version;
    sl_wr w;
    size_t start;
    uint8_t *buf;
    size_t len;

    if (ver > 3) {
        /* Unsupported version: a v0 body with error 35 listing only
         * ApiVersions, so the client retries with a version we know. */
        sl_kafka_ApiVersionsResponse_build(&resp, true);
        ver = 0;
    } else {
        sl_kafka_ApiVersionsRequest body;
        sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                             req->frame_len - req->hdr.len);
        sl_kafka_ApiVersionsResponse_build(&resp, false);
        if (sl_kafka_ApiVersionsRequest_decode(&r, ver, &body) != 0 ||
            (ver >= 3 &&
             (!sl_kafka_software_name_valid(body.client_software_name) ||
              !sl_kafka_software_name_valid(body.client_software_version)))) {
            sl_warn_client(
                "conn %llu %s: ApiVersions v%d with an invalid body or "
                "client software name: INVALID_REQUEST",
                (unsigned long long)req->conn->id, req->conn->peer, ver);
            resp.error_code = SL_KERR_INVALID_REQUEST;
            resp.n_apis = 0;
        }
    }
    sl_wr_init(&w, 512);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_API_VERSIONS, ver,
                                     req->hdr.correlation_id);
    sl_kafka_ApiVersionsResponse_encode(&w, ver, &resp);
    sl_kafka_frame_end(&w, start);
    buf = sl_wr_release(&w, &len);
    sl__req_answer(req, buf, len);
}

static void answer_init_producer_id(sl_server *srv, sl_req *req)
{
    sl_kafka_InitProducerIdRequest body;
    sl_kafka_InitProducerIdResponse resp = {0, 0, -1, -1};
    int16_t ver = req->hdr.api_version;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    sl_wr w;
    size_t start, len;
    uint8_t *buf;

    if (sl_kafka_InitProducerIdRequest_decode(&r, ver, &body) != 0) {
        req->close_after = true;
        sl_warn_client(
            "conn %llu %s: malformed InitProducerId v%d",
            (unsigned long long)req->conn->id, req->conn->peer, ver);
        sl__req_answer(req, NULL, 0);
        return;
    }
    if (body.transactional_id.len >= 0) {
        sl_warn_client(
            "conn %llu %s (client.id \"%s\"): InitProducerId for "
            "transactional.id \"%.*s\": Sluice does not serve "
            "transactions; answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            (unsigned long long)req->conn->id, req->conn->peer,
            req->conn->client_id, (int)body.transactional_id.len,
            body.transactional_id.p);
        resp.error_code = SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else {
        /* v3+ may name an id and epoch (KIP-360); a broker ignores them
         * without a transactional.id, and so does Sluice. */
        resp.error_code = sl_idem_init_producer(srv->idem, &resp.producer_id,
                                                &resp.producer_epoch);
        sl_debug("conn %llu: InitProducerId -> id %lld epoch %d",
                 (unsigned long long)req->conn->id,
                 (long long)resp.producer_id, resp.producer_epoch);
    }
    sl_wr_init(&w, 64);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_INIT_PRODUCER_ID, ver,
                                     req->hdr.correlation_id);
    sl_kafka_InitProducerIdResponse_encode(&w, ver, &resp);
    sl_kafka_frame_end(&w, start);
    buf = sl_wr_release(&w, &len);
    sl__req_answer(req, buf, len);
}

static void answer_unserved(sl_conn *c, sl_req *req, const sl_kafka_api *api)
{
    int16_t err = unserved_error(req->hdr.api_key);
    sl_wr w;
    size_t start, len;
    uint8_t *buf;

    sl_wr_init(&w, 128);
    start = sl_kafka_resp_hdr_encode(&w, req->hdr.api_key,
                                     req->hdr.api_version,
                                     req->hdr.correlation_id);
    if (!sl_kafka_error_response_carries_error(req->hdr.api_key,
                                               req->hdr.api_version) ||
        sl_kafka_error_response_encode(&w, req->hdr.api_key,
                                       req->hdr.api_version, err) != 0) {
        sl_wr_free(&w);
        sl_warn_client(
            "conn %llu %s (client.id \"%s\"): %s v%d is not served by "
            "Sluice (a produce proxy: ApiVersions, Metadata, Produce, "
            "InitProducerId) and that version has no top-level error "
            "field to say so; disconnecting",
            (unsigned long long)c->id, c->peer, c->client_id, api->name,
            req->hdr.api_version);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }
    sl_kafka_frame_end(&w, start);
    sl_log(c->unserved_logged ? SL_LOG_DEBUG : SL_LOG_WARN,
           "conn %llu %s (client.id \"%s\"): %s v%d is not served by Sluice "
           "(a produce proxy: ApiVersions, Metadata, Produce, "
           "InitProducerId); answered %s",
           (unsigned long long)c->id, c->peer, c->client_id, api->name,
           req->hdr.api_version, sl_kafka_err_name(err));
    c->unserved_logged = true;
    buf = sl_wr_release(&w, &len);
    sl__req_answer(req, buf, len);
}

/* FindCoordinator: Sluice coordinates nothing. A transactional producer
 * asks for its transaction coordinator first; it gets the non-retriable
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED with a message at once (Java and
 * librdkafka make it a fatal error), not an answer it retries until its
 * own time-out. Groups keep UNSUPPORTED_VERSION: they are the cluster's. */
static void answer_find_coordinator(sl_conn *c, sl_req *req)
{
    static const char txn_msg[] =
        "Sluice does not serve transactions: transactional producers must "
        "write to the Kafka cluster directly";
    static const char group_msg[] =
        "Sluice is a produce proxy: consumer groups are served by the "
        "Kafka cluster";
    sl_kafka_FindCoordinatorRequest body;
    int16_t ver = req->hdr.api_version;
    sl_rd r = sl_rd_init(req->frame + req->hdr.len,
                         req->frame_len - req->hdr.len);
    bool txn;
    int16_t err;
    sl_wr w;
    size_t start, len;
    uint8_t *buf;

    if (sl_kafka_FindCoordinatorRequest_decode(&r, ver, &body) != 0) {
        sl_warn_client(
            "conn %llu %s (client.id \"%s\"): malformed FindCoordinator "
            "v%d (or more than %d keys); disconnecting",
            (unsigned long long)c->id, c->peer, c->client_id, ver,
            SL_KAFKA_FIND_COORDINATOR_MAX_KEYS);
        req->close_after = true;
        sl__req_answer(req, NULL, 0);
        return;
    }
    txn = body.key_type == SL_KAFKA_COORDINATOR_TRANSACTION;
    err = txn ? SL_KERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED
              : SL_KERR_UNSUPPORTED_VERSION;
    sl_log(c->unserved_logged ? SL_LOG_DEBUG : SL_LOG_WARN,
           "conn %llu %s (client.id \"%s\"): FindCoordinator v%d for %s "
           "\"%.*s\"%s: %s; answered %s",
           (unsigned long long)c->id, c->peer, c->client_id, ver,
           txn ? "transactional.id" : "group",
           body.n_keys > 0 ? (int)(body.keys[0].len < 0 ? 0 : body.keys[0].len)
                           : 0,
           body.n_keys > 0 && body.keys[0].p ? body.keys[0].p : "",
           body.n_keys > 1 ? " and others" : "", txn ? txn_msg : group_msg,
           sl_kafka_err_name(err));
    c->unserved_logged = true;
    sl_wr_init(&w, 128);
    start = sl_kafka_resp_hdr_encode(&w, SL_KAFKA_FIND_COORDINATOR, ver,
                                     req->hdr.correlation_id);
    sl_kafka_FindCoordinatorResponse_encode(&w, ver, &body, err,
                                            SL_KSTR(txn ? txn_msg : group_msg));
    sl_kafka_frame_end(&w, start);
    buf = sl_wr_release(&w, &len);
    sl__req_answer(req, buf, len);
}

/* Takes ownership of frame. */
static void dispatch(sl_conn *c, uint8_t *frame, size_t len, sl_slab *slab)
{
    sl_server *srv = c->srv;
    sl_req *req = sl_calloc(1, sizeof(*req));
    const sl_kafka_api *api;
    int rc;

    req->srv = srv;
    req->conn = c;
    req->frame = frame;
    req->slab = slab;
    req->frame_len = len;
    req->mem = len;
    req->start_ms = sl__now_ms(srv);
    c->inflight_reqs++;
    c->inflight_bytes += len;
    sl__mem_charge(srv, len);

    if (c->auth != NULL && sl__sasl_expects_raw(c)) {
        enqueue(c, req);
        sl__sasl_raw_token(c, req);
        return;
    }
    rc = sl_kafka_req_hdr_decode(frame, len, &req->hdr);
    api = sl_kafka_api_find(req->hdr.api_key);
    if (rc == SL_E_TRUNCATED || api == NULL) {
        char why[128];
        if (api == NULL && rc != SL_E_TRUNCATED)
            snprintf(why, sizeof(why), "unknown API key %d (version %d)",
                     req->hdr.api_key, req->hdr.api_version);
        else
            snprintf(why, sizeof(why), "request header truncated");
        release_charge(c, req);
        sl__req_free(srv, req);
        sl__conn_close(c, why);
        return;
    }
    if (req->hdr.client_id.len > 0)
        snprintf(c->client_id, sizeof(c->client_id), "%.*s",
                 (int)req->hdr.client_id.len, req->hdr.client_id.p);
    if (rc == 0)
        sl__quota_identify(c, req->hdr.client_id);
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof(why), "malformed %s v%d request header",
                 api->name, req->hdr.api_version);
        release_charge(c, req);
        sl__req_free(srv, req);
        sl__conn_close(c, why);
        return;
    }
    sl_debug("conn %llu: %s v%d corr %d (%zu bytes)",
             (unsigned long long)c->id, api->name, req->hdr.api_version,
             req->hdr.correlation_id, len);

    /* Every request takes its place in the answer queue, acks=0 Produce
     * included (it is answered with nothing once its records settle), so
     * answers leave in request order and in-flight limits see it. */
    enqueue(c, req);
    if (c->auth != NULL && !sl__sasl_gate(c, req))
        return;
    if (req->hdr.api_key == SL_KAFKA_API_VERSIONS) {
        answer_apiversions(req);
        return;
    }
    if (!api->served) {
        answer_unserved(c, req, api);
        return;
    }
    if (req->hdr.api_version < api->min_version ||
        req->hdr.api_version > api->max_version)
        goto bad_version_queued;
    switch (req->hdr.api_key) {
    case SL_KAFKA_PRODUCE:
        sl__produce_handle(srv, req);
        return;
    case SL_KAFKA_METADATA:
        sl__metadata_handle(srv, req);
        return;
    case SL_KAFKA_INIT_PRODUCER_ID:
        answer_init_producer_id(srv, req);
        return;
    case SL_KAFKA_FIND_COORDINATOR:
        answer_find_coordinator(c, req);
        return;
    case SL_KAFKA_SASL_HANDSHAKE:
        sl__sasl_handshake(c, req);
        return;
    case SL_KAFKA_SASL_AUTHENTICATE:
        sl__sasl_authenticate(c, req);
        return;
    default:
        answer_unserved(c, req, api);
        return;
    }

bad_version_queued:
    sl_warn_client("conn %llu %s (client.id \"%s\"): %s v%d is outside the "
                   "advertised range %d..%d; disconnecting",
                   (unsigned long long)c->id, c->peer, c->client_id, api->name,
                   req->hdr.api_version, api->min_version, api->max_version);
    req->close_after = true;
    sl__req_answer(req, NULL, 0);
}
