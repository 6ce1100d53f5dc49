/*
 * Legacy message sets (message format v0 and v1, "magic 0/1"), which
 * Produce v0-v2 carry, bridged to RecordBatch v2 the way a Kafka 3.x
 * broker up-converts them on append (its LogValidator): Kafka 4 refuses
 * both the request versions and the formats, so Sluice converts them and
 * writes record batches upstream.
 *
 * A message set is a sequence of [offset int64][size int32][message];
 * a message is crc uint32 (CRC-32, IEEE, over the rest), magic int8,
 * attributes int8 (bits 0-2 codec, bit 3 LogAppendTime from magic 1), a
 * timestamp int64 (magic 1 only), key and value as int32-length bytes (-1:
 * null). A compressed message (a "wrapper") holds a whole inner message
 * set, compressed, as its value.
 *
 * Pure: no I/O, no clock, any thread. The input is the caller's; the
 * output is appended to the caller's writer.
 */
#ifndef SLUICE_MSGSET_H
#define SLUICE_MSGSET_H

#include "sluice/kafka.h"
#include "sluice/record.h"

#define SL_MSG_ATTR_CODEC_MASK 0x07
#define SL_MSG_ATTR_LOG_APPEND_TIME 0x08

/* Bytes before a message's crc: offset and size. The magic byte sits at
 * offset 16 of the set, where a RecordBatch v2 keeps its own. */
#define SL_MSGSET_LOG_OVERHEAD 12
#define SL_MSGSET_MAGIC_OFFSET 16

typedef struct sl_msgset_info {
    int8_t magic;         /* of the messages: 0 or 1 */
    int codec;            /* of the wrapper; SL_CODEC_NONE: none */
    int32_t count;        /* records written */
    size_t decompressed;  /* bytes the wrapper's value decompressed to */
    bool log_append_time; /* the producer set the LogAppendTime flag */
    const char *message;  /* static text of an error */
} sl_msgset_info;

/* Converts one partition's message set of magic 0 or 1 into one
 * uncompressed RecordBatch v2 (baseOffset 0, no producer id, CreateTime)
 * appended to w. As a broker:
 *  - uncompressed, one or more messages, all of the first one's magic;
 *    compressed (gzip, snappy raw or xerial, lz4), exactly one wrapper
 *    whose inner messages have its magic and no codec of their own, each
 *    with a good CRC; inner offsets are not checked (brokers rewrite
 *    rather than refuse the relative offsets some clients get wrong);
 *  - for magic 0, lz4's frame header checksum is not checked: producers
 *    of Kafka 0.8-0.9 computed it over the frame's magic number too;
 *  - each record keeps its key and value (null stays null), with no
 *    headers, and the timestamp of a magic-1 message (of the wrapper for a
 *    wrapper flagged LogAppendTime), or -1 for magic 0, which has none: what
 *    a broker stores for an up-converted magic-0 message on a CreateTime
 *    topic;
 *  - a partial message at the end of the set is dropped (a broker trims
 *    it); a set with no whole message (empty, or cut inside its first
 *    message) converts to nothing: info->count 0, nothing written, and a
 *    broker answers it with success.
 * max_out bounds what the wrapper decompresses to and what is written.
 * Returns 0, or the Kafka error Kafka 3.9 answers (legacy_differential)
 * with *info->message: CORRUPT_MESSAGE (a CRC, a length that disagrees
 * with the message), UNKNOWN_SERVER_ERROR (data that does not
 * decompress), INVALID_RECORD (mixed magics, a wrapper beside other
 * messages, a compressed, empty or null inner set, magic 2 inside, zstd,
 * which needs magic 2), MESSAGE_TOO_LARGE (over max_out). On an error w
 * is left as it was. */
int16_t sl_msgset_to_batch(const uint8_t *in, size_t len, size_t max_out,
                           sl_wr *w, sl_msgset_info *info);

/* Appends one message of magic 0 or 1 (for tests and the fuzz seeds):
 * offset, key/value with -1 lengths for null, attributes as given (codec
 * bits mark a wrapper whose value is a compressed set). */
void sl_msgset_add(sl_wr *w, int8_t magic, int64_t offset, int8_t attributes,
                   int64_t timestamp, const void *key, int32_t key_len,
                   const void *value, int32_t value_len);

#endif
