/*
 * Unit tests for proxy/sasl.c and proxy/sasl_users.c: the RFC 7677
 * SCRAM-SHA-256 example end to end, SCRAM-SHA-512 against a client written
 * here on libcrypto (independent of sasl.c's base64 and message code), a
 * credential cross-checked with Python's hashlib, Kafka's refusals, PLAIN,
 * the credentials file's errors, and `sluice users` round trips.
 *
 * Every client message is copied into a heap buffer of exactly its length,
 * so ASan catches a read past in_len.
 */
#include "sluice/sasl.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sl_test.h"

/* ---- helpers ------------------------------------------------------------- */

static char out_str[4096];
static char why[512];
static size_t last_out_len;
static char plain_user[300]; /* who the last PLAIN login authenticated */

/* One step with a heap copy of exactly len bytes; the reply goes to
 * out_str (NUL-terminated), the reason to why. */
static sl_sasl_status step_n(sl_sasl_server *s, const void *msg, size_t len)
{
    uint8_t *copy = len ? malloc(len) : NULL;
    const uint8_t *out = NULL;
    size_t out_len = 12345;
    sl_sasl_status st;

    if (len)
        memcpy(copy, msg, len);
    st = sl_sasl_server_step(s, copy, len, &out, &out_len, why, sizeof(why));
    free(copy);
    ASSERT_TRUE(out != NULL);
    last_out_len = out_len;
    if (st == SL_SASL_FAILED)
        ASSERT_EQ(out_len, 0);
    if (out != NULL && out_len < sizeof(out_str)) {
        memcpy(out_str, out, out_len);
        out_str[out_len] = '\0';
    }
    return st;
}

static sl_sasl_status step(sl_sasl_server *s, const char *msg)
{
    return step_n(s, msg, strlen(msg));
}

#define ASSERT_WHY(substr)                                                \
    do {                                                                  \
        if (strstr(why, (substr)) == NULL)                                \
            SL__FAIL("why \"%s\" lacks \"%s\"", why, (substr));           \
    } while (0)

static const EVP_MD *md_of(sl_sasl_mech m)
{
    return m == SL_SASL_SCRAM_SHA_256 ? EVP_sha256() : EVP_sha512();
}

static void b64(const uint8_t *p, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/* Base64 decode with libcrypto (not sasl.c's decoder). */
static size_t unb64(const char *s, size_t n, uint8_t *out)
{
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (got < 0)
        return 0;
    while (n > 0 && s[n - 1] == '=') {
        got--;
        n--;
    }
    return (size_t)got;
}

/* A JSON credential object for m from password/salt/iterations, derived
 * with sl_sasl_scram_derive, appended to buf. */
static void cred_json(char *buf, size_t cap, sl_sasl_mech m, const char *pw,
                      const char *salt, uint32_t it)
{
    uint8_t sk[SL_SASL_MAX_KEY], sv[SL_SASL_MAX_KEY];
    char bs[256], bk[128], bv[128];
    size_t kl = 0;

    ASSERT_EQ(sl_sasl_scram_derive(m, pw, strlen(pw), (const uint8_t *)salt,
                                   strlen(salt), it, sk, sv, &kl),
              0);
    b64((const uint8_t *)salt, strlen(salt), bs);
    b64(sk, kl, bk);
    b64(sv, kl, bv);
    snprintf(buf + strlen(buf), cap - strlen(buf),
             "\"%s\": {\"salt\": \"%s\", \"iterations\": %u, "
             "\"stored_key\": \"%s\", \"server_key\": \"%s\"}",
             sl_sasl_mech_name(m), bs, (unsigned)it, bk, bv);
}

static sl_sasl_creds *parse_ok(const char *json)
{
    sl_sasl_creds *c = NULL;
    char err[1024] = "";
    int rc = sl_sasl_creds_parse(json, strlen(json), "t.json", &c, err,
                                 sizeof(err));
    if (rc != 0)
        SL__FAIL("parse: %s", err);
    return c;
}

/* Users: "alice" (password "pencil", both mechanisms), "bob" (password
 * "bobpw", SCRAM-SHA-256 only), "a,b=c" (password "x", SHA-512). */
static sl_sasl_creds *test_creds(void)
{
    static char json[8192];
    json[0] = '\0';
    strcat(json, "{\"users\": {\"alice\": {");
    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "pencil", "salt-a",
              4096);
    strcat(json, ", ");
    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "pencil", "salt-b",
              4096);
    strcat(json, "}, \"bob\": {");
    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "bobpw", "salt-c",
              4096);
    strcat(json, "}, \"a,b=c\": {");
    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "x", "salt-d",
              4096);
    strcat(json, "}}}");
    return parse_ok(json);
}

/* A SCRAM client on libcrypto: sends client_first (gs2 header + bare),
 * checks the server's first message, sends the final message with the
 * proof for password, checks the server signature. Returns the final
 * status. */
static sl_sasl_status scram_client(sl_sasl_server *s, sl_sasl_mech m,
                                   const char *gs2, const char *bare,
                                   const char *cnonce, const char *password)
{
    const EVP_MD *md = md_of(m);
    size_t kl = (size_t)EVP_MD_get_size(md);
    char first[1024], sfirst[sizeof(out_str)], final[2048],
        auth[sizeof(out_str) + 3072], cb[64];
    uint8_t salt[256], salted[64], ck[64], sk[64], sig[64], proof[64],
        svk[64], ssig[64];
    unsigned int hl;
    size_t salt_len;
    const char *r, *sp, *ip;
    sl_sasl_status st;

    snprintf(first, sizeof(first), "%s%s", gs2, bare);
    st = step(s, first);
    if (st != SL_SASL_CONTINUE)
        return st;
    snprintf(sfirst, sizeof(sfirst), "%s", out_str);
    r = strstr(sfirst, "r=");
    sp = strstr(sfirst, ",s=");
    ip = strstr(sfirst, ",i=");
    ASSERT_TRUE(r == sfirst && sp != NULL && ip != NULL);
    if (r != sfirst || sp == NULL || ip == NULL)
        return SL_SASL_FAILED;
    ASSERT_TRUE(strncmp(sfirst + 2, cnonce, strlen(cnonce)) == 0);
    salt_len = unb64(sp + 3, (size_t)(ip - sp - 3), salt);
    PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                      atoi(ip + 3), md, (int)kl, salted);
    HMAC(md, salted, (int)kl, (const uint8_t *)"Client Key", 10, ck, &hl);
    EVP_Digest(ck, kl, sk, &hl, md, NULL);
    b64((const uint8_t *)gs2, strlen(gs2), cb);
    snprintf(final, sizeof(final), "c=%s,r=%.*s", cb,
             (int)(sp - sfirst - 2), sfirst + 2);
    snprintf(auth, sizeof(auth), "%s,%s,%s", bare, sfirst, final);
    HMAC(md, sk, (int)kl, (const uint8_t *)auth, strlen(auth), sig, &hl);
    for (size_t i = 0; i < kl; i++)
        proof[i] = ck[i] ^ sig[i];
    strcat(final, ",p=");
    b64(proof, kl, final + strlen(final));
    st = step(s, final);
    if (st == SL_SASL_DONE) {
        char want[200] = "v=";
        HMAC(md, salted, (int)kl, (const uint8_t *)"Server Key", 10, svk,
             &hl);
        HMAC(md, svk, (int)kl, (const uint8_t *)auth, strlen(auth), ssig,
             &hl);
        b64(ssig, kl, want + 2);
        ASSERT_STREQ(out_str, want);
    }
    return st;
}

/* ---- mechanisms and derivation ------------------------------------------ */

static void mech_names(void)
{
    sl_sasl_mech m = SL_SASL__MECH_COUNT;

    ASSERT_STREQ(sl_sasl_mech_name(SL_SASL_PLAIN), "PLAIN");
    ASSERT_STREQ(sl_sasl_mech_name(SL_SASL_SCRAM_SHA_256), "SCRAM-SHA-256");
    ASSERT_STREQ(sl_sasl_mech_name(SL_SASL_SCRAM_SHA_512), "SCRAM-SHA-512");
    ASSERT_TRUE(sl_sasl_mech_name(SL_SASL__MECH_COUNT) == NULL);
    ASSERT_EQ(sl_sasl_mech_parse("SCRAM-SHA-512", 13, &m), 0);
    ASSERT_EQ(m, SL_SASL_SCRAM_SHA_512);
    ASSERT_EQ(sl_sasl_mech_parse("PLAINX", 5, &m), 0);
    ASSERT_EQ(m, SL_SASL_PLAIN);
    ASSERT_EQ(sl_sasl_mech_parse("plain", 5, &m), -1);
    ASSERT_EQ(sl_sasl_mech_parse("SCRAM-SHA-25", 12, &m), -1);
    ASSERT_EQ(sl_sasl_mech_parse("SCRAM-SHA-2566", 14, &m), -1);
    ASSERT_EQ(sl_sasl_mech_parse("", 0, &m), -1);
    ASSERT_EQ(sl_sasl_mech_parse("GSSAPI", 6, &m), -1);
}

/* RFC 7677 section 3, end to end. */
static void rfc7677_sha256(void)
{
    static const char salt_b64[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
    uint8_t salt[32], sk[64], sv[64];
    char bk[100], bv[100], json[1024];
    size_t salt_len = unb64(salt_b64, strlen(salt_b64), salt), kl = 0;
    sl_sasl_creds *c;
    sl_sasl_server *s;

    ASSERT_EQ(sl_sasl_scram_derive(SL_SASL_SCRAM_SHA_256, "pencil", 6, salt,
                                   salt_len, 4096, sk, sv, &kl),
              0);
    ASSERT_EQ(kl, 32);
    b64(sk, kl, bk);
    b64(sv, kl, bv);
    /* From Python's hashlib.pbkdf2_hmac / hmac. */
    ASSERT_STREQ(bk, "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
    ASSERT_STREQ(bv, "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
    snprintf(json, sizeof(json),
             "{\"users\": {\"user\": {\"SCRAM-SHA-256\": {\"salt\": \"%s\", "
             "\"iterations\": 4096, \"stored_key\": \"%s\", "
             "\"server_key\": \"%s\"}}}}",
             salt_b64, bk, bv);
    c = parse_ok(json);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c,
                           "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    ASSERT_TRUE(sl_sasl_server_user(s) == NULL);
    ASSERT_EQ(step(s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"), SL_SASL_CONTINUE);
    ASSERT_STREQ(out_str, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)"
                          "hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    ASSERT_TRUE(sl_sasl_server_user(s) == NULL);
    ASSERT_EQ(step(s, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)"
                      "hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
              SL_SASL_DONE);
    ASSERT_STREQ(out_str, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    ASSERT_STREQ(sl_sasl_server_user(s), "user");
    ASSERT_EQ(sl_sasl_server_mech(s), SL_SASL_SCRAM_SHA_256);
    /* Anything after DONE fails. */
    ASSERT_EQ(step(s, "c=biws"), SL_SASL_FAILED);
    ASSERT_WHY("after the exchange completed");
    ASSERT_TRUE(sl_sasl_server_user(s) == NULL);
    sl_sasl_server_free(s);

    /* Truncations of the final message at every length all fail. */
    {
        static const char fin[] =
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        static const char first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        for (size_t n = 0; n < strlen(fin); n++) {
            s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c,
                                   "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
            ASSERT_EQ(step(s, first), SL_SASL_CONTINUE);
            if (step_n(s, fin, n) != SL_SASL_FAILED)
                SL__FAIL("final message cut at %zu bytes accepted", n);
            sl_sasl_server_free(s);
        }
        /* The first message cut anywhere before the nonce's first byte
         * fails; after it, it is a valid message with a shorter nonce. */
        for (size_t n = 0; n <= strlen(first); n++) {
            sl_sasl_status want = n >= 13 ? SL_SASL_CONTINUE : SL_SASL_FAILED;
            s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c, "srv");
            if (step_n(s, first, n) != want)
                SL__FAIL("first message cut at %zu bytes: %s", n, why);
            sl_sasl_server_free(s);
        }
    }
    sl_sasl_creds_free(c);
}

/* A SHA-512 credential against Python's hashlib:
 *   sp = hashlib.pbkdf2_hmac('sha512', b'correct horse battery staple',
 *                            b'sluice-sha512-salt', 4096)
 *   StoredKey = sha512(hmac(sp, b'Client Key')), ServerKey = hmac(sp,
 *   b'Server Key'), in base64. */
static void sha512_python(void)
{
    uint8_t sk[64], sv[64];
    char bk[100], bv[100];
    size_t kl = 0;

    ASSERT_EQ(sl_sasl_scram_derive(SL_SASL_SCRAM_SHA_512,
                                   "correct horse battery staple", 28,
                                   (const uint8_t *)"sluice-sha512-salt", 18,
                                   4096, sk, sv, &kl),
              0);
    ASSERT_EQ(kl, 64);
    b64(sk, kl, bk);
    b64(sv, kl, bv);
    ASSERT_STREQ(bk, "WRiNWg98SxVS2EPjdxMHrKXlYivN9h5pwU5wbcnONyLZIkFjh4kXwKQr"
                     "KudGcuNdGz4KaowXx49Bb/oABVd/Aw==");
    ASSERT_STREQ(bv, "ZultsSzfQ9HmGji9TM1Kq4k6DN0I1ELNnVIHq5bO1W7yTy1ilDJQFmxb"
                     "hj+lSNyXN1D8Ujg46x6pTxMGUF4J1g==");
    /* Misuse */
    ASSERT_EQ(sl_sasl_scram_derive(SL_SASL_PLAIN, "x", 1,
                                   (const uint8_t *)"s", 1, 4096, sk, sv, &kl),
              SL_E_INVALID);
    ASSERT_EQ(sl_sasl_scram_derive(SL_SASL_SCRAM_SHA_256, "x", 1,
                                   (const uint8_t *)"s", 1, 0, sk, sv, &kl),
              SL_E_INVALID);
}

/* ---- SCRAM exchanges ----------------------------------------------------- */

static void scram_clients(void)
{
    sl_sasl_creds *c = test_creds();
    sl_sasl_server *s;

    /* SHA-512 and SHA-256, random server nonce. */
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, NULL);
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "n,,",
                           "n=alice,r=fyko+d2lbbFgONRv9qkxdawL",
                           "fyko+d2lbbFgONRv9qkxdawL", "pencil"),
              SL_SASL_DONE);
    ASSERT_STREQ(sl_sasl_server_user(s), "alice");
    sl_sasl_server_free(s);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c, NULL);
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_256, "n,,", "n=alice,r=abc",
                           "abc", "pencil"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);

    /* Random nonces: 24 bytes in base64, different each time. */
    {
        sl_sasl_server *a = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c, NULL);
        sl_sasl_server *b = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c, NULL);
        char fa[sizeof(out_str)];
        ASSERT_EQ(step(a, "n,,n=alice,r=x"), SL_SASL_CONTINUE);
        snprintf(fa, sizeof(fa), "%s", out_str);
        ASSERT_EQ(step(b, "n,,n=alice,r=x"), SL_SASL_CONTINUE);
        ASSERT_TRUE(strcmp(fa, out_str) != 0);
        ASSERT_EQ(strchr(fa, ',') - fa, 2 + 1 + 32);
        sl_sasl_server_free(a);
        sl_sasl_server_free(b);
    }

    /* authzid equal to the user, "y,,", tokenauth=false: accepted. */
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N1");
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "n,a=alice,",
                           "n=alice,r=abc", "abc", "pencil"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N1");
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "y,,", "n=alice,r=abc",
                           "abc", "pencil"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N1");
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "n,,",
                           "n=alice,r=abc,tokenauth=false", "abc", "pencil"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);

    /* A name with ',' and '=' escaped, authzid escaped the same. */
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N1");
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "n,a=a=2Cb=3Dc,",
                           "n=a=2Cb=3Dc,r=abc", "abc", "x"),
              SL_SASL_DONE);
    ASSERT_STREQ(sl_sasl_server_user(s), "a,b=c");
    sl_sasl_server_free(s);

    /* Wrong password: the proof does not verify. */
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N1");
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "n,,", "n=alice,r=abc",
                           "abc", "pencil2"),
              SL_SASL_FAILED);
    ASSERT_WHY("invalid proof for user \"alice\"");
    ASSERT_TRUE(strstr(why, "pencil") == NULL && strstr(why, "p=") == NULL);
    ASSERT_EQ(step(s, "x"), SL_SASL_FAILED);
    ASSERT_WHY("after the exchange failed");
    ASSERT_TRUE(sl_sasl_server_user(s) == NULL);
    sl_sasl_server_free(s);

    /* bob holds SCRAM-SHA-256 only. */
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N1");
    ASSERT_EQ(step(s, "n,,n=bob,r=abc"), SL_SASL_FAILED);
    ASSERT_WHY("user \"bob\" has no SCRAM-SHA-512 credential");
    sl_sasl_server_free(s);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c, "N1");
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_256, "n,,", "n=bob,r=abc",
                           "abc", "bobpw"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);
    sl_sasl_creds_free(c);
}

/* First messages refused, each with the reason expected. */
static void scram_first_refusals(void)
{
    static const struct {
        const char *msg, *why;
    } cases[] = {
        {"n,,n=carol,r=abc", "unknown user \"carol\""},
        {"n,a=bob,n=alice,r=abc",
         "authorization id \"bob\" differs from user \"alice\""},
        {"p=tls-unique,,n=alice,r=abc", "channel binding requested"},
        {"x,,n=alice,r=abc", "expected gs2 header"},
        {"n,n=alice,r=abc", "malformed gs2 header"},
        {"n,a=,n=alice,r=abc", "invalid authorization id"},
        {"n,,n=alice,r=abc,tokenauth=true", "tokenauth"},
        {"n,,n=alice,r=abc,tokenauth=TRUE", "tokenauth"},
        {"n,,n=alice,r=abc,foo=bar", "unsupported extension \"foo\""},
        {"n,,n=alice,r=abc,tokenauth=false,x=1", "unsupported extension"},
        {"n,,n=alice,r=abc,=x", "malformed extension"},
        {"n,,n=alice,r=abc,foo", "malformed extension"},
        {"n,,n=alice,r=abc,foo=", "malformed extension"},
        {"n,,n=alice,r=abc,", "malformed extension"},
        {"n,,n=alice,r=abc,f1=x", "malformed extension"},
        {"n,,m=ext,n=alice,r=abc", "mandatory extension"},
        {"n,,n=al=2cice,r=abc", "invalid user name"},
        {"n,,n=al=41ice,r=abc", "invalid user name"},
        {"n,,n=alice=,r=abc", "invalid user name"},
        {"n,,n=alice=2,r=abc", "invalid user name"},
        {"n,,n=,r=abc", "empty user name"},
        {"n,,n=alice,r=", "invalid client nonce"},
        {"n,,n=alice,r=a b", "invalid client nonce"},
        {"n,,n=alice,r=a\x7f", "invalid client nonce"},
        {"n,,n=alice", "expected r=<nonce>"},
        {"n,,r=abc,n=alice", "expected n=<user>"},
        {"n,,n=alice,x=1,r=abc", "expected r=<nonce>"},
        {"n,,n=al=2Cice,r=abc", "unknown user \"al,ice\""},
        {"n,,n=\x01\xff\",r=abc", "unknown user \"\\x01\\xff\\x22\""},
        {"", "expected gs2 header"},
    };
    sl_sasl_creds *c = test_creds();

    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
        if (step(s, cases[i].msg) != SL_SASL_FAILED)
            SL__FAIL("accepted: %s", cases[i].msg);
        else if (strstr(why, cases[i].why) == NULL)
            SL__FAIL("%s: why \"%s\" lacks \"%s\"", cases[i].msg, why,
                     cases[i].why);
        sl_sasl_server_free(s);
    }
    /* NUL inside the name. */
    {
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
        ASSERT_EQ(step_n(s, "n,,n=al\0ice,r=abc", 17), SL_SASL_FAILED);
        ASSERT_WHY("invalid user name");
        sl_sasl_server_free(s);
    }
    sl_sasl_creds_free(c);
}

/* Final messages refused after a good first message. */
static void scram_final_refusals(void)
{
    static const struct {
        const char *msg, *why;
    } cases[] = {
        /* server nonce "N", client "abc": combined "abcN" */
        {"c=biws,r=abcX,p=AAAA", "nonce mismatch"},
        {"c=biws,r=abc,p=AAAA", "nonce mismatch"},
        {"c=biws,r=abcNN,p=AAAA", "nonce mismatch"},
        {"c=eSws,r=abcN,p=AAAA", "channel binding (c=) does not match"},
        {"c=bixh,r=abcN,p=AAAA", "channel binding (c=) does not match"},
        {"c=biw,r=abcN,p=AAAA", "channel binding (c=) does not match"},
        {"c=biws,r=abcN,p=AAAA", "malformed proof"},
        {"c=biws,r=abcN,p=", "malformed proof"},
        {"c=biws,r=abcN,p=!!!!", "malformed proof"},
        {"c=biws,r=abcN,x=1,p=AAAA", "unsupported extension \"x\""},
        {"c=biws,r=abcN,p=AAAA,x=1", "data after the proof"},
        {"c=biws,r=abcN", "expected p="},
        {"c=biws,r=abcN,", "malformed client-final"},
        {"r=abcN,c=biws,p=AAAA", "expected c="},
        {"c=biws,p=AAAA", "expected r="},
        {"", "expected c="},
    };
    sl_sasl_creds *c = test_creds();

    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
        ASSERT_EQ(step(s, "n,,n=alice,r=abc"), SL_SASL_CONTINUE);
        if (step(s, cases[i].msg) != SL_SASL_FAILED)
            SL__FAIL("accepted: %s", cases[i].msg);
        else if (strstr(why, cases[i].why) == NULL)
            SL__FAIL("%s: why \"%s\" lacks \"%s\"", cases[i].msg, why,
                     cases[i].why);
        sl_sasl_server_free(s);
    }
    /* A proof of the right length but wrong: invalid proof. */
    {
        char fin[300] = "c=biws,r=abcN,p=";
        uint8_t zero[64] = {0};
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
        b64(zero, 64, fin + strlen(fin));
        ASSERT_EQ(step(s, "n,,n=alice,r=abc"), SL_SASL_CONTINUE);
        ASSERT_EQ(step(s, fin), SL_SASL_FAILED);
        ASSERT_WHY("invalid proof for user \"alice\"");
        sl_sasl_server_free(s);
    }
    /* "y,,": c= must be "eSws". */
    {
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
        ASSERT_EQ(step(s, "y,,n=alice,r=abc"), SL_SASL_CONTINUE);
        ASSERT_EQ(step(s, "c=biws,r=abcN,p=AAAA"), SL_SASL_FAILED);
        ASSERT_WHY("channel binding");
        sl_sasl_server_free(s);
    }
    sl_sasl_creds_free(c);
}

static void scram_bounds(void)
{
    sl_sasl_creds *c = test_creds();
    size_t big = SL_SASL_MAX_MSG + 1;
    char *msg = sl_malloc(big + 1);
    sl_sasl_server *s;

    /* A message over 64 KiB. */
    memcpy(msg, "n,,n=alice,r=", 13);
    memset(msg + 13, 'x', big - 13);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
    ASSERT_EQ(step_n(s, msg, big), SL_SASL_FAILED);
    ASSERT_WHY("65537 bytes");
    sl_sasl_server_free(s);
    /* Exactly 64 KiB: a long nonce, accepted, and echoed. */
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
    ASSERT_EQ(step_n(s, msg, SL_SASL_MAX_MSG), SL_SASL_CONTINUE);
    ASSERT_TRUE(last_out_len > SL_SASL_MAX_MSG - 13 + 2);
    sl_sasl_server_free(s);

    /* Names: 255 bytes fine (unknown), 256 refused, also when escaped. */
    snprintf(msg, 300, "n,,n=%0255d,r=a", 0);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
    ASSERT_EQ(step(s, msg), SL_SASL_FAILED);
    ASSERT_WHY("unknown user");
    ASSERT_WHY("...");
    sl_sasl_server_free(s);
    snprintf(msg, 300, "n,,n=%0256d,r=a", 0);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
    ASSERT_EQ(step(s, msg), SL_SASL_FAILED);
    ASSERT_WHY("longer than 255");
    sl_sasl_server_free(s);
    {
        /* authzid of 255 escapes: 765 bytes on the wire, 255 decoded. */
        size_t o = 0;
        memcpy(msg, "n,a=", 4);
        o = 4;
        for (int i = 0; i < 255; i++, o += 3)
            memcpy(msg + o, "=2C", 3);
        memcpy(msg + o, ",n=alice,r=a", 13);
        s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "N");
        ASSERT_EQ(step(s, msg), SL_SASL_FAILED);
        ASSERT_WHY("differs from user \"alice\"");
        sl_sasl_server_free(s);
    }

    /* Bad nonces and mechanisms for server_new. */
    ASSERT_TRUE(sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "a,b") == NULL);
    ASSERT_TRUE(sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "") == NULL);
    ASSERT_TRUE(sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, "a b") == NULL);
    ASSERT_TRUE(sl_sasl_server_new(SL_SASL__MECH_COUNT, c, NULL) == NULL);
    ASSERT_TRUE(sl_sasl_server_new(SL_SASL_PLAIN, NULL, NULL) == NULL);
    sl_sasl_server_free(NULL);
    sl_free(msg);
    sl_sasl_creds_free(c);
}

/* ---- PLAIN --------------------------------------------------------------- */

static sl_sasl_status plain(const sl_sasl_creds *c, const char *msg,
                            size_t len)
{
    sl_sasl_server *s = sl_sasl_server_new(SL_SASL_PLAIN, c, NULL);
    sl_sasl_status st = step_n(s, msg, len);

    if (st == SL_SASL_DONE) {
        ASSERT_EQ(strlen(out_str), 0);
        snprintf(plain_user, sizeof(plain_user), "%s",
                 sl_sasl_server_user(s));
        ASSERT_EQ(step_n(s, msg, len), SL_SASL_FAILED);
        ASSERT_WHY("after the exchange completed");
    }
    sl_sasl_server_free(s);
    return st;
}

#define P(lit) lit, sizeof(lit) - 1

static void plain_cases(void)
{
    sl_sasl_creds *c = test_creds();

    ASSERT_EQ(plain(c, P("\0alice\0pencil")), SL_SASL_DONE);
    ASSERT_STREQ(plain_user, "alice");
    ASSERT_EQ(plain(c, P("alice\0alice\0pencil")), SL_SASL_DONE);
    ASSERT_EQ(plain(c, P("\0bob\0bobpw")), SL_SASL_DONE); /* SHA-256 only */
    ASSERT_STREQ(plain_user, "bob");
    ASSERT_EQ(plain(c, P("\0a,b=c\0x")), SL_SASL_DONE);

    ASSERT_EQ(plain(c, P("\0alice\0pencil2")), SL_SASL_FAILED);
    ASSERT_WHY("PLAIN: invalid password for user \"alice\"");
    ASSERT_TRUE(strstr(why, "pencil") == NULL);
    ASSERT_EQ(plain(c, P("\0alice\0Pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0alice\0pencil ")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0alice\0pencil\n")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("bob\0alice\0pencil")), SL_SASL_FAILED);
    ASSERT_WHY("authorization id \"bob\" differs from user \"alice\"");
    ASSERT_EQ(plain(c, P("alic\0alice\0pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("alicee\0alice\0pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0carol\0pencil")), SL_SASL_FAILED);
    ASSERT_WHY("unknown user \"carol\"");
    ASSERT_EQ(plain(c, P("\0\0pencil")), SL_SASL_FAILED);
    ASSERT_WHY("empty user name");
    ASSERT_EQ(plain(c, P("\0alice\0")), SL_SASL_FAILED);
    ASSERT_WHY("empty password");
    ASSERT_EQ(plain(c, P("\0alice")), SL_SASL_FAILED);
    ASSERT_WHY("malformed");
    ASSERT_EQ(plain(c, P("alice\0pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0alice\0pen\0cil")), SL_SASL_FAILED);
    ASSERT_WHY("malformed");
    ASSERT_EQ(plain(c, P("")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0\0")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0\0\0")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0alic\0pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0alicee\0pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0ALICE\0pencil")), SL_SASL_FAILED);
    ASSERT_EQ(plain(c, P("\0bob\0pencil")), SL_SASL_FAILED);

    /* Every truncation of a good message fails. */
    {
        static const char m[] = "alice\0alice\0pencil";
        for (size_t n = 0; n < sizeof(m) - 1; n++)
            if (plain(c, m, n) != SL_SASL_FAILED)
                SL__FAIL("PLAIN cut at %zu accepted", n);
    }
    /* Name bounds and an over-long message. */
    {
        char *m = malloc(SL_SASL_MAX_MSG + 2);
        m[0] = '\0';
        memset(m + 1, 'u', 256);
        m[257] = '\0';
        m[258] = 'p';
        ASSERT_EQ(plain(c, m, 259), SL_SASL_FAILED);
        ASSERT_WHY("longer than 255");
        memset(m + 259, 'p', SL_SASL_MAX_MSG + 2 - 259);
        m[1] = 'a';
        ASSERT_EQ(plain(c, m, SL_SASL_MAX_MSG + 1), SL_SASL_FAILED);
        ASSERT_WHY("65537 bytes");
        free(m);
    }
    /* NULL input with length 0 is an empty message. */
    {
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_PLAIN, c, NULL);
        const uint8_t *out;
        size_t ol;
        ASSERT_EQ(sl_sasl_server_step(s, NULL, 0, &out, &ol, NULL, 0),
                  SL_SASL_FAILED);
        sl_sasl_server_free(s);
    }
    sl_sasl_creds_free(c);
}

/* PLAIN checks SHA-512's credential when the user has both. */
static void plain_prefers_sha512(void)
{
    char json[4096] = "{\"users\": {\"dora\": {";
    sl_sasl_creds *c;

    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "old", "s1", 4096);
    strcat(json, ",");
    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "new", "s2", 4096);
    strcat(json, "}}}");
    c = parse_ok(json);
    ASSERT_EQ(plain(c, P("\0dora\0new")), SL_SASL_DONE);
    ASSERT_EQ(plain(c, P("\0dora\0old")), SL_SASL_FAILED);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "dora", SL_SASL_PLAIN), 4096);
    sl_sasl_creds_free(c);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Not a timing assertion: prints what a PLAIN login costs at the default
 * iterations, for the header's COST note. */
static void plain_cost(void)
{
    char json[4096] = "{\"users\": {\"u\": {";
    sl_sasl_creds *c;

    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "pw", "salt",
              SL_SASL_DEFAULT_ITER);
    strcat(json, "}, \"v\": {");
    cred_json(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "pw", "salt",
              SL_SASL_DEFAULT_ITER);
    strcat(json, "}}}");
    c = parse_ok(json);
    for (int k = 0; k < 2; k++) {
        int n = 10;
        double t0 = now_s();
        for (int i = 0; i < n; i++)
            ASSERT_EQ(plain(c, k ? "\0v\0pw" : "\0u\0pw", 5), SL_SASL_DONE);
        printf("  note: PLAIN login, SCRAM-SHA-%s at %d iterations: %.2f ms\n",
               k ? "512" : "256", SL_SASL_DEFAULT_ITER,
               (now_s() - t0) * 1000 / n);
    }
    sl_sasl_creds_free(c);
}

/* ---- the credentials file ------------------------------------------------ */

#define K32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define K64                                                               \
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" \
    "AAAAAAAAAAAAAAAAAA=="

static void creds_errors(void)
{
    static const struct {
        const char *json, *err;
    } cases[] = {
        {"{\n\"users\": {\n}", "t.json:3:"},
        {"[]", "t.json:1: expected a JSON object at the top level, got an "
               "array"},
        {"{\n  \"user\": {}\n}",
         "t.json:2: user: unknown key (did you mean users?)"},
        {"{\n  \"zzz\": {}\n}", "t.json:2: zzz: unknown key (expected "
                                 "\"users\")"},
        {"{}", "t.json:1: missing \"users\""},
        {"{\"users\": []}", "users: expected an object of user names, got "
                            "an array"},
        {"{\"users\": {\n\"a\": {}}}",
         "t.json:2: users.a: no credential"},
        {"{\"users\": {\n\"\": {}}}", "t.json:2: users.: empty user name"},
        {"{\"users\": {\n\"a\\u0001\": {}}}", "control character"},
        {"{\"users\": {\"a\": 5}}", "users.a: expected an object"},
        {"{\"users\": {\"a\": {\n\"PLAIN\": {}}}}",
         "t.json:2: users.a.PLAIN: no PLAIN entry"},
        {"{\"users\": {\"a\": {\n\"SCRAM-SHA-25\": {}}}}",
         "t.json:2: users.a.SCRAM-SHA-25: unknown key (did you mean "
         "SCRAM-SHA-256?)"},
        {"{\"users\": {\"a\": {\n\"SCRAM-SHA-1\": {}}}}",
         "unknown key (did you mean SCRAM-SHA-512?)"},
        {"{\"users\": {\"a\": {\n\"GSSAPI\": {}}}}",
         "unknown key (expected SCRAM-SHA-256 or SCRAM-SHA-512)"},
        {"{\"users\": {\"a\": {\n\"SCRAM-SHA-256\": 1}}}",
         "t.json:2: users.a.SCRAM-SHA-256: expected an object"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iterations\": 100,\n"
         "\"stored_key\": \"" K32 "\", \"server_key\": \"" K32 "\"}}}}",
         "t.json:3: users.a.SCRAM-SHA-256.iterations: expected an integer "
         "4096..16384 (Kafka's bounds), got 100"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iterations\": 16385,\n"
         "\"stored_key\": \"" K32 "\", \"server_key\": \"" K32 "\"}}}}",
         "got 16385"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iterations\": \"4096\",\n"
         "\"stored_key\": \"" K32 "\", \"server_key\": \"" K32 "\"}}}}",
         "t.json:3: users.a.SCRAM-SHA-256.iterations: expected an integer "
         "4096..16384, got a string"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"\",\n\"iterations\": 4096,\n"
         "\"stored_key\": \"" K32 "\", \"server_key\": \"" K32 "\"}}}}",
         "t.json:2: users.a.SCRAM-SHA-256.salt: empty"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2Fsd\",\n\"iterations\": 4096,\n"
         "\"stored_key\": \"" K32 "\", \"server_key\": \"" K32 "\"}}}}",
         "users.a.SCRAM-SHA-256.salt: expected base64"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-512\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iterations\": 4096,\n"
         "\"stored_key\": \"" K32 "\",\n\"server_key\": \"" K64 "\"}}}}",
         "t.json:4: users.a.SCRAM-SHA-512.stored_key: expected 64 bytes (the "
         "digest size), got 32"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iterations\": 4096,\n"
         "\"stored_key\": \"" K32 "\",\n\"server_key\": \"" K64 "\"}}}}",
         "t.json:5: users.a.SCRAM-SHA-256.server_key: expected base64 of 32 "
         "bytes"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iterations\": 4096,\n"
         "\"stored_key\": \"" K32 "\"}}}}",
         "t.json:1: users.a.SCRAM-SHA-256: missing \"server_key\""},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"iteration\": 4096,\n"
         "\"stored_key\": \"" K32 "\", \"server_key\": \"" K32 "\"}}}}",
         "t.json:3: users.a.SCRAM-SHA-256.iteration: unknown key (did you "
         "mean iterations?)"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"password\": \"x\"}}}}",
         "t.json:3: users.a.SCRAM-SHA-256.password: unknown key (expected "
         "salt, iterations, stored_key, server_key)"},
        {"{\"users\": {\n\"a\": {},\n\"b\": {},\n\"a\": {}}}",
         "t.json:4: users.a: duplicate key (first set on line 2)"},
        {"{\"users\": {\"a\": {\"SCRAM-SHA-256\": {\n"
         "\"salt\": \"c2FsdA==\",\n\"salt\": \"c2FsdA==\"}}}}",
         "t.json:3: users.a.SCRAM-SHA-256.salt: duplicate key (first set on "
         "line 2)"},
        {"", "t.json:1: invalid JSON"},
    };

    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        sl_sasl_creds *c = (sl_sasl_creds *)&c;
        char err[1024] = "";
        int rc = sl_sasl_creds_parse(cases[i].json, strlen(cases[i].json),
                                     "t.json", &c, err, sizeof(err));
        if (rc != SL_E_CONFIG)
            SL__FAIL("case %zu accepted (rc %d)", i, rc);
        else if (strstr(err, cases[i].err) == NULL)
            SL__FAIL("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].err);
        ASSERT_TRUE(c == (sl_sasl_creds *)&c); /* untouched */
    }
}

static void creds_good(void)
{
    char path[] = "/tmp/sl-test-sasl-XXXXXX", msg[512], err[512];
    sl_sasl_creds *c = test_creds(), *c2 = NULL;
    int fd;
    static const char text[] =
        "{\"users\": {\"zed\": {\"SCRAM-SHA-256\": {\"salt\": \"c2FsdA==\", "
        "\"iterations\": 16384, \"stored_key\": \"" K32 "\", "
        "\"server_key\": \"" K32 "\"}}}}";

    ASSERT_EQ(sl_sasl_creds_users(c), 3);
    ASSERT_STREQ(sl_sasl_creds_user_name(c, 0), "a,b=c");
    ASSERT_STREQ(sl_sasl_creds_user_name(c, 1), "alice");
    ASSERT_STREQ(sl_sasl_creds_user_name(c, 2), "bob");
    ASSERT_TRUE(sl_sasl_creds_user_name(c, 3) == NULL);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "bob", SL_SASL_SCRAM_SHA_256), 4096);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "bob", SL_SASL_SCRAM_SHA_512), 0);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "bo", SL_SASL_SCRAM_SHA_256), 0);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "bobb", SL_SASL_SCRAM_SHA_256), 0);
    ASSERT_EQ(sl_sasl_creds_users(NULL), 0);
    sl_sasl_creds_free(c);
    sl_sasl_creds_free(NULL);

    c = parse_ok("{\"users\": {}}");
    ASSERT_EQ(sl_sasl_creds_users(c), 0);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "x", SL_SASL_SCRAM_SHA_256), 0);
    sl_sasl_creds_free(c);

    fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (long)strlen(text));
    close(fd);
    ASSERT_EQ(sl_sasl_creds_load(path, &c2, err, sizeof(err)), 0);
    ASSERT_EQ(sl_sasl_creds_users(c2), 1);
    ASSERT_EQ(sl_sasl_creds_iterations(c2, "zed", SL_SASL_SCRAM_SHA_256),
              16384);
    sl_sasl_creds_free(c2);
    chmod(path, 0600);
    ASSERT_EQ(sl_sasl_creds_mode_warning(path, msg, sizeof(msg)), 0);
    chmod(path, 0640);
    ASSERT_EQ(sl_sasl_creds_mode_warning(path, msg, sizeof(msg)), 1);
    ASSERT_TRUE(strstr(msg, "0640") != NULL);
    unlink(path);
    ASSERT_EQ(sl_sasl_creds_mode_warning(path, msg, sizeof(msg)), -1);
    ASSERT_EQ(sl_sasl_creds_load(path, &c2, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "cannot open") != NULL);
    ASSERT_EQ(sl_sasl_creds_load("/tmp", &c2, err, sizeof(err)), SL_E_CONFIG);
    ASSERT_TRUE(strstr(err, "not a regular file") != NULL);
}

/* ---- sluice users -------------------------------------------------------- */

/* Runs `sluice users ARGS...` with stdin fed from `input` (through a
 * pipe, as a shell would) and its stdout and stderr silenced. */
static int users_run(const char *input, int argc, char **argv)
{
    int pfd[2], saved_in = dup(0), saved_out = dup(1), saved_err = dup(2);
    int devnull, rc;

    ASSERT_EQ(pipe(pfd), 0);
    if (input)
        ASSERT_EQ(write(pfd[1], input, strlen(input)), (long)strlen(input));
    close(pfd[1]);
    dup2(pfd[0], 0);
    close(pfd[0]);
    fflush(stdout);
    devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    close(devnull);
    rc = sl_sasl_users_main(argc, argv);
    fflush(stdout);
    dup2(saved_in, 0);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_in);
    close(saved_out);
    close(saved_err);
    return rc;
}

#define USERS(input, ...)                                                 \
    users_run((input), (int)SL_ARRAY_SIZE(((char *[]){__VA_ARGS__})),     \
              (char *[]){__VA_ARGS__})

static void users_round_trip(void)
{
    char dir[] = "/tmp/sl-test-users-XXXXXX", path[300], err[1024];
    sl_sasl_creds *c = NULL;
    sl_sasl_server *s;
    struct stat st;

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/users.json", dir);

    /* add creates the file, 0600, both mechanisms at 8192. */
    ASSERT_EQ(USERS("s3cret pass\nignored\n", "add", path, "alice"), 0);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_EQ(sl_sasl_creds_load(path, &c, err, sizeof(err)), 0);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "alice", SL_SASL_SCRAM_SHA_256),
              8192);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "alice", SL_SASL_SCRAM_SHA_512),
              8192);
    for (int m = SL_SASL_SCRAM_SHA_256; m <= SL_SASL_SCRAM_SHA_512; m++) {
        s = sl_sasl_server_new((sl_sasl_mech)m, c, NULL);
        ASSERT_EQ(scram_client(s, (sl_sasl_mech)m, "n,,", "n=alice,r=cn",
                               "cn", "s3cret pass"),
                  SL_SASL_DONE);
        sl_sasl_server_free(s);
    }
    ASSERT_EQ(plain(c, P("\0alice\0s3cret pass")), SL_SASL_DONE);
    ASSERT_EQ(plain(c, P("\0alice\0ignored")), SL_SASL_FAILED);
    sl_sasl_creds_free(c);

    /* A CRLF line; a second user at SHA-256 only, 4096 iterations; then
     * alice's SHA-256 replaced, her SHA-512 kept. */
    ASSERT_EQ(USERS("bobpw\r\n", "add", path, "bob", "--mechanism",
                    "SCRAM-SHA-256", "--iterations=4096"),
              0);
    ASSERT_EQ(USERS("other", "add", path, "alice",
                    "--mechanism=SCRAM-SHA-256"),
              0);
    ASSERT_EQ(sl_sasl_creds_load(path, &c, err, sizeof(err)), 0);
    ASSERT_EQ(sl_sasl_creds_users(c), 2);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "bob", SL_SASL_SCRAM_SHA_256), 4096);
    ASSERT_EQ(sl_sasl_creds_iterations(c, "bob", SL_SASL_SCRAM_SHA_512), 0);
    ASSERT_EQ(plain(c, P("\0bob\0bobpw")), SL_SASL_DONE);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, c, NULL);
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_256, "n,,", "n=alice,r=cn",
                           "cn", "other"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);
    s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_512, c, NULL);
    ASSERT_EQ(scram_client(s, SL_SASL_SCRAM_SHA_512, "n,,", "n=alice,r=cn",
                           "cn", "s3cret pass"),
              SL_SASL_DONE);
    sl_sasl_server_free(s);
    ASSERT_EQ(plain(c, P("\0alice\0s3cret pass")), SL_SASL_DONE); /* 512 */
    sl_sasl_creds_free(c);

    ASSERT_EQ(USERS(NULL, "list", path), 0);
    ASSERT_EQ(USERS(NULL, "delete", path, "bob"), 0);
    ASSERT_EQ(USERS(NULL, "delete", path, "bob"), 1);
    ASSERT_EQ(sl_sasl_creds_load(path, &c, err, sizeof(err)), 0);
    ASSERT_EQ(sl_sasl_creds_users(c), 1);
    sl_sasl_creds_free(c);

    /* Misuse and refusals leave the file alone. */
    ASSERT_EQ(USERS("", "add", path, "carol"), 1);      /* empty password */
    ASSERT_EQ(USERS("\n", "add", path, "carol"), 1);
    ASSERT_EQ(USERS("x", "add", path, "carol", "--iterations", "100"), 2);
    ASSERT_EQ(USERS("x", "add", path, "carol", "--iterations"), 2);
    ASSERT_EQ(USERS("x", "add", path, "carol", "--mechanism", "PLAIN"), 2);
    ASSERT_EQ(USERS("x", "add", path, "carol", "--bogus"), 2);
    ASSERT_EQ(USERS("x", "add", path, ""), 2);
    ASSERT_EQ(USERS("x", "add", path), 2);
    ASSERT_EQ(USERS(NULL, "frobnicate"), 2);
    ASSERT_EQ(USERS(NULL, "list"), 2);
    ASSERT_EQ(USERS(NULL, "delete", path), 2);
    ASSERT_EQ(users_run(NULL, 0, NULL), 2);
    ASSERT_EQ(sl_sasl_creds_load(path, &c, err, sizeof(err)), 0);
    ASSERT_EQ(sl_sasl_creds_users(c), 1);
    sl_sasl_creds_free(c);

    /* A broken file is not rewritten. */
    {
        FILE *f = fopen(path, "w");
        fputs("{\"users\": {\"x\": {}}}", f);
        fclose(f);
        ASSERT_EQ(USERS("pw", "add", path, "carol"), 1);
        ASSERT_EQ(USERS(NULL, "list", path), 1);
    }
    unlink(path);
    ASSERT_EQ(USERS(NULL, "delete", path, "alice"), 1); /* no file */
    rmdir(dir);
}

SL_TEST_MAIN(SL_TEST(mech_names), SL_TEST(rfc7677_sha256),
             SL_TEST(sha512_python), SL_TEST(scram_clients),
             SL_TEST(scram_first_refusals), SL_TEST(scram_final_refusals),
             SL_TEST(scram_bounds), SL_TEST(plain_cases),
             SL_TEST(plain_prefers_sha512), SL_TEST(plain_cost),
             SL_TEST(creds_errors), SL_TEST(creds_good),
             SL_TEST(users_round_trip))
