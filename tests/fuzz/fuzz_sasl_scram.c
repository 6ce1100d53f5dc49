/*
 * libFuzzer target: a SCRAM exchange (proxy/sasl.c) driven by up to three
 * client messages.
 *
 * Input: byte 0 picks the mechanism (bit 0: SCRAM-SHA-512, else -256);
 * the rest is split at NUL bytes (never valid inside a SCRAM message)
 * into the client-first message, the client-final message and one more
 * message after the exchange ended. The server nonce is fixed (RFC 7677's)
 * and the credentials hold RFC 7677's "user"/"pencil" for SCRAM-SHA-256,
 * so the RFC's own messages in the seed corpus reach DONE and mutations of
 * them go deep into the final-message parser and the proof check.
 *
 * Besides ASan/UBSan, it checks what the glue relies on:
 *   - a FAILED step has an empty reply and a reason; no step reaches DONE
 *     before the final message; a message after DONE or FAILED fails;
 *   - the server-first message echoes the client nonce followed by the
 *     server's, and names a salt and iterations;
 *   - DONE names a user of the file and replies "v=" and a signature of
 *     the digest size;
 *   - a reason does not depend on the proof: the same exchange with the
 *     proof's bytes changed fails with the very same reason, so it never
 *     quotes it (the server never sees the password itself).
 *
 * Seed corpus: tests/fuzz/corpus/sasl_scram/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/sasl.h"

#define SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_sasl_scram: check failed: %s (%s:%d)\n", \
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
    static const uint8_t rfc_salt[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12,
                                       0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14,
                                       0x12, 0x36, 0xfa, 0x81};
    char json[4096] = "{\"users\": {\"user\": {", salt[17], err[512];

    memcpy(salt, rfc_salt, 16); /* W22ZaJ0SNY7soEsUEjb6gQ== */
    salt[16] = '\0';
    cred(json, sizeof(json), SL_SASL_SCRAM_SHA_256, "pencil", salt);
    strcat(json, ", ");
    cred(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "pencil", "salt512");
    strcat(json, "}, \"a,b=c\": {");
    cred(json, sizeof(json), SL_SASL_SCRAM_SHA_512, "pencil", "s2");
    strcat(json, "}}}");
    if (sl_sasl_creds_parse(json, strlen(json), "fuzz", &creds, err,
                            sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    /* The seed corpus' RFC 7677 exchange must succeed, or mutations of it
     * would never reach the proof check. */
    {
        static const char first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                          fin[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO" SERVER_NONCE
                                  ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7"
                                  "AndVQ=";
        sl_sasl_server *s = sl_sasl_server_new(SL_SASL_SCRAM_SHA_256, creds,
                                               SERVER_NONCE);
        const uint8_t *out;
        size_t out_len;
        CHECK(sl_sasl_server_step(s, (const uint8_t *)first,
                                  sizeof(first) - 1, &out, &out_len, NULL,
                                  0) == SL_SASL_CONTINUE);
        CHECK(sl_sasl_server_step(s, (const uint8_t *)fin, sizeof(fin) - 1,
                                  &out, &out_len, NULL, 0) == SL_SASL_DONE);
        sl_sasl_server_free(s);
    }
    return 0;
}

static char why[512];

static sl_sasl_status feed(sl_sasl_server *s, const uint8_t *p, size_t n,
                           const uint8_t **out, size_t *out_len)
{
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    sl_sasl_status st;

    memcpy(copy, p, n);
    why[0] = 'X';
    st = sl_sasl_server_step(s, copy, n, out, out_len, why, sizeof(why));
    free(copy);
    CHECK(*out != NULL);
    CHECK(strlen(why) < sizeof(why));
    if (st == SL_SASL_FAILED) {
        CHECK(*out_len == 0);
        CHECK(why[0] != '\0' && why[0] != 'X');
        CHECK(sl_sasl_server_user(s) == NULL);
    } else {
        CHECK(why[0] == '\0');
    }
    return st;
}

/* Replays the exchange with every byte after the final message's last
 * ",p=" changed; when that fails too (it may not: the change can hit the
 * one valid proof), the reason must be the same. */
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void check_why_ignores_proof(sl_sasl_mech m, const uint8_t *first,
                                    size_t first_len, const uint8_t *fin,
                                    size_t fin_len)
{
    char why1[sizeof(why)];
    const uint8_t *p = NULL, *out;
    size_t out_len;
    sl_sasl_server *s;
    uint8_t *copy;
    sl_sasl_status st;

    for (size_t i = 0; i + 3 <= fin_len; i++)
        if (memcmp(fin + i, ",p=", 3) == 0)
            p = fin + i + 3;
    if (p == NULL || p == fin + fin_len)
        return;
    memcpy(why1, why, sizeof(why));
    copy = malloc(fin_len);
    memcpy(copy, fin, fin_len);
    /* Each base64 character to the next in the alphabet; the rest (and so
     * the message's shape and the proof's length) unchanged. */
    for (size_t i = (size_t)(p - fin); i < fin_len; i++) {
        const char *c = copy[i] ? memchr(b64, copy[i], 64) : NULL;
        if (c != NULL)
            copy[i] = (uint8_t)b64[(c - b64 + 1) % 64];
    }
    s = sl_sasl_server_new(m, creds, SERVER_NONCE);
    CHECK(feed(s, first, first_len, &out, &out_len) == SL_SASL_CONTINUE);
    st = feed(s, copy, fin_len, &out, &out_len);
    if (st == SL_SASL_FAILED)
        CHECK(strcmp(why1, why) == 0);
    memcpy(why, why1, sizeof(why));
    sl_sasl_server_free(s);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_sasl_mech m;
    sl_sasl_server *s;
    const uint8_t *p, *end, *msg[3], *out;
    size_t len[3], n = 0, out_len;
    sl_sasl_status st;

    if (size < 1)
        return 0;
    m = data[0] & 1 ? SL_SASL_SCRAM_SHA_512 : SL_SASL_SCRAM_SHA_256;
    p = data + 1;
    end = data + size;
    while (n < 3) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        msg[n] = p;
        len[n] = z ? (size_t)(z - p) : (size_t)(end - p);
        n++;
        if (z == NULL)
            break;
        p = z + 1;
    }
    s = sl_sasl_server_new(m, creds, SERVER_NONCE);
    CHECK(s != NULL);

    st = feed(s, msg[0], len[0], &out, &out_len);
    CHECK(st != SL_SASL_DONE);
    if (st == SL_SASL_CONTINUE) {
        /* r=<client nonce><server nonce>,s=...,i=... */
        const uint8_t *sn;
        CHECK(out_len > 2 && memcmp(out, "r=", 2) == 0);
        sn = memmem(out, out_len, SERVER_NONCE ",s=",
                    strlen(SERVER_NONCE ",s="));
        CHECK(sn != NULL && sn > out + 2);
        CHECK(memmem(out, out_len, ",i=4096", 7) == out + out_len - 7);
        CHECK(memmem(msg[0], len[0], out + 2, (size_t)(sn - out - 2)) !=
              NULL);
    }
    if (n >= 2) {
        sl_sasl_status was = st;
        st = feed(s, msg[1], len[1], &out, &out_len);
        if (was == SL_SASL_FAILED)
            CHECK(st == SL_SASL_FAILED);
        if (st == SL_SASL_DONE) {
            const char *u = sl_sasl_server_user(s);
            size_t kl = m == SL_SASL_SCRAM_SHA_256 ? 32 : 64;
            CHECK(u != NULL && (strcmp(u, "user") == 0 ||
                                strcmp(u, "a,b=c") == 0));
            CHECK(out_len == 2 + (kl + 2) / 3 * 4);
            CHECK(memcmp(out, "v=", 2) == 0);
        }
        CHECK(st != SL_SASL_CONTINUE);
        if (st == SL_SASL_FAILED && was == SL_SASL_CONTINUE)
            check_why_ignores_proof(m, msg[0], len[0], msg[1], len[1]);
    }
    if (n >= 3) {
        st = feed(s, msg[2], len[2], &out, &out_len);
        CHECK(st == SL_SASL_FAILED);
    }
    sl_sasl_server_free(s);
    return 0;
}
