/* Legacy message sets (magic 0/1) converted to RecordBatch v2: both magics,
 * every codec a legacy producer used, wrappers with relative offsets, the
 * lz4 header checksum of Kafka 0.8-0.9, bad CRCs, truncation, nesting and
 * bombs; XXH32 against the reference library's vectors. */
#include "sluice/msgset.h"

#include <stdlib.h>

#include <zlib.h>

#include "sl_test.h"

#define MIB (1024 * 1024)

/* Vectors from the reference implementation (libxxhash 0.8.1, XXH32). */
static void test_xxh32_vectors(void)
{
    static const char nobody[] = "Nobody inspects the spammish repetition";
    uint8_t seq[100];

    for (int i = 0; i < 100; i++)
        seq[i] = (uint8_t)i;
    ASSERT_UEQ(sl_xxh32("", 0, 0), 0x02CC5D05u);
    ASSERT_UEQ(sl_xxh32("a", 1, 0), 0x550D7456u);
    ASSERT_UEQ(sl_xxh32("abc", 3, 0), 0x32D153FFu);
    ASSERT_UEQ(sl_xxh32(nobody, sizeof(nobody) - 1, 0), 0xE2293B2Fu);
    ASSERT_UEQ(sl_xxh32(seq, sizeof(seq), 0), 0x7F89BA44u);
    ASSERT_UEQ(sl_xxh32("", 0, 0x9747B28Cu), 0x8D3B42D8u);
    ASSERT_UEQ(sl_xxh32("abc", 3, 0x9747B28Cu), 0x4D4CB222u);
    ASSERT_UEQ(sl_xxh32(seq, sizeof(seq), 0x9747B28Cu), 0x6BCB75C0u);
}

/* liblz4 writes a correct frame header checksum; sl_xxh32 must agree. */
static void test_lz4_header_checksum_is_liblz4s(void)
{
    sl_wr w;

    sl_wr_init(&w, 0);
    ASSERT_EQ(sl_compress(SL_CODEC_LZ4, false, (const uint8_t *)"abcdef", 6,
                          &w),
              0);
    ASSERT_TRUE(w.len > 7);
    ASSERT_UEQ(w.buf[6], (sl_xxh32(w.buf + 4, 2, 0) >> 8) & 0xFF);
    sl_wr_free(&w);
}

typedef struct rec {
    const char *key, *value; /* NULL: null */
    int64_t ts;
} rec;

/* Decodes the batch sl_msgset_to_batch wrote and compares its records. */
static void check_batch(const sl_wr *w, const rec *want, int n)
{
    sl_rd r = sl_rd_init(w->buf, w->len), rr;
    sl_batch b;
    sl_batch next;

    ASSERT_EQ(sl_batch_next(&r, &b), 0);
    ASSERT_EQ(b.magic, 2);
    ASSERT_EQ(sl_batch_codec(&b), SL_CODEC_NONE);
    ASSERT_EQ(b.attributes & SL_BATCH_ATTR_LOG_APPEND_TIME, 0);
    ASSERT_EQ(b.producer_id, -1);
    ASSERT_EQ(b.base_sequence, -1);
    ASSERT_EQ(b.records_count, n);
    ASSERT_EQ(sl_batch_next(&r, &next), 1);
    rr = sl_rd_init(b.records, b.records_len);
    for (int i = 0; i < n; i++) {
        sl_record rec;
        ASSERT_EQ(sl_record_next(&rr, &rec), 0);
        ASSERT_EQ(rec.offset_delta, i);
        ASSERT_EQ(rec.n_headers, 0);
        ASSERT_EQ((int64_t)((uint64_t)b.base_timestamp +
                            (uint64_t)rec.timestamp_delta),
                  want[i].ts);
        if (want[i].key == NULL) {
            ASSERT_EQ(rec.key_len, -1);
        } else {
            ASSERT_EQ(rec.key_len, (int32_t)strlen(want[i].key));
            ASSERT_MEMEQ(rec.key, want[i].key, strlen(want[i].key));
        }
        if (want[i].value == NULL) {
            ASSERT_EQ(rec.value_len, -1);
        } else {
            ASSERT_EQ(rec.value_len, (int32_t)strlen(want[i].value));
            ASSERT_MEMEQ(rec.value, want[i].value, strlen(want[i].value));
        }
    }
    ASSERT_EQ(sl_rd_left(&rr), 0);
}

static void add_recs(sl_wr *w, int8_t magic, const rec *recs, int n,
                     bool relative)
{
    for (int i = 0; i < n; i++)
        sl_msgset_add(w, magic, relative ? i : 1000 + i, 0, recs[i].ts,
                      recs[i].key,
                      recs[i].key ? (int32_t)strlen(recs[i].key) : -1,
                      recs[i].value,
                      recs[i].value ? (int32_t)strlen(recs[i].value) : -1);
}

/* A wrapper message whose value is the compressed inner set. */
static void add_wrapper(sl_wr *w, int8_t magic, int codec, bool xerial,
                        const sl_wr *inner, int64_t ts, int8_t extra_attrs)
{
    sl_wr c;

    sl_wr_init(&c, 0);
    ASSERT_EQ(sl_compress(codec, xerial, inner->buf, inner->len, &c), 0);
    if (codec == SL_CODEC_LZ4 && magic == 0)
        ASSERT_EQ(sl_lz4_set_kafka08_checksum(c.buf, c.len), 0);
    sl_msgset_add(w, magic, magic == 1 ? 2 : 0, (int8_t)(codec | extra_attrs),
                  ts, NULL, -1, c.buf, (int32_t)c.len);
    sl_wr_free(&c);
}

static int16_t convert(const sl_wr *in, size_t max_out, sl_wr *out,
                       sl_msgset_info *info)
{
    return sl_msgset_to_batch(in->buf, in->len, max_out, out, info);
}

/* The message a Kafka 0.8 producer writes for key "k", value "v" (its
 * CRC-32 from Python's zlib.crc32). */
static void test_known_bytes(void)
{
    static const uint8_t want[] = {
        0, 0, 0, 0, 0, 0, 0, 0, /* offset */
        0, 0, 0, 16,            /* size */
        0x1f, 0xec, 0xd7, 0x0a, /* crc */
        0, 0,                   /* magic, attributes */
        0, 0, 0, 1, 'k', 0, 0, 0, 1, 'v'};
    sl_wr w, out;
    sl_msgset_info info;
    rec r = {"k", "v", -1};

    sl_wr_init(&w, 0);
    sl_msgset_add(&w, 0, 0, 0, 0, "k", 1, "v", 1);
    ASSERT_EQ(w.len, sizeof(want));
    ASSERT_MEMEQ(w.buf, want, sizeof(want));
    sl_wr_init(&out, 0);
    ASSERT_EQ(sl_msgset_to_batch(want, sizeof(want), MIB, &out, &info), 0);
    ASSERT_EQ(info.magic, 0);
    ASSERT_EQ(info.count, 1);
    check_batch(&out, &r, 1);
    sl_wr_free(&out);
    sl_wr_free(&w);
}

static const rec sample[] = {
    {"k0", "v0", 1700000000000},
    {NULL, "null key", 1700000000001},
    {"", "", 1700000000002},
    {"tombstone", NULL, 1699999999999},
    {NULL, NULL, 1700000000004},
};
#define N_SAMPLE ((int)(sizeof(sample) / sizeof(sample[0])))

/* Magic 0 has no timestamp: every record gets -1. */
static rec as_magic0(rec r)
{
    r.ts = -1;
    return r;
}

static void test_uncompressed_both_magics(void)
{
    for (int8_t magic = 0; magic <= 1; magic++) {
        sl_wr in, out;
        sl_msgset_info info;
        rec want[N_SAMPLE];

        for (int i = 0; i < N_SAMPLE; i++)
            want[i] = magic == 0 ? as_magic0(sample[i]) : sample[i];
        sl_wr_init(&in, 0);
        sl_wr_init(&out, 0);
        add_recs(&in, magic, sample, N_SAMPLE, false);
        ASSERT_EQ(convert(&in, MIB, &out, &info), 0);
        ASSERT_EQ(info.magic, magic);
        ASSERT_EQ(info.codec, SL_CODEC_NONE);
        ASSERT_EQ(info.count, N_SAMPLE);
        ASSERT_TRUE(!info.log_append_time);
        check_batch(&out, want, N_SAMPLE);
        sl_wr_free(&in);
        sl_wr_free(&out);
    }
}

/* Every codec of the legacy formats, both magics; magic-1 wrappers with
 * relative inner offsets (0..n-1) and with absolute ones (which some
 * clients wrote; brokers rewrite them rather than refuse). */
static void test_wrappers_every_codec(void)
{
    static const struct {
        int codec;
        bool xerial;
    } codecs[] = {{SL_CODEC_GZIP, false},
                  {SL_CODEC_SNAPPY, false},
                  {SL_CODEC_SNAPPY, true},
                  {SL_CODEC_LZ4, false}};

    for (size_t c = 0; c < SL_ARRAY_SIZE(codecs); c++)
        for (int8_t magic = 0; magic <= 1; magic++)
            for (int relative = 0; relative <= 1; relative++) {
                sl_wr inner, in, out;
                sl_msgset_info info;
                rec want[N_SAMPLE];

                for (int i = 0; i < N_SAMPLE; i++)
                    want[i] = magic == 0 ? as_magic0(sample[i]) : sample[i];
                sl_wr_init(&inner, 0);
                sl_wr_init(&in, 0);
                sl_wr_init(&out, 0);
                add_recs(&inner, magic, sample, N_SAMPLE, relative);
                add_wrapper(&in, magic, codecs[c].codec, codecs[c].xerial,
                            &inner, 1700000000009, 0);
                ASSERT_EQ(convert(&in, MIB, &out, &info), 0);
                ASSERT_EQ(info.codec, codecs[c].codec);
                ASSERT_EQ(info.count, N_SAMPLE);
                ASSERT_EQ(info.decompressed, inner.len);
                check_batch(&out, want, N_SAMPLE);
                sl_wr_free(&inner);
                sl_wr_free(&in);
                sl_wr_free(&out);
            }
}

/* The Kafka 0.8-0.9 lz4 header checksum is accepted for magic 0 only (as
 * Kafka reads it); a correct one is accepted for both. */
static void test_lz4_legacy_header_checksum(void)
{
    sl_wr inner, c, in, out;
    sl_msgset_info info;

    sl_wr_init(&inner, 0);
    add_recs(&inner, 1, sample, N_SAMPLE, true);
    sl_wr_init(&c, 0);
    ASSERT_EQ(sl_compress(SL_CODEC_LZ4, false, inner.buf, inner.len, &c), 0);
    ASSERT_EQ(sl_lz4_set_kafka08_checksum(c.buf, c.len), 0);
    /* Magic 1 with the old checksum does not decompress, for a broker
     * too (Kafka 3.9: UNKNOWN_SERVER_ERROR, legacy_differential). */
    sl_wr_init(&in, 0);
    sl_wr_init(&out, 0);
    sl_msgset_add(&in, 1, 4, SL_CODEC_LZ4, 5, NULL, -1, c.buf,
                  (int32_t)c.len);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_UNKNOWN_SERVER_ERROR);
    ASSERT_EQ(out.len, 0);
    sl_wr_free(&in);
    sl_wr_free(&c);
    sl_wr_free(&inner);
    /* Magic 0 with a correct checksum. */
    sl_wr_init(&inner, 0);
    add_recs(&inner, 0, sample, N_SAMPLE, true);
    sl_wr_init(&c, 0);
    ASSERT_EQ(sl_compress(SL_CODEC_LZ4, false, inner.buf, inner.len, &c), 0);
    sl_wr_init(&in, 0);
    sl_msgset_add(&in, 0, 0, SL_CODEC_LZ4, 0, NULL, -1, c.buf,
                  (int32_t)c.len);
    ASSERT_EQ(convert(&in, MIB, &out, &info), 0);
    ASSERT_EQ(info.count, N_SAMPLE);
    ASSERT_EQ(sl_lz4_set_kafka08_checksum((uint8_t *)"xyz", 3), SL_E_PARSE);
    sl_wr_free(&in);
    sl_wr_free(&c);
    sl_wr_free(&inner);
    sl_wr_free(&out);
}

/* A magic-1 wrapper flagged LogAppendTime stands for its inner records'
 * timestamps, and the flag is reported (the plan refuses it as a broker
 * does, unless a CreateTime topic has a timestamp to check). */
static void test_log_append_time_wrapper(void)
{
    sl_wr inner, in, out;
    sl_msgset_info info;
    rec want[N_SAMPLE];

    for (int i = 0; i < N_SAMPLE; i++) {
        want[i] = sample[i];
        want[i].ts = 1234567;
    }
    sl_wr_init(&inner, 0);
    sl_wr_init(&in, 0);
    sl_wr_init(&out, 0);
    add_recs(&inner, 1, sample, N_SAMPLE, true);
    add_wrapper(&in, 1, SL_CODEC_GZIP, false, &inner, 1234567,
                SL_MSG_ATTR_LOG_APPEND_TIME);
    ASSERT_EQ(convert(&in, MIB, &out, &info), 0);
    ASSERT_TRUE(info.log_append_time);
    check_batch(&out, want, N_SAMPLE);
    sl_wr_free(&inner);
    sl_wr_free(&in);
    sl_wr_free(&out);
}

/* What a broker refuses, and with which error (Kafka 3.9's answers,
 * legacy_differential@kafka). */
static void test_refusals(void)
{
    sl_wr in, inner, out;
    sl_msgset_info info;

    sl_wr_init(&out, 0);
    /* Nothing, or only a partial message: nothing to write, success. */
    ASSERT_EQ(sl_msgset_to_batch((const uint8_t *)"", 0, MIB, &out, &info),
              0);
    ASSERT_EQ(info.count, 0);
    ASSERT_EQ(out.len, 0);
    sl_wr_init(&in, 0);
    add_recs(&in, 1, sample, 1, false);
    ASSERT_EQ(sl_msgset_to_batch(in.buf, in.len - 1, MIB, &out, &info), 0);
    ASSERT_EQ(info.count, 0);
    ASSERT_EQ(out.len, 0);
    /* A partial message after whole ones is dropped, as a broker trims it. */
    add_recs(&in, 1, sample + 1, 1, false);
    ASSERT_EQ(sl_msgset_to_batch(in.buf, in.len - 3, MIB, &out, &info), 0);
    ASSERT_EQ(info.count, 1);
    out.len = 0;
    /* A bad CRC. */
    in.buf[SL_MSGSET_LOG_OVERHEAD + 10] ^= 1;
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_CORRUPT_MESSAGE);
    ASSERT_EQ(out.len, 0);
    in.len = 0;
    /* Mixed magics. */
    add_recs(&in, 0, sample, 1, false);
    add_recs(&in, 1, sample + 1, 1, false);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    /* Magic 2 where a message should be. */
    sl_msgset_add(&in, 2, 0, 0, 0, "k", 1, "v", 1);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    /* Key and value lengths that do not fill the message. */
    add_recs(&in, 0, sample, 1, false);
    in.buf[SL_MSGSET_LOG_OVERHEAD - 1] += 1; /* size one more */
    sl_wr_i8(&in, 0);
    sl_wr_put_u32_at(in.buf + SL_MSGSET_LOG_OVERHEAD,
                     (uint32_t)crc32(0, in.buf + SL_MSGSET_LOG_OVERHEAD + 4,
                                     (uInt)(in.len - SL_MSGSET_LOG_OVERHEAD -
                                            4)));
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_CORRUPT_MESSAGE);
    ASSERT_STREQ(info.message,
                 "message key and value lengths disagree with its size");
    in.len = 0;
    /* A wrapper beside another message, either order. */
    sl_wr_init(&inner, 0);
    add_recs(&inner, 1, sample, 2, true);
    add_wrapper(&in, 1, SL_CODEC_GZIP, false, &inner, 0, 0);
    add_recs(&in, 1, sample, 1, false);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    add_recs(&in, 1, sample, 1, false);
    add_wrapper(&in, 1, SL_CODEC_GZIP, false, &inner, 0, 0);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    /* A wrapper inside a wrapper. */
    {
        sl_wr nested;
        sl_wr_init(&nested, 0);
        add_wrapper(&nested, 1, SL_CODEC_GZIP, false, &inner, 0, 0);
        add_wrapper(&in, 1, SL_CODEC_GZIP, false, &nested, 0, 0);
        ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
        sl_wr_free(&nested);
        in.len = 0;
    }
    /* Inner messages of another magic than the wrapper's. */
    add_wrapper(&in, 0, SL_CODEC_GZIP, false, &inner, 0, 0);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    /* An inner message with a bad CRC. */
    inner.buf[SL_MSGSET_LOG_OVERHEAD + 12] ^= 1;
    add_wrapper(&in, 1, SL_CODEC_SNAPPY, false, &inner, 0, 0);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_CORRUPT_MESSAGE);
    in.len = 0;
    /* A wrapper with a null value, with an empty inner set, with data that
     * does not decompress, with zstd (magic 2 only), with codec 5. */
    sl_msgset_add(&in, 1, 0, SL_CODEC_GZIP, 0, NULL, -1, NULL, -1);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    inner.len = 0;
    add_wrapper(&in, 1, SL_CODEC_GZIP, false, &inner, 0, 0);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    sl_msgset_add(&in, 1, 0, SL_CODEC_LZ4, 0, NULL, -1, "garbage!", 8);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_UNKNOWN_SERVER_ERROR);
    in.len = 0;
    sl_msgset_add(&in, 1, 0, SL_CODEC_ZSTD, 0, NULL, -1, "x", 1);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_INVALID_RECORD);
    in.len = 0;
    sl_msgset_add(&in, 1, 0, 5, 0, NULL, -1, "x", 1);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_CORRUPT_MESSAGE);
    ASSERT_EQ(out.len, 0);
    ASSERT_TRUE(info.message != NULL);
    sl_wr_free(&inner);
    sl_wr_free(&in);
    sl_wr_free(&out);
}

/* A wrapper that decompresses past the bound fails before it costs more
 * than about the bound; so does a plain set that converts past it. */
static void test_bombs_bounded(void)
{
    sl_wr inner, in, out;
    sl_msgset_info info;
    uint8_t *zeros = calloc(1, 4 * MIB);

    sl_wr_init(&inner, 0);
    for (int i = 0; i < 16; i++)
        sl_msgset_add(&inner, 1, i, 0, 0, NULL, -1, zeros, 4 * MIB);
    sl_wr_init(&in, 0);
    sl_wr_init(&out, 0);
    add_wrapper(&in, 1, SL_CODEC_GZIP, false, &inner, 0, 0);
    ASSERT_TRUE(in.len < MIB);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_MESSAGE_TOO_LARGE);
    ASSERT_EQ(out.len, 0);
    ASSERT_EQ(convert(&in, 128 * MIB, &out, &info), 0);
    ASSERT_EQ(info.count, 16);
    out.len = 0;
    in.len = 0;
    sl_msgset_add(&in, 1, 0, 0, 0, NULL, -1, zeros, MIB);
    ASSERT_EQ(convert(&in, MIB, &out, &info), SL_KERR_MESSAGE_TOO_LARGE);
    ASSERT_EQ(convert(&in, 2 * MIB, &out, &info), 0);
    free(zeros);
    sl_wr_free(&inner);
    sl_wr_free(&in);
    sl_wr_free(&out);
}

SL_TEST_MAIN(SL_TEST(test_xxh32_vectors),
             SL_TEST(test_lz4_header_checksum_is_liblz4s),
             SL_TEST(test_known_bytes), SL_TEST(test_uncompressed_both_magics),
             SL_TEST(test_wrappers_every_codec),
             SL_TEST(test_lz4_legacy_header_checksum),
             SL_TEST(test_log_append_time_wrapper), SL_TEST(test_refusals),
             SL_TEST(test_bombs_bounded))
