/*
 * Unit tests for proxy/http.c: the parser fed bytes directly (pipelining,
 * chunked bodies, limits, malformed input, keep-alive), routing, the
 * bearer-token check, JSON errors, response serialization — and the libuv
 * server end to end over loopback (keep-alive, pipelining, Connection:
 * close, an oversize request answered before the close, graceful close).
 */
#include <stdlib.h>

#include "sl_test.h"
#include "sluice/http.h"
#include "sluice/www.h"

/* ---- parser helpers ----------------------------------------------------- */

static sl_http_feed_result feed_str(sl_http_parser *p, const char *s,
                                    size_t *used)
{
    size_t u;
    sl_http_feed_result r = sl_http_parser_feed(p, s, strlen(s), &u);
    if (used)
        *used = u;
    return r;
}

/* Feeds s one byte at a time; returns the first non-NEED_MORE result and
 * the index of the byte that produced it in *at. */
static sl_http_feed_result feed_bytewise(sl_http_parser *p, const char *s,
                                         size_t *at)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        size_t u;
        sl_http_feed_result r = sl_http_parser_feed(p, s + i, 1, &u);
        if (r != SL_HTTP_NEED_MORE) {
            *at = i;
            return r;
        }
        if (u != 1)
            SL__FAIL("byte %zu: consumed %zu", i, u);
    }
    *at = n;
    return SL_HTTP_NEED_MORE;
}

static int expect_error(const char *input, const sl_http_limits *lim,
                        const char **msg)
{
    sl_http_parser *p = sl_http_parser_new(lim);
    size_t used;
    int status = 0;
    const char *m = NULL;
    if (feed_str(p, input, &used) == SL_HTTP_ERROR)
        status = sl_http_parser_error(p, &m);
    if (msg) {
        static char keep[256];
        snprintf(keep, sizeof(keep), "%s", m ? m : "");
        *msg = keep;
    }
    sl_http_parser_free(p);
    return status;
}

/* ---- parser ------------------------------------------------------------- */

static void test_parse_simple_get(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    const char *in = "GET /v1/connectors/c%20d%2Fe?x=1&name=a+b%21&flag&=v"
                     "#frag HTTP/1.1\r\n"
                     "Host: localhost\r\n"
                     "X-Padded:   spaced value  \t\r\n"
                     "Empty:\r\n"
                     "\r\n";
    size_t used;
    sl_http_request *r;

    ASSERT_EQ(feed_str(p, in, &used), SL_HTTP_REQUEST);
    ASSERT_EQ(used, strlen(in));
    r = sl_http_parser_request(p);
    ASSERT_TRUE(r != NULL);
    if (r == NULL)
        goto out;
    ASSERT_STREQ(r->method, "GET");
    ASSERT_STREQ(r->path, "/v1/connectors/c d/e");
    ASSERT_STREQ(r->query, "x=1&name=a+b%21&flag&=v");
    ASSERT_STREQ(r->target,
                 "/v1/connectors/c%20d%2Fe?x=1&name=a+b%21&flag&=v#frag");
    ASSERT_EQ(r->nparams, 4);
    ASSERT_STREQ(sl_http_request_param(r, "x"), "1");
    ASSERT_STREQ(sl_http_request_param(r, "name"), "a b!");
    ASSERT_STREQ(sl_http_request_param(r, "flag"), "");
    ASSERT_STREQ(sl_http_request_param(r, ""), "v");
    ASSERT_TRUE(sl_http_request_param(r, "missing") == NULL);
    ASSERT_EQ(r->nheaders, 3);
    ASSERT_STREQ(sl_http_request_header(r, "host"), "localhost");
    ASSERT_STREQ(sl_http_request_header(r, "x-padded"), "spaced value");
    ASSERT_STREQ(sl_http_request_header(r, "EMPTY"), "");
    ASSERT_TRUE(sl_http_request_header(r, "Nope") == NULL);
    ASSERT_EQ(r->body_len, 0);
    ASSERT_EQ(r->body[0], 0);
    ASSERT_TRUE(r->keep_alive);
    ASSERT_EQ(r->http_major, 1);
    ASSERT_EQ(r->http_minor, 1);
    /* Nothing more: the next feed releases the request. */
    ASSERT_EQ(sl_http_parser_feed(p, "", 0, &used), SL_HTTP_NEED_MORE);
    ASSERT_TRUE(sl_http_parser_request(p) == NULL);
out:
    sl_http_parser_free(p);
}

static void test_parse_pipelined(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    const char *a = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *b = "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    const char *c = "GET /c HTTP/1.1\r\n\r\n";
    char all[256];
    size_t used, off = 0, len;

    snprintf(all, sizeof(all), "%s%s%s", a, b, c);
    len = strlen(all);
    ASSERT_EQ(sl_http_parser_feed(p, all, len, &used), SL_HTTP_REQUEST);
    ASSERT_EQ(used, strlen(a));
    ASSERT_STREQ(sl_http_parser_request(p)->path, "/a");
    off += used;
    ASSERT_EQ(sl_http_parser_feed(p, all + off, len - off, &used),
              SL_HTTP_REQUEST);
    ASSERT_EQ(used, strlen(b));
    ASSERT_STREQ(sl_http_parser_request(p)->method, "POST");
    ASSERT_STREQ(sl_http_parser_request(p)->path, "/b");
    ASSERT_EQ(sl_http_parser_request(p)->body_len, 5);
    ASSERT_STREQ((const char *)sl_http_parser_request(p)->body, "hello");
    off += used;
    ASSERT_EQ(sl_http_parser_feed(p, all + off, len - off, &used),
              SL_HTTP_REQUEST);
    ASSERT_EQ(used, strlen(c));
    ASSERT_STREQ(sl_http_parser_request(p)->path, "/c");
    off += used;
    ASSERT_EQ(off, len);
    sl_http_parser_free(p);
}

static void test_parse_large_then_small(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    size_t n = 200000, hl, used;
    char *req = sl_malloc(n + 256);
    sl_wr q;

    /* A 200 KB body (its buffer is released afterwards), then a GET. */
    hl = (size_t)snprintf(req, 256, "POST /b HTTP/1.1\r\nContent-Length: %zu"
                          "\r\n\r\n", n);
    memset(req + hl, 'x', n);
    ASSERT_EQ(sl_http_parser_feed(p, req, hl + n, &used), SL_HTTP_REQUEST);
    ASSERT_EQ(used, hl + n);
    ASSERT_EQ(sl_http_parser_request(p)->body_len, n);
    ASSERT_EQ(sl_http_parser_request(p)->body[n - 1], 'x');
    ASSERT_EQ(feed_str(p, "GET /s HTTP/1.1\r\n\r\n", NULL), SL_HTTP_REQUEST);
    ASSERT_EQ(sl_http_parser_request(p)->body_len, 0);
    ASSERT_EQ(sl_http_parser_request(p)->body[0], 0);

    /* 2000 query parameters, within the header limit. */
    sl_wr_init(&q, 0);
    sl_wr_raw(&q, "GET /p?", 7);
    for (int i = 0; i < 2000; i++)
        sl_wr_raw(&q, i ? "&k=v" : "k=v", i ? 4 : 3);
    sl_wr_raw(&q, " HTTP/1.1\r\n\r\n", 13);
    ASSERT_EQ(sl_http_parser_feed(p, q.buf, q.len, &used), SL_HTTP_REQUEST);
    ASSERT_EQ(sl_http_parser_request(p)->nparams, 2000);
    ASSERT_STREQ(sl_http_parser_request(p)->params[1999].value, "v");
    sl_wr_free(&q);
    sl_free(req);
    sl_http_parser_free(p);
}

static void test_parse_bytewise(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    const char *in = "POST /v1/reload HTTP/1.1\r\nContent-Length: 11\r\n"
                     "Content-Type: application/json\r\n\r\n{\"a\": true}";
    size_t at;
    ASSERT_EQ(feed_bytewise(p, in, &at), SL_HTTP_REQUEST);
    ASSERT_EQ(at, strlen(in) - 1); /* the last byte completes it */
    ASSERT_STREQ((const char *)sl_http_parser_request(p)->body,
                 "{\"a\": true}");
    ASSERT_STREQ(sl_http_request_header(sl_http_parser_request(p),
                                        "content-type"),
                 "application/json");
    sl_http_parser_free(p);
}

static void test_parse_chunked(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    const char *in = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n"
                     "Trailer-Field: t\r\n\r\n"
                     "GET /next HTTP/1.1\r\n\r\n";
    size_t used, at;
    ASSERT_EQ(feed_str(p, in, &used), SL_HTTP_REQUEST);
    ASSERT_EQ(used, strlen(in) - strlen("GET /next HTTP/1.1\r\n\r\n"));
    ASSERT_EQ(sl_http_parser_request(p)->body_len, 11);
    ASSERT_STREQ((const char *)sl_http_parser_request(p)->body,
                 "hello world");
    ASSERT_STREQ(sl_http_request_header(sl_http_parser_request(p),
                                        "trailer-field"),
                 "t");
    ASSERT_EQ(feed_str(p, in + used, NULL), SL_HTTP_REQUEST);
    ASSERT_STREQ(sl_http_parser_request(p)->path, "/next");
    sl_http_parser_free(p);

    /* The same, a byte at a time. */
    p = sl_http_parser_new(NULL);
    ASSERT_EQ(feed_bytewise(p, in, &at), SL_HTTP_REQUEST);
    ASSERT_STREQ((const char *)sl_http_parser_request(p)->body,
                 "hello world");
    sl_http_parser_free(p);
}

static void test_parse_limits(void)
{
    sl_http_limits small = {.max_header_bytes = 256, .max_headers = 4,
                            .max_body_bytes = 10};
    char *big = sl_malloc(40000);
    const char *msg;
    size_t at;
    sl_http_parser *p;

    /* A 17 KB header value against the default 16 KiB: 431. */
    snprintf(big, 40000, "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 17000, 0);
    ASSERT_EQ(expect_error(big, NULL, &msg), 431);
    ASSERT_TRUE(strstr(msg, "16384") != NULL);
    /* Just under the limit passes. */
    snprintf(big, 40000, "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 16000, 0);
    ASSERT_EQ(expect_error(big, NULL, NULL), 0);
    /* The same oversize header a byte at a time: caught as it grows. */
    snprintf(big, 40000, "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 17000, 0);
    p = sl_http_parser_new(NULL);
    ASSERT_EQ(feed_bytewise(p, big, &at), SL_HTTP_ERROR);
    ASSERT_EQ(sl_http_parser_error(p, NULL), 431);
    ASSERT_TRUE(at <= 16384 + 1);
    sl_http_parser_free(p);
    /* Raw bytes count, not only what is kept (whitespace padding). */
    snprintf(big, 40000, "GET / HTTP/1.1\r\nX: %*s\r\n\r\n", 20000, "v");
    ASSERT_EQ(expect_error(big, NULL, NULL), 431);
    /* A long target: 414. */
    snprintf(big, 40000, "GET /%0*d HTTP/1.1\r\n\r\n", 300, 0);
    ASSERT_EQ(expect_error(big, &small, NULL), 414);
    p = sl_http_parser_new(&small);
    ASSERT_EQ(feed_bytewise(p, big, &at), SL_HTTP_ERROR);
    ASSERT_EQ(sl_http_parser_error(p, NULL), 414);
    sl_http_parser_free(p);
    /* Too many fields. */
    ASSERT_EQ(expect_error("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"
                           "E: 5\r\n\r\n", &small, &msg), 431);
    ASSERT_TRUE(strstr(msg, "more than 4 header fields") != NULL);
    ASSERT_EQ(expect_error("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"
                           "\r\n", &small, NULL), 0);
    /* Body: announced too large, refused before any body byte. */
    ASSERT_EQ(expect_error("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n",
                           &small, &msg), 413);
    ASSERT_TRUE(strstr(msg, "larger than 10 bytes") != NULL);
    ASSERT_EQ(expect_error("POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
                           NULL, NULL), 413);
    ASSERT_EQ(expect_error("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n"
                           "0123456789", &small, NULL), 0);
    /* Chunked: refused when the total passes the limit. */
    ASSERT_EQ(expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n",
                           &small, NULL), 413);
    sl_free(big);
}

static void test_parse_malformed(void)
{
    const char *msg;
    ASSERT_EQ(expect_error("FOO / HTTP/1.1\r\n\r\n", NULL, &msg), 400);
    ASSERT_STREQ(msg, "malformed request: invalid method");
    ASSERT_EQ(expect_error("get / HTTP/1.1\r\n\r\n", NULL, NULL), 400);
    ASSERT_EQ(expect_error("GET / HTTP/9.9\r\n\r\n", NULL, NULL), 400);
    ASSERT_EQ(expect_error("GET / HTTP/1.1\r\nBad Header\r\n\r\n", NULL,
                           NULL), 400);
    ASSERT_EQ(expect_error("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", NULL, NULL),
              400);
    /* Request smuggling: both framings. */
    ASSERT_EQ(expect_error("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                           NULL, NULL), 400);
    ASSERT_EQ(expect_error("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                           "Content-Length: 4\r\n\r\nabcd", NULL, NULL), 400);
    /* Targets. */
    ASSERT_EQ(expect_error("GET http://x/ HTTP/1.1\r\n\r\n", NULL, &msg),
              400);
    ASSERT_TRUE(strstr(msg, "must be a path") != NULL);
    ASSERT_EQ(expect_error("OPTIONS * HTTP/1.1\r\n\r\n", NULL, NULL), 400);
    ASSERT_EQ(expect_error("GET /a%00b HTTP/1.1\r\n\r\n", NULL, &msg), 400);
    ASSERT_TRUE(strstr(msg, "percent-encoding in path") != NULL);
    ASSERT_EQ(expect_error("GET /a%2 HTTP/1.1\r\n\r\n", NULL, NULL), 400);
    ASSERT_EQ(expect_error("GET /a?x=%zz HTTP/1.1\r\n\r\n", NULL, &msg), 400);
    ASSERT_TRUE(strstr(msg, "percent-encoding in query") != NULL);
    ASSERT_EQ(expect_error("GET /a?x=%4 HTTP/1.1\r\n\r\n", NULL, NULL), 400);
    ASSERT_EQ(expect_error("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                           NULL, NULL), 400); /* a TLS ClientHello */

    /* Errors are sticky and consume nothing more. */
    {
        sl_http_parser *p = sl_http_parser_new(NULL);
        size_t used = 99;
        ASSERT_EQ(feed_str(p, "BAD\r\n", NULL), SL_HTTP_ERROR);
        ASSERT_EQ(feed_str(p, "GET / HTTP/1.1\r\n\r\n", &used),
                  SL_HTTP_ERROR);
        ASSERT_EQ(used, 0);
        /* Reset: a new connection. */
        sl_http_parser_reset(p);
        ASSERT_EQ(sl_http_parser_error(p, NULL), 0);
        ASSERT_EQ(feed_str(p, "GET / HTTP/1.1\r\n\r\n", NULL),
                  SL_HTTP_REQUEST);
        sl_http_parser_free(p);
    }
}

static void test_parse_keep_alive(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    size_t used;

    ASSERT_EQ(feed_str(p, "GET / HTTP/1.1\r\n\r\n", NULL), SL_HTTP_REQUEST);
    ASSERT_TRUE(sl_http_parser_request(p)->keep_alive);
    ASSERT_EQ(feed_str(p, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                       NULL), SL_HTTP_REQUEST);
    ASSERT_TRUE(sl_http_parser_request(p)->keep_alive);
    ASSERT_EQ(sl_http_parser_request(p)->http_minor, 0);
    ASSERT_EQ(feed_str(p, "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"
                          "GET /ignored HTTP/1.1\r\n\r\n", &used),
              SL_HTTP_REQUEST);
    ASSERT_TRUE(!sl_http_parser_request(p)->keep_alive);
    ASSERT_STREQ(sl_http_parser_request(p)->path, "/last");
    /* What follows a closing request is dropped, not parsed. */
    ASSERT_EQ(feed_str(p, "GET /ignored HTTP/1.1\r\n\r\n", &used),
              SL_HTTP_NEED_MORE);
    ASSERT_EQ(used, strlen("GET /ignored HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(sl_http_parser_request(p) == NULL);
    sl_http_parser_free(p);

    p = sl_http_parser_new(NULL);
    ASSERT_EQ(feed_str(p, "GET / HTTP/1.0\r\n\r\n", NULL), SL_HTTP_REQUEST);
    ASSERT_TRUE(!sl_http_parser_request(p)->keep_alive);
    sl_http_parser_free(p);

    /* An upgrade is answered and ends the connection. */
    p = sl_http_parser_new(NULL);
    ASSERT_EQ(feed_str(p, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n", NULL),
              SL_HTTP_REQUEST);
    ASSERT_TRUE(!sl_http_parser_request(p)->keep_alive);
    sl_http_parser_free(p);
}

static void test_parse_expect_continue(void)
{
    sl_http_parser *p = sl_http_parser_new(NULL);
    size_t used;
    ASSERT_EQ(feed_str(p, "POST /x HTTP/1.1\r\nContent-Length: 3\r\n"
                          "Expect: 100-continue\r\n\r\n", &used),
              SL_HTTP_NEED_MORE);
    ASSERT_TRUE(sl_http_parser_take_continue(p));
    ASSERT_TRUE(!sl_http_parser_take_continue(p)); /* once */
    ASSERT_EQ(feed_str(p, "abc", NULL), SL_HTTP_REQUEST);
    ASSERT_TRUE(!sl_http_parser_take_continue(p));
    /* Body in the same bytes: no interim answer needed. */
    ASSERT_EQ(feed_str(p, "POST /x HTTP/1.1\r\nContent-Length: 3\r\n"
                          "Expect: 100-continue\r\n\r\nabc", NULL),
              SL_HTTP_REQUEST);
    ASSERT_TRUE(!sl_http_parser_take_continue(p));
    sl_http_parser_free(p);
}

/* ---- routing and auth --------------------------------------------------- */

typedef struct hctx {
    int calls;
    char last_rest[64];
} hctx;

static void h_ok(const sl_http_request *req, sl_http_response *resp,
                 void *ud)
{
    hctx *c = ud;
    c->calls++;
    snprintf(c->last_rest, sizeof(c->last_rest), "%s", req->route_rest);
    sl_http_respond(resp, 200, "text/plain", "ok\n", 3);
}

static void h_json(const sl_http_request *req, sl_http_response *resp,
                   void *ud)
{
    json_t *j = sl_http_request_json(req, resp);
    (void)ud;
    if (j == NULL)
        return;
    json_object_set_new(j, "seen", json_true());
    sl_http_respond_json(resp, 200, j);
}

static void h_silent(const sl_http_request *req, sl_http_response *resp,
                     void *ud)
{
    (void)req, (void)resp, (void)ud;
}

static const sl_http_route routes[] = {
    {"GET", "/healthz", h_ok, false},
    {"GET", "/v1/connectors/*", h_ok, false},
    {"POST", "/v1/connectors/*", h_ok, true},
    {"POST", "/v1/reload", h_ok, true},
    {"POST", "/v1/echo", h_json, false},
    {"GET", "/silent", h_silent, false},
};

/* Parses raw, dispatches it, and returns the status; body into out. */
static int run(const char *token, const char *raw, hctx *ctx,
               sl_http_response *out)
{
    sl_http_router router = {routes, SL_ARRAY_SIZE(routes), token, ctx};
    sl_http_parser *p = sl_http_parser_new(NULL);
    int status = -1;
    sl_http_response_init(out);
    if (feed_str(p, raw, NULL) == SL_HTTP_REQUEST) {
        sl_http_dispatch(&router, sl_http_parser_request(p), out);
        status = out->status;
    }
    sl_http_parser_free(p);
    return status;
}

static bool body_is(const sl_http_response *r, const char *s)
{
    return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

#define ASSERT_BODY(r, s)                                                 \
    do {                                                                  \
        if (!body_is((r), (s)))                                           \
            SL__FAIL("body \"%.*s\" != \"%s\"", (int)(r)->body_len,       \
                     (const char *)(r)->body, (s));                       \
    } while (0)

static bool has_header(const sl_http_response *r, const char *line)
{
    return r->headers.len > 0 &&
           memmem(r->headers.buf, r->headers.len, line, strlen(line)) !=
               NULL;
}

static void test_routing(void)
{
    hctx ctx = {0};
    sl_http_response r;

    ASSERT_EQ(run(NULL, "GET /healthz HTTP/1.1\r\n\r\n", &ctx, &r), 200);
    ASSERT_BODY(&r, "ok\n");
    ASSERT_STREQ(ctx.last_rest, "");
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "GET /v1/connectors/cdc HTTP/1.1\r\n\r\n", &ctx, &r),
              200);
    ASSERT_STREQ(ctx.last_rest, "cdc");
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "HEAD /healthz HTTP/1.1\r\n\r\n", &ctx, &r), 200);
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "GET /nope HTTP/1.1\r\n\r\n", &ctx, &r), 404);
    ASSERT_BODY(&r, "{\"error\":\"not found\"}\n");
    ASSERT_STREQ(r.content_type, "application/json");
    sl_http_response_free(&r);

    /* A prefix route does not match its bare stem without the slash. */
    ASSERT_EQ(run(NULL, "GET /v1/connectors HTTP/1.1\r\n\r\n", &ctx, &r),
              404);
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "DELETE /healthz HTTP/1.1\r\n\r\n", &ctx, &r), 405);
    ASSERT_BODY(&r, "{\"error\":\"method DELETE not allowed here\"}\n");
    ASSERT_TRUE(has_header(&r, "Allow: GET, HEAD\r\n"));
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "PUT /v1/connectors/x HTTP/1.1\r\n\r\n", &ctx, &r),
              405);
    ASSERT_TRUE(has_header(&r, "Allow: GET, HEAD, POST\r\n"));
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "GET /silent HTTP/1.1\r\n\r\n", &ctx, &r), 500);
    sl_http_response_free(&r);
    ASSERT_EQ(ctx.calls, 3);
}

static void test_auth(void)
{
    hctx ctx = {0};
    sl_http_response r;

    /* No token configured: mutating routes are off, reads still work. */
    ASSERT_EQ(run(NULL, "POST /v1/reload HTTP/1.1\r\n\r\n", &ctx, &r), 403);
    ASSERT_BODY(&r, "{\"error\":\"admin API disabled: set "
                    "http.admin_token\"}\n");
    sl_http_response_free(&r);
    ASSERT_EQ(run("", "POST /v1/reload HTTP/1.1\r\nAuthorization: Bearer x"
                      "\r\n\r\n", &ctx, &r), 403);
    sl_http_response_free(&r);
    ASSERT_EQ(ctx.calls, 0);

    /* Token configured. */
    ASSERT_EQ(run("s3cret", "POST /v1/reload HTTP/1.1\r\n\r\n", &ctx, &r),
              401);
    ASSERT_TRUE(has_header(&r, "WWW-Authenticate: Bearer realm=\"sluice\""));
    ASSERT_TRUE(strstr((const char *)r.body, "missing bearer token") != NULL);
    sl_http_response_free(&r);
    ASSERT_EQ(run("s3cret", "POST /v1/reload HTTP/1.1\r\nAuthorization: "
                            "Basic czNjcmV0\r\n\r\n", &ctx, &r), 401);
    sl_http_response_free(&r);
    ASSERT_EQ(run("s3cret", "POST /v1/reload HTTP/1.1\r\nAuthorization: "
                            "Bearer s3cre\r\n\r\n", &ctx, &r), 401);
    ASSERT_BODY(&r, "{\"error\":\"invalid bearer token\"}\n");
    ASSERT_TRUE(has_header(&r, "error=\"invalid_token\""));
    sl_http_response_free(&r);
    ASSERT_EQ(run("s3cret", "POST /v1/reload HTTP/1.1\r\nAuthorization: "
                            "Bearer s3cret0\r\n\r\n", &ctx, &r), 401);
    sl_http_response_free(&r);
    ASSERT_EQ(ctx.calls, 0);
    ASSERT_EQ(run("s3cret", "POST /v1/reload HTTP/1.1\r\nAuthorization: "
                            "Bearer s3cret\r\n\r\n", &ctx, &r), 200);
    sl_http_response_free(&r);
    ASSERT_EQ(run("s3cret", "POST /v1/connectors/cdc/pause HTTP/1.1\r\n"
                            "authorization: bearer s3cret\r\n\r\n", &ctx, &r),
              200);
    ASSERT_STREQ(ctx.last_rest, "cdc/pause");
    sl_http_response_free(&r);
    /* GET on the same prefix needs no token. */
    ASSERT_EQ(run("s3cret", "GET /v1/connectors/cdc HTTP/1.1\r\n\r\n", &ctx,
                  &r), 200);
    sl_http_response_free(&r);
    ASSERT_EQ(ctx.calls, 3);
}

static void test_json_errors(void)
{
    sl_http_response r;
    ASSERT_EQ(run(NULL, "POST /v1/echo HTTP/1.1\r\nContent-Length: 7\r\n\r\n"
                        "{\"a\":1}", NULL, &r), 200);
    ASSERT_BODY(&r, "{\"a\":1,\"seen\":true}\n");
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "POST /v1/echo HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
                        "{bad", NULL, &r), 400);
    ASSERT_STREQ(r.content_type, "application/json");
    ASSERT_TRUE(strstr((const char *)r.body,
                       "{\"error\":\"malformed JSON at line 1 column") ==
                (const char *)r.body);
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "POST /v1/echo HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
                        "[1]", NULL, &r), 400);
    ASSERT_BODY(&r, "{\"error\":\"request body must be a JSON object\"}\n");
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "POST /v1/echo HTTP/1.1\r\n\r\n", NULL, &r), 400);
    ASSERT_BODY(&r, "{\"error\":\"request body must be a JSON object\"}\n");
    sl_http_response_free(&r);

    ASSERT_EQ(run(NULL, "POST /v1/echo HTTP/1.1\r\nContent-Length: 13\r\n\r\n"
                        "{\"a\":1,\"a\":2}", NULL, &r), 400);
    ASSERT_TRUE(strstr((const char *)r.body, "duplicate") != NULL);
    sl_http_response_free(&r);

    /* A message quoting bytes that are not UTF-8 still makes valid JSON. */
    ASSERT_EQ(run(NULL, "POST /v1/echo HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
                        "\"\xff\"", NULL, &r), 400);
    ASSERT_TRUE(r.body != NULL);
    if (r.body) {
        json_t *j = json_loadb((const char *)r.body, r.body_len, 0, NULL);
        ASSERT_TRUE(j != NULL);
        json_decref(j);
    }
    sl_http_response_free(&r);
}

/* ---- responses ---------------------------------------------------------- */

static char *serialize(const sl_http_response *r, bool keep, bool head)
{
    sl_wr w;
    sl_wr_init(&w, 64);
    sl_http_response_serialize(r, keep, head, &w);
    sl_wr_u8(&w, 0);
    return (char *)sl_wr_release(&w, NULL);
}

static void test_serialize(void)
{
    sl_http_response r;
    char *s;

    sl_http_response_init(&r);
    sl_http_respond(&r, 200, "text/plain", "hi", 2);
    ASSERT_EQ(sl_http_response_header(&r, "Cache-Control", "no-store"), 0);
    s = serialize(&r, true, false);
    ASSERT_STREQ(s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 2\r\nConnection: keep-alive\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "Cache-Control: no-store\r\n\r\nhi");
    sl_free(s);
    s = serialize(&r, false, true); /* HEAD: length, no body */
    ASSERT_STREQ(s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 2\r\nConnection: close\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "Cache-Control: no-store\r\n\r\n");
    sl_free(s);

    /* Header injection and framing headers are refused. */
    ASSERT_EQ(sl_http_response_header(&r, "X-A", "v\r\nSet-Cookie: x"),
              SL_E_INVALID);
    ASSERT_EQ(sl_http_response_header(&r, "X A", "v"), SL_E_INVALID);
    ASSERT_EQ(sl_http_response_header(&r, "content-length", "1"),
              SL_E_INVALID);
    ASSERT_EQ(sl_http_response_header(&r, "", "v"), SL_E_INVALID);

    /* 204: no body, no length. */
    sl_http_respond(&r, 204, NULL, NULL, 0);
    s = serialize(&r, true, false);
    ASSERT_STREQ(s, "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "Cache-Control: no-store\r\n\r\n");
    sl_free(s);
    sl_http_response_free(&r);

    /* No status: a 500. */
    sl_http_response_init(&r);
    s = serialize(&r, true, false);
    ASSERT_TRUE(strncmp(s, "HTTP/1.1 500 Internal Server Error\r\n", 36) ==
                0);
    sl_free(s);
    sl_http_response_free(&r);

    /* respond_take owns the body; replacing frees the old one (ASan). */
    sl_http_response_init(&r);
    sl_http_respond_take(&r, 200, "a/b", sl_strdup("one"), 3);
    sl_http_respond_json(&r, 201, json_pack("{s:i}", "n", 1));
    ASSERT_EQ(r.status, 201);
    ASSERT_BODY(&r, "{\"n\":1}\n");
    sl_http_respond_json(&r, 200, NULL);
    ASSERT_EQ(r.status, 500);
    sl_http_response_free(&r);
    ASSERT_STREQ(sl_http_status_reason(431),
                 "Request Header Fields Too Large");
}

/* ---- server over loopback ----------------------------------------------- */

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_buf_t out;
    sl_wr in;
    bool eof;
    bool closed;
    int err;
} client;

static void cl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    client *c = h->data;
    (void)hint;
    *b = uv_buf_init((char *)sl_wr_reserve(&c->in, 65536), 65536);
}

static void cl_closed(uv_handle_t *h)
{
    ((client *)h->data)->closed = true;
}

static void cl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client *c = s->data;
    (void)b;
    if (n > 0) {
        c->in.len += (size_t)n;
        return;
    }
    if (n < 0) {
        c->eof = true;
        if (n != UV_EOF)
            c->err = (int)n;
        uv_close((uv_handle_t *)&c->tcp, cl_closed);
    }
}

static void cl_written(uv_write_t *w, int status)
{
    client *c = w->data;
    if (status < 0)
        c->err = status;
}

static void cl_connected(uv_connect_t *req, int status)
{
    client *c = req->data;
    if (status < 0) {
        c->err = status;
        uv_close((uv_handle_t *)&c->tcp, cl_closed);
        return;
    }
    c->wr.data = c;
    uv_write(&c->wr, (uv_stream_t *)&c->tcp, &c->out, 1, cl_written);
    uv_read_start((uv_stream_t *)&c->tcp, cl_alloc, cl_read);
}

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_stop(t->loop);
}

static void server_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Sends raw to the server in one write and collects everything until the
 * server closes the connection (or 5 s pass). Returns the bytes, owned by
 * the caller. */
static char *exchange(uv_loop_t *loop, int port, const char *raw,
                      size_t rawlen, bool *timed_out)
{
    client c;
    struct sockaddr_in sa;
    uv_timer_t deadline;

    memset(&c, 0, sizeof(c));
    sl_wr_init(&c.in, 0);
    c.out = uv_buf_init((char *)raw, (unsigned)rawlen);
    uv_tcp_init(loop, &c.tcp);
    c.tcp.data = &c;
    c.conn.data = &c;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_connect(&c.conn, &c.tcp, (const struct sockaddr *)&sa,
                   cl_connected);
    *timed_out = false;
    uv_timer_init(loop, &deadline);
    deadline.data = timed_out;
    uv_timer_start(&deadline, on_deadline, 5000, 0);
    while (!c.closed && !*timed_out)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    if (!c.closed)
        uv_close((uv_handle_t *)&c.tcp, cl_closed);
    uv_run(loop, UV_RUN_NOWAIT);
    ASSERT_EQ(c.err, 0);
    sl_wr_u8(&c.in, 0);
    return (char *)sl_wr_release(&c.in, NULL);
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_server_loopback(void)
{
    uv_loop_t loop;
    sl_http_server *srv;
    sl_http_config cfg;
    hctx ctx = {0};
    char err[256];
    bool timed_out, done = false;
    char *got;
    int port;

    ASSERT_EQ(uv_loop_init(&loop), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.router = (sl_http_router){routes, SL_ARRAY_SIZE(routes), "tok", &ctx};
    ASSERT_EQ(sl_http_server_start(&loop, &cfg, &srv, err, sizeof(err)), 0);
    if (srv == NULL) {
        SL__FAIL("start: %s", err);
        return;
    }
    port = sl_http_server_port(srv);
    ASSERT_TRUE(port > 0);

    /* Keep-alive and pipelining: four requests in one write, answered in
     * order; the last asks to close, and the server does. */
    {
        static const char req[] =
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            "POST /v1/reload HTTP/1.1\r\nAuthorization: Bearer tok\r\n"
            "Content-Length: 0\r\n\r\n"
            "POST /v1/reload HTTP/1.1\r\n\r\n"
            "GET /v1/connectors/z HTTP/1.1\r\nConnection: close\r\n\r\n"
            "GET /never HTTP/1.1\r\n\r\n";
        const char *a, *b, *c, *d;
        got = exchange(&loop, port, req, sizeof(req) - 1, &timed_out);
        ASSERT_TRUE(!timed_out);
        a = strstr(got, "HTTP/1.1 200 OK");
        b = a ? strstr(a + 1, "HTTP/1.1 200 OK") : NULL;
        c = b ? strstr(b + 1, "HTTP/1.1 401 Unauthorized") : NULL;
        d = c ? strstr(c + 1, "HTTP/1.1 200 OK") : NULL;
        ASSERT_TRUE(a == got && b && c && d);
        ASSERT_EQ(count_substr(got, "HTTP/1.1 "), 4);
        ASSERT_EQ(count_substr(got, "Connection: keep-alive"), 3);
        ASSERT_TRUE(d && strstr(d, "Connection: close\r\n") != NULL);
        ASSERT_EQ(ctx.calls, 3);
        ASSERT_STREQ(ctx.last_rest, "z");
        sl_free(got);
    }

    /* An oversize request gets its 431 although the client keeps sending
     * (lingering close, no reset eating the answer). */
    {
        size_t n = 200000;
        char *req = sl_malloc(n + 1);
        memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
        memset(req + 19, 'a', n - 19);
        req[n] = 0;
        got = exchange(&loop, port, req, n, &timed_out);
        ASSERT_TRUE(!timed_out);
        ASSERT_TRUE(strncmp(got, "HTTP/1.1 431 ", 13) == 0);
        ASSERT_TRUE(strstr(got, "Connection: close\r\n") != NULL);
        ASSERT_TRUE(strstr(got, "{\"error\":\"request header section "
                                "larger than 16384 bytes\"}") != NULL);
        sl_free(got);
        sl_free(req);
    }

    /* Malformed: a JSON 400, then the close. */
    {
        static const char req[] = "BREW /pot HTTP/1.1\r\n\r\n";
        got = exchange(&loop, port, req, sizeof(req) - 1, &timed_out);
        ASSERT_TRUE(!timed_out);
        ASSERT_TRUE(strncmp(got, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
        ASSERT_TRUE(strstr(got, "\r\n\r\n{\"error\":\"malformed request: "
                                "invalid method\"}\n") != NULL);
        sl_free(got);
    }

    /* HTTP/1.0 without keep-alive, half-closed by the client after the
     * request: answered, then closed. */
    {
        static const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
        got = exchange(&loop, port, req, sizeof(req) - 1, &timed_out);
        ASSERT_TRUE(!timed_out);
        ASSERT_TRUE(strncmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
        ASSERT_TRUE(strstr(got, "\r\n\r\nok\n") != NULL);
        sl_free(got);
    }

    /* Graceful close: every handle goes away, the loop closes clean. */
    ASSERT_EQ(sl_http_server_connections(srv), 0);
    sl_http_server_close(srv, server_closed, &done);
    while (!done && uv_run(&loop, UV_RUN_ONCE))
        ;
    ASSERT_TRUE(done);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void idle_client_connected(uv_connect_t *req, int status)
{
    *(int *)req->data = status == 0 ? 1 : -1;
}

static void test_server_close_with_idle_client(void)
{
    uv_loop_t loop;
    sl_http_server *srv;
    sl_http_config cfg;
    char err[256];
    bool done = false;
    uv_tcp_t tcp;
    uv_connect_t conn;
    struct sockaddr_in sa;
    int connected = 0;

    ASSERT_EQ(uv_loop_init(&loop), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.router = (sl_http_router){routes, SL_ARRAY_SIZE(routes), NULL, NULL};
    ASSERT_EQ(sl_http_server_start(&loop, &cfg, &srv, err, sizeof(err)), 0);
    if (srv == NULL)
        return;
    uv_tcp_init(&loop, &tcp);
    conn.data = &connected;
    uv_ip4_addr("127.0.0.1", sl_http_server_port(srv), &sa);
    uv_tcp_connect(&conn, &tcp, (const struct sockaddr *)&sa,
                   idle_client_connected);
    while (connected == 0 || sl_http_server_connections(srv) == 0)
        uv_run(&loop, UV_RUN_ONCE);
    ASSERT_EQ(sl_http_server_connections(srv), 1);
    sl_http_server_close(srv, server_closed, &done);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_TRUE(done);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void test_server_start_errors(void)
{
    uv_loop_t loop;
    sl_http_server *srv, *srv2;
    sl_http_config cfg;
    char err[256];
    bool done = false;

    ASSERT_EQ(uv_loop_init(&loop), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "localhost";
    ASSERT_EQ(sl_http_server_start(&loop, &cfg, &srv, err, sizeof(err)),
              SL_E_CONFIG);
    ASSERT_TRUE(srv == NULL);
    ASSERT_TRUE(strstr(err, "\"localhost\" is not an IPv4 or IPv6") != NULL);
    cfg.host = "127.0.0.1";
    ASSERT_EQ(sl_http_server_start(&loop, &cfg, &srv, err, sizeof(err)), 0);
    if (srv == NULL)
        return;
    /* The same port again: in use. */
    cfg.port = sl_http_server_port(srv);
    ASSERT_EQ(sl_http_server_start(&loop, &cfg, &srv2, err, sizeof(err)),
              SL_E_IO);
    ASSERT_TRUE(srv2 == NULL);
    ASSERT_TRUE(strstr(err, "address already in use") != NULL);
    sl_http_server_close(srv, server_closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_TRUE(done);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

/* ---- embedded status page ---------------------------------------------- */

static void test_www_assets(void)
{
    const sl_www_asset *a = sl_www_find("/"), *all;
    size_t n;
    ASSERT_TRUE(a != NULL);
    if (a == NULL)
        return;
    ASSERT_TRUE(a == sl_www_find("/index.html"));
    ASSERT_STREQ(a->content_type, "text/html; charset=utf-8");
    ASSERT_EQ(a->data[a->len], 0);
    ASSERT_TRUE(strstr((const char *)a->data, "<canvas") != NULL);
    ASSERT_TRUE(strstr((const char *)a->data, "src=\"/app.js\"") != NULL);
    ASSERT_TRUE(strstr((const char *)a->data, "href=\"/style.css\"") != NULL);
    /* No external network: nothing is fetched from another origin. */
    all = sl_www_assets(&n);
    ASSERT_EQ(n, 3);
    for (size_t i = 0; i < n; i++) {
        ASSERT_TRUE(strstr((const char *)all[i].data, "http://") == NULL);
        ASSERT_TRUE(strstr((const char *)all[i].data, "https://") == NULL);
        ASSERT_EQ(strlen((const char *)all[i].data), all[i].len);
    }
    ASSERT_STREQ(sl_www_find("/app.js")->content_type,
                 "text/javascript; charset=utf-8");
    ASSERT_STREQ(sl_www_find("/style.css")->content_type,
                 "text/css; charset=utf-8");
    ASSERT_TRUE(sl_www_find("/embed.py") == NULL);
    ASSERT_TRUE(sl_www_find("/../app.js") == NULL);
    ASSERT_TRUE(sl_www_find("") == NULL);
    ASSERT_TRUE(sl_www_find(NULL) == NULL);
}

SL_TEST_MAIN(SL_TEST(test_parse_simple_get), SL_TEST(test_parse_pipelined),
             SL_TEST(test_parse_large_then_small),
             SL_TEST(test_parse_bytewise), SL_TEST(test_parse_chunked),
             SL_TEST(test_parse_limits), SL_TEST(test_parse_malformed),
             SL_TEST(test_parse_keep_alive),
             SL_TEST(test_parse_expect_continue), SL_TEST(test_routing),
             SL_TEST(test_auth), SL_TEST(test_json_errors),
             SL_TEST(test_serialize), SL_TEST(test_server_loopback),
             SL_TEST(test_server_close_with_idle_client),
             SL_TEST(test_server_start_errors), SL_TEST(test_www_assets))
