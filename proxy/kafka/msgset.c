/* Legacy message sets (magic 0/1) bridged to RecordBatch v2 (see
 * include/sluice/msgset.h). */
#include "sluice/msgset.h"

#include <string.h>

#include <zlib.h>

/* crc, magic, attributes, key length, value length; magic 1 adds an
 * 8-byte timestamp. */
#define MSG_V0_MIN 14
#define MSG_V1_MIN 22

typedef struct msg {
    int8_t magic;
    int8_t attributes;
    int64_t timestamp;
    const uint8_t *key, *value; /* NULL when null */
    int32_t key_len, value_len; /* -1: null */
} msg;

/* One message of `size` bytes at p (after offset and size): its CRC, then
 * its fields, which must fill it exactly. */
static int16_t msg_parse(const uint8_t *p, int32_t size, msg *m,
                         const char **why)
{
    sl_rd r = sl_rd_init(p, (size_t)size);
    uint32_t crc;

    if (size < MSG_V0_MIN) {
        *why = "message smaller than a message's minimum size";
        return SL_KERR_CORRUPT_MESSAGE;
    }
    crc = sl_rd_u32(&r);
    if ((uint32_t)crc32(0, p + 4, (uInt)(size - 4)) != crc) {
        *why = "message CRC mismatch";
        return SL_KERR_CORRUPT_MESSAGE;
    }
    m->magic = sl_rd_i8(&r);
    m->attributes = sl_rd_i8(&r);
    if (m->magic != 0 && m->magic != 1) {
        *why = "a message of magic 2 among messages of magic 0/1";
        return SL_KERR_INVALID_RECORD;
    }
    m->timestamp = -1;
    if (m->magic == 1) {
        if (size < MSG_V1_MIN) {
            *why = "message smaller than a message's minimum size";
            return SL_KERR_CORRUPT_MESSAGE;
        }
        m->timestamp = sl_rd_i64(&r);
    }
    m->key_len = sl_rd_i32(&r);
    m->key = m->key_len >= 0 ? sl_rd_bytes(&r, (size_t)m->key_len) : NULL;
    if (r.err == 0)
        m->value_len = sl_rd_i32(&r);
    if (r.err == 0)
        m->value =
            m->value_len >= 0 ? sl_rd_bytes(&r, (size_t)m->value_len) : NULL;
    if (r.err != 0 || m->key_len < -1 || m->value_len < -1 ||
        sl_rd_left(&r) != 0) {
        *why = "message key and value lengths disagree with its size";
        return SL_KERR_CORRUPT_MESSAGE;
    }
    return 0;
}

/* The next whole message of the set at r: 1 when none is left (the end,
 * or a partial message a broker trims). */
static int next_msg(sl_rd *r, const uint8_t **p, int32_t *size)
{
    int32_t n;

    if (sl_rd_left(r) < SL_MSGSET_LOG_OVERHEAD)
        return 1;
    sl_rd_skip(r, 8); /* offset: the broker assigns offsets */
    n = sl_rd_i32(r);
    if (n < 0 || (size_t)n > sl_rd_left(r))
        return 1;
    *size = n;
    *p = sl_rd_bytes(r, (size_t)n);
    return 0;
}

static int16_t fail(sl_msgset_info *info, int16_t err, const char *why)
{
    info->message = why;
    return err;
}

/* Adds m to the batch, within max_out bytes of output. */
static int16_t add(sl_batch_builder *bb, const msg *m, int64_t timestamp,
                   size_t max_out, sl_msgset_info *info)
{
    if (bb->count == 0) {
        bb->base_timestamp = timestamp;
        bb->max_timestamp = timestamp;
    }
    sl_batch_builder_add(bb, timestamp, m->key, m->key_len, m->value,
                         m->value_len, NULL, 0);
    if (bb->records.len + SL_BATCH_HEADER_SIZE > max_out)
        return fail(info, SL_KERR_MESSAGE_TOO_LARGE,
                    "the message set converts to more than "
                    "limits.max_decompressed_bytes");
    info->count++;
    return 0;
}

/* The inner messages of a wrapper, decompressed to in. */
static int16_t add_inner(sl_batch_builder *bb, const msg *wrapper,
                         const uint8_t *in, size_t len, size_t max_out,
                         sl_msgset_info *info)
{
    sl_rd r = sl_rd_init(in, len);
    const uint8_t *p;
    int32_t size;
    int16_t err;
    msg m;

    while (next_msg(&r, &p, &size) == 0) {
        if ((err = msg_parse(p, size, &m, &info->message)) != 0)
            return err;
        if (m.magic != wrapper->magic)
            return fail(info, SL_KERR_INVALID_RECORD,
                        "an inner message's magic differs from its "
                        "wrapper's");
        if (m.attributes & SL_MSG_ATTR_CODEC_MASK)
            return fail(info, SL_KERR_INVALID_RECORD,
                        "compressed outer message has an inner message "
                        "with a compression attribute set");
        /* LogAppendTime on a wrapper stands for its inner messages. */
        if ((err = add(bb, &m,
                       wrapper->magic == 1 && (wrapper->attributes &
                                               SL_MSG_ATTR_LOG_APPEND_TIME)
                           ? wrapper->timestamp
                           : m.timestamp,
                       max_out, info)) != 0)
            return err;
    }
    if (sl_rd_left(&r) != 0)
        /* Unlike the outer set, the inner one is whole by construction. */
        return fail(info, SL_KERR_CORRUPT_MESSAGE,
                    "compressed message set ends inside a message");
    if (info->count == 0)
        return fail(info, SL_KERR_INVALID_RECORD,
                    "compressed message set holds no messages");
    return 0;
}

static int16_t convert(const uint8_t *in, size_t len, size_t max_out,
                       sl_batch_builder *bb, sl_msgset_info *info)
{
    sl_rd r = sl_rd_init(in, len);
    const uint8_t *p;
    int32_t size;
    int16_t err;
    int n = 0;
    msg m;

    while (next_msg(&r, &p, &size) == 0) {
        int codec;

        if ((err = msg_parse(p, size, &m, &info->message)) != 0)
            return err;
        if (n == 0)
            info->magic = m.magic;
        else if (m.magic != info->magic)
            return fail(info, SL_KERR_INVALID_RECORD,
                        "a message's magic differs from the first one's");
        if ((m.attributes & SL_MSG_ATTR_LOG_APPEND_TIME) && m.magic == 1)
            info->log_append_time = true;
        codec = m.attributes & SL_MSG_ATTR_CODEC_MASK;
        if (codec != SL_CODEC_NONE || info->codec != SL_CODEC_NONE) {
            /* A compressed set is one wrapper and nothing else. */
            if (n > 0)
                return fail(info, SL_KERR_INVALID_RECORD,
                            "compressed outer message has more than one "
                            "message beside it");
            info->codec = codec;
        }
        n++;
        if (codec == SL_CODEC_NONE) {
            if ((err = add(bb, &m, m.timestamp, max_out, info)) != 0)
                return err;
            continue;
        }
        if (codec == SL_CODEC_ZSTD)
            /* Kafka 3.9 answers INVALID_RECORD (legacy_differential). */
            return fail(info, SL_KERR_INVALID_RECORD,
                        "zstd needs message format v2 (Produce v7+)");
        if (codec > SL_CODEC_ZSTD)
            return fail(info, SL_KERR_CORRUPT_MESSAGE,
                        "unknown compression codec");
        if (m.value == NULL)
            return fail(info, SL_KERR_INVALID_RECORD,
                        "compressed message with a null value");
        {
            uint8_t *buf;
            size_t blen;
            int rc = sl_decompress(codec == SL_CODEC_LZ4 && m.magic == 0
                                       ? SL_CODEC_LZ4_ANY_HC
                                       : codec,
                                   m.value, (size_t)m.value_len, max_out,
                                   &buf, &blen);
            if (rc == SL_E_TOO_LARGE)
                return fail(info, SL_KERR_MESSAGE_TOO_LARGE,
                            "the message set decompresses to more than "
                            "limits.max_decompressed_bytes");
            if (rc < 0)
                /* Kafka 3.9 fails such an append with an exception of
                 * no API error: UNKNOWN_SERVER_ERROR. */
                return fail(info, SL_KERR_UNKNOWN_SERVER_ERROR,
                            "compressed message does not decompress");
            info->decompressed = blen;
            err = add_inner(bb, &m, buf, blen, max_out, info);
            sl_free(buf);
            if (err)
                return err;
        }
    }
    /* No whole message (an empty set, or one cut inside its first
     * message): a broker appends nothing and answers success. */
    return 0;
}

int16_t sl_msgset_to_batch(const uint8_t *in, size_t len, size_t max_out,
                           sl_wr *w, sl_msgset_info *info)
{
    sl_batch_builder bb;
    int16_t err;

    memset(info, 0, sizeof(*info));
    sl_batch_builder_init(&bb, -1);
    err = convert(in, len, max_out, &bb, info);
    if (err == 0 && info->count > 0 &&
        sl_batch_builder_finish(&bb, w, SL_CODEC_NONE, false, -1, -1, -1) !=
            0)
        err = fail(info, SL_KERR_MESSAGE_TOO_LARGE,
                   "the message set converts to a batch over 2 GiB");
    sl_batch_builder_free(&bb);
    return err;
}

void sl_msgset_add(sl_wr *w, int8_t magic, int64_t offset, int8_t attributes,
                   int64_t timestamp, const void *key, int32_t key_len,
                   const void *value, int32_t value_len)
{
    size_t start, crc_at;

    sl_wr_i64(w, offset);
    sl_wr_i32(w, 0); /* size, patched below */
    start = w->len;
    sl_wr_u32(w, 0); /* crc, patched below */
    crc_at = w->len;
    sl_wr_i8(w, magic);
    sl_wr_i8(w, attributes);
    if (magic >= 1)
        sl_wr_i64(w, timestamp);
    sl_wr_i32(w, key_len < 0 ? -1 : key_len);
    if (key_len > 0)
        sl_wr_raw(w, key, (size_t)key_len);
    sl_wr_i32(w, value_len < 0 ? -1 : value_len);
    if (value_len > 0)
        sl_wr_raw(w, value, (size_t)value_len);
    sl_wr_put_u32_at(w->buf + start - 4, (uint32_t)(w->len - start));
    sl_wr_put_u32_at(w->buf + start,
                     (uint32_t)crc32(0, w->buf + crc_at,
                                     (uInt)(w->len - crc_at)));
}
