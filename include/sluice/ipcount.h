/*
 * Connections per client address, for limits.max_connections_per_ip
 * (Kafka's max.connections.per.ip) and its per-address overrides.
 *
 * An open-addressing table keyed by the 16-byte address (IPv4 as
 * IPv4-mapped IPv6, so one address has one key), linear probing with
 * backward-shift deletion: no tombstones, so a flood of connections that
 * come and go cannot fill it. It grows at 3/4 full. Pure; the owner's
 * thread only (the server's loop).
 */
#ifndef SLUICE_IPCOUNT_H
#define SLUICE_IPCOUNT_H

#include "sluice/common.h"

#include <stddef.h>

typedef struct sl_ipaddr {
    uint8_t b[16];
} sl_ipaddr;

typedef struct sl_ipcount sl_ipcount;

sl_ipcount *sl_ipcount_new(void);
void sl_ipcount_free(sl_ipcount *t);

/* The address of a struct sockaddr (AF_INET or AF_INET6); false for
 * another family. */
bool sl_ipaddr_from_sockaddr(const void *sa, sl_ipaddr *out);
/* Parses a literal IPv4 or IPv6 address; false if it is not one. */
bool sl_ipaddr_parse(const char *s, sl_ipaddr *out);

/* Count of addr's connections (0 when absent). */
uint32_t sl_ipcount_get(const sl_ipcount *t, const sl_ipaddr *addr);
/* Adds one; returns the new count. */
uint32_t sl_ipcount_inc(sl_ipcount *t, const sl_ipaddr *addr);
/* Takes one away (the entry goes at 0); returns the new count. */
uint32_t sl_ipcount_dec(sl_ipcount *t, const sl_ipaddr *addr);
/* Addresses with at least one connection. */
size_t sl_ipcount_size(const sl_ipcount *t);

/* Per-address limits from "ip:n[,ip:n...]" (Kafka's
 * max.connections.per.ip.overrides, addresses only, no host names).
 * Returns 0, or SL_E_CONFIG with a message in err. */
typedef struct sl_iplimits {
    sl_ipaddr *addr;
    uint32_t *limit;
    size_t n;
} sl_iplimits;
int sl_iplimits_parse(const char *spec, sl_iplimits *out, char *err,
                      size_t errlen);
/* The limit for addr: its override, else dflt. */
uint32_t sl_iplimits_for(const sl_iplimits *l, const sl_ipaddr *addr,
                         uint32_t dflt);
void sl_iplimits_free(sl_iplimits *l);

#endif
