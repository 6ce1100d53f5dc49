/*
 * libFuzzer target: the input is a Produce partition's records bytes.
 * Walks the batches with sl_batch_next, decompresses (max 1 MiB), and
 * iterates records and headers, touching every byte they point at so
 * ASan sees any out-of-bounds pointer. Every fully decoded batch is then
 * rebuilt with sl_batch_builder and decoded again: the records must come
 * back identical.
 *
 * A mutated batch almost never keeps a valid CRC-32C, which would stop
 * the fuzzer at the checksum. So unless bit 0 of the first input byte is
 * set (the top byte of baseOffset, which nothing checks), the target
 * rewrites each batch's CRC in a copy of the input before parsing.
 */
#include "sluice/record.h"

#include <stdlib.h>

#define MAX_OUT (1u << 20)

static volatile uint8_t sink;

static void touch(const uint8_t *p, int32_t len)
{
    uint8_t x = 0;
    for (int32_t i = 0; i < len; i++)
        x ^= p[i];
    sink ^= x;
}

/* Rewrites the CRC of every batch whose length field is in bounds. */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0;

    while (n - off >= SL_BATCH_HEADER_SIZE) {
        sl_rd r = sl_rd_init(p + off + 8, 4);
        int32_t len = sl_rd_i32(&r);
        if (len < SL_BATCH_HEADER_SIZE - 12 || (size_t)len > n - off - 12)
            return;
        sl_wr_put_u32_at(p + off + 17,
                         sl_crc32c(0, p + off + 21, (size_t)len + 12 - 21));
        off += (size_t)len + 12;
    }
}

/* Decodes n records from recs; returns how many decoded cleanly. */
static int32_t walk(const uint8_t *recs, size_t len, int32_t n,
                    sl_record *out)
{
    sl_rd r = sl_rd_init(recs, len);
    int32_t i;

    for (i = 0; i < n; i++) {
        sl_record rec;
        sl_rd hr;

        if (sl_record_next(&r, &rec) != 0)
            break;
        if (rec.key_len > 0)
            touch(rec.key, rec.key_len);
        if (rec.value_len > 0)
            touch(rec.value, rec.value_len);
        hr = sl_rd_init(rec.headers, rec.headers_len);
        for (int32_t j = 0; j < rec.n_headers; j++) {
            sl_header h;
            if (sl_header_next(&hr, &h) != 0)
                abort(); /* sl_record_next validated the headers */
            touch(h.key, h.key_len);
            if (h.value_len > 0)
                touch(h.value, h.value_len);
        }
        if (out)
            out[i] = rec;
    }
    return i;
}

static bool same_bytes(const uint8_t *a, int32_t alen, const uint8_t *b,
                       int32_t blen)
{
    return alen == blen && (alen <= 0 || memcmp(a, b, (size_t)alen) == 0);
}

/* Field by field: the input may pad its varints, the builder does not. */
static bool same_record(const sl_record *a, const sl_record *b)
{
    sl_rd ha = sl_rd_init(a->headers, a->headers_len);
    sl_rd hb = sl_rd_init(b->headers, b->headers_len);

    if (a->timestamp_delta != b->timestamp_delta ||
        a->n_headers != b->n_headers ||
        !same_bytes(a->key, a->key_len, b->key, b->key_len) ||
        !same_bytes(a->value, a->value_len, b->value, b->value_len))
        return false;
    for (int32_t j = 0; j < a->n_headers; j++) {
        sl_header x, y;
        if (sl_header_next(&ha, &x) != 0 || sl_header_next(&hb, &y) != 0 ||
            !same_bytes(x.key, x.key_len, y.key, y.key_len) ||
            !same_bytes(x.value, x.value_len, y.value, y.value_len))
            return false;
    }
    return true;
}

/* Re-encodes decoded records and checks they decode to the same thing. */
static void rebuild(const sl_batch *b, const sl_record *recs, int32_t n)
{
    sl_batch_builder bb;
    sl_batch b2;
    sl_wr w;
    sl_rd r;
    sl_record *again = sl_calloc((size_t)n, sizeof(*again));

    sl_batch_builder_init(&bb, b->base_timestamp);
    for (int32_t i = 0; i < n; i++) {
        sl_header *hs = sl_calloc((size_t)recs[i].n_headers, sizeof(*hs));
        sl_rd hr = sl_rd_init(recs[i].headers, recs[i].headers_len);

        for (int32_t j = 0; j < recs[i].n_headers; j++)
            (void)sl_header_next(&hr, &hs[j]);
        sl_batch_builder_add(
            &bb,
            (int64_t)((uint64_t)b->base_timestamp +
                      (uint64_t)recs[i].timestamp_delta),
            recs[i].key, recs[i].key_len, recs[i].value, recs[i].value_len,
            hs, recs[i].n_headers);
        sl_free(hs);
    }
    sl_wr_init(&w, 0);
    if (sl_batch_builder_finish(&bb, &w, SL_CODEC_NONE, false, b->producer_id,
                                b->producer_epoch, b->base_sequence) != 0)
        abort();
    r = sl_rd_init(w.buf, w.len);
    if (sl_batch_next(&r, &b2) != 0 || b2.records_count != n ||
        walk(b2.records, b2.records_len, n, again) != n)
        abort();
    for (int32_t i = 0; i < n; i++)
        if (!same_record(&again[i], &recs[i]))
            abort();
    sl_wr_free(&w);
    sl_batch_builder_free(&bb);
    sl_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = sl_malloc(size);
    sl_batch b;
    sl_rd r;

    if (size > 0)
        memcpy(copy, data, size);
    if (size == 0 || !(data[0] & 1))
        fix_crcs(copy, size);
    r = sl_rd_init(copy, size);
    while (sl_batch_next(&r, &b) == 0) {
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        const uint8_t *recs = b.records;
        size_t len = b.records_len;
        sl_record *out;
        int32_t n, cap;

        if (sl_batch_codec(&b) != SL_CODEC_NONE) {
            if (sl_decompress(sl_batch_codec(&b), b.records, b.records_len,
                              MAX_OUT, &plain, &plain_len) != 0)
                continue;
            if (plain_len > MAX_OUT)
                abort();
            recs = plain;
            len = plain_len;
        }
        /* A record takes at least 7 bytes: bounds the array whatever
         * records_count claims. */
        cap = (int32_t)SL_MIN((size_t)b.records_count, len / 7 + 1);
        out = sl_calloc((size_t)cap, sizeof(*out));
        n = walk(recs, len, cap, out);
        if (n == b.records_count)
            rebuild(&b, out, n);
        sl_free(out);
        sl_free(plain);
    }
    sl_free(copy);
    return 0;
}
