/*
 * Identity resolution: the indexes that map a client (principal,
 * client.id, peer address) to a connector in time independent of how many
 * connectors the policy has. Precedence and costs are documented in
 * include/sluice/policy.h.
 *
 * Thread: indexes are built once by the loader and only read afterwards;
 * lookups are pure.
 */
#include "policy_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ---- hash map ------------------------------------------------------------ */

uint32_t sl__hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t h = SL__FNV_INIT;

    for (size_t i = 0; i < n; i++)
        h = sl__hash_step(h, b[i]);
    return h;
}

void sl__pmap_free(sl__pmap *m)
{
    sl_free(m->slots);
    memset(m, 0, sizeof(*m));
}

static sl__pmap_slot *slot_find(sl__pmap_slot *slots, size_t cap,
                                const void *key, uint32_t len, uint32_t hash,
                                uint32_t *probes)
{
    size_t mask = cap - 1;

    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        sl__pmap_slot *s = &slots[i];
        (*probes)++;
        if (s->key == NULL ||
            (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static void pmap_grow(sl__pmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    sl__pmap_slot *slots = sl_calloc(cap, sizeof(*slots));
    uint32_t probes = 0;

    for (size_t i = 0; i < m->cap; i++) {
        sl__pmap_slot *o = &m->slots[i];
        if (o->key != NULL)
            *slot_find(slots, cap, o->key, o->len, o->hash, &probes) = *o;
    }
    sl_free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

const sl__pmap_slot *sl__pmap_put(sl__pmap *m, const void *key, uint32_t len,
                                  int32_t val)
{
    uint32_t hash = sl__hash(key, len), probes = 0;
    sl__pmap_slot *s;

    if ((m->n + 1) * 2 > m->cap)
        pmap_grow(m);
    s = slot_find(m->slots, m->cap, key, len, hash, &probes);
    if (s->key == NULL) {
        s->key = key;
        s->len = len;
        s->hash = hash;
        s->val = val;
        m->n++;
    }
    return s;
}

const sl__pmap_slot *sl__pmap_get(const sl__pmap *m, const void *key,
                                  uint32_t len, uint32_t hash,
                                  uint32_t *probes)
{
    const sl__pmap_slot *s;

    if (m->n == 0)
        return NULL;
    s = slot_find(m->slots, m->cap, key, len, hash, probes);
    return s->key != NULL ? s : NULL;
}

/* ---- CIDR ---------------------------------------------------------------- */

static void mask_addr(uint8_t *addr, unsigned len, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bits = len > i * 8 ? len - i * 8 : 0;
        if (bits < 8)
            addr[i] &= (uint8_t)(0xff00u >> bits);
    }
}

bool sl__cidr_parse(const char *s, sl__cidr *out, char *why, size_t whylen)
{
    char host[INET6_ADDRSTRLEN + 1], shown[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    unsigned maxlen, len = 0;
    uint8_t orig[16];

    memset(out, 0, sizeof(*out));
    if (hl == 0 || hl >= sizeof(host)) {
        snprintf(why, whylen, "expected ADDRESS/LENGTH, e.g. \"10.0.0.0/8\"");
        return false;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = 4;
        maxlen = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = 6;
        maxlen = 128;
    } else {
        snprintf(why, whylen, "\"%s\" is not an IPv4 or IPv6 address", host);
        return false;
    }
    if (slash == NULL) {
        len = maxlen;
    } else {
        const char *d = slash + 1;
        if (*d == '\0' || strlen(d) > 3)
            goto bad_len;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                goto bad_len;
            len = len * 10 + (unsigned)(*d - '0');
        }
        if (len > maxlen)
            goto bad_len;
    }
    out->len = (uint8_t)len;
    memcpy(orig, out->addr, 16);
    mask_addr(out->addr, len, out->family == 4 ? 4 : 16);
    if (memcmp(orig, out->addr, 16) != 0) {
        inet_ntop(out->family == 4 ? AF_INET : AF_INET6, out->addr, shown,
                  sizeof(shown));
        snprintf(why, whylen, "host bits set (did you mean \"%s/%u\"?)", shown,
                 len);
        return false;
    }
    return true;

bad_len:
    snprintf(why, whylen, "prefix length must be an integer in 0..%u", maxlen);
    return false;
}

static void cidr_key(uint8_t key[SL__CIDR_KEY_LEN], const sl__cidr *c)
{
    key[0] = c->family;
    key[1] = c->len;
    memcpy(key + 2, c->addr, 16);
}

static void bit_set(uint64_t *bits, unsigned i)
{
    bits[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool bit_get(const uint64_t *bits, unsigned i)
{
    return bits[i / 64] >> (i % 64) & 1;
}

int32_t sl__index_claim_cidr(sl__index *ix, const sl__cidr *c, int32_t conn)
{
    sl__cidr *k = sl_malloc(SL__CIDR_KEY_LEN);
    const sl__pmap_slot *s;

    cidr_key((uint8_t *)k, c);
    s = sl__pmap_put(&ix->cidrs, k, SL__CIDR_KEY_LEN, conn);
    if (s->key != k) {
        sl_free(k);
        return s->val;
    }
    if (ix->n_cidrs == ix->cap_cidrs) {
        ix->cap_cidrs = ix->cap_cidrs ? ix->cap_cidrs * 2 : 8;
        ix->cidr_keys = sl_realloc(ix->cidr_keys,
                                   ix->cap_cidrs * sizeof(*ix->cidr_keys));
    }
    ix->cidr_keys[ix->n_cidrs++] = k;
    if (c->family == 4)
        bit_set(ix->v4_lens, c->len);
    else
        bit_set(ix->v6_lens, c->len);
    return -1;
}

/* ---- globs --------------------------------------------------------------- */

bool sl__glob_check(const char *s, char *why, size_t whylen)
{
    bool wild = false;

    for (const char *p = s; *p; p++) {
        if (*p == '*' || *p == '?')
            wild = true;
        else if (strchr("[]{}\\", *p) != NULL) {
            snprintf(why, whylen,
                     "unsupported character '%c' (globs support only * and ?)",
                     *p);
            return false;
        }
    }
    if (!wild) {
        snprintf(why, whylen,
                 "has no wildcard (list exact names in match.client_ids)");
        return false;
    }
    return true;
}

/* Iterative matcher with one backtrack point: O(len(pat) * len(s)) worst
 * case, no recursion. */
bool sl__glob_match(const char *pat, const char *s, size_t n)
{
    const char *p = pat, *star = NULL;
    size_t i = 0, star_i = 0;

    while (i < n) {
        if (*p == '*') {
            star = p++;
            star_i = i;
        } else if (*p != '\0' && (*p == '?' || *p == s[i])) {
            p++;
            i++;
        } else if (star != NULL) {
            p = star + 1;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static size_t literal_len(const char *pat)
{
    return strcspn(pat, "*?");
}

static void group_add(sl__glob_group *g, const sl__glob *gl)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 4;
        g->v = sl_realloc(g->v, g->cap * sizeof(*g->v));
    }
    g->v[g->n++] = *gl;
}

/* ---- claims -------------------------------------------------------------- */

static int32_t claim_glob(sl__index *ix, const char *s, uint32_t len,
                          int32_t conn)
{
    const sl__pmap_slot *slot = sl__pmap_put(&ix->globs, s, len, conn);
    sl__glob gl = {.pat = s, .lit = (uint32_t)literal_len(s), .conn = conn};

    if (slot->key != s) /* listed before: by someone else, or a repeat */
        return slot->val != conn ? slot->val : -1;
    gl.ordinal = ix->n_globs++;
    if (gl.lit == 0 || gl.lit > 256) {
        /* A literal longer than the walk reaches is tried with the wild
         * ones; patterns are capped at SL_POLICY_MAX_PATTERN anyway. */
        group_add(&ix->wild, &gl);
        return -1;
    }
    slot = sl__pmap_put(&ix->glob_lits, s, gl.lit, (int32_t)ix->n_groups);
    if (slot->val == (int32_t)ix->n_groups) {
        if (ix->n_groups == ix->cap_groups) {
            ix->cap_groups = ix->cap_groups ? ix->cap_groups * 2 : 8;
            ix->groups = sl_realloc(ix->groups,
                                    ix->cap_groups * sizeof(*ix->groups));
        }
        memset(&ix->groups[ix->n_groups++], 0, sizeof(*ix->groups));
        bit_set(ix->glob_lens, gl.lit - 1);
    }
    group_add(&ix->groups[slot->val], &gl);
    return -1;
}

int32_t sl__index_claim(sl__index *ix, sl__rule kind, const char *s,
                        int32_t conn)
{
    uint32_t len = (uint32_t)strlen(s);
    const sl__pmap_slot *slot;
    sl__pmap *m;

    switch (kind) {
    case SL__RULE_PRINCIPAL: m = &ix->principals; break;
    case SL__RULE_CLIENT_ID: m = &ix->client_ids; break;
    case SL__RULE_CONNECT: m = &ix->connect; break;
    case SL__RULE_PREFIX: m = &ix->prefixes; break;
    case SL__RULE_GLOB: return claim_glob(ix, s, len, conn);
    default: return -1;
    }
    slot = sl__pmap_put(m, s, len, conn);
    if (slot->val != conn)
        return slot->val;
    if (kind == SL__RULE_PREFIX && len >= 1 && len <= 256)
        bit_set(ix->prefix_lens, len - 1);
    return -1;
}

void sl__index_free(sl__index *ix)
{
    sl__pmap_free(&ix->names);
    sl__pmap_free(&ix->principals);
    sl__pmap_free(&ix->client_ids);
    sl__pmap_free(&ix->connect);
    sl__pmap_free(&ix->prefixes);
    sl__pmap_free(&ix->globs);
    sl__pmap_free(&ix->glob_lits);
    for (size_t i = 0; i < ix->n_groups; i++)
        sl_free(ix->groups[i].v);
    sl_free(ix->groups);
    sl_free(ix->wild.v);
    sl__pmap_free(&ix->cidrs);
    for (size_t i = 0; i < ix->n_cidrs; i++)
        sl_free(ix->cidr_keys[i]);
    sl_free(ix->cidr_keys);
    memset(ix, 0, sizeof(*ix));
}

/* ---- lookups ------------------------------------------------------------- */

static bool exact(const sl__pmap *m, const char *s, sl__hit *hit,
                  uint32_t *probes)
{
    size_t len = strlen(s);
    const sl__pmap_slot *slot = sl__pmap_get(m, s, (uint32_t)len,
                                             sl__hash(s, len), probes);

    if (slot == NULL)
        return false;
    hit->conn = slot->val;
    hit->pattern = slot->key;
    return true;
}

#define CONNECT_PREFIX "connector-producer-"
#define CONNECT_DLQ_PREFIX "connector-dlq-producer-"

/* "connector-producer-<name>-<task>": <name> may itself hold dashes; the
 * task is the all-digit run after the last one. */
static bool connect_task(const sl__index *ix, const char *cid, sl__hit *hit,
                         uint32_t *probes)
{
    size_t pl, len = strlen(cid), end;
    bool dlq = false;
    const sl__pmap_slot *slot;
    const char *name;

    if (strncmp(cid, CONNECT_PREFIX, sizeof(CONNECT_PREFIX) - 1) == 0) {
        pl = sizeof(CONNECT_PREFIX) - 1;
    } else if (strncmp(cid, CONNECT_DLQ_PREFIX,
                       sizeof(CONNECT_DLQ_PREFIX) - 1) == 0) {
        pl = sizeof(CONNECT_DLQ_PREFIX) - 1;
        dlq = true;
    } else {
        return false;
    }
    end = len;
    while (end > pl && cid[end - 1] >= '0' && cid[end - 1] <= '9')
        end--;
    /* need: at least one digit, a dash before them, a non-empty name */
    if (end == len || end < pl + 2 || cid[end - 1] != '-')
        return false;
    name = cid + pl;
    slot = sl__pmap_get(&ix->connect, name, (uint32_t)(end - 1 - pl),
                        sl__hash(name, end - 1 - pl), probes);
    if (slot == NULL)
        return false;
    hit->conn = slot->val;
    hit->pattern = slot->key;
    snprintf(hit->detail, sizeof(hit->detail), "%stask %s",
             dlq ? "dead-letter-queue producer of " : "", cid + end);
    return true;
}

static bool longest_prefix(const sl__index *ix, const char *cid,
                           sl__hit *hit, uint32_t *probes)
{
    uint32_t h = SL__FNV_INIT;
    bool found = false;

    if (ix->prefixes.n == 0)
        return false;
    for (size_t i = 0; cid[i] != '\0' && i < 256; i++) {
        const sl__pmap_slot *slot;
        h = sl__hash_step(h, (unsigned char)cid[i]);
        if (!bit_get(ix->prefix_lens, (unsigned)i))
            continue;
        slot = sl__pmap_get(&ix->prefixes, cid, (uint32_t)(i + 1), h, probes);
        if (slot != NULL) {
            hit->conn = slot->val;
            hit->pattern = slot->key;
            found = true;
        }
    }
    return found;
}

static bool group_match(const sl__glob_group *g, const char *cid, size_t len,
                        sl__hit *hit, uint32_t *probes)
{
    for (size_t k = 0; k < g->n; k++) {
        (*probes)++;
        if (sl__glob_match(g->v[k].pat, cid, len)) {
            hit->conn = g->v[k].conn;
            hit->pattern = g->v[k].pat;
            return true;
        }
    }
    return false;
}

/* Longest literal prefix first: walk the client.id once, remembering the
 * longest literal length whose group holds a matching glob. */
static bool best_glob(const sl__index *ix, const char *cid, sl__hit *hit,
                      uint32_t *probes)
{
    size_t len = strlen(cid);
    uint32_t h = SL__FNV_INIT;
    bool found = false;

    if (ix->n_globs == 0)
        return false;
    for (size_t i = 0; i < len && i < 256; i++) {
        const sl__pmap_slot *slot;
        h = sl__hash_step(h, (unsigned char)cid[i]);
        if (!bit_get(ix->glob_lens, (unsigned)i))
            continue;
        slot = sl__pmap_get(&ix->glob_lits, cid, (uint32_t)(i + 1), h, probes);
        if (slot != NULL &&
            group_match(&ix->groups[slot->val], cid, len, hit, probes))
            found = true;
    }
    return found || group_match(&ix->wild, cid, len, hit, probes);
}

static bool peer_addr(const struct sockaddr *sa, uint8_t *fam, uint8_t *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    memset(addr, 0, 16);
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(addr, &in->sin_addr, 4);
        *fam = 4;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (memcmp(&in6->sin6_addr, mapped, 12) == 0) {
            memcpy(addr, (const uint8_t *)&in6->sin6_addr + 12, 4);
            *fam = 4;
        } else {
            memcpy(addr, &in6->sin6_addr, 16);
            *fam = 6;
        }
        return true;
    }
    return false;
}

static bool longest_cidr(const sl__index *ix, const struct sockaddr *peer,
                         sl__hit *hit, uint32_t *probes)
{
    uint8_t fam, addr[16], key[SL__CIDR_KEY_LEN];
    const uint64_t *lens;
    int maxlen;

    if (ix->cidrs.n == 0 || !peer_addr(peer, &fam, addr))
        return false;
    lens = fam == 4 ? ix->v4_lens : ix->v6_lens;
    maxlen = fam == 4 ? 32 : 128;
    for (int l = maxlen; l >= 0; l--) {
        const sl__pmap_slot *slot;
        sl__cidr c = {.family = fam, .len = (uint8_t)l};
        if (!bit_get(lens, (unsigned)l))
            continue;
        memcpy(c.addr, addr, 16);
        mask_addr(c.addr, (unsigned)l, fam == 4 ? 4 : 16);
        cidr_key(key, &c);
        slot = sl__pmap_get(&ix->cidrs, key, SL__CIDR_KEY_LEN,
                            sl__hash(key, SL__CIDR_KEY_LEN), probes);
        if (slot != NULL) {
            char text[INET6_ADDRSTRLEN];
            inet_ntop(fam == 4 ? AF_INET : AF_INET6, c.addr, text,
                      sizeof(text));
            hit->conn = slot->val;
            hit->pattern = NULL; /* the caller names the CIDR via detail */
            snprintf(hit->detail, sizeof(hit->detail), "%s/%d", text, l);
            return true;
        }
    }
    return false;
}

/* One stage. Returns whether it matched; fills hit. */
static bool stage(const sl_policy *pol, const sl_policy_identity *id,
                  sl_policy_match m, sl__hit *hit, uint32_t *probes)
{
    const sl__index *ix = &pol->idx;
    const char *cid = id->client_id ? id->client_id : "";

    hit->conn = -1;
    hit->pattern = NULL;
    hit->detail[0] = '\0';
    switch (m) {
    case SL_MATCH_PRINCIPAL:
        return id->principal != NULL &&
               exact(&ix->principals, id->principal, hit, probes);
    case SL_MATCH_CLIENT_ID:
        return exact(&ix->client_ids, cid, hit, probes);
    case SL_MATCH_CONNECT:
        return connect_task(ix, cid, hit, probes);
    case SL_MATCH_PREFIX:
        return longest_prefix(ix, cid, hit, probes);
    case SL_MATCH_GLOB:
        return best_glob(ix, cid, hit, probes);
    case SL_MATCH_CIDR:
        return longest_cidr(ix, id->peer, hit, probes);
    default:
        return false;
    }
}

void sl__resolve_all(const sl_policy *pol, const sl_policy_identity *id,
                     sl__hit hits[SL_MATCH__COUNT], uint32_t *probes)
{
    for (int m = 0; m < SL_MATCH__COUNT; m++)
        if (!stage(pol, id, (sl_policy_match)m, &hits[m], probes))
            hits[m].conn = -1;
}

static const char *const match_names[] = {
#define SL__PM_NAME(n, s) s,
    SL_POLICY_MATCH_MAP(SL__PM_NAME)
#undef SL__PM_NAME
};

const char *sl_policy_match_name(sl_policy_match m)
{
    return (unsigned)m < SL_ARRAY_SIZE(match_names) ? match_names[m] : "?";
}

void sl__why(const sl_policy *pol, const sl_policy_identity *id,
                     sl_policy_match m, const sl__hit *hit, char *buf,
                     size_t n)
{
    const sl_policy_connector *c = &pol->connectors[hit->conn];
    const char *cid = id->client_id ? id->client_id : "";

    switch (m) {
    case SL_MATCH_PRINCIPAL:
        snprintf(buf, n, "principal \"%s\" is listed by connector \"%s\" "
                 "(line %d)", id->principal, c->name, c->line);
        break;
    case SL_MATCH_CLIENT_ID:
        snprintf(buf, n, "client.id \"%s\" is listed by connector \"%s\" "
                 "(line %d)", cid, c->name, c->line);
        break;
    case SL_MATCH_CONNECT:
        snprintf(buf, n, "client.id \"%s\" is Kafka Connect %s of \"%s\", "
                 "grouped as connector \"%s\" (line %d)", cid, hit->detail,
                 hit->pattern, c->name, c->line);
        break;
    case SL_MATCH_PREFIX:
        snprintf(buf, n, "client.id \"%s\" starts with \"%s\" (longest "
                 "prefix), listed by connector \"%s\" (line %d)", cid,
                 hit->pattern, c->name, c->line);
        break;
    case SL_MATCH_GLOB:
        snprintf(buf, n, "client.id \"%s\" matches glob \"%s\" of connector "
                 "\"%s\" (line %d)", cid, hit->pattern, c->name, c->line);
        break;
    case SL_MATCH_CIDR:
        snprintf(buf, n, "peer address is in %s (longest CIDR), listed by "
                 "connector \"%s\" (line %d)", hit->detail, c->name, c->line);
        break;
    default:
        buf[0] = '\0';
    }
}

sl_policy_match sl_policy_resolve(const sl_policy *pol,
                                  const sl_policy_identity *id,
                                  sl_policy_resolution *out)
{
    const char *cid = id->client_id ? id->client_id : "";
    sl__hit hit;

    memset(out, 0, sizeof(*out));
    for (int m = 0; m < SL_MATCH_DEFAULT; m++) {
        if (!stage(pol, id, (sl_policy_match)m, &hit, &out->probes))
            continue;
        out->how = (sl_policy_match)m;
        out->connector = &pol->connectors[hit.conn];
        out->cls = out->connector->cls;
        out->pattern = hit.pattern;
        sl__why(pol, id, out->how, &hit, out->why, sizeof(out->why));
        return out->how;
    }
    if (pol->defaults.action == 1) {
        out->how = SL_MATCH_REFUSED;
        snprintf(out->why, sizeof(out->why), "%s",
                 pol->defaults.message
                     ? pol->defaults.message
                     : "client not recognised by the Sluice policy");
        return out->how;
    }
    out->how = SL_MATCH_DEFAULT;
    out->cls = pol->defaults.cls;
    snprintf(out->why, sizeof(out->why), "client.id \"%s\" matches no rule: "
             "defaults (class \"%s\", %s)", cid, out->cls->name,
             pol->defaults.per_client_id ? "own bucket per client.id"
                                          : "one shared bucket");
    return out->how;
}
