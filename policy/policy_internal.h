/*
 * Policy engine internals shared by policy.c (model), identity.c (indexes)
 * and budget.c (accounting). Not part of the interface: the daemon uses
 * include/sluice/policy.h only.
 */
#ifndef SLUICE_POLICY_INTERNAL_H
#define SLUICE_POLICY_INTERNAL_H

#include "sluice/policy.h"

/* ---- string-keyed open-addressing hash map (identity.c) ---------------- */

/* FNV-1a, usable incrementally: the hash of a prefix is the state after
 * its bytes, which lets one pass over a client.id probe every prefix. */
#define SL__FNV_INIT 2166136261u
static inline uint32_t sl__hash_step(uint32_t h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}
uint32_t sl__hash(const void *p, size_t n);

typedef struct sl__pmap_slot {
    const void *key; /* borrowed: the policy owns every key; NULL = empty */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} sl__pmap_slot;

typedef struct sl__pmap {
    sl__pmap_slot *slots;
    size_t cap; /* power of two; load kept <= 1/2 */
    size_t n;
} sl__pmap;

void sl__pmap_free(sl__pmap *m);
/* Inserts key -> val unless key is present; returns the slot holding key
 * (the existing one on a clash: compare its val with yours). */
const sl__pmap_slot *sl__pmap_put(sl__pmap *m, const void *key, uint32_t len,
                                  int32_t val);
/* Looks key up with its precomputed hash; adds the slots inspected to
 * *probes. NULL if absent. */
const sl__pmap_slot *sl__pmap_get(const sl__pmap *m, const void *key,
                                  uint32_t len, uint32_t hash,
                                  uint32_t *probes);

/* ---- CIDR and glob helpers (identity.c) -------------------------------- */

typedef struct sl__cidr {
    uint8_t family; /* 4 or 6 */
    uint8_t len;    /* prefix length */
    uint8_t addr[16]; /* masked; IPv4 in the first 4 bytes */
} sl__cidr;
#define SL__CIDR_KEY_LEN 18

/* Parses "a.b.c.d/n" or "v6/n" (a bare address means /32 or /128). On
 * failure returns false and writes the reason ("prefix length must be in
 * 0..32", "host bits set (did you mean \"10.0.0.0/8\"?)") to why. */
bool sl__cidr_parse(const char *s, sl__cidr *out, char *why, size_t whylen);

/* Glob syntax check: '*' and '?' only, at least one wildcard. On failure
 * writes the reason. */
bool sl__glob_check(const char *s, char *why, size_t whylen);
bool sl__glob_match(const char *pat, const char *s, size_t slen);

/* ---- the model (policy.c builds it) ------------------------------------ */

typedef struct sl__strv {
    char **v;
    size_t n;
    bool set; /* the key was present in the file */
} sl__strv;

typedef struct sl__topics {
    bool all;              /* no list, or "*" in it */
    const char **exact;    /* sorted (strcmp), borrowed from the strv */
    size_t n_exact;
    const char **prefix;   /* the text before the trailing '*' */
    size_t *prefix_len;
    size_t n_prefix;
} sl__topics;

struct sl_policy_class {
    char *name;
    int line;
    size_t index;
    int64_t weight;
    int64_t guarantee;  /* bytes/s, 0 = none */
    int64_t ceiling;    /* bytes/s, 0 = none */
    int64_t max_pause_ms;
    int64_t shed_order;
    char *description;
    size_t n_connectors;
    double nominal_share; /* bytes/s with every class active; 0 = no cap */
};

typedef struct sl__match {
    sl__strv principals;
    sl__strv client_ids;
    bool connect;
    sl__strv connect_names;
    sl__strv prefixes;
    sl__strv globs;
    sl__strv cidrs;
} sl__match;

struct sl_policy_connector {
    char *name;
    int line;
    size_t index;
    char *class_name;
    const sl_policy_class *cls;
    int64_t mode_raw; /* -1 = inherit the file's mode */
    sl_policy_mode mode;
    char *description;
    sl__match match;
    sl_policy_quota quota;
    sl__strv topics_raw;
    sl__topics topics;
};

typedef struct sl__defaults {
    int64_t action; /* 0 admit, 1 refuse */
    char *class_name;
    const sl_policy_class *cls;
    sl_policy_quota quota;
    bool per_client_id;
    int64_t max_clients;
    sl__strv topics_raw;
    sl__topics topics;
    char *message;
} sl__defaults;

typedef struct sl__glob {
    const char *pat;
    uint32_t lit;     /* literal prefix length */
    int32_t conn;
    uint32_t ordinal; /* file order, for ties */
} sl__glob;

typedef struct sl__glob_group {
    sl__glob *v;
    size_t n, cap;
} sl__glob_group;

/* Resolution indexes. Values are connector indexes. */
typedef struct sl__index {
    sl__pmap names;      /* connector name */
    sl__pmap principals;
    sl__pmap client_ids;
    sl__pmap connect;    /* Connect connector name */
    sl__pmap prefixes;
    uint64_t prefix_lens[4]; /* bit L set: some prefix has length L+1 */
    sl__pmap globs;          /* glob text, for duplicate claims */
    sl__pmap glob_lits;      /* literal prefix -> group index */
    uint64_t glob_lens[4];   /* bit L set: some glob literal has length L+1 */
    sl__glob_group *groups;
    size_t n_groups, cap_groups;
    sl__glob_group wild;     /* globs starting with a wildcard */
    uint32_t n_globs;
    sl__pmap cidrs;          /* SL__CIDR_KEY_LEN-byte keys */
    sl__cidr **cidr_keys;    /* owned, one allocation each: map keys */
    size_t n_cidrs, cap_cidrs;
    uint64_t v4_lens[1];     /* bit L: some IPv4 CIDR of length L (0..32) */
    uint64_t v6_lens[3];     /* 0..128 */
} sl__index;

typedef struct sl__capacity {
    int64_t bytes_per_sec; /* 0 = no class budgets */
    int64_t burst_ms;
    int64_t active_window_ms;
    bool set;              /* "capacity" is in the file */
} sl__capacity;

struct sl_policy {
    char *source;
    sl_policy_pressure pressure;
    int64_t version;
    int64_t mode_raw;
    sl_policy_mode mode;
    char *description;
    sl__capacity cap;
    sl_policy_class *classes;
    size_t n_classes, cap_classes;
    sl__pmap class_names;
    sl_policy_connector *connectors;
    size_t n_connectors, cap_connectors;
    sl__defaults defaults;
    sl__index idx;
};

#define SL__MAX_CLASSES 64

/* identity.c: claims a rule for connector conn. Returns -1 on success or
 * the index of the connector that already claimed it. cidr must stay
 * valid only for the call (it is copied). */
typedef enum sl__rule {
    SL__RULE_PRINCIPAL,
    SL__RULE_CLIENT_ID,
    SL__RULE_CONNECT,
    SL__RULE_PREFIX,
    SL__RULE_GLOB,
} sl__rule;
int32_t sl__index_claim(sl__index *ix, sl__rule kind, const char *s,
                        int32_t conn);
int32_t sl__index_claim_cidr(sl__index *ix, const sl__cidr *c, int32_t conn);
void sl__index_free(sl__index *ix);

/* identity.c: every stage's match (for explain); hits[m].conn < 0 when
 * stage m matched nothing. */
typedef struct sl__hit {
    int32_t conn;
    const char *pattern;
    char detail[96];
} sl__hit;
void sl__resolve_all(const sl_policy *pol, const sl_policy_identity *id,
                     sl__hit hits[SL_MATCH__COUNT], uint32_t *probes);

/* identity.c: the one-line "why" for a hit of stage m. */
void sl__why(const sl_policy *pol, const sl_policy_identity *id,
             sl_policy_match m, const sl__hit *hit, char *buf, size_t n);

/* budget.c: water-filling split of capacity among the classes with
 * active[i]: each gets max(guarantee, weighted share), at most its
 * ceiling, the sum at most capacity. out[i] = 0 for inactive classes. */
void sl__waterfill(const sl_policy_class *classes, size_t n,
                   const bool *active, double capacity, double *out);

/* policy.c: human rate/size text ("30 MiB", "1.5 GB", "123 B"). */
const char *sl__human_bytes(char *buf, size_t n, double v);

#endif
