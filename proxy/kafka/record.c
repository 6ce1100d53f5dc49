/*
 * RecordBatch v2 decoding (zero-copy, no allocation) and encoding.
 * Layouts: see PROTOCOL.md and include/sluice/record.h.
 */
#include "sluice/record.h"

/* Bytes of a batch after baseOffset (8) and batchLength (4). */
#define BATCH_LOG_OVERHEAD 12
#define BATCH_LENGTH_MIN (SL_BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD) /* 49 */
/* v0/v1 message sets keep their magic byte at this offset too. */
#define MAGIC_OFFSET 16
/* Smallest record on the wire: a one-byte length prefix, attributes, and
 * one-byte varints for timestamp delta, offset delta, key length, value
 * length and header count. */
#define RECORD_MIN_SIZE 7

/* Makes r's error sticky and returns it. */
static int fail(sl_rd *r, int err)
{
    sl_rd_fail(r, err);
    return err;
}

int sl_batch_next(sl_rd *r, sl_batch *b)
{
    const uint8_t *raw = r->p;
    size_t left = sl_rd_left(r);
    sl_rd h;
    int32_t len;

    if (r->err)
        return r->err;
    if (left == 0)
        return 1;
    if (left < BATCH_LOG_OVERHEAD)
        return fail(r, SL_E_TRUNCATED);
    h = sl_rd_init(raw, left);
    b->base_offset = sl_rd_i64(&h);
    len = sl_rd_i32(&h);
    /* Look at the magic before judging the length: a legacy message can
     * be shorter than a v2 header and deserves UNSUPPORTED, not PARSE. */
    if (len > MAGIC_OFFSET - BATCH_LOG_OVERHEAD && left > MAGIC_OFFSET &&
        raw[MAGIC_OFFSET] != 2)
        return fail(r, SL_E_UNSUPPORTED);
    if (len < BATCH_LENGTH_MIN)
        return fail(r, SL_E_PARSE);
    if ((size_t)len > left - BATCH_LOG_OVERHEAD)
        return fail(r, SL_E_TRUNCATED);

    /* The whole header is in bounds now (len >= 49), so h cannot fail. */
    b->batch_length = len;
    b->partition_leader_epoch = sl_rd_i32(&h);
    b->magic = sl_rd_i8(&h);
    b->crc = sl_rd_u32(&h);
    b->attributes = sl_rd_i16(&h);
    b->last_offset_delta = sl_rd_i32(&h);
    b->base_timestamp = sl_rd_i64(&h);
    b->max_timestamp = sl_rd_i64(&h);
    b->producer_id = sl_rd_i64(&h);
    b->producer_epoch = sl_rd_i16(&h);
    b->base_sequence = sl_rd_i32(&h);
    b->records_count = sl_rd_i32(&h);
    b->raw = raw;
    b->raw_len = BATCH_LOG_OVERHEAD + (size_t)len;
    b->records = raw + SL_BATCH_HEADER_SIZE;
    b->records_len = b->raw_len - SL_BATCH_HEADER_SIZE;

    if (sl_crc32c(0, raw + SL_BATCH_CRC_OFFSET,
                  b->raw_len - SL_BATCH_CRC_OFFSET) != b->crc)
        return fail(r, SL_E_CRC);
    /* Produce batches carry contiguous offset deltas 0..count-1 and at
     * least one record; the broker's LogValidator refuses any other
     * lastOffsetDelta or count as an invalid record (INVALID), not as
     * corrupt bytes. (Fetched batches can have gaps after compaction;
     * Sluice never decodes those.) */
    if (b->records_count <= 0 ||
        b->last_offset_delta != b->records_count - 1)
        return fail(r, SL_E_INVALID);
    /* More records than the bytes could hold: a broker finds too few
     * (INVALID_RECORD too). */
    if (sl_batch_codec(b) == SL_CODEC_NONE &&
        (size_t)b->records_count > b->records_len / RECORD_MIN_SIZE)
        return fail(r, SL_E_INVALID);
    r->p = raw + b->raw_len;
    return 0;
}

/* A varint length (-1 = null) and that many bytes. */
static void read_nullable(sl_rd *r, const uint8_t **p, int32_t *len)
{
    *len = sl_rd_varint(r);
    *p = NULL;
    if (r->err)
        return;
    if (*len < -1)
        sl_rd_fail(r, SL_E_PARSE);
    else if (*len >= 0)
        *p = sl_rd_bytes(r, (size_t)*len);
}

static int header_read(sl_rd *r, sl_header *h)
{
    read_nullable(r, &h->key, &h->key_len);
    if (!r->err && h->key_len < 0)
        sl_rd_fail(r, SL_E_PARSE); /* header keys are never null */
    read_nullable(r, &h->value, &h->value_len);
    return r->err;
}

int sl_record_next(sl_rd *r, sl_record *rec)
{
    const uint8_t *start = r->p;
    const uint8_t *body;
    int32_t len;
    sl_rd br;
    int rc;

    if (r->err)
        return r->err;
    len = sl_rd_varint(r);
    if (r->err)
        goto fail_rd;
    if (len < 0) {
        sl_rd_fail(r, SL_E_PARSE);
        goto fail_rd;
    }
    if ((body = sl_rd_bytes(r, (size_t)len)) == NULL)
        goto fail_rd;

    /* Fields are read within the record's own length. */
    br = sl_rd_init(body, (size_t)len);
    rec->attributes = sl_rd_i8(&br);
    rec->timestamp_delta = sl_rd_varlong(&br);
    rec->offset_delta = sl_rd_varint(&br);
    read_nullable(&br, &rec->key, &rec->key_len);
    read_nullable(&br, &rec->value, &rec->value_len);
    rec->n_headers = sl_rd_varint(&br);
    if (!br.err && rec->n_headers < 0)
        sl_rd_fail(&br, SL_E_PARSE);
    rec->headers = br.p;
    for (int32_t i = 0; i < rec->n_headers && !br.err; i++) {
        sl_header h;
        (void)header_read(&br, &h);
    }
    if (br.err)
        goto fail_body;
    rec->headers_len = (size_t)(br.p - rec->headers);
    if (sl_rd_left(&br) != 0) {
        rc = SL_E_PARSE; /* length prefix longer than the fields */
        goto fail;
    }
    return 0;

fail_body:
    /* Running out inside the body means the length prefix is shorter
     * than the fields: malformed, not a cut-off buffer. */
    rc = br.err == SL_E_TRUNCATED ? SL_E_PARSE : br.err;
    goto fail;
fail_rd:
    rc = r->err;
    r->err = 0; /* re-set below together with the rewind */
fail:
    r->p = start;
    return fail(r, rc);
}

int sl_header_next(sl_rd *hr, sl_header *h)
{
    const uint8_t *start = hr->p;
    int rc;

    if (hr->err)
        return hr->err;
    if ((rc = header_read(hr, h)) != 0)
        hr->p = start;
    return rc;
}

/* ---- encoding -------------------------------------------------------- */

/* Encoded size of a zigzag varint/varlong. */
static size_t varint_size(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 1;

    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

/* Encoded size of a varint length (-1 = null) and its bytes. */
static size_t nullable_size(int32_t len)
{
    return varint_size(len) + (len > 0 ? (size_t)len : 0);
}

static void write_nullable(sl_wr *w, const void *p, int32_t len)
{
    sl_wr_varint(w, len < 0 ? -1 : len);
    if (len > 0)
        sl_wr_raw(w, p, (size_t)len);
}

void sl_batch_builder_init(sl_batch_builder *bb, int64_t base_timestamp)
{
    sl_wr_init(&bb->records, 0);
    bb->count = 0;
    bb->base_timestamp = base_timestamp;
    bb->max_timestamp = base_timestamp;
}

void sl_batch_builder_add(sl_batch_builder *bb, int64_t timestamp,
                          const void *key, int32_t key_len,
                          const void *value, int32_t value_len,
                          const sl_header *headers, int32_t n_headers)
{
    /* Two's-complement difference: no signed overflow on odd inputs. */
    int64_t ts_delta =
        (int64_t)((uint64_t)timestamp - (uint64_t)bb->base_timestamp);
    size_t body = 1 + varint_size(ts_delta) + varint_size(bb->count) +
                  nullable_size(key_len) + nullable_size(value_len) +
                  varint_size(n_headers);
    sl_wr *w = &bb->records;

    for (int32_t i = 0; i < n_headers; i++)
        body += nullable_size(headers[i].key_len) +
                nullable_size(headers[i].value_len);

    sl_wr_varint(w, (int32_t)body);
    sl_wr_i8(w, 0); /* record attributes: unused */
    sl_wr_varlong(w, ts_delta);
    sl_wr_varint(w, bb->count);
    write_nullable(w, key, key_len);
    write_nullable(w, value, value_len);
    sl_wr_varint(w, n_headers);
    for (int32_t i = 0; i < n_headers; i++) {
        write_nullable(w, headers[i].key, headers[i].key_len);
        write_nullable(w, headers[i].value, headers[i].value_len);
    }

    if (bb->count == 0 || timestamp > bb->max_timestamp)
        bb->max_timestamp = timestamp;
    bb->count++;
}

int sl_batch_builder_finish(sl_batch_builder *bb, sl_wr *w, int codec,
                            bool xerial, int64_t producer_id,
                            int16_t producer_epoch, int32_t base_sequence)
{
    size_t start = w->len, len;
    int rc;

    sl_wr_i64(w, 0);  /* baseOffset: the broker assigns offsets */
    sl_wr_i32(w, 0);  /* batchLength, patched below */
    sl_wr_i32(w, -1); /* partitionLeaderEpoch: producers send -1 */
    sl_wr_i8(w, 2);   /* magic */
    sl_wr_u32(w, 0);  /* crc, patched below */
    sl_wr_i16(w, (int16_t)(codec & SL_BATCH_ATTR_CODEC_MASK));
    sl_wr_i32(w, bb->count - 1); /* lastOffsetDelta */
    sl_wr_i64(w, bb->base_timestamp);
    sl_wr_i64(w, bb->max_timestamp);
    sl_wr_i64(w, producer_id);
    sl_wr_i16(w, producer_epoch);
    sl_wr_i32(w, base_sequence);
    sl_wr_i32(w, bb->count);
    rc = sl_compress(codec, xerial, bb->records.buf, bb->records.len, w);
    len = w->len - start;
    if (rc == 0 && len - BATCH_LOG_OVERHEAD > INT32_MAX)
        rc = SL_E_TOO_LARGE;
    if (rc != 0) {
        w->len = start;
        return rc;
    }
    sl_wr_put_u32_at(w->buf + start + 8, (uint32_t)(len - BATCH_LOG_OVERHEAD));
    sl_wr_put_u32_at(w->buf + start + SL_BATCH_CRC_OFFSET - 4,
                     sl_crc32c(0, w->buf + start + SL_BATCH_CRC_OFFSET,
                               len - SL_BATCH_CRC_OFFSET));
    return 0;
}

void sl_batch_builder_free(sl_batch_builder *bb)
{
    sl_wr_free(&bb->records);
}
