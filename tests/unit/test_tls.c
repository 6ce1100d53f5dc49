/*
 * TLS over memory BIOs (proxy/tls.c): principal mapping rules, and whole
 * handshakes between a server and a client end in memory, with a CA and
 * certificates made here (nothing on disk but a temporary directory).
 */
#include "sluice/tls.h"

#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "sl_test.h"

/* ---- mapping rules -------------------------------------------------------- */

static int map(const char *rules, const char *subject, char *out, size_t n)
{
    sl_tls_rules *r;
    char err[256];
    int rc;

    if (sl_tls_rules_parse(rules, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "  parse \"%s\": %s\n", rules, err);
        return -2;
    }
    rc = sl_tls_rules_apply(r, subject, out, n);
    sl_tls_rules_free(r);
    return rc;
}

static void test_rules_default(void)
{
    char out[128];
    ASSERT_EQ(map("DEFAULT", "CN=alice,OU=Apps,O=Example", out, sizeof(out)),
              0);
    ASSERT_STREQ(out, "CN=alice,OU=Apps,O=Example");
}

static void test_rules_kafka_examples(void)
{
    char out[128];
    /* Kafka's documented examples, in POSIX ERE ([^,]* for .*?). */
    const char *rules =
        "RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/,"
        "RULE:^CN=([^,]*),OU=([^,]*),O=([^,]*),L=([^,]*),ST=([^,]*),C=(.*)$/"
        "$1@$2/L,"
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,"
        "DEFAULT";
    ASSERT_EQ(map(rules, "CN=kafka-svc,OU=ServiceUsers,O=Org", out,
                  sizeof(out)), 0);
    ASSERT_STREQ(out, "kafka-svc");
    ASSERT_EQ(map(rules, "CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa "
                         "Clara,ST=CA,C=US", out, sizeof(out)), 0);
    ASSERT_STREQ(out, "duke@javasoft");
    ASSERT_EQ(map(rules, "OU=x,cn=bob.smith,O=y", out, sizeof(out)), 0);
    ASSERT_STREQ(out, "BOB.SMITH");
    ASSERT_EQ(map(rules, "O=nobody", out, sizeof(out)), 0);
    ASSERT_STREQ(out, "O=nobody");
}

static void test_rules_no_match_and_errors(void)
{
    char out[16], err[256];
    sl_tls_rules *r;

    /* The whole subject must match; no DEFAULT: no principal. */
    ASSERT_EQ(map("RULE:CN=([^,]*)/$1/", "CN=alice,O=x", out, sizeof(out)),
              -1);
    ASSERT_EQ(map("RULE:^CN=([^,]*),O=x$/$1/", "CN=alice,O=x", out,
                  sizeof(out)), 0);
    ASSERT_STREQ(out, "alice");
    /* Too long for the output: refused, not truncated. */
    ASSERT_EQ(map("DEFAULT", "CN=a-very-long-subject-name", out, sizeof(out)),
              -1);
    /* Escapes and groups that did not take part. */
    ASSERT_EQ(map("RULE:^CN=(a)(b)?$/\\$$1$2$9/", "CN=a", out, sizeof(out)),
              0);
    ASSERT_STREQ(out, "$a");
    ASSERT_EQ(sl_tls_rules_parse("", &r, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_EQ(sl_tls_rules_parse("RULE:abc", &r, err, sizeof(err)),
              SL_E_CONFIG);
    ASSERT_EQ(sl_tls_rules_parse("RULE:(/x/", &r, err, sizeof(err)),
              SL_E_CONFIG);
    ASSERT_EQ(sl_tls_rules_parse("DEFAULT DEFAULT", &r, err, sizeof(err)),
              SL_E_CONFIG);
    ASSERT_EQ(sl_tls_rules_parse("RULES:x/y/", &r, err, sizeof(err)),
              SL_E_CONFIG);
    ASSERT_EQ(sl_tls_rules_parse(" RULE:^(.*)$/$1/L , DEFAULT ", &r, err,
                                 sizeof(err)), 0);
    sl_tls_rules_free(r);
}

/* ---- certificates ---------------------------------------------------------- */

static char dir[] = "/tmp/sl_test_tls_XXXXXX";
static char path_buf[8][256];

static const char *path(int i, const char *name)
{
    snprintf(path_buf[i], sizeof(path_buf[i]), "%s/%s", dir, name);
    return path_buf[i];
}

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

/* A certificate for subject (comma-separated RFC 2253, most specific
 * first) signed by ca/ca_key (self-signed when NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *ou,
                       X509 *ca, EVP_PKEY *ca_key, bool is_ca,
                       const char *san)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    static long serial = 1;
    X509V3_CTX v3;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    /* Added in ASN.1 order (least specific first): O, OU, CN. */
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               (const unsigned char *)"Sluice", -1, -1, 0);
    if (ou)
        X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
                                   (const unsigned char *)ou, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
    X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
    {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(
            NULL, &v3, NID_basic_constraints,
            is_ca ? "critical,CA:TRUE" : "CA:FALSE");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (san) {
        X509_EXTENSION *e =
            X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, ca_key ? ca_key : key, EVP_sha256());
    X509_NAME_free(name);
    return x;
}

static void write_pem(const char *file, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(file, "w");
    if (x)
        PEM_write_X509(f, x);
    if (k)
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void make_pki(void)
{
    EVP_PKEY *ca_key = new_key(), *srv_key = new_key(), *cli_key = new_key(),
             *rogue_key = new_key();
    X509 *ca = make_cert(ca_key, "Test CA", NULL, NULL, NULL, true, NULL);
    X509 *rogue = make_cert(rogue_key, "Rogue CA", NULL, NULL, NULL, true,
                            NULL);
    X509 *srv = make_cert(srv_key, "localhost", NULL, ca, ca_key, false,
                          "DNS:localhost,IP:127.0.0.1");
    X509 *cli = make_cert(cli_key, "alice", "ServiceUsers", ca, ca_key, false,
                          NULL);
    X509 *cli2 = make_cert(cli_key, "mallory", NULL, rogue, rogue_key, false,
                           NULL);

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    write_pem(path(0, "ca.pem"), ca, NULL);
    write_pem(path(1, "server.pem"), srv, NULL);
    write_pem(path(2, "server.key"), NULL, srv_key);
    write_pem(path(3, "client.pem"), cli, NULL);
    write_pem(path(4, "client.key"), NULL, cli_key);
    write_pem(path(5, "rogue-client.pem"), cli2, NULL);
    X509_free(ca);
    X509_free(rogue);
    X509_free(srv);
    X509_free(cli);
    X509_free(cli2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(cli_key);
    EVP_PKEY_free(rogue_key);
}

static void remove_pki(void)
{
    const char *names[] = {"ca.pem", "server.pem", "server.key",
                           "client.pem", "client.key", "rogue-client.pem"};
    for (size_t i = 0; i < SL_ARRAY_SIZE(names); i++)
        unlink(path(7, names[i]));
    rmdir(dir);
}

static void server_config(sl_config *cfg, sl_tls_client_auth auth,
                          const char *rules)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->tls_cert_file = (char *)path_buf[1];
    cfg->tls_key_file = (char *)path_buf[2];
    cfg->tls_ca_file = (char *)path_buf[0];
    cfg->tls_client_auth = auth;
    cfg->tls_principal_mapping_rules = (char *)rules;
}

/* ---- handshakes in memory ------------------------------------------------ */

/* Moves bytes both ways until neither end has output. Returns the server's
 * last read result (plaintext bytes land in got). */
static ssize_t pump(sl_tls_conn *cli, sl_tls_conn *srv, uint8_t *got,
                    size_t cap, char *why, size_t whylen)
{
    ssize_t last = 0;
    for (int round = 0; round < 20; round++) {
        size_t n;
        uint8_t *b;
        bool moved = false;
        uint8_t sink[4096];
        char cwhy[256];

        if ((b = sl_tls_conn_take_output(cli, &n)) != NULL) {
            sl_tls_conn_feed(srv, b, n);
            sl_free(b);
            moved = true;
        }
        last = sl_tls_conn_read(srv, got, cap, why, whylen);
        if (last < 0)
            return last;
        if ((b = sl_tls_conn_take_output(srv, &n)) != NULL) {
            sl_tls_conn_feed(cli, b, n);
            sl_free(b);
            moved = true;
        }
        (void)sl_tls_conn_read(cli, sink, sizeof(sink), cwhy, sizeof(cwhy));
        if (!moved && last != 0)
            return last;
        if (!moved)
            return last;
    }
    return last;
}

static void handshake(sl_tls_client_auth auth, const char *rules,
                      const char *cert, const char *key, int want_pr,
                      const char *want_principal, bool want_fail)
{
    sl_config cfg;
    sl_tls_ctx *sctx = NULL, *cctx = NULL;
    sl_tls_conn *s, *c;
    char err[512], why[512] = "", pr[256];
    uint8_t buf[256];
    ssize_t n;
    int rc;

    server_config(&cfg, auth, rules);
    rc = sl_tls_ctx_new(&cfg, &sctx, err, sizeof(err));
    ASSERT_EQ(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    ASSERT_EQ(sl_tls_ctx_new_client(path_buf[0], cert, key, &cctx, err,
                                    sizeof(err)), 0);
    s = sl_tls_conn_new(sctx);
    c = sl_tls_conn_new(cctx);
    sl_tls_ctx_unref(sctx); /* the connections hold theirs */
    sl_tls_ctx_unref(cctx);
    sl_tls_conn_connect(c);
    n = pump(c, s, buf, sizeof(buf), why, sizeof(why));
    if (want_fail) {
        ASSERT_EQ(n, SL_TLS_ERROR);
        ASSERT_TRUE(strstr(why, "TLS handshake failed") != NULL);
    } else {
        ASSERT_EQ(n, 0);
        ASSERT_TRUE(sl_tls_conn_established(s));
        ASSERT_TRUE(sl_tls_conn_established(c));
        ASSERT_TRUE(strstr(sl_tls_conn_describe(s), "TLSv1.3") != NULL);
        rc = sl_tls_conn_principal(s, pr, sizeof(pr), why, sizeof(why));
        ASSERT_EQ(rc, want_pr);
        if (rc == 1)
            ASSERT_STREQ(pr, want_principal);
        /* Application data both ways, including a 100 KiB message. */
        if (rc >= 0) {
            static uint8_t big[100 * 1024], back[100 * 1024];
            size_t total = 0;
            for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t)(i * 7);
            ASSERT_EQ(sl_tls_conn_write(c, big, sizeof(big)), 0);
            {
                size_t len;
                uint8_t *b = sl_tls_conn_take_output(c, &len);
                ASSERT_TRUE(b != NULL && len > sizeof(big));
                sl_tls_conn_feed(s, b, len);
                sl_free(b);
            }
            while (total < sizeof(back)) {
                n = sl_tls_conn_read(s, back + total, sizeof(back) - total,
                                     why, sizeof(why));
                if (n <= 0)
                    break;
                total += (size_t)n;
            }
            ASSERT_EQ(total, sizeof(big));
            ASSERT_TRUE(memcmp(big, back, sizeof(big)) == 0);
        }
    }
    sl_tls_conn_free(s);
    sl_tls_conn_free(c);
}

static void test_handshake_no_client_cert(void)
{
    handshake(SL_TLS_CLIENT_AUTH_NONE, "DEFAULT", NULL, NULL, 0, NULL, false);
    handshake(SL_TLS_CLIENT_AUTH_REQUESTED, "DEFAULT", NULL, NULL, 0, NULL,
              false);
}

static void test_handshake_client_cert_principal(void)
{
    handshake(SL_TLS_CLIENT_AUTH_REQUIRED, "DEFAULT", path_buf[3],
              path_buf[4], 1, "User:CN=alice,OU=ServiceUsers,O=Sluice",
              false);
    handshake(SL_TLS_CLIENT_AUTH_REQUESTED,
              "RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/", path_buf[3],
              path_buf[4], 1, "User:alice", false);
    /* Not asked for: the certificate is not looked at. */
    handshake(SL_TLS_CLIENT_AUTH_NONE, "DEFAULT", path_buf[3], path_buf[4],
              0, NULL, false);
    /* No rule applies: the connection must be refused (-1). */
    handshake(SL_TLS_CLIENT_AUTH_REQUIRED, "RULE:^CN=bob.*$/bob/",
              path_buf[3], path_buf[4], -1, NULL, false);
}

static void test_handshake_refusals(void)
{
    /* Required and none sent; a certificate from another CA. */
    handshake(SL_TLS_CLIENT_AUTH_REQUIRED, "DEFAULT", NULL, NULL, 0, NULL,
              true);
    handshake(SL_TLS_CLIENT_AUTH_REQUIRED, "DEFAULT", path_buf[5],
              path_buf[4], 0, NULL, true);
    handshake(SL_TLS_CLIENT_AUTH_REQUESTED, "DEFAULT", path_buf[5],
              path_buf[4], 0, NULL, true);
}

static void test_plaintext_client_named(void)
{
    sl_config cfg;
    sl_tls_ctx *ctx;
    sl_tls_conn *s;
    char err[512], why[512] = "";
    uint8_t buf[64];
    /* An ApiVersions v3 request's first bytes. */
    static const uint8_t kafka[] = {0, 0, 0, 40, 0, 18, 0, 3, 0, 0, 0, 1};

    server_config(&cfg, SL_TLS_CLIENT_AUTH_NONE, "DEFAULT");
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), 0);
    s = sl_tls_conn_new(ctx);
    sl_tls_ctx_unref(ctx);
    sl_tls_conn_feed(s, kafka, sizeof(kafka));
    ASSERT_EQ(sl_tls_conn_read(s, buf, sizeof(buf), why, sizeof(why)),
              SL_TLS_ERROR);
    ASSERT_TRUE(strstr(why, "plaintext") != NULL);
    ASSERT_TRUE(strstr(why, "40 bytes") != NULL);
    sl_tls_conn_free(s);

    /* Garbage that starts like a handshake record: OpenSSL's reason. */
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), 0);
    s = sl_tls_conn_new(ctx);
    sl_tls_ctx_unref(ctx);
    sl_tls_conn_feed(s, (const uint8_t *)"\x16\x09\x09\x00\x05hello", 10);
    ASSERT_EQ(sl_tls_conn_read(s, buf, sizeof(buf), why, sizeof(why)),
              SL_TLS_ERROR);
    ASSERT_TRUE(strstr(why, "TLS handshake failed") != NULL);
    sl_tls_conn_free(s);
}

static void test_config_errors(void)
{
    sl_config cfg;
    sl_tls_ctx *ctx;
    char err[512];

    server_config(&cfg, SL_TLS_CLIENT_AUTH_NONE, "DEFAULT");
    cfg.tls_key_file = (char *)path_buf[4]; /* the client's key */
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "tls.key_file") != NULL &&
                (strstr(err, "does not belong") != NULL ||
                 strstr(err, "mismatch") != NULL));
    server_config(&cfg, SL_TLS_CLIENT_AUTH_NONE, "DEFAULT");
    cfg.tls_cert_file = (char *)"/nonexistent.pem";
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "tls.cert_file /nonexistent.pem") != NULL);
    server_config(&cfg, SL_TLS_CLIENT_AUTH_REQUIRED, "DEFAULT");
    cfg.tls_ca_file = NULL;
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "tls.ca_file") != NULL);
    server_config(&cfg, SL_TLS_CLIENT_AUTH_NONE, "RULE:(/x/");
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "tls.principal_mapping_rules") != NULL);
    server_config(&cfg, SL_TLS_CLIENT_AUTH_NONE, "DEFAULT");
    cfg.tls_ciphers = (char *)"NOT-A-CIPHER";
    ASSERT_EQ(sl_tls_ctx_new(&cfg, &ctx, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "tls.ciphers") != NULL);
}

static void test_pki_setup(void)
{
    make_pki();
}

static void test_pki_teardown(void)
{
    remove_pki();
}

SL_TEST_MAIN(SL_TEST(test_rules_default), SL_TEST(test_rules_kafka_examples),
             SL_TEST(test_rules_no_match_and_errors), SL_TEST(test_pki_setup),
             SL_TEST(test_handshake_no_client_cert),
             SL_TEST(test_handshake_client_cert_principal),
             SL_TEST(test_handshake_refusals),
             SL_TEST(test_plaintext_client_named),
             SL_TEST(test_config_errors), SL_TEST(test_pki_teardown))
