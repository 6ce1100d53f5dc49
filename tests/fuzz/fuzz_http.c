/*
 * libFuzzer target for the HTTP parser and router of proxy/http.c.
 *
 * Input: the bytes a client sends on one connection. The first byte picks
 * how they are cut into feeds (all at once, or pieces of 1..255 bytes), so
 * partial reads are exercised as well as whole buffers. Every request that
 * comes out is checked (its strings are within the limits, the body length
 * matches), dispatched through a route table with an auth route, and its
 * response serialized, as the server would. Invariants: a feed never
 * consumes more than it was given, an error always carries a 4xx status,
 * and nothing leaks (ASan).
 *
 * Seed corpus: tests/fuzz/corpus/http/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/http.h"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_http: check failed: %s (%s:%d)\n",      \
                    #cond, __FILE__, __LINE__);                           \
            abort();                                                      \
        }                                                                 \
    } while (0)

static void h_text(const sl_http_request *req, sl_http_response *resp,
                   void *ud)
{
    (void)ud;
    sl_http_respond(resp, 200, "text/plain", req->path, strlen(req->path));
}

static void h_json(const sl_http_request *req, sl_http_response *resp,
                   void *ud)
{
    json_t *j = sl_http_request_json(req, resp);
    (void)ud;
    if (j)
        sl_http_respond_json(resp, 200, j);
}

static const sl_http_route routes[] = {
    {"GET", "/healthz", h_text, false},
    {"GET", "/v1/connectors/*", h_text, false},
    {"POST", "/v1/connectors/*", h_json, true},
    {"POST", "/v1/echo", h_json, false},
};

static const sl_http_limits limits = {.max_header_bytes = 2048,
                                      .max_headers = 16,
                                      .max_body_bytes = 4096};

static void answer(sl_http_request *req)
{
    sl_http_router router = {routes, sizeof(routes) / sizeof(routes[0]),
                             "token", NULL};
    sl_http_response resp;
    sl_wr w;

    CHECK(req->method != NULL && req->path[0] == '/');
    CHECK(strlen(req->target) <= limits.max_header_bytes);
    CHECK(req->body_len <= limits.max_body_bytes);
    CHECK(req->body[req->body_len] == 0);
    for (size_t i = 0; i < req->nheaders; i++)
        CHECK(req->headers[i].name != NULL && req->headers[i].value != NULL);
    CHECK(req->nheaders <= limits.max_headers);
    (void)sl_http_request_header(req, "Authorization");
    (void)sl_http_request_param(req, "x");

    sl_http_response_init(&resp);
    sl_http_dispatch(&router, req, &resp);
    CHECK(resp.status >= 200 && resp.status <= 599);
    sl_wr_init(&w, 256);
    sl_http_response_serialize(&resp, req->keep_alive,
                               strcmp(req->method, "HEAD") == 0, &w);
    CHECK(w.len > 12 && memcmp(w.buf, "HTTP/1.1 ", 9) == 0);
    sl_wr_free(&w);
    sl_http_response_free(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_http_parser *p;
    size_t step, off;

    if (size < 1)
        return 0;
    step = data[0] == 0 ? size : data[0];
    data++;
    size--;

    p = sl_http_parser_new(&limits);
    off = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used = 0;
        sl_http_feed_result r = sl_http_parser_feed(p, data + off, n, &used);
        CHECK(used <= n);
        off += used;
        if (r == SL_HTTP_REQUEST) {
            answer(sl_http_parser_request(p));
            continue;
        }
        if (r == SL_HTTP_ERROR) {
            const char *msg;
            int status = sl_http_parser_error(p, &msg);
            CHECK(status >= 400 && status <= 499 && msg != NULL);
            CHECK(sl_http_parser_request(p) == NULL);
            break;
        }
        CHECK(used == n); /* NEED_MORE consumes everything */
        (void)sl_http_parser_take_continue(p);
    }
    sl_http_parser_free(p);
    return 0;
}
