/*
 * libFuzzer target for the raw-text JSON walker of the config and policy
 * loaders (proxy/jsonscan.c), which reads user files.
 *
 * Input: any text. The walk visits keys and elements; at each visit the
 * path is set up to the depth, the line is between 1 and the text's last,
 * and the walker's position is inside the text. Where jansson parses the
 * text as an object or array, the walker must find every top-level key
 * (without NUL) or element at a line of the text. sl_jscan_key_at runs at
 * a position picked from the input; the keys it returns are freed.
 *
 * Seed corpus: tests/fuzz/corpus/jsonscan/.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/jsonscan.h"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_jsonscan: check failed: %s (%s:%d)\n",  \
                    #cond, __FILE__, __LINE__);                           \
            abort();                                                      \
        }                                                                 \
    } while (0)

static int last_line;

static bool visit(sl_jscan *s, size_t depth, bool is_key, int line)
{
    CHECK(depth < SL_JSCAN_MAX_DEPTH);
    CHECK(line >= 1 && line <= last_line);
    CHECK(s->p >= s->base && s->p <= s->end);
    for (size_t i = 0; i < depth; i++)
        CHECK(s->path[i].key != NULL || s->path[i].idx >= 0);
    CHECK(is_key ? s->path[depth].key != NULL
                 : s->path[depth].key == NULL && s->path[depth].idx >= 0);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sl_jscan s;
    json_error_t je;
    json_t *v;
    char *keys[SL_JSCAN_MAX_DEPTH];
    int line = 0;
    size_t n;

    last_line = 1;
    for (size_t i = 0; i < size; i++)
        last_line += data[i] == '\n';
    sl_jscan_run(&s, text, size, visit, NULL);
    CHECK(sl_jscan_first_line(text, size) <= last_line);

    v = json_loadb(text, size, JSON_DECODE_ANY, &je);
    if (json_is_object(v)) {
        const char *key;
        json_t *val;
        json_object_foreach(v, key, val) {
            sl_jscan_comp want = {key, -1};
            int l = sl_jscan_path_line(text, size, &want, 1);
            (void)val;
            CHECK(l >= 1 && l <= last_line);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && i < 64; i++) {
            sl_jscan_comp want = {NULL, (long)i};
            int l = sl_jscan_path_line(text, size, &want, 1);
            CHECK(l >= 1 && l <= last_line);
        }
    }
    json_decref(v);

    n = sl_jscan_key_at(text, size, size > 0 ? data[0] * size / 256 : 0, keys,
                        &line);
    CHECK(n <= SL_JSCAN_MAX_DEPTH);
    CHECK(n == 0 || (line >= 1 && line <= last_line));
    for (size_t i = 0; i < n; i++)
        sl_free(keys[i]);
    return 0;
}
