/*
 * Daemon configuration: one JSON file (read with jansson), command-line
 * flags overriding it. Every key lives in ONE table (proxy/config.c:
 * name, type, default, bounds, help); the parser, `sluice --help` and the
 * README's table are generated from it.
 *
 * JSON shape (dotted table names map to nested objects):
 *   {
 *     "listen": "127.0.0.1:9092",
 *     "advertised_listener": "127.0.0.1:9092",     (default: listen)
 *     "node_id": 0,
 *     "broker_port_base": 0,                        (-1: one broker only)
 *     "log_level": "info",
 *     "upstream": {
 *       "bootstrap_servers": "broker1:9092,broker2:9092" | "mock:3",
 *       "message_timeout_ms": 20000,
 *       "properties": { "<any librdkafka property>": "value", ... }
 *     },
 *     "metadata": { "refresh_ms": 30000, "max_age_ms": 300000 },
 *     "limits": {
 *       "max_request_bytes": 104857600, "max_connections": 10000,
 *       "max_inflight_requests": 32, "max_inflight_bytes": 67108864,
 *       "memory_budget_bytes": 1073741824, "max_decompressed_bytes": ...
 *     },
 *     "shutdown_timeout_ms": 10000
 *   }
 * Flags: --<dotted.name>=VALUE or --<dotted.name> VALUE for every table
 * key, aliases --listen, --upstream (= upstream.bootstrap_servers),
 * --config FILE, -X prop=value (an upstream librdkafka property),
 * --help, --version.
 *
 * Errors name the file, line and key and say what was expected, e.g.
 *   sluice.json:7: limits.max_connections: expected an integer in
 *   1..1000000, got "many"
 * Thread: main thread, before the loop starts.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdio.h>

#include "sluice/common.h"

typedef struct sl_kv {
    char *key;
    char *value;
} sl_kv;

/* A listener's security, named as Kafka's security.protocol. */
typedef enum sl_security_protocol {
    SL_PROTO_PLAINTEXT,
    SL_PROTO_SASL_PLAINTEXT,
    SL_PROTO_SSL,
    SL_PROTO_SASL_SSL,
} sl_security_protocol;

/* "PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL". */
const char *sl_security_protocol_name(sl_security_protocol p);
#define SL_PROTO_IS_SASL(p) ((p) == SL_PROTO_SASL_PLAINTEXT || \
                             (p) == SL_PROTO_SASL_SSL)
#define SL_PROTO_IS_TLS(p) ((p) == SL_PROTO_SSL || (p) == SL_PROTO_SASL_SSL)

typedef enum sl_tls_client_auth {
    SL_TLS_CLIENT_AUTH_NONE,
    SL_TLS_CLIENT_AUTH_REQUESTED,
    SL_TLS_CLIENT_AUTH_REQUIRED,
} sl_tls_client_auth;

typedef struct sl_config {
    char *listen;              /* "host:port" */
    char *advertised_listener; /* "host:port"; NULL = same as listen */
    int64_t node_id;
    int64_t broker_port_base;  /* -1 = one listener; 0 = free ports */
    int64_t log_level;         /* sl_log_level */

    char *upstream_bootstrap;  /* "mock:N" starts N in-process brokers */
    int64_t upstream_message_timeout_ms;
    sl_kv *upstream_props;     /* passed through to librdkafka, in order */
    size_t n_upstream_props;

    int64_t metadata_refresh_ms;
    int64_t metadata_max_age_ms;
    int64_t metadata_list_max_age_ms; /* all-topics answers */

    int64_t max_request_bytes;
    int64_t max_connections;
    int64_t max_inflight_requests; /* per connection */
    int64_t max_inflight_bytes;    /* per connection */
    int64_t memory_budget_bytes;   /* all connections */
    int64_t max_decompressed_bytes; /* per request, all batches */
    int64_t max_producer_states;    /* idempotence entries */
    int64_t connections_max_idle_ms;  /* 0: never closed for idling */
    int64_t request_read_timeout_ms;  /* 0: no limit on a partial request */
    int64_t max_connections_per_ip;   /* 0: no per-address limit */
    char *max_connections_per_ip_overrides; /* "ip:n,..." or NULL */

    int64_t shutdown_timeout_ms;

    char *policy_file; /* NULL = no policy: nobody is throttled */
    char *http_listen;      /* "host:port"; NULL = no HTTP listener */
    char *http_admin_token; /* NULL = mutating admin calls disabled */
    char *http_tls_cert_file; /* NULL = plain HTTP */
    char *http_tls_key_file;

    /* Security (proxy/tls.c, proxy/sasl_api.c). */
    int64_t listen_protocol;   /* sl_security_protocol of listen */
    char *tls_listen;          /* NULL = no TLS listener */
    char *tls_advertised_listener;
    int64_t tls_broker_port_base; /* per-broker TLS listeners, as above */
    int64_t tls_protocol;      /* SL_PROTO_SSL or SL_PROTO_SASL_SSL */
    char *tls_cert_file;
    char *tls_key_file;
    char *tls_key_password;
    char *tls_ca_file;         /* client certificates' CA; NULL = none */
    int64_t tls_client_auth;   /* sl_tls_client_auth */
    int64_t tls_min_version;   /* 0: TLS 1.2, 1: TLS 1.3 */
    char *tls_ciphers;         /* TLS 1.2 cipher list; NULL = OpenSSL's */
    char *tls_ciphersuites;    /* TLS 1.3 suites; NULL = OpenSSL's */
    char *tls_principal_mapping_rules;
    char *sasl_mechanisms;     /* "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN" */
    char *sasl_credentials_file;
    int64_t sasl_session_lifetime_ms; /* 0: sessions do not expire */
    int64_t sasl_failed_authentication_delay_ms;
    int64_t require_principal; /* bool: unauthenticated clients refused */

    char *config_path; /* the file loaded, or NULL */
} sl_config;

/* Sets every key to its table default. */
void sl_config_defaults(sl_config *c);

/* Loads a JSON file over the current values. On error returns SL_E_CONFIG
 * and writes "file:line: key: message" to err (err_len bytes). Unknown keys
 * are errors (a typo must not silently fall back to a default). On error
 * c is left unchanged; on success c->config_path is path. */
int sl_config_load_file(sl_config *c, const char *path, char *err,
                        size_t err_len);

/* Parses argv: first finds --config and loads that file, then applies the
 * flags over it (flags win). Returns 0 to run, 1 if --help/--version was
 * printed (exit 0), or SL_E_CONFIG with err filled (exit 2). Positional
 * arguments: on return *argi is the index of the first unparsed one
 * (argc if none), for subcommands; "--" ends the flags. *argi is set only
 * when 0 is returned, and on error c is left unchanged. */
int sl_config_parse_args(sl_config *c, int argc, char **argv, int *argi,
                         char *err, size_t err_len);

/* Prints the usage text generated from the table. */
void sl_config_usage(FILE *out);

/* Splits "host:port" / "[v6]:port"; host is written into host_buf.
 * host_buf and port may be NULL to only validate. Returns SL_E_INVALID for
 * a malformed string, SL_E_TOO_LARGE if the host does not fit host_len. */
int sl_config_split_hostport(const char *s, char *host_buf, size_t host_len,
                             int *port);

void sl_config_free(sl_config *c);

/* Prints the key table as a Markdown table (key, flag, type, default,
 * range, description) for the README. */
void sl_config_print_markdown(FILE *out);

/* Prints the effective configuration as JSON in the config file's shape
 * (it loads back as a config file). advertised_listener shows the address
 * in effect (listen's when unset). Values of upstream properties whose
 * name contains "password", "secret", "sasl", "ssl.key" or "ssl_key" are
 * printed as "[redacted]". Returns 0, SL_E_INVALID if a string is not
 * UTF-8, or SL_E_IO if writing fails. */
int sl_config_dump_json(const sl_config *c, FILE *out);

#endif
