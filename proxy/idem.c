/* Producer ids and sequence de-duplication (see include/sluice/idem.h). */
#include "sluice/idem.h"
#include "sluice/kafka.h"

#include <string.h>

/* One producer/partition. Chained in a hash table keyed by
 * (pid, partition, topic). */
typedef struct entry {
    struct entry *next;
    struct entry *lru_prev, *lru_next; /* most recently used first */
    int64_t pid;
    int32_t partition;
    int16_t epoch;
    int32_t next_seq; /* next expected base sequence */
    int64_t last_used_ms;
    unsigned ring_next; /* slot to use for the next NEW batch */
    sl_idem_slot ring[SL_IDEM_WINDOW];
    size_t topic_len;
    char topic[]; /* not NUL-terminated */
} entry;

struct sl_idem {
    entry **buckets;
    size_t n_buckets; /* power of two */
    size_t n_entries;
    uint32_t prefix;      /* high half of the ids issued now, 1..2^31-1 */
    uint32_t prev_prefix; /* the one before a wrap (0: none) */
    uint32_t next_n;      /* low half of the next id */
    int64_t idle_ms;
    size_t max_entries;   /* 0: no limit */
    size_t bytes;         /* entries and buckets allocated */
    size_t evicted;
    entry *lru_head, *lru_tail;
};

static void lru_unlink(sl_idem *id, entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        id->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        id->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(sl_idem *id, entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = id->lru_head;
    if (id->lru_head)
        id->lru_head->lru_prev = e;
    id->lru_head = e;
    if (id->lru_tail == NULL)
        id->lru_tail = e;
}

/* The record bitmap of a slot: slots of up to 64 records use the inline
 * word, larger ones an allocation of their own. */
static void slot_bits_free(sl_idem_slot *s)
{
    if (s->upstream != &s->upstream_inline)
        sl_free(s->upstream);
    s->upstream = &s->upstream_inline;
    s->upstream_inline = 0;
    s->n_upstream = 0;
}

static void slot_bits_init(sl_idem_slot *s, int32_t n)
{
    slot_bits_free(s);
    s->n_records = n;
    if (n > 64)
        s->upstream = sl_calloc(((size_t)n + 63) / 64, sizeof(uint64_t));
}

static bool bit_get(const uint64_t *w, int32_t i)
{
    return (w[i / 64] >> (i % 64)) & 1;
}

static void bit_set(uint64_t *w, int32_t i)
{
    w[i / 64] |= (uint64_t)1 << (i % 64);
}

bool sl_idem_slot_upstream(const sl_idem_slot *slot, int32_t i)
{
    return slot->upstream != NULL && i >= 0 && i < slot->n_records &&
           bit_get(slot->upstream, i);
}

/* Copies records [from, from + n) of src's bitmap to records [0, n) of
 * dst's (dst initialised for n records). */
static void bits_copy(sl_idem_slot *dst, const sl_idem_slot *src,
                      int32_t from, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        if (from + i < src->n_records && bit_get(src->upstream, from + i)) {
            bit_set(dst->upstream, i);
            dst->n_upstream++;
        }
}

static uint64_t hash_key(int64_t pid, int32_t partition, const char *topic,
                         size_t len)
{
    /* FNV-1a over the key fields. */
    uint64_t h = 1469598103934665603ULL;
    const uint8_t *p = (const uint8_t *)&pid;
    for (size_t i = 0; i < sizeof(pid); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    p = (const uint8_t *)&partition;
    for (size_t i = 0; i < sizeof(partition); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 1099511628211ULL;
    return h;
}

sl_idem *sl_idem_new(uint32_t prefix, int64_t idle_ms)
{
    sl_idem *id = sl_calloc(1, sizeof(*id));
    id->n_buckets = 256;
    id->buckets = sl_calloc(id->n_buckets, sizeof(*id->buckets));
    id->bytes = sizeof(*id) + id->n_buckets * sizeof(*id->buckets);
    id->prefix = prefix & 0x7fffffffu;
    if (id->prefix == 0)
        id->prefix = 1;
    id->idle_ms = idle_ms;
    return id;
}

bool sl_idem_issued(const sl_idem *id, int64_t pid)
{
    uint32_t hi = (uint32_t)((uint64_t)pid >> 32), lo = (uint32_t)pid;

    if (pid < 0)
        return false;
    return (hi == id->prefix && lo < id->next_n) ||
           (hi == id->prev_prefix && id->prev_prefix != 0);
}

static void entry_free(entry *e);

void sl_idem_free(sl_idem *id)
{
    if (id == NULL)
        return;
    for (size_t i = 0; i < id->n_buckets; i++) {
        entry *e = id->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    sl_free(id->buckets);
    sl_free(id);
}

/* As a broker does for a null transactional.id (Kafka's
 * TransactionCoordinator.handleInitProducerId): a new producer id with
 * epoch 0 every time, whatever id and epoch the request names, so nothing
 * is kept per producer id here. */
int16_t sl_idem_init_producer(sl_idem *id, int64_t *pid_out,
                              int16_t *epoch_out)
{
    *pid_out = (int64_t)((uint64_t)id->prefix << 32 | id->next_n);
    *epoch_out = 0;
    if (++id->next_n == 0) {
        /* 2^32 ids: go on under the next prefix (the old one stays
         * known, its ids all issued). */
        id->prev_prefix = id->prefix;
        id->prefix = id->prefix % 0x7fffffffu + 1;
    }
    return 0;
}

static void entries_grow(sl_idem *id)
{
    size_t n = id->n_buckets * 2;
    entry **nb = sl_calloc(n, sizeof(*nb));
    for (size_t i = 0; i < id->n_buckets; i++) {
        entry *e = id->buckets[i], *next;
        for (; e; e = next) {
            size_t b;
            next = e->next;
            b = hash_key(e->pid, e->partition, e->topic, e->topic_len) &
                (n - 1);
            e->next = nb[b];
            nb[b] = e;
        }
    }
    sl_free(id->buckets);
    id->bytes += (n - id->n_buckets) * sizeof(*nb);
    id->buckets = nb;
    id->n_buckets = n;
}

static void entry_reset(entry *e, int16_t epoch)
{
    e->epoch = epoch;
    e->ring_next = 0;
    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++) {
        sl_idem_slot *s = &e->ring[i];
        if (s->upstream != NULL && s->upstream != &s->upstream_inline)
            sl_free(s->upstream);
        memset(s, 0, sizeof(*s));
        s->upstream = &s->upstream_inline;
        s->entry_ = e;
    }
}

static void entry_free(entry *e)
{
    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++)
        slot_bits_free(&e->ring[i]);
    sl_free(e);
}

static int32_t seq_add(int32_t seq, int32_t n)
{
    /* Sequences wrap from INT32_MAX to 0 (Kafka's DefaultRecordBatch). */
    return (int32_t)(((int64_t)seq + n) % ((int64_t)INT32_MAX + 1));
}

/* Distance from a to b going forward, in [0, 2^31). */
static int64_t seq_dist(int32_t a, int32_t b)
{
    int64_t d = (int64_t)b - a;
    return d < 0 ? d + (int64_t)INT32_MAX + 1 : d;
}

static bool entry_pending(const entry *e)
{
    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++)
        if (e->ring[i].state == SL_IDEM_SLOT_PENDING)
            return true;
    return false;
}

/* Unlinks e from its bucket chain and the LRU list, and frees it. */
static void entry_drop(sl_idem *id, entry *e)
{
    uint64_t h = hash_key(e->pid, e->partition, e->topic, e->topic_len);
    entry **ep = &id->buckets[h & (id->n_buckets - 1)];

    while (*ep != e)
        ep = &(*ep)->next;
    *ep = e->next;
    lru_unlink(id, e);
    id->bytes -= sizeof(*e) + e->topic_len;
    id->n_entries--;
    entry_free(e);
}

/* At the limit: forgets the least recently used entry with nothing in
 * flight (among the 16 least recent; with all of those pending the table
 * grows past its limit for now: what is pending is bounded by the memory
 * budget). Its producer's next batch on that partition starts tracking
 * afresh, as after a restart. */
static void evict_one(sl_idem *id)
{
    entry *e = id->lru_tail;
    for (int k = 0; e != NULL && k < 16; k++, e = e->lru_prev)
        if (!entry_pending(e)) {
            entry_drop(id, e);
            id->evicted++;
            return;
        }
}

/* The entry of (pid, partition, topic), created tracking from base_seq
 * when there is none (*created set, if given). */
static entry *entry_get(sl_idem *id, int64_t pid, int16_t epoch,
                        const char *topic, size_t topic_len,
                        int32_t partition, int32_t base_seq, bool *created)
{
    uint64_t h = hash_key(pid, partition, topic, topic_len);
    entry **ep = &id->buckets[h & (id->n_buckets - 1)], *e;

    if (created)
        *created = false;
    for (e = *ep; e; e = e->next)
        if (e->pid == pid && e->partition == partition &&
            e->topic_len == topic_len &&
            memcmp(e->topic, topic, topic_len) == 0) {
            if (id->lru_head != e) {
                lru_unlink(id, e);
                lru_push(id, e);
            }
            return e;
        }
    if (id->max_entries > 0 && id->n_entries >= id->max_entries)
        evict_one(id);
    if (id->n_entries + 1 > id->n_buckets * 2) {
        entries_grow(id);
        ep = &id->buckets[h & (id->n_buckets - 1)];
    }
    e = sl_calloc(1, sizeof(*e) + topic_len);
    e->pid = pid;
    e->partition = partition;
    e->topic_len = topic_len;
    memcpy(e->topic, topic, topic_len);
    entry_reset(e, epoch);
    e->next_seq = base_seq; /* start tracking here (see header) */
    e->next = *ep;
    *ep = e;
    lru_push(id, e);
    id->n_entries++;
    id->bytes += sizeof(*e) + topic_len;
    if (created)
        *created = true;
    return e;
}

void sl_idem_expect(sl_idem *id, int64_t pid, int16_t epoch,
                    const char *topic, size_t topic_len, int32_t partition,
                    int32_t base_seq, int64_t now_ms)
{
    bool created;
    entry *e;

    if (pid < 0 || base_seq < 0)
        return;
    e = entry_get(id, pid, epoch, topic, topic_len, partition, base_seq,
                  &created);
    (void)created;
    e->last_used_ms = now_ms; /* as entry_get moved it up the LRU list */
}

/* Moves the expected sequence past batches answered with success that
 * follow it directly: the retry of a failed batch filled the gap before
 * them. */
static void skip_written(entry *e)
{
    for (unsigned round = 0; round < SL_IDEM_WINDOW; round++) {
        bool moved = false;
        for (unsigned i = 0; i < SL_IDEM_WINDOW; i++) {
            sl_idem_slot *s = &e->ring[i];
            if (s->state == SL_IDEM_SLOT_DONE && s->error == 0 &&
                s->base_seq == e->next_seq) {
                e->next_seq = seq_add(s->last_seq, 1);
                moved = true;
            }
        }
        if (!moved)
            break;
    }
}

/* A slot to hold what is left of a split batch: an empty one, else the
 * oldest answered one other than `not`; NULL if all others are pending. */
static sl_idem_slot *spare_slot(entry *e, const sl_idem_slot *not)
{
    sl_idem_slot *done = NULL;
    for (unsigned k = 0; k < SL_IDEM_WINDOW; k++) {
        sl_idem_slot *s = &e->ring[(e->ring_next + k) % SL_IDEM_WINDOW];
        if (s == not)
            continue;
        if (s->state == SL_IDEM_SLOT_EMPTY)
            return s;
        if (s->state == SL_IDEM_SLOT_DONE && done == NULL)
            done = s;
    }
    return done;
}

/* Starts slot s as a pending batch [base_seq, last_seq] of n records. */
static void slot_start(entry *e, sl_idem_slot *s, int32_t base_seq,
                       int32_t last_seq, int32_t n)
{
    slot_bits_init(s, n);
    s->base_seq = base_seq;
    s->last_seq = last_seq;
    s->state = SL_IDEM_SLOT_PENDING;
    s->behind_failed = false;
    s->error = 0;
    s->offset = -1;
    s->owner = NULL; /* the caller sets it */
    s->entry_ = e;
}

/* A retry at a failed batch's base sequence with fewer or more records
 * (the Java client splits a batch after MESSAGE_TOO_LARGE and sends the
 * parts from the same base sequence), some of the failed batch's records
 * upstream already: s becomes the new batch, keeping what it knew of the
 * records the new one covers, and a spare slot keeps the rest of the old
 * batch for the next part. False if there is no spare slot. */
static bool slot_split(entry *e, sl_idem_slot *s, int32_t last_seq, int32_t n)
{
    int32_t old_n = s->n_records, old_last = s->last_seq;
    size_t words = ((size_t)old_n + 63) / 64;
    sl_idem_slot old = *s, *rest = NULL;
    uint64_t *bits;

    if (n < old_n && (rest = spare_slot(e, s)) == NULL)
        return false;
    bits = sl_malloc(words * sizeof(*bits));
    memcpy(bits, s->upstream, words * sizeof(*bits));
    old.upstream = bits;
    if (rest != NULL) {
        slot_bits_init(rest, old_n - n);
        bits_copy(rest, &old, n, old_n - n);
        rest->base_seq = seq_add(s->base_seq, n);
        rest->last_seq = old_last;
        rest->state = SL_IDEM_SLOT_DONE;
        rest->behind_failed = false;
        rest->error = old.error;
        rest->offset = old.offset;
        rest->owner = NULL;
        rest->entry_ = e;
    }
    slot_start(e, s, s->base_seq, last_seq, n);
    bits_copy(s, &old, 0, n);
    s->offset = old.offset;
    sl_free(bits);
    return true;
}

int sl_idem_check(sl_idem *id, int64_t pid, int16_t epoch, const char *topic,
                  size_t topic_len, int32_t partition, int32_t base_seq,
                  int32_t last_seq, int64_t now_ms, sl_idem_slot **slot,
                  int16_t *kerr)
{
    entry *e;
    sl_idem_slot *s = NULL;
    int32_t n;

    *slot = NULL;
    *kerr = 0;
    if (base_seq < 0 || last_seq < 0) {
        *kerr = SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
        return SL_IDEM_REJECT;
    }
    n = (int32_t)(seq_dist(base_seq, last_seq) + 1);
    e = entry_get(id, pid, epoch, topic, topic_len, partition, base_seq,
                  NULL);
    e->last_used_ms = now_ms;

    if (epoch < e->epoch) {
        *kerr = SL_KERR_INVALID_PRODUCER_EPOCH;
        return SL_IDEM_REJECT;
    }
    if (epoch > e->epoch) {
        /* New epoch (KIP-360 bump): sequences restart at 0, and Kafka
         * refuses a new epoch's first batch at any other sequence
         * (OUT_OF_ORDER_SEQUENCE_NUMBER, pipelined_idempotence_differential),
         * keeping the old epoch's state. Else pending slots of the old
         * epoch are orphaned; their owners' completions become no-ops. */
        if (base_seq != 0) {
            *kerr = SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
            return SL_IDEM_REJECT;
        }
        entry_reset(e, epoch);
        e->next_seq = base_seq;
    }

    for (unsigned i = 0; i < SL_IDEM_WINDOW && s == NULL; i++)
        if (e->ring[i].state != SL_IDEM_SLOT_EMPTY &&
            e->ring[i].base_seq == base_seq)
            s = &e->ring[i];

    if (s != NULL && (s->state == SL_IDEM_SLOT_PENDING || s->error == 0)) {
        if (s->last_seq != last_seq) {
            /* Same start, different length, and that batch was written
             * (or may be): not a retry of it, and behind the expected
             * sequence, as a broker sees it. */
            *kerr = SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
            return SL_IDEM_REJECT;
        }
        *slot = s;
        return s->state == SL_IDEM_SLOT_PENDING ? SL_IDEM_PENDING
                                                : SL_IDEM_DUPLICATE;
    }

    if (base_seq != e->next_seq) {
        /* Behind the expected sequence and not in the window, or ahead of
         * it: OUT_OF_ORDER_SEQUENCE_NUMBER, as Kafka answers both (4.1.1,
         * idempotent_sequence_differential). Not DUPLICATE_SEQUENCE_NUMBER
         * for the older one: clients take that as success, and "behind"
         * is not always written: a first batch refused before it reached
         * this table (an unknown partition at startup) and retried after a
         * later batch started the entry was answered DUPLICATE and lost.
         * A retry of a failed batch pipelined behind another failed one
         * lands here too, until the earlier one is retried. */
        *kerr = SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
        return SL_IDEM_REJECT;
    }

    if (s != NULL && s->n_upstream > 0) {
        /* The retry of a failed batch some of whose records reached the
         * cluster: send only the rest. */
        if (s->last_seq != last_seq && !slot_split(e, s, last_seq, n)) {
            *kerr = SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
            return SL_IDEM_REJECT;
        }
        if (s->last_seq == last_seq && s->n_upstream == s->n_records) {
            /* All of it is upstream (it failed behind another batch, or
             * its last record's answer was lost): the original answer,
             * now a success. */
            s->state = SL_IDEM_SLOT_DONE;
            s->error = 0;
            e->next_seq = seq_add(last_seq, 1);
            skip_written(e);
            *slot = s;
            return SL_IDEM_DUPLICATE;
        }
        s->state = SL_IDEM_SLOT_PENDING;
        s->behind_failed = false;
        s->error = 0;
        s->owner = NULL;
    } else {
        /* A new batch, or a fresh attempt at a failed one none of whose
         * records is upstream, in that slot (whatever its length now),
         * else in the oldest. */
        if (s == NULL) {
            s = &e->ring[e->ring_next];
            e->ring_next = (e->ring_next + 1) % SL_IDEM_WINDOW;
        }
        slot_start(e, s, base_seq, last_seq, n);
    }
    e->next_seq = seq_add(last_seq, 1);
    skip_written(e);
    *slot = s;
    return SL_IDEM_NEW;
}

void sl_idem_record_upstream(sl_idem_slot *slot, void *owner, int32_t i,
                             int64_t offset)
{
    if (slot == NULL || slot->owner != owner ||
        slot->state != SL_IDEM_SLOT_PENDING || i < 0 || i >= slot->n_records)
        return;
    if (!bit_get(slot->upstream, i)) {
        bit_set(slot->upstream, i);
        slot->n_upstream++;
    }
    if (offset >= 0 && (slot->offset < 0 || offset < slot->offset))
        slot->offset = offset;
}

int16_t sl_idem_complete(sl_idem *id, sl_idem_slot *slot, void *owner,
                         int16_t kerr, int64_t offset)
{
    entry *e;

    (void)id;
    if (slot == NULL || slot->owner != owner ||
        slot->state != SL_IDEM_SLOT_PENDING)
        return kerr;
    if (kerr == 0 && slot->behind_failed)
        kerr = SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER; /* as from a broker */
    slot->state = SL_IDEM_SLOT_DONE;
    slot->behind_failed = false;
    slot->error = kerr;
    if (offset >= 0 && (slot->offset < 0 || offset < slot->offset))
        slot->offset = offset;
    slot->owner = NULL;
    if (kerr == 0)
        return 0;
    /* Roll the expected sequence back to the earliest failed batch, so the
     * client's retry of it is accepted, and fail what is pending behind
     * it: a broker would not have appended those behind the gap. */
    e = slot->entry_;
    if (seq_dist(slot->base_seq, e->next_seq) < ((int64_t)1 << 30))
        e->next_seq = slot->base_seq;
    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++) {
        sl_idem_slot *t = &e->ring[i];
        int64_t d = seq_dist(slot->base_seq, t->base_seq);
        if (t != slot && t->state == SL_IDEM_SLOT_PENDING && d > 0 &&
            d < ((int64_t)1 << 30))
            t->behind_failed = true;
    }
    return kerr;
}

size_t sl_idem_expire(sl_idem *id, int64_t now_ms)
{
    size_t dropped = 0;
    entry *e = id->lru_tail, *prev;

    /* Least recently used first; an entry used within idle_ms ends it,
     * as all before it in the list were used later. */
    for (; e != NULL; e = prev) {
        prev = e->lru_prev;
        if (now_ms - e->last_used_ms <= id->idle_ms)
            break;
        if (entry_pending(e))
            continue;
        entry_drop(id, e);
        dropped++;
    }
    return dropped;
}

size_t sl_idem_count(const sl_idem *id)
{
    return id->n_entries;
}

void sl_idem_set_limit(sl_idem *id, size_t max_entries)
{
    id->max_entries = max_entries;
}

size_t sl_idem_bytes(const sl_idem *id)
{
    return id->bytes;
}

size_t sl_idem_evicted(const sl_idem *id)
{
    return id->evicted;
}
