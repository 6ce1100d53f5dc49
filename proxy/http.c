/*
 * HTTP/1.1 server for the operator surface: parser (sans-I/O, over
 * llhttp), router and responses (pure), and the libuv server. See
 * include/sluice/http.h.
 *
 * Threads: all of it runs on the loop thread that owns the server.
 */
#include "sluice/http.h"
#include "sluice/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

/* =========================================================================
 * Parser
 * ========================================================================= */

enum pstate {
    P_IDLE,      /* parsing (or between requests) */
    P_REQUEST,   /* paused after a request; it is in p->req */
    P_LAST,      /* paused after a request that ends the connection */
    P_CLOSED,    /* after P_LAST: everything is ignored */
    P_ERROR,     /* sticky */
};

enum pause_why { PAUSE_NONE, PAUSE_HEADERS, PAUSE_MESSAGE };

struct sl_http_parser {
    llhttp_t llh;
    sl_http_limits lim;
    enum pstate state;
    enum pause_why pause; /* set by the callback that returned HPE_PAUSED */

    /* The message being parsed. The raw head count covers every byte fed
     * since the previous request ended until this one's headers are
     * complete (leading blank lines included); the kept count covers what
     * is stored (target, names, values, 4 bytes a field for ": " and CRLF)
     * and is checked inside the callbacks, so storage never exceeds the
     * limit even within one large feed. */
    bool headers_done;
    bool in_url;          /* the target is still arriving */
    bool field_open;      /* a header field started, value not complete */
    bool want_continue;
    size_t head_raw;
    size_t head_kept;
    sl_wr url;            /* request target */
    sl_wr hstore;         /* "name\0value\0" ... */
    size_t *hoff;         /* 2 offsets into hstore per header */
    size_t nh, hoff_cap;  /* headers complete; capacity in headers */
    sl_wr body;

    /* The delivered request (pointers into url/hstore/body/derived). */
    sl_http_request req;
    bool req_keep_alive;
    sl_wr derived;        /* decoded path and query strings */
    sl_http_header *hdrs;
    size_t hdrs_cap;
    sl_http_param *params;
    size_t params_cap;

    /* Error */
    int err_status;
    const char *err_msg;
    char err_buf[192];
};

static sl_http_parser *parser_of(llhttp_t *llh)
{
    return SL_CONTAINER_OF(llh, sl_http_parser, llh);
}

/* Records an error found in a callback; llhttp gets HPE_USER. */
static int cb_fail(sl_http_parser *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cb_fail(sl_http_parser *p, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err_buf, sizeof(p->err_buf), fmt, ap);
    va_end(ap);
    p->err_status = status;
    p->err_msg = p->err_buf;
    llhttp_set_error_reason(&p->llh, "sluice limit");
    return HPE_USER;
}

static int head_charge(sl_http_parser *p, size_t n)
{
    p->head_kept += n;
    if (p->head_kept > p->lim.max_header_bytes) {
        if (p->in_url)
            return cb_fail(p, 414, "request target longer than %zu bytes",
                           p->lim.max_header_bytes);
        return cb_fail(p, 431, "request header section larger than %zu "
                       "bytes", p->lim.max_header_bytes);
    }
    return 0;
}

static int on_message_begin(llhttp_t *llh)
{
    sl_http_parser *p = parser_of(llh);
    p->headers_done = false;
    p->in_url = true;
    p->field_open = false;
    p->want_continue = false;
    p->head_kept = 0;
    p->url.len = 0;
    p->hstore.len = 0;
    p->nh = 0;
    p->body.len = 0;
    return 0;
}

static int on_url(llhttp_t *llh, const char *at, size_t len)
{
    sl_http_parser *p = parser_of(llh);
    int rc = head_charge(p, len);
    if (rc == 0)
        sl_wr_raw(&p->url, at, len);
    return rc;
}

static int on_url_complete(llhttp_t *llh)
{
    parser_of(llh)->in_url = false;
    return 0;
}

static int field_begin(sl_http_parser *p)
{
    if (p->field_open)
        return 0;
    if (p->nh >= p->lim.max_headers)
        return cb_fail(p, 431, "more than %zu header fields",
                       p->lim.max_headers);
    if (p->nh == p->hoff_cap) {
        p->hoff_cap = p->hoff_cap ? p->hoff_cap * 2 : 16;
        p->hoff = sl_realloc(p->hoff, p->hoff_cap * 2 * sizeof(*p->hoff));
    }
    p->hoff[2 * p->nh] = p->hstore.len;
    p->field_open = true;
    return head_charge(p, 4);
}

static int on_header_field(llhttp_t *llh, const char *at, size_t len)
{
    sl_http_parser *p = parser_of(llh);
    int rc = field_begin(p);
    if (rc == 0)
        rc = head_charge(p, len);
    if (rc == 0)
        sl_wr_raw(&p->hstore, at, len);
    return rc;
}

static int on_header_field_complete(llhttp_t *llh)
{
    sl_http_parser *p = parser_of(llh);
    int rc = field_begin(p);
    if (rc)
        return rc;
    sl_wr_u8(&p->hstore, 0);
    p->hoff[2 * p->nh + 1] = p->hstore.len;
    return 0;
}

static int on_header_value(llhttp_t *llh, const char *at, size_t len)
{
    sl_http_parser *p = parser_of(llh);
    int rc = head_charge(p, len);
    if (rc == 0)
        sl_wr_raw(&p->hstore, at, len);
    return rc;
}

static int on_header_value_complete(llhttp_t *llh)
{
    sl_http_parser *p = parser_of(llh);
    size_t start = p->hoff[2 * p->nh + 1];
    /* llhttp drops leading whitespace; drop the trailing one too. */
    while (p->hstore.len > start && (p->hstore.buf[p->hstore.len - 1] == ' ' ||
                                     p->hstore.buf[p->hstore.len - 1] == '\t'))
        p->hstore.len--;
    sl_wr_u8(&p->hstore, 0);
    p->nh++;
    p->field_open = false;
    return 0;
}

static const char *stored_header(const sl_http_parser *p, const char *name)
{
    for (size_t i = 0; i < p->nh; i++)
        if (strcasecmp((const char *)p->hstore.buf + p->hoff[2 * i], name) ==
            0)
            return (const char *)p->hstore.buf + p->hoff[2 * i + 1];
    return NULL;
}

static int on_headers_complete(llhttp_t *llh)
{
    sl_http_parser *p = parser_of(llh);
    const char *expect = stored_header(p, "Expect");
    p->headers_done = true;
    p->want_continue = expect != NULL &&
                       strcasecmp(expect, "100-continue") == 0 &&
                       (llh->http_major > 1 ||
                        (llh->http_major == 1 && llh->http_minor >= 1));
    /* Pause so that the feed loop knows exactly how many raw bytes the
     * head took, and checks the limits before any body byte is read. */
    p->pause = PAUSE_HEADERS;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *llh, const char *at, size_t len)
{
    sl_http_parser *p = parser_of(llh);
    if (len > p->lim.max_body_bytes - p->body.len)
        return cb_fail(p, 413, "request body larger than %zu bytes",
                       p->lim.max_body_bytes);
    sl_wr_raw(&p->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *llh)
{
    sl_http_parser *p = parser_of(llh);
    /* An upgraded connection would speak another protocol next: answer
     * this request and close. */
    p->req_keep_alive = llhttp_should_keep_alive(llh) && !llh->upgrade;
    p->want_continue = false;
    p->pause = PAUSE_MESSAGE;
    return HPE_PAUSED;
}

static const llhttp_settings_t *parser_settings(void)
{
    /* Written once, read-only afterwards; llhttp keeps a pointer to it. */
    static llhttp_settings_t s;
    static bool init;
    if (!init) {
        llhttp_settings_init(&s);
        s.on_message_begin = on_message_begin;
        s.on_url = on_url;
        s.on_url_complete = on_url_complete;
        s.on_header_field = on_header_field;
        s.on_header_field_complete = on_header_field_complete;
        s.on_header_value = on_header_value;
        s.on_header_value_complete = on_header_value_complete;
        s.on_headers_complete = on_headers_complete;
        s.on_body = on_body;
        s.on_message_complete = on_message_complete;
        init = true;
    }
    return &s;
}

sl_http_parser *sl_http_parser_new(const sl_http_limits *limits)
{
    sl_http_parser *p = sl_calloc(1, sizeof(*p));
    if (limits)
        p->lim = *limits;
    if (p->lim.max_header_bytes == 0)
        p->lim.max_header_bytes = SL_HTTP_MAX_HEADER_BYTES;
    if (p->lim.max_headers == 0)
        p->lim.max_headers = SL_HTTP_MAX_HEADERS;
    if (p->lim.max_body_bytes == 0)
        p->lim.max_body_bytes = SL_HTTP_MAX_BODY_BYTES;
    sl_http_parser_reset(p);
    return p;
}

void sl_http_parser_reset(sl_http_parser *p)
{
    llhttp_init(&p->llh, HTTP_REQUEST, parser_settings());
    p->state = P_IDLE;
    p->pause = PAUSE_NONE;
    p->headers_done = false;
    p->in_url = true;
    p->field_open = false;
    p->want_continue = false;
    p->head_raw = 0;
    p->head_kept = 0;
    p->url.len = p->hstore.len = p->body.len = p->derived.len = 0;
    p->nh = 0;
    memset(&p->req, 0, sizeof(p->req));
    p->err_status = 0;
    p->err_msg = NULL;
}

void sl_http_parser_free(sl_http_parser *p)
{
    if (p == NULL)
        return;
    sl_wr_free(&p->url);
    sl_wr_free(&p->hstore);
    sl_wr_free(&p->body);
    sl_wr_free(&p->derived);
    sl_free(p->hoff);
    sl_free(p->hdrs);
    sl_free(p->params);
    sl_free(p);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends the percent-decoding of s[0..n) and a NUL to w. Fails on a
 * malformed escape or a decoded NUL (it would cut C strings short). */
static int pct_decode(sl_wr *w, const char *s, size_t n, bool plus_space)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (plus_space && c == '+') {
            c = ' ';
        }
        sl_wr_u8(w, (uint8_t)c);
    }
    sl_wr_u8(w, 0);
    return 0;
}

static void fail_now(sl_http_parser *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_now(sl_http_parser *p, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err_buf, sizeof(p->err_buf), fmt, ap);
    va_end(ap);
    p->err_status = status;
    p->err_msg = p->err_buf;
    p->state = P_ERROR;
}

/* Drops the delivered request; a body buffer grown past 64 KiB is freed
 * rather than kept for the connection's lifetime (up to 1 MiB each). */
static void release_request(sl_http_parser *p)
{
    memset(&p->req, 0, sizeof(p->req));
    if (p->body.cap > 65536)
        sl_wr_free(&p->body);
}

/* Builds p->req from the stored message. 0, or -1 after fail_now. */
static int finalize(sl_http_parser *p)
{
    const char *target, *q, *end;
    size_t path_off, query_off, nparams = 0, *poff = NULL;
    sl_http_request *r = &p->req;

    sl_wr_u8(&p->url, 0);
    target = (const char *)p->url.buf;
    if (target[0] != '/') {
        fail_now(p, 400, "request target must be a path starting with /");
        return -1;
    }
    end = target + strlen(target);
    q = strchr(target, '#');
    if (q)
        end = q; /* a fragment is never meant for the server */
    q = memchr(target, '?', (size_t)(end - target));

    p->derived.len = 0;
    path_off = 0;
    if (pct_decode(&p->derived, target, (size_t)((q ? q : end) - target),
                   false) != 0) {
        fail_now(p, 400, "malformed percent-encoding in path");
        return -1;
    }
    /* The raw query, without the fragment (the target keeps it: it is
     * the request as sent, for logs). */
    query_off = p->derived.len;
    if (q)
        sl_wr_raw(&p->derived, q + 1, (size_t)(end - q - 1));
    sl_wr_u8(&p->derived, 0);
    /* Query parameters: "k=v&k2&..."; offsets first, since derived may
     * move while it grows. At most one per '&', plus one. */
    if (q) {
        const char *s = q + 1;
        size_t max = 1;
        for (const char *a = s; a < end; a++)
            max += *a == '&';
        poff = sl_malloc(max * 2 * sizeof(*poff));
        while (s < end) {
            const char *amp = memchr(s, '&', (size_t)(end - s));
            const char *e = amp ? amp : end;
            const char *eq = memchr(s, '=', (size_t)(e - s));
            if (e > s) {
                size_t koff = p->derived.len, voff;
                if (pct_decode(&p->derived, s, (size_t)((eq ? eq : e) - s),
                               true) != 0)
                    goto bad_query;
                voff = p->derived.len;
                if (pct_decode(&p->derived, eq ? eq + 1 : e,
                               eq ? (size_t)(e - eq - 1) : 0, true) != 0)
                    goto bad_query;
                poff[2 * nparams] = koff;
                poff[2 * nparams + 1] = voff;
                nparams++;
            }
            s = e + 1;
        }
    }

    if (nparams > p->params_cap) {
        sl_free(p->params);
        p->params = sl_malloc(nparams * sizeof(*p->params));
        p->params_cap = nparams;
    }
    for (size_t i = 0; i < nparams; i++) {
        p->params[i].key = (const char *)p->derived.buf + poff[2 * i];
        p->params[i].value = (const char *)p->derived.buf + poff[2 * i + 1];
    }
    sl_free(poff);

    if (p->nh > p->hdrs_cap) {
        sl_free(p->hdrs);
        p->hdrs = sl_malloc(p->nh * sizeof(*p->hdrs));
        p->hdrs_cap = p->nh;
    }
    for (size_t i = 0; i < p->nh; i++) {
        p->hdrs[i].name = (const char *)p->hstore.buf + p->hoff[2 * i];
        p->hdrs[i].value = (const char *)p->hstore.buf + p->hoff[2 * i + 1];
    }
    sl_wr_u8(&p->body, 0);
    p->body.len--;

    memset(r, 0, sizeof(*r));
    r->method = llhttp_method_name((llhttp_method_t)p->llh.method);
    r->target = target;
    r->path = (const char *)p->derived.buf + path_off;
    r->query = (const char *)p->derived.buf + query_off;
    r->headers = p->hdrs;
    r->nheaders = p->nh;
    r->params = p->params;
    r->nparams = nparams;
    r->body = p->body.buf;
    r->body_len = p->body.len;
    r->http_major = p->llh.http_major;
    r->http_minor = p->llh.http_minor;
    r->keep_alive = p->req_keep_alive;
    r->route_rest = "";
    return 0;

bad_query:
    sl_free(poff);
    fail_now(p, 400, "malformed percent-encoding in query");
    return -1;
}

/* Status and message for an llhttp error that is not ours. */
static void fail_llhttp(sl_http_parser *p, llhttp_errno_t e)
{
    if (e == HPE_USER && p->err_status) {
        p->state = P_ERROR;
        return;
    }
    switch (e) {
    case HPE_INVALID_METHOD:
        fail_now(p, 400, "malformed request: invalid method");
        break;
    case HPE_INVALID_VERSION:
        fail_now(p, 400, "malformed request: invalid HTTP version");
        break;
    case HPE_PAUSED_UPGRADE:
        fail_now(p, 400, "protocol upgrade is not supported");
        break;
    default:
        fail_now(p, 400, "malformed request: %s",
                 llhttp_get_error_reason(&p->llh)
                     ? llhttp_get_error_reason(&p->llh)
                     : llhttp_errno_name(e));
        break;
    }
}

sl_http_feed_result sl_http_parser_feed(sl_http_parser *p, const void *data,
                                        size_t len, size_t *consumed)
{
    /* Never offset a NULL pointer, even by 0. */
    const char *d = data ? (const char *)data : "";
    size_t off = 0;

    *consumed = 0;
    if (data == NULL)
        len = 0;
    switch (p->state) {
    case P_ERROR:
        return SL_HTTP_ERROR;
    case P_CLOSED:
        *consumed = len;
        return SL_HTTP_NEED_MORE;
    case P_LAST:
        release_request(p);
        p->state = P_CLOSED;
        *consumed = len;
        return SL_HTTP_NEED_MORE;
    case P_REQUEST:
        release_request(p);
        p->state = P_IDLE;
        llhttp_resume(&p->llh);
        break;
    case P_IDLE:
        break;
    }

    for (;;) {
        bool in_head = !p->headers_done;
        llhttp_errno_t e;
        size_t used;

        p->pause = PAUSE_NONE;
        e = llhttp_execute(&p->llh, d + off, len - off);
        if (e == HPE_OK)
            used = len - off;
        else if (llhttp_get_error_pos(&p->llh) >= d + off &&
                 llhttp_get_error_pos(&p->llh) <= d + len)
            used = (size_t)(llhttp_get_error_pos(&p->llh) - (d + off));
        else
            used = 0;
        if (in_head)
            p->head_raw += used;
        off += used;
        *consumed = off;

        if (in_head && p->head_raw > p->lim.max_header_bytes &&
            (e == HPE_OK || p->pause == PAUSE_HEADERS)) {
            if (p->in_url)
                fail_now(p, 414, "request target longer than %zu bytes",
                         p->lim.max_header_bytes);
            else
                fail_now(p, 431, "request header section larger than %zu "
                         "bytes", p->lim.max_header_bytes);
            return SL_HTTP_ERROR;
        }
        if (e == HPE_OK)
            return SL_HTTP_NEED_MORE;
        if (e == HPE_PAUSED && p->pause == PAUSE_HEADERS) {
            if ((p->llh.flags & F_CONTENT_LENGTH) &&
                p->llh.content_length > p->lim.max_body_bytes) {
                fail_now(p, 413, "request body larger than %zu bytes",
                         p->lim.max_body_bytes);
                return SL_HTTP_ERROR;
            }
            llhttp_resume(&p->llh);
            /* Run again even with nothing left: a request without a
             * body completes without another byte. */
            continue;
        }
        if (e == HPE_PAUSED && p->pause == PAUSE_MESSAGE) {
            p->head_raw = 0;
            p->headers_done = false;
            if (finalize(p) != 0)
                return SL_HTTP_ERROR;
            p->state = p->req_keep_alive ? P_REQUEST : P_LAST;
            return SL_HTTP_REQUEST;
        }
        fail_llhttp(p, e);
        return SL_HTTP_ERROR;
    }
}

sl_http_request *sl_http_parser_request(sl_http_parser *p)
{
    return p->state == P_REQUEST || p->state == P_LAST ? &p->req : NULL;
}

int sl_http_parser_error(const sl_http_parser *p, const char **msg)
{
    if (p->state != P_ERROR) {
        if (msg)
            *msg = NULL;
        return 0;
    }
    if (msg)
        *msg = p->err_msg ? p->err_msg : "malformed request";
    return p->err_status ? p->err_status : 400;
}

bool sl_http_parser_take_continue(sl_http_parser *p)
{
    bool c = p->want_continue && p->state == P_IDLE;
    p->want_continue = false;
    return c;
}

const char *sl_http_request_header(const sl_http_request *req,
                                   const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

const char *sl_http_request_param(const sl_http_request *req,
                                  const char *key)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].key, key) == 0)
            return req->params[i].value;
    return NULL;
}

/* =========================================================================
 * Responses
 * ========================================================================= */

void sl_http_response_init(sl_http_response *r)
{
    memset(r, 0, sizeof(*r));
}

void sl_http_response_free(sl_http_response *r)
{
    sl_free(r->content_type);
    sl_free(r->body);
    sl_wr_free(&r->headers);
    memset(r, 0, sizeof(*r));
}

void sl_http_respond_take(sl_http_response *r, int status,
                          const char *content_type, void *body, size_t len)
{
    sl_free(r->content_type);
    sl_free(r->body);
    r->status = status;
    r->content_type = content_type ? sl_strdup(content_type) : NULL;
    r->body = body;
    r->body_len = body ? len : 0;
}

void sl_http_respond(sl_http_response *r, int status,
                     const char *content_type, const void *body, size_t len)
{
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = sl_malloc(len);
        memcpy(copy, body, len);
    }
    sl_http_respond_take(r, status, content_type, copy, len);
}

void sl_http_respond_json(sl_http_response *r, int status, json_t *j)
{
    size_t n;
    char *buf;
    if (j == NULL) {
        sl_http_respond_error(r, 500, "internal error: no JSON document");
        return;
    }
    /* Dump into our own allocation (jansson's json_dumps would hand back
     * memory from its allocator, not sl_malloc's). */
    n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    buf = sl_malloc(n + 1);
    if (n > 0)
        n = json_dumpb(j, buf, n, JSON_COMPACT);
    buf[n] = '\n';
    json_decref(j);
    sl_http_respond_take(r, status, "application/json", buf, n + 1);
}

void sl_http_respond_error(sl_http_response *r, int status, const char *fmt,
                           ...)
{
    char msg[512];
    va_list ap;
    json_t *s;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s = json_string(msg);
    if (s == NULL) {
        /* Not UTF-8 (a message quoting request bytes): keep ASCII. */
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
        s = json_string(msg);
    }
    sl_http_respond_json(r, status, json_pack("{s:o*}", "error", s));
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int sl_http_response_header(sl_http_response *r, const char *name,
                            const char *value)
{
    static const char *const reserved[] = {"Content-Type", "Content-Length",
                                           "Connection", "Transfer-Encoding"};
    if (name == NULL || value == NULL || name[0] == '\0')
        return SL_E_INVALID;
    for (const char *c = name; *c; c++)
        if (!is_tchar((unsigned char)*c))
            return SL_E_INVALID;
    if (strpbrk(value, "\r\n") != NULL)
        return SL_E_INVALID;
    for (size_t i = 0; i < SL_ARRAY_SIZE(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return SL_E_INVALID;
    sl_wr_raw(&r->headers, name, strlen(name));
    sl_wr_raw(&r->headers, ": ", 2);
    sl_wr_raw(&r->headers, value, strlen(value));
    sl_wr_raw(&r->headers, "\r\n", 2);
    return 0;
}

json_t *sl_http_request_json(const sl_http_request *req,
                             sl_http_response *r)
{
    json_error_t e;
    json_t *j;

    if (req->body_len == 0) {
        sl_http_respond_error(r, 400, "request body must be a JSON object");
        return NULL;
    }
    j = json_loadb((const char *)req->body, req->body_len,
                   JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        sl_http_respond_error(r, 400, "malformed JSON at line %d column "
                              "%d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        sl_http_respond_error(r, 400, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

const char *sl_http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

static void wr_cstr(sl_wr *w, const char *s)
{
    sl_wr_raw(w, s, strlen(s));
}

void sl_http_response_serialize(const sl_http_response *r, bool keep_alive,
                                bool head, sl_wr *w)
{
    char line[96];
    int status = r->status;
    bool bodyless;

    if (status < 100 || status > 999) {
        sl_http_response fallback;
        sl_http_response_init(&fallback);
        sl_http_respond_error(&fallback, 500,
                              "internal error: the handler gave no answer");
        sl_http_response_serialize(&fallback, keep_alive, head, w);
        sl_http_response_free(&fallback);
        return;
    }
    /* 1xx, 204 and 304 never carry a body nor a Content-Length. */
    bodyless = status < 200 || status == 204 || status == 304;
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
             sl_http_status_reason(status));
    wr_cstr(w, line);
    if (r->content_type && !bodyless) {
        wr_cstr(w, "Content-Type: ");
        wr_cstr(w, r->content_type);
        wr_cstr(w, "\r\n");
    }
    if (!bodyless) {
        snprintf(line, sizeof(line), "Content-Length: %zu\r\n", r->body_len);
        wr_cstr(w, line);
    }
    wr_cstr(w, keep_alive ? "Connection: keep-alive\r\n"
                          : "Connection: close\r\n");
    wr_cstr(w, "X-Content-Type-Options: nosniff\r\n");
    sl_wr_raw(w, r->headers.buf, r->headers.len);
    wr_cstr(w, "\r\n");
    if (!head && !bodyless)
        sl_wr_raw(w, r->body, r->body_len);
}

/* =========================================================================
 * Routing
 * ========================================================================= */

static bool route_match(const sl_http_route *rt, const char *path,
                        const char **rest)
{
    size_t n = strlen(rt->path);
    if (n > 0 && rt->path[n - 1] == '*') {
        if (strncmp(path, rt->path, n - 1) != 0)
            return false;
        *rest = path + n - 1;
        return true;
    }
    if (strcmp(path, rt->path) != 0)
        return false;
    *rest = path + strlen(path);
    return true;
}

static bool method_match(const char *route, const char *req)
{
    return strcmp(route, req) == 0 ||
           (strcmp(req, "HEAD") == 0 && strcmp(route, "GET") == 0);
}

/* Equal strings, in time that depends on the length of want only. */
static bool token_equal(const char *got, const char *want)
{
    size_t gl = strlen(got), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)want[i] ^
                (unsigned char)(i < gl ? got[i] : 0);
    return diff == 0;
}

int sl_http_check_auth(const char *admin_token, const sl_http_request *req,
                       sl_http_response *resp)
{
    const char *h;
    if (admin_token == NULL || admin_token[0] == '\0') {
        sl_http_respond_error(resp, 403,
                              "admin API disabled: set http.admin_token");
        return 403;
    }
    h = sl_http_request_header(req, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        sl_http_respond_error(resp, 401, "missing bearer token "
                              "(Authorization: Bearer <http.admin_token>)");
        sl_http_response_header(resp, "WWW-Authenticate",
                                "Bearer realm=\"sluice\"");
        return 401;
    }
    h += 7;
    while (*h == ' ')
        h++;
    if (!token_equal(h, admin_token)) {
        sl_http_respond_error(resp, 401, "invalid bearer token");
        sl_http_response_header(
            resp, "WWW-Authenticate",
            "Bearer realm=\"sluice\", error=\"invalid_token\"");
        return 401;
    }
    return 0;
}

void sl_http_dispatch(const sl_http_router *router, sl_http_request *req,
                      sl_http_response *resp)
{
    const sl_http_route *hit = NULL;
    const char *rest = "";
    bool path_known = false;

    for (size_t i = 0; i < router->nroutes && hit == NULL; i++) {
        const sl_http_route *rt = &router->routes[i];
        const char *r;
        if (!route_match(rt, req->path, &r))
            continue;
        path_known = true;
        if (method_match(rt->method, req->method)) {
            hit = rt;
            rest = r;
        }
    }
    if (hit == NULL) {
        if (!path_known) {
            sl_http_respond_error(resp, 404, "not found");
            return;
        }
        /* Allow: every method of the routes that match the path. */
        sl_wr allow;
        sl_wr_init(&allow, 64);
        for (size_t i = 0; i < router->nroutes; i++) {
            const sl_http_route *rt = &router->routes[i];
            const char *r;
            bool dup = false;
            if (!route_match(rt, req->path, &r))
                continue;
            for (size_t k = 0; k < i && !dup; k++)
                dup = strcmp(router->routes[k].method, rt->method) == 0 &&
                      route_match(&router->routes[k], req->path, &r);
            if (dup)
                continue;
            if (allow.len)
                wr_cstr(&allow, ", ");
            wr_cstr(&allow, rt->method);
            if (strcmp(rt->method, "GET") == 0)
                wr_cstr(&allow, ", HEAD");
        }
        sl_wr_u8(&allow, 0);
        sl_http_respond_error(resp, 405, "method %s not allowed here",
                              req->method);
        sl_http_response_header(resp, "Allow", (const char *)allow.buf);
        sl_wr_free(&allow);
        return;
    }
    if (hit->needs_auth &&
        sl_http_check_auth(router->admin_token, req, resp) != 0)
        return;
    req->route_rest = rest;
    hit->fn(req, resp, router->ud);
    if (resp->status == 0)
        sl_http_respond_error(resp, 500,
                              "internal error: the handler gave no answer");
}

/* =========================================================================
 * Server (libuv)
 * ========================================================================= */

#define READ_CHUNK 65536
#define CLOSE_GRACE_MS 1000  /* shutdown: answers being written */
#define LINGER_MS 2000       /* after a final answer: drain, then close */

typedef struct hconn hconn;

struct sl_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    sl_http_router router; /* admin_token points to token */
    char *token;           /* owned */
    sl_http_limits limits;
    size_t max_conns;
    uint32_t idle_ms;
    int port;
    hconn *conns;          /* open connections (not yet closing) */
    size_t nconns;
    size_t nalive;         /* connection structs not yet freed */
    bool listener_open;
    bool closing;
    void (*done)(void *);
    void *done_arg;
    sl_tls_ctx *tls;       /* HTTPS: one reference; NULL for HTTP */
};

/* One client connection. Owned by the server's list while open; once
 * closing, by its two handles' close callbacks (the last one frees it). */
struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout, close grace, linger */
    sl_http_server *srv;
    hconn *prev, *next;
    sl_http_parser *parser;
    char *in;                 /* received bytes not yet parsed: [off, len) */
    size_t in_off, in_len, in_cap;
    size_t writes_pending;    /* uv_write requests not completed */
    int handles_open;
    bool reading;
    bool close_after_write;   /* the last answer is being written */
    bool lingering;           /* shut down; draining the peer's bytes */
    bool peer_eof;
    bool closing;
    sl_tls_conn *tls;         /* HTTPS: the TLS end; NULL for HTTP */
};

/* A write: the request and the bytes it sends, freed in its callback
 * (which libuv also calls, with UV_ECANCELED, when the handle closes). */
typedef struct wreq {
    uv_write_t req;
    hconn *c;
    uint8_t *buf;
    bool final; /* an answer (not a 100 Continue) */
} wreq;

static void conn_process(hconn *c);
static void conn_on_read(uv_stream_t *st, ssize_t nread,
                         const uv_buf_t *buf);

static void maybe_finish(sl_http_server *s)
{
    if (!s->closing || s->listener_open || s->nalive > 0)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    sl_free(s->token);
    sl_tls_ctx_unref(s->tls);
    sl_free(s);
    if (done)
        done(arg);
}

static void conn_on_close(uv_handle_t *h)
{
    hconn *c = h->data;
    sl_http_server *s = c->srv;
    if (--c->handles_open > 0)
        return;
    sl_http_parser_free(c->parser);
    sl_tls_conn_free(c->tls);
    sl_free(c->in);
    sl_free(c);
    s->nalive--;
    maybe_finish(s);
}

static void conn_close(hconn *c)
{
    sl_http_server *s = c->srv;
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
    uv_close((uv_handle_t *)&c->tcp, conn_on_close);
    uv_close((uv_handle_t *)&c->timer, conn_on_close);
}

static void conn_on_timer(uv_timer_t *t)
{
    conn_close(t->data);
}

static void conn_arm(hconn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    hconn *c = h->data;
    (void)hint;
    /* Reading only happens once everything received was parsed (or while
     * draining), so the buffer holds at most one chunk. */
    if (c->in_off == c->in_len || c->lingering)
        c->in_off = c->in_len = 0;
    if (c->in_cap - c->in_len < READ_CHUNK) {
        c->in_cap = c->in_len + READ_CHUNK;
        c->in = sl_realloc(c->in, c->in_cap);
    }
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    hconn *c = req->data;
    sl_free(req);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(c);
}

/* After the last answer: send FIN, then read and drop what the client
 * still sends until it closes or LINGER_MS pass. Closing right away with
 * unread bytes in the socket would reset the connection and could destroy
 * the answer before the client read it. */
static void conn_linger(hconn *c)
{
    uv_shutdown_t *req;
    if (c->peer_eof || c->srv->closing) {
        conn_close(c);
        return;
    }
    req = sl_malloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, conn_on_shutdown) != 0) {
        sl_free(req);
        conn_close(c);
        return;
    }
    c->lingering = true;
    conn_arm(c, LINGER_MS);
    conn_process(c); /* restarts reading */
}

static void conn_on_write(uv_write_t *req, int status)
{
    wreq *w = SL_CONTAINER_OF(req, wreq, req);
    hconn *c = w->c;
    bool final = w->final;
    sl_free(w->buf);
    sl_free(w);
    c->writes_pending--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writes_pending > 0)
        return;
    if (c->close_after_write) {
        conn_linger(c);
        return;
    }
    if (final)
        conn_arm(c, c->srv->idle_ms);
    conn_process(c);
}

/* Takes ownership of buf (freed when written or on failure). */
static void conn_write(hconn *c, uint8_t *buf, size_t len, bool final)
{
    wreq *w;
    uv_buf_t b;

    if (c->tls != NULL) {
        /* Encrypted: the ciphertext is what goes out. */
        int rc = sl_tls_conn_write(c->tls, buf, len);
        sl_free(buf);
        buf = rc == 0 ? sl_tls_conn_take_output(c->tls, &len) : NULL;
        if (buf == NULL) {
            conn_close(c);
            return;
        }
    }
    w = sl_malloc(sizeof(*w));
    b = uv_buf_init((char *)buf, (unsigned)len);
    w->c = c;
    w->buf = buf;
    w->final = final;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write) !=
        0) {
        sl_free(buf);
        sl_free(w);
        conn_close(c);
        return;
    }
    c->writes_pending++;
}

static void conn_send(hconn *c, const sl_http_response *resp, bool keep,
                      bool head)
{
    sl_wr w;
    size_t len;
    uint8_t *buf;
    sl_wr_init(&w, 256 + resp->body_len);
    sl_http_response_serialize(resp, keep, head, &w);
    buf = sl_wr_release(&w, &len);
    if (!keep)
        c->close_after_write = true;
    conn_write(c, buf, len, true);
}

static void conn_answer(hconn *c, sl_http_request *req)
{
    sl_http_server *s = c->srv;
    sl_http_response resp;
    bool keep = req->keep_alive && !s->closing;

    sl_http_response_init(&resp);
    sl_http_dispatch(&s->router, req, &resp);
    sl_debug("http: %s %s -> %d", req->method, req->path, resp.status);
    conn_send(c, &resp, keep, strcmp(req->method, "HEAD") == 0);
    sl_http_response_free(&resp);
}

static void conn_process(hconn *c)
{
    while (!c->closing && !c->lingering && !c->close_after_write &&
           c->writes_pending == 0 && c->in_off < c->in_len) {
        size_t used = 0;
        sl_http_feed_result r = sl_http_parser_feed(
            c->parser, c->in + c->in_off, c->in_len - c->in_off, &used);
        c->in_off += used;
        if (r == SL_HTTP_REQUEST) {
            conn_answer(c, sl_http_parser_request(c->parser));
        } else if (r == SL_HTTP_ERROR) {
            const char *msg;
            int status = sl_http_parser_error(c->parser, &msg);
            sl_http_response resp;
            sl_http_response_init(&resp);
            sl_http_respond_error(&resp, status, "%s", msg);
            sl_debug("http: rejected request: %d %s", status, msg);
            conn_send(c, &resp, false, false);
            sl_http_response_free(&resp);
        } else {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (sl_http_parser_take_continue(c->parser)) {
                uint8_t *b = sl_malloc(sizeof(cont) - 1);
                memcpy(b, cont, sizeof(cont) - 1);
                conn_write(c, b, sizeof(cont) - 1, false);
            }
            break;
        }
    }
    if (c->closing)
        return;
    /* The client finished sending and everything it sent is answered. */
    if (c->peer_eof && c->writes_pending == 0 && !c->lingering) {
        conn_close(c);
        return;
    }
    /* Read while there is nothing to answer, or to drain while lingering;
     * a request already buffered waits for the answer before it. */
    bool want = c->lingering ||
                (c->writes_pending == 0 && !c->close_after_write &&
                 !c->peer_eof);
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc,
                          conn_on_read) != 0) {
            conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* HTTPS: the n bytes just read at in + in_len are ciphertext; replaces
 * them with the plaintext they carry and sends handshake bytes. Returns
 * false if the connection closed. */
static bool tls_decrypt(hconn *c, size_t n)
{
    char why[320];
    size_t len;
    uint8_t *out;

    sl_tls_conn_feed(c->tls, (const uint8_t *)c->in + c->in_len, n);
    for (;;) {
        ssize_t got;
        if (c->in_cap - c->in_len < READ_CHUNK) {
            c->in_cap = c->in_len + READ_CHUNK;
            c->in = sl_realloc(c->in, c->in_cap);
        }
        got = sl_tls_conn_read(c->tls, (uint8_t *)c->in + c->in_len,
                               c->in_cap - c->in_len, why, sizeof(why));
        if (got == 0)
            break;
        if (got < 0) {
            if (got == SL_TLS_ERROR)
                sl_debug("http: %s", why);
            conn_close(c);
            return false;
        }
        c->in_len += (size_t)got;
    }
    out = sl_tls_conn_take_output(c->tls, &len);
    if (out != NULL) {
        wreq *w = sl_malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init((char *)out, (unsigned)len);
        w->c = c;
        w->buf = out;
        w->final = false;
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1,
                     conn_on_write) != 0) {
            sl_free(out);
            sl_free(w);
            conn_close(c);
            return false;
        }
        c->writes_pending++;
    }
    return true;
}

static void conn_on_read(uv_stream_t *st, ssize_t nread,
                         const uv_buf_t *buf)
{
    hconn *c = st->data;
    (void)buf;
    if (c->closing)
        return;
    if (nread < 0) {
        /* EOF or error. An answer still being written goes out first;
         * then the connection closes (nothing left to drain). */
        c->peer_eof = true;
        if (c->writes_pending == 0 || nread != UV_EOF)
            conn_close(c);
        else
            conn_process(c); /* stops reading */
        return;
    }
    if (nread == 0 || c->lingering)
        return; /* EAGAIN, or bytes to drop */
    if (c->tls != NULL) {
        if (!tls_decrypt(c, (size_t)nread))
            return;
    } else {
        c->in_len += (size_t)nread;
    }
    conn_process(c);
}

static void srv_on_connection(uv_stream_t *ls, int status)
{
    sl_http_server *s = ls->data;
    hconn *c;

    if (status < 0) {
        sl_warn("http: accept: %s", uv_strerror(status));
        return;
    }
    c = sl_calloc(1, sizeof(*c));
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->parser = sl_http_parser_new(&s->limits);
    if (s->tls != NULL)
        c->tls = sl_tls_conn_new(s->tls);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->nalive++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->closing || s->nconns > s->max_conns) {
        sl_debug("http: connection limit (%zu) reached; closing a new one",
                 s->max_conns);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_arm(c, s->idle_ms);
    conn_process(c); /* starts reading */
}

static void srv_on_listener_close(uv_handle_t *h)
{
    sl_http_server *s = h->data;
    s->listener_open = false;
    maybe_finish(s);
}

int sl_http_server_start(uv_loop_t *loop, const sl_http_config *cfg,
                         sl_http_server **out, char *err, size_t errlen)
{
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    struct sockaddr_storage ss;
    struct sockaddr_storage bound;
    int namelen = sizeof(bound);
    sl_http_server *s;
    int rc;

    *out = NULL;
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "http: port %d is not in 0..65535", cfg->port);
        return SL_E_CONFIG;
    }
    memset(&ss, 0, sizeof(ss));
    if (uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "http: listen host \"%s\" is not an IPv4 or "
                 "IPv6 address (e.g. 127.0.0.1 or ::1)", host);
        return SL_E_CONFIG;
    }

    s = sl_calloc(1, sizeof(*s));
    s->loop = loop;
    s->router = cfg->router;
    s->token = cfg->router.admin_token ? sl_strdup(cfg->router.admin_token)
                                       : NULL;
    s->router.admin_token = s->token;
    s->limits = cfg->limits;
    s->max_conns = cfg->max_connections ? cfg->max_connections : 64;
    s->idle_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 30000;
    s->tls = cfg->tls ? sl_tls_ctx_ref(cfg->tls) : NULL;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;

    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, srv_on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound,
                                &namelen);
    if (rc != 0) {
        snprintf(err, errlen, "http: listen on %s port %d: %s", host,
                 cfg->port, uv_strerror(rc));
        /* The handle is initialized: it is freed by its close callback. */
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, srv_on_listener_close);
        return SL_E_IO;
    }
    s->port = bound.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int sl_http_server_port(const sl_http_server *s)
{
    return s->port;
}

void sl_http_server_set_token(sl_http_server *s, const char *token)
{
    sl_free(s->token);
    s->token = token && *token ? sl_strdup(token) : NULL;
    s->router.admin_token = s->token;
}

size_t sl_http_server_connections(const sl_http_server *s)
{
    return s->nconns;
}

void sl_http_server_close(sl_http_server *s, void (*done)(void *arg),
                          void *arg)
{
    hconn *c, *next;
    if (s->closing)
        return;
    s->closing = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, srv_on_listener_close);
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->writes_pending > 0 && !c->lingering) {
            c->close_after_write = true;
            conn_arm(c, CLOSE_GRACE_MS);
            conn_process(c); /* stops reading */
        } else {
            conn_close(c);
        }
    }
    maybe_finish(s);
}
