/*
 * Server-side SASL for Sluice acting as a Kafka broker towards clients
 * (SaslHandshake / SaslAuthenticate): the mechanisms PLAIN, SCRAM-SHA-256
 * and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Apache Kafka 4.1's
 * PlainSaslServer and ScramSaslServer speak them, and the credentials file
 * they check against.
 *
 * Sans-I/O: an exchange takes one client message at a time and gives back
 * the server's message; the caller moves the bytes (SaslAuthenticate
 * auth_bytes, or raw frames for a v0 handshake). No sockets, no clock, no
 * logging: a failure comes back with a reason for the caller to log.
 * Only sl_sasl_creds_load and sl_sasl_users_main touch files.
 *
 * The credentials file holds SCRAM credentials only (salt, iterations,
 * StoredKey, ServerKey per user and mechanism), never a password or an
 * unsalted hash of one:
 *
 *   { "users": { "alice": {
 *       "SCRAM-SHA-512": { "salt": "<base64>", "iterations": 8192,
 *                          "stored_key": "<base64>", "server_key": "<base64>" },
 *       "SCRAM-SHA-256": { ... } } } }
 *
 * PLAIN logins are checked against the same credential: the password is
 * run through PBKDF2 with the user's stored salt and iterations (the
 * SCRAM-SHA-512 one if the user has it, else SCRAM-SHA-256) and the
 * resulting StoredKey compared in constant time.
 *
 * COST: that derivation makes a PLAIN step expensive: at 8192 iterations
 * about 2.2 ms of CPU for a SCRAM-SHA-256 credential and 5.5 ms for a
 * SCRAM-SHA-512 one (the one PLAIN prefers), measured on one core of the
 * build machine (tests/unit/test_sasl.c's plain_cost prints it), all
 * inside sl_sasl_server_step. A SCRAM exchange costs the server only a few
 * hashes (the client runs the PBKDF2). The glue should bound concurrent
 * PLAIN logins (or run their step on a worker thread: an exchange is
 * self-contained) and rate-limit failures: each PLAIN attempt for a known
 * user name costs this much, whatever the password.
 *
 * Threads: an sl_sasl_creds is immutable once loaded and may be shared
 * read-only by any number of threads and exchanges. One sl_sasl_server is
 * used by one thread at a time. The libcrypto calls used are thread-safe
 * on OpenSSL >= 1.1.
 *
 * File permissions: the file holds no passwords, but StoredKey/ServerKey
 * let anyone who reads them impersonate the server to a client (and mount
 * an offline dictionary attack on the passwords): keep it 0600 (`sluice
 * users` writes it so). sl_sasl_creds_mode_warning lets the daemon warn
 * when it is group- or world-readable.
 */
#ifndef SLUICE_SASL_H
#define SLUICE_SASL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/common.h"

#define SL_SASL_MAX_MSG 65536    /* bytes of one client message */
#define SL_SASL_MAX_NAME 255     /* bytes of a user name (decoded) */
#define SL_SASL_MAX_KEY 64       /* SHA-512's digest size */
#define SL_SASL_MAX_SALT 128     /* bytes of a stored salt */
#define SL_SASL_MIN_ITER 4096    /* Kafka's ScramMechanism bounds */
#define SL_SASL_MAX_ITER 16384
#define SL_SASL_DEFAULT_ITER 8192
#define SL_SASL_SALT_LEN 32      /* what sluice users add draws */

typedef enum sl_sasl_mech {
    SL_SASL_PLAIN,
    SL_SASL_SCRAM_SHA_256,
    SL_SASL_SCRAM_SHA_512,
    SL_SASL__MECH_COUNT
} sl_sasl_mech;

/* "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"; NULL for anything else. */
const char *sl_sasl_mech_name(sl_sasl_mech m);
/* Exact, case-sensitive match of len bytes (as Kafka matches the
 * SaslHandshake mechanism). Returns 0 and sets *out, or -1. */
int sl_sasl_mech_parse(const char *s, size_t len, sl_sasl_mech *out);

/* ---- credentials --------------------------------------------------------- */

typedef struct sl_sasl_creds sl_sasl_creds;

/* Reads and validates a credentials file. On success *out is the
 * caller's (sl_sasl_creds_free). On failure returns SL_E_CONFIG, *out is
 * untouched and err gets "FILE:LINE: users.alice.SCRAM-SHA-512.iterations:
 * ..." like the config and policy loaders. Files over 64 MiB are refused. */
int sl_sasl_creds_load(const char *path, sl_sasl_creds **out, char *err,
                       size_t errlen);
/* The same from text (len bytes, need not be NUL-terminated);
 * name_for_errors prefixes errors (NULL: "(credentials)"). */
int sl_sasl_creds_parse(const char *json, size_t len,
                        const char *name_for_errors, sl_sasl_creds **out,
                        char *err, size_t errlen);
/* Wipes the keys and frees. NULL is a no-op. */
void sl_sasl_creds_free(sl_sasl_creds *c);
size_t sl_sasl_creds_users(const sl_sasl_creds *c);
/* The i-th user name in byte order (i < sl_sasl_creds_users), borrowed
 * from c; NULL past the end. */
const char *sl_sasl_creds_user_name(const sl_sasl_creds *c, size_t i);
/* The iterations of user's credential for m (a SCRAM mechanism), or 0 if
 * the user or that credential is absent. For PLAIN: of the credential a
 * PLAIN login would check (SHA-512, else SHA-256). */
uint32_t sl_sasl_creds_iterations(const sl_sasl_creds *c, const char *user,
                                  sl_sasl_mech m);
/* Whether the file at path is group- or world-readable: returns 1 and
 * writes a warning to msg, 0 if not, -1 (msg set) if it cannot stat it.
 * The daemon should log the warning at startup. */
int sl_sasl_creds_mode_warning(const char *path, char *msg, size_t msglen);

/* ---- one authentication exchange ---------------------------------------- */

typedef struct sl_sasl_server sl_sasl_server;

/* Starts an exchange for mechanism m against creds, which the exchange
 * borrows: they must outlive it. nonce: the server's nonce part for SCRAM,
 * NULL for 24 random bytes (RAND_bytes) in base64; tests and fuzzers pass
 * a fixed one, which must be 1..255 printable ASCII characters other than
 * ','. Returns NULL on a bad m or nonce, or if RAND_bytes fails. */
sl_sasl_server *sl_sasl_server_new(sl_sasl_mech m, const sl_sasl_creds *creds,
                                   const char *nonce);

typedef enum sl_sasl_status {
    SL_SASL_CONTINUE, /* send *out, then feed the client's next message */
    SL_SASL_DONE,     /* authenticated: send *out (SCRAM's server-final,
                         empty for PLAIN); sl_sasl_server_user names who */
    SL_SASL_FAILED,   /* refuse the client; why says why, for the log */
} sl_sasl_status;

/* Feeds one client message: in_len bytes at in (not NUL-terminated; NULL
 * with in_len 0 is an empty message). On CONTINUE and DONE, *out and *out_len
 * is the server's reply, owned by the exchange and valid until the next
 * step or sl_sasl_server_free (possibly empty, never NULL). On FAILED,
 * *out is an empty reply and why (if not NULL) gets a reason for the log:
 * it may quote the user name (escaped, as sent by the client) but never a
 * password, proof, nonce or key. The reason is for the operator's log: the
 * client should get Kafka's generic SASL_AUTHENTICATION_FAILED text. Any
 * step after DONE or FAILED fails. A PLAIN step runs PBKDF2 (see COST
 * above). */
sl_sasl_status sl_sasl_server_step(sl_sasl_server *s, const uint8_t *in,
                                   size_t in_len, const uint8_t **out,
                                   size_t *out_len, char *why, size_t whylen);

/* After DONE: the authenticated user name (a credentials-file user, so
 * 1..255 bytes with no control characters), borrowed from the exchange;
 * NULL before DONE. The glue makes the principal "User:<name>". */
const char *sl_sasl_server_user(const sl_sasl_server *s);
sl_sasl_mech sl_sasl_server_mech(const sl_sasl_server *s);

/* Wipes the exchange's state (OPENSSL_cleanse) and frees it. NULL is a
 * no-op. The caller wipes its own copies of client messages (a PLAIN
 * message holds the password). */
void sl_sasl_server_free(sl_sasl_server *s);

/* ---- credential derivation ---------------------------------------------- */

/* RFC 5802 for a SCRAM mechanism m:
 *   SaltedPassword = PBKDF2(HMAC-H, password, salt, iterations)
 *   StoredKey = H(HMAC(SaltedPassword, "Client Key"))
 *   ServerKey = HMAC(SaltedPassword, "Server Key")
 * stored_key and server_key need SL_SASL_MAX_KEY bytes each; *key_len
 * gets the digest size (32 or 64). The password is raw bytes (Kafka does
 * no SASLprep). Returns 0, or SL_E_INVALID (m not SCRAM, iterations 0,
 * lengths over INT_MAX) or SL_E_NOMEM (libcrypto failed). */
int sl_sasl_scram_derive(sl_sasl_mech m, const char *password, size_t pwlen,
                         const uint8_t *salt, size_t salt_len,
                         uint32_t iterations, uint8_t *stored_key,
                         uint8_t *server_key, size_t *key_len);

/* ---- sluice users --------------------------------------------------------- */

/* `sluice users add FILE USER [--mechanism M|all] [--iterations N]`,
 * `sluice users delete FILE USER`, `sluice users list FILE`; argv[0] is
 * the verb. add reads the password from the first line of stdin (echo
 * off on a terminal) and rewrites FILE atomically with mode 0600.
 * Returns the exit status: 0, 1 on failure, 2 on misuse. Main thread;
 * uses stdin, stdout, stderr. */
int sl_sasl_users_main(int argc, char **argv);

/* Internal, shared by proxy/sasl.c and proxy/sasl_users.c: base64 (RFC
 * 4648, padded, no line breaks) of n bytes into out, which needs
 * (n + 2) / 3 * 4 + 1 bytes (a NUL ends it). */
void sl__sasl_b64_encode(const uint8_t *in, size_t n, char *out);

#endif
