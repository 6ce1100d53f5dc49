/*
 * libFuzzer target: the SASL credentials file parser (proxy/sasl.c's
 * sl_sasl_creds_parse), which reads an operator's file.
 *
 * Input: any text. A refusal must come with a message that names the file
 * ("f.json:" and a line, or "f.json: invalid JSON"); an accepted file must
 * be valid JSON without duplicate keys, every user of it must have at
 * least one credential with iterations within Kafka's bounds, names must
 * come back sorted and findable, and a SCRAM exchange for the first user
 * must get past its first message.
 *
 * Seed corpus: tests/fuzz/corpus/sasl_creds/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sluice/sasl.h"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_sasl_creds: check failed: %s (%s:%d)\n", \
                    #cond, __FILE__, __LINE__);                           \
            abort();                                                      \
        }                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1), err[1024];
    sl_sasl_creds *c = NULL;
    int rc;

    memcpy(text, data, size);
    err[0] = 'X';
    rc = sl_sasl_creds_parse(text, size, "f.json", &c, err, sizeof(err));
    if (rc != 0) {
        CHECK(rc == SL_E_CONFIG && c == NULL);
        CHECK(strncmp(err, "f.json:", 7) == 0);
    } else {
        json_error_t je;
        json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
        size_t n = sl_sasl_creds_users(c);
        CHECK(root != NULL && json_is_object(root));
        json_decref(root);
        for (size_t i = 0; i < n; i++) {
            const char *u = sl_sasl_creds_user_name(c, i);
            uint32_t a = sl_sasl_creds_iterations(c, u, SL_SASL_SCRAM_SHA_256),
                     b = sl_sasl_creds_iterations(c, u, SL_SASL_SCRAM_SHA_512);
            CHECK(u != NULL && u[0] != '\0' && strlen(u) <= SL_SASL_MAX_NAME);
            CHECK(i == 0 || strcmp(sl_sasl_creds_user_name(c, i - 1), u) < 0);
            CHECK(a != 0 || b != 0);
            CHECK(a == 0 || (a >= SL_SASL_MIN_ITER && a <= SL_SASL_MAX_ITER));
            CHECK(b == 0 || (b >= SL_SASL_MIN_ITER && b <= SL_SASL_MAX_ITER));
            CHECK(sl_sasl_creds_iterations(c, u, SL_SASL_PLAIN) == (b ? b : a));
        }
        CHECK(sl_sasl_creds_user_name(c, n) == NULL);
        if (n > 0 && strchr(sl_sasl_creds_user_name(c, 0), ',') == NULL &&
            strchr(sl_sasl_creds_user_name(c, 0), '=') == NULL) {
            const char *u = sl_sasl_creds_user_name(c, 0);
            sl_sasl_mech m =
                sl_sasl_creds_iterations(c, u, SL_SASL_SCRAM_SHA_256)
                    ? SL_SASL_SCRAM_SHA_256
                    : SL_SASL_SCRAM_SHA_512;
            char msg[SL_SASL_MAX_NAME + 32];
            const uint8_t *out;
            size_t out_len;
            sl_sasl_server *s = sl_sasl_server_new(m, c, "N");
            int len = snprintf(msg, sizeof(msg), "n,,n=%s,r=x", u);
            CHECK(sl_sasl_server_step(s, (const uint8_t *)msg, (size_t)len,
                                      &out, &out_len, NULL, 0) ==
                  SL_SASL_CONTINUE);
            sl_sasl_server_free(s);
        }
        sl_sasl_creds_free(c);
    }
    free(text);
    return 0;
}
