/* The bounded reader and growable writer in include/sluice/buf.h. */
#include "sluice/buf.h"

#include "sl_test.h"

/* Encodes with the writer, returns the bytes in w (caller frees). */
static void expect_bytes(const sl_wr *w, const uint8_t *want, size_t n)
{
    ASSERT_EQ(w->len, n);
    if (w->len == n)
        ASSERT_MEMEQ(w->buf, want, n);
}

static void test_int_big_endian(void)
{
    static const uint8_t want[] = {0xfe, 0x81, 0x02, 0x03, 0x04, 0x05,
                                   0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x01, 0xff};
    sl_wr w;
    sl_rd r;

    sl_wr_init(&w, 0);
    sl_wr_i16(&w, (int16_t)0xfe81);
    sl_wr_i32(&w, 0x02030405);
    sl_wr_i64(&w, INT64_MIN + 1);
    sl_wr_i8(&w, -1);
    expect_bytes(&w, want, sizeof(want));

    r = sl_rd_init(w.buf, w.len);
    ASSERT_EQ(sl_rd_i16(&r), (int16_t)0xfe81);
    ASSERT_EQ(sl_rd_i32(&r), 0x02030405);
    ASSERT_EQ(sl_rd_i64(&r), INT64_MIN + 1);
    ASSERT_EQ(sl_rd_i8(&r), -1);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_wr_free(&w);
}

static void test_varint_known_encodings(void)
{
    static const struct {
        int64_t v;
        uint8_t enc[10];
        size_t n;
    } cases[] = {
        {0, {0x00}, 1},
        {-1, {0x01}, 1},
        {1, {0x02}, 1},
        {-2, {0x03}, 1},
        {63, {0x7e}, 1},
        {-64, {0x7f}, 1},
        {64, {0x80, 0x01}, 2},
        {150, {0xac, 0x02}, 2}, /* zigzag 300 */
        {INT32_MAX, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
        {INT32_MIN, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    };

    for (size_t i = 0; i < SL_ARRAY_SIZE(cases); i++) {
        sl_wr w;
        sl_rd r;

        sl_wr_init(&w, 0);
        sl_wr_varint(&w, (int32_t)cases[i].v);
        expect_bytes(&w, cases[i].enc, cases[i].n);
        r = sl_rd_init(cases[i].enc, cases[i].n);
        ASSERT_EQ(sl_rd_varint(&r), cases[i].v);
        ASSERT_EQ(r.err, 0);
        ASSERT_EQ(sl_rd_left(&r), 0);
        /* The 64-bit zigzag form agrees for 32-bit values. */
        w.len = 0;
        sl_wr_varlong(&w, cases[i].v);
        expect_bytes(&w, cases[i].enc, cases[i].n);
        sl_wr_free(&w);
    }

    /* Unsigned 300 -> AC 02. */
    {
        static const uint8_t enc[] = {0xac, 0x02};
        sl_wr w;
        sl_rd r = sl_rd_init(enc, sizeof(enc));

        sl_wr_init(&w, 0);
        sl_wr_uvarint(&w, 300);
        expect_bytes(&w, enc, sizeof(enc));
        ASSERT_EQ(sl_rd_uvarint(&r), 300);
        ASSERT_EQ(r.err, 0);
        sl_wr_free(&w);
    }
    /* INT64_MIN / INT64_MAX as varlong: nine 0xff and a final 01. */
    {
        static const uint8_t min[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x01};
        static const uint8_t max[] = {0xfe, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x01};
        sl_wr w;
        sl_rd r;

        sl_wr_init(&w, 0);
        sl_wr_varlong(&w, INT64_MIN);
        expect_bytes(&w, min, sizeof(min));
        w.len = 0;
        sl_wr_varlong(&w, INT64_MAX);
        expect_bytes(&w, max, sizeof(max));
        r = sl_rd_init(min, sizeof(min));
        ASSERT_EQ(sl_rd_varlong(&r), INT64_MIN);
        r = sl_rd_init(max, sizeof(max));
        ASSERT_EQ(sl_rd_varlong(&r), INT64_MAX);
        ASSERT_EQ(r.err, 0);
        sl_wr_free(&w);
    }
}

static void test_varint_round_trip(void)
{
    static const int32_t v32[] = {0, 1, -1, 127, -128, 8191, -8192,
                                  1 << 20, -(1 << 20), INT32_MAX,
                                  INT32_MIN, INT32_MAX - 1, INT32_MIN + 1};
    static const int64_t v64[] = {0, 1, -1, INT32_MAX, INT32_MIN,
                                  (int64_t)INT32_MAX + 1,
                                  (int64_t)INT32_MIN - 1, 1700000000000LL,
                                  -1700000000000LL, INT64_MAX, INT64_MIN,
                                  INT64_MAX - 1, INT64_MIN + 1};
    sl_wr w;
    sl_rd r;

    sl_wr_init(&w, 0);
    for (size_t i = 0; i < SL_ARRAY_SIZE(v32); i++)
        sl_wr_varint(&w, v32[i]);
    for (size_t i = 0; i < SL_ARRAY_SIZE(v64); i++)
        sl_wr_varlong(&w, v64[i]);
    /* A sweep over every bit width, both signs. */
    for (int b = 0; b < 63; b++) {
        sl_wr_varlong(&w, (int64_t)1 << b);
        sl_wr_varlong(&w, -((int64_t)1 << b));
    }
    r = sl_rd_init(w.buf, w.len);
    for (size_t i = 0; i < SL_ARRAY_SIZE(v32); i++)
        ASSERT_EQ(sl_rd_varint(&r), v32[i]);
    for (size_t i = 0; i < SL_ARRAY_SIZE(v64); i++)
        ASSERT_EQ(sl_rd_varlong(&r), v64[i]);
    for (int b = 0; b < 63; b++) {
        ASSERT_EQ(sl_rd_varlong(&r), (int64_t)1 << b);
        ASSERT_EQ(sl_rd_varlong(&r), -((int64_t)1 << b));
    }
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_wr_free(&w);
}

static void test_varint_overlong(void)
{
    /* 32-bit: a 5th byte with bits beyond bit 31. */
    static const uint8_t big5[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    /* 32-bit: six bytes (continuation on the 5th). */
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    /* 64-bit: 10th byte with bits beyond bit 63. */
    static const uint8_t big10[] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x02};
    /* 64-bit: eleven continuation bytes. */
    static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x80, 0x00};
    /* Padded but in range: accepted (Java's ByteUtils does too). */
    static const uint8_t padded[] = {0x80, 0x80, 0x00};
    sl_rd r;

    r = sl_rd_init(big5, sizeof(big5));
    ASSERT_EQ(sl_rd_varint(&r), 0);
    ASSERT_EQ(r.err, SL_E_PARSE);
    r = sl_rd_init(six, sizeof(six));
    (void)sl_rd_uvarint(&r);
    ASSERT_EQ(r.err, SL_E_PARSE);
    r = sl_rd_init(big10, sizeof(big10));
    ASSERT_EQ(sl_rd_varlong(&r), 0);
    ASSERT_EQ(r.err, SL_E_PARSE);
    r = sl_rd_init(eleven, sizeof(eleven));
    (void)sl_rd_uvarlong(&r);
    ASSERT_EQ(r.err, SL_E_PARSE);
    /* big10's first five bytes are not a valid 32-bit varint either. */
    r = sl_rd_init(big10, sizeof(big10));
    (void)sl_rd_varint(&r);
    ASSERT_EQ(r.err, SL_E_PARSE);
    r = sl_rd_init(padded, sizeof(padded));
    ASSERT_EQ(sl_rd_varint(&r), 0);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
}

static void test_truncation_sticky(void)
{
    static const uint8_t b[] = {0x01, 0x02, 0x03, 0x80};
    sl_rd r = sl_rd_init(b, 3);

    ASSERT_EQ(sl_rd_u32(&r), 0);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
    ASSERT_TRUE(r.p == b); /* nothing consumed */
    /* Sticky: later reads fail although bytes are there. */
    ASSERT_EQ(sl_rd_u8(&r), 0);
    ASSERT_TRUE(sl_rd_bytes(&r, 1) == NULL);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
    /* The first error wins over later ones. */
    sl_rd_fail(&r, SL_E_PARSE);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);

    /* A varint cut off mid-way: truncated, position unchanged. */
    r = sl_rd_init(b + 3, 1);
    ASSERT_EQ(sl_rd_varint(&r), 0);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
    ASSERT_TRUE(r.p == b + 3);
    r = sl_rd_init(b, 0);
    (void)sl_rd_varlong(&r);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);

    /* An overlong varint leaves the position unchanged too. */
    {
        static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
        r = sl_rd_init(six, sizeof(six));
        (void)sl_rd_uvarint(&r);
        ASSERT_EQ(r.err, SL_E_PARSE);
        ASSERT_TRUE(r.p == six);
    }

    /* Skip past the end. */
    r = sl_rd_init(b, 3);
    sl_rd_skip(&r, 4);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
    ASSERT_EQ(sl_rd_left(&r), 3);
}

static void test_classic_strings(void)
{
    static const uint8_t b[] = {
        0x00, 0x03, 'a', 'b', 'c', /* "abc" */
        0xff, 0xff,                /* null */
        0x00, 0x00,                /* "" */
        0x00, 0x00, 0x00, 0x02, 'x', 'y', /* bytes "xy" */
        0xff, 0xff, 0xff, 0xff,    /* null bytes */
    };
    static const uint8_t bad_len[] = {0xff, 0xfe}; /* -2 */
    static const uint8_t cut[] = {0x00, 0x05, 'a', 'b'};
    sl_rd r = sl_rd_init(b, sizeof(b));
    sl_kstr s;

    ASSERT_KSTREQ(sl_rd_str(&r), "abc");
    s = sl_rd_str(&r);
    ASSERT_EQ(s.len, -1);
    ASSERT_TRUE(s.p == NULL);
    ASSERT_KSTREQ(sl_rd_str(&r), "");
    ASSERT_KSTREQ(sl_rd_bytes32(&r), "xy");
    ASSERT_KSTREQ(sl_rd_bytes32(&r), NULL);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);

    r = sl_rd_init(bad_len, sizeof(bad_len));
    ASSERT_EQ(sl_rd_str(&r).len, -1);
    ASSERT_EQ(r.err, SL_E_PARSE);
    r = sl_rd_init(cut, sizeof(cut));
    ASSERT_EQ(sl_rd_str(&r).len, -1);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
}

static void test_compact_strings(void)
{
    static const uint8_t b[] = {
        0x04, 'a', 'b', 'c', /* "abc" */
        0x00,                /* null */
        0x01,                /* "" */
    };
    /* N+1 = 2^32-1: N exceeds INT32_MAX. */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    static const uint8_t cut[] = {0x05, 'a', 'b'};
    sl_rd r = sl_rd_init(b, sizeof(b));
    sl_wr w;

    ASSERT_KSTREQ(sl_rd_compact_str(&r), "abc");
    ASSERT_KSTREQ(sl_rd_compact_str(&r), NULL);
    ASSERT_KSTREQ(sl_rd_compact_str(&r), "");
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);

    r = sl_rd_init(huge, sizeof(huge));
    ASSERT_EQ(sl_rd_compact_str(&r).len, -1);
    ASSERT_EQ(r.err, SL_E_PARSE);
    r = sl_rd_init(cut, sizeof(cut));
    ASSERT_EQ(sl_rd_compact_str(&r).len, -1);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);

    /* Writer: both forms, and back through sl_rd_kstr. */
    sl_wr_init(&w, 4);
    sl_wr_kstr(&w, SL_KSTR("abc"), true);
    sl_wr_kstr(&w, SL_KSTR_NULL, true);
    sl_wr_kstr(&w, SL_KSTR(""), true);
    expect_bytes(&w, b, sizeof(b));
    sl_wr_kstr(&w, SL_KSTR("hi"), false);
    sl_wr_kstr(&w, SL_KSTR_NULL, false);
    sl_wr_kbytes(&w, SL_KSTR("xyz"), false);
    sl_wr_kbytes(&w, SL_KSTR_NULL, true);
    r = sl_rd_init(w.buf, w.len);
    ASSERT_KSTREQ(sl_rd_kstr(&r, true), "abc");
    ASSERT_KSTREQ(sl_rd_kstr(&r, true), NULL);
    ASSERT_KSTREQ(sl_rd_kstr(&r, true), "");
    ASSERT_KSTREQ(sl_rd_kstr(&r, false), "hi");
    ASSERT_KSTREQ(sl_rd_kstr(&r, false), NULL);
    ASSERT_KSTREQ(sl_rd_kbytes(&r, false), "xyz");
    ASSERT_KSTREQ(sl_rd_kbytes(&r, true), NULL);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_left(&r), 0);
    sl_wr_free(&w);
}

static void test_array_len(void)
{
    /* int32 count 5, then 19 bytes: not enough for 5 x 4-byte elements. */
    uint8_t b[4 + 20] = {0x00, 0x00, 0x00, 0x05};
    static const uint8_t null_arr[] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xfe};
    static const uint8_t compact[] = {0x00, 0x03, 0xaa, 0xbb, 0x04, 0x00};
    sl_rd r;

    r = sl_rd_init(b, 4 + 19);
    ASSERT_EQ(sl_rd_array_len(&r, false, 4), -1);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
    r = sl_rd_init(b, 4 + 20);
    ASSERT_EQ(sl_rd_array_len(&r, false, 4), 5);
    ASSERT_EQ(r.err, 0);
    /* min_elem_size 0 counts as 1 byte per element. */
    r = sl_rd_init(b, 4 + 4);
    ASSERT_EQ(sl_rd_array_len(&r, false, 0), -1);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);
    r = sl_rd_init(b, 4 + 5);
    ASSERT_EQ(sl_rd_array_len(&r, false, 0), 5);
    /* A count of 2^31-1 with nothing behind it. */
    {
        static const uint8_t max[] = {0x7f, 0xff, 0xff, 0xff, 0x00};
        r = sl_rd_init(max, sizeof(max));
        ASSERT_EQ(sl_rd_array_len(&r, false, 1), -1);
        ASSERT_EQ(r.err, SL_E_TRUNCATED);
    }

    r = sl_rd_init(null_arr, sizeof(null_arr));
    ASSERT_EQ(sl_rd_array_len(&r, false, 4), -1);
    ASSERT_EQ(r.err, 0);
    r = sl_rd_init(neg, sizeof(neg));
    ASSERT_EQ(sl_rd_array_len(&r, false, 4), -1);
    ASSERT_EQ(r.err, SL_E_PARSE);

    /* Compact: 0 = null, 3 = two elements (here 2 bytes follow). */
    r = sl_rd_init(compact, sizeof(compact));
    ASSERT_EQ(sl_rd_array_len(&r, true, 1), -1);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_array_len(&r, true, 1), 2);
    sl_rd_skip(&r, 2);
    /* 4 = three elements, but only one byte is left. */
    ASSERT_EQ(sl_rd_array_len(&r, true, 1), -1);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);

    /* Writer forms. */
    {
        static const uint8_t want[] = {0xff, 0xff, 0xff, 0xff, 0x00,
                                       0x00, 0x00, 0x00, 0x07, 0x08};
        sl_wr w;

        sl_wr_init(&w, 0);
        sl_wr_array_len(&w, -1, false);
        sl_wr_array_len(&w, -1, true);
        sl_wr_array_len(&w, 7, false);
        sl_wr_array_len(&w, 7, true);
        expect_bytes(&w, want, sizeof(want));
        sl_wr_free(&w);
    }
}

static void test_tags(void)
{
    /* Two tagged fields (tag 0 size 2, tag 5 size 0), then a marker. */
    static const uint8_t b[] = {0x02, 0x00, 0x02, 0xaa, 0xbb,
                                0x05, 0x00, 0x7e};
    static const uint8_t cut[] = {0x01, 0x00, 0x03, 0xaa};
    sl_rd r = sl_rd_init(b, sizeof(b));
    sl_wr w;

    sl_rd_tags_skip(&r);
    ASSERT_EQ(r.err, 0);
    ASSERT_EQ(sl_rd_u8(&r), 0x7e);
    r = sl_rd_init(cut, sizeof(cut));
    sl_rd_tags_skip(&r);
    ASSERT_EQ(r.err, SL_E_TRUNCATED);

    sl_wr_init(&w, 0);
    sl_wr_tags_empty(&w, false);
    ASSERT_EQ(w.len, 0);
    sl_wr_tags_empty(&w, true);
    ASSERT_EQ(w.len, 1);
    ASSERT_EQ(w.buf[0], 0);
    sl_wr_free(&w);
}

static void test_writer_growth_release(void)
{
    sl_wr w;
    uint8_t *p;
    size_t len;
    int bad = 0;

    sl_wr_init(&w, 1);
    for (uint32_t i = 0; i < 100000; i++)
        sl_wr_u32(&w, i);
    ASSERT_EQ(w.len, 400000);
    ASSERT_TRUE(w.cap >= w.len);
    p = sl_wr_release(&w, &len);
    ASSERT_EQ(len, 400000);
    ASSERT_TRUE(w.buf == NULL);
    ASSERT_EQ(w.len, 0);
    ASSERT_EQ(w.cap, 0);
    {
        sl_rd r = sl_rd_init(p, len);
        for (uint32_t i = 0; i < 100000; i++)
            if (sl_rd_u32(&r) != i)
                bad++;
        ASSERT_EQ(bad, 0);
        ASSERT_EQ(r.err, 0);
    }
    sl_free(p);
    /* The released writer is reusable. */
    sl_wr_raw(&w, "abc", 3);
    sl_wr_raw(&w, NULL, 0);
    ASSERT_EQ(w.len, 3);
    ASSERT_MEMEQ(w.buf, "abc", 3);
    sl_wr_free(&w);
}

SL_TEST_MAIN(SL_TEST(test_int_big_endian), SL_TEST(test_varint_known_encodings),
             SL_TEST(test_varint_round_trip), SL_TEST(test_varint_overlong),
             SL_TEST(test_truncation_sticky), SL_TEST(test_classic_strings),
             SL_TEST(test_compact_strings), SL_TEST(test_array_len),
             SL_TEST(test_tags), SL_TEST(test_writer_growth_release))
