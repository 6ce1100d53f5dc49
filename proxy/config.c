/*
 * Daemon configuration (see include/sluice/config.h): the key table and
 * everything generated from it — defaults, the JSON loader, the flag
 * parser, `--help`, the README's Markdown table and the JSON dump.
 *
 * Adding a key means adding a field to sl_config and one row to keys[];
 * nothing else lists keys.
 *
 * Thread: main thread, before the loop starts. Nothing here is shared.
 */
#include "sluice/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sluice/jsonscan.h"

/* ---- the table ----------------------------------------------------------- */

/* Value types. A string key's type says how it is validated, so there is
 * no separate validator column. */
enum key_type {
    T_HOSTPORT, /* char *: "host:port" / "[v6]:port", port 0..65535 */
    T_PATH,     /* char *: a file path, non-empty */
    T_STRING,   /* char *: any non-empty string (KF_SECRET: redacted) */
    T_BROKERS,  /* char *: "mock:N" (N in min..max) or a broker list */
    T_INT,      /* int64_t in min..max; JSON integers only */
    T_CHOICE,   /* int64_t index into the key's choices, written as its
                   name; choices {"false", "true"} also take JSON booleans */
    T_PROPS,    /* sl_kv array + count: librdkafka properties, in order */
};

static const struct {
    const char *name;    /* the docs' type column */
    const char *metavar; /* the flag's value in usage */
} type_info[] = {
    [T_HOSTPORT] = {"host:port", "HOST:PORT"},
    [T_PATH] = {"path", "FILE"},
    [T_STRING] = {"string", "TEXT"},
    [T_BROKERS] = {"brokers", "LIST"},
    [T_INT] = {"integer", "N"},
    [T_CHOICE] = {"choice", "NAME"},
    [T_PROPS] = {"object", "KEY=VALUE"},
};

#define KF_NULLABLE 0x1 /* JSON null resets the key to NULL (unset) */
#define KF_BYTES 0x2    /* a size in bytes: docs add "(64 MiB)" */
#define KF_SECRET 0x4   /* never printed: dumps show "[redacted]" */

typedef struct cfg_key {
    const char *name;    /* dotted: the JSON path and the --flag */
    enum key_type type;
    size_t off;          /* of the value in sl_config */
    size_t off_n;        /* T_PROPS: of the element count */
    const char *def_str; /* T_HOSTPORT, T_BROKERS; NULL = unset */
    int64_t def_int;     /* T_INT, T_CHOICE */
    int64_t min, max;    /* T_INT; T_BROKERS: N of "mock:N" */
    const char *alias;   /* another long flag, without "--" */
    char short_flag;     /* -X style flag, 0 = none */
    const char *const *choices; /* T_CHOICE: names, NULL-terminated */
    unsigned flags;      /* KF_* */
    const char *def_doc; /* the default as docs show it, if not the value */
    const char *help;
} cfg_key;

#define OFF(field) offsetof(sl_config, field)

/* T_CHOICE names; an index is the value (sl_log_level for the log level). */
static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          NULL};
static const char *const bool_names[] = {"false", "true", NULL};
/* Indexes are sl_security_protocol values minus the first. */
static const char *const plain_protocols[] = {"PLAINTEXT", "SASL_PLAINTEXT",
                                              NULL};
static const char *const tls_protocols[] = {"SSL", "SASL_SSL", NULL};
static const char *const client_auths[] = {"none", "requested", "required",
                                           NULL};
static const char *const tls_versions[] = {"TLSv1.2", "TLSv1.3", NULL};

static const cfg_key keys[] = {
    {.name = "listen", .type = T_HOSTPORT, .off = OFF(listen),
     .def_str = "127.0.0.1:9092",
     .help = "Address to accept Kafka clients on (an IP literal; IPv6 in "
             "brackets; port 0 picks a free one)."},
    {.name = "advertised_listener", .type = T_HOSTPORT,
     .off = OFF(advertised_listener), .def_str = NULL,
     .flags = KF_NULLABLE, .def_doc = "same as listen",
     .help = "Address clients are told to connect to in Metadata "
             "responses."},
    {.name = "node_id", .type = T_INT, .off = OFF(node_id), .def_int = 0,
     .min = 0, .max = 2147483647,
     .help = "Broker id the proxy gives itself in Metadata responses when "
             "broker_port_base is -1."},
    {.name = "broker_port_base", .type = T_INT, .off = OFF(broker_port_base),
     .def_int = 0, .min = -1, .max = 65535,
     .help = "Per upstream broker, Sluice listens on one more port (at the "
             "listen address) and advertises it as that broker, so clients "
             "send each broker's partitions on their own connection and a "
             "slow broker's throttle mutes only those: port = this + broker "
             "id, or a free port with 0. -1: advertise the listen address "
             "as the only broker (node_id)."},
    {.name = "log_level", .type = T_CHOICE, .off = OFF(log_level),
     .def_int = SL_LOG_INFO, .choices = level_names,
     .alias = "log-level",
     .help = "Least severe log lines written to stderr."},

    {.name = "policy_file", .type = T_PATH, .off = OFF(policy_file),
     .def_str = NULL, .flags = KF_NULLABLE, .alias = "policy",
     .help = "Policy file (quotas, classes; see policy/examples/). Reloaded "
             "on SIGHUP and when it changes on disk. Unset: no quotas."},

    {.name = "http.listen", .type = T_HOSTPORT, .off = OFF(http_listen),
     .def_str = "127.0.0.1:9644", .flags = KF_NULLABLE,
     .help = "Address of the HTTP operator surface (/metrics, /healthz, "
             "/readyz, /v1/, status page); null disables it. Loopback by "
             "default: it is not authenticated for reads."},
    {.name = "http.admin_token", .type = T_STRING, .off = OFF(http_admin_token),
     .def_str = NULL, .flags = KF_NULLABLE | KF_SECRET,
     .help = "Bearer token required by mutating admin calls (pause, resume, "
             "quota override, reload). Unset: those calls are disabled."},

    {.name = "http.tls_cert_file", .type = T_PATH,
     .off = OFF(http_tls_cert_file), .def_str = NULL, .flags = KF_NULLABLE,
     .help = "PEM certificate chain for the HTTP surface: set with "
             "http.tls_key_file, it serves HTTPS only. Read at start."},
    {.name = "http.tls_key_file", .type = T_PATH,
     .off = OFF(http_tls_key_file), .def_str = NULL, .flags = KF_NULLABLE,
     .help = "PEM private key of http.tls_cert_file."},

    {.name = "listen_protocol", .type = T_CHOICE, .off = OFF(listen_protocol),
     .def_int = 0, .choices = plain_protocols,
     .help = "Security of the listen address and its per-broker listeners, "
             "as Kafka's security.protocol: SASL_PLAINTEXT requires a SASL "
             "login (sasl.*) before any other request."},
    {.name = "tls.listen", .type = T_HOSTPORT, .off = OFF(tls_listen),
     .def_str = NULL, .flags = KF_NULLABLE,
     .help = "Address of a TLS listener beside the plaintext one (needs "
             "tls.cert_file and tls.key_file); per-broker TLS listeners "
             "follow it as broker_port_base says. Unset: no TLS."},
    {.name = "tls.advertised_listener", .type = T_HOSTPORT,
     .off = OFF(tls_advertised_listener), .def_str = NULL,
     .flags = KF_NULLABLE, .def_doc = "same as tls.listen",
     .help = "Address TLS clients are told to connect to in Metadata "
             "responses (its host must match the certificate)."},
    {.name = "tls.broker_port_base", .type = T_INT,
     .off = OFF(tls_broker_port_base), .def_int = 0, .min = 0,
     .max = 65535,
     .help = "Ports of the per-broker TLS listeners when broker_port_base "
             "is not -1: this + broker id, or free ports with 0."},
    {.name = "tls.protocol", .type = T_CHOICE, .off = OFF(tls_protocol),
     .def_int = 0, .choices = tls_protocols,
     .help = "Security of the TLS listeners: SSL, or SASL_SSL to require a "
             "SASL login over TLS."},
    {.name = "tls.cert_file", .type = T_PATH, .off = OFF(tls_cert_file),
     .def_str = NULL, .flags = KF_NULLABLE,
     .help = "PEM certificate chain of the TLS listeners. Reloaded with "
             "the key on SIGHUP and when either file changes; connections "
             "already open keep theirs."},
    {.name = "tls.key_file", .type = T_PATH, .off = OFF(tls_key_file),
     .def_str = NULL, .flags = KF_NULLABLE,
     .help = "PEM private key of tls.cert_file."},
    {.name = "tls.key_password", .type = T_STRING,
     .off = OFF(tls_key_password), .def_str = NULL,
     .flags = KF_NULLABLE | KF_SECRET,
     .help = "Password of an encrypted tls.key_file."},
    {.name = "tls.ca_file", .type = T_PATH, .off = OFF(tls_ca_file),
     .def_str = NULL, .flags = KF_NULLABLE,
     .help = "PEM CA certificates that client certificates must chain to "
             "(for tls.client_auth)."},
    {.name = "tls.client_auth", .type = T_CHOICE,
     .off = OFF(tls_client_auth), .def_int = 0, .choices = client_auths,
     .help = "Client certificates, as Kafka's ssl.client.auth: requested "
             "asks for one, required refuses the handshake without one. A "
             "verified certificate's subject is the client's principal "
             "(see tls.principal_mapping_rules)."},
    {.name = "tls.min_version", .type = T_CHOICE,
     .off = OFF(tls_min_version), .def_int = 0, .choices = tls_versions,
     .help = "Oldest TLS version accepted."},
    {.name = "tls.ciphers", .type = T_STRING, .off = OFF(tls_ciphers),
     .def_str = NULL, .flags = KF_NULLABLE, .def_doc = "OpenSSL's",
     .help = "TLS 1.2 cipher list, in OpenSSL's syntax."},
    {.name = "tls.ciphersuites", .type = T_STRING,
     .off = OFF(tls_ciphersuites), .def_str = NULL, .flags = KF_NULLABLE,
     .def_doc = "OpenSSL's",
     .help = "TLS 1.3 cipher suites, in OpenSSL's syntax."},
    {.name = "tls.principal_mapping_rules", .type = T_STRING,
     .off = OFF(tls_principal_mapping_rules), .def_str = "DEFAULT",
     .help = "How a client certificate's subject (RFC 2253, e.g. "
             "\"CN=alice,OU=Apps,O=Example\") becomes a principal, as "
             "Kafka's ssl.principal.mapping.rules: "
             "\"RULE:pattern/replacement/[LU],...,DEFAULT\", the first "
             "rule whose pattern (a POSIX extended regular expression "
             "matching the whole subject) matches wins; $1.. in the "
             "replacement are its groups; /L or /U changes case; DEFAULT "
             "is the subject itself. The principal is \"User:<result>\"."},
    {.name = "sasl.mechanisms", .type = T_STRING, .off = OFF(sasl_mechanisms),
     .def_str = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
     .help = "SASL mechanisms offered on SASL listeners, as Kafka's "
             "sasl.enabled.mechanisms: any of SCRAM-SHA-512, SCRAM-SHA-256, "
             "PLAIN (PLAIN sends the password itself: use it over TLS)."},
    {.name = "sasl.credentials_file", .type = T_PATH,
     .off = OFF(sasl_credentials_file), .def_str = NULL,
     .flags = KF_NULLABLE,
     .help = "Users' salted SCRAM credentials (never passwords), written "
             "by `sluice users add`; PLAIN logins are checked against them. "
             "Reloaded on SIGHUP and when it changes."},
    {.name = "sasl.session_lifetime_ms", .type = T_INT,
     .off = OFF(sasl_session_lifetime_ms), .def_int = 0, .min = 0,
     .max = 31536000000,
     .help = "Lifetime of a SASL login, as Kafka's connections.max.reauth.ms"
             " (KIP-368): told to clients, which log in again on the same "
             "connection before it ends; a connection that sends anything "
             "else after it is closed. 0: logins do not expire."},
    {.name = "sasl.failed_authentication_delay_ms", .type = T_INT,
     .off = OFF(sasl_failed_authentication_delay_ms), .def_int = 100,
     .min = 0, .max = 60000,
     .help = "A failed login is answered (and its connection closed) this "
             "much later, as Kafka's "
             "connection.failed.authentication.delay.ms: it slows down "
             "password guessing."},
    {.name = "require_principal", .type = T_CHOICE,
     .off = OFF(require_principal), .def_int = 0, .choices = bool_names,
     .help = "Refuse clients that did not authenticate (by SASL or a "
             "verified client certificate): their Produce requests are "
             "answered with an authorization error, so that quotas cannot "
             "be claimed by choosing a client.id."},

    {.name = "upstream.bootstrap_servers", .type = T_BROKERS,
     .off = OFF(upstream_bootstrap), .def_str = "mock:3", .min = 1,
     .max = 16, .alias = "upstream",
     .help = "Kafka cluster to produce to: host:port,... or \"mock:N\" for "
             "an embedded librdkafka mock cluster of N brokers."},
    {.name = "upstream.message_timeout_ms", .type = T_INT,
     .off = OFF(upstream_message_timeout_ms), .def_int = 20000,
     .min = 100, .max = 3600000,
     .help = "Milliseconds librdkafka may take to deliver a record before "
             "the client is answered with a timeout (message.timeout.ms)."},
    {.name = "upstream.properties", .type = T_PROPS,
     .off = OFF(upstream_props), .off_n = OFF(n_upstream_props),
     .short_flag = 'X', .def_doc = "none",
     .help = "librdkafka producer properties, applied in order after "
             "Sluice's own; values may be strings, numbers or booleans. "
             "-X key=value adds one (repeatable, later wins)."},

    {.name = "metadata.refresh_ms", .type = T_INT,
     .off = OFF(metadata_refresh_ms), .def_int = 30000, .min = 100,
     .max = 3600000,
     .help = "Milliseconds cached topic metadata is answered from before "
             "it is fetched again from upstream."},
    {.name = "metadata.max_age_ms", .type = T_INT,
     .off = OFF(metadata_max_age_ms), .def_int = 300000, .min = 1000,
     .max = 86400000,
     .help = "Milliseconds after the last successful refresh that cached "
             "metadata still counts as fresh."},

    {.name = "metadata.list_max_age_ms", .type = T_INT,
     .off = OFF(metadata_list_max_age_ms), .def_int = 0, .min = 0,
     .max = 3600000,
     .help = "An all-topics Metadata request is answered from a listing "
             "at most this old, else the cluster is listed again (one "
             "upstream call shared by the requests that wait for it). 0: "
             "always listed again, so that a topic created a moment ago is "
             "listed, as a broker lists it (kafka-go writes only to topics "
             "its all-topics Metadata lists)."},

    {.name = "limits.max_request_bytes", .type = T_INT,
     .off = OFF(max_request_bytes), .def_int = 104857600, .min = 1024,
     .max = 1073741824, .flags = KF_BYTES,
     .help = "Largest request frame accepted; a bigger one closes the "
             "connection."},
    {.name = "limits.max_connections", .type = T_INT,
     .off = OFF(max_connections), .def_int = 10000, .min = 1,
     .max = 1000000,
     .help = "Client connections open at once; beyond it new ones wait "
             "in the listen backlog until one closes."},
    {.name = "limits.max_inflight_requests", .type = T_INT,
     .off = OFF(max_inflight_requests), .def_int = 32, .min = 1,
     .max = 10000,
     .help = "Requests per connection read but not yet answered; at the "
             "limit the connection stops being read."},
    {.name = "limits.max_inflight_bytes", .type = T_INT,
     .off = OFF(max_inflight_bytes), .def_int = 67108864, .min = 1024,
     .max = 4294967296, .flags = KF_BYTES,
     .help = "Request bytes per connection read but not yet answered; at "
             "the limit the connection stops being read."},
    {.name = "limits.memory_budget_bytes", .type = T_INT,
     .off = OFF(memory_budget_bytes), .def_int = 1073741824,
     .min = 1048576, .max = 1099511627776, .flags = KF_BYTES,
     .help = "Request memory across all connections; above it no client "
             "socket is read until usage falls."},
    {.name = "limits.max_decompressed_bytes", .type = T_INT,
     .off = OFF(max_decompressed_bytes), .def_int = 67108864, .min = 1024,
     .max = 2147483647, .flags = KF_BYTES,
     .help = "Largest decompressed size of the record batches of one "
             "request, together; a batch past it is rejected (guards "
             "against compression bombs)."},
    {.name = "limits.max_producer_states", .type = T_INT,
     .off = OFF(max_producer_states), .def_int = 200000, .min = 16,
     .max = 100000000,
     .help = "Idempotent producer/partition pairs whose sequence state is "
             "kept (about 500 bytes each, counted in "
             "limits.memory_budget_bytes); past it the least recently used "
             "idle one is forgotten and starts afresh, as after a restart."},

    {.name = "limits.connections_max_idle_ms", .type = T_INT,
     .off = OFF(connections_max_idle_ms), .def_int = 600000, .min = 0,
     .max = 86400000,
     .help = "A connection with nothing in flight that sends nothing for "
             "this long is closed, as a broker does "
             "(connections.max.idle.ms); 0: never."},
    {.name = "limits.request_read_timeout_ms", .type = T_INT,
     .off = OFF(request_read_timeout_ms), .def_int = 30000, .min = 0,
     .max = 3600000,
     .help = "A request whose first bytes arrived must arrive whole within "
             "this long (counted while Sluice reads the socket), or the "
             "connection is closed: a client that sends half a request, or "
             "one byte a second, cannot hold a connection forever. 0: no "
             "limit."},
    {.name = "limits.max_connections_per_ip", .type = T_INT,
     .off = OFF(max_connections_per_ip), .def_int = 0, .min = 0,
     .max = 1000000,
     .help = "Client connections from one address at once; a new one past "
             "it is closed at once, as a broker does "
             "(max.connections.per.ip). 0: no per-address limit."},
    {.name = "limits.max_connections_per_ip_overrides", .type = T_STRING,
     .off = OFF(max_connections_per_ip_overrides), .def_str = NULL,
     .flags = KF_NULLABLE,
     .help = "Per-address limits that replace limits.max_connections_per_ip"
             ": \"ip:count,...\" (addresses, not host names; count 0 "
             "refuses the address), as Kafka's "
             "max.connections.per.ip.overrides."},

    {.name = "shutdown_timeout_ms", .type = T_INT,
     .off = OFF(shutdown_timeout_ms), .def_int = 10000, .min = 0,
     .max = 600000,
     .help = "Milliseconds to wait on SIGTERM for records already sent "
             "upstream to be acknowledged."},
};

#undef OFF


/* Property names whose values sl_config_dump_json hides. */
static const char *const secret_words[] = {"password", "secret", "sasl",
                                           "ssl.key", "ssl_key"};

const char *sl_security_protocol_name(sl_security_protocol p)
{
    switch (p) {
    case SL_PROTO_PLAINTEXT: return "PLAINTEXT";
    case SL_PROTO_SASL_PLAINTEXT: return "SASL_PLAINTEXT";
    case SL_PROTO_SSL: return "SSL";
    case SL_PROTO_SASL_SSL: return "SASL_SSL";
    }
    return "?";
}

/* ---- field access ---------------------------------------------------- */

static char **str_at(sl_config *c, const cfg_key *k)
{
    return (char **)(void *)((char *)c + k->off);
}

static int64_t *int_at(sl_config *c, const cfg_key *k)
{
    return (int64_t *)(void *)((char *)c + k->off);
}

static sl_kv **props_at(sl_config *c, const cfg_key *k)
{
    return (sl_kv **)(void *)((char *)c + k->off);
}

static size_t *nprops_at(sl_config *c, const cfg_key *k)
{
    return (size_t *)(void *)((char *)c + k->off_n);
}

/* The readers above never write; the dump and docs only read. */
#define CFG_RO(c) ((sl_config *)(uintptr_t)(c))

static bool is_string_type(enum key_type t)
{
    return t == T_HOSTPORT || t == T_BROKERS || t == T_PATH ||
           t == T_STRING;
}

/* Sets the property key (key_len bytes) to value: replaces the value in
 * place if the key is already set (so order stays that of first mention),
 * appends otherwise. Copies both. */
static void props_set(sl_config *c, const cfg_key *k, const char *key,
                      size_t key_len, const char *value)
{
    sl_kv **kv = props_at(c, k);
    size_t *n = nprops_at(c, k);

    for (size_t i = 0; i < *n; i++) {
        if (strlen((*kv)[i].key) == key_len &&
            memcmp((*kv)[i].key, key, key_len) == 0) {
            sl_free((*kv)[i].value);
            (*kv)[i].value = sl_strdup(value);
            return;
        }
    }
    *kv = sl_realloc(*kv, (*n + 1) * sizeof(**kv));
    (*kv)[*n].key = sl_strndup(key, key_len);
    (*kv)[*n].value = sl_strdup(value);
    (*n)++;
}

/* dst gets its own copy of every owned string of src. */
static void config_copy(sl_config *dst, const sl_config *src)
{
    *dst = *src;
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++) {
        const cfg_key *k = &keys[i];
        if (is_string_type(k->type)) {
            char **s = str_at(dst, k);
            if (*s != NULL)
                *s = sl_strdup(*s);
        } else if (k->type == T_PROPS) {
            const sl_kv *from = *props_at(CFG_RO(src), k);
            size_t n = *nprops_at(dst, k);
            sl_kv *to = n ? sl_calloc(n, sizeof(*to)) : NULL;
            for (size_t j = 0; j < n; j++) {
                to[j].key = sl_strdup(from[j].key);
                to[j].value = sl_strdup(from[j].value);
            }
            *props_at(dst, k) = to;
        }
    }
    if (dst->config_path != NULL)
        dst->config_path = sl_strdup(dst->config_path);
}

void sl_config_defaults(sl_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++) {
        const cfg_key *k = &keys[i];
        switch (k->type) {
        case T_HOSTPORT:
        case T_STRING:
        case T_PATH:
        case T_BROKERS:
            *str_at(c, k) = k->def_str ? sl_strdup(k->def_str) : NULL;
            break;
        case T_INT:
        case T_CHOICE:
            *int_at(c, k) = k->def_int;
            break;
        case T_PROPS:
            *props_at(c, k) = NULL;
            *nprops_at(c, k) = 0;
            break;
        }
    }
}

void sl_config_free(sl_config *c)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++) {
        const cfg_key *k = &keys[i];
        if (is_string_type(k->type)) {
            sl_free(*str_at(c, k));
            *str_at(c, k) = NULL;
        } else if (k->type == T_PROPS) {
            sl_kv *kv = *props_at(c, k);
            for (size_t j = 0; j < *nprops_at(c, k); j++) {
                sl_free(kv[j].key);
                sl_free(kv[j].value);
            }
            sl_free(kv);
            *props_at(c, k) = NULL;
            *nprops_at(c, k) = 0;
        }
    }
    sl_free(c->config_path);
    c->config_path = NULL;
}

/* ---- lookups and suggestions -------------------------------------------- */

static const cfg_key *key_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++)
        if (strlen(keys[i].name) == len &&
            memcmp(keys[i].name, name, len) == 0)
            return &keys[i];
    return NULL;
}

static const cfg_key *key_by_flag(const char *name, size_t len)
{
    const cfg_key *k = key_by_name(name, len);

    for (size_t i = 0; k == NULL && i < SL_ARRAY_SIZE(keys); i++)
        if (keys[i].alias != NULL && strlen(keys[i].alias) == len &&
            memcmp(keys[i].alias, name, len) == 0)
            k = &keys[i];
    return k;
}

static const cfg_key *key_by_short(char ch)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++)
        if (keys[i].short_flag != 0 && keys[i].short_flag == ch)
            return &keys[i];
    return NULL;
}

/* True if name is a proper dotted prefix of a key ("limits"): a JSON
 * object that groups keys. */
static bool is_group(const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++)
        if (strncmp(keys[i].name, name, len) == 0 && keys[i].name[len] == '.')
            return true;
    return false;
}

static const char *leaf(const char *name, size_t len, size_t *leaf_len)
{
    const char *dot = memrchr(name, '.', len);
    const char *l = dot ? dot + 1 : name;

    *leaf_len = len - (size_t)(l - name);
    return l;
}

/* The known name (key, group or flag alias) closest to name, or NULL if
 * none is close. Writes it to buf, which must hold any key name. A
 * misplaced key ("max_connections" at the top level) matches by its last
 * component. */
static const char *suggest(const char *name, size_t len, bool flags,
                           char *buf, size_t buf_len)
{
    size_t best = SIZE_MAX, nleaf, cleaf_len;
    const char *nl = leaf(name, len, &nleaf);

    buf[0] = '\0';
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++) {
        const char *cands[3] = {keys[i].name,
                                flags ? keys[i].alias : NULL, NULL};
        char group[64];
        const char *dot = strrchr(keys[i].name, '.');

        if (!flags && dot != NULL &&
            (size_t)(dot - keys[i].name) < sizeof(group)) {
            memcpy(group, keys[i].name, (size_t)(dot - keys[i].name));
            group[dot - keys[i].name] = '\0';
            cands[2] = group;
        }
        for (size_t j = 0; j < 3; j++) {
            const char *cand = cands[j];
            size_t d, dl, clen;
            const char *cl;
            if (cand == NULL)
                continue;
            clen = strlen(cand);
            d = sl_json_edit_distance(name, len, cand, clen);
            if (d > 3 || d * 2 >= len)
                d = SIZE_MAX;
            cl = leaf(cand, clen, &cleaf_len);
            dl = sl_json_edit_distance(nl, nleaf, cl, cleaf_len);
            if (nleaf >= 4 && dl <= 1 && d == SIZE_MAX)
                d = 4 + dl; /* leaf matches, path differs: weaker */
            if (d < best) {
                best = d;
                snprintf(buf, buf_len, "%s", cand);
            }
        }
    }
    return best == SIZE_MAX ? NULL : buf;
}

/* ---- messages --------------------------------------------------------- */

#define QUOTE_MAX 256

/* Writes s double-quoted for a message: '"', '\' and control bytes
 * escaped, cut after 48 bytes with "...". buf holds QUOTE_MAX bytes. */
static const char *quote(char *buf, const char *s)
{
    size_t o = 0, i;

    buf[o++] = '"';
    for (i = 0; s[i] != '\0' && i < 48; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, QUOTE_MAX - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (s[i] != '\0') {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* A JSON value as the "got ..." part of a message. */
static const char *describe_json(char *buf, const json_t *v)
{
    char *text;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return quote(buf, json_string_value(v));
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    default:
        text = json_dumps(v, JSON_ENCODE_ANY);
        snprintf(buf, QUOTE_MAX, "%s", text ? text : "?");
        free(text); /* jansson's allocator is malloc */
        return buf;
    }
}

/* What key k accepts, for "expected ..." (flag: as a flag's text). */
/* "a, b, c" from a T_CHOICE key's names. */
static const char *choices_text(char *buf, size_t n, const cfg_key *k,
                                const char *sep)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; k->choices[i] != NULL && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? sep : "",
                              k->choices[i]);
    return buf;
}

static const char *expected(char *buf, size_t n, const cfg_key *k, bool flag)
{
    switch (k->type) {
    case T_STRING:
        snprintf(buf, n, "a non-empty string%s", !flag && (k->flags & KF_NULLABLE) ? " or null" : "");
        break;
    case T_PATH:
        snprintf(buf, n, "a file path%s", !flag && (k->flags & KF_NULLABLE) ? " or null" : "");
        break;
    case T_HOSTPORT:
        snprintf(buf, n, "host:port (IPv6 in brackets, port 0..65535)%s",
                 !flag && (k->flags & KF_NULLABLE) ? " or null" : "");
        break;
    case T_BROKERS:
        snprintf(buf, n,
                 "\"mock:N\" with N in %" PRId64 "..%" PRId64
                 " or a broker list host:port,...",
                 k->min, k->max);
        break;
    case T_INT:
        snprintf(buf, n, "an integer in %" PRId64 "..%" PRId64, k->min,
                 k->max);
        break;
    case T_CHOICE: {
        char names[256];
        snprintf(buf, n, "one of %s%s", choices_text(names, sizeof(names), k, ", "),
                 k->choices == bool_names && !flag ? " (or a JSON boolean)"
                                                    : "");
        break;
    }
    case T_PROPS:
        snprintf(buf, n, "%s",
                 flag ? "key=value" : "an object of librdkafka properties");
        break;
    }
    return buf;
}

static void put_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void put_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- value parsing ------------------------------------------------------ */

/* Strict decimal: optional sign, digits, nothing else. */
static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool brokers_ok(const cfg_key *k, const char *s)
{
    int64_t n;

    if (strncmp(s, "mock:", 5) == 0)
        return parse_int(s + 5, &n) && n >= k->min && n <= k->max;
    if (s[0] == '\0')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* Applies value text s (a flag's, or a JSON string's: flag false) to key
 * k of c. Returns 0, or SL_E_CONFIG with "expected ..., got ..." in msg. */
static int set_from_text(sl_config *c, const cfg_key *k, const char *s,
                         bool flag, char *msg, size_t msg_len)
{
    char exp[160], got[QUOTE_MAX];
    const char *eq;
    int64_t v;

    switch (k->type) {
    case T_STRING:
    case T_PATH:
        if (s[0] == '\0')
            goto bad;
        break;
    case T_HOSTPORT:
        if (sl_config_split_hostport(s, NULL, 0, NULL) != 0)
            goto bad;
        break;
    case T_BROKERS:
        if (!brokers_ok(k, s))
            goto bad;
        break;
    case T_INT:
        if (!parse_int(s, &v) || v < k->min || v > k->max)
            goto bad;
        *int_at(c, k) = v;
        return 0;
    case T_CHOICE:
        for (v = 0; k->choices[v] != NULL; v++)
            if (strcmp(s, k->choices[v]) == 0)
                break;
        if (k->choices[v] == NULL)
            goto bad;
        *int_at(c, k) = v;
        return 0;
    case T_PROPS:
        eq = strchr(s, '=');
        if (eq == NULL || eq == s)
            goto bad;
        props_set(c, k, s, (size_t)(eq - s), eq + 1);
        return 0;
    }
    sl_free(*str_at(c, k));
    *str_at(c, k) = sl_strdup(s);
    return 0;

bad:
    snprintf(msg, msg_len, "expected %s, got %s",
             expected(exp, sizeof(exp), k, flag), quote(got, s));
    return SL_E_CONFIG;
}

/* ---- finding a key's line in the raw text ------------------------------- */

/* jansson keeps no positions for parsed values: the shared walker in
 * include/sluice/jsonscan.h finds them. The line of the first key at path
 * comps[0..n) in text, or 0. */
static int key_line(const char *text, size_t len, const char *const *comps,
                    size_t n)
{
    sl_jscan_comp want[SL_JSCAN_MAX_DEPTH];

    if (n == 0 || n > SL_JSCAN_MAX_DEPTH)
        return 0;
    for (size_t i = 0; i < n; i++)
        want[i] = (sl_jscan_comp){comps[i], -1};
    return sl_jscan_path_line(text, len, want, n);
}

/* ---- loading a file ---------------------------------------------------- */

#define MAX_FILE_BYTES (16u << 20)
#define LOAD_MAX_DEPTH 8 /* deeper than any key; unknown keys stop sooner */

typedef struct loader {
    sl_config *c;
    const char *path;
    const char *text;
    size_t len;
    char *err;
    size_t err_len;
    const char *comps[LOAD_MAX_DEPTH]; /* path of the key being loaded */
    size_t depth;
} loader;

static void dotted(const char *const *comps, size_t n, char *buf,
                   size_t buf_len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o < buf_len; i++)
        o += (size_t)snprintf(buf + o, buf_len - o, "%s%s", i ? "." : "",
                              comps[i]);
}

/* Reports "FILE:LINE: dotted.key: message" for the key at ld->comps. The
 * line is the key's; if the scan cannot place it (it always should), that
 * of the nearest enclosing key, else 1. */
static int load_error(loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int load_error(loader *ld, const char *fmt, ...)
{
    char name[512], msg[768];
    int line = 0;
    va_list ap;

    for (size_t n = ld->depth; n > 0 && line == 0; n--)
        line = key_line(ld->text, ld->len, ld->comps, n);
    dotted(ld->comps, ld->depth, name, sizeof(name));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    put_err(ld->err, ld->err_len, "%s:%d: %s: %s", ld->path,
            line > 0 ? line : 1, name, msg);
    return SL_E_CONFIG;
}

/* A property value as librdkafka takes it: strings as they are, integers
 * in decimal, reals in the shortest form that reads back the same,
 * booleans as "true"/"false". False for null, arrays and objects. */
static bool prop_text(const json_t *v, char *buf, size_t n)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return true;
    case JSON_REAL:
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, n, "%.*g", prec, json_real_value(v));
            if (strtod(buf, NULL) == json_real_value(v))
                break;
        }
        return true;
    case JSON_TRUE:
        snprintf(buf, n, "true");
        return true;
    case JSON_FALSE:
        snprintf(buf, n, "false");
        return true;
    default:
        return false;
    }
}

static int load_props(loader *ld, const cfg_key *k, json_t *obj)
{
    const char *name;
    json_t *v;

    json_object_foreach(obj, name, v) {
        char num[64], got[QUOTE_MAX];
        const char *text = num;

        ld->comps[ld->depth++] = name;
        if (json_is_string(v))
            text = json_string_value(v);
        else if (!prop_text(v, num, sizeof(num)))
            return load_error(ld,
                              "expected a string, number or boolean, got %s",
                              describe_json(got, v));
        if (name[0] == '\0')
            return load_error(ld, "expected a property name, got \"\"");
        props_set(ld->c, k, name, strlen(name), text);
        ld->depth--;
    }
    return 0;
}

static int load_value(loader *ld, const cfg_key *k, json_t *v)
{
    char exp[160], got[QUOTE_MAX], msg[512];

    switch (k->type) {
    case T_HOSTPORT:
    case T_STRING:
    case T_PATH:
    case T_BROKERS:
    case T_CHOICE:
        if (k->type == T_CHOICE && k->choices == bool_names &&
            json_is_boolean(v)) {
            *int_at(ld->c, k) = json_is_true(v);
            return 0;
        }
        if (json_is_null(v) && is_string_type(k->type) &&
            (k->flags & KF_NULLABLE)) {
            sl_free(*str_at(ld->c, k));
            *str_at(ld->c, k) = NULL;
            return 0;
        }
        if (!json_is_string(v))
            break;
        if (set_from_text(ld->c, k, json_string_value(v), false, msg,
                          sizeof(msg)))
            return load_error(ld, "%s", msg);
        return 0;
    case T_INT:
        if (!json_is_integer(v) || json_integer_value(v) < k->min ||
            json_integer_value(v) > k->max)
            break;
        *int_at(ld->c, k) = json_integer_value(v);
        return 0;
    case T_PROPS:
        if (!json_is_object(v))
            break;
        return load_props(ld, k, v);
    }
    return load_error(ld, "expected %s, got %s",
                      expected(exp, sizeof(exp), k, false),
                      describe_json(got, v));
}

/* Loads the members of obj, whose dotted name is prefix ("" at the top). */
static int load_object(loader *ld, json_t *obj, const char *prefix)
{
    const char *name;
    json_t *v;

    json_object_foreach(obj, name, v) {
        char full[256], sug[64], got[QUOTE_MAX];
        const cfg_key *k = NULL;
        int n, rc;

        ld->comps[ld->depth++] = name;
        if (strchr(name, '.') != NULL)
            return load_error(ld, "unknown key (in a file, dotted names are "
                                  "written as nested objects)");
        n = snprintf(full, sizeof(full), "%s%s%s", prefix,
                     prefix[0] ? "." : "", name);
        if (n > 0 && (size_t)n < sizeof(full))
            k = key_by_name(full, (size_t)n);
        if (k != NULL) {
            rc = load_value(ld, k, v);
        } else if (n > 0 && (size_t)n < sizeof(full) && is_group(full)) {
            if (!json_is_object(v))
                return load_error(ld, "expected an object of %s.* keys, "
                                      "got %s",
                                  full, describe_json(got, v));
            rc = load_object(ld, v, full);
        } else if (suggest(full, strlen(full), false, sug, sizeof(sug))) {
            return load_error(ld, "unknown key (did you mean %s?)", sug);
        } else {
            return load_error(ld, "unknown key");
        }
        if (rc != 0)
            return rc;
        ld->depth--;
    }
    return 0;
}

/* Reads the whole file (at most MAX_FILE_BYTES); *text is NUL-terminated
 * and the caller's to free. */
static int read_file(const char *path, char **text, size_t *len, char *err,
                     size_t err_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;

    if (f == NULL) {
        put_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return SL_E_CONFIG;
    }
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = sl_realloc(buf, cap + 1);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0 && n <= MAX_FILE_BYTES);
    if (ferror(f)) {
        put_err(err, err_len, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    if (n > MAX_FILE_BYTES) {
        put_err(err, err_len, "%s: larger than %u MiB; not a config file",
                path, MAX_FILE_BYTES >> 20);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;

fail:
    fclose(f);
    sl_free(buf);
    return SL_E_CONFIG;
}

/* jansson refused the text: report its line and column, or for a
 * duplicate key the key's dotted name and where it was first set. */
static void syntax_error(loader *ld, const json_error_t *je)
{
    if (json_error_code(je) == json_error_duplicate_key && je->position > 0) {
        char *keys[SL_JSCAN_MAX_DEPTH], name[512];
        int line, first;
        size_t n = sl_jscan_key_at(ld->text, ld->len, (size_t)je->position,
                                   keys, &line);

        if (n > 0) {
            first = key_line(ld->text, ld->len, (const char *const *)keys, n);
            dotted((const char *const *)keys, n, name, sizeof(name));
            put_err(ld->err, ld->err_len,
                    "%s:%d: %s: duplicate key (first set on line %d)",
                    ld->path, line, name, first);
            for (size_t i = 0; i < n; i++)
                sl_free(keys[i]);
            return;
        }
    }
    sl_json_syntax_error(ld->err, ld->err_len, ld->path, je);
}

int sl_config_load_file(sl_config *c, const char *path, char *err,
                        size_t err_len)
{
    loader ld = {.path = path, .err = err, .err_len = err_len};
    char *text;
    json_t *root;
    json_error_t je;
    sl_config tmp;
    int rc;

    /* One read feeds both jansson and the line scan, so the lines always
     * describe the bytes that were parsed (json_load_file would read the
     * file a second time). */
    if ((rc = read_file(path, &text, &ld.len, err, err_len)) != 0)
        return rc;
    ld.text = text;
    root = json_loadb(text, ld.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &je);
    if (root == NULL) {
        syntax_error(&ld, &je);
        rc = SL_E_CONFIG;
        goto out_text;
    }
    if (!json_is_object(root)) {
        put_err(err, err_len,
                "%s:%d: expected a JSON object at the top level, got %s",
                path, sl_jscan_first_line(text, ld.len), sl_json_kind(root));
        rc = SL_E_CONFIG;
        goto out_json;
    }

    /* Load into a copy so a failed load leaves c as it was. */
    config_copy(&tmp, c);
    ld.c = &tmp;
    rc = load_object(&ld, root, "");
    if (rc == 0) {
        sl_free(tmp.config_path);
        tmp.config_path = sl_strdup(path);
        sl_config_free(c);
        *c = tmp;
    } else {
        sl_config_free(&tmp);
    }
out_json:
    json_decref(root);
out_text:
    sl_free(text);
    return rc;
}

/* ---- command line ------------------------------------------------------ */

typedef struct pending {
    const cfg_key *k;
    const char *flag; /* as written, up to flag_len ("--listen", "-X") */
    int flag_len;
    const char *value;
} pending;

int sl_config_parse_args(sl_config *c, int argc, char **argv, int *argi,
                         char *err, size_t err_len)
{
    pending *todo = sl_calloc((size_t)(argc > 0 ? argc : 1), sizeof(*todo));
    size_t n_todo = 0;
    const char *config_file = NULL;
    char msg[512], exp[160], sug[64];
    sl_config tmp;
    int i, rc = 0;

    /* Pass 1: split argv into flags and values, stopping at the first
     * positional argument; handle --help and --version at once. */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *value;
        const cfg_key *k = NULL;
        size_t name_len;
        int flag_len;

        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        if (a[1] != '-') {
            if (strcmp(a, "-h") == 0)
                goto help;
            if ((k = key_by_short(a[1])) == NULL) {
                put_err(err, err_len, "-%c: unknown flag", a[1]);
                goto fail;
            }
            flag_len = 2;
            value = a[2] ? a + 2 : NULL;
        } else {
            name = a + 2;
            eq = strchr(name, '=');
            name_len = eq ? (size_t)(eq - name) : strlen(name);
            flag_len = (int)(name_len + 2);
            if ((name_len == 4 && memcmp(name, "help", 4) == 0) ||
                (name_len == 7 && memcmp(name, "version", 7) == 0)) {
                if (eq != NULL) {
                    put_err(err, err_len, "%.*s: takes no value", flag_len, a);
                    goto fail;
                }
                if (name_len == 4)
                    goto help;
                printf("sluice %s\n", SL_VERSION);
                rc = 1;
                goto out;
            }
            if (!(name_len == 6 && memcmp(name, "config", 6) == 0) &&
                (k = key_by_flag(name, name_len)) == NULL) {
                if (suggest(name, name_len, true, sug, sizeof(sug)))
                    put_err(err, err_len,
                            "%.*s: unknown flag (did you mean --%s?)",
                            flag_len, a, sug);
                else
                    put_err(err, err_len, "%.*s: unknown flag", flag_len, a);
                goto fail;
            }
            value = eq ? eq + 1 : NULL;
        }
        if (value == NULL) {
            if (i + 1 >= argc) {
                put_err(err, err_len, "%.*s: missing value; expected %s",
                        flag_len, a,
                        k ? expected(exp, sizeof(exp), k, true)
                          : "a file name");
                goto fail;
            }
            value = argv[++i];
        }
        if (k == NULL) {
            if (config_file != NULL) {
                put_err(err, err_len, "--config: given twice (\"%s\", \"%s\")",
                        config_file, value);
                goto fail;
            }
            config_file = value;
            continue;
        }
        todo[n_todo++] = (pending){k, a, flag_len, value};
    }

    /* Pass 2: the file first, then the flags over it, on a copy so that a
     * failure leaves c as it was. */
    config_copy(&tmp, c);
    if (config_file != NULL &&
        (rc = sl_config_load_file(&tmp, config_file, err, err_len)) != 0)
        goto fail_tmp;
    for (size_t j = 0; j < n_todo; j++) {
        if ((rc = set_from_text(&tmp, todo[j].k, todo[j].value, true, msg,
                                sizeof(msg))) != 0) {
            put_err(err, err_len, "%.*s: %s", todo[j].flag_len, todo[j].flag,
                    msg);
            goto fail_tmp;
        }
    }
    sl_config_free(c);
    *c = tmp;
    if (argi != NULL)
        *argi = i;
    goto out;

help:
    sl_config_usage(stdout);
    rc = 1;
    goto out;
fail_tmp:
    sl_config_free(&tmp);
fail:
    rc = SL_E_CONFIG;
out:
    sl_free(todo);
    return rc;
}

/* ---- documentation ----------------------------------------------------- */

/* "64 MiB" for exact multiples of a binary unit, else "". */
static const char *human_bytes(char *buf, size_t n, int64_t v)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    int u = -1;

    while (v >= 1024 && v % 1024 == 0 && u + 1 < 4) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        buf[0] = '\0';
    else
        snprintf(buf, n, "%" PRId64 " %s", v, units[u]);
    return buf;
}

static const char *default_text(char *buf, size_t n, const cfg_key *k)
{
    char h[32];

    if (k->def_doc != NULL)
        return k->def_doc;
    switch (k->type) {
    case T_HOSTPORT:
    case T_STRING:
    case T_PATH:
    case T_BROKERS:
        return k->def_str ? k->def_str : "none";
    case T_CHOICE:
        return k->choices[k->def_int];
    case T_INT:
        if ((k->flags & KF_BYTES) && human_bytes(h, sizeof(h), k->def_int)[0])
            snprintf(buf, n, "%" PRId64 " (%s)", k->def_int, h);
        else
            snprintf(buf, n, "%" PRId64, k->def_int);
        return buf;
    case T_PROPS:
        break;
    }
    return "none";
}

/* The accepted values in short; sep separates log level names. */
static const char *range_text(char *buf, size_t n, const cfg_key *k,
                              const char *sep)
{
    switch (k->type) {
    case T_STRING:
    case T_PATH:
        return "";
    case T_HOSTPORT:
        return "port 0..65535";
    case T_BROKERS:
        snprintf(buf, n, "mock:%" PRId64 "..%" PRId64 " or host:port,...",
                 k->min, k->max);
        return buf;
    case T_INT:
        snprintf(buf, n, "%" PRId64 "..%" PRId64, k->min, k->max);
        return buf;
    case T_CHOICE:
        return choices_text(buf, n, k, sep);
    case T_PROPS:
        break;
    }
    return "";
}

static void flag_names(char *buf, size_t n, const cfg_key *k)
{
    size_t o = 0;

    buf[0] = '\0';
    if (k->short_flag)
        o += (size_t)snprintf(buf, n, "-%c, ", k->short_flag);
    if (o < n)
        o += (size_t)snprintf(buf + o, n - o, "--%s", k->name);
    if (k->alias != NULL && o < n)
        snprintf(buf + o, n - o, ", --%s", k->alias);
}

/* Writes text word-wrapped to width columns, each line indented. */
static void wrap(FILE *out, const char *text, int indent, int width)
{
    const char *p = text;

    while (*p != '\0') {
        const char *end = p, *brk = NULL;
        while (*end != '\0' && (end - p < width - indent || brk == NULL)) {
            if (*end == ' ')
                brk = end;
            end++;
        }
        if (*end == '\0')
            brk = end;
        fprintf(out, "%*s%.*s\n", indent, "", (int)(brk - p), p);
        p = *brk == ' ' ? brk + 1 : brk;
    }
}

void sl_config_usage(FILE *out)
{
    char flags[128], def[64], range[96], more[256];

    fprintf(out,
            "Usage: sluice [OPTION]... [COMMAND [ARG]...]\n"
            "Sluice %s: a Kafka produce proxy.\n"
            "\n"
            "  --config FILE   load the JSON configuration FILE first; flags "
            "override it\n"
            "  --help, -h      print this help and exit\n"
            "  --version       print the version and exit\n"
            "\n"
            "Commands:\n"
            "  config reference|dump        the key table (Markdown); the "
            "effective\n"
            "                               configuration (JSON, secrets "
            "redacted)\n"
            "  sluice policy check|explain|reference FILE ...   the policy "
            "file\n"
            "  sluice users add|delete|list FILE [USER]   SASL credentials "
            "(add reads\n"
            "                               the password from stdin)\n"
            "\n"
            "Configuration keys: each is a flag (--KEY=VALUE or --KEY VALUE) "
            "and a\nJSON key (dotted names are nested objects).\n\n",
            SL_VERSION);
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++) {
        const cfg_key *k = &keys[i];
        const char *r = range_text(range, sizeof(range), k, "|");

        flag_names(flags, sizeof(flags), k);
        fprintf(out, "  %s %s\n", flags, type_info[k->type].metavar);
        wrap(out, k->help, 6, 78);
        snprintf(more, sizeof(more), "[default: %s%s%s]",
                 default_text(def, sizeof(def), k), r[0] ? "; " : "", r);
        wrap(out, more, 6, 78);
    }
}

/* Markdown table cell text: '|' escaped. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void sl_config_print_markdown(FILE *out)
{
    char def[64], range[96];

    fputs("| Key | Flag | Type | Default | Range | Description |\n"
          "|---|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < SL_ARRAY_SIZE(keys); i++) {
        const cfg_key *k = &keys[i];

        fprintf(out, "| `%s` | ", k->name);
        if (k->short_flag)
            fprintf(out, "`-%c`, ", k->short_flag);
        fprintf(out, "`--%s`", k->name);
        if (k->alias != NULL)
            fprintf(out, ", `--%s`", k->alias);
        fprintf(out, " | %s | ", type_info[k->type].name);
        if (k->def_doc != NULL)
            md_cell(out, k->def_doc);
        else {
            fputc('`', out);
            md_cell(out, default_text(def, sizeof(def), k));
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, range_text(range, sizeof(range), k, ", "));
        fputs(" | ", out);
        md_cell(out, k->help);
        fputs(" |\n", out);
    }
}

/* ---- JSON dump ----------------------------------------------------------- */

static bool is_secret(const char *prop)
{
    for (size_t i = 0; i < SL_ARRAY_SIZE(secret_words); i++)
        if (strcasestr(prop, secret_words[i]) != NULL)
            return true;
    return false;
}

/* k's value as JSON; NULL if a string is not valid UTF-8. */
static json_t *value_json(const sl_config *c, const cfg_key *k)
{
    sl_config *rc = CFG_RO(c);
    json_t *o;

    switch (k->type) {
    case T_HOSTPORT:
    case T_PATH:
    case T_STRING:
    case T_BROKERS: {
        const char *s = *str_at(rc, k);
        if (s != NULL && (k->flags & KF_SECRET))
            return json_string("[redacted]");
        if (s == NULL && k->off == offsetof(sl_config, advertised_listener))
            s = c->listen; /* the address in effect */
        return s ? json_string(s) : json_null();
    }
    case T_INT:
        return json_integer(*int_at(rc, k));
    case T_CHOICE: {
        int64_t i = *int_at(rc, k);
        if (k->choices == bool_names)
            return json_boolean(i != 0);
        return json_string(k->choices[i]);
    }
    case T_PROPS:
        o = json_object();
        for (size_t i = 0; i < *nprops_at(rc, k); i++) {
            const sl_kv *kv = &(*props_at(rc, k))[i];
            json_t *v = json_string(is_secret(kv->key) ? "[redacted]"
                                                        : kv->value);
            if (v == NULL || json_object_set_new(o, kv->key, v) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    return NULL;
}

int sl_config_dump_json(const sl_config *c, FILE *out)
{
    json_t *root = json_object();
    int rc = 0;

    for (size_t i = 0; i < SL_ARRAY_SIZE(keys) && rc == 0; i++) {
        const cfg_key *k = &keys[i];
        const char *name = k->name, *dot;
        json_t *parent = root, *v;

        /* Walk or create the objects of the dotted name's groups. */
        while ((dot = strchr(name, '.')) != NULL) {
            char group[64];
            json_t *g;
            snprintf(group, sizeof(group), "%.*s", (int)(dot - name), name);
            if ((g = json_object_get(parent, group)) == NULL) {
                g = json_object();
                json_object_set_new(parent, group, g);
            }
            parent = g;
            name = dot + 1;
        }
        if ((v = value_json(c, k)) == NULL)
            rc = SL_E_INVALID;
        else
            json_object_set_new(parent, name, v);
    }
    if (rc == 0 && (json_dumpf(root, out, JSON_INDENT(2)) != 0 ||
                    fputc('\n', out) == EOF))
        rc = SL_E_IO;
    json_decref(root);
    return rc;
}

/* ---- host:port --------------------------------------------------------- */

static bool host_char(char ch, bool v6)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_')
        return true;
    return v6 && (ch == ':' || ch == '%');
}

int sl_config_split_hostport(const char *s, char *host_buf, size_t host_len,
                             int *port)
{
    const char *host, *host_end, *p;
    bool v6 = s != NULL && s[0] == '[';
    int v = 0, digits = 0;

    if (s == NULL)
        return SL_E_INVALID;
    if (v6) {
        host = s + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':' ||
            memchr(host, ':', (size_t)(host_end - host)) == NULL)
            return SL_E_INVALID;
        p = host_end + 2;
    } else {
        host = s;
        host_end = strrchr(s, ':');
        if (host_end == NULL)
            return SL_E_INVALID;
        p = host_end + 1;
    }
    if (host_end == host)
        return SL_E_INVALID;
    for (const char *h = host; h < host_end; h++)
        if (!host_char(*h, v6))
            return SL_E_INVALID;
    for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
        v = v * 10 + (*p - '0');
    if (*p != '\0' || digits == 0 || digits > 5 || v > 65535)
        return SL_E_INVALID;
    if (host_buf != NULL) {
        if ((size_t)(host_end - host) >= host_len)
            return SL_E_TOO_LARGE;
        memcpy(host_buf, host, (size_t)(host_end - host));
        host_buf[host_end - host] = '\0';
    }
    if (port != NULL)
        *port = v;
    return 0;
}
