/* The raw-text JSON walker that finds line numbers for the config and
 * policy loaders' messages (proxy/jsonscan.c): paths through objects and
 * arrays, keys that only look like the one wanted (inside strings, at
 * another depth), escapes, duplicate-key positions, malformed text. */
#include "sluice/jsonscan.h"

#include <jansson.h>

#include "sl_test.h"

static const char doc[] =
    "{\n"
    "  \"version\": 1,\n"                                  /* 2 */
    "  \"note\": \"a \\\"classes\\\" key in a string\",\n" /* 3 */
    "  \"classes\": {\n"                                  /* 4 */
    "    \"elastic\": {\"weight\": 1},\n"                 /* 5 */
    "    \"bounded\": {\n"                                /* 6 */
    "      \"weight\": 2\n"                               /* 7 */
    "    }\n"
    "  },\n"
    "  \"connectors\": [\n"                               /* 10 */
    "    {\"name\": \"a\"},\n"                            /* 11 */
    "    {\"name\": \"b\",\n"                             /* 12 */
    "     \"match\": {\"client_ids\": [\"x\", \"y\"]}}\n" /* 13 */
    "  ],\n"
    "  \"caf\\u00e9\": true\n"                            /* 15 */
    "}\n";

static int line_of(const char *text, const sl_jscan_comp *want, size_t n)
{
    return sl_jscan_path_line(text, strlen(text), want, n);
}

static void test_paths(void)
{
    sl_jscan_comp p[4];

    p[0] = (sl_jscan_comp){"version", -1};
    ASSERT_EQ(line_of(doc, p, 1), 2);
    p[0] = (sl_jscan_comp){"classes", -1};
    ASSERT_EQ(line_of(doc, p, 1), 4); /* not the one inside the string */
    p[1] = (sl_jscan_comp){"bounded", -1};
    p[2] = (sl_jscan_comp){"weight", -1};
    ASSERT_EQ(line_of(doc, p, 3), 7);
    p[1] = (sl_jscan_comp){"elastic", -1};
    ASSERT_EQ(line_of(doc, p, 3), 5);
    /* "weight" exists, but not at depth 1 */
    p[1] = (sl_jscan_comp){"weight", -1};
    ASSERT_EQ(line_of(doc, p, 2), 0);
    p[0] = (sl_jscan_comp){"connectors", -1};
    p[1] = (sl_jscan_comp){NULL, 1};
    ASSERT_EQ(line_of(doc, p, 2), 12);
    p[2] = (sl_jscan_comp){"match", -1};
    p[3] = (sl_jscan_comp){"client_ids", -1};
    ASSERT_EQ(line_of(doc, p, 4), 13);
    p[1] = (sl_jscan_comp){NULL, 2}; /* no third element */
    ASSERT_EQ(line_of(doc, p, 2), 0);
    /* \u escapes are decoded before comparing. */
    p[0] = (sl_jscan_comp){"caf\xc3\xa9", -1};
    ASSERT_EQ(line_of(doc, p, 1), 15);
    ASSERT_EQ(sl_jscan_first_line("\n\n  {}", 6), 3);
    ASSERT_EQ(sl_jscan_first_line("", 0), 1);
}

/* Where jansson reports a duplicate key, the walker names the key path. */
static void test_key_at(void)
{
    static const char dup[] = "{\n \"a\": {\n  \"b\": 1,\n  \"b\": 2\n }\n}";
    char *keys[SL_JSCAN_MAX_DEPTH];
    json_error_t je;
    int line = 0;
    size_t n;
    json_t *v = json_loads(dup, JSON_REJECT_DUPLICATES, &je);

    ASSERT_TRUE(v == NULL);
    n = sl_jscan_key_at(dup, strlen(dup), (size_t)je.position, keys, &line);
    ASSERT_EQ(n, 2);
    if (n == 2) {
        ASSERT_STREQ(keys[0], "a");
        ASSERT_STREQ(keys[1], "b");
    }
    ASSERT_EQ(line, 4);
    for (size_t i = 0; i < n; i++)
        sl_free(keys[i]);
    /* A key inside an array cannot be named. */
    n = sl_jscan_key_at("[{\"k\": 1}]", 10, 9, keys, &line);
    ASSERT_EQ(n, 0);
}

/* Malformed text after the point of interest stops the walk without
 * harm; before it, the path is not found. Deep nesting is walked. */
static void test_malformed_and_deep(void)
{
    sl_jscan_comp p[2] = {{"a", -1}, {"b", -1}};
    static const char cut[] = "{\"a\": {\"b\": 1, \"c\": [1, 2";
    static const char bad[] = "{\"x\" 1, \"a\": {\"b\": 1}}";
    char deep[4096];
    size_t n = 0;

    ASSERT_EQ(line_of(cut, p, 2), 1);
    ASSERT_EQ(line_of(bad, p, 2), 0);
    ASSERT_EQ(line_of("\"unterminated", p, 1), 0);
    ASSERT_EQ(line_of("{\"a\": \"\\u12\"}", p, 1), 1);
    for (int i = 0; i < 2000; i++)
        deep[n++] = '[';
    memcpy(deep + n, "{\"a\":1}", 7);
    n += 7;
    for (int i = 0; i < 2000; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    ASSERT_EQ(sl_jscan_path_line(deep, n, p, 1), 0); /* not at the top */
}

/* One NUL byte right after a number or a literal: jansson's lexer reads
 * one byte ahead there and, ungetting it, takes the NUL for "buffer empty"
 * and skips it, so the file loads (a NUL anywhere else does not). The
 * scanner must still find the keys after it (found by fuzz_jsonscan). */
static void test_nul_bytes_skipped_as_jansson_does(void)
{
    static const char text[] =
        "{\n  \"a\": 1\0,\n  \"b\": true\0,\n  \"c\": [3\0]\n}\n";
    size_t n = sizeof(text) - 1;
    json_error_t je;
    json_t *v = json_loadb(text, n, 0, &je);
    sl_jscan_comp b = {"b", -1}, c = {"c", -1};

    ASSERT_TRUE(v != NULL); /* jansson takes it: the scanner must too */
    ASSERT_TRUE(json_object_get(v, "c") != NULL);
    json_decref(v);
    ASSERT_EQ(sl_jscan_path_line(text, n, &b, 1), 3);
    ASSERT_EQ(sl_jscan_path_line(text, n, &c, 1), 4);
}

SL_TEST_MAIN(SL_TEST(test_paths), SL_TEST(test_key_at),
             SL_TEST(test_malformed_and_deep),
             SL_TEST(test_nul_bytes_skipped_as_jansson_does))
