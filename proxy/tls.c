/*
 * TLS over memory BIOs (see sluice/tls.h). Loop thread only.
 */
#include "sluice/tls.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sluice/common.h"

/* OpenSSL could not allocate: fatal, as sl_malloc failing is. */
static void tls_oom(void)
{
    fprintf(stderr, "sluice: fatal: out of memory in OpenSSL\n");
    abort();
}

/* ---- principal mapping rules ------------------------------------------ */

#define MAX_RULES 64
#define MAX_GROUPS 10

typedef struct rule {
    bool is_default;
    regex_t re;
    char *replacement;
    char case_fold; /* 0, 'L' or 'U' */
} rule;

struct sl_tls_rules {
    rule r[MAX_RULES];
    size_t n;
};

void sl_tls_rules_free(sl_tls_rules *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++) {
        if (!rs->r[i].is_default)
            regfree(&rs->r[i].re);
        sl_free(rs->r[i].replacement);
    }
    sl_free(rs);
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    return p;
}

int sl_tls_rules_parse(const char *text, sl_tls_rules **out, char *err,
                       size_t errlen)
{
    sl_tls_rules *rs = sl_calloc(1, sizeof(*rs));
    const char *p = skip_space(text);

    while (*p != '\0') {
        rule *r;
        if (rs->n == MAX_RULES) {
            snprintf(err, errlen, "more than %d rules", MAX_RULES);
            goto fail;
        }
        r = &rs->r[rs->n];
        if (strncmp(p, "DEFAULT", 7) == 0) {
            r->is_default = true;
            rs->n++;
            p += 7;
        } else if (strncmp(p, "RULE:", 5) == 0) {
            const char *pat = p + 5, *slash1, *rep, *slash2;
            char *pattern;
            int rc;
            slash1 = strchr(pat, '/');
            if (slash1 == NULL || slash1 == pat) {
                snprintf(err, errlen,
                         "rule \"%.40s\": expected RULE:pattern/replacement/",
                         p);
                goto fail;
            }
            rep = slash1 + 1;
            slash2 = strchr(rep, '/');
            if (slash2 == NULL) {
                snprintf(err, errlen,
                         "rule \"%.40s\": expected RULE:pattern/replacement/",
                         p);
                goto fail;
            }
            /* Anchored: the pattern must match the whole subject, as
             * Java's Matcher.matches(). */
            pattern = sl_malloc((size_t)(slash1 - pat) + 5);
            snprintf(pattern, (size_t)(slash1 - pat) + 5, "^(%.*s)$",
                     (int)(slash1 - pat), pat);
            rc = regcomp(&r->re, pattern, REG_EXTENDED);
            sl_free(pattern);
            if (rc != 0) {
                char msg[128];
                regerror(rc, &r->re, msg, sizeof(msg));
                snprintf(err, errlen, "rule pattern \"%.*s\": %s",
                         (int)(slash1 - pat), pat, msg);
                goto fail;
            }
            if (r->re.re_nsub > MAX_GROUPS) {
                regfree(&r->re);
                snprintf(err, errlen, "rule pattern \"%.*s\": more than %d "
                         "groups", (int)(slash1 - pat), pat, MAX_GROUPS - 1);
                goto fail;
            }
            r->replacement = sl_strndup(rep, (size_t)(slash2 - rep));
            rs->n++;
            p = slash2 + 1;
            if (*p == 'L' || *p == 'U')
                r->case_fold = *p++;
        } else {
            snprintf(err, errlen,
                     "expected RULE:pattern/replacement/[LU] or DEFAULT at "
                     "\"%.40s\"", p);
            goto fail;
        }
        p = skip_space(p);
        if (*p == ',')
            p = skip_space(p + 1);
        else if (*p != '\0') {
            snprintf(err, errlen, "expected \",\" between rules at \"%.40s\"",
                     p);
            goto fail;
        }
    }
    if (rs->n == 0) {
        snprintf(err, errlen, "no rules (DEFAULT maps a subject to itself)");
        goto fail;
    }
    *out = rs;
    return 0;

fail:
    sl_tls_rules_free(rs);
    return SL_E_CONFIG;
}

int sl_tls_rules_apply(const sl_tls_rules *rs, const char *subject, char *out,
                       size_t outlen)
{
    size_t slen = strlen(subject);

    for (size_t i = 0; i < rs->n; i++) {
        const rule *r = &rs->r[i];
        regmatch_t m[MAX_GROUPS + 1];
        size_t o = 0;

        if (r->is_default) {
            if (slen >= outlen)
                return -1;
            memcpy(out, subject, slen + 1);
            return 0;
        }
        if (regexec(&r->re, subject, MAX_GROUPS + 1, m, 0) != 0)
            continue;
        /* Group 1 is the anchoring group around the whole pattern: the
         * user's $0 is m[1], $k is m[k + 1]. */
        for (const char *q = r->replacement; *q; q++) {
            const char *src = q;
            size_t n = 1;
            if (*q == '\\' && q[1] != '\0') {
                src = ++q;
            } else if (*q == '$' && isdigit((unsigned char)q[1])) {
                size_t g = (size_t)(q[1] - '0') + 1;
                q++;
                if (g > r->re.re_nsub || m[g].rm_so < 0) {
                    n = 0;
                } else {
                    src = subject + m[g].rm_so;
                    n = (size_t)(m[g].rm_eo - m[g].rm_so);
                }
            }
            if (o + n >= outlen)
                return -1;
            memcpy(out + o, src, n);
            o += n;
        }
        out[o] = '\0';
        for (size_t k = 0; k < o && r->case_fold; k++)
            out[k] = (char)(r->case_fold == 'L'
                                ? tolower((unsigned char)out[k])
                                : toupper((unsigned char)out[k]));
        return 0;
    }
    return -1;
}

/* ---- contexts ------------------------------------------------------------ */

struct sl_tls_ctx {
    SSL_CTX *ssl;
    bool server;         /* accepts; else connects (tests, benchmarks) */
    sl_tls_rules *rules; /* server contexts */
    size_t refs;
    char desc[256];
};

/* The first queued OpenSSL error as text ("" if none); clears the queue. */
static const char *ssl_error(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    buf[0] = '\0';
    if (e != 0)
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
    return buf;
}

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    const char *pw = u;
    size_t n;
    (void)rwflag;
    if (pw == NULL)
        return 0;
    n = strlen(pw);
    if (n > (size_t)size)
        return 0;
    memcpy(buf, pw, n);
    return (int)n;
}

static void describe_cert(sl_tls_ctx *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx->ssl);
    char subj[160] = "?", until[32] = "?";
    BIO *b;

    if (x == NULL)
        return;
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
    b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) > 0) {
        int n = BIO_read(b, until, sizeof(until) - 1);
        until[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    snprintf(ctx->desc, sizeof(ctx->desc), "%s, valid until %s", subj, until);
}

int sl_tls_ctx_new(const sl_config *cfg, sl_tls_ctx **out, char *err,
                   size_t errlen)
{
    sl_tls_ctx *ctx;
    char e[256];
    int mode;

    if (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL) {
        snprintf(err, errlen, "tls.listen needs tls.cert_file and "
                              "tls.key_file");
        return SL_E_CONFIG;
    }
    if (cfg->tls_client_auth != SL_TLS_CLIENT_AUTH_NONE &&
        cfg->tls_ca_file == NULL) {
        snprintf(err, errlen, "tls.client_auth %s needs tls.ca_file (the CA "
                              "client certificates chain to)",
                 cfg->tls_client_auth == SL_TLS_CLIENT_AUTH_REQUIRED
                     ? "required"
                     : "requested");
        return SL_E_CONFIG;
    }
    ctx = sl_calloc(1, sizeof(*ctx));
    ctx->refs = 1;
    ctx->server = true;
    if (sl_tls_rules_parse(cfg->tls_principal_mapping_rules
                               ? cfg->tls_principal_mapping_rules
                               : "DEFAULT",
                           &ctx->rules, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "tls.principal_mapping_rules: %s", e);
        goto fail;
    }
    ERR_clear_error();
    ctx->ssl = SSL_CTX_new(TLS_server_method());
    if (ctx->ssl == NULL) {
        snprintf(err, errlen, "TLS: %s", ssl_error(e, sizeof(e)));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx->ssl, cfg->tls_min_version == 1
                                                ? TLS1_3_VERSION
                                                : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx->ssl, SSL_OP_NO_COMPRESSION |
                                      SSL_OP_NO_RENEGOTIATION |
                                      SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their read and write buffers back. */
    SSL_CTX_set_mode(ctx->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (cfg->tls_ciphers != NULL &&
        SSL_CTX_set_cipher_list(ctx->ssl, cfg->tls_ciphers) != 1) {
        snprintf(err, errlen, "tls.ciphers \"%s\": %s", cfg->tls_ciphers,
                 ssl_error(e, sizeof(e)));
        goto fail;
    }
    if (cfg->tls_ciphersuites != NULL &&
        SSL_CTX_set_ciphersuites(ctx->ssl, cfg->tls_ciphersuites) != 1) {
        snprintf(err, errlen, "tls.ciphersuites \"%s\": %s",
                 cfg->tls_ciphersuites, ssl_error(e, sizeof(e)));
        goto fail;
    }
    SSL_CTX_set_default_passwd_cb(ctx->ssl, pass_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx->ssl, cfg->tls_key_password);
    if (SSL_CTX_use_certificate_chain_file(ctx->ssl, cfg->tls_cert_file) !=
        1) {
        snprintf(err, errlen, "tls.cert_file %s: %s", cfg->tls_cert_file,
                 ssl_error(e, sizeof(e)));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx->ssl, cfg->tls_key_file,
                                    SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "tls.key_file %s: %s", cfg->tls_key_file,
                 ssl_error(e, sizeof(e)));
        goto fail;
    }
    /* The password is needed only while loading. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx->ssl, NULL);
    if (SSL_CTX_check_private_key(ctx->ssl) != 1) {
        snprintf(err, errlen, "tls.key_file %s does not belong to "
                 "tls.cert_file %s: %s", cfg->tls_key_file,
                 cfg->tls_cert_file, ssl_error(e, sizeof(e)));
        goto fail;
    }
    if (cfg->tls_ca_file != NULL) {
        STACK_OF(X509_NAME) *names;
        if (SSL_CTX_load_verify_locations(ctx->ssl, cfg->tls_ca_file, NULL) !=
            1) {
            snprintf(err, errlen, "tls.ca_file %s: %s", cfg->tls_ca_file,
                     ssl_error(e, sizeof(e)));
            goto fail;
        }
        names = SSL_load_client_CA_file(cfg->tls_ca_file);
        if (names != NULL)
            SSL_CTX_set_client_CA_list(ctx->ssl, names);
    }
    mode = SSL_VERIFY_NONE;
    if (cfg->tls_client_auth == SL_TLS_CLIENT_AUTH_REQUESTED)
        mode = SSL_VERIFY_PEER;
    else if (cfg->tls_client_auth == SL_TLS_CLIENT_AUTH_REQUIRED)
        mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx->ssl, mode, NULL);
    /* Resumed sessions keep the verified peer; the id context scopes them
     * to this listener's settings. */
    SSL_CTX_set_session_id_context(ctx->ssl, (const unsigned char *)"sluice",
                                   6);
    describe_cert(ctx);
    *out = ctx;
    return 0;

fail:
    sl_tls_ctx_unref(ctx);
    return SL_E_CONFIG;
}

int sl_tls_ctx_new_client(const char *ca_file, const char *cert_file,
                          const char *key_file, sl_tls_ctx **out, char *err,
                          size_t errlen)
{
    sl_tls_ctx *ctx = sl_calloc(1, sizeof(*ctx));
    char e[256];

    ctx->refs = 1;
    ERR_clear_error();
    ctx->ssl = SSL_CTX_new(TLS_client_method());
    if (ctx->ssl == NULL)
        goto fail;
    SSL_CTX_set_mode(ctx->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx->ssl, ca_file, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_PEER, NULL);
    }
    if (cert_file != NULL &&
        (SSL_CTX_use_certificate_chain_file(ctx->ssl, cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx->ssl, key_file, SSL_FILETYPE_PEM) !=
             1))
        goto fail;
    *out = ctx;
    return 0;

fail:
    snprintf(err, errlen, "TLS client context: %s", ssl_error(e, sizeof(e)));
    sl_tls_ctx_unref(ctx);
    return SL_E_CONFIG;
}

sl_tls_ctx *sl_tls_ctx_ref(sl_tls_ctx *ctx)
{
    ctx->refs++;
    return ctx;
}

void sl_tls_ctx_unref(sl_tls_ctx *ctx)
{
    if (ctx == NULL || --ctx->refs > 0)
        return;
    SSL_CTX_free(ctx->ssl);
    sl_tls_rules_free(ctx->rules);
    sl_free(ctx);
}

const char *sl_tls_ctx_describe(const sl_tls_ctx *ctx)
{
    return ctx->desc;
}

/* ---- connections ---------------------------------------------------------- */

struct sl_tls_conn {
    sl_tls_ctx *ctx; /* one reference */
    SSL *ssl;
    BIO *in, *out;   /* owned by ssl: ciphertext from and to the peer */
    bool saw_first;  /* the first byte was looked at */
    bool not_tls;    /* it was no TLS handshake record */
    uint8_t first[4];
    size_t n_first;
    char desc[96];
};

sl_tls_conn *sl_tls_conn_new(sl_tls_ctx *ctx)
{
    sl_tls_conn *t = sl_calloc(1, sizeof(*t));

    t->ctx = sl_tls_ctx_ref(ctx);
    t->ssl = SSL_new(ctx->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL)
        tls_oom();
    /* An empty memory BIO means "try again", not end of file. */
    BIO_set_mem_eof_return(t->in, -1);
    BIO_set_mem_eof_return(t->out, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    if (ctx->server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    return t;
}

void sl_tls_conn_free(sl_tls_conn *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    sl_tls_ctx_unref(t->ctx);
    sl_free(t);
}

void sl_tls_conn_feed(sl_tls_conn *t, const uint8_t *p, size_t n)
{
    if (!t->saw_first && n > 0 && t->ctx->server) {
        /* A TLS connection opens with a handshake record (type 22). */
        size_t take = SL_MIN(n, sizeof(t->first) - t->n_first);
        memcpy(t->first + t->n_first, p, take);
        t->n_first += take;
        t->saw_first = true;
        t->not_tls = t->first[0] != 22;
    }
    while (n > 0) {
        int chunk = (int)SL_MIN(n, (size_t)1 << 30);
        int w = BIO_write(t->in, p, chunk);
        if (w <= 0)
            tls_oom();
        p += w;
        n -= (size_t)w;
    }
}

ssize_t sl_tls_conn_read(sl_tls_conn *t, uint8_t *buf, size_t cap, char *why,
                         size_t whylen)
{
    int n, e;
    char reason[256];

    if (t->not_tls) {
        uint32_t size = ((uint32_t)t->first[0] << 24) |
                        ((uint32_t)t->first[1] << 16) |
                        ((uint32_t)t->first[2] << 8) | t->first[3];
        if (t->n_first == 4 && t->first[0] == 0 && size >= 8 &&
            size < (1u << 24))
            snprintf(why, whylen, "TLS handshake failed: the client sent "
                     "plaintext (a Kafka request of %u bytes): a client "
                     "without security.protocol SSL on a TLS listener", size);
        else
            snprintf(why, whylen, "TLS handshake failed: the client sent no "
                     "TLS handshake (first byte 0x%02x)", t->first[0]);
        return SL_TLS_ERROR;
    }
    ERR_clear_error();
    n = SSL_read(t->ssl, buf, (int)SL_MIN(cap, (size_t)INT32_MAX));
    if (n > 0)
        return n;
    e = SSL_get_error(t->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return SL_TLS_CLOSED;
    default:
        ssl_error(reason, sizeof(reason));
        if (!SSL_is_init_finished(t->ssl)) {
            long v = SSL_get_verify_result(t->ssl);
            if (v != X509_V_OK)
                snprintf(why, whylen, "TLS handshake failed: client "
                         "certificate: %s", X509_verify_cert_error_string(v));
            else
                snprintf(why, whylen, "TLS handshake failed: %s",
                         reason[0] ? reason : "protocol error");
        } else {
            snprintf(why, whylen, "TLS error: %s",
                     reason[0] ? reason : "protocol error");
        }
        return SL_TLS_ERROR;
    }
}

int sl_tls_conn_write(sl_tls_conn *t, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int w;
        ERR_clear_error();
        w = SSL_write(t->ssl, p, (int)SL_MIN(n, (size_t)1 << 30));
        if (w <= 0) {
            ERR_clear_error();
            return SL_TLS_ERROR;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

uint8_t *sl_tls_conn_take_output(sl_tls_conn *t, size_t *len)
{
    size_t n = BIO_ctrl_pending(t->out);
    uint8_t *buf;
    int r;

    if (n == 0)
        return NULL;
    buf = sl_malloc(n);
    r = BIO_read(t->out, buf, (int)n);
    if (r <= 0) {
        sl_free(buf);
        return NULL;
    }
    *len = (size_t)r;
    return buf;
}

void sl_tls_conn_connect(sl_tls_conn *t)
{
    ERR_clear_error();
    (void)SSL_do_handshake(t->ssl);
    ERR_clear_error();
}

bool sl_tls_conn_established(const sl_tls_conn *t)
{
    return SSL_is_init_finished(t->ssl);
}

const char *sl_tls_conn_describe(sl_tls_conn *t)
{
    if (t->desc[0] == '\0')
        snprintf(t->desc, sizeof(t->desc), "%s %s", SSL_get_version(t->ssl),
                 SSL_get_cipher_name(t->ssl));
    return t->desc;
}

int sl_tls_conn_principal(sl_tls_conn *t, char *out, size_t outlen,
                          char *why, size_t whylen)
{
    X509 *peer = SSL_get1_peer_certificate(t->ssl);
    char subject[1024], mapped[512];
    BIO *b;
    int n;

    if (peer == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK ||
        !t->ctx->server) {
        X509_free(peer);
        return 0;
    }
    /* RFC 2253, as Java's X500Principal.getName() gives it to Kafka's
     * mapping rules: most specific first, "CN=alice,OU=Apps,O=Example". */
    b = BIO_new(BIO_s_mem());
    if (b == NULL)
        tls_oom();
    X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    n = BIO_read(b, subject, sizeof(subject) - 1);
    subject[n > 0 ? n : 0] = '\0';
    BIO_free(b);
    X509_free(peer);
    if (sl_tls_rules_apply(t->ctx->rules, subject, mapped, sizeof(mapped)) !=
        0) {
        snprintf(why, whylen, "no tls.principal_mapping_rules rule applies "
                 "to client certificate subject \"%.200s\"", subject);
        return -1;
    }
    snprintf(out, outlen, "User:%s", mapped);
    return 1;
}
