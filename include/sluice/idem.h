/*
 * Client-side idempotence: Sluice hands out producer ids (InitProducerId)
 * and de-duplicates retried batches per producer and partition by sequence
 * number the way a broker does:
 *   - the next expected sequence is accepted (NEW);
 *   - a batch equal to one of the last SL_IDEM_WINDOW batches of that
 *     producer/partition is a duplicate: if that batch has been answered,
 *     the client gets the original answer (DUPLICATE); if it is still in
 *     flight upstream, the retry waits for it (PENDING, the caller attaches
 *     to the original);
 *   - an older sequence outside the window, and a gap, get
 *     OUT_OF_ORDER_SEQUENCE_NUMBER (as Kafka answers both; never
 *     DUPLICATE_SEQUENCE_NUMBER, which clients take as success);
 *   - an older epoch gets INVALID_PRODUCER_EPOCH; a newer epoch resets,
 *     from sequence 0 only (another sequence is OUT_OF_ORDER, as Kafka's).
 * A broker appends a batch whole or not at all; Sluice hands a batch's
 * records to librdkafka one by one, and some may reach the cluster while
 * others fail. So each slot also records which of its records are known
 * upstream (sl_idem_record_upstream), and a retry of a failed batch sends
 * only the records still missing (sl_idem_slot_upstream says which); one
 * with all of them upstream gets the original answer without sending
 * anything. A failed batch rolls the expected sequence back to it, as a
 * broker that did not append it would expect it next; batches of the same
 * producer and partition pipelined behind it and still in flight are then
 * answered OUT_OF_ORDER_SEQUENCE_NUMBER (what a broker answers a batch
 * behind a gap; clients retry it after the failed one), their records kept
 * as upstream for that retry. A retry starting at a failed batch's base
 * sequence with fewer records (the Java client's split after
 * MESSAGE_TOO_LARGE) is accepted, and the rest of the failed batch stays
 * in the window for the next part.
 *
 * Producer ids are (prefix << 32) | n: the prefix is 31 random bits the
 * daemon draws at start, n counts the ids issued. So ids do not repeat
 * across restarts or across Sluice instances on one cluster (two instances
 * share a prefix with probability 2^-31): two clients never share one id
 * and so never share sequence state, where a DUPLICATE_SEQUENCE_NUMBER
 * would silently drop one's batch.
 *
 * A batch naming an id this instance did not issue (one from before a
 * restart, another instance's) is accepted, as a broker accepts any id
 * from an idempotent producer: answering UNKNOWN_PRODUCER_ID instead is
 * fatal to librdkafka's idempotent producer ("unable to retry without
 * risking duplication/reordering", 2.0.2), so every librdkafka client
 * would die at a Sluice restart. Pairs of an id and a partition not seen
 * yet (a first batch, a restart, an entry expired after idle_ms) start
 * tracking at whatever sequence arrives; the upstream producer is
 * idempotent on its own.
 *
 * Pure (time is a parameter), loop thread only.
 */
#ifndef SLUICE_IDEM_H
#define SLUICE_IDEM_H

#include "sluice/common.h"

#define SL_IDEM_WINDOW 5 /* Kafka's max.in.flight for idempotence */

typedef struct sl_idem sl_idem;

/* One tracked batch. `owner` is an opaque pointer of the caller's (the
 * in-flight partition request) while the batch is pending, NULL once it
 * completed or if the slot was reused. The record bitmap belongs to the
 * table; callers read it with sl_idem_slot_upstream. */
typedef struct sl_idem_slot {
    int32_t base_seq;
    int32_t last_seq;
    int8_t state;   /* SL_IDEM_SLOT_* */
    bool behind_failed; /* pending while an earlier batch failed */
    int16_t error;  /* Kafka error of the original answer */
    int64_t offset; /* lowest upstream offset of its records, -1: none */
    int32_t n_records; /* last_seq - base_seq + 1 */
    int32_t n_upstream; /* records known written upstream */
    uint64_t *upstream; /* bit i: record i is upstream (n_records bits) */
    uint64_t upstream_inline; /* the bitmap when n_records <= 64 */
    void *owner;
    void *entry_; /* internal: the producer/partition holding it */
} sl_idem_slot;

enum { SL_IDEM_SLOT_EMPTY, SL_IDEM_SLOT_PENDING, SL_IDEM_SLOT_DONE };

enum {
    SL_IDEM_NEW = 0,   /* *slot is a fresh pending slot to complete later */
    SL_IDEM_DUPLICATE, /* answered before: *slot holds the answer */
    SL_IDEM_PENDING,   /* duplicate of an in-flight batch: *slot->owner */
    SL_IDEM_REJECT,    /* *kerr holds the Kafka error to answer */
};

/* prefix: the high half of the ids handed out (random in the daemon; its
 * low 31 bits are used, 0 counts as 1). idle_ms: how long a
 * producer/partition entry with nothing pending is kept. */
sl_idem *sl_idem_new(uint32_t prefix, int64_t idle_ms);

/* Whether pid is one this instance issued. */
bool sl_idem_issued(const sl_idem *id, int64_t pid);
void sl_idem_free(sl_idem *id);

/* InitProducerId without a transactional.id: a new producer id with epoch
 * 0, every time, as a broker answers (it ignores the id and epoch a v3+
 * request names: a KIP-360 "bump" from an idempotent producer gets a new
 * id). Returns 0 (a Kafka error code, for when ids can run out). */
int16_t sl_idem_init_producer(sl_idem *id, int64_t *pid_out,
                              int16_t *epoch_out);

/* A batch of this producer and partition was refused before it got here
 * (a topic or partition Sluice does not know yet) and will be retried:
 * with no entry yet, start one expecting base_seq, so that the client's
 * later batches pipelined behind it get OUT_OF_ORDER_SEQUENCE_NUMBER (and
 * come again after it, as behind a broker's refusal) instead of starting
 * the entry past it. A no-op when an entry exists (it expects this batch
 * already) or pid < 0. */
void sl_idem_expect(sl_idem *id, int64_t pid, int16_t epoch,
                    const char *topic, size_t topic_len, int32_t partition,
                    int32_t base_seq, int64_t now_ms);

/* Checks one batch. topic/partition identify the partition, last_seq =
 * base_seq + record_count - 1 (mod 2^31). Returns SL_IDEM_*. */
int sl_idem_check(sl_idem *id, int64_t pid, int16_t epoch, const char *topic,
                  size_t topic_len, int32_t partition, int32_t base_seq,
                  int32_t last_seq, int64_t now_ms, sl_idem_slot **slot,
                  int16_t *kerr);

/* Whether record i (0-based, in sequence order) of the slot's batch is
 * known upstream: a NEW slot of a retry may have some, which the caller
 * must not send again. */
bool sl_idem_slot_upstream(const sl_idem_slot *slot, int32_t i);

/* Record i of a pending slot was written upstream at offset. A no-op if
 * the slot was reused meanwhile (slot->owner != owner). */
void sl_idem_record_upstream(sl_idem_slot *slot, void *owner, int32_t i,
                             int64_t offset);

/* Completes a slot returned as NEW with the answer the client is to get,
 * kerr (0: success). Returns the error to answer: kerr, or
 * OUT_OF_ORDER_SEQUENCE_NUMBER for a batch that succeeded behind one of
 * the same producer and partition that failed meanwhile. On an error the
 * expected sequence rolls back to the slot's base sequence, and slots
 * pending behind it will be answered so too. A no-op returning kerr if the
 * slot was reused meanwhile (slot->owner != owner). */
int16_t sl_idem_complete(sl_idem *id, sl_idem_slot *slot, void *owner,
                         int16_t kerr, int64_t offset);

/* Drops entries idle longer than idle_ms. Returns how many were dropped. */
size_t sl_idem_expire(sl_idem *id, int64_t now_ms);
size_t sl_idem_count(const sl_idem *id);

/* At most max_entries producer/partition entries (0: no limit): creating
 * one more forgets the least recently used one with nothing in flight,
 * whose producer's next batch there then starts tracking afresh, as after
 * a restart. */
void sl_idem_set_limit(sl_idem *id, size_t max_entries);
/* Bytes the table holds (entries and hash buckets), for the memory
 * budget; entries forgotten at the limit so far. */
size_t sl_idem_bytes(const sl_idem *id);
size_t sl_idem_evicted(const sl_idem *id);

#endif
