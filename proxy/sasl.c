/*
 * Server-side SASL PLAIN and SCRAM-SHA-256/512 (include/sluice/sasl.h).
 *
 * Why not a SASL library (checked against Debian 12, December 2026):
 *
 * - Cyrus SASL 2.1.28 (libsasl2-dev 2.1.28+dfsg-10+deb12u1): its SCRAM
 *   plugin does know SCRAM-SHA-256 and -512 (libscram.so), but the
 *   mechanisms live in libsasl2-modules and are dlopen()ed at
 *   sasl_server_init from plugin directories (built-in search path
 *   /usr/lib/x86_64-linux-gnu/sasl2, options from /etc/sasl2/<app>.conf
 *   unless every option is overridden by callbacks), and
 *   sasl_server_init/sasl_done are process-global. Stored credentials
 *   come through auxprop: SCRAM secrets from the sasldb (a Berkeley/LMDB
 *   file) or a plaintext userPassword; to use our own file we would write
 *   an auxprop plugin. Its PLAIN checks a plaintext userPassword or asks
 *   saslauthd (a blocking socket round trip), never a SCRAM StoredKey.
 *   It has none of Kafka's rules (tokenauth, authzid == user, Kafka's
 *   iteration bounds) and knows nothing of them to refuse.
 * - GNU SASL 2.2.0 (libgsasl-dev 2.2.0-1+deb12u2): no plugin directories
 *   and its server can take a StoredKey/ServerKey through a callback, but
 *   it has SCRAM-SHA-1 and SCRAM-SHA-256 only (libgsasl.so.18 lists no
 *   SCRAM-SHA-512, the mechanism librdkafka and Kafka users pick most),
 *   it drags in libgssglue, libidn and libntlm, and its PLAIN validation
 *   hands us the password to check anyway.
 * Neither fits, and what is left after the parsing is a handful of
 * libcrypto calls (PBKDF2, HMAC, digests), so this file implements the
 * mechanisms on OpenSSL's libcrypto directly.
 *
 * Where this differs from Kafka 4.1's ScramSaslServer / ScramMessages, on
 * purpose:
 * - "y,," is accepted as well as "n,," (RFC 5802: a client that supports
 *   channel binding but was not offered it); "p=" is refused as in Kafka.
 * - c= must decode to the exact gs2 header (Kafka does not check it).
 * - unknown client-first extensions are refused (Kafka logs and ignores
 *   them; no Kafka client sends any but tokenauth); tokenauth=true is
 *   refused because Sluice serves no delegation tokens; "m=" is refused
 *   as RFC 5802 requires (Kafka parses and ignores it).
 * - AuthMessage uses the client's bytes as sent (Kafka rebuilds
 *   client-first-bare from its extension map, which reorders extensions).
 * - the authzid is compared after =2C/=3D decoding (Kafka compares it
 *   raw); names may hold bytes >= 0x80 (Kafka: ASCII only in SCRAM).
 */
#include "sluice/sasl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sluice/jsonscan.h"

#define MAX_FILE_BYTES (64u << 20)
#define RANDOM_NONCE_BYTES 24

/* ---- mechanisms -------------------------------------------------------- */

static const struct {
    const char *name;
    const char *digest; /* EVP name; NULL for PLAIN */
    size_t key_len;
} mechs[SL_SASL__MECH_COUNT] = {
    [SL_SASL_PLAIN] = {"PLAIN", NULL, 0},
    [SL_SASL_SCRAM_SHA_256] = {"SCRAM-SHA-256", "SHA256", 32},
    [SL_SASL_SCRAM_SHA_512] = {"SCRAM-SHA-512", "SHA512", 64},
};

const char *sl_sasl_mech_name(sl_sasl_mech m)
{
    return (unsigned)m < SL_SASL__MECH_COUNT ? mechs[m].name : NULL;
}

int sl_sasl_mech_parse(const char *s, size_t len, sl_sasl_mech *out)
{
    for (int m = 0; m < SL_SASL__MECH_COUNT; m++)
        if (strlen(mechs[m].name) == len && memcmp(mechs[m].name, s, len) == 0) {
            *out = (sl_sasl_mech)m;
            return 0;
        }
    return -1;
}

static bool is_scram(sl_sasl_mech m)
{
    return m == SL_SASL_SCRAM_SHA_256 || m == SL_SASL_SCRAM_SHA_512;
}

static const EVP_MD *mech_md(sl_sasl_mech m)
{
    return m == SL_SASL_SCRAM_SHA_256 ? EVP_sha256() : EVP_sha512();
}

/* ---- base64 (RFC 4648, with padding, no line breaks) --------------------- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void sl__sasl_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict decoding of n characters: the alphabet above, a multiple of 4,
 * '=' only as the last one or two. Writes up to cap bytes to out; returns
 * the decoded length, or -1 if malformed or longer than cap. */
static long b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0;

    if (n % 4 != 0)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad > 0 || (v[k] = b64_val(in[i + k])) < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (o + 3 - (size_t)pad > cap)
            return -1;
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

/* ---- crypto ------------------------------------------------------------- */

static bool hmac(sl_sasl_mech m, const uint8_t *key, size_t key_len,
                 const void *data, size_t len, uint8_t *out)
{
    unsigned int n = 0;

    return HMAC(mech_md(m), key, (int)key_len, data, len, out, &n) != NULL &&
           n == mechs[m].key_len;
}

static bool digest(sl_sasl_mech m, const uint8_t *data, size_t len,
                   uint8_t *out)
{
    unsigned int n = 0;

    return EVP_Digest(data, len, out, &n, mech_md(m), NULL) == 1 &&
           n == mechs[m].key_len;
}

int sl_sasl_scram_derive(sl_sasl_mech m, const char *password, size_t pwlen,
                         const uint8_t *salt, size_t salt_len,
                         uint32_t iterations, uint8_t *stored_key,
                         uint8_t *server_key, size_t *key_len)
{
    uint8_t salted[SL_SASL_MAX_KEY], client_key[SL_SASL_MAX_KEY];
    size_t kl;
    int rc = SL_E_NOMEM;

    if (!is_scram(m) || iterations == 0 || iterations > INT_MAX ||
        pwlen > INT_MAX || salt_len > INT_MAX)
        return SL_E_INVALID;
    kl = mechs[m].key_len;
    if (PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len,
                          (int)iterations, mech_md(m), (int)kl, salted) != 1)
        goto out;
    if (!hmac(m, salted, kl, "Client Key", 10, client_key) ||
        !digest(m, client_key, kl, stored_key) ||
        !hmac(m, salted, kl, "Server Key", 10, server_key))
        goto out;
    *key_len = kl;
    rc = 0;
out:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return rc;
}

/* ---- credentials -------------------------------------------------------- */

typedef struct scram_cred {
    bool set;
    uint32_t iterations;
    size_t salt_len;
    uint8_t salt[SL_SASL_MAX_SALT];
    uint8_t stored_key[SL_SASL_MAX_KEY];
    uint8_t server_key[SL_SASL_MAX_KEY];
} scram_cred;

typedef struct cred_user {
    char *name;
    scram_cred scram[SL_SASL__MECH_COUNT]; /* [PLAIN] unused */
} cred_user;

struct sl_sasl_creds {
    cred_user *users; /* sorted by name (strcmp) for bsearch */
    size_t n;
};

/* Fields of a mechanism's entry in the file: the loader's table. */
enum { F_SALT, F_ITERATIONS, F_STORED_KEY, F_SERVER_KEY, F__COUNT };
static const char *const field_names[F__COUNT] = {
    "salt", "iterations", "stored_key", "server_key"};
static const char *const scram_names[] = {"SCRAM-SHA-256", "SCRAM-SHA-512"};
static const char *const top_names[] = {"users"};

typedef struct loader {
    const char *name, *text;
    size_t len;
    char *err;
    size_t errlen;
    sl_jscan_comp comps[4]; /* users.<user>.<mech>.<field> */
    size_t depth;
} loader;

static void put_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* "NAME:LINE: users.alice.SCRAM-SHA-512.iterations: msg", the line of the
 * deepest key of the path that exists in the text. */
static int load_error(loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int load_error(loader *ld, const char *fmt, ...)
{
    char path[1200], msg[600];
    size_t o = 0;
    int line = 0;
    va_list ap;

    for (size_t n = ld->depth; n > 0 && line == 0; n--)
        line = sl_jscan_path_line(ld->text, ld->len, ld->comps, n);
    if (line == 0)
        line = sl_jscan_first_line(ld->text, ld->len);
    path[0] = '\0';
    for (size_t i = 0; i < ld->depth && o < sizeof(path); i++) {
        int w = snprintf(path + o, sizeof(path) - o, "%s%s", i ? "." : "",
                         ld->comps[i].key);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->depth > 0)
        put_err(ld->err, ld->errlen, "%s:%d: %s: %s", ld->name,
                line > 0 ? line : 1, path, msg);
    else
        put_err(ld->err, ld->errlen, "%s:%d: %s", ld->name,
                line > 0 ? line : 1, msg);
    return SL_E_CONFIG;
}

static int unknown_key(loader *ld, const char *const *known, size_t n,
                       const char *expected)
{
    const char *key = ld->comps[ld->depth - 1].key;
    const char *sug = sl_json_suggest(key, strlen(key), known, n);

    if (sug != NULL)
        return load_error(ld, "unknown key (did you mean %s?)", sug);
    return load_error(ld, "unknown key (expected %s)", expected);
}

/* A user name Sluice accepts: 1..255 bytes, no control characters (it
 * ends up in log lines and in the principal "User:<name>"). */
static const char *name_problem(const char *s, size_t len)
{
    if (len == 0)
        return "empty user name";
    if (len > SL_SASL_MAX_NAME)
        return "user name longer than 255 bytes";
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] == 0x7f)
            return "control character in user name";
    return NULL;
}

static int load_b64(loader *ld, json_t *v, uint8_t *out, size_t cap,
                    size_t want, size_t *got)
{
    const char *s;
    long n;

    if (!json_is_string(v))
        return load_error(ld, "expected a base64 string, got %s",
                          sl_json_kind(v));
    s = json_string_value(v);
    n = b64_decode((const uint8_t *)s, json_string_length(v), out, cap);
    if (n < 0)
        return load_error(ld, want ? "expected base64 of %zu bytes"
                                   : "expected base64 of 1..%zu bytes",
                          want ? want : cap);
    if (n == 0)
        return load_error(ld, "empty");
    if (want != 0 && (size_t)n != want)
        return load_error(ld, "expected %zu bytes (the digest size), got %ld",
                          want, n);
    *got = (size_t)n;
    return 0;
}

static int load_scram(loader *ld, json_t *obj, sl_sasl_mech m, scram_cred *c)
{
    json_t *fields[F__COUNT] = {0}, *v;
    const char *key;
    size_t got, kl = mechs[m].key_len;
    int rc;

    if (!json_is_object(obj))
        return load_error(ld, "expected an object with salt, iterations, "
                          "stored_key and server_key, got %s",
                          sl_json_kind(obj));
    json_object_foreach(obj, key, v) {
        size_t f;
        ld->comps[ld->depth++] = (sl_jscan_comp){key, -1};
        for (f = 0; f < F__COUNT && strcmp(key, field_names[f]) != 0; f++)
            ;
        if (f == F__COUNT)
            return unknown_key(ld, field_names, F__COUNT,
                               "salt, iterations, stored_key, server_key");
        fields[f] = v;
        ld->depth--;
    }
    for (size_t f = 0; f < F__COUNT; f++)
        if (fields[f] == NULL)
            return load_error(ld, "missing \"%s\"", field_names[f]);

    ld->comps[ld->depth++] = (sl_jscan_comp){"iterations", -1};
    v = fields[F_ITERATIONS];
    if (!json_is_integer(v) || json_integer_value(v) < SL_SASL_MIN_ITER ||
        json_integer_value(v) > SL_SASL_MAX_ITER) {
        if (json_is_integer(v))
            return load_error(ld, "expected an integer %d..%d (Kafka's "
                              "bounds), got %" JSON_INTEGER_FORMAT,
                              SL_SASL_MIN_ITER, SL_SASL_MAX_ITER,
                              json_integer_value(v));
        return load_error(ld, "expected an integer %d..%d, got %s",
                          SL_SASL_MIN_ITER, SL_SASL_MAX_ITER,
                          sl_json_kind(v));
    }
    c->iterations = (uint32_t)json_integer_value(v);
    ld->comps[ld->depth - 1].key = "salt";
    if ((rc = load_b64(ld, fields[F_SALT], c->salt, sizeof(c->salt), 0,
                       &c->salt_len)) != 0)
        return rc;
    ld->comps[ld->depth - 1].key = "stored_key";
    if ((rc = load_b64(ld, fields[F_STORED_KEY], c->stored_key, kl, kl,
                       &got)) != 0)
        return rc;
    ld->comps[ld->depth - 1].key = "server_key";
    if ((rc = load_b64(ld, fields[F_SERVER_KEY], c->server_key, kl, kl,
                       &got)) != 0)
        return rc;
    ld->depth--;
    c->set = true;
    return 0;
}

static int load_user(loader *ld, json_t *obj, cred_user *u)
{
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(obj))
        return load_error(ld, "expected an object of SCRAM-SHA-256 and/or "
                          "SCRAM-SHA-512 credentials, got %s",
                          sl_json_kind(obj));
    json_object_foreach(obj, key, v) {
        sl_sasl_mech m;
        ld->comps[ld->depth++] = (sl_jscan_comp){key, -1};
        if (strcmp(key, "PLAIN") == 0)
            return load_error(ld, "no PLAIN entry: PLAIN logins are "
                              "checked against the user's SCRAM credential");
        if (sl_sasl_mech_parse(key, strlen(key), &m) != 0 || !is_scram(m))
            return unknown_key(ld, scram_names, SL_ARRAY_SIZE(scram_names),
                               "SCRAM-SHA-256 or SCRAM-SHA-512");
        if ((rc = load_scram(ld, v, m, &u->scram[m])) != 0)
            return rc;
        ld->depth--;
    }
    if (!u->scram[SL_SASL_SCRAM_SHA_256].set &&
        !u->scram[SL_SASL_SCRAM_SHA_512].set)
        return load_error(ld, "no credential (expected SCRAM-SHA-256 "
                          "and/or SCRAM-SHA-512)");
    return 0;
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const cred_user *)a)->name, ((const cred_user *)b)->name);
}

static void creds_wipe_free(cred_user *users, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sl_free(users[i].name);
        OPENSSL_cleanse(users[i].scram, sizeof(users[i].scram));
    }
    sl_free(users);
}

static int load_root(loader *ld, json_t *root, sl_sasl_creds **out)
{
    json_t *users = NULL, *v;
    const char *key;
    cred_user *us;
    size_t n = 0;
    int rc = 0;

    if (!json_is_object(root))
        return load_error(ld, "expected a JSON object at the top level, got "
                          "%s", sl_json_kind(root));
    json_object_foreach(root, key, v) {
        ld->comps[ld->depth++] = (sl_jscan_comp){key, -1};
        if (strcmp(key, "users") != 0)
            return unknown_key(ld, top_names, 1, "\"users\"");
        users = v;
        ld->depth--;
    }
    if (users == NULL)
        return load_error(ld, "missing \"users\"");
    ld->comps[ld->depth++] = (sl_jscan_comp){"users", -1};
    if (!json_is_object(users))
        return load_error(ld, "expected an object of user names, got %s",
                          sl_json_kind(users));
    us = sl_calloc(json_object_size(users) + 1, sizeof(*us));
    json_object_foreach(users, key, v) {
        /* jansson refuses "\u0000" in keys, so strlen is the length. */
        const char *why = name_problem(key, strlen(key));
        ld->comps[ld->depth++] = (sl_jscan_comp){key, -1};
        if (why != NULL) {
            rc = load_error(ld, "%s", why);
            break;
        }
        us[n].name = sl_strdup(key);
        n++;
        if ((rc = load_user(ld, v, &us[n - 1])) != 0)
            break;
        ld->depth--;
    }
    if (rc != 0) {
        creds_wipe_free(us, n);
        return rc;
    }
    qsort(us, n, sizeof(*us), user_cmp);
    *out = sl_calloc(1, sizeof(**out));
    (*out)->users = us;
    (*out)->n = n;
    return 0;
}

/* jansson refused the text: its line and column, or for a duplicate key
 * its path and where it was first set. */
static void syntax_error(loader *ld, const json_error_t *je)
{
    if (json_error_code(je) == json_error_duplicate_key && je->position > 0) {
        char *keys[SL_JSCAN_MAX_DEPTH];
        int line;
        size_t n = sl_jscan_key_at(ld->text, ld->len, (size_t)je->position,
                                   keys, &line);
        if (n > 0) {
            sl_jscan_comp comps[SL_JSCAN_MAX_DEPTH];
            char path[1200];
            size_t o = 0;
            int first;
            path[0] = '\0';
            for (size_t i = 0; i < n; i++) {
                int w;
                comps[i] = (sl_jscan_comp){keys[i], -1};
                if (o < sizeof(path) &&
                    (w = snprintf(path + o, sizeof(path) - o, "%s%s",
                                  i ? "." : "", keys[i])) > 0)
                    o += (size_t)w;
            }
            first = sl_jscan_path_line(ld->text, ld->len, comps, n);
            put_err(ld->err, ld->errlen,
                    "%s:%d: %s: duplicate key (first set on line %d)",
                    ld->name, line, path, first);
            for (size_t i = 0; i < n; i++)
                sl_free(keys[i]);
            return;
        }
    }
    sl_json_syntax_error(ld->err, ld->errlen, ld->name, je);
}

int sl_sasl_creds_parse(const char *json, size_t len,
                        const char *name_for_errors, sl_sasl_creds **out,
                        char *err, size_t errlen)
{
    loader ld = {.name = name_for_errors ? name_for_errors : "(credentials)",
                 .text = json, .len = len, .err = err, .errlen = errlen};
    json_error_t je;
    json_t *root;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &je);
    if (root == NULL) {
        syntax_error(&ld, &je);
        return SL_E_CONFIG;
    }
    rc = load_root(&ld, root, out);
    json_decref(root);
    return rc;
}

int sl_sasl_creds_load(const char *path, sl_sasl_creds **out, char *err,
                       size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf;
    size_t n = 0;
    int rc;

    if (fd < 0) {
        put_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return SL_E_CONFIG;
    }
    if (fstat(fd, &st) != 0) {
        put_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return SL_E_CONFIG;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE_BYTES) {
        put_err(err, errlen, "%s: %s", path,
                !S_ISREG(st.st_mode) ? "not a regular file"
                                     : "larger than 64 MiB");
        close(fd);
        return SL_E_CONFIG;
    }
    buf = sl_malloc((size_t)st.st_size + 1);
    while (n < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            put_err(err, errlen, "%s: cannot read: %s", path,
                    got < 0 ? strerror(errno) : "file shrank while read");
            close(fd);
            sl_free(buf);
            return SL_E_CONFIG;
        }
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    rc = sl_sasl_creds_parse(buf, n, path, out, err, errlen);
    OPENSSL_cleanse(buf, n);
    sl_free(buf);
    return rc;
}

void sl_sasl_creds_free(sl_sasl_creds *c)
{
    if (c == NULL)
        return;
    creds_wipe_free(c->users, c->n);
    sl_free(c);
}

size_t sl_sasl_creds_users(const sl_sasl_creds *c)
{
    return c ? c->n : 0;
}

const char *sl_sasl_creds_user_name(const sl_sasl_creds *c, size_t i)
{
    return c && i < c->n ? c->users[i].name : NULL;
}

/* The user of that name (len bytes, need not be NUL-terminated), or NULL. */
static const cred_user *find_user(const sl_sasl_creds *c, const char *name,
                                  size_t len)
{
    size_t lo = 0, hi = c ? c->n : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *un = c->users[mid].name;
        int d = strncmp(un, name, len);
        if (d == 0 && un[len] != '\0')
            d = 1; /* un is longer: it sorts after */
        if (d == 0)
            return &c->users[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The credential a PLAIN login checks: SHA-512's, else SHA-256's. */
static sl_sasl_mech plain_mech(const cred_user *u)
{
    return u->scram[SL_SASL_SCRAM_SHA_512].set ? SL_SASL_SCRAM_SHA_512
                                               : SL_SASL_SCRAM_SHA_256;
}

uint32_t sl_sasl_creds_iterations(const sl_sasl_creds *c, const char *user,
                                  sl_sasl_mech m)
{
    const cred_user *u = user ? find_user(c, user, strlen(user)) : NULL;

    if (u == NULL || (unsigned)m >= SL_SASL__MECH_COUNT)
        return 0;
    if (m == SL_SASL_PLAIN)
        m = plain_mech(u);
    return u->scram[m].set ? u->scram[m].iterations : 0;
}

int sl_sasl_creds_mode_warning(const char *path, char *msg, size_t msglen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        put_err(msg, msglen, "%s: cannot stat: %s", path, strerror(errno));
        return -1;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) == 0)
        return 0;
    put_err(msg, msglen, "%s: SASL credentials file has mode %04o: readable "
            "by others, whose StoredKey/ServerKey let them pose as this "
            "server and guess passwords offline (chmod 600 it)",
            path, (unsigned)(st.st_mode & 07777));
    return 1;
}

/* ---- the exchange ------------------------------------------------------- */

enum state { ST_FIRST, ST_FINAL, ST_DONE, ST_FAILED };

struct sl_sasl_server {
    sl_sasl_mech mech;
    enum state state;
    const sl_sasl_creds *creds; /* borrowed */
    const cred_user *user;      /* in creds, once known */
    char nonce[SL_SASL_MAX_NAME + 1]; /* the server's part */
    /* SCRAM between the two messages: */
    uint8_t gs2[3 + 2 + 3 * SL_SASL_MAX_NAME + 1]; /* the raw gs2 header */
    size_t gs2_len;
    size_t client_nonce_len;
    char *auth_msg; /* client-first-bare "," server-first */
    size_t auth_len;
    size_t sf_off; /* where server-first starts in auth_msg */
    uint8_t *out; /* the reply handed out by the last step */
    size_t out_len, out_cap;
};

sl_sasl_server *sl_sasl_server_new(sl_sasl_mech m, const sl_sasl_creds *creds,
                                   const char *nonce)
{
    sl_sasl_server *s;

    if ((unsigned)m >= SL_SASL__MECH_COUNT || creds == NULL)
        return NULL;
    if (nonce != NULL) {
        size_t n = strlen(nonce);
        if (n == 0 || n > SL_SASL_MAX_NAME)
            return NULL;
        for (size_t i = 0; i < n; i++)
            if (nonce[i] < 0x21 || nonce[i] > 0x7e || nonce[i] == ',')
                return NULL;
    }
    s = sl_calloc(1, sizeof(*s));
    s->mech = m;
    s->creds = creds;
    if (nonce != NULL) {
        strcpy(s->nonce, nonce);
    } else if (is_scram(m)) {
        uint8_t rnd[RANDOM_NONCE_BYTES];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            sl_free(s);
            return NULL;
        }
        sl__sasl_b64_encode(rnd, sizeof(rnd), s->nonce);
    }
    return s;
}

sl_sasl_mech sl_sasl_server_mech(const sl_sasl_server *s)
{
    return s->mech;
}

const char *sl_sasl_server_user(const sl_sasl_server *s)
{
    return s != NULL && s->state == ST_DONE ? s->user->name : NULL;
}

static void wipe_free(void *p, size_t n)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, n);
        sl_free(p);
    }
}

void sl_sasl_server_free(sl_sasl_server *s)
{
    if (s == NULL)
        return;
    wipe_free(s->auth_msg, s->auth_len);
    wipe_free(s->out, s->out_cap);
    OPENSSL_cleanse(s, sizeof(*s));
    sl_free(s);
}

static uint8_t *out_reserve(sl_sasl_server *s, size_t n)
{
    if (n > s->out_cap) {
        wipe_free(s->out, s->out_cap);
        s->out = sl_malloc(n);
        s->out_cap = n;
    }
    return s->out;
}

/* A name as sent by the client, for a log line: quoted, bytes outside
 * printable ASCII (and '"', '\\') as \xNN, cut at 64 bytes. */
static void quote_name(const uint8_t *p, size_t len, char *buf, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < len && i < 64 && o + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            buf[o++] = (char)p[i];
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", p[i]);
    }
    if (len > 64 && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static sl_sasl_status fail(sl_sasl_server *s, char *why, size_t whylen,
                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static sl_sasl_status fail(sl_sasl_server *s, char *why, size_t whylen,
                           const char *fmt, ...)
{
    va_list ap;

    s->state = ST_FAILED;
    s->out_len = 0;
    if (s->auth_msg != NULL) {
        wipe_free(s->auth_msg, s->auth_len);
        s->auth_msg = NULL;
        s->auth_len = 0;
    }
    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return SL_SASL_FAILED;
}

/* A bounded reader over one message: every parser below reads through
 * it, so nothing reads past in_len. */
typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

static bool rd_eof(const rd *r)
{
    return r->pos >= r->len;
}

/* Consumes the literal lit if it is next. */
static bool rd_lit(rd *r, const char *lit)
{
    size_t n = strlen(lit);

    if (r->len - r->pos < n || memcmp(r->p + r->pos, lit, n) != 0)
        return false;
    r->pos += n;
    return true;
}

/* The bytes up to the next ',' (or the end), not consumed past it. */
static size_t rd_field(rd *r, const uint8_t **start)
{
    const uint8_t *c;

    *start = r->p + r->pos;
    c = memchr(*start, ',', r->len - r->pos);
    size_t n = c ? (size_t)(c - *start) : r->len - r->pos;
    r->pos += n;
    return n;
}

/* RFC 5802 saslname: "=2C" for ',' and "=3D" for '='; any other '=' and
 * NUL are invalid. Decodes p[0..n) into out (SL_SASL_MAX_NAME + 1 bytes,
 * NUL-terminated). Returns the decoded length, -1 for a bad escape or
 * NUL, -2 if too long. */
static long saslname_decode(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == 0)
            return -1;
        if (c == '=') {
            if (n - i < 3)
                return -1;
            if (p[i + 1] == '2' && p[i + 2] == 'C')
                c = ',';
            else if (p[i + 1] == '3' && p[i + 2] == 'D')
                c = '=';
            else
                return -1;
            i += 2;
        }
        if (o == SL_SASL_MAX_NAME)
            return -2;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

static bool printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return false;
    return true;
}

/* An extension "key=value" (Kafka: key [A-Za-z]+, value non-empty ASCII
 * without ',') starting at r->pos. Sets key/value spans. */
static bool read_extension(rd *r, const uint8_t **key, size_t *key_len,
                           const uint8_t **val, size_t *val_len)
{
    const uint8_t *f;
    size_t n = rd_field(r, &f), k = 0;

    while (k < n && ((f[k] >= 'a' && f[k] <= 'z') ||
                     (f[k] >= 'A' && f[k] <= 'Z')))
        k++;
    if (k == 0 || k == n || f[k] != '=' || k + 1 == n)
        return false;
    for (size_t i = k + 1; i < n; i++)
        if (f[i] == 0 || f[i] > 0x7f)
            return false;
    *key = f;
    *key_len = k;
    *val = f + k + 1;
    *val_len = n - k - 1;
    return true;
}

static sl_sasl_status scram_first(sl_sasl_server *s, const uint8_t *in,
                                  size_t in_len, const uint8_t **out,
                                  size_t *out_len, char *why, size_t whylen)
{
    rd r = {in, in_len, 0};
    char authzid[SL_SASL_MAX_NAME + 1] = "", user[SL_SASL_MAX_NAME + 1];
    char q[300];
    const uint8_t *f, *bare, *cnonce;
    size_t n, bare_len, cnonce_len, salt_b64;
    long ul;
    const scram_cred *c;
    const char *mname = mechs[s->mech].name;

    /* gs2-header: gs2-cbind-flag "," [ "a=" saslname ] "," */
    if (rd_lit(&r, "p="))
        return fail(s, why, whylen, "%s: channel binding requested "
                    "(p=...), which Sluice does not offer", mname);
    if (!rd_lit(&r, "n,") && !rd_lit(&r, "y,"))
        return fail(s, why, whylen, "%s: malformed client-first message "
                    "(expected gs2 header \"n,\" or \"y,\")", mname);
    if (rd_lit(&r, "a=")) {
        n = rd_field(&r, &f);
        ul = saslname_decode(f, n, authzid);
        if (ul <= 0)
            return fail(s, why, whylen, "%s: %s authorization id in the "
                        "client-first message", mname,
                        ul == -2 ? "over-long" : "invalid");
    }
    if (!rd_lit(&r, ","))
        return fail(s, why, whylen, "%s: malformed gs2 header in the "
                    "client-first message", mname);
    s->gs2_len = r.pos;
    if (s->gs2_len > sizeof(s->gs2))
        return fail(s, why, whylen, "%s: gs2 header too long", mname);
    memcpy(s->gs2, in, s->gs2_len);

    /* client-first-message-bare: [reserved-mext ","] username "," nonce
     * ["," extensions] */
    bare = in + r.pos;
    if (rd_lit(&r, "m="))
        return fail(s, why, whylen, "%s: mandatory extension (m=) not "
                    "supported", mname);
    if (!rd_lit(&r, "n="))
        return fail(s, why, whylen, "%s: malformed client-first message "
                    "(expected n=<user>)", mname);
    n = rd_field(&r, &f);
    ul = saslname_decode(f, n, user);
    if (ul == -1)
        return fail(s, why, whylen, "%s: invalid user name (bad '=' escape "
                    "or NUL; only =2C and =3D are allowed)", mname);
    if (ul == -2)
        return fail(s, why, whylen, "%s: user name longer than %d bytes",
                    mname, SL_SASL_MAX_NAME);
    if (ul == 0)
        return fail(s, why, whylen, "%s: empty user name", mname);
    if (!rd_lit(&r, ",r="))
        return fail(s, why, whylen, "%s: malformed client-first message "
                    "(expected r=<nonce> after the user name)", mname);
    cnonce_len = rd_field(&r, &cnonce);
    if (cnonce_len == 0 || !printable(cnonce, cnonce_len))
        return fail(s, why, whylen, "%s: invalid client nonce", mname);
    while (!rd_eof(&r)) {
        const uint8_t *k, *v;
        size_t kl, vl;
        r.pos++; /* the ',' */
        if (!read_extension(&r, &k, &kl, &v, &vl))
            return fail(s, why, whylen, "%s: malformed extension in the "
                        "client-first message", mname);
        if (kl == 9 && memcmp(k, "tokenauth", 9) == 0) {
            if (vl == 4 && strncasecmp((const char *)v, "true", 4) == 0)
                return fail(s, why, whylen, "%s: delegation token "
                            "authentication (tokenauth) is not served by "
                            "Sluice", mname);
            continue; /* tokenauth=false: an ordinary login, as Kafka */
        }
        quote_name(k, kl, q, sizeof(q));
        return fail(s, why, whylen, "%s: unsupported extension \"%s\"",
                    mname, q);
    }
    bare_len = in_len - (size_t)(bare - in);

    quote_name((const uint8_t *)user, (size_t)ul, q, sizeof(q));
    s->user = find_user(s->creds, user, (size_t)ul);
    if (s->user == NULL)
        return fail(s, why, whylen, "%s: unknown user \"%s\"", mname, q);
    if (authzid[0] != '\0' && strcmp(authzid, user) != 0) {
        char qa[300];
        quote_name((const uint8_t *)authzid, strlen(authzid), qa,
                   sizeof(qa));
        return fail(s, why, whylen, "%s: authorization id \"%s\" differs "
                    "from user \"%s\"", mname, qa, q);
    }
    c = &s->user->scram[s->mech];
    if (!c->set)
        return fail(s, why, whylen, "%s: user \"%s\" has no %s credential",
                    mname, q, mname);

    /* server-first-message: r=<cnonce><snonce>,s=<salt>,i=<iterations>;
     * AuthMessage so far: bare "," server-first. */
    salt_b64 = b64_len(c->salt_len);
    size_t sf_len = 2 + cnonce_len + strlen(s->nonce) + 3 + salt_b64 + 3 + 10;
    s->auth_msg = sl_malloc(bare_len + 1 + sf_len + 1);
    memcpy(s->auth_msg, bare, bare_len);
    s->auth_msg[bare_len] = ',';
    char *sf = s->auth_msg + bare_len + 1, *p = sf;
    p += sprintf(p, "r=");
    memcpy(p, cnonce, cnonce_len);
    p += cnonce_len;
    p += sprintf(p, "%s,s=", s->nonce);
    sl__sasl_b64_encode(c->salt, c->salt_len, p);
    p += salt_b64;
    p += sprintf(p, ",i=%u", (unsigned)c->iterations);
    s->auth_len = (size_t)(p - s->auth_msg);
    s->client_nonce_len = cnonce_len;
    s->sf_off = bare_len + 1;

    n = (size_t)(p - sf);
    memcpy(out_reserve(s, n), sf, n);
    s->out_len = n;
    *out = s->out;
    *out_len = n;
    s->state = ST_FINAL;
    return SL_SASL_CONTINUE;
}

static sl_sasl_status scram_final(sl_sasl_server *s, const uint8_t *in,
                                  size_t in_len, const uint8_t **out,
                                  size_t *out_len, char *why, size_t whylen)
{
    rd r = {in, in_len, 0};
    const scram_cred *c = &s->user->scram[s->mech];
    const char *mname = mechs[s->mech].name;
    size_t kl = mechs[s->mech].key_len, n, without_proof = 0;
    uint8_t cb[sizeof(s->gs2)], proof[SL_SASL_MAX_KEY];
    uint8_t sig[SL_SASL_MAX_KEY], key[SL_SASL_MAX_KEY];
    uint8_t stored[SL_SASL_MAX_KEY];
    const uint8_t *f;
    char q[300], *am;
    long got;
    bool ok;

    quote_name((const uint8_t *)s->user->name, strlen(s->user->name), q,
               sizeof(q));
    /* channel-binding "," nonce ["," extensions] "," proof */
    if (!rd_lit(&r, "c="))
        return fail(s, why, whylen, "%s: malformed client-final message "
                    "(expected c=)", mname);
    n = rd_field(&r, &f);
    got = b64_decode(f, n, cb, sizeof(cb));
    if (got < 0 || (size_t)got != s->gs2_len ||
        memcmp(cb, s->gs2, s->gs2_len) != 0)
        return fail(s, why, whylen, "%s: channel binding (c=) does not "
                    "match the gs2 header for user \"%s\"", mname, q);
    if (!rd_lit(&r, ",r="))
        return fail(s, why, whylen, "%s: malformed client-final message "
                    "(expected r=)", mname);
    n = rd_field(&r, &f);
    /* The combined nonce: in auth_msg's server-first part, after "r=". */
    if (n != s->client_nonce_len + strlen(s->nonce) ||
        memcmp(f, s->auth_msg + s->sf_off + 2, n) != 0)
        return fail(s, why, whylen, "%s: nonce mismatch in the client-final "
                    "message for user \"%s\"", mname, q);
    for (;;) {
        if (!rd_lit(&r, ","))
            return fail(s, why, whylen, "%s: malformed client-final message "
                        "(expected p=)", mname);
        if (rd_lit(&r, "p=")) {
            size_t pl = rd_field(&r, &f);
            if (!rd_eof(&r))
                return fail(s, why, whylen, "%s: data after the proof in "
                            "the client-final message", mname);
            without_proof = (size_t)(f - 3 - in);
            got = b64_decode(f, pl, proof, sizeof(proof));
            if (got < 0 || (size_t)got != kl)
                return fail(s, why, whylen, "%s: malformed proof for user "
                            "\"%s\"", mname, q);
            break;
        }
        {
            const uint8_t *k, *v;
            size_t kln, vl;
            char qk[300];
            if (!read_extension(&r, &k, &kln, &v, &vl))
                return fail(s, why, whylen, "%s: malformed client-final "
                            "message", mname);
            quote_name(k, kln, qk, sizeof(qk));
            return fail(s, why, whylen, "%s: unsupported extension \"%s\" "
                        "in the client-final message", mname, qk);
        }
    }

    /* AuthMessage = bare "," server-first "," client-final-without-proof */
    am = sl_malloc(s->auth_len + 1 + without_proof);
    memcpy(am, s->auth_msg, s->auth_len);
    am[s->auth_len] = ',';
    memcpy(am + s->auth_len + 1, in, without_proof);
    n = s->auth_len + 1 + without_proof;

    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(ClientKey)
     * must be StoredKey. */
    ok = hmac(s->mech, c->stored_key, kl, am, n, sig);
    for (size_t i = 0; i < kl; i++)
        key[i] = proof[i] ^ sig[i];
    ok = ok && digest(s->mech, key, kl, stored) &&
         CRYPTO_memcmp(stored, c->stored_key, kl) == 0;
    if (ok)
        ok = hmac(s->mech, c->server_key, kl, am, n, sig);
    OPENSSL_cleanse(am, n);
    sl_free(am);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(proof, sizeof(proof));
    OPENSSL_cleanse(stored, sizeof(stored));
    if (!ok) {
        OPENSSL_cleanse(sig, sizeof(sig));
        return fail(s, why, whylen, "%s: invalid proof for user \"%s\" "
                    "(wrong password)", mname, q);
    }

    /* server-final-message: v=<ServerSignature> */
    n = 2 + b64_len(kl);
    uint8_t *o = out_reserve(s, n + 1);
    memcpy(o, "v=", 2);
    sl__sasl_b64_encode(sig, kl, (char *)o + 2);
    OPENSSL_cleanse(sig, sizeof(sig));
    s->out_len = n;
    *out = s->out;
    *out_len = n;
    wipe_free(s->auth_msg, s->auth_len);
    s->auth_msg = NULL;
    s->auth_len = 0;
    s->state = ST_DONE;
    return SL_SASL_DONE;
}

/* PLAIN (RFC 4616): authzid NUL authcid NUL passwd, as Kafka's
 * PlainSaslServer reads it: exactly two NULs, user and password
 * non-empty, an authzid other than the user refused. */
static sl_sasl_status plain_step(sl_sasl_server *s, const uint8_t *in,
                                 size_t in_len, const uint8_t **out,
                                 size_t *out_len, char *why, size_t whylen)
{
    const uint8_t *nul1, *nul2, *user, *pw;
    size_t authz_len, user_len, pw_len, kl;
    uint8_t stored[SL_SASL_MAX_KEY], server[SL_SASL_MAX_KEY];
    const scram_cred *c;
    sl_sasl_mech m;
    char q[300];
    int rc;
    bool ok;

    nul1 = in_len ? memchr(in, 0, in_len) : NULL;
    nul2 = nul1 ? memchr(nul1 + 1, 0, in_len - (size_t)(nul1 + 1 - in))
                : NULL;
    if (nul2 == NULL ||
        memchr(nul2 + 1, 0, in_len - (size_t)(nul2 + 1 - in)) != NULL)
        return fail(s, why, whylen, "PLAIN: malformed message (expected "
                    "authzid NUL user NUL password)");
    authz_len = (size_t)(nul1 - in);
    user = nul1 + 1;
    user_len = (size_t)(nul2 - user);
    pw = nul2 + 1;
    pw_len = in_len - (size_t)(pw - in);
    if (user_len == 0)
        return fail(s, why, whylen, "PLAIN: empty user name");
    if (user_len > SL_SASL_MAX_NAME)
        return fail(s, why, whylen, "PLAIN: user name longer than %d bytes",
                    SL_SASL_MAX_NAME);
    quote_name(user, user_len, q, sizeof(q));
    if (pw_len == 0)
        return fail(s, why, whylen, "PLAIN: empty password for user \"%s\"",
                    q);
    if (authz_len != 0 &&
        (authz_len != user_len || memcmp(in, user, user_len) != 0)) {
        char qa[300];
        quote_name(in, authz_len, qa, sizeof(qa));
        return fail(s, why, whylen, "PLAIN: authorization id \"%s\" differs "
                    "from user \"%s\"", qa, q);
    }
    s->user = find_user(s->creds, (const char *)user, user_len);
    if (s->user == NULL)
        return fail(s, why, whylen, "PLAIN: unknown user \"%s\"", q);
    m = plain_mech(s->user);
    c = &s->user->scram[m];
    rc = sl_sasl_scram_derive(m, (const char *)pw, pw_len, c->salt,
                              c->salt_len, c->iterations, stored, server,
                              &kl);
    ok = rc == 0 && CRYPTO_memcmp(stored, c->stored_key, kl) == 0;
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server, sizeof(server));
    if (!ok)
        return fail(s, why, whylen, "PLAIN: invalid password for user "
                    "\"%s\"", q);
    s->out_len = 0;
    *out = out_reserve(s, 1);
    *out_len = 0;
    s->state = ST_DONE;
    return SL_SASL_DONE;
}

sl_sasl_status sl_sasl_server_step(sl_sasl_server *s, const uint8_t *in,
                                   size_t in_len, const uint8_t **out,
                                   size_t *out_len, char *why, size_t whylen)
{
    static const uint8_t empty[1];
    sl_sasl_status st;

    *out = out_reserve(s, 1);
    *out_len = 0;
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (in == NULL)
        in = empty, in_len = 0;
    if (s->state == ST_DONE || s->state == ST_FAILED)
        return fail(s, why, whylen, "%s: message after the exchange %s",
                    mechs[s->mech].name,
                    s->state == ST_DONE ? "completed" : "failed");
    if (in_len > SL_SASL_MAX_MSG)
        return fail(s, why, whylen, "%s: client message of %zu bytes "
                    "(limit %d)", mechs[s->mech].name, in_len,
                    SL_SASL_MAX_MSG);
    if (s->mech == SL_SASL_PLAIN)
        st = plain_step(s, in, in_len, out, out_len, why, whylen);
    else if (s->state == ST_FIRST)
        st = scram_first(s, in, in_len, out, out_len, why, whylen);
    else
        st = scram_final(s, in, in_len, out, out_len, why, whylen);
    if (st == SL_SASL_FAILED) {
        *out = s->out;
        *out_len = 0;
    }
    return st;
}
