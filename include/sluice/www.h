/*
 * The status page's static assets (proxy/www/), compiled into the binary
 * by proxy/www/embed.py at build time: no files to install, no build step
 * beyond meson, no external network at run time.
 *
 * Serving them from an HTTP handler (loop thread):
 *
 *   const sl_www_asset *a = sl_www_find(req->path);
 *   if (a == NULL) { sl_http_respond_error(resp, 404, "not found"); return; }
 *   sl_http_respond(resp, 200, a->content_type, a->data, a->len);
 *
 * The data is static and read-only: any thread, never freed.
 */
#ifndef SLUICE_WWW_H
#define SLUICE_WWW_H

#include <stddef.h>

typedef struct sl_www_asset {
    const char *path;         /* URL path: "/index.html", "/app.js", ... */
    const char *content_type; /* e.g. "text/html; charset=utf-8" */
    const unsigned char *data; /* len bytes (NUL-terminated as well) */
    size_t len;
} sl_www_asset;

/* The asset served at path ("/" is "/index.html"), or NULL. */
const sl_www_asset *sl_www_find(const char *path);

/* Every asset, for listings and tests: *n receives the count. */
const sl_www_asset *sl_www_assets(size_t *n);

#endif
