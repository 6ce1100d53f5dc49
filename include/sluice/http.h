/*
 * HTTP/1.1 for the operator surface (/metrics, /healthz, /readyz, /v1/,
 * the status page): a small server on the daemon's libuv loop, built from
 * three parts that are usable alone.
 *
 *  1. The parser (sans-I/O, llhttp underneath): feed it bytes, get complete
 *     requests out one at a time, or an error with the status to answer.
 *     No sockets, no clock: unit-tested and fuzzed directly
 *     (tests/fuzz/fuzz_http.c).
 *  2. The router and responses (pure): a ROUTE TABLE of {method, path or
 *     path prefix, handler, needs_auth}; dispatch matches a request against
 *     it, checks the bearer token of mutating routes and runs the handler,
 *     which fills a response (status, content type, body, headers; JSON
 *     helpers via jansson). Errors are JSON: {"error": "..."}.
 *  3. The server (libuv): listens on host:port, keep-alive and pipelining
 *     (answers in order, one at a time: the connection stops reading while
 *     an answer is being written, so a pipelining client cannot make it
 *     buffer unboundedly), idle timeout, connection limit, lingering close
 *     after a final answer (so an error answer is not lost to a TCP reset),
 *     and a graceful close for shutdown.
 *
 * Threads: everything here runs on the loop thread that owns the server;
 * handlers run synchronously on it and may read the daemon's loop-owned
 * state directly. A handler must not block.
 *
 * Limits (defaults): request line + headers 16 KiB (431, or 414 when the
 * request target alone is too long), 100 header fields (431), body 1 MiB
 * (413, decided from Content-Length before the body is read, or while a
 * chunked body arrives). Malformed requests get 400 with a JSON error and
 * the connection is closed after the answer.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "sluice/buf.h"
#include "sluice/common.h"

#define SL_HTTP_MAX_HEADER_BYTES 16384u
#define SL_HTTP_MAX_HEADERS 100u
#define SL_HTTP_MAX_BODY_BYTES (1024u * 1024u)

typedef struct sl_http_limits {
    size_t max_header_bytes; /* request line + header section, raw bytes */
    size_t max_headers;      /* header fields (trailers included) */
    size_t max_body_bytes;   /* decoded body (after de-chunking) */
} sl_http_limits;            /* a 0 field takes the default above */

/* ---- requests ----------------------------------------------------------- */

typedef struct sl_http_header {
    const char *name;  /* as sent (compare case-insensitively) */
    const char *value; /* leading and trailing whitespace removed */
} sl_http_header;

typedef struct sl_http_param {
    const char *key;   /* percent-decoded, '+' read as space */
    const char *value; /* "" for a key without '=' */
} sl_http_param;

/* A complete request. Every pointer points into storage owned by the
 * parser that produced it (or, for a hand-built request in a test, by the
 * caller); it stays valid until the next sl_http_parser_feed, reset or
 * free. Strings are NUL-terminated. */
typedef struct sl_http_request {
    const char *method;   /* "GET", "POST", ... (llhttp's static names) */
    const char *target;   /* the request target as sent */
    const char *path;     /* percent-decoded path; starts with '/' */
    const char *query;    /* raw query after '?' (without it); "" if none */
    const sl_http_header *headers;
    size_t nheaders;
    const sl_http_param *params; /* the decoded query, in order */
    size_t nparams;
    const uint8_t *body;  /* NUL-terminated too (body[body_len] == 0) */
    size_t body_len;
    uint8_t http_major, http_minor;
    bool keep_alive; /* the client allows another request afterwards */
    /* Set by sl_http_dispatch before the handler runs: the part of path
     * after the matched route's prefix ("" for an exact route), e.g.
     * "cdc/pause" for "/v1/connectors/cdc/pause" on the prefix route
     * "/v1/connectors/" + '*'. */
    const char *route_rest;
} sl_http_request;

/* First header with this name (case-insensitive), or NULL. */
const char *sl_http_request_header(const sl_http_request *req,
                                   const char *name);
/* First query parameter with this key (exact match), or NULL. */
const char *sl_http_request_param(const sl_http_request *req,
                                  const char *key);

/* ---- parser (sans-I/O) -------------------------------------------------- */

typedef struct sl_http_parser sl_http_parser;

typedef enum sl_http_feed_result {
    SL_HTTP_NEED_MORE = 0, /* every byte consumed; no complete request yet */
    SL_HTTP_REQUEST = 1,   /* a request is complete: sl_http_parser_request */
    SL_HTTP_ERROR = 2,     /* malformed or too large: sl_http_parser_error */
} sl_http_feed_result;

/* limits may be NULL (defaults); copied. Never fails (OOM aborts). */
sl_http_parser *sl_http_parser_new(const sl_http_limits *limits);
void sl_http_parser_free(sl_http_parser *p);

/* Feeds bytes; the caller keeps ownership of data (nothing points into it
 * afterwards). Parsing stops right after a complete request so that
 * requests come out one at a time: *consumed says how many bytes were
 * used, and the caller feeds the rest (pipelined requests) after handling
 * the request. The previous request is released at the start of the next
 * call. After a request that does not keep the connection alive (HTTP/1.0
 * without keep-alive, "Connection: close", an Upgrade) further bytes are
 * consumed and ignored. After SL_HTTP_ERROR the parser stays in error and
 * consumes nothing more. */
sl_http_feed_result sl_http_parser_feed(sl_http_parser *p, const void *data,
                                        size_t len, size_t *consumed);

/* The request after SL_HTTP_REQUEST; NULL otherwise. Owned by the parser
 * (see sl_http_request); the caller may set route_rest (dispatch does). */
sl_http_request *sl_http_parser_request(sl_http_parser *p);

/* After SL_HTTP_ERROR: the status to answer (400, 413, 414, 431) and a
 * message for the JSON error (static or parser-owned). 0 otherwise. */
int sl_http_parser_error(const sl_http_parser *p, const char **msg);

/* True once per request whose headers asked "Expect: 100-continue" while
 * its body has not arrived yet: the server then writes
 * "HTTP/1.1 100 Continue\r\n\r\n". Cleared when the request completes. */
bool sl_http_parser_take_continue(sl_http_parser *p);

/* Forgets everything (a new connection). */
void sl_http_parser_reset(sl_http_parser *p);

/* ---- responses (pure) --------------------------------------------------- */

/* A response being built by a handler. Everything in it is owned by it
 * and released by sl_http_response_free; the respond functions replace an
 * earlier status/body (a handler may change its mind), headers accumulate.
 * Read the fields; change them through the functions. */
typedef struct sl_http_response {
    int status;          /* 0 until a respond function ran */
    char *content_type;  /* owned */
    uint8_t *body;       /* owned; sl_malloc'd */
    size_t body_len;
    sl_wr headers;       /* extra "Name: value\r\n" lines */
} sl_http_response;

void sl_http_response_init(sl_http_response *r);
void sl_http_response_free(sl_http_response *r);

/* Copies body (len bytes; body may be NULL when len is 0). */
void sl_http_respond(sl_http_response *r, int status,
                     const char *content_type, const void *body, size_t len);
/* Takes ownership of body (sl_malloc'd, e.g. from sl_wr_release), also on
 * a later replacement or free. */
void sl_http_respond_take(sl_http_response *r, int status,
                          const char *content_type, void *body, size_t len);
/* Steals the reference to j (NULL answers 500) and answers it as compact
 * "application/json", followed by a newline. */
void sl_http_respond_json(sl_http_response *r, int status, json_t *j);
/* Answers {"error": "<formatted message>"} as JSON with this status. */
void sl_http_respond_error(sl_http_response *r, int status, const char *fmt,
                           ...) __attribute__((format(printf, 3, 4)));
/* Adds a header line. Names must be tokens and values free of CR/LF/NUL,
 * else SL_E_INVALID and nothing is added (no header injection).
 * Content-Type, Content-Length and Connection are written by
 * serialization; adding them here is refused the same way. */
int sl_http_response_header(sl_http_response *r, const char *name,
                            const char *value);

/* Parses the request body as a JSON object (duplicate keys rejected).
 * Returns a new reference, or NULL after answering 400 with a JSON error
 * naming the line and column into r. */
json_t *sl_http_request_json(const sl_http_request *req,
                             sl_http_response *r);

/* Appends the wire form: status line, Content-Type, Content-Length,
 * Connection (keep-alive or close), X-Content-Type-Options: nosniff, the
 * extra headers, a blank line and (unless head, for a HEAD request) the
 * body. A response with status 0 is written as a 500. */
void sl_http_response_serialize(const sl_http_response *r, bool keep_alive,
                                bool head, sl_wr *w);

/* Reason phrase for a status code ("OK", "Not Found", ...; "" if
 * unknown). */
const char *sl_http_status_reason(int status);

/* ---- routing (pure) ----------------------------------------------------- */

/* A handler fills resp; req and everything it points to are valid only
 * during the call (copy what must outlive it). Loop thread; must not block.
 * ud is the router's. A handler that sets no status answers 500. */
typedef void (*sl_http_handler_fn)(const sl_http_request *req,
                                   sl_http_response *resp, void *ud);

typedef struct sl_http_route {
    const char *method; /* "GET", "POST", ...; GET routes also serve HEAD */
    /* Exact path, or a prefix when it ends with '*' (the '*' is not part
     * of it): "/v1/connectors/" followed by '*' matches
     * "/v1/connectors/cdc/pause". */
    const char *path;
    sl_http_handler_fn fn;
    /* Mutating routes: require "Authorization: Bearer <admin token>".
     * Missing or wrong token: 401 (with WWW-Authenticate: Bearer). No
     * token configured: 403 "admin API disabled: set http.admin_token". */
    bool needs_auth;
} sl_http_route;

typedef struct sl_http_router {
    const sl_http_route *routes; /* borrowed; usually a static table */
    size_t nroutes;
    const char *admin_token;     /* borrowed; NULL or "" = disabled */
    void *ud;                    /* passed to every handler */
} sl_http_router;

/* Matches req against the table: the first route (table order) whose path
 * matches and whose method is the request's (GET routes also for HEAD)
 * wins, so list exact paths before the prefixes that cover them. A path
 * that matches only under other methods answers 405 with an Allow header;
 * no match at all answers 404. Then the token check for needs_auth routes
 * (constant-time comparison), then the handler. Sets req->route_rest. */
void sl_http_dispatch(const sl_http_router *router, sl_http_request *req,
                      sl_http_response *resp);

/* The 401/403 decision of dispatch, on its own: 0 if the request may run a
 * mutating route, else the status it was answered with (into resp). */
int sl_http_check_auth(const char *admin_token, const sl_http_request *req,
                       sl_http_response *resp);

/* ---- server (libuv) ----------------------------------------------------- */

typedef struct sl_http_server sl_http_server;

typedef struct sl_http_config {
    const char *host;         /* IPv4 or IPv6 literal; NULL = "127.0.0.1" */
    int port;                 /* 0 = any free port (see sl_http_server_port) */
    sl_http_router router;    /* routes and ud borrowed; token copied */
    sl_http_limits limits;    /* 0 fields = defaults */
    size_t max_connections;   /* 0 = 64; more are accepted and closed */
    /* A connection must complete its next request, and the writing of
     * each answer, within this many ms of the last answer (or of
     * accepting it); else it is closed. 0 = 30000. */
    uint32_t idle_timeout_ms;
    /* HTTPS: a server TLS context (sluice/tls.h; the server takes its own
     * reference), or NULL for plain HTTP. */
    struct sl_tls_ctx *tls;
} sl_http_config;

/* Starts listening. Loop thread. On failure returns SL_E_CONFIG (bad host)
 * or SL_E_IO with a message naming the address in err, and *out is NULL.
 * cfg is not retained (the routes table and ud are, see above). */
int sl_http_server_start(uv_loop_t *loop, const sl_http_config *cfg,
                         sl_http_server **out, char *err, size_t errlen);

/* The port actually listened on. */
int sl_http_server_port(const sl_http_server *s);

/* Replaces the admin token (copied; NULL or "" disables mutating routes),
 * e.g. after a configuration reload. Loop thread. */
void sl_http_server_set_token(sl_http_server *s, const char *token);

/* Open connections (for a gauge, or tests). */
size_t sl_http_server_connections(const sl_http_server *s);

/* Graceful close: stops listening, closes idle connections now, lets
 * answers being written finish (bounded by 1 s), then frees the server and
 * calls done(arg) on the loop thread (done may be NULL). The server must
 * not be used after this call. */
void sl_http_server_close(sl_http_server *s, void (*done)(void *arg),
                          void *arg);

#endif
