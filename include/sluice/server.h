/*
 * The daemon: one libuv loop thread owns the listener, every client
 * connection, every in-flight request, the metadata cache and the
 * idempotence table. librdkafka's threads never touch them: delivery
 * reports come back through the upstream's event queue, which wakes the
 * loop through an fd (rd_kafka_queue_io_event_enable + uv_poll), and
 * blocking metadata calls run on libuv's thread pool and hand their
 * result back in the after-work callback (loop thread).
 */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <uv.h>
#include <librdkafka/rdkafka.h>

#include "sluice/config.h"
#include "sluice/events.h"
#include "sluice/idem.h"
#include "sluice/ipcount.h"
#include "sluice/kafka.h"
#include "sluice/metrics.h"
#include "sluice/policy.h"

typedef struct sl_server sl_server;
typedef struct sl_conn sl_conn;
typedef struct sl_req sl_req;
typedef struct sl_upstream sl_upstream;
typedef struct sl_metacache sl_metacache;
typedef struct sl_produce sl_produce;

/* ---- read slabs -------------------------------------------------------
 * Reads land in a heap buffer; every request frame that lies wholly in it
 * (and is not tiny) is dispatched in place, with a reference, instead of
 * being copied out. A slab some request still references is "pinned": the
 * next read gets a fresh one, and the pinned slab's bytes that are no
 * frame's are charged to the memory budget until its last request goes.
 * Loop thread only. */
typedef struct sl_slab {
    size_t refs;     /* requests whose frame points into data */
    size_t framed;   /* bytes of those frames */
    size_t extra;    /* charged to the memory budget while pinned */
    size_t size;
    uint8_t data[];
} sl_slab;

/* ---- requests ---------------------------------------------------------
 * One client request from frame to answer. Owned by its connection's
 * ordered queue until answered and written; when the connection closes
 * first, the request is orphaned (conn = NULL) and frees itself once the
 * upstream has settled every record that points into its frame. */
struct sl_req {
    sl_server *srv;
    sl_conn *conn;      /* NULL once the connection is gone */
    sl_req *next;       /* connection's response queue, in request order */
    uint8_t *frame;     /* request bytes after the size field; owned,
                           or inside slab when slab is not NULL */
    sl_slab *slab;      /* one reference held, or NULL */
    size_t frame_len;
    sl_kafka_req_hdr hdr;
    size_t mem;         /* bytes charged to the memory budget */
    bool answered;      /* resp holds the full response frame */
    bool close_after;   /* disconnect after this answer (protocol error) */
    uint8_t *resp;      /* response frame; owned until handed to a write */
    size_t resp_len;
    sl_produce *produce; /* Produce state while upstream work is pending */
    void *wait;          /* Metadata waiting for a topic lookup */
    uint64_t start_ms;
};

/* Attaches a finished response (owned by the request from now on; NULL
 * for no answer, as for acks=0) and writes every answered request at the
 * head of the connection's queue. An orphaned request is freed. */
void sl__req_answer(sl_req *req, uint8_t *resp, size_t resp_len);
/* Frees a request that is not in any queue and has no upstream work. */
void sl__req_free(sl_server *srv, sl_req *req);

/* ---- listeners -------------------------------------------------------- */
/* The bootstrap listener (broker -1), and one per upstream broker when
 * broker_port_base >= 0: Metadata answers advertise each upstream broker as
 * Sluice's listener for it, so a client's connection carries only the
 * partitions that broker leads. Any listener serves every request.
 *
 * Listeners come in families, one per security protocol configured (the
 * plaintext listen address, and tls.listen): a Metadata answer advertises
 * the family of the connection that asked, as a broker answers with the
 * endpoints of the listener a client connected to. */
typedef struct sl_family sl_family;
typedef struct sl_listener {
    uv_tcp_t tcp;
    sl_server *srv;
    sl_family *fam;
    int32_t broker;  /* upstream broker id, -1 for the bootstrap listener */
    int port;        /* bound port */
    bool open;
    bool pending;    /* a connection waits in the backlog (max_connections) */
} sl_listener;

struct sl_family {
    sl_security_protocol proto;
    bool enabled;
    const char *listen;       /* config's address text */
    sl_listener listener;     /* bootstrap */
    struct sockaddr_storage listen_addr; /* its address (port replaced) */
    sl_listener **blisten;    /* per upstream broker, owned */
    size_t n_blisten;
    int64_t port_base;        /* broker listeners: -1 none, 0 free ports */
    char adv_host[256];
    int adv_port;
    int listen_port;          /* the bound port (listen may say 0) */
};

#define SL_N_FAMILIES 2 /* plaintext, TLS */

/* Opens listeners for upstream brokers not seen before (loop thread). */
void sl__server_broker_listeners(sl_server *srv, const int32_t *ids, size_t n);
/* The listener of family fam standing for upstream broker id, or NULL. */
sl_listener *sl__server_broker_listener(sl_family *fam, int32_t id);

/* ---- connections ------------------------------------------------------ */
struct sl_conn {
    uv_tcp_t tcp;
    sl_server *srv;
    sl_conn *prev, *next; /* server's list */
    uint64_t id;
    int32_t broker;       /* the listener's upstream broker; -1 bootstrap */
    sl_family *fam;       /* the listener's family (security protocol) */
    /* Security (proxy/security.c): the TLS end on TLS listeners; the SASL
     * state on SASL listeners; the authenticated principal ("User:alice",
     * from SASL or a verified client certificate; NULL: anonymous). */
    struct sl_tls_conn *tls;
    bool tls_up;          /* handshake done and the principal looked at */
    struct sl_auth *auth;
    char *principal;
    char peer[64];        /* "ip:port" for logs */
    char client_id[64];   /* last client.id seen, for logs (truncated) */
    struct sockaddr_storage peer_addr;
    /* Policy (proxy/quota.c): the account this connection is charged to,
     * resolved from its client.id and address; re-resolved when the
     * client.id changes and on every policy reload. */
    char *policy_cid;       /* full client.id the account was resolved for */
    bool policy_resolved;
    sl_policy_account *acct; /* one reference held; NULL if refused/none */
    const sl_policy_connector *connector; /* NULL for defaults */
    char *refused;          /* refusal message, or NULL */
    struct sl_mute *mute;   /* throttle timer, created on first use */
    /* Shadow mode: throttles that would have applied since the last
     * report line (reported at most every SHADOW_REPORT_MS). */
    uint64_t shadow_events, shadow_ms, shadow_reported_ms;
    bool muted;
    bool muted_by_pressure; /* the mute is a pressure throttle: lifted
                               early when the controller raises the rate */
    /* Guards (limits.*): the address counted in srv->ipcount; when bytes
     * last arrived; when the request being read began (0: none, or
     * restarted when reading resumes after Sluice paused it). */
    sl_ipaddr ip;
    bool ip_counted;
    uint64_t last_rx_ms;
    uint64_t frame_start_ms;
    /* Frame assembly: hdr_buf holds a partial size field; frame is the
     * frame being filled (frame_got of frame_len bytes). */
    uint8_t size_buf[4];
    size_t size_got;
    uint8_t *frame;
    size_t frame_len;
    size_t frame_got;
    /* Response queue, in request order. */
    sl_req *q_head, *q_tail;
    size_t inflight_reqs;  /* queued + acks=0 still upstream */
    size_t inflight_bytes; /* frame + decompressed bytes of those */
    size_t writes_pending; /* answers queued or being written */
    /* Answers ready to write, flushed together once per loop iteration
     * (one uv_write per connection instead of one per answer). */
    uint8_t **out_data;
    size_t *out_len;
    size_t n_out, cap_out;
    sl_conn *dirty_next;   /* server's list of connections with output */
    bool dirty;
    bool reading;
    bool closing;
    bool close_when_written; /* an answer that ends the connection */
    bool unserved_logged;
};

void sl__conn_accept(sl_server *srv, sl_listener *l);
/* Writes every queued answer (check phase, once per loop iteration). */
void sl__conn_flush_all(sl_server *srv);
/* Re-evaluates whether the connection may read (limits, budget, shutdown)
 * and starts or stops reading accordingly. */
void sl__conn_update_reading(sl_conn *c);
void sl__conn_close(sl_conn *c, const char *why);
/* Closes connections idle past limits.connections_max_idle_ms and those
 * whose request has been arriving for longer than
 * limits.request_read_timeout_ms (the server's 1 s tick). */
void sl__conn_sweep(sl_server *srv, uint64_t now_ms);
/* Stops reading the connection for ms milliseconds (a throttle): what was
 * already read is still answered; the next request waits. */
void sl__conn_mute(sl_conn *c, uint32_t ms);

/* ---- security (proxy/security.c, proxy/sasl_api.c) --------------------- */
/* Reasons a login or a TLS handshake failed, counted for metrics. */
#define SL_AUTH_FAILURE_MAP(X)                                            \
    X(TLS_HANDSHAKE, "tls_handshake")                                     \
    X(TLS_PRINCIPAL, "tls_principal")                                     \
    X(CREDENTIALS, "credentials")                                         \
    X(MECHANISM, "mechanism")                                             \
    X(UNAUTHENTICATED_REQUEST, "unauthenticated_request")                 \
    X(SESSION_EXPIRED, "session_expired")                                 \
    X(ILLEGAL_STATE, "illegal_state")
#define SL__AF_ENUM(n, s) SL_AUTH_FAIL_##n,
enum { SL_AUTH_FAILURE_MAP(SL__AF_ENUM) SL_AUTH_FAIL__COUNT };
#undef SL__AF_ENUM
extern const char *const sl_auth_failure_names[SL_AUTH_FAIL__COUNT];

/* Credentials shared by the exchanges in progress (a reload replaces them
 * for new logins; the old ones go with their last exchange). */
typedef struct sl_creds_ref {
    struct sl_sasl_creds *creds;
    size_t refs;
} sl_creds_ref;
/* Drops one reference (NULL is ignored); the last frees the credentials. */
void sl__creds_unref(sl_creds_ref *r);

typedef struct sl_security {
    struct sl_tls_ctx *tls;   /* for new TLS connections; NULL without */
    sl_creds_ref *creds;      /* for new logins; NULL without SASL */
    unsigned mechs;           /* enabled: bit per sl_sasl_mech */
    uv_fs_poll_t watch[3];    /* tls cert, tls key, credentials */
    bool watching[3];
    uint64_t tls_handshakes;
    uint64_t logins[4];       /* per sl_sasl_mech (re-logins included) */
    uint64_t failures[SL_AUTH_FAIL__COUNT];
    uint64_t reload_failures;
} sl_security;

/* Builds the TLS context when tls.listen is set, and the SASL credentials
 * when a SASL listener is configured. Returns 0 or SL_E_CONFIG (err). */
int sl__security_init(sl_server *srv, char *err, size_t errlen);
/* SIGHUP and file changes: reloads certificate, key and credentials; a
 * failure keeps the running ones. */
void sl__security_reload(sl_server *srv, const char *why);
void sl__security_close(sl_server *srv);
void sl__security_free(sl_server *srv);
/* A new connection on a TLS or SASL listener. */
void sl__security_conn_init(sl_conn *c);
void sl__security_conn_free(sl_conn *c);
/* The TLS handshake completed: looks at the client certificate. Returns
 * false if the connection must close (why filled). */
bool sl__security_tls_up(sl_conn *c, char *why, size_t whylen);
/* Before the header is decoded: true if the next frame is a bare SASL
 * token (after a v0 handshake), which sl__sasl_raw_token answers. */
bool sl__sasl_expects_raw(const sl_conn *c);
void sl__sasl_raw_token(sl_conn *c, sl_req *req);
/* With the header decoded: false if the request may not be served yet
 * (before login, or after the session expired); the connection is then
 * closed, as a broker closes it. */
bool sl__sasl_gate(sl_conn *c, sl_req *req);
void sl__sasl_handshake(sl_conn *c, sl_req *req);
void sl__sasl_authenticate(sl_conn *c, sl_req *req);
/* SASL state of a connection on a SASL listener (sasl_api.c). */
void sl__auth_init(sl_conn *c);
void sl__auth_free(sl_conn *c);
/* The principal changed (login): policy identity is resolved again. */
void sl__quota_principal_changed(sl_conn *c);

/* ---- policy glue (proxy/quota.c) ---------------------------------------- */
/* Loads the policy file if configured and starts watching it (SIGHUP and
 * file changes reload it). Loop thread. */
int sl__quota_init(sl_server *srv, char *err, size_t errlen);
/* Reloads now; an invalid file keeps the running policy. Returns 0 or
 * SL_E_CONFIG. */
int sl__quota_reload(sl_server *srv, const char *why);
void sl__quota_close(sl_server *srv);
void sl__quota_free(sl_server *srv);
/* Called for every request: (re)resolves the account if client_id
 * changed. */
void sl__quota_identify(sl_conn *c, sl_kstr client_id);
void sl__quota_conn_release(sl_conn *c);
/* Topic allow-list of the connection's connector. */
bool sl__quota_topic_allowed(sl_conn *c, sl_kstr topic);
/* Charges an admitted Produce (per the upstream broker leading each
 * partition: per, n entries) and mutes the connection if enforced.
 * Returns the throttle_time_ms to put in the answer (0 in shadow mode). */
uint32_t sl__quota_charge(sl_conn *c, uint64_t bytes, uint64_t records,
                          const sl_policy_broker_bytes *per, size_t n);
/* True if an operator paused the connection's connector (and the policy
 * enforces for it): its Produce requests are held, not forwarded. */
bool sl__quota_held(sl_conn *c);
int64_t sl__now_us(void);

/* ---- produce ----------------------------------------------------------- */
/* Handles a Produce request whose header is decoded. Takes ownership of
 * req (answers it now or after the upstream settles its records). */
void sl__produce_handle(sl_server *srv, sl_req *req);
/* The opaque of every record Sluice hands to librdkafka: its partition
 * of a client request (which owns the array) and its place in the client's
 * batch. */
typedef struct sl_pmsg {
    void *part;
    int32_t index;
} sl_pmsg;

/* What Sluice charges to the memory budget per record handed to
 * librdkafka besides its bytes, which stay in the request frame: the
 * rd_kafka_msg_t librdkafka allocates (about 200 bytes in 2.0), and the
 * sl_pmsg. Headers are charged by their wire size on top. */
#define SL_UPSTREAM_MSG_OVERHEAD 256

/* Upstream delivery report for one record (loop thread). opaque is the
 * record's sl_pmsg; status its rd_kafka_msg_status_t. */
void sl__produce_delivered(sl_server *srv, void *opaque, rd_kafka_resp_err_t err,
                           int64_t offset, int status);
/* Maps a librdkafka error to the Kafka error a client should see. */
int16_t sl__produce_map_error(rd_kafka_resp_err_t err);

/* ---- metadata cache --------------------------------------------------- */
typedef struct sl_topic {
    char *name;
    size_t name_len;
    int16_t error;        /* upstream topic error (0 = fine) */
    int32_t n_partitions;
    int32_t *leaders;     /* upstream leader broker id per partition */
    rd_kafka_topic_t *rkt; /* upstream handle, created when first produced */
    /* Per partition, whether the upstream producer's first write to it
     * has been acknowledged (see produce.c, "priming"); n_prime entries.
     * Owned by produce.c, freed with the topic. */
    struct sl_prime *prime;
    int32_t n_prime;
    /* What the topic's configs make a broker refuse, once read
     * (DescribeConfigs when first produced to, then at each full metadata
     * refresh): record timestamps outside [now - before, now + after]
     * unless it stamps LogAppendTime, and batches over max.message.bytes. */
    bool cfg_known;
    bool cfg_inflight;
    bool log_append_time;
    int64_t ts_before_max_ms; /* INT64_MAX: unbounded */
    int64_t ts_after_max_ms;
    int64_t max_message_bytes;
    uint64_t updated_ms;
    bool exists;
    bool lookup_inflight; /* a Produce-triggered lookup is running */
} sl_topic;

sl_metacache *sl__metacache_new(sl_server *srv);
void sl__metacache_free(sl_metacache *mc);
/* Cached topic or NULL (loop thread). Never blocks. */
sl_topic *sl__metacache_get(sl_metacache *mc, const char *name, size_t len);
/* Looks up topics upstream on the thread pool, then calls cb on the loop
 * thread. allow_create: ask the cluster to auto-create missing topics (its
 * own auto.create.topics.enable rule still applies). */
typedef void (*sl_metacache_cb)(sl_server *srv, void *arg);
void sl__metacache_lookup(sl_metacache *mc, char **names, size_t n,
                          bool allow_create, sl_metacache_cb cb, void *arg);
/* Lists every topic upstream again, or joins the listing in flight; cb
 * runs when it completes (loop thread). */
void sl__metacache_list(sl_metacache *mc, sl_metacache_cb cb, void *arg);
/* A Produce named a topic the cache does not know (or knew as missing
 * long enough ago): look it up without creating it, so the client's retry
 * finds it. At most one such lookup per topic at a time. */
void sl__metacache_want(sl_metacache *mc, const char *name, size_t len);
/* Reads the topic's configs (see sl_topic) in the background. */
void sl__metacache_want_configs(sl_metacache *mc, sl_topic *t);
/* Every known topic, for Metadata requests asking for all. */
sl_topic **sl__metacache_all(sl_metacache *mc, size_t *n);
const char *sl__metacache_cluster_id(sl_metacache *mc);
bool sl__metacache_fresh(sl_metacache *mc);
void sl__metacache_refresh_now(sl_metacache *mc);
void sl__metacache_stop(sl_metacache *mc);
/* Metadata request handling (conn.c dispatches here). */
void sl__metadata_handle(sl_server *srv, sl_req *req);

/* ---- upstream ---------------------------------------------------------- */
/* What Sluice sees of one upstream broker (loop thread). Latency is from
 * hand-off to librdkafka until the delivery report, attributed to the
 * broker that answered; in-flight records to the partition leader at
 * hand-off. Broker-returned throttle and round-trip time come from
 * librdkafka's statistics (every second). */
typedef struct sl_broker_stats {
    int32_t id;
    char name[96];             /* "host:port" from the statistics */
    sl_hist latency;           /* microseconds */
    uint64_t delivered;
    uint64_t failed;
    int64_t inflight;          /* records handed over, not settled */
    double throttle_ms_total;  /* broker-returned throttle_time_ms, summed */
    double rtt_p99_ms;         /* librdkafka's window statistics: */
    double queue_p99_ms;       /* int_latency: time in librdkafka's queue */
    int64_t requests_inflight; /* waitresp_cnt: requests awaiting answer */
    /* Pressure signals (proxy/quota.c reads them every interval): */
    sl_hist tick_snap;         /* latency at the previous interval */
    uint64_t busy_since_ms;    /* inflight went from 0 to 1 */
    uint64_t last_dr_ms;       /* latest delivery report */
    uint32_t tick_throttle_ms; /* largest broker throttle this interval */
    uint64_t tick_acked_bytes; /* key + value bytes acknowledged */
} sl_broker_stats;

struct sl_upstream {
    sl_server *srv;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int pipe_fds[2];
    uv_poll_t poll;
    void *mock_rk;            /* handle owning an embedded mock cluster */
    void *mock_cluster;       /* rd_kafka_mock_cluster_t, if embedded */
    char *bootstrap;          /* effective bootstrap servers */
    size_t outstanding;       /* records handed to librdkafka, not settled */
    size_t max_msg_bytes;     /* librdkafka message.max.bytes */
    sl_broker_stats *brokers; /* by id, unordered */
    size_t n_brokers;
    bool fatal;               /* producer hit a fatal error */
};

int sl__upstream_init(sl_upstream *up, sl_server *srv, char *err, size_t errlen);
/* Creates (or returns) the topic handle for a cached topic. */
rd_kafka_topic_t *sl__upstream_topic(sl_upstream *up, sl_topic *t);
/* Stats of broker id (created on first use; id -1 gathers what has no
 * known broker). The pointer is stable until sl__upstream_destroy. */
sl_broker_stats *sl__upstream_broker(sl_upstream *up, int32_t id);
/* Fails everything still queued upstream (shutdown deadline). */
void sl__upstream_purge(sl_upstream *up);
void sl__upstream_close(sl_upstream *up);
void sl__upstream_destroy(sl_upstream *up);

/* ---- operator surface (proxy/admin.c) -------------------------------- */
#define SL_MAX_ERROR_SERIES 1024
typedef struct sl_err_count {
    char connector[128];
    char klass[64];
    int16_t code;
    uint64_t count;
} sl_err_count;
int sl__admin_start(sl_server *srv, char *err, size_t errlen);
void sl__admin_close(sl_server *srv);
/* Counts a partition answered with a Kafka error, for metrics. */
void sl__admin_count_error(sl_server *srv, const char *connector,
                           const char *klass, int16_t code);

/* ---- server ------------------------------------------------------------ */
struct sl_server {
    uv_loop_t *loop;
    sl_config *cfg;
    sl_family fam[SL_N_FAMILIES]; /* [0] plaintext, [1] TLS */
    sl_security sec;
    uv_signal_t sig_term, sig_int;
    uv_timer_t shutdown_timer;
    uv_timer_t tick;          /* housekeeping: idem expiry, metadata */
    uv_check_t flush;         /* writes queued answers after each poll */
    sl_conn *dirty;           /* connections with queued answers */
    sl_slab *rslab;           /* the next read's buffer (not pinned) */
    sl_conn *conns;
    size_t n_conns;
    uint64_t next_conn_id;
    size_t mem_used;          /* bytes of all in-flight requests */
    size_t idem_charged;      /* of them, the idempotence table's */
    bool mem_paused;          /* over the memory budget: nobody reads */
    bool accept_paused;       /* at max_connections */
    bool shutting_down;
    bool purged;              /* shutdown deadline passed */
    bool finished;            /* everything closed or closing */
    uint64_t last_refresh_ms; /* last periodic metadata refresh */
    sl_upstream up;
    sl_metacache *meta;
    sl_idem *idem;
    uint64_t start_ms;
    /* Policy: NULL when no policy file is configured. */
    sl_policy *policy;
    sl_policy_state *pstate;
    uv_signal_t sig_hup;
    uv_fs_poll_t policy_poll;
    bool policy_watching;
    uv_timer_t pressure_timer; /* controller steps (proxy/quota.c) */
    uint64_t policy_generation;
    uint64_t policy_reload_failures;
    struct sl_http_server *http; /* operator surface, or NULL */
    sl_err_count *errors;        /* Kafka errors by connector/class/code */
    size_t errors_n;
    uint64_t start_ns;           /* uv_hrtime at start */
    sl_events events;            /* recent, for /v1/status */
    sl_ipcount *ipcount;         /* connections per client address */
    sl_iplimits iplimits;        /* limits.max_connections_per_ip_overrides */
};

int sl_server_run(sl_config *cfg);
uint64_t sl__now_ms(sl_server *srv);
/* Records an event for the status page's timeline (sluice/events.h),
 * stamped with the wall clock. Loop thread. */
void sl__event(sl_server *srv, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Memory accounting for the global budget (loop thread). */
void sl__mem_charge(sl_server *srv, size_t n);
void sl__mem_release(sl_server *srv, size_t n);
void sl__idem_account(sl_server *srv);
/* Called when in-flight work finished: completes shutdown when idle. */
void sl__server_maybe_finish(sl_server *srv);

#endif
