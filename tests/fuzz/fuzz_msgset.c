/*
 * libFuzzer target for legacy message sets (proxy/kafka/msgset.c), the
 * Produce v0-v2 bridge.
 *
 * Input: one control byte, then a message set of magic 0/1. Control bits:
 *   bit 0    keep the messages' CRCs as they are (else each top-level
 *            message's CRC-32 is rewritten in a copy, so that mutations
 *            reach past the checksum);
 *   bits 1-3 wrap the (CRC-fixed) set in one wrapper message compressed
 *            with: 0 nothing, 1 gzip, 2 snappy raw, 3 snappy xerial,
 *            4 lz4, 5 lz4 with Kafka 0.8-0.9's header checksum, 6 zstd
 *            (refused), 7 a wrapper whose value is the raw set (codec 1);
 *   bit 4    the wrapper's magic (0 or 1);
 *   bit 5    flag the wrapper LogAppendTime.
 * The set is converted with a 1 MiB bound. On success the output must be
 * one RecordBatch v2 (no codec, no producer id) whose records_count
 * records decode to the end of it, and nothing after it, or nothing at
 * all for a set with no whole message; on an error the writer must be
 * untouched and a message given.
 *
 * Seed corpus: tests/fuzz/corpus/msgset/.
 */
#include <stdio.h>
#include <stdlib.h>

#include <zlib.h>

#include "sluice/msgset.h"

#define MAX_OUT (1u << 20)

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_msgset: check failed: %s (%s:%d)\n",    \
                    #cond, __FILE__, __LINE__);                           \
            abort();                                                      \
        }                                                                 \
    } while (0)

static volatile uint8_t sink;

/* Rewrites the CRC of every top-level message whose size is in bounds. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0;

    while (n - off >= SL_MSGSET_LOG_OVERHEAD + 4) {
        sl_rd r = sl_rd_init(p + off + 8, 4);
        int32_t size = sl_rd_i32(&r);
        if (size < 4 || (size_t)size > n - off - SL_MSGSET_LOG_OVERHEAD)
            return;
        sl_wr_put_u32_at(p + off + SL_MSGSET_LOG_OVERHEAD,
                         (uint32_t)crc32(0, p + off + 16, (uInt)size - 4));
        off += SL_MSGSET_LOG_OVERHEAD + (size_t)size;
    }
}

static void check_output(const sl_wr *w, const sl_msgset_info *info)
{
    sl_rd r = sl_rd_init(w->buf, w->len), rr;
    sl_batch b, next;

    CHECK(sl_batch_next(&r, &b) == 0);
    CHECK(b.magic == 2 && sl_batch_codec(&b) == SL_CODEC_NONE);
    CHECK(b.producer_id == -1 && b.records_count == info->count);
    CHECK(sl_batch_next(&r, &next) == 1);
    rr = sl_rd_init(b.records, b.records_len);
    for (int32_t i = 0; i < b.records_count; i++) {
        sl_record rec;
        CHECK(sl_record_next(&rr, &rec) == 0);
        CHECK(rec.n_headers == 0 && rec.offset_delta == i);
        if (rec.key_len > 0)
            sink ^= rec.key[rec.key_len - 1];
        if (rec.value_len > 0)
            sink ^= rec.value[rec.value_len - 1];
    }
    CHECK(sl_rd_left(&rr) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int codecs[8] = {SL_CODEC_NONE, SL_CODEC_GZIP,
                                  SL_CODEC_SNAPPY, SL_CODEC_SNAPPY,
                                  SL_CODEC_LZ4, SL_CODEC_LZ4,
                                  SL_CODEC_ZSTD, SL_CODEC_GZIP};
    uint8_t ctl, *copy;
    sl_wr set, w;
    sl_msgset_info info;
    int16_t err;

    if (size < 1)
        return 0;
    ctl = data[0];
    copy = malloc(size);
    memcpy(copy, data + 1, size - 1);
    if (!(ctl & 1))
        fix_crcs(copy, size - 1);
    sl_wr_init(&set, size + 64);
    {
        int sel = (ctl >> 1) & 7;
        int8_t magic = (int8_t)((ctl >> 4) & 1);
        int8_t attrs = (int8_t)(codecs[sel] |
                                (ctl & 0x20 ? SL_MSG_ATTR_LOG_APPEND_TIME : 0));

        if (sel == 0) {
            sl_wr_raw(&set, copy, size - 1);
        } else {
            sl_wr c;
            sl_wr_init(&c, 64);
            if (sel == 7)
                sl_wr_raw(&c, copy, size - 1);
            else
                CHECK(sl_compress(codecs[sel], sel == 3, copy, size - 1,
                                  &c) == 0);
            if (sel == 5)
                CHECK(sl_lz4_set_kafka08_checksum(c.buf, c.len) == 0);
            sl_msgset_add(&set, magic, 0, attrs, 1700000000000, NULL, -1,
                          c.buf, (int32_t)c.len);
            sl_wr_free(&c);
        }
    }
    sl_wr_init(&w, 64);
    sl_wr_raw(&w, "x", 1); /* a byte before: the output is appended */
    err = sl_msgset_to_batch(set.buf, set.len, MAX_OUT, &w, &info);
    if (err == 0 && info.count == 0) {
        CHECK(w.len == 1); /* nothing to write: nothing written */
    } else if (err == 0) {
        sl_wr out = w;
        out.buf = w.buf + 1;
        out.len = w.len - 1;
        check_output(&out, &info);
        CHECK(w.len - 1 <= MAX_OUT);
    } else {
        CHECK(w.len == 1 && info.message != NULL);
    }
    sl_wr_free(&w);
    sl_wr_free(&set);
    free(copy);
    return 0;
}
