/*
 * Kafka's compression codecs over the system libraries: zlib (gzip), snappy
 * (raw and xerial framing), lz4 (frame format) and zstd.
 *
 * Decompression is bounded: output grows geometrically up to max_out + 1
 * bytes (the spare byte tells "exactly max_out" from "more"), so a
 * decompression bomb costs at most about max_out of memory before it fails
 * with SL_E_TOO_LARGE. Pure: no I/O, any thread.
 */
#include "sluice/record.h"

#include <limits.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

const char *sl_codec_name(int codec)
{
    switch (codec) {
    case SL_CODEC_NONE: return "none";
    case SL_CODEC_GZIP: return "gzip";
    case SL_CODEC_SNAPPY: return "snappy";
    case SL_CODEC_LZ4: return "lz4";
    case SL_CODEC_ZSTD: return "zstd";
    }
    return "?";
}

/* ---- bounded output buffer ------------------------------------------ */

typedef struct outbuf {
    uint8_t *p; /* owned until handed to the caller */
    size_t len;
    size_t cap;
    size_t limit; /* max_out + 1: reaching it means "too large" */
} outbuf;

static void out_init(outbuf *o, size_t max_out, size_t hint)
{
    o->limit = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1;
    o->cap = SL_MIN(SL_MAX(hint, (size_t)256), o->limit);
    o->p = sl_malloc(o->cap);
    o->len = 0;
}

/* Makes room for more output: doubles the capacity, clamped to the
 * limit. Fails once the buffer holds more than max_out bytes. */
static int out_grow(outbuf *o)
{
    size_t cap;

    if (o->len < o->cap)
        return 0;
    if (o->cap >= o->limit)
        return SL_E_TOO_LARGE;
    cap = o->cap > o->limit / 2 ? o->limit : o->cap * 2;
    o->p = sl_realloc(o->p, cap);
    o->cap = cap;
    return 0;
}

/* Hands the buffer over on success; frees it on error. */
static int out_finish(outbuf *o, int rc, uint8_t **out, size_t *out_len)
{
    if (rc == 0 && o->len >= o->limit)
        rc = SL_E_TOO_LARGE;
    if (rc != 0) {
        sl_free(o->p);
        *out = NULL;
        *out_len = 0;
        return rc;
    }
    *out = o->p;
    *out_len = o->len;
    return 0;
}

/* A first guess at the output size: compressed batches typically expand
 * 2-5x; growth takes over from there. */
static size_t out_hint(size_t in_len)
{
    return in_len > SIZE_MAX / 4 ? SIZE_MAX : in_len * 4;
}

/* ---- gzip ------------------------------------------------------------ */

/* A gzip stream, possibly several concatenated members (GZIPInputStream
 * accepts those, so Java-compatible input may contain them). */
static int gzip_decode(const uint8_t *in, size_t in_len, outbuf *o)
{
    z_stream zs;
    int rc = 0, zr;

    if (in_len > UINT_MAX)
        return SL_E_TOO_LARGE;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return SL_E_NOMEM;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    for (;;) {
        if ((rc = out_grow(o)) != 0)
            break;
        zs.next_out = o->p + o->len;
        zs.avail_out = (uInt)SL_MIN(o->cap - o->len, (size_t)UINT_MAX);
        zr = inflate(&zs, Z_NO_FLUSH);
        o->len = (size_t)(zs.next_out - o->p);
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0)
                break;
            inflateReset(&zs); /* next member */
        } else if (zr == Z_MEM_ERROR) {
            rc = SL_E_NOMEM;
            break;
        } else if (zr != Z_OK) {
            /* Z_DATA_ERROR, Z_NEED_DICT, or Z_BUF_ERROR: input ended
             * inside a member (output space was available). */
            rc = SL_E_COMPRESSION;
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

static int gzip_encode(const uint8_t *in, size_t in_len, sl_wr *w)
{
    z_stream zs;
    uLong bound;
    int zr;

    if (in_len > UINT_MAX)
        return SL_E_TOO_LARGE;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS,
                     8, Z_DEFAULT_STRATEGY) != Z_OK)
        return SL_E_NOMEM;
    bound = deflateBound(&zs, (uLong)in_len);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = sl_wr_reserve(w, bound);
    zs.avail_out = (uInt)bound;
    /* The whole output fits in deflateBound, so one Z_FINISH ends it. */
    zr = deflate(&zs, Z_FINISH);
    if (zr == Z_STREAM_END)
        w->len += zs.total_out;
    deflateEnd(&zs);
    return zr == Z_STREAM_END ? 0 : SL_E_COMPRESSION;
}

/* ---- snappy ---------------------------------------------------------- */

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_SIZE 16 /* magic, int32 version, int32 compat */
#define XERIAL_BLOCK_SIZE (32 * 1024) /* xerial SnappyOutputStream default */

static bool is_xerial(const uint8_t *in, size_t in_len)
{
    return in_len >= XERIAL_HEADER_SIZE &&
           memcmp(in, xerial_magic, sizeof(xerial_magic)) == 0;
}

/* Raw snappy declares its uncompressed length up front, so the bound is
 * checked before anything is allocated. */
static int snappy_raw_decode(const uint8_t *in, size_t in_len,
                             size_t max_out, outbuf *o)
{
    size_t n;

    if (snappy_uncompressed_length((const char *)in, in_len, &n) !=
        SNAPPY_OK)
        return SL_E_COMPRESSION;
    if (n > max_out)
        return SL_E_TOO_LARGE;
    o->p = sl_malloc(n);
    o->cap = n;
    if (snappy_uncompress((const char *)in, in_len, (char *)o->p, &n) !=
        SNAPPY_OK)
        return SL_E_COMPRESSION;
    o->len = n;
    return 0;
}

/* Xerial framing: header, then blocks of int32 big-endian length + raw
 * snappy. A first pass checks the framing and adds up the declared
 * uncompressed lengths against max_out; the second pass decodes into one
 * exactly sized buffer. */
static int snappy_xerial_decode(const uint8_t *in, size_t in_len,
                                size_t max_out, outbuf *o)
{
    size_t total = 0, n;
    sl_rd r = sl_rd_init(in + XERIAL_HEADER_SIZE, in_len - XERIAL_HEADER_SIZE);

    while (sl_rd_left(&r) > 0) {
        uint32_t blen = sl_rd_u32(&r);
        const uint8_t *blk = sl_rd_bytes(&r, blen);
        if (blk == NULL ||
            snappy_uncompressed_length((const char *)blk, blen, &n) !=
                SNAPPY_OK)
            return SL_E_COMPRESSION;
        if (n > max_out - total)
            return SL_E_TOO_LARGE;
        total += n;
    }
    o->p = sl_malloc(total);
    o->cap = total;
    r = sl_rd_init(in + XERIAL_HEADER_SIZE, in_len - XERIAL_HEADER_SIZE);
    while (sl_rd_left(&r) > 0) {
        uint32_t blen = sl_rd_u32(&r);
        const uint8_t *blk = sl_rd_bytes(&r, blen);
        n = o->cap - o->len;
        if (snappy_uncompress((const char *)blk, blen,
                              (char *)o->p + o->len, &n) != SNAPPY_OK)
            return SL_E_COMPRESSION;
        o->len += n;
    }
    return 0;
}

static int snappy_encode_raw(const uint8_t *in, size_t in_len, sl_wr *w)
{
    size_t n = snappy_max_compressed_length(in_len);

    if (snappy_compress((const char *)in, in_len,
                        (char *)sl_wr_reserve(w, n), &n) != SNAPPY_OK)
        return SL_E_COMPRESSION;
    w->len += n;
    return 0;
}

static int snappy_encode_xerial(const uint8_t *in, size_t in_len, sl_wr *w)
{
    sl_wr_raw(w, xerial_magic, sizeof(xerial_magic));
    sl_wr_i32(w, 1); /* version */
    sl_wr_i32(w, 1); /* minimum compatible version */
    for (size_t off = 0; off < in_len; off += XERIAL_BLOCK_SIZE) {
        size_t at = w->len;
        int rc;

        sl_wr_i32(w, 0); /* block length, patched below */
        rc = snappy_encode_raw(in + off,
                               SL_MIN(in_len - off, (size_t)XERIAL_BLOCK_SIZE),
                               w);
        if (rc != 0)
            return rc;
        sl_wr_put_u32_at(w->buf + at, (uint32_t)(w->len - at - 4));
    }
    return 0;
}

/* ---- lz4 ------------------------------------------------------------- */

/* XXH32 (Yann Collet's xxHash, 32 bits), which the LZ4 frame format uses
 * for its checksums; liblz4 keeps its copy private. */
#define XXH_P1 0x9E3779B1u
#define XXH_P2 0x85EBCA77u
#define XXH_P3 0xC2B2AE3Du
#define XXH_P4 0x27D4EB2Fu
#define XXH_P5 0x165667B1u

static uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint32_t xxh_round(uint32_t acc, uint32_t in)
{
    return rotl32(acc + in * XXH_P2, 13) * XXH_P1;
}

uint32_t sl_xxh32(const void *buf, size_t len, uint32_t seed)
{
    const uint8_t *p = buf, *end = p + len;
    uint32_t h;

    if (len >= 16) {
        uint32_t v1 = seed + XXH_P1 + XXH_P2, v2 = seed + XXH_P2, v3 = seed,
                 v4 = seed - XXH_P1;
        for (; end - p >= 16; p += 16) {
            v1 = xxh_round(v1, rd32le(p));
            v2 = xxh_round(v2, rd32le(p + 4));
            v3 = xxh_round(v3, rd32le(p + 8));
            v4 = xxh_round(v4, rd32le(p + 12));
        }
        h = rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18);
    } else {
        h = seed + XXH_P5;
    }
    h += (uint32_t)len;
    for (; end - p >= 4; p += 4)
        h = rotl32(h + rd32le(p) * XXH_P3, 17) * XXH_P4;
    for (; p < end; p++)
        h = rotl32(h + *p * XXH_P5, 11) * XXH_P1;
    h ^= h >> 15;
    h *= XXH_P2;
    h ^= h >> 13;
    h *= XXH_P3;
    h ^= h >> 16;
    return h;
}

#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_FLG_CONTENT_SIZE 0x08
#define LZ4_FLG_DICT_ID 0x01

/* The length of the LZ4 frame header at in (magic, FLG, BD, optional
 * content size and dictionary id, header checksum), 0 if it is not one. */
static size_t lz4_header_len(const uint8_t *in, size_t in_len)
{
    size_t n;

    if (in_len < 7 || rd32le(in) != LZ4_FRAME_MAGIC)
        return 0;
    n = 7 + (in[4] & LZ4_FLG_CONTENT_SIZE ? 8 : 0) +
        (in[4] & LZ4_FLG_DICT_ID ? 4 : 0);
    return n <= in_len ? n : 0;
}

/* Standard LZ4 frames (Kafka's KafkaLZ4BlockOutputStream and librdkafka
 * both write these), several concatenated frames allowed. any_hc: the
 * first frame's header checksum is not checked (it is recomputed on a
 * copy of the header), as Kafka reads magic-0 message sets: producers of
 * Kafka 0.8-0.9 hashed the frame's magic number too. */
static int lz4_decode(const uint8_t *in, size_t in_len, outbuf *o,
                      bool any_hc)
{
    LZ4F_dctx *dctx;
    size_t pos = 0, hint = 1, hdr_len = 0;
    uint8_t hdr[19];
    int rc = 0;

    if (any_hc && (hdr_len = lz4_header_len(in, in_len)) > 0) {
        memcpy(hdr, in, hdr_len);
        hdr[hdr_len - 1] =
            (uint8_t)(sl_xxh32(hdr + 4, hdr_len - 5, 0) >> 8);
    }
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return SL_E_NOMEM;
    while (hint != 0 || pos < in_len) {
        size_t dst, src;
        const uint8_t *from = pos < hdr_len ? hdr + pos : in + pos;

        if ((rc = out_grow(o)) != 0)
            break;
        dst = o->cap - o->len;
        src = pos < hdr_len ? hdr_len - pos : in_len - pos;
        hint = LZ4F_decompress(dctx, o->p + o->len, &dst, from, &src, NULL);
        if (LZ4F_isError(hint)) {
            rc = SL_E_COMPRESSION;
            break;
        }
        pos += src;
        o->len += dst;
        /* No progress with output space left: the input ended mid-frame
         * (or was empty). */
        if (hint != 0 && src == 0 && dst == 0) {
            rc = SL_E_COMPRESSION;
            break;
        }
    }
    LZ4F_freeDecompressionContext(dctx);
    return rc;
}

int sl_lz4_set_kafka08_checksum(uint8_t *frame, size_t len)
{
    size_t n = lz4_header_len(frame, len);

    if (n == 0)
        return SL_E_PARSE;
    frame[n - 1] = (uint8_t)(sl_xxh32(frame, n - 1, 0) >> 8);
    return 0;
}

static int lz4_encode(const uint8_t *in, size_t in_len, sl_wr *w)
{
    /* Independent 64 KiB blocks, no content size or checksums: the frame
     * Kafka's own Java writer produces, which every Kafka reader accepts. */
    LZ4F_preferences_t prefs;
    size_t bound, n;

    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    bound = LZ4F_compressFrameBound(in_len, &prefs);
    n = LZ4F_compressFrame(sl_wr_reserve(w, bound), bound, in, in_len,
                           &prefs);
    if (LZ4F_isError(n))
        return SL_E_COMPRESSION;
    w->len += n;
    return 0;
}

/* ---- zstd ------------------------------------------------------------ */

/* The decoder's own default window limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT,
 * which zstd.h only exposes to static linkers): 2^27 = 128 MiB. */
#define ZSTD_WLOG_DEFAULT_MAX 27u

/* Smallest w with 2^w >= n. */
static unsigned log2_ceil(size_t n)
{
    unsigned w = 0;
    while (w < 63 && ((size_t)1 << w) < n)
        w++;
    return w;
}

/* Streaming decode, so frames without a content size (Java's streaming
 * writer) work. Concatenated frames allowed. */
static int zstd_decode(const uint8_t *in, size_t in_len, size_t max_out,
                       outbuf *o)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t zr = 1;
    unsigned wlog;
    int rc = 0;

    if (dctx == NULL)
        return SL_E_NOMEM;
    /* The decoder allocates the window a frame declares. Bound it by
     * max_out, but never below 2^23 (8 MiB): that covers streaming frames
     * of every level up to 19, which declare windows larger than their
     * content. Larger windows are refused as too large. */
    wlog = SL_MIN(SL_MAX(log2_ceil(max_out), 23u),
                  ZSTD_WLOG_DEFAULT_MAX);
    ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, (int)wlog);
    while (zr != 0 || ib.pos < ib.size) {
        ZSTD_outBuffer ob;

        if ((rc = out_grow(o)) != 0)
            break;
        ob.dst = o->p + o->len;
        ob.size = o->cap - o->len;
        ob.pos = 0;
        zr = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(zr)) {
            rc = ZSTD_getErrorCode(zr) == ZSTD_error_frameParameter_windowTooLarge
                     ? SL_E_TOO_LARGE
                     : SL_E_COMPRESSION;
            break;
        }
        o->len += ob.pos;
        /* Input used up, frame unfinished, and the decoder did not fill
         * the output (so it flushed all it had): truncated input. */
        if (zr != 0 && ib.pos == ib.size && ob.pos < ob.size) {
            rc = SL_E_COMPRESSION;
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    return rc;
}

static int zstd_encode(const uint8_t *in, size_t in_len, sl_wr *w)
{
    size_t bound = ZSTD_compressBound(in_len);
    size_t n = ZSTD_compress(sl_wr_reserve(w, bound), bound, in, in_len,
                             ZSTD_CLEVEL_DEFAULT);

    if (ZSTD_isError(n))
        return SL_E_COMPRESSION;
    w->len += n;
    return 0;
}

/* ---- entry points ---------------------------------------------------- */

int sl_decompress(int codec, const uint8_t *in, size_t in_len,
                  size_t max_out, uint8_t **out, size_t *out_len)
{
    outbuf o = {NULL, 0, 0, 0};
    int rc;

    switch (codec) {
    case SL_CODEC_NONE:
        if (in_len > max_out)
            return out_finish(&o, SL_E_TOO_LARGE, out, out_len);
        o.p = sl_malloc(in_len);
        if (in_len > 0)
            memcpy(o.p, in, in_len);
        o.len = o.cap = in_len;
        o.limit = SIZE_MAX;
        return out_finish(&o, 0, out, out_len);
    case SL_CODEC_GZIP:
        out_init(&o, max_out, out_hint(in_len));
        rc = gzip_decode(in, in_len, &o);
        break;
    case SL_CODEC_SNAPPY:
        /* Sized exactly from the declared lengths: no spare byte. */
        o.limit = SIZE_MAX;
        rc = is_xerial(in, in_len)
                 ? snappy_xerial_decode(in, in_len, max_out, &o)
                 : snappy_raw_decode(in, in_len, max_out, &o);
        break;
    case SL_CODEC_LZ4:
    case SL_CODEC_LZ4_ANY_HC:
        out_init(&o, max_out, out_hint(in_len));
        rc = lz4_decode(in, in_len, &o, codec == SL_CODEC_LZ4_ANY_HC);
        break;
    case SL_CODEC_ZSTD: {
        unsigned long long csize = ZSTD_getFrameContentSize(in, in_len);
        size_t hint = out_hint(in_len);

        /* A declared content size is only a hint (more frames may
         * follow), but one above the bound fails before any work. */
        if (csize != ZSTD_CONTENTSIZE_UNKNOWN &&
            csize != ZSTD_CONTENTSIZE_ERROR) {
            if (csize > max_out)
                return out_finish(&o, SL_E_TOO_LARGE, out, out_len);
            hint = (size_t)csize;
        }
        out_init(&o, max_out, hint);
        rc = zstd_decode(in, in_len, max_out, &o);
        break;
    }
    default:
        return out_finish(&o, SL_E_UNSUPPORTED, out, out_len);
    }
    return out_finish(&o, rc, out, out_len);
}

int sl_compress(int codec, bool xerial, const uint8_t *in, size_t in_len,
                sl_wr *w)
{
    switch (codec) {
    case SL_CODEC_NONE:
        sl_wr_raw(w, in, in_len);
        return 0;
    case SL_CODEC_GZIP:
        return gzip_encode(in, in_len, w);
    case SL_CODEC_SNAPPY:
        return xerial ? snappy_encode_xerial(in, in_len, w)
                      : snappy_encode_raw(in, in_len, w);
    case SL_CODEC_LZ4:
        return lz4_encode(in, in_len, w);
    case SL_CODEC_ZSTD:
        return zstd_encode(in, in_len, w);
    }
    return SL_E_UNSUPPORTED;
}
