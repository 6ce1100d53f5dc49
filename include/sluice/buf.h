/*
 * Bounded reader and growable writer for the Kafka wire format (big-endian
 * integers, zigzag varints, Kafka strings/bytes, compact forms, tagged
 * fields).
 *
 * Reader: every read checks the bound. A failed read sets r->err (sticky),
 * returns zero/NULL and leaves r->p unchanged, so a parser can read a whole
 * structure and test r->err once (SL_RD_CHECK jumps to its err_parse: label)
 * and nothing can read past the buffer by accident (librdkafka's
 * rd_kafka_buf_read_* discipline).
 *
 * Writer: a heap buffer owned by the sl_wr; sl_wr_release() hands it over.
 * Grows with sl_realloc (OOM policy in common.h), so writes cannot fail.
 *
 * Both are pure: no I/O, no clock, any thread.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <string.h>

#include "sluice/common.h"

typedef struct sl_rd {
    const uint8_t *p;
    const uint8_t *end;
    int err; /* sticky: 0, or SL_E_TRUNCATED / SL_E_PARSE */
} sl_rd;

/* A Kafka string or bytes field that points into the input buffer.
 * len == -1 means null. Not NUL-terminated. */
typedef struct sl_kstr {
    const char *p;
    int32_t len;
} sl_kstr;

#define SL_KSTR_NULL ((sl_kstr){NULL, -1})
#define SL_KSTR(s) ((sl_kstr){(s), (int32_t)strlen(s)})

#define SL_RD_CHECK(r)                                                    \
    do {                                                                  \
        if ((r)->err)                                                     \
            goto err_parse;                                               \
    } while (0)

/* p may be NULL with len 0 (a null or empty field). */
static inline sl_rd sl_rd_init(const void *p, size_t len)
{
    const uint8_t *b = p;
    sl_rd r = {b, b ? b + len : b, 0};
    return r;
}

static inline size_t sl_rd_left(const sl_rd *r)
{
    return (size_t)(r->end - r->p);
}

static inline int sl_rd_fail(sl_rd *r, int err)
{
    if (!r->err)
        r->err = err;
    return 0;
}

static inline bool sl_rd_need(sl_rd *r, size_t n)
{
    if (r->err)
        return false;
    if (sl_rd_left(r) < n) {
        r->err = SL_E_TRUNCATED;
        return false;
    }
    return true;
}

static inline const uint8_t *sl_rd_bytes(sl_rd *r, size_t n)
{
    const uint8_t *p;
    if (!sl_rd_need(r, n))
        return NULL;
    p = r->p;
    r->p += n;
    return p;
}

static inline void sl_rd_skip(sl_rd *r, size_t n)
{
    (void)sl_rd_bytes(r, n);
}

static inline uint8_t sl_rd_u8(sl_rd *r)
{
    const uint8_t *p = sl_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

static inline int8_t sl_rd_i8(sl_rd *r)
{
    return (int8_t)sl_rd_u8(r);
}

static inline uint16_t sl_rd_u16(sl_rd *r)
{
    const uint8_t *p = sl_rd_bytes(r, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

static inline int16_t sl_rd_i16(sl_rd *r)
{
    return (int16_t)sl_rd_u16(r);
}

static inline uint32_t sl_rd_u32(sl_rd *r)
{
    const uint8_t *p = sl_rd_bytes(r, 4);
    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                   ((uint32_t)p[2] << 8) | p[3]
             : 0;
}

static inline int32_t sl_rd_i32(sl_rd *r)
{
    return (int32_t)sl_rd_u32(r);
}

static inline uint64_t sl_rd_u64(sl_rd *r)
{
    uint64_t hi = sl_rd_u32(r);
    uint64_t lo = sl_rd_u32(r);
    return (hi << 32) | lo;
}

static inline int64_t sl_rd_i64(sl_rd *r)
{
    return (int64_t)sl_rd_u64(r);
}

/* Unsigned LEB128 varint, at most 10 bytes (64 bits); longer or
 * overflowing encodings fail with SL_E_PARSE. */
static inline uint64_t sl_rd_uvarlong(sl_rd *r)
{
    const uint8_t *start = r->p; /* restored on failure, like other reads */
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        uint8_t b;
        if (!sl_rd_need(r, 1))
            goto fail;
        b = *r->p++;
        if (shift == 63 && (b & 0x7e))
            break;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    sl_rd_fail(r, SL_E_PARSE);
fail:
    r->p = start;
    return 0;
}

/* Unsigned varint limited to 32 bits (at most 5 bytes). */
static inline uint32_t sl_rd_uvarint(sl_rd *r)
{
    const uint8_t *start = r->p; /* restored on failure, like other reads */
    uint32_t v = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
        uint8_t b;
        if (!sl_rd_need(r, 1))
            goto fail;
        b = *r->p++;
        if (shift == 28 && (b & 0x70))
            break;
        v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    sl_rd_fail(r, SL_E_PARSE);
fail:
    r->p = start;
    return 0;
}

/* Zigzag-encoded signed varints (Kafka "varint" / "varlong"). */
static inline int32_t sl_rd_varint(sl_rd *r)
{
    uint32_t u = sl_rd_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

static inline int64_t sl_rd_varlong(sl_rd *r)
{
    uint64_t u = sl_rd_uvarlong(r);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Kafka STRING / NULLABLE_STRING (int16 length, -1 = null). */
static inline sl_kstr sl_rd_str(sl_rd *r)
{
    sl_kstr s = SL_KSTR_NULL;
    int16_t len = sl_rd_i16(r);
    if (r->err)
        return s;
    if (len < -1) {
        sl_rd_fail(r, SL_E_PARSE);
        return s;
    }
    if (len >= 0) {
        s.p = (const char *)sl_rd_bytes(r, (size_t)len);
        s.len = s.p ? len : -1;
    }
    return s;
}

/* Kafka BYTES / NULLABLE_BYTES (int32 length, -1 = null). */
static inline sl_kstr sl_rd_bytes32(sl_rd *r)
{
    sl_kstr s = SL_KSTR_NULL;
    int32_t len = sl_rd_i32(r);
    if (r->err)
        return s;
    if (len < -1) {
        sl_rd_fail(r, SL_E_PARSE);
        return s;
    }
    if (len >= 0) {
        s.p = (const char *)sl_rd_bytes(r, (size_t)len);
        s.len = s.p ? len : -1;
    }
    return s;
}

/* COMPACT_STRING / COMPACT_BYTES (uvarint N+1, 0 = null). */
static inline sl_kstr sl_rd_compact_str(sl_rd *r)
{
    sl_kstr s = SL_KSTR_NULL;
    uint32_t n = sl_rd_uvarint(r);
    if (r->err || n == 0)
        return s;
    if (n - 1 > INT32_MAX) {
        sl_rd_fail(r, SL_E_PARSE);
        return s;
    }
    s.p = (const char *)sl_rd_bytes(r, n - 1);
    s.len = s.p ? (int32_t)(n - 1) : -1;
    return s;
}

/* Either form, by flexibility of the message version. */
static inline sl_kstr sl_rd_kstr(sl_rd *r, bool flexible)
{
    return flexible ? sl_rd_compact_str(r) : sl_rd_str(r);
}

static inline sl_kstr sl_rd_kbytes(sl_rd *r, bool flexible)
{
    return flexible ? sl_rd_compact_str(r) : sl_rd_bytes32(r);
}

/* Array length: int32 (-1 = null) or compact uvarint N+1 (0 = null).
 * Returns -1 for null. A count larger than the bytes left (each element
 * takes at least min_elem_size bytes) fails with SL_E_TRUNCATED, so callers
 * can allocate count elements without trusting the peer. */
static inline int32_t sl_rd_array_len(sl_rd *r, bool flexible,
                                      size_t min_elem_size)
{
    int64_t n;
    if (flexible) {
        uint32_t u = sl_rd_uvarint(r);
        n = (int64_t)u - 1;
    } else {
        n = sl_rd_i32(r);
    }
    if (r->err)
        return -1;
    if (n < -1) {
        sl_rd_fail(r, SL_E_PARSE);
        return -1;
    }
    if (n > 0 && (uint64_t)n * (min_elem_size ? min_elem_size : 1) >
                     sl_rd_left(r)) {
        sl_rd_fail(r, SL_E_TRUNCATED);
        return -1;
    }
    return (int32_t)n;
}

/* Skip a tagged-field section (uvarint count, then tag, size, bytes). */
static inline void sl_rd_tags_skip(sl_rd *r)
{
    uint32_t n = sl_rd_uvarint(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        (void)sl_rd_uvarint(r); /* tag */
        uint32_t size = sl_rd_uvarint(r);
        sl_rd_skip(r, size);
    }
}

/* ---------------------------------------------------------------- */

typedef struct sl_wr {
    uint8_t *buf;
    size_t len;
    size_t cap;
} sl_wr;

static inline void sl_wr_init(sl_wr *w, size_t cap)
{
    w->buf = cap ? (uint8_t *)sl_malloc(cap) : NULL;
    w->len = 0;
    w->cap = cap;
}

static inline void sl_wr_free(sl_wr *w)
{
    sl_free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

/* Hands the buffer to the caller (who must sl_free it); the writer is
 * left empty. */
static inline uint8_t *sl_wr_release(sl_wr *w, size_t *len)
{
    uint8_t *b = w->buf;
    if (len)
        *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}

static inline uint8_t *sl_wr_reserve(sl_wr *w, size_t n)
{
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        while (cap - w->len < n)
            cap *= 2;
        w->buf = (uint8_t *)sl_realloc(w->buf, cap);
        w->cap = cap;
    }
    return w->buf + w->len;
}

static inline void sl_wr_raw(sl_wr *w, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(sl_wr_reserve(w, n), p, n);
    w->len += n;
}

static inline void sl_wr_u8(sl_wr *w, uint8_t v)
{
    *sl_wr_reserve(w, 1) = v;
    w->len++;
}

static inline void sl_wr_i8(sl_wr *w, int8_t v)
{
    sl_wr_u8(w, (uint8_t)v);
}

static inline void sl_wr_i16(sl_wr *w, int16_t v)
{
    uint8_t *p = sl_wr_reserve(w, 2);
    p[0] = (uint8_t)((uint16_t)v >> 8);
    p[1] = (uint8_t)v;
    w->len += 2;
}

static inline void sl_wr_put_u32_at(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void sl_wr_u32(sl_wr *w, uint32_t v)
{
    sl_wr_put_u32_at(sl_wr_reserve(w, 4), v);
    w->len += 4;
}

static inline void sl_wr_i32(sl_wr *w, int32_t v)
{
    sl_wr_u32(w, (uint32_t)v);
}

static inline void sl_wr_i64(sl_wr *w, int64_t v)
{
    sl_wr_u32(w, (uint32_t)((uint64_t)v >> 32));
    sl_wr_u32(w, (uint32_t)v);
}

static inline void sl_wr_uvarlong(sl_wr *w, uint64_t v)
{
    uint8_t *p = sl_wr_reserve(w, 10);
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    w->len += n;
}

static inline void sl_wr_uvarint(sl_wr *w, uint32_t v)
{
    sl_wr_uvarlong(w, v);
}

static inline void sl_wr_varint(sl_wr *w, int32_t v)
{
    sl_wr_uvarint(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static inline void sl_wr_varlong(sl_wr *w, int64_t v)
{
    sl_wr_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* Kafka string/bytes in the classic (int16 / int32 length) or compact
 * form; len -1 writes null. */
static inline void sl_wr_kstr(sl_wr *w, sl_kstr s, bool flexible)
{
    if (flexible) {
        sl_wr_uvarint(w, s.len < 0 ? 0 : (uint32_t)s.len + 1);
    } else {
        sl_wr_i16(w, (int16_t)(s.len < 0 ? -1 : s.len));
    }
    if (s.len > 0)
        sl_wr_raw(w, s.p, (size_t)s.len);
}

static inline void sl_wr_kbytes(sl_wr *w, sl_kstr s, bool flexible)
{
    if (flexible)
        sl_wr_uvarint(w, s.len < 0 ? 0 : (uint32_t)s.len + 1);
    else
        sl_wr_i32(w, s.len < 0 ? -1 : s.len);
    if (s.len > 0)
        sl_wr_raw(w, s.p, (size_t)s.len);
}

static inline void sl_wr_array_len(sl_wr *w, int32_t n, bool flexible)
{
    if (flexible)
        sl_wr_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
    else
        sl_wr_i32(w, n);
}

/* An empty tagged-field section. */
static inline void sl_wr_tags_empty(sl_wr *w, bool flexible)
{
    if (flexible)
        sl_wr_u8(w, 0);
}

#endif
