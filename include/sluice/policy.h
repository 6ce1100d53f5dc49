/*
 * Sluice policy engine: who a producer is, which class it belongs to, how
 * much it may send, and how long to mute it when it sends more.
 *
 * Three parts (policy/):
 *   policy.c    the policy file: parse, validate, model, explain, summary
 *   identity.c  resolution indexes: identity -> connector + class
 *   budget.c    token buckets, class budgets, throttle decisions
 *
 * Pure: no clock reads, no sockets, no libuv, no librdkafka, no logging.
 * The only I/O is sl_policy_load_file() reading the file it is given.
 * Time is always a parameter: int64_t microseconds on any monotonic clock
 * (the daemon passes uv_now()*1000 or uv_hrtime()/1000). Time that goes
 * backwards is treated as no time passing.
 *
 * Thread: the event loop thread owns an sl_policy_state and everything it
 * hands out. A loaded sl_policy is immutable; sl_policy_resolve() and the
 * explain/summary functions only read it, so the main thread may load and
 * check a new policy while the loop uses the old one; the loop then calls
 * sl_policy_state_rebind().
 *
 * ---- Policy file (JSON) -----------------------------------------------
 *   {
 *     "version": 1,
 *     "mode": "enforce" | "shadow",            (default "enforce")
 *     "capacity": {                            (optional: no class budgets
 *       "bytes_per_sec": "200MiB",              without it)
 *       "burst_ms": 1000, "active_window_ms": 1000 },
 *     "classes": {
 *       "<name>": { "weight": 1..1000, "guarantee_bytes_per_sec": BYTES,
 *                   "ceiling_bytes_per_sec": BYTES, "max_pause_ms": 1..300000,
 *                   "shed_order": 0..1000, "description": "..." } },
 *     "connectors": {
 *       "<name>": { "class": "<class>", "mode": "enforce" | "shadow",
 *                   "description": "...",
 *                   "match": { "principals": [..], "client_ids": [..],
 *                              "connect": true, "connect_names": [..],
 *                              "client_id_prefixes": [..],
 *                              "client_id_globs": [..], "cidrs": [..] },
 *                   "quota": { "bytes_per_sec": BYTES, "records_per_sec": N,
 *                              "burst_bytes": BYTES, "burst_records": N },
 *                   "topics": ["exact-name", "prefix.*", "*"] } },
 *     "defaults": { "action": "admit" | "refuse", "class": "<class>",
 *                   "quota": {..}, "per_client_id": true,
 *                   "max_clients": 10000, "topics": [..], "message": ".." }
 *   }
 * BYTES is an integer or a string with a unit: "512KiB", "30MiB", "1GB".
 * Every key is in one table in policy/policy.c (name, type, bounds,
 * default, help); sl_policy_reference() prints it.
 *
 * Errors: "FILE:LINE: field.path: reason", e.g.
 *   p.json:14: connectors.cdc.class: unknown class "fragil" (did you mean
 *   "fragile"?)
 *   p.json:22: connectors.fleet.match.cidrs[1]: invalid CIDR "10.0.0.1/8":
 *   host bits set (did you mean "10.0.0.0/8"?)
 *
 * ---- Identity resolution (precedence, first hit wins) ------------------
 *   1. principal           exact SASL principal, e.g. "User:cdc"
 *   2. client_id           exact client.id
 *   3. connect             Kafka Connect task producer client.id
 *                          "connector-producer-<name>-<task>" (and the DLQ
 *                          form "connector-dlq-producer-<name>-<task>"),
 *                          <task> all digits; <name> is the connector's own
 *                          name or one of its match.connect_names. Every
 *                          task and connection of a Connect connector lands
 *                          on one connector without listing tasks.
 *   4. client_id_prefix    longest matching prefix wins
 *   5. client_id_glob      '*' and '?' wildcards; among matches the glob
 *                          with the longest literal prefix (the text
 *                          before its first wildcard) wins, ties go to the
 *                          earlier one in the file
 *   6. cidr                peer address, longest prefix wins; IPv4-mapped
 *                          IPv6 peers (::ffff:a.b.c.d) match IPv4 CIDRs
 *   7. defaults            admit into defaults.class, or refuse
 * A client.id, prefix, glob, principal, Connect name or CIDR may be claimed
 * by one connector only (the loader rejects a second claim).
 *
 * Cost: independent of the number of connectors. Stages 1-3 are one hash
 * lookup each; prefixes are one pass over the client.id with a running
 * hash, probing only at lengths some prefix has (so at most
 * min(len, 256) probes); CIDRs probe one hash table per prefix length in
 * use, longest first (<= 33 for IPv4, <= 129 for IPv6). Globs are indexed
 * by literal prefix in the same pass; only globs whose literal prefix
 * matches are tried, so globs sharing one literal prefix (or starting
 * with a wildcard) are tried linearly: prefer prefixes where possible.
 *
 * ---- Accounting ---------------------------------------------------------
 * Token buckets, three levels: capacity -> class -> connector account.
 *  - Connector quota: bytes/s and records/s (each optional), bucket depth
 *    burst_bytes / burst_records (default: one second at the rate).
 *  - Class budget (when capacity.bytes_per_sec is set), hierarchical:
 *    capacity is split among the ACTIVE classes (traffic within
 *    active_window_ms) by weight, each getting at least its guarantee and
 *    at most its ceiling (water-filling); that share refills the class's
 *    own bucket. Every byte is also charged to one capacity bucket. A
 *    class in debt on its own share may borrow whatever the capacity
 *    bucket has spare (its wait is the shorter of the two debts), but
 *    never beyond its ceiling bucket. So the split is work-conserving:
 *    an idle class's share (or the unused part of a busy one's) is lent
 *    to busy classes, and taken back at once when its owner sends again:
 *    the owner spends its own tokens while borrowers wait for the
 *    overdrawn capacity bucket. An idle class refills at its share with
 *    every class busy, so it returns with a full bucket and gets at least
 *    its guarantee without delay.
 *  - Every charged request is admitted (over-quota data is still accepted);
 *    the decision is the throttle for the NEXT request: the time until the
 *    deepest debt (negative tokens) is repaid, -tokens/rate, so a client
 *    muted that long averages its quota exactly. Capped by the class's
 *    max_pause_ms. Debt deeper than SL_POLICY_MAX_DEBT_MS at the rate is
 *    forgiven, so a client that once flooded is not muted for minutes.
 *  - Unmatched clients (defaults.action "admit"): with per_client_id (the
 *    default) every client.id gets its own bucket at defaults.quota, at
 *    most defaults.max_clients of them; past that, buckets no connection
 *    holds are reused oldest-first, and if none is free the client shares
 *    one overflow bucket. Without per_client_id all share one bucket.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "sluice/common.h"

struct sockaddr;

/* Debt is floored at this many milliseconds' worth of the rate. */
#define SL_POLICY_MAX_DEBT_MS 10000

/* Longest client.id prefix / glob / principal / name the file may hold. */
#define SL_POLICY_MAX_PATTERN 255

/* ---- the model (immutable once loaded) -------------------------------- */

typedef struct sl_policy sl_policy;
typedef struct sl_policy_class sl_policy_class;
typedef struct sl_policy_connector sl_policy_connector;

typedef enum sl_policy_mode {
    SL_POLICY_ENFORCE = 0, /* decisions mute clients */
    SL_POLICY_SHADOW,      /* decisions computed, counted, not enforced */
} sl_policy_mode;

/* Loads and validates a policy file. On success *out is a new policy the
 * caller owns (sl_policy_free) and 0 is returned. On failure *out is
 * untouched, SL_E_CONFIG is returned and err (errlen bytes, always NUL-
 * terminated when errlen > 0) holds one line "FILE:LINE: field.path:
 * reason" (syntax errors: "FILE:LINE:COL: invalid JSON: ..."; unreadable
 * file: "FILE: cannot open: ..."). Reads at most 64 MiB. Any thread. */
int sl_policy_load_file(const char *path, sl_policy **out, char *err,
                        size_t errlen);

/* The same from text in memory (len bytes, need not be NUL-terminated);
 * name stands for FILE in messages. text is not kept. */
int sl_policy_load_string(const char *text, size_t len, const char *name,
                          sl_policy **out, char *err, size_t errlen);

/* Frees a policy. Not while a state is bound to it (rebind first). NULL
 * is fine. */
void sl_policy_free(sl_policy *pol);

/* The file name given at load (borrowed from pol). */
const char *sl_policy_source(const sl_policy *pol);
sl_policy_mode sl_policy_mode_of(const sl_policy *pol);
/* capacity.bytes_per_sec, 0 when the file sets none (no class budgets). */
int64_t sl_policy_capacity(const sl_policy *pol);

/* Classes and connectors, in file order; index < count. Pointers are
 * borrowed from pol and live as long as it. */
size_t sl_policy_class_count(const sl_policy *pol);
const sl_policy_class *sl_policy_class_at(const sl_policy *pol, size_t i);
const sl_policy_class *sl_policy_class_find(const sl_policy *pol,
                                            const char *name);
size_t sl_policy_connector_count(const sl_policy *pol);
const sl_policy_connector *sl_policy_connector_at(const sl_policy *pol,
                                                  size_t i);
/* By name, O(1) (hash). NULL if absent. */
const sl_policy_connector *sl_policy_connector_find(const sl_policy *pol,
                                                    const char *name);

/* A class as the file defines it. Rates in bytes/s, 0 = not set. */
typedef struct sl_policy_class_info {
    const char *name;
    int64_t weight;           /* 1..1000 */
    int64_t guarantee_bps;    /* 0 = none */
    int64_t ceiling_bps;      /* 0 = none */
    int64_t max_pause_ms;     /* throttles are capped at this */
    int64_t shed_order;       /* lower is shed first under pressure */
    const char *description;  /* "" if none */
    int line;                 /* of its key in the file */
} sl_policy_class_info;
void sl_policy_class_describe(const sl_policy_class *c,
                              sl_policy_class_info *out);

/* A connector's quota. 0 = unlimited for that dimension. */
typedef struct sl_policy_quota {
    int64_t bytes_per_sec;
    int64_t records_per_sec;
    int64_t burst_bytes;   /* bucket depth; 0 = one second at the rate */
    int64_t burst_records; /* bucket depth; 0 = one second at the rate */
} sl_policy_quota;

const char *sl_policy_connector_name(const sl_policy_connector *c);
const sl_policy_class *sl_policy_connector_class(const sl_policy_connector *c);
const sl_policy_quota *sl_policy_connector_quota(const sl_policy_connector *c);
sl_policy_mode sl_policy_connector_mode(const sl_policy_connector *c);
int sl_policy_connector_line(const sl_policy_connector *c);

/* ---- identity resolution (identity.c) --------------------------------- */

/* Who is asking. All borrowed for the call only. */
typedef struct sl_policy_identity {
    const char *client_id;        /* NULL = Kafka null client.id ("") */
    const struct sockaddr *peer;  /* AF_INET / AF_INET6, or NULL */
    const char *principal;        /* e.g. "User:alice"; NULL = no SASL */
} sl_policy_identity;

#define SL_POLICY_MATCH_MAP(X)                                            \
    X(PRINCIPAL, "principal")                                             \
    X(CLIENT_ID, "client_id")                                             \
    X(CONNECT, "connect")                                                 \
    X(PREFIX, "client_id_prefix")                                         \
    X(GLOB, "client_id_glob")                                             \
    X(CIDR, "cidr")                                                       \
    X(DEFAULT, "default")                                                 \
    X(REFUSED, "refused")

#define SL__PM_ENUM(n, s) SL_MATCH_##n,
typedef enum sl_policy_match {
    SL_POLICY_MATCH_MAP(SL__PM_ENUM) SL_MATCH__COUNT
} sl_policy_match;
#undef SL__PM_ENUM

/* "principal", "client_id", ... ; "?" out of range. */
const char *sl_policy_match_name(sl_policy_match m);

typedef struct sl_policy_resolution {
    sl_policy_match how;
    const sl_policy_connector *connector; /* NULL for DEFAULT / REFUSED */
    const sl_policy_class *cls;           /* NULL when REFUSED */
    const char *pattern; /* the rule that matched (borrowed from pol), or
                            NULL for DEFAULT / REFUSED */
    char why[320];       /* human, one line: what matched and where */
    uint32_t probes;     /* hash slots + glob tests spent: cost accounting
                            for tests and `policy explain`, not timing */
} sl_policy_resolution;

/* Resolves an identity against pol. Always fills *out and returns its
 * how; REFUSED only when defaults.action is "refuse" (why then holds the
 * message to send). Pure; any thread that may read pol. */
sl_policy_match sl_policy_resolve(const sl_policy *pol,
                                  const sl_policy_identity *id,
                                  sl_policy_resolution *out);

/* Topic allow-list: true if the connector (or, with c NULL, the defaults)
 * may produce to topic. Lists hold exact names and prefixes written
 * "foo.*" (= names starting with "foo."); "*" or no list allows all.
 * Exact names are a binary search, prefixes a scan of that connector's
 * prefixes. A denied topic is answered TOPIC_AUTHORIZATION_FAILED. */
bool sl_policy_topic_allowed(const sl_policy *pol,
                             const sl_policy_connector *c, const char *topic,
                             size_t topic_len);

/* ---- explain / summary (policy.c) -------------------------------------- */

/* `sluice policy explain`: writes a multi-line explanation of how id is
 * resolved (every rule that matches, in precedence order, which one wins
 * and why), its class, quota, allow-list, mode, and, if topic is not NULL,
 * whether that topic is allowed. snprintf semantics: returns the length
 * the full text needs; buf always NUL-terminated when len > 0. */
size_t sl_policy_explain(const sl_policy *pol, const sl_policy_identity *id,
                         const char *topic, char *buf, size_t len);

/* `sluice policy check`: a summary (mode, capacity, per class: weight,
 * guarantee, ceiling, pauses, shed order, nominal share and connector
 * count; rule counts per match kind; defaults). snprintf semantics. */
size_t sl_policy_summary(const sl_policy *pol, char *buf, size_t len);

/* Every policy key with type, bounds, default and help, generated from
 * the loader's tables (for `sluice policy reference` and the docs).
 * snprintf semantics. */
size_t sl_policy_reference(char *buf, size_t len);

/* ---- accounting (budget.c) --------------------------------------------- */

#define SL_THROTTLE_MAP(X)                                                \
    X(NONE, "none")                                                       \
    X(QUOTA, "quota")                     /* connector quota debt */      \
    X(CLASS_BUDGET, "class_budget")       /* class share debt */          \
    X(PAUSED, "paused")                   /* admin pause */               \
    X(BROKER_LATENCY, "broker_latency")   /* pressure: slow brokers */    \
    X(BROKER_THROTTLE, "broker_throttle") /* broker's throttle_time_ms */ \
    X(MEMORY, "memory")                   /* pressure: memory budget */

#define SL__TR_ENUM(n, s) SL_THROTTLE_##n,
typedef enum sl_throttle_reason {
    SL_THROTTLE_MAP(SL__TR_ENUM) SL_THROTTLE__COUNT
} sl_throttle_reason;
#undef SL__TR_ENUM

/* "none", "quota", ... ; "?" out of range. Metrics label values. */
const char *sl_throttle_reason_name(sl_throttle_reason r);

typedef struct sl_policy_decision {
    uint32_t throttle_ms;       /* mute before the next request; 0 = none */
    sl_throttle_reason reason;  /* NONE iff throttle_ms == 0 */
    uint32_t uncapped_ms;       /* before the max_pause_ms cap */
    bool enforced;              /* false in shadow mode: report only */
} sl_policy_decision;

/* Counters, monotonic, for metrics. Throttles are counted whether or not
 * enforced (shadow mode counts what it would have done). */
typedef struct sl_policy_counters {
    uint64_t bytes;
    uint64_t records;
    uint64_t requests;
    uint64_t throttle_events[SL_THROTTLE__COUNT];
    uint64_t throttle_ms[SL_THROTTLE__COUNT];
} sl_policy_counters;

typedef struct sl_policy_state sl_policy_state;
typedef struct sl_policy_account sl_policy_account;

/* New accounting state bound to pol (borrowed: pol must outlive the
 * binding). Class buckets start full. Never fails (OOM aborts). */
sl_policy_state *sl_policy_state_new(const sl_policy *pol, int64_t now_us);

/* Frees the state and every account, held or not: connections must not
 * use their accounts afterwards. NULL is fine. */
void sl_policy_state_free(sl_policy_state *st);

/* The policy the state is bound to. */
const sl_policy *sl_policy_state_policy(const sl_policy_state *st);

/* Live reload: binds st to new_pol. Accounts and classes whose names
 * exist in new_pol keep their bucket levels, counters, pauses and
 * overrides (the levels are clamped to the new burst); their rates and
 * classes come from new_pol. Accounts whose connector is gone become
 * stale (sl_policy_account_stale): they keep working on their last quota
 * with no class budget until released. Default (per client.id) accounts
 * take the new defaults, or become stale if defaults now refuse. The
 * daemon should re-attach every connection (sl_policy_account_get, then
 * release the old account) since matching rules may have changed; for a
 * connector that still exists it gets the same account back. The old
 * policy may be freed when this returns. */
void sl_policy_state_rebind(sl_policy_state *st, const sl_policy *new_pol,
                            int64_t now_us);

/* Resolves id against the bound policy (as sl_policy_resolve, result in
 * *res if res is not NULL) and returns the account to charge, with one
 * reference the caller owns (release with sl_policy_account_put). NULL
 * when refused (res->why holds the message). */
sl_policy_account *sl_policy_account_get(sl_policy_state *st,
                                         const sl_policy_identity *id,
                                         int64_t now_us,
                                         sl_policy_resolution *res);

/* Drops a reference. The account is freed when stale and unreferenced;
 * default accounts stay (up to defaults.max_clients) so a reconnecting
 * client keeps its debt. */
void sl_policy_account_put(sl_policy_state *st, sl_policy_account *a);

/* Records an admitted request of bytes/records from account a at now_us
 * and fills *d with the throttle for the account's NEXT request. The
 * request itself is always admitted. Order of reasons when several apply:
 * PAUSED beats everything; otherwise the longest wait wins (ties: quota,
 * then class budget, then broker throttle). */
void sl_policy_charge(sl_policy_state *st, sl_policy_account *a,
                      uint64_t bytes, uint64_t records, int64_t now_us,
                      sl_policy_decision *d);

/* The account's connector name, or the client.id of a default account
 * (borrowed from a; "" for a null client.id). */
const char *sl_policy_account_name(const sl_policy_account *a);
/* True for per-client.id / shared default / overflow accounts. */
bool sl_policy_account_is_default(const sl_policy_account *a);
/* True once a rebind removed its connector (or defaults now refuse). */
bool sl_policy_account_stale(const sl_policy_account *a);
const sl_policy_counters *sl_policy_account_counters(
    const sl_policy_account *a);
/* Every account the state holds (connectors that had traffic, default
 * per-client.id accounts, stale ones still referenced), for metrics and
 * admin views: for (a = first; a; a = next(a)). Any rebind, get or put
 * may change the list; do not hold the pointers across them. */
const sl_policy_account *sl_policy_state_first_account(
    const sl_policy_state *st);
const sl_policy_account *sl_policy_account_next(const sl_policy_account *a);
/* The account's class name ("" when stale). */
const char *sl_policy_account_class_name(const sl_policy_account *a);
/* True while an admin pause is in force at now_us. */
bool sl_policy_account_paused(const sl_policy_account *a, int64_t now_us);

/* Current byte tokens (negative = debt); for tests and the admin view. */
double sl_policy_account_tokens(const sl_policy_account *a, int64_t now_us);

/* ---- admin hooks (per connector, by name) ------------------------------ */

/* Pauses a connector until until_us (0 = until resumed). While paused
 * every decision is PAUSED with throttle = the class's max_pause_ms, so a
 * client is muted step by step and never longer than its class allows.
 * SL_E_NOTFOUND if the bound policy has no such connector. Survives
 * rebind while the connector exists. */
int sl_policy_pause(sl_policy_state *st, const char *connector,
                    int64_t until_us, int64_t now_us);
int sl_policy_resume(sl_policy_state *st, const char *connector,
                     int64_t now_us);

/* Replaces a connector's quota until until_us (must be > now_us); on
 * expiry the file's quota applies again. Bucket levels are kept (clamped
 * to the new burst). A zero field = unlimited, as in the file.
 * SL_E_NOTFOUND / SL_E_INVALID. */
int sl_policy_override(sl_policy_state *st, const char *connector,
                       const sl_policy_quota *q, int64_t until_us,
                       int64_t now_us);
int sl_policy_override_clear(sl_policy_state *st, const char *connector,
                             int64_t now_us);

/* ---- pressure control (pressure.c, budget.c) -------------------------- */

/* The policy file's "pressure" section (defaults when absent). */
typedef struct sl_policy_pressure {
    bool enabled;                  /* default true */
    int64_t latency_target_ms;     /* write latency to stay under (200) */
    int64_t memory_high_water_pct; /* buffer fill that counts as pressure */
    int64_t min_bytes_per_sec;     /* a limited broker's rate floor */
    int64_t decrease_pct;          /* rate cut per congestion step (30) */
    int64_t recovery_ms;           /* climb from 0 to the pre-episode rate */
} sl_policy_pressure;
const sl_policy_pressure *sl_policy_pressure_of(const sl_policy *pol);

/* One controller: keeps a congestion signal (write latency, buffer fill)
 * under a target by limiting an admitted rate (bytes/s). The law is
 * AIMD on a smoothed signal with a hysteresis band; see pressure.c for
 * why AIMD and why these constants. Pure: time is passed in. */
typedef struct sl_ctl_params {
    double target;       /* signal level to stay under */
    double band;         /* congested above target * (1 + band) */
    double release_level;/* let go only below target * release_level */
    double alpha;        /* EWMA weight of a new sample, 0..1 */
    double decrease;     /* each cut multiplies the rate by 1 - decrease */
    int64_t min_gap_us;  /* cuts at least this far apart ... */
    int64_t max_gap_us;  /* ... and at most this far, within the signal */
    bool gap_is_signal;  /* gap = the smoothed signal in ms (latency) */
    int64_t recovery_us; /* linear climb from 0 to the episode's start rate */
    double min_rate;     /* never limit below this */
} sl_ctl_params;

typedef struct sl_ctl {
    double smoothed;     /* EWMA of the signal; NAN before any sample */
    bool limited;        /* false: the rate is not limited at all */
    double rate;         /* admitted bytes/s while limited */
    double ref;          /* measured rate when the episode began */
    int64_t last_us;     /* previous update */
    int64_t last_cut_us; /* latest cut */
    int64_t throttle_until_us; /* the broker's latest throttle ends */
    int64_t throttle_gap_us;   /* cut spacing while it is in force */
    bool quota;                /* a throttle set ref to what it takes */
    int64_t bound_us;          /* the limit was last taken whole */
    sl_throttle_reason reason; /* why limited (NONE when not) */
    uint64_t episodes, cuts;
} sl_ctl;

/* Sets the defaults for a latency or buffer-fill controller. */
void sl_ctl_params_latency(sl_ctl_params *p, const sl_policy_pressure *pp);
void sl_ctl_params_memory(sl_ctl_params *p, const sl_policy_pressure *pp);
void sl_ctl_init(sl_ctl *c, int64_t now_us);

typedef enum sl_ctl_event {
    SL_CTL_STEADY = 0,
    SL_CTL_BEGIN,   /* became limited */
    SL_CTL_CUT,     /* cut further */
    SL_CTL_RAISE,   /* raised (recovering) */
    SL_CTL_RELEASE, /* back to not limited */
} sl_ctl_event;

/* What one control step sees. */
typedef struct sl_ctl_input {
    double signal;      /* the latest level (latency in ms, fill in
                           permille); NAN: no sample since the last step
                           (the smoothed value is kept) */
    double throttle_ms; /* largest throttle time the broker returned since
                           the last step (0: none); congestion whatever
                           the signal, for as long as it says */
    double measured;    /* bytes/s admitted towards it recently */
    bool held;          /* a class share held a source back since the
                           last step (it wants more than it sent) */
    double delivered;   /* bytes/s it acknowledged recently; NAN: unknown */
    sl_throttle_reason why; /* the reason a signal-driven limit carries
                               (BROKER_LATENCY or MEMORY) */
} sl_ctl_input;

/* One control step at now_us. */
sl_ctl_event sl_ctl_update(sl_ctl *c, const sl_ctl_params *p, int64_t now_us,
                           const sl_ctl_input *in);

/* Per upstream broker, the daemon reports every interval (100 ms): */
typedef struct sl_pressure_sample {
    int32_t broker;      /* upstream broker id */
    double latency_ms;   /* write latency of the interval (p90 of delivery
                            reports, or the age of a stall); NAN = none */
    uint32_t throttle_ms;/* largest throttle_time_ms the broker returned in
                            the interval; 0 = none */
    uint64_t acked_bytes;/* record bytes it acknowledged in the interval */
} sl_pressure_sample;

/* Which upstream broker leads the bytes of a request, for charging. */
typedef struct sl_policy_broker_bytes {
    int32_t broker;
    uint64_t bytes;
} sl_policy_broker_bytes;

/* As sl_policy_charge, with the request's bytes split by the broker that
 * leads their partition (n entries, n = 0 is fine). Bytes to a broker whose
 * controller limits it are charged to that broker's share for the
 * account's class; the decision's wait is the longest of every limit,
 * reason BROKER_LATENCY / BROKER_THROTTLE / MEMORY when one of those is
 * it. Brokers not limited cost nothing. */
void sl_policy_charge_brokers(sl_policy_state *st, sl_policy_account *a,
                              uint64_t bytes, uint64_t records,
                              const sl_policy_broker_bytes *per, size_t n,
                              int64_t now_us, sl_policy_decision *d);

/* One control step for every broker in s (n entries) and for the memory
 * budget (fill_permille: in-flight bytes per mille of the budget). Brokers
 * not in s get no sample. Recomputes each limited broker's class shares:
 * every class keeps what it sends up to its guarantee; the rest of the
 * admitted rate goes to classes from the highest shed_order down, each up
 * to a little above what it has been sending, so the lowest shed_order
 * (elastic) loses first. Returns how many controllers changed state
 * (events are visible through sl_policy_pressure_at). No-op when the
 * policy's pressure is disabled. */
size_t sl_policy_pressure_tick(sl_policy_state *st, int64_t now_us,
                               const sl_pressure_sample *s, size_t n,
                               double fill_permille);

#define SL_POLICY_BROKER_MEMORY INT32_MIN /* the memory budget's "broker" */

typedef struct sl_policy_pressure_view {
    int32_t broker;          /* or SL_POLICY_BROKER_MEMORY */
    bool limited;
    double admitted_bps;     /* controller rate while limited, else INFINITY */
    double measured_bps;     /* recent admitted bytes/s */
    double delivered_bps;    /* recent acknowledged bytes/s */
    double signal;           /* smoothed: ms, or permille for memory */
    sl_throttle_reason reason;
    sl_ctl_event last_event; /* of the latest tick */
    uint64_t episodes, cuts;
} sl_policy_pressure_view;

typedef struct sl_policy_pressure_class {
    uint64_t bytes;          /* charged to this broker, this class, ever */
    double demand_bps;       /* recent bytes/s */
    double share_bps;        /* share while limited, else INFINITY */
} sl_policy_pressure_class;

/* Controllers: index 0 is the memory budget, then one per broker seen, in
 * order of first traffic. SL_E_INVALID past the end. */
size_t sl_policy_pressure_count(const sl_policy_state *st);
int sl_policy_pressure_at(const sl_policy_state *st, size_t i,
                          sl_policy_pressure_view *out);
/* Class ci (file order) on controller i. */
int sl_policy_pressure_class_at(const sl_policy_state *st, size_t i,
                                size_t ci, sl_policy_pressure_class *out);

/* ---- class view (metrics, admin API) ----------------------------------- */

typedef struct sl_policy_class_state {
    const char *name;          /* borrowed from the state */
    double share_bps;          /* current budget rate in bytes/s */
    double tokens;             /* current bucket level, bytes */
    bool active;               /* had traffic within active_window_ms */
    int64_t shed_order;
    sl_policy_counters counters;
} sl_policy_class_state;

size_t sl_policy_state_class_count(const sl_policy_state *st);
/* Fills *out for class i (file order) as of now_us; SL_E_INVALID if out
 * of range. */
int sl_policy_state_class_at(sl_policy_state *st, size_t i, int64_t now_us,
                             sl_policy_class_state *out);
/* Number of default (per client.id) accounts alive. */
size_t sl_policy_state_default_count(const sl_policy_state *st);

#endif
