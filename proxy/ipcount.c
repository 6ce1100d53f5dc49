/* Connections per client address (see include/sluice/ipcount.h). */
#include "sluice/ipcount.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct slot {
    sl_ipaddr addr;
    uint32_t count; /* 0: empty */
} slot;

struct sl_ipcount {
    slot *slots;
    size_t cap; /* a power of two */
    size_t used;
};

/* FNV-1a over the address: cheap, and the table is ours alone. */
static size_t hash(const sl_ipaddr *a)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof(a->b); i++) {
        h ^= a->b[i];
        h *= 0x100000001b3ull;
    }
    return (size_t)(h ^ (h >> 32));
}

sl_ipcount *sl_ipcount_new(void)
{
    sl_ipcount *t = sl_calloc(1, sizeof(*t));
    t->cap = 64;
    t->slots = sl_calloc(t->cap, sizeof(*t->slots));
    return t;
}

void sl_ipcount_free(sl_ipcount *t)
{
    if (t == NULL)
        return;
    sl_free(t->slots);
    sl_free(t);
}

/* The slot holding addr, or the empty one where it would go. */
static slot *find(const sl_ipcount *t, const sl_ipaddr *addr)
{
    size_t i = hash(addr) & (t->cap - 1);

    while (t->slots[i].count != 0 &&
           memcmp(&t->slots[i].addr, addr, sizeof(*addr)) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

static void grow(sl_ipcount *t)
{
    slot *old = t->slots;
    size_t ocap = t->cap;

    t->cap *= 2;
    t->slots = sl_calloc(t->cap, sizeof(*t->slots));
    for (size_t i = 0; i < ocap; i++)
        if (old[i].count != 0)
            *find(t, &old[i].addr) = old[i];
    sl_free(old);
}

uint32_t sl_ipcount_get(const sl_ipcount *t, const sl_ipaddr *addr)
{
    return find(t, addr)->count;
}

uint32_t sl_ipcount_inc(sl_ipcount *t, const sl_ipaddr *addr)
{
    slot *s = find(t, addr);

    if (s->count == 0) {
        if ((t->used + 1) * 4 > t->cap * 3) {
            grow(t);
            s = find(t, addr);
        }
        s->addr = *addr;
        t->used++;
    }
    return ++s->count;
}

uint32_t sl_ipcount_dec(sl_ipcount *t, const sl_ipaddr *addr)
{
    slot *s = find(t, addr);
    size_t i, j, mask = t->cap - 1;

    if (s->count == 0)
        return 0;
    if (--s->count > 0)
        return s->count;
    /* Backward-shift deletion: move later members of the probe run into
     * the hole when the hole lies between their home and them. */
    t->used--;
    i = (size_t)(s - t->slots);
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (t->slots[j].count == 0)
            break;
        home = hash(&t->slots[j].addr) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].count = 0;
    return 0;
}

size_t sl_ipcount_size(const sl_ipcount *t)
{
    return t->used;
}

bool sl_ipaddr_from_sockaddr(const void *sa, sl_ipaddr *out)
{
    const struct sockaddr *s = sa;

    memset(out, 0, sizeof(*out));
    if (s->sa_family == AF_INET) {
        const struct sockaddr_in *a = sa;
        out->b[10] = out->b[11] = 0xff; /* ::ffff:a.b.c.d */
        memcpy(out->b + 12, &a->sin_addr, 4);
        return true;
    }
    if (s->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = sa;
        memcpy(out->b, &a->sin6_addr, 16);
        return true;
    }
    return false;
}

bool sl_ipaddr_parse(const char *s, sl_ipaddr *out)
{
    struct in_addr v4;

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, s, &v4) == 1) {
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, s, out->b) == 1;
}

int sl_iplimits_parse(const char *spec, sl_iplimits *out, char *err,
                      size_t errlen)
{
    const char *p = spec;

    memset(out, 0, sizeof(*out));
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ','), *colon;
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[128], *num;
        long long n;

        if (len == 0 || len >= sizeof(item))
            goto bad;
        memcpy(item, p, len);
        item[len] = '\0';
        /* The count follows the last colon (IPv6 has colons too). */
        colon = strrchr(item, ':');
        if (colon == NULL)
            goto bad;
        num = item + (colon - item) + 1;
        item[colon - item] = '\0';
        n = strtoll(num, &num, 10);
        if (*num != '\0' || n < 0 || n > 1000000 || num == colon + 1)
            goto bad;
        out->addr = sl_realloc(out->addr, (out->n + 1) * sizeof(*out->addr));
        out->limit =
            sl_realloc(out->limit, (out->n + 1) * sizeof(*out->limit));
        if (!sl_ipaddr_parse(item, &out->addr[out->n]))
            goto bad;
        out->limit[out->n++] = (uint32_t)n;
        p = end ? end + 1 : NULL;
        continue;
    bad:
        snprintf(err, errlen,
                 "limits.max_connections_per_ip_overrides: \"%.*s\" is not "
                 "address:count (an IP address, no host name; count 0..1000000)",
                 (int)len, p);
        sl_iplimits_free(out);
        return SL_E_CONFIG;
    }
    return 0;
}

uint32_t sl_iplimits_for(const sl_iplimits *l, const sl_ipaddr *addr,
                         uint32_t dflt)
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(&l->addr[i], addr, sizeof(*addr)) == 0)
            return l->limit[i];
    return dflt;
}

void sl_iplimits_free(sl_iplimits *l)
{
    sl_free(l->addr);
    sl_free(l->limit);
    memset(l, 0, sizeof(*l));
}
