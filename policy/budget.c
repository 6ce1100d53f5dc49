/*
 * Accounting: token buckets for connector quotas and class budgets, the
 * work-conserving split of capacity among active classes, throttle
 * decisions, admin pauses/overrides, pressure, live rebind. Semantics are
 * documented in include/sluice/policy.h.
 *
 * Buckets hold doubles (bytes or records); a rate of 0 means unlimited
 * (the bucket is not consulted). Time is int64 microseconds passed in.
 *
 * Thread: the event loop thread owns a state and all its accounts.
 */
#include "policy_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- token bucket -------------------------------------------------------- */

typedef struct bucket {
    double tokens; /* may be negative: debt */
    double rate;   /* per second; 0 = unlimited */
    double burst;  /* most tokens held */
    int64_t last_us;
} bucket;

static void bucket_refill(bucket *b, int64_t now)
{
    if (now <= b->last_us)
        return; /* time going backwards: no time passed */
    if (b->rate > 0) {
        b->tokens += b->rate * (double)(now - b->last_us) / 1e6;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
    }
    b->last_us = now;
}

/* Call after bucket_refill(now). A bucket going from unlimited to limited
 * starts full; otherwise its level is kept, clamped to the new burst. */
static void bucket_set(bucket *b, double rate, double burst)
{
    if (rate > 0 && b->rate <= 0)
        b->tokens = burst;
    b->rate = rate;
    b->burst = burst;
    if (b->tokens > burst)
        b->tokens = burst;
}

static void bucket_take(bucket *b, double n)
{
    double floor_ = -b->rate * SL_POLICY_MAX_DEBT_MS / 1000.0;

    if (b->rate <= 0)
        return;
    b->tokens -= n;
    if (b->tokens < floor_)
        b->tokens = floor_;
}

/* Microseconds until the debt is repaid; 0 if none. */
static double bucket_wait_us(const bucket *b)
{
    if (b->rate <= 0 || b->tokens >= 0)
        return 0;
    return -b->tokens / b->rate * 1e6;
}

/* ---- water-filling ------------------------------------------------------- */

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void sl__waterfill(const sl_policy_class *cl, size_t n, const bool *active,
                   double capacity, double *out)
{
    double sum_g = 0, sum_c = 0, w_min = 1e18, c_max = 0, lo = 0, hi;
    size_t na = 0;

    for (size_t i = 0; i < n; i++) {
        out[i] = 0;
        if (!active[i])
            continue;
        na++;
        sum_g += (double)cl[i].guarantee;
        sum_c += cl[i].ceiling ? (double)cl[i].ceiling : INFINITY;
        w_min = SL_MIN(w_min, (double)cl[i].weight);
        c_max = SL_MAX(c_max, (double)cl[i].ceiling);
    }
    if (na == 0)
        return;
    if (sum_g >= capacity) {
        /* Only reachable under pressure (the loader keeps guarantees
         * within capacity): cut guarantees in proportion. */
        for (size_t i = 0; i < n; i++)
            if (active[i])
                out[i] = sum_g > 0 ? capacity * (double)cl[i].guarantee / sum_g
                                   : 0;
        return;
    }
    if (sum_c <= capacity) {
        for (size_t i = 0; i < n; i++)
            if (active[i])
                out[i] = (double)cl[i].ceiling;
        return;
    }
    /* f(l) = sum clamp(l * w, g, c) is monotone: bisect for f(l) = cap. */
    hi = (capacity + c_max) / w_min;
    for (int it = 0; it < 100; it++) {
        double mid = (lo + hi) / 2, f = 0;
        for (size_t i = 0; i < n; i++)
            if (active[i])
                f += clampd(mid * (double)cl[i].weight,
                            (double)cl[i].guarantee,
                            cl[i].ceiling ? (double)cl[i].ceiling : INFINITY);
        if (f > capacity)
            hi = mid;
        else
            lo = mid;
    }
    for (size_t i = 0; i < n; i++)
        if (active[i])
            out[i] = clampd(lo * (double)cl[i].weight, (double)cl[i].guarantee,
                            cl[i].ceiling ? (double)cl[i].ceiling : INFINITY);
}

/* ---- state --------------------------------------------------------------- */

typedef struct cstate {
    char *name;
    const sl_policy_class *cls; /* in the bound policy */
    bucket b;        /* own share: rate = the class's current share */
    bucket ceil;     /* rate = ceiling_bytes_per_sec (0 = none) */
    int64_t last_us; /* last traffic */
    bool ever;       /* had traffic at all */
    double share;    /* current rate of b */
    sl_policy_counters ctr;
} cstate;

enum acct_kind { A_CONNECTOR, A_CLIENT, A_SHARED, A_OVERFLOW };

struct sl_policy_account {
    char *name;
    enum acct_kind kind;
    int refs;
    bool stale;
    cstate *cls; /* NULL when stale */
    sl_policy_mode mode;
    int64_t max_pause_ms;
    sl_policy_quota base;
    sl_policy_quota ovr;
    bool has_ovr;
    int64_t ovr_until;
    bool paused;
    int64_t pause_until; /* 0 = until resumed */
    bucket bytes, records;
    sl_policy_counters ctr;
    sl_policy_account *all_prev, *all_next; /* every account */
    sl_policy_account *lru_prev, *lru_next; /* idle client accounts */
    bool in_lru;
    sl_policy_account *hnext;               /* client map chain */
};

/* The acknowledged rate is a sliding window of one-second slots, as long as
 * Kafka's quota window (quota.window.num 11 x 1 s, the newest partial):
 * under a quota the broker answers in bursts between muted spells of a
 * second or more, and over its own window it lets through exactly the
 * quota, so that is what this measures. */
#define DELIVERED_SLOTS 11

/* Pressure: one controller per upstream broker (and one for memory),
 * with a bucket per class holding that class's share while limited. */
typedef struct pclass {
    bucket b;            /* rate = share while limited, 0 otherwise */
    double demand;       /* EWMA of bytes/s */
    uint64_t tick_bytes; /* since the previous tick */
    uint64_t bytes;      /* ever */
    bool held;           /* its share throttled someone since the tick */
    int64_t held_until;  /* ... and that source sits out its pause until */
} pclass;

typedef struct pbroker {
    int32_t id;
    sl_ctl ctl;
    sl_ctl_event last_event;
    double measured;     /* EWMA of bytes/s admitted */
    double delivered;    /* bytes/s acknowledged over the window below */
    uint64_t acked[DELIVERED_SLOTS]; /* per second, ring by second */
    int64_t acked_sec;   /* second of the newest slot */
    int64_t acked_from;  /* first sample (us) */
    uint64_t tick_bytes;
    pclass *cls;         /* n_classes of the bound policy */
} pbroker;

struct sl_policy_state {
    const sl_policy *pol;
    pbroker *brk;        /* [0] is the memory budget */
    size_t n_brk, cap_brk;
    int64_t last_tick_us;
    cstate *classes;
    size_t n_classes;
    uint64_t active_mask;
    bool dirty; /* shares need recomputing */
    bucket parent; /* the capacity */
    sl_policy_account **conn; /* by connector index, created on first use */
    size_t n_conn;
    sl_policy_account **cmap; /* client.id -> account, chained */
    size_t cmap_cap, n_clients;
    sl_policy_account *shared, *overflow;
    sl_policy_account *all;
    sl_policy_account *lru_head, *lru_tail;
};

static const char *const reason_names[] = {
#define SL__TR_NAME(n, s) s,
    SL_THROTTLE_MAP(SL__TR_NAME)
#undef SL__TR_NAME
};

const char *sl_throttle_reason_name(sl_throttle_reason r)
{
    return (unsigned)r < SL_ARRAY_SIZE(reason_names) ? reason_names[r] : "?";
}

/* ---- class shares -------------------------------------------------------- */

static bool class_active(const sl_policy_state *st, const cstate *c,
                         int64_t now)
{
    return c->ever &&
           now - c->last_us < st->pol->cap.active_window_ms * 1000;
}

/* Recomputes class rates when the active set (or pressure) changed.
 * Active classes split the capacity; an idle class refills at its share
 * with every class busy, so it returns with a full bucket. */
static void shares_update(sl_policy_state *st, int64_t now)
{
    bool act[SL__MAX_CLASSES], all[SL__MAX_CLASSES];
    double share[SL__MAX_CLASSES], nominal[SL__MAX_CLASSES];
    const sl_policy *pol = st->pol;
    const double cap = (double)pol->cap.bytes_per_sec;
    uint64_t mask = 0;

    if (cap == 0)
        return;
    for (size_t i = 0; i < st->n_classes; i++) {
        act[i] = class_active(st, &st->classes[i], now);
        all[i] = true;
        if (act[i])
            mask |= (uint64_t)1 << i;
    }
    if (mask == st->active_mask && !st->dirty)
        return;
    st->active_mask = mask;
    st->dirty = false;
    sl__waterfill(pol->classes, pol->n_classes, act, cap, share);
    sl__waterfill(pol->classes, pol->n_classes, all, cap, nominal);
    bucket_refill(&st->parent, now);
    bucket_set(&st->parent, cap,
               cap * (double)pol->cap.burst_ms / 1000.0);
    for (size_t i = 0; i < st->n_classes; i++) {
        cstate *c = &st->classes[i];
        double rate = act[i] ? share[i] : nominal[i];
        bucket_refill(&c->b, now);
        if (rate < 1)
            rate = 1; /* a zero rate would read as unlimited */
        bucket_set(&c->b, rate, rate * (double)pol->cap.burst_ms / 1000.0);
        c->share = rate;
        bucket_refill(&c->ceil, now);
        bucket_set(&c->ceil, (double)c->cls->ceiling,
                   (double)c->cls->ceiling * (double)pol->cap.burst_ms / 1000.0);
    }
}

static void classes_build(sl_policy_state *st, const cstate *old,
                          size_t n_old, int64_t now)
{
    const sl_policy *pol = st->pol;

    st->n_classes = pol->n_classes;
    st->classes = sl_calloc(pol->n_classes, sizeof(*st->classes));
    for (size_t i = 0; i < pol->n_classes; i++) {
        cstate *c = &st->classes[i];
        c->name = sl_strdup(pol->classes[i].name);
        c->cls = &pol->classes[i];
        c->b.last_us = c->ceil.last_us = now;
        for (size_t j = 0; j < n_old; j++) {
            if (strcmp(old[j].name, c->name) != 0)
                continue;
            c->b = old[j].b; /* refilled by the caller */
            c->ceil = old[j].ceil;
            c->last_us = old[j].last_us;
            c->ever = old[j].ever;
            c->ctr = old[j].ctr;
            break;
        }
    }
    st->active_mask = 0;
    st->dirty = true;
    shares_update(st, now);
}

/* ---- accounts ------------------------------------------------------------ */

static void apply_quota(sl_policy_account *a, int64_t now)
{
    const sl_policy_quota *q = a->has_ovr ? &a->ovr : &a->base;

    bucket_refill(&a->bytes, now);
    bucket_refill(&a->records, now);
    bucket_set(&a->bytes, (double)q->bytes_per_sec,
               (double)(q->burst_bytes ? q->burst_bytes : q->bytes_per_sec));
    bucket_set(&a->records, (double)q->records_per_sec,
               (double)(q->burst_records ? q->burst_records
                                         : q->records_per_sec));
}

static void bind_params(sl_policy_state *st, sl_policy_account *a,
                        const sl_policy_quota *q, const sl_policy_class *cls,
                        sl_policy_mode mode, int64_t now)
{
    a->base = *q;
    a->cls = &st->classes[cls->index];
    a->max_pause_ms = cls->max_pause_ms;
    a->mode = mode;
    apply_quota(a, now);
}

static void bind_connector(sl_policy_state *st, sl_policy_account *a,
                           const sl_policy_connector *c, int64_t now)
{
    bind_params(st, a, &c->quota, c->cls, c->mode, now);
}

static void bind_default(sl_policy_state *st, sl_policy_account *a,
                         int64_t now)
{
    const sl_policy *pol = st->pol;
    bind_params(st, a, &pol->defaults.quota, pol->defaults.cls, pol->mode,
                now);
}

static sl_policy_account *acct_new(sl_policy_state *st, const char *name,
                                   enum acct_kind kind, int64_t now)
{
    sl_policy_account *a = sl_calloc(1, sizeof(*a));

    a->name = sl_strdup(name);
    a->kind = kind;
    a->bytes.last_us = a->records.last_us = now;
    a->all_next = st->all;
    if (st->all)
        st->all->all_prev = a;
    st->all = a;
    return a;
}

static void lru_remove(sl_policy_state *st, sl_policy_account *a)
{
    if (!a->in_lru)
        return;
    if (a->lru_prev)
        a->lru_prev->lru_next = a->lru_next;
    else
        st->lru_head = a->lru_next;
    if (a->lru_next)
        a->lru_next->lru_prev = a->lru_prev;
    else
        st->lru_tail = a->lru_prev;
    a->lru_prev = a->lru_next = NULL;
    a->in_lru = false;
}

static void lru_append(sl_policy_state *st, sl_policy_account *a)
{
    a->lru_prev = st->lru_tail;
    a->lru_next = NULL;
    if (st->lru_tail)
        st->lru_tail->lru_next = a;
    else
        st->lru_head = a;
    st->lru_tail = a;
    a->in_lru = true;
}

static size_t cmap_slot(const sl_policy_state *st, const char *key)
{
    return sl__hash(key, strlen(key)) & (st->cmap_cap - 1);
}

static void cmap_grow(sl_policy_state *st)
{
    size_t cap = st->cmap_cap ? st->cmap_cap * 2 : 64;
    sl_policy_account **m = sl_calloc(cap, sizeof(*m));

    for (size_t i = 0; i < st->cmap_cap; i++) {
        sl_policy_account *a = st->cmap[i], *next;
        for (; a; a = next) {
            size_t s = sl__hash(a->name, strlen(a->name)) & (cap - 1);
            next = a->hnext;
            a->hnext = m[s];
            m[s] = a;
        }
    }
    sl_free(st->cmap);
    st->cmap = m;
    st->cmap_cap = cap;
}

static sl_policy_account *cmap_get(const sl_policy_state *st, const char *k)
{
    if (st->cmap_cap == 0)
        return NULL;
    for (sl_policy_account *a = st->cmap[cmap_slot(st, k)]; a; a = a->hnext)
        if (strcmp(a->name, k) == 0)
            return a;
    return NULL;
}

static void cmap_put(sl_policy_state *st, sl_policy_account *a)
{
    size_t s;

    if (st->n_clients + 1 > st->cmap_cap)
        cmap_grow(st);
    s = cmap_slot(st, a->name);
    a->hnext = st->cmap[s];
    st->cmap[s] = a;
    st->n_clients++;
}

static void cmap_del(sl_policy_state *st, sl_policy_account *a)
{
    sl_policy_account **pp = &st->cmap[cmap_slot(st, a->name)];

    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == a) {
            *pp = a->hnext;
            a->hnext = NULL;
            st->n_clients--;
            return;
        }
}

/* Unlinks from the all-list and frees. The caller has removed it from the
 * client map, the LRU and the connector table. */
static void acct_free(sl_policy_state *st, sl_policy_account *a)
{
    if (a->all_prev)
        a->all_prev->all_next = a->all_next;
    else
        st->all = a->all_next;
    if (a->all_next)
        a->all_next->all_prev = a->all_prev;
    sl_free(a->name);
    sl_free(a);
}

/* Makes a stale: detached from every index, freed once unreferenced. */
static void acct_retire(sl_policy_state *st, sl_policy_account *a)
{
    a->stale = true;
    a->cls = NULL;
    if (a->kind == A_CLIENT) {
        lru_remove(st, a);
        cmap_del(st, a);
    }
    if (a->refs == 0)
        acct_free(st, a);
}

/* ---- pressure: per-broker controllers ------------------------------------ */

static pbroker *pbroker_add(sl_policy_state *st, int32_t id, int64_t now)
{
    pbroker *b;

    if (st->n_brk == st->cap_brk) {
        st->cap_brk = st->cap_brk ? st->cap_brk * 2 : 8;
        st->brk = sl_realloc(st->brk, st->cap_brk * sizeof(*st->brk));
    }
    b = &st->brk[st->n_brk++];
    memset(b, 0, sizeof(*b));
    b->id = id;
    sl_ctl_init(&b->ctl, now);
    b->cls = sl_calloc(SL_MAX(st->n_classes, 1), sizeof(*b->cls));
    for (size_t i = 0; i < st->n_classes; i++)
        b->cls[i].b.last_us = now;
    return b;
}

/* Linear: a cluster has tens of brokers and a request names a few. */
static pbroker *pbroker_get(sl_policy_state *st, int32_t id, int64_t now)
{
    for (size_t i = 1; i < st->n_brk; i++)
        if (st->brk[i].id == id)
            return &st->brk[i];
    return pbroker_add(st, id, now);
}

/* Classes changed on rebind: keep each class's per-broker state by name. */
static void pbroker_rebind(sl_policy_state *st, const cstate *old,
                           size_t n_old)
{
    for (size_t i = 0; i < st->n_brk; i++) {
        pbroker *b = &st->brk[i];
        pclass *nc = sl_calloc(SL_MAX(st->n_classes, 1), sizeof(*nc));
        for (size_t j = 0; j < st->n_classes; j++) {
            nc[j].b.last_us = b->ctl.last_us;
            for (size_t k = 0; k < n_old; k++)
                if (strcmp(old[k].name, st->classes[j].name) == 0)
                    nc[j] = b->cls[k];
        }
        sl_free(b->cls);
        b->cls = nc;
    }
}

sl_policy_state *sl_policy_state_new(const sl_policy *pol, int64_t now_us)
{
    sl_policy_state *st = sl_calloc(1, sizeof(*st));

    st->pol = pol;
    st->parent.last_us = now_us;
    st->n_conn = pol->n_connectors;
    st->conn = sl_calloc(st->n_conn + 1, sizeof(*st->conn));
    classes_build(st, NULL, 0, now_us);
    st->last_tick_us = now_us;
    pbroker_add(st, SL_POLICY_BROKER_MEMORY, now_us);
    return st;
}

void sl_policy_state_free(sl_policy_state *st)
{
    if (st == NULL)
        return;
    while (st->all)
        acct_free(st, st->all);
    for (size_t i = 0; i < st->n_classes; i++)
        sl_free(st->classes[i].name);
    for (size_t i = 0; i < st->n_brk; i++)
        sl_free(st->brk[i].cls);
    sl_free(st->brk);
    sl_free(st->classes);
    sl_free(st->conn);
    sl_free(st->cmap);
    sl_free(st);
}

const sl_policy *sl_policy_state_policy(const sl_policy_state *st)
{
    return st->pol;
}

void sl_policy_state_rebind(sl_policy_state *st, const sl_policy *np,
                            int64_t now)
{
    cstate *old = st->classes;
    size_t n_old = st->n_classes;
    sl_policy_account **conn = sl_calloc(np->n_connectors + 1, sizeof(*conn));
    sl_policy_account *a, *next;

    for (size_t i = 0; i < n_old; i++) {
        bucket_refill(&old[i].b, now);
        bucket_refill(&old[i].ceil, now);
    }
    st->pol = np;
    classes_build(st, old, n_old, now);
    pbroker_rebind(st, old, n_old);
    for (size_t i = 0; i < n_old; i++)
        sl_free(old[i].name);
    sl_free(old);

    for (size_t i = 0; i < st->n_conn; i++) {
        const sl_policy_connector *c;
        if ((a = st->conn[i]) == NULL)
            continue;
        c = sl_policy_connector_find(np, a->name);
        if (c != NULL) {
            conn[c->index] = a;
            bind_connector(st, a, c, now);
        } else {
            acct_retire(st, a);
        }
    }
    sl_free(st->conn);
    st->conn = conn;
    st->n_conn = np->n_connectors;

    for (a = st->all; a; a = next) {
        next = a->all_next;
        if (a->kind == A_CONNECTOR || a->stale)
            continue;
        if (np->defaults.action != 0 ||
            (a->kind == A_CLIENT && !np->defaults.per_client_id) ||
            (a->kind == A_SHARED && np->defaults.per_client_id) ||
            (a->kind == A_OVERFLOW && !np->defaults.per_client_id)) {
            if (a == st->shared)
                st->shared = NULL;
            if (a == st->overflow)
                st->overflow = NULL;
            acct_retire(st, a);
        } else {
            bind_default(st, a, now);
        }
    }
}

static sl_policy_account *client_account(sl_policy_state *st,
                                         const char *cid, int64_t now,
                                         sl_policy_resolution *res)
{
    const sl_policy *pol = st->pol;
    sl_policy_account *a;

    if (!pol->defaults.per_client_id) {
        if (st->shared == NULL) {
            st->shared = acct_new(st, "(defaults)", A_SHARED, now);
            bind_default(st, st->shared, now);
        }
        return st->shared;
    }
    if ((a = cmap_get(st, cid)) != NULL) {
        lru_remove(st, a);
        return a;
    }
    if (st->n_clients >= (size_t)pol->defaults.max_clients) {
        if (st->lru_head == NULL) {
            if (st->overflow == NULL) {
                st->overflow = acct_new(st, "(overflow)", A_OVERFLOW, now);
                bind_default(st, st->overflow, now);
            }
            if (res != NULL) {
                size_t l = strlen(res->why);
                snprintf(res->why + l, sizeof(res->why) - l,
                         "; bucket limit defaults.max_clients reached, so "
                         "sharing the overflow bucket");
            }
            return st->overflow;
        }
        a = st->lru_head; /* the idle bucket unused the longest */
        lru_remove(st, a);
        cmap_del(st, a);
        acct_free(st, a);
    }
    a = acct_new(st, cid, A_CLIENT, now);
    bind_default(st, a, now);
    cmap_put(st, a);
    return a;
}

static sl_policy_account *connector_account(sl_policy_state *st,
                                            const sl_policy_connector *c,
                                            int64_t now)
{
    sl_policy_account *a = st->conn[c->index];

    if (a == NULL) {
        a = acct_new(st, c->name, A_CONNECTOR, now);
        bind_connector(st, a, c, now);
        st->conn[c->index] = a;
    }
    return a;
}

sl_policy_account *sl_policy_account_get(sl_policy_state *st,
                                         const sl_policy_identity *id,
                                         int64_t now_us,
                                         sl_policy_resolution *res)
{
    sl_policy_resolution local;
    sl_policy_resolution *r = res ? res : &local;
    sl_policy_account *a;

    switch (sl_policy_resolve(st->pol, id, r)) {
    case SL_MATCH_REFUSED:
        return NULL;
    case SL_MATCH_DEFAULT:
        a = client_account(st, id->client_id ? id->client_id : "", now_us, r);
        break;
    default:
        a = connector_account(st, r->connector, now_us);
        break;
    }
    a->refs++;
    return a;
}

void sl_policy_account_put(sl_policy_state *st, sl_policy_account *a)
{
    if (a == NULL || --a->refs > 0)
        return;
    if (a->stale)
        acct_free(st, a);
    else if (a->kind == A_CLIENT)
        lru_append(st, a);
}

/* ---- decisions ----------------------------------------------------------- */

static void expire(sl_policy_account *a, int64_t now)
{
    if (a->has_ovr && now >= a->ovr_until) {
        a->has_ovr = false;
        apply_quota(a, now);
    }
    if (a->paused && a->pause_until != 0 && now >= a->pause_until)
        a->paused = false;
}

static void count(sl_policy_counters *c, uint64_t bytes, uint64_t records,
                  const sl_policy_decision *d)
{
    c->bytes += bytes;
    c->records += records;
    c->requests++;
    if (d->throttle_ms > 0) {
        c->throttle_events[d->reason]++;
        c->throttle_ms[d->reason] += d->throttle_ms;
    }
}

static uint32_t to_ms(double us)
{
    double ms = ceil(us / 1000.0 - 1e-9);
    return ms <= 0 ? 0 : ms >= 4e9 ? 4000000000u : (uint32_t)ms;
}

/* Charges n bytes of class ci to broker b's controller; returns the wait
 * its share imposes (0 while the broker is not limited). max_pause_ms: the
 * account's cap on a throttle, so how long the source will sit out. */
static double pressure_take(pbroker *b, size_t ci, uint64_t n, int64_t now,
                            int64_t max_pause_ms)
{
    pclass *pc = &b->cls[ci];

    b->tick_bytes += n;
    pc->tick_bytes += n;
    pc->bytes += n;
    if (!b->ctl.limited || pc->b.rate <= 0)
        return 0;
    bucket_refill(&pc->b, now);
    bucket_take(&pc->b, (double)n);
    if (pc->b.tokens < 0) {
        int64_t until =
            now + (int64_t)SL_MIN(bucket_wait_us(&pc->b),
                                  (double)max_pause_ms * 1000.0);
        pc->held = true;
        if (until > pc->held_until)
            pc->held_until = until;
    }
    return bucket_wait_us(&pc->b);
}

void sl_policy_charge(sl_policy_state *st, sl_policy_account *a,
                      uint64_t bytes, uint64_t records, int64_t now,
                      sl_policy_decision *d)
{
    sl_policy_charge_brokers(st, a, bytes, records, NULL, 0, now, d);
}

void sl_policy_charge_brokers(sl_policy_state *st, sl_policy_account *a,
                              uint64_t bytes, uint64_t records,
                              const sl_policy_broker_bytes *per, size_t n,
                              int64_t now, sl_policy_decision *d)
{
    double wait = 0, w;
    sl_throttle_reason reason = SL_THROTTLE_NONE;
    cstate *cls = a->cls;

    memset(d, 0, sizeof(*d));
    expire(a, now);
    bucket_refill(&a->bytes, now);
    bucket_refill(&a->records, now);
    bucket_take(&a->bytes, (double)bytes);
    bucket_take(&a->records, (double)records);
    w = SL_MAX(bucket_wait_us(&a->bytes), bucket_wait_us(&a->records));
    if (w > wait) {
        wait = w;
        reason = SL_THROTTLE_QUOTA;
    }
    if (cls != NULL && st->pol->cap.bytes_per_sec > 0) {
        cls->last_us = now;
        cls->ever = true;
        shares_update(st, now);
        /* Hierarchical: a class in debt on its own share may borrow what
         * the capacity has spare, never above its ceiling. */
        bucket_refill(&cls->b, now);
        bucket_refill(&cls->ceil, now);
        bucket_refill(&st->parent, now);
        bucket_take(&cls->b, (double)bytes);
        bucket_take(&cls->ceil, (double)bytes);
        bucket_take(&st->parent, (double)bytes);
        w = SL_MAX(bucket_wait_us(&cls->ceil),
                   SL_MIN(bucket_wait_us(&cls->b),
                          bucket_wait_us(&st->parent)));
        if (w > wait) {
            wait = w;
            reason = SL_THROTTLE_CLASS_BUDGET;
        }
    }
    if (cls != NULL && st->pol->pressure.enabled) {
        size_t ci = (size_t)(cls - st->classes);
        w = pressure_take(&st->brk[0], ci, bytes, now, a->max_pause_ms);
        if (w > wait) {
            wait = w;
            reason = st->brk[0].ctl.reason;
        }
        for (size_t i = 0; i < n; i++) {
            pbroker *b = pbroker_get(st, per[i].broker, now);
            w = pressure_take(b, ci, per[i].bytes, now, a->max_pause_ms);
            if (w > wait) {
                wait = w;
                reason = b->ctl.reason;
            }
        }
    }
    if (a->paused) {
        wait = (double)a->max_pause_ms * 1000.0;
        reason = SL_THROTTLE_PAUSED;
    }
    d->uncapped_ms = to_ms(wait);
    d->throttle_ms = (uint32_t)SL_MIN((int64_t)d->uncapped_ms, a->max_pause_ms);
    d->reason = d->throttle_ms > 0 ? reason : SL_THROTTLE_NONE;
    d->enforced = a->mode == SL_POLICY_ENFORCE;
    count(&a->ctr, bytes, records, d);
    if (cls != NULL)
        count(&cls->ctr, bytes, records, d);
}

/* ---- admin hooks --------------------------------------------------------- */

static sl_policy_account *named(sl_policy_state *st, const char *name,
                                int64_t now)
{
    const sl_policy_connector *c = sl_policy_connector_find(st->pol, name);
    return c ? connector_account(st, c, now) : NULL;
}

int sl_policy_pause(sl_policy_state *st, const char *connector,
                    int64_t until_us, int64_t now_us)
{
    sl_policy_account *a = named(st, connector, now_us);

    if (a == NULL)
        return SL_E_NOTFOUND;
    if (until_us != 0 && until_us <= now_us)
        return SL_E_INVALID;
    a->paused = true;
    a->pause_until = until_us;
    return 0;
}

int sl_policy_resume(sl_policy_state *st, const char *connector,
                     int64_t now_us)
{
    sl_policy_account *a = named(st, connector, now_us);

    if (a == NULL)
        return SL_E_NOTFOUND;
    a->paused = false;
    a->pause_until = 0;
    return 0;
}

int sl_policy_override(sl_policy_state *st, const char *connector,
                       const sl_policy_quota *q, int64_t until_us,
                       int64_t now_us)
{
    sl_policy_account *a;

    if (q == NULL || until_us <= now_us || q->bytes_per_sec < 0 ||
        q->records_per_sec < 0 || q->burst_bytes < 0 || q->burst_records < 0)
        return SL_E_INVALID;
    if ((a = named(st, connector, now_us)) == NULL)
        return SL_E_NOTFOUND;
    a->ovr = *q;
    a->has_ovr = true;
    a->ovr_until = until_us;
    apply_quota(a, now_us);
    return 0;
}

int sl_policy_override_clear(sl_policy_state *st, const char *connector,
                             int64_t now_us)
{
    sl_policy_account *a = named(st, connector, now_us);

    if (a == NULL)
        return SL_E_NOTFOUND;
    a->has_ovr = false;
    apply_quota(a, now_us);
    return 0;
}

/* ---- pressure: control steps and shares ------------------------------------ */

/* While limited, a class may take this much more than it has been sending
 * before the next step re-divides: room to grow without starving the
 * classes shed before it. */
#define SHARE_GROW 1.25
/* Time constant of the measured rates (EWMA), seconds. */
#define RATE_TAU_S 0.5
/* Bucket depth of a class share under pressure, as time at the share. */
#define SHARE_BURST_S 0.25

static void share_set(pclass *pc, double rate, int64_t now)
{
    bucket_refill(&pc->b, now);
    if (rate == INFINITY) {
        bucket_set(&pc->b, 0, 0);
    } else {
        rate = SL_MAX(rate, 1.0); /* a zero rate would read as unlimited */
        bucket_set(&pc->b, rate, SL_MAX(rate * SHARE_BURST_S, 1.0));
    }
}

/* The class's share of a limited broker, INFINITY while not limited. */
static double share_of(const pclass *pc)
{
    return pc->b.rate > 0 ? pc->b.rate : INFINITY;
}

/* Divides a limited broker's admitted rate among the classes: first each
 * active class's guarantee (guarantees are not shed: a class keeps its
 * guarantee on every limited broker it writes to), then the rest
 * from the highest shed_order down, each group up to SHARE_GROW times its
 * demand (a group shares in proportion to demand); the lowest group takes
 * whatever is left. An idle class gets its guarantee or a fair slice, so
 * a source that starts sending is not muted outright. */
static void shares_divide(sl_policy_state *st, pbroker *b, int64_t now)
{
    size_t n = st->n_classes, order[SL__MAX_CLASSES], na = 0;
    double give[SL__MAX_CLASSES], left = b->ctl.rate;

    if (!b->ctl.limited) {
        for (size_t c = 0; c < n; c++)
            if (b->cls[c].b.rate > 0)
                share_set(&b->cls[c], INFINITY, now);
        return;
    }
    for (size_t c = 0; c < n; c++) {
        const pclass *pc = &b->cls[c];
        double g = (double)st->classes[c].cls->guarantee;
        if (pc->demand >= 1) {
            give[c] = g; /* reserved while the class is active */
            left -= give[c];
            order[na++] = c;
        } else {
            give[c] = SL_MAX(g, b->ctl.rate / (double)n);
        }
    }
    left = SL_MAX(left, 0);
    /* Active classes by shed_order, highest first (insertion sort: few). */
    for (size_t i = 1; i < na; i++)
        for (size_t j = i; j > 0 &&
                           st->classes[order[j]].cls->shed_order >
                               st->classes[order[j - 1]].cls->shed_order;
             j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (size_t i = 0; i < na;) {
        int64_t so = st->classes[order[i]].cls->shed_order;
        size_t j = i;
        double want = 0, dem = 0;
        bool last;
        while (j < na && st->classes[order[j]].cls->shed_order == so) {
            const pclass *pc = &b->cls[order[j]];
            want += SL_MAX(pc->demand * SHARE_GROW - give[order[j]], 0);
            dem += pc->demand;
            j++;
        }
        last = j == na;
        for (size_t k = i; k < j; k++) {
            size_t c = order[k];
            double wc = SL_MAX(b->cls[c].demand * SHARE_GROW - give[c], 0);
            if (last) /* the last group takes all that is left */
                give[c] += dem > 0 ? left * b->cls[c].demand / dem : 0;
            else if (want <= left)
                give[c] += wc;
            else
                give[c] += want > 0 ? left * wc / want : 0;
        }
        left = last || want > left ? 0 : left - want;
        i = j;
    }
    for (size_t c = 0; c < n; c++)
        share_set(&b->cls[c], give[c], now);
}

static void delivered_add(pbroker *b, uint64_t bytes, int64_t now)
{
    int64_t sec = now / 1000000, span;
    uint64_t sum = 0;

    if (b->acked_from == 0) {
        b->acked_from = now;
        b->acked_sec = sec;
    }
    for (int64_t s = b->acked_sec + 1; s <= sec && s <= b->acked_sec +
                                                         DELIVERED_SLOTS;
         s++)
        b->acked[s % DELIVERED_SLOTS] = 0;
    if (sec > b->acked_sec)
        b->acked_sec = sec;
    b->acked[sec % DELIVERED_SLOTS] += bytes;
    for (size_t i = 0; i < DELIVERED_SLOTS; i++)
        sum += b->acked[i];
    span = SL_MIN(now - b->acked_from,
                  (DELIVERED_SLOTS - 1) * 1000000LL + now % 1000000);
    b->delivered = (double)sum * 1e6 / (double)SL_MAX(span, 1000000);
}

static const sl_pressure_sample *sample_of(const sl_pressure_sample *s,
                                           size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].broker == id)
            return &s[i];
    return NULL;
}

size_t sl_policy_pressure_tick(sl_policy_state *st, int64_t now,
                               const sl_pressure_sample *s, size_t n,
                               double fill_permille)
{
    const sl_policy_pressure *pp = &st->pol->pressure;
    sl_ctl_params lat, mem;
    double dt = (double)(now - st->last_tick_us) / 1e6, a;
    size_t changed = 0;

    if (dt <= 0)
        return 0;
    st->last_tick_us = now;
    a = 1 - exp(-dt / RATE_TAU_S);
    for (size_t i = 0; i < n; i++)
        (void)pbroker_get(st, s[i].broker, now); /* visible from the start */
    sl_ctl_params_latency(&lat, pp);
    sl_ctl_params_memory(&mem, pp);
    for (size_t i = 0; i < st->n_brk; i++) {
        pbroker *b = &st->brk[i];
        const sl_pressure_sample *x =
            i == 0 ? NULL : sample_of(s, n, b->id);
        sl_ctl_event ev;
        double m;
        bool held = false;

        b->measured += a * ((double)b->tick_bytes / dt - b->measured);
        b->tick_bytes = 0;
        if (x != NULL)
            delivered_add(b, x->acked_bytes, now);
        for (size_t c = 0; c < st->n_classes; c++) {
            pclass *pc = &b->cls[c];
            /* Held back: throttled since the last tick, or a source it
             * throttled still sits out its pause (and sends nothing, which
             * must not read as a limit that no longer binds). */
            pc->held |= now < pc->held_until;
            held |= pc->held;
            pc->demand += a * ((double)pc->tick_bytes / dt - pc->demand);
            pc->tick_bytes = 0;
            /* A class its share held back sends less than it wants: what
             * it sends says only that it wants at least its share. */
            if (pc->held && pc->b.rate > 0 && pc->demand < pc->b.rate)
                pc->demand = pc->b.rate;
            pc->held = false;
        }
        m = b->measured;
        if (!pp->enabled) {
            ev = b->ctl.limited ? SL_CTL_RELEASE : SL_CTL_STEADY;
            b->ctl.limited = false;
            b->ctl.reason = SL_THROTTLE_NONE;
        } else if (i == 0) {
            sl_ctl_input in = {fill_permille, 0, m, held, NAN,
                               SL_THROTTLE_MEMORY};
            ev = sl_ctl_update(&b->ctl, &mem, now, &in);
        } else {
            sl_ctl_input in = {x ? x->latency_ms : NAN,
                               x ? (double)x->throttle_ms : 0, m, held,
                               b->delivered, SL_THROTTLE_BROKER_LATENCY};
            ev = sl_ctl_update(&b->ctl, &lat, now, &in);
        }
        b->last_event = ev;
        if (ev != SL_CTL_STEADY)
            changed++;
        /* On a raise the daemon lets the sources sitting out a pressure
         * pause ask again (at the new share), so their pauses are over. */
        if (ev == SL_CTL_RAISE || ev == SL_CTL_RELEASE)
            for (size_t c = 0; c < st->n_classes; c++)
                b->cls[c].held_until = 0;
        shares_divide(st, b, now);
    }
    return changed;
}

size_t sl_policy_pressure_count(const sl_policy_state *st)
{
    return st->n_brk;
}

int sl_policy_pressure_at(const sl_policy_state *st, size_t i,
                          sl_policy_pressure_view *out)
{
    const pbroker *b;

    if (i >= st->n_brk)
        return SL_E_INVALID;
    b = &st->brk[i];
    out->broker = b->id;
    out->limited = b->ctl.limited;
    out->admitted_bps = b->ctl.limited ? b->ctl.rate : INFINITY;
    out->measured_bps = b->measured;
    out->delivered_bps = b->delivered;
    out->signal = b->ctl.smoothed;
    out->reason = b->ctl.limited ? b->ctl.reason : SL_THROTTLE_NONE;
    out->last_event = b->last_event;
    out->episodes = b->ctl.episodes;
    out->cuts = b->ctl.cuts;
    return 0;
}

int sl_policy_pressure_class_at(const sl_policy_state *st, size_t i,
                                size_t ci, sl_policy_pressure_class *out)
{
    const pclass *pc;

    if (i >= st->n_brk || ci >= st->n_classes)
        return SL_E_INVALID;
    pc = &st->brk[i].cls[ci];
    out->bytes = pc->bytes;
    out->demand_bps = pc->demand;
    out->share_bps = share_of(pc);
    return 0;
}

/* ---- views --------------------------------------------------------------- */

const char *sl_policy_account_name(const sl_policy_account *a)
{
    return a->name;
}

bool sl_policy_account_is_default(const sl_policy_account *a)
{
    return a->kind != A_CONNECTOR;
}

bool sl_policy_account_stale(const sl_policy_account *a)
{
    return a->stale;
}

const sl_policy_counters *sl_policy_account_counters(
    const sl_policy_account *a)
{
    return &a->ctr;
}

double sl_policy_account_tokens(const sl_policy_account *a, int64_t now_us)
{
    bucket b = a->bytes;

    bucket_refill(&b, now_us);
    return b.tokens;
}

size_t sl_policy_state_class_count(const sl_policy_state *st)
{
    return st->n_classes;
}

int sl_policy_state_class_at(sl_policy_state *st, size_t i, int64_t now_us,
                             sl_policy_class_state *out)
{
    cstate *c;

    if (i >= st->n_classes)
        return SL_E_INVALID;
    c = &st->classes[i];
    shares_update(st, now_us);
    bucket_refill(&c->b, now_us);
    out->name = c->name;
    out->share_bps = st->pol->cap.bytes_per_sec ? c->share : 0;
    out->tokens = c->b.tokens;
    out->active = class_active(st, c, now_us);
    out->shed_order = c->cls->shed_order;
    out->counters = c->ctr;
    return 0;
}

size_t sl_policy_state_default_count(const sl_policy_state *st)
{
    return st->n_clients;
}

/* ---- enumeration (metrics, admin views) ----------------------------------- */

const sl_policy_account *sl_policy_state_first_account(
    const sl_policy_state *st)
{
    return st->all;
}

const sl_policy_account *sl_policy_account_next(const sl_policy_account *a)
{
    return a->all_next;
}

const char *sl_policy_account_class_name(const sl_policy_account *a)
{
    return a->cls ? a->cls->name : "";
}

bool sl_policy_account_paused(const sl_policy_account *a, int64_t now_us)
{
    return a->paused && (a->pause_until == 0 || now_us < a->pause_until);
}
