/*
 * TLS for client listeners, over OpenSSL with memory BIOs: this module
 * never touches a socket. The connection code feeds it the ciphertext it
 * read and writes out the ciphertext it hands back, so the handshake, the
 * records and the errors are all decided here and can be tested with two
 * in-memory ends.
 *
 * A context (sl_tls_ctx) holds the certificate, key, client CA, versions,
 * ciphers and the principal mapping rules. It is reference-counted: every
 * connection holds one reference, so a reload (new certificate and key)
 * builds a new context for new connections while open ones keep theirs.
 *
 * Thread: the loop thread owns contexts and connections.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/config.h"

/* ---- principal mapping rules (Kafka's ssl.principal.mapping.rules) ----
 * "RULE:pattern/replacement/[LU],...,DEFAULT". A pattern is a POSIX
 * extended regular expression that must match the whole subject (RFC 2253
 * form, "CN=alice,OU=Apps,O=Example"); $1..$9 in the replacement are its
 * groups, $0 the whole subject; an optional /L or /U lower- or upper-cases
 * the result; DEFAULT maps a subject to itself. The first rule that
 * matches wins. Pure. */
typedef struct sl_tls_rules sl_tls_rules;

/* Returns 0 and *out (owned by the caller), or SL_E_CONFIG with err. */
int sl_tls_rules_parse(const char *text, sl_tls_rules **out, char *err,
                       size_t errlen);
/* Writes the mapped name to out. Returns 0, or -1 when no rule applies
 * (Kafka then fails the authentication) or the result does not fit. */
int sl_tls_rules_apply(const sl_tls_rules *r, const char *subject, char *out,
                       size_t outlen);
void sl_tls_rules_free(sl_tls_rules *r);

/* ---- contexts ------------------------------------------------------------ */
typedef struct sl_tls_ctx sl_tls_ctx;

/* Builds a server context from the tls.* keys (certificate, key, CA,
 * client_auth, min_version, ciphers, mapping rules). Returns 0 and *out
 * (one reference), or SL_E_CONFIG with a message naming the key and file.
 */
int sl_tls_ctx_new(const sl_config *cfg, sl_tls_ctx **out, char *err,
                   size_t errlen);
/* A client context for tests and benchmarks: trusts ca_file (NULL: no
 * verification), presents cert/key when given. */
int sl_tls_ctx_new_client(const char *ca_file, const char *cert_file,
                          const char *key_file, sl_tls_ctx **out, char *err,
                          size_t errlen);
sl_tls_ctx *sl_tls_ctx_ref(sl_tls_ctx *ctx);
void sl_tls_ctx_unref(sl_tls_ctx *ctx);
/* "subject, expires YYYY-MM-DD" of the context's certificate, for logs. */
const char *sl_tls_ctx_describe(const sl_tls_ctx *ctx);

/* ---- connections ---------------------------------------------------------- */
typedef struct sl_tls_conn sl_tls_conn;

/* A server (or, with a client context, client) end. Holds a reference to
 * ctx. */
sl_tls_conn *sl_tls_conn_new(sl_tls_ctx *ctx);
void sl_tls_conn_free(sl_tls_conn *t);

/* Ciphertext received from the peer (copied). */
void sl_tls_conn_feed(sl_tls_conn *t, const uint8_t *p, size_t n);

/* Plaintext out of what was fed: returns the bytes written to buf (> 0),
 * 0 when more ciphertext is needed, SL_TLS_CLOSED when the peer closed the
 * TLS session, or SL_TLS_ERROR with why filled ("TLS handshake failed:
 * ..."; a plaintext Kafka client on a TLS port is named as such). Handshake
 * bytes to send may be waiting afterwards: see sl_tls_conn_take_output. */
#define SL_TLS_CLOSED (-1)
#define SL_TLS_ERROR (-2)
ssize_t sl_tls_conn_read(sl_tls_conn *t, uint8_t *buf, size_t cap,
                         char *why, size_t whylen);

/* Encrypts plaintext (all of it; the handshake must be complete). Returns 0
 * or SL_TLS_ERROR. */
int sl_tls_conn_write(sl_tls_conn *t, const uint8_t *p, size_t n);

/* Ciphertext to send to the peer, if any: a heap buffer the caller frees
 * with sl_free, or NULL. */
uint8_t *sl_tls_conn_take_output(sl_tls_conn *t, size_t *len);

/* Client side: starts the handshake (the ClientHello is then output). */
void sl_tls_conn_connect(sl_tls_conn *t);

bool sl_tls_conn_established(const sl_tls_conn *t);
/* After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384". */
const char *sl_tls_conn_describe(sl_tls_conn *t);

/* After the handshake, the principal of a verified client certificate:
 * writes "User:<mapped subject>" and returns 1; returns 0 when the client
 * sent no certificate (Kafka's User:ANONYMOUS); -1 when no mapping rule
 * applies (why filled). */
int sl_tls_conn_principal(sl_tls_conn *t, char *out, size_t outlen,
                          char *why, size_t whylen);

#endif
