/*
 * libFuzzer target: the idempotence table (proxy/idem.c) driven by a
 * byte-coded script of what the produce path does: check a batch, report
 * one of its records written upstream, complete it (success only once
 * every record is upstream, as produce.c does), expire, cap the table,
 * issue ids. Besides ASan/UBSan, it asserts what a client may rely on:
 *   - a batch answered as a duplicate (a success) has every record
 *     upstream;
 *   - a NEW slot is pending with the batch's length, its upstream count
 *     within it and equal to the bits set;
 *   - a completion answers the error given, or OUT_OF_ORDER (45) instead
 *     of a success;
 *   - rejections are 45 or INVALID_PRODUCER_EPOCH (47).
 */
#include "sluice/idem.h"

#include <stdlib.h>

#define MAX_HANDLES 32

/* A NEW slot the script owns; its owner is &owners[its index]. */
typedef struct {
    sl_idem_slot *slot;
} handle;

static int owners[MAX_HANDLES];

static void check_slot(const sl_idem_slot *s)
{
    int32_t bits = 0;
    if (s->n_upstream < 0 || s->n_upstream > s->n_records)
        abort();
    for (int32_t i = 0; i < s->n_records; i++)
        bits += sl_idem_slot_upstream(s, i);
    if (bits != s->n_upstream)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_idem *id = sl_idem_new(3, 1000);
    handle h[MAX_HANDLES] = {0};
    int64_t now = 0;
    size_t i = 0;

#define NEXT() (i < size ? data[i++] : 0)
    while (i < size) {
        uint8_t op = NEXT() % 7;
        switch (op) {
        case 0:
        case 1: { /* check a batch */
            uint8_t a = NEXT(), b = NEXT(), c = NEXT();
            int64_t pid = a & 3;
            int16_t epoch = (a >> 2) & 1;
            int32_t part = (a >> 3) & 1;
            int32_t base = b % 48, n = 1 + c % 80, last = base + n - 1;
            sl_idem_slot *s;
            int16_t kerr;
            int rc = sl_idem_check(id, pid, epoch, "t", 1, part, base, last,
                                   now, &s, &kerr);
            if (rc == SL_IDEM_NEW) {
                int k = (c >> 4) % MAX_HANDLES;
                if (s->state != SL_IDEM_SLOT_PENDING || s->n_records != n)
                    abort();
                check_slot(s);
                s->owner = &owners[k];
                h[k].slot = s;
            } else if (rc == SL_IDEM_DUPLICATE) {
                if (s->state != SL_IDEM_SLOT_DONE || s->error != 0 ||
                    s->n_upstream != s->n_records || s->n_records != n)
                    abort();
            } else if (rc == SL_IDEM_PENDING) {
                if (s->state != SL_IDEM_SLOT_PENDING)
                    abort();
            } else if (rc == SL_IDEM_REJECT) {
                if (kerr != 45 && kerr != 47)
                    abort();
            } else {
                abort();
            }
            break;
        }
        case 2:
        case 3: { /* a record of a handle's batch written upstream */
            uint8_t a = NEXT(), b = NEXT();
            handle *x = &h[a % MAX_HANDLES];
            if (x->slot && x->slot->owner == &owners[a % MAX_HANDLES]) {
                int32_t r = b % x->slot->n_records;
                if (op == 3) /* all of them, as a whole delivery */
                    for (r = 0; r < x->slot->n_records; r++)
                        sl_idem_record_upstream(x->slot, x->slot->owner, r,
                                                100 + r);
                else
                    sl_idem_record_upstream(x->slot, x->slot->owner, r,
                                            100 + r);
                check_slot(x->slot);
            }
            break;
        }
        case 4: { /* complete */
            uint8_t a = NEXT(), b = NEXT();
            int k = a % MAX_HANDLES;
            handle *x = &h[k];
            if (x->slot) {
                sl_idem_slot *s = x->slot;
                bool mine = s->owner == &owners[k] &&
                            s->state == SL_IDEM_SLOT_PENDING;
                int16_t want = b % 3 == 0 ? 10 : b % 3 == 1 ? 19 : 0;
                int16_t got;
                if (mine && want == 0 && s->n_upstream != s->n_records)
                    want = 19; /* produce.c succeeds only with all written */
                got = sl_idem_complete(id, s, &owners[k], want, 100);
                if (got != want && !(want == 0 && got == 45))
                    abort();
                x->slot = NULL;
            }
            break;
        }
        case 5: { /* time passes */
            now += NEXT() * 20;
            size_t before = sl_idem_count(id);
            if (sl_idem_expire(id, now) > before)
                abort();
            break;
        }
        default: { /* limit, ids */
            uint8_t a = NEXT();
            if (a & 1) {
                int64_t pid;
                int16_t ep;
                if (sl_idem_init_producer(id, &pid, &ep) != 0 ||
                    !sl_idem_issued(id, pid) || ep != 0)
                    abort();
            } else {
                sl_idem_set_limit(id, a >> 4);
            }
            break;
        }
        }
        /* A slot no longer ours (reused, or orphaned by a new epoch) may
         * sit in an entry that expiry or eviction frees later (they free
         * only entries with nothing pending): forget it now, while every
         * handle left points at a pending slot. */
        for (int k = 0; k < MAX_HANDLES; k++)
            if (h[k].slot && (h[k].slot->owner != &owners[k] ||
                              h[k].slot->state != SL_IDEM_SLOT_PENDING))
                h[k].slot = NULL;
    }
    sl_idem_free(id);
    return 0;
}
