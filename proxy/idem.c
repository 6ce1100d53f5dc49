/* Producer ids and sequence de-duplication (see include/sluice/idem.h). */
#include "sluice/idem.h"

#include <string.h>

/* One producer/partition. Chained in a hash table keyed by
 * (pid, partition, topic). */
typedef struct entry {
    struct entry *next;
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
};

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

void sl_idem_free(sl_idem *id)
{
    if (id == NULL)
        return;
    for (size_t i = 0; i < id->n_buckets; i++) {
        entry *e = id->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            sl_free(e);
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
    id->buckets = nb;
    id->n_buckets = n;
}

static void entry_reset(entry *e, int16_t epoch)
{
    e->epoch = epoch;
    e->ring_next = 0;
    memset(e->ring, 0, sizeof(e->ring));
    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++)
        e->ring[i].entry_ = e;
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
            memcmp(e->topic, topic, topic_len) == 0)
            return e;
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
    id->n_entries++;
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
    if (created)
        e->last_used_ms = now_ms;
}

int sl_idem_check(sl_idem *id, int64_t pid, int16_t epoch, const char *topic,
                  size_t topic_len, int32_t partition, int32_t base_seq,
                  int32_t last_seq, int64_t now_ms, sl_idem_slot **slot,
                  int16_t *kerr)
{
    entry *e;
    sl_idem_slot *s;

    *slot = NULL;
    *kerr = 0;
    if (base_seq < 0) {
        *kerr = 45; /* OUT_OF_ORDER_SEQUENCE_NUMBER */
        return SL_IDEM_REJECT;
    }
    e = entry_get(id, pid, epoch, topic, topic_len, partition, base_seq,
                  NULL);
    e->last_used_ms = now_ms;

    if (epoch < e->epoch) {
        *kerr = 47; /* INVALID_PRODUCER_EPOCH */
        return SL_IDEM_REJECT;
    }
    if (epoch > e->epoch) {
        /* New epoch (KIP-360 bump): sequences restart. Pending slots of
         * the old epoch are orphaned; their owners' completions become
         * no-ops. */
        entry_reset(e, epoch);
        e->next_seq = base_seq;
    }

    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++) {
        s = &e->ring[i];
        if (s->state == SL_IDEM_SLOT_EMPTY || s->base_seq != base_seq)
            continue;
        if (s->last_seq != last_seq) {
            /* Same start, different length: not a retry of that batch. */
            *kerr = 45;
            return SL_IDEM_REJECT;
        }
        if (s->state == SL_IDEM_SLOT_PENDING) {
            *slot = s;
            return SL_IDEM_PENDING;
        }
        if (s->error == 0) {
            *slot = s;
            return SL_IDEM_DUPLICATE;
        }
        /* It failed: the retry is a fresh attempt (next_seq was rolled
         * back to it on completion), handled below. */
        break;
    }

    if (base_seq != e->next_seq) {
        /* Behind the expected sequence and not in the window, or ahead of
         * it: OUT_OF_ORDER_SEQUENCE_NUMBER, as Kafka answers both (4.1.1,
         * idempotent_sequence_differential). Not DUPLICATE_SEQUENCE_NUMBER
         * for the older one: clients take that as success, and "behind"
         * is not always written: a first batch refused before it reached
         * this table (an unknown partition at startup) and retried after a
         * later batch started the entry was answered DUPLICATE and lost. */
        *kerr = 45; /* OUT_OF_ORDER_SEQUENCE_NUMBER */
        return SL_IDEM_REJECT;
    }

    /* Reuse a slot holding the same base sequence (a failed attempt), else
     * the oldest. */
    s = NULL;
    for (unsigned i = 0; i < SL_IDEM_WINDOW; i++)
        if (e->ring[i].state != SL_IDEM_SLOT_EMPTY &&
            e->ring[i].base_seq == base_seq)
            s = &e->ring[i];
    if (s == NULL) {
        s = &e->ring[e->ring_next];
        e->ring_next = (e->ring_next + 1) % SL_IDEM_WINDOW;
    }
    s->base_seq = base_seq;
    s->last_seq = last_seq;
    s->state = SL_IDEM_SLOT_PENDING;
    s->error = 0;
    s->offset = -1;
    s->owner = NULL; /* the caller sets it */
    s->entry_ = e;
    e->next_seq = seq_add(last_seq, 1);
    *slot = s;
    return SL_IDEM_NEW;
}

void sl_idem_complete(sl_idem *id, sl_idem_slot *slot, void *owner,
                      int16_t kerr, int64_t offset)
{
    entry *e;
    if (slot == NULL || slot->owner != owner ||
        slot->state != SL_IDEM_SLOT_PENDING)
        return;
    slot->state = SL_IDEM_SLOT_DONE;
    slot->error = kerr;
    slot->offset = offset;
    slot->owner = NULL;
    if (kerr == 0)
        return;
    /* Roll the expected sequence back to the earliest failed batch, so the
     * client's retry of it is accepted. */
    e = slot->entry_;
    if (seq_dist(slot->base_seq, e->next_seq) < ((int64_t)1 << 30))
        e->next_seq = slot->base_seq;
}

size_t sl_idem_expire(sl_idem *id, int64_t now_ms)
{
    size_t dropped = 0;
    for (size_t b = 0; b < id->n_buckets; b++) {
        entry **ep = &id->buckets[b];
        while (*ep) {
            entry *e = *ep;
            bool pending = false;
            for (unsigned i = 0; i < SL_IDEM_WINDOW; i++)
                if (e->ring[i].state == SL_IDEM_SLOT_PENDING)
                    pending = true;
            if (!pending && now_ms - e->last_used_ms > id->idle_ms) {
                *ep = e->next;
                sl_free(e);
                id->n_entries--;
                dropped++;
            } else {
                ep = &e->next;
            }
        }
    }
    return dropped;
}

size_t sl_idem_count(const sl_idem *id)
{
    return id->n_entries;
}
