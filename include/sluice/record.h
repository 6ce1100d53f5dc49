/*
 * RecordBatch v2 (magic 2): CRC-32C, batch and record decoding, record and
 * batch encoding, and the compression codecs Kafka uses.
 *
 * Sans-I/O and allocation-free on the decode path: sl_batch and sl_record
 * point into the caller's buffer (the request frame, or a decompressed
 * buffer). Pure: no I/O, no clock, any thread.
 */
#ifndef SLUICE_RECORD_H
#define SLUICE_RECORD_H

#include "sluice/buf.h"

/* ---- CRC-32C (Castagnoli, reflected poly 0x82F63B78) ---------------- */

/* Incremental: crc = sl_crc32c(0, a, n); crc = sl_crc32c(crc, b, m).
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
 * run time), else a slicing-by-8 table. sl_crc32c("123456789") ==
 * 0xE3069283. */
uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len);
/* The table implementation alone, for tests comparing both paths. */
uint32_t sl_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* 1 if sl_crc32c uses the hardware instruction. */
int sl_crc32c_hw_available(void);

/* ---- Compression codecs (batch attributes bits 0-2) ------------------ */

enum {
    SL_CODEC_NONE = 0,
    SL_CODEC_GZIP = 1,
    SL_CODEC_SNAPPY = 2,
    SL_CODEC_LZ4 = 3,
    SL_CODEC_ZSTD = 4,
};

/* For sl_decompress only: lz4 whose first frame's header checksum is not
 * checked, as Kafka reads magic-0 message sets (sluice/msgset.h). */
#define SL_CODEC_LZ4_ANY_HC 0x103

const char *sl_codec_name(int codec); /* "none","gzip",... or "?" */

/* XXH32, the LZ4 frame format's checksum: sl_xxh32("", 0, 0) ==
 * 0x02CC5D05, sl_xxh32("abc", 3, 0) == 0x32D153FF. */
uint32_t sl_xxh32(const void *buf, size_t len, uint32_t seed);

/* Rewrites the header checksum of the LZ4 frame at frame as producers of
 * Kafka 0.8-0.9 computed it, over the frame's magic number too (for
 * tests). SL_E_PARSE if it is not an LZ4 frame header. */
int sl_lz4_set_kafka08_checksum(uint8_t *frame, size_t len);

/* Decompresses `in` with `codec` into a new heap buffer *out (caller frees
 * with sl_free) of *out_len bytes. Never produces more than max_out bytes:
 * a larger result fails with SL_E_TOO_LARGE before allocating beyond the
 * bound (decompression bombs). Snappy accepts both raw snappy
 * (librdkafka, franz-go) and the xerial framing (Java, kafka-python,
 * magic 82 53 4E 41 50 50 59 00), detected by the magic. LZ4 is the
 * standard frame format; zstd frames may lack the content size.
 * Errors: SL_E_COMPRESSION (corrupt), SL_E_TOO_LARGE, SL_E_UNSUPPORTED
 * (unknown codec). */
int sl_decompress(int codec, const uint8_t *in, size_t in_len,
                  size_t max_out, uint8_t **out, size_t *out_len);

/* Compresses (for tests and the bench load generator). xerial selects the
 * xerial snappy framing. Appends to w. Returns 0 or a negative sl_err. */
int sl_compress(int codec, bool xerial, const uint8_t *in, size_t in_len,
                sl_wr *w);

/* ---- RecordBatch v2 -------------------------------------------------- */

#define SL_BATCH_HEADER_SIZE 61 /* baseOffset .. recordsCount */
#define SL_BATCH_CRC_OFFSET 21  /* CRC covers attributes .. end */

#define SL_BATCH_ATTR_CODEC_MASK 0x07
#define SL_BATCH_ATTR_LOG_APPEND_TIME 0x08
#define SL_BATCH_ATTR_TRANSACTIONAL 0x10
#define SL_BATCH_ATTR_CONTROL 0x20

typedef struct sl_batch {
    int64_t base_offset;
    int32_t batch_length; /* bytes after the batch_length field */
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
    /* The records section as on the wire (compressed if codec != 0),
     * pointing into the caller's buffer. */
    const uint8_t *records;
    size_t records_len;
    /* The whole batch on the wire (for re-encoding or forwarding). */
    const uint8_t *raw;
    size_t raw_len;
} sl_batch;

/* Reads the next batch from a Produce partition's records bytes.
 * Returns 0 and advances r; 1 when r is empty (no more batches);
 * or a negative error:
 *  SL_E_TRUNCATED   - batch header or body cut short (the last batch of a
 *                     fetch-style partial read; in Produce it is corrupt)
 *  SL_E_UNSUPPORTED - magic != 2 (message format v0/v1)
 *  SL_E_CRC         - CRC-32C mismatch
 *  SL_E_INVALID     - a well-formed header a broker refuses to append
 *                     (INVALID_RECORD): no records, last_offset_delta
 *                     other than records_count - 1, more records than
 *                     the (uncompressed) bytes could hold
 *  SL_E_PARSE       - impossible lengths (batch_length < 49, ...)
 */
int sl_batch_next(sl_rd *r, sl_batch *b);

static inline int sl_batch_codec(const sl_batch *b)
{
    return b->attributes & SL_BATCH_ATTR_CODEC_MASK;
}

typedef struct sl_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key;   /* NULL when key_len == -1 */
    int32_t key_len;      /* -1 = null key */
    const uint8_t *value; /* NULL when value_len == -1 */
    int32_t value_len;    /* -1 = null value (tombstone) */
    int32_t n_headers;
    const uint8_t *headers; /* the header section, for sl_header_next */
    size_t headers_len;
} sl_record;

typedef struct sl_header {
    const uint8_t *key;
    int32_t key_len;      /* >= 0 */
    const uint8_t *value; /* NULL when value_len == -1 */
    int32_t value_len;
} sl_header;

/* Decodes one record from a (decompressed) records section and advances r.
 * The record's own length prefix must exactly cover its fields.
 * Returns 0 or SL_E_TRUNCATED / SL_E_PARSE. Key/value/headers point into
 * r's buffer. Negative lengths other than -1, a negative header count, or
 * a null header key are SL_E_PARSE. */
int sl_record_next(sl_rd *r, sl_record *rec);

/* Iterates headers of a decoded record: init with
 * sl_rd hr = sl_rd_init(rec.headers, rec.headers_len) and call n_headers
 * times. Returns 0 or a negative error. */
int sl_header_next(sl_rd *hr, sl_header *h);

/* Encoding (tests, bench load generator). */
typedef struct sl_batch_builder {
    sl_wr records;  /* uncompressed records section */
    int32_t count;
    int64_t base_timestamp;
    int64_t max_timestamp;
} sl_batch_builder;

void sl_batch_builder_init(sl_batch_builder *bb, int64_t base_timestamp);
/* Appends one record; key/value NULL with len -1 for null. Headers:
 * n_headers entries. */
void sl_batch_builder_add(sl_batch_builder *bb, int64_t timestamp,
                          const void *key, int32_t key_len,
                          const void *value, int32_t value_len,
                          const sl_header *headers, int32_t n_headers);
/* Writes the finished batch (header with CRC-32C, records compressed with
 * codec) to w and resets nothing: call sl_batch_builder_free after. */
int sl_batch_builder_finish(sl_batch_builder *bb, sl_wr *w, int codec,
                            bool xerial, int64_t producer_id,
                            int16_t producer_epoch, int32_t base_sequence);
void sl_batch_builder_free(sl_batch_builder *bb);

#endif
