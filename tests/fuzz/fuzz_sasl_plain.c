/*
 * libFuzzer target: SASL PLAIN (proxy/sasl.c) against a differential
 * oracle written here: the input is one client message, and the exchange
 * must reach DONE exactly when the message is
 *   authzid NUL user NUL password
 * with no other NUL, authzid empty or equal to user, and user/password
 * one of the pairs below (alice/pencil holds SCRAM-SHA-256 only, bob/
 * builder both mechanisms, checked against SHA-512's), else FAIL with an
 * empty reply and a reason. The reason must not depend on the password:
 * the same message with the password's bytes changed (same length) fails
 * with the very same reason, so it can never quote it. A second step
 * always fails.
 *
 * Each login that names a known user costs a PBKDF2 at 4096 iterations
 * (the minimum the file allows), so this target runs slower than the
 * others where the fuzzer finds the user names.
 *
 * Seed corpus: tests/fuzz/corpus/sasl_plain/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sasl.h"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_sasl_plain: check failed: %s (%s:%d)\n", \
                    #cond, __FILE__, __LINE__);                           \
            abort();                                                      \
        }                                                                 \
    } while (0)

static sl_sasl_creds *creds;

static void cred(char *json, size_t cap, sl_sasl_mech m, const char *pw,
                 const char *salt)
{
    uint8_t sk[SL_SASL_MAX_KEY], sv[SL_SASL_MAX_KEY];
    char bs[100], bk[100], bv[100];
    size_t kl;

    if (sl_sasl_scram_derive(m, pw, strlen(pw), (const uint8_t *)salt,
                             strlen(salt), 4096, sk, sv, &kl) != 0)
        abort();
    sl__sasl_b64_encode((const uint8_t *)salt, strlen(salt), bs);
    sl__sasl_b64_encode(sk, kl, bk);
    sl__sasl_b64_encode(sv, kl, bv);
    snprintf(json + strlen(json), cap - strlen(json),
             "\"%s\": {\"salt\": \"%s\", \"iterations\": 4096, "
             "\"stored_key\": \"%s\", \"server_key\": \"%s\"}",
             sl_sasl_mech_name(m), bs, bk, bv);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char json[4096] = "{\"users\": {\"alice\": {", err[512];

    cred(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "pencil", "s1");
    strcat(json, "}, \"bob\": {");
    cred(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "other", "s2");
    strcat(json, ", ");
    cred(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "builder", "s3");
    strcat(json, "}}}");
    if (sl_sasl_creds_parse(json, strlen(json), "fuzz", &creds, err,
                            sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    return 0;
}

static bool eq(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* The oracle: whether PLAIN must accept data. */
static bool should_pass(const uint8_t *d, size_t n)
{
    const uint8_t *z1 = memchr(d, 0, n), *z2, *u, *pw;
    size_t al, ul, pl;

    if (n > SL_SASL_MAX_MSG || z1 == NULL)
        return false;
    z2 = memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - d));
    if (z2 == NULL || memchr(z2 + 1, 0, n - (size_t)(z2 + 1 - d)) != NULL)
        return false;
    al = (size_t)(z1 - d);
    u = z1 + 1;
    ul = (size_t)(z2 - u);
    pw = z2 + 1;
    pl = n - (size_t)(pw - d);
    if (al != 0 && (al != ul || memcmp(d, u, ul) != 0))
        return false;
    return (eq(u, ul, "alice") && eq(pw, pl, "pencil")) ||
           (eq(u, ul, "bob") && eq(pw, pl, "builder"));
}

/* The same message with every password byte changed must fail with the
 * same reason (unless the change made it the right password). */
static void check_why_ignores_password(const uint8_t *d, size_t n,
                                       const char *why)
{
    const uint8_t *z1 = memchr(d, 0, n), *z2;
    sl_sasl_server *s;
    uint8_t *copy;
    const uint8_t *out;
    size_t out_len, pw;
    char why2[512];

    if (z1 == NULL || (z2 = memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - d))) ==
                          NULL)
        return;
    pw = (size_t)(z2 + 1 - d);
    copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    for (size_t i = pw; i < n; i++)
        copy[i] = copy[i] == 0 ? 0 : (uint8_t)(copy[i] % 255 + 1);
    if (!should_pass(copy, n)) {
        s = sl_sasl_server_new(SL_SASL_PLAIN, creds, NULL);
        CHECK(sl_sasl_server_step(s, copy, n, &out, &out_len, why2,
                                  sizeof(why2)) == SL_SASL_FAILED);
        CHECK(strcmp(why, why2) == 0);
        sl_sasl_server_free(s);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_sasl_server *s = sl_sasl_server_new(SL_SASL_PLAIN, creds, NULL);
    uint8_t *copy = malloc(size ? size : 1);
    const uint8_t *out;
    size_t out_len;
    char why[512];
    sl_sasl_status st;
    bool pass = should_pass(data, size);

    memcpy(copy, data, size);
    why[0] = 'X';
    st = sl_sasl_server_step(s, copy, size, &out, &out_len, why, sizeof(why));
    CHECK(out != NULL && out_len == 0);
    CHECK(st != SL_SASL_CONTINUE);
    CHECK((st == SL_SASL_DONE) == pass);
    if (st == SL_SASL_DONE) {
        const char *u = sl_sasl_server_user(s);
        CHECK(why[0] == '\0');
        CHECK(u != NULL && (strcmp(u, "alice") == 0 || strcmp(u, "bob") == 0));
    } else {
        CHECK(why[0] != '\0' && why[0] != 'X');
        CHECK(sl_sasl_server_user(s) == NULL);
        check_why_ignores_password(data, size, why);
    }
    st = sl_sasl_server_step(s, copy, size, &out, &out_len, why, sizeof(why));
    CHECK(st == SL_SASL_FAILED && out_len == 0);
    free(copy);
    sl_sasl_server_free(s);
    return 0;
}
