/*
 * loadgen: a Kafka produce load generator that speaks the protocol itself
 * (no librdkafka), so that its own cost per record is small and constant
 * and the same on the direct path and through Sluice.
 *
 *   loadgen --bootstrap HOST:PORT[,...] --topic T [options]
 *
 * Setup (blocking, main thread): a Metadata request (v1 by default) to the
 * bootstrap learns the partitions and their leaders. Connection i produces
 * to partition i mod P, connected to that partition's leader: directly to
 * the right mock broker, or to Sluice, which leads every partition.
 *
 * Every request is pre-built once (sluice/kafka.h encoders, sluice/record.h
 * batch builder): a shared, immutable body per partition (acks, timeout,
 * topic, partition, RecordBatch v2 with CRC, compressed once) and, per
 * in-flight slot, a 12-byte-plus-client-id header in which only the
 * correlation id is patched before each send. Sending a request is one
 * uv_write of two buffers; an acknowledgement is one small decode. Nothing
 * is allocated per request.
 *
 * Latency: nanoseconds from the uv_write call to the parsed response (for
 * acks=0, to the write callback), recorded into a log-linear histogram
 * (hist.h) when the response arrives inside the measurement window
 * [warm-up, warm-up + duration]. Throughput counts the records
 * acknowledged without error inside the same window. In paced mode
 * (--rate) each connection sends on its own schedule; a request sent more
 * than 1 ms after its due time counts as "late" (the generator or the
 * path could not keep up; latency then is measured from the actual send,
 * not the due time, so the "late" count must be 0 for a clean result).
 *
 * Idle connections (--idle K): K more connections that send one
 * ApiVersions request, read the answer and then stay open and silent, all
 * established before the load starts (the 10,000-idle-connection case).
 *
 * Threads (-t): connections are dealt round-robin to threads, each with
 * its own libuv loop and statistics, merged at the end.
 *
 * Output: one JSON line on stdout. Diagnostics on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "sluice/kafka.h"
#include "sluice/record.h"
#include "sluice/tls.h"

#include "hist.h"

#define MAX_ERR_CODE 128 /* per-code counters; larger codes go to "other" */
#define IDLE_WAVE 256    /* idle connections being set up at once */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- options ------------------------------------------------------- */

typedef struct lg_opts {
    const char *bootstrap;
    const char *topic;
    const char *client_id; /* "{i}" is replaced by the connection index */
    const char *label;
    int conns;
    int threads;
    int record_size; /* value bytes */
    int key_size;    /* 0 = null key */
    int batch;       /* records per request (one batch) */
    int codec;
    int acks;
    int inflight; /* max requests in flight per connection */
    int produce_version;
    int metadata_version;
    int partitions; /* use the first P partitions; 0 = all */
    double rate;    /* records/s over all connections; 0 = open throttle */
    double duration_s, warmup_s, drain_s, connect_timeout_s;
    long long records; /* fixed-count mode: total records; 0 = timed */
    int idle;
    int timeout_ms; /* Produce timeout field */
    bool quickack;  /* TCP_QUICKACK after every read (see usage) */
    bool self_test;
    const char *connect; /* producing connections go here, not to leaders */
    bool tls;            /* speak TLS on producing connections */
    const char *tls_ca;  /* verify the server against this CA */
} lg_opts;

static lg_opts O = {
    .topic = "bench",
    .client_id = "sluice-bench",
    .label = "",
    .conns = 1,
    .threads = 1,
    .record_size = 100,
    .batch = 100,
    .codec = SL_CODEC_NONE,
    .acks = -1,
    .inflight = 8,
    .produce_version = 7,
    .metadata_version = 1,
    .duration_s = 10,
    .warmup_s = 2,
    .drain_s = 10,
    .connect_timeout_s = 60,
    .timeout_ms = 30000,
};

/* ---- plan: partitions, leaders, pre-built bodies -------------------- */

typedef struct lg_body {
    int32_t partition;
    struct sockaddr_storage addr; /* the partition leader */
    uint8_t *buf;                 /* request bytes after the header */
    size_t len;
} lg_body;

static lg_body *bodies;
static int n_bodies;
static struct sockaddr_storage bootstrap_addr;
static struct sockaddr_storage connect_addr; /* --connect */
static sl_tls_ctx *tls_ctx;                 /* --tls */
static size_t raw_records_len, batch_wire_len; /* for the compression ratio */

/* ---- connections and threads --------------------------------------- */

struct lg_thread;

typedef struct lg_slot {
    uv_write_t w;
    struct lg_conn *c;
    uint64_t t_send; /* when uv_write was called */
    uint64_t t_due;  /* when the pacing schedule wanted it sent */
    bool write_done;
    uint8_t *hdr; /* this slot's copy of the header template */
    uint8_t *cipher; /* TLS: the encrypted request being written */
} lg_slot;

typedef struct lg_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t iw; /* the ApiVersions write of an idle connection */
    struct lg_thread *th;
    int idx;
    bool idle;     /* an idle (ApiVersions-only) connection */
    bool ready;    /* idle: its ApiVersions answer arrived */
    bool open;     /* connected and not closed by the peer */
    bool failed;
    const lg_body *body;
    size_t hdr_len;
    lg_slot *slots;
    uint32_t nslots;
    uint64_t sent, acked; /* requests; corr id = (int32_t)sent */
    long long budget;     /* requests left in fixed-count mode, -1 = no cap */
    uint64_t next_due, interval; /* pacing, ns */
    uint8_t *rbuf;
    size_t rlen, rcap;
    sl_tls_conn *tls;  /* --tls: the client end (sluice/tls.h) */
    bool tls_ready;    /* handshake done: counted as connected */
} lg_conn;

typedef struct lg_stats {
    sl_bench_hist hist;     /* from the actual send */
    sl_bench_hist hist_due; /* paced mode: from the due time (no coordinated omission) */
    uint64_t records_ok, requests_ok, payload_bytes, wire_bytes;
    uint64_t errors, err_codes[MAX_ERR_CODE + 1];
    uint64_t conn_errors, late, protocol_errors;
    uint64_t first_ack, last_ack; /* ns, fixed-count mode */
} lg_stats;

typedef struct lg_thread {
    int id;
    pthread_t tid;
    uv_loop_t loop;
    uv_timer_t deadline;
    uv_poll_t tick; /* a timerfd: libuv timers only have 1 ms resolution */
    int tfd;
    lg_conn **conns;
    int n_conns;
    lg_conn *idle; /* thread 0 only */
    int n_idle, idle_next, idle_pending, idle_ready, idle_failed, idle_closed;
    int connected, connect_failed;
    bool running, stopping, closed;
    uint64_t t0, t_meas, t_end, t_drain;
    lg_stats st;
} lg_thread;

static lg_thread *threads;
static pthread_barrier_t barrier;
static uint64_t shared_t0;
static uint8_t apiversions_req[64];
static size_t apiversions_req_len;

/* --watch-pid: CPU time (utime + stime from /proc/<pid>/stat) of other
 * processes (Sluice, the mock) sampled by thread 0 exactly at the start
 * and the end of the measurement window, so CPU per byte uses the same
 * window as the byte count. */
#define MAX_WATCH 8
static int n_watch;
static int watch_pid[MAX_WATCH];
static double watch_cpu[2][MAX_WATCH], self_cpu[2];
static bool watch_sampled[2];

static double cpu_seconds(void);

static double proc_cpu_seconds(int pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    FILE *f;
    size_t n;
    char *p;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                     &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void watch_sample(int which)
{
    if (watch_sampled[which])
        return;
    watch_sampled[which] = true;
    for (int i = 0; i < n_watch; i++)
        watch_cpu[which][i] = proc_cpu_seconds(watch_pid[i]);
    self_cpu[which] = cpu_seconds();
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---- blocking setup: Metadata -------------------------------------- */

static int resolve(const char *hostport, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    struct addrinfo hints = {0}, *ai;
    size_t hl;

    if (!colon)
        return -1;
    hl = (size_t)(colon - hostport);
    if (hl >= sizeof(host))
        return -1;
    memcpy(host, hostport, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static int read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t r = write(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends one request frame on a blocking socket and returns the response
 * frame (after the size) in a heap buffer the caller frees. */
static uint8_t *blocking_rpc(int fd, const sl_wr *req, size_t *len)
{
    uint8_t sz[4];
    uint32_t n;
    uint8_t *buf;

    if (write_full(fd, req->buf, req->len) || read_full(fd, sz, 4))
        return NULL;
    n = ((uint32_t)sz[0] << 24) | ((uint32_t)sz[1] << 16) |
        ((uint32_t)sz[2] << 8) | sz[3];
    if (n > 64u << 20)
        return NULL;
    buf = sl_malloc(n ? n : 1);
    if (read_full(fd, buf, n)) {
        sl_free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int connect_blocking(const struct sockaddr_storage *ss)
{
    int fd = socket(ss->ss_family, SOCK_STREAM, 0);
    socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)ss, sl) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Fills bodies[] with the partitions of O.topic and their leaders'
 * addresses. Retries while the topic or a leader is not ready yet. */
static void fetch_metadata(void)
{
    char *list = sl_strdup(O.bootstrap), *save = NULL, *hp;
    int fd = -1;
    uint64_t deadline = now_ns() + 15ull * 1000000000ull;

    for (hp = strtok_r(list, ",", &save); hp; hp = strtok_r(NULL, ",", &save)) {
        if (resolve(hp, &bootstrap_addr) == 0 &&
            (fd = connect_blocking(&bootstrap_addr)) >= 0)
            break;
    }
    sl_free(list);
    if (fd < 0)
        die("cannot connect to any of %s", O.bootstrap);

    for (int attempt = 0;; attempt++) {
        sl_kafka_MetadataRequestTopic rt = {.name = SL_KSTR(O.topic)};
        sl_kafka_MetadataRequest mreq = {.n_topics = 1, .topics = &rt,
                                         .allow_auto_topic_creation = true};
        sl_kafka_MetadataResponse m;
        sl_wr w;
        size_t start, len = 0;
        uint8_t *resp;
        int32_t corr;
        sl_rd r;
        const char *why = NULL;

        sl_wr_init(&w, 256);
        start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_METADATA, (int16_t)O.metadata_version,
                                        attempt, SL_KSTR("sluice-bench-setup"));
        sl_kafka_MetadataRequest_encode(&w, (int16_t)O.metadata_version, &mreq);
        sl_kafka_frame_end(&w, start);
        resp = blocking_rpc(fd, &w, &len);
        sl_wr_free(&w);
        if (!resp)
            die("Metadata request failed (connection closed)");
        r = sl_rd_init(resp, len);
        if (sl_kafka_resp_hdr_decode(&r, SL_KAFKA_METADATA, (int16_t)O.metadata_version, &corr) ||
            sl_kafka_MetadataResponse_decode(&r, (int16_t)O.metadata_version, &m))
            die("cannot decode the Metadata v%d response", O.metadata_version);
        if (m.n_topics != 1)
            why = "no topic in response";
        else if (m.topics[0].error_code)
            why = sl_kafka_err_name(m.topics[0].error_code);
        else if (m.topics[0].n_partitions == 0)
            why = "no partitions";
        for (int32_t i = 0; !why && i < m.topics[0].n_partitions; i++)
            if (m.topics[0].partitions[i].error_code || m.topics[0].partitions[i].leader_id < 0)
                why = "partition without leader";
        if (why) {
            sl_kafka_MetadataResponse_free(&m);
            sl_free(resp);
            if (now_ns() > deadline)
                die("topic %s not ready: %s", O.topic, why);
            usleep(200000);
            continue;
        }

        sl_kafka_MetadataTopic *t = &m.topics[0];
        int np = t->n_partitions;
        /* Partitions in index order, so "the first P" is well defined. */
        bodies = sl_calloc((size_t)np, sizeof(*bodies));
        for (int i = 0; i < np; i++) {
            sl_kafka_MetadataPartition *p = NULL;
            for (int j = 0; j < np; j++)
                if (t->partitions[j].partition_index == i)
                    p = &t->partitions[j];
            if (!p)
                die("partition indexes are not 0..%d", np - 1);
            bodies[i].partition = i;
            int32_t b;
            for (b = 0; b < m.n_brokers; b++)
                if (m.brokers[b].node_id == p->leader_id)
                    break;
            if (b == m.n_brokers)
                die("leader %d of partition %d is not among the brokers", p->leader_id, i);
            char hp2[300];
            snprintf(hp2, sizeof(hp2), "%.*s:%d", (int)m.brokers[b].host.len,
                     m.brokers[b].host.p, m.brokers[b].port);
            if (resolve(hp2, &bodies[i].addr))
                die("cannot resolve broker %s", hp2);
        }
        n_bodies = (O.partitions > 0 && O.partitions < np) ? O.partitions : np;
        sl_kafka_MetadataResponse_free(&m);
        sl_free(resp);
        break;
    }
    close(fd);
}

/* ---- request building ---------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Record values: 8-byte words drawn from a 64-word dictionary of random
 * letters, so lz4/zstd find matches (about 2-3x, like JSON-ish payloads)
 * while no two records are the same. */
static void fill_value(uint8_t *v, size_t n)
{
    static char dict[64][8];
    static bool init;

    if (!init) {
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 8; j++)
                dict[i][j] = (char)('a' + rng() % 26);
        init = true;
    }
    for (size_t i = 0; i < n; i += 8) {
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(v + i, dict[rng() % 64], k);
    }
}

static void build_records(sl_wr *out, int32_t partition)
{
    sl_batch_builder bb;
    uint8_t *val = sl_malloc((size_t)O.record_size + 1);
    char key[64];
    int64_t ts = (int64_t)time(NULL) * 1000;

    sl_batch_builder_init(&bb, ts);
    for (int i = 0; i < O.batch; i++) {
        fill_value(val, (size_t)O.record_size);
        if (O.key_size > 0) {
            int n = snprintf(key, sizeof(key), "k%d-%d-", partition, i);
            while (n < O.key_size && n < (int)sizeof(key))
                key[n++] = 'x';
            sl_batch_builder_add(&bb, ts, key, O.key_size, val, O.record_size, NULL, 0);
        } else {
            sl_batch_builder_add(&bb, ts, NULL, -1, val, O.record_size, NULL, 0);
        }
    }
    raw_records_len = bb.records.len;
    if (sl_batch_builder_finish(&bb, out, O.codec, false, -1, -1, -1) != 0)
        die("cannot build a %s batch", sl_codec_name(O.codec));
    batch_wire_len = out->len;
    sl_batch_builder_free(&bb);
    sl_free(val);
}

/* Encodes a whole Produce request for a partition; *hdr_len is the size
 * of the request header (size field included) for client id cid. */
static void encode_produce(sl_wr *w, int32_t partition, const char *cid,
                           size_t *hdr_len)
{
    sl_wr recs;
    sl_kafka_ProducePartitionData pd;
    sl_kafka_ProduceTopicData td;
    sl_kafka_ProduceRequest req;
    size_t start;

    sl_wr_init(&recs, 0);
    build_records(&recs, partition);
    pd.index = partition;
    pd.records = (sl_kstr){(const char *)recs.buf, (int32_t)recs.len};
    td.name = SL_KSTR(O.topic);
    td.n_partitions = 1;
    td.partitions = &pd;
    req.transactional_id = SL_KSTR_NULL;
    req.acks = (int16_t)O.acks;
    req.timeout_ms = O.timeout_ms;
    req.n_topics = 1;
    req.topics = &td;
    start = sl_kafka_req_hdr_encode(w, SL_KAFKA_PRODUCE, (int16_t)O.produce_version,
                                    0, SL_KSTR(cid));
    *hdr_len = w->len - start;
    sl_kafka_ProduceRequest_encode(w, (int16_t)O.produce_version, &req);
    sl_kafka_frame_end(w, start);
    sl_wr_free(&recs);
}

static void client_id_of(int idx, char *out, size_t n)
{
    const char *p = strstr(O.client_id, "{i}");
    if (!p)
        snprintf(out, n, "%s", O.client_id);
    else
        snprintf(out, n, "%.*s%d%s", (int)(p - O.client_id), O.client_id, idx, p + 3);
}

static void build_bodies(void)
{
    for (int i = 0; i < n_bodies; i++) {
        sl_wr w;
        size_t hl;
        sl_wr_init(&w, 0);
        encode_produce(&w, bodies[i].partition, "x", &hl);
        bodies[i].len = w.len - hl;
        bodies[i].buf = sl_malloc(bodies[i].len);
        memcpy(bodies[i].buf, w.buf + hl, bodies[i].len);
        sl_wr_free(&w);
    }
    /* ApiVersions v3 for idle connections, as a Java or librdkafka client
     * opens with. */
    sl_kafka_ApiVersionsRequest av = {SL_KSTR("sluice-bench"), SL_KSTR(SL_VERSION)};
    sl_wr w;
    size_t start;
    sl_wr_init(&w, 64);
    start = sl_kafka_req_hdr_encode(&w, SL_KAFKA_API_VERSIONS, 3, 1, SL_KSTR("idle"));
    sl_kafka_ApiVersionsRequest_encode(&w, 3, &av);
    sl_kafka_frame_end(&w, start);
    if (w.len > sizeof(apiversions_req))
        die("ApiVersions request too long");
    memcpy(apiversions_req, w.buf, w.len);
    apiversions_req_len = w.len;
    sl_wr_free(&w);
}

/* ---- self-test: the pre-built request decodes as it should ---------- */

static int self_test(void)
{
    static const int codecs[] = {SL_CODEC_NONE, SL_CODEC_GZIP, SL_CODEC_SNAPPY,
                                 SL_CODEC_LZ4, SL_CODEC_ZSTD};
    int failed = 0;

    O.record_size = 1024;
    O.batch = 16;
    O.key_size = 10;
    for (size_t ci = 0; ci < sizeof(codecs) / sizeof(codecs[0]); ci++) {
        sl_wr w;
        size_t hl;
        sl_kafka_req_hdr h;
        sl_kafka_ProduceRequest req;
        sl_batch b;
        sl_rd r, rr;
        int nrec = 0, rc;
        uint8_t *dec = NULL;
        size_t dec_len = 0;

        O.codec = codecs[ci];
        sl_wr_init(&w, 0);
        encode_produce(&w, 5, "client-{i}", &hl);
        /* Patch a correlation id the way the send path does. */
        sl_wr_put_u32_at(w.buf + 8, 0x01020304);
        rc = sl_kafka_req_hdr_decode(w.buf + 4, w.len - 4, &h);
        r = sl_rd_init(w.buf + 4 + h.len, w.len - 4 - h.len);
        if (rc == 0)
            rc = sl_kafka_ProduceRequest_decode(&r, h.api_version, &req);
        if (rc || h.correlation_id != 0x01020304 || h.api_version != O.produce_version ||
            req.n_topics != 1 || req.topics[0].partitions[0].index != 5 ||
            req.acks != O.acks) {
            fprintf(stderr, "self-test %s: request does not decode (%d)\n",
                    sl_codec_name(O.codec), rc);
            failed++;
            sl_wr_free(&w);
            continue;
        }
        rr = sl_rd_init(req.topics[0].partitions[0].records.p,
                        (size_t)req.topics[0].partitions[0].records.len);
        rc = sl_batch_next(&rr, &b);
        if (rc == 0 && sl_batch_codec(&b) != O.codec)
            rc = -100;
        if (rc == 0 && O.codec != SL_CODEC_NONE)
            rc = sl_decompress(O.codec, b.records, b.records_len, 1 << 24, &dec, &dec_len);
        if (rc == 0) {
            sl_rd rs = O.codec ? sl_rd_init(dec, dec_len) : sl_rd_init(b.records, b.records_len);
            sl_record rec;
            while (sl_rd_left(&rs) > 0 && sl_record_next(&rs, &rec) == 0) {
                if (rec.value_len != O.record_size || rec.key_len != O.key_size)
                    break;
                nrec++;
            }
        }
        if (rc != 0 || nrec != O.batch || b.records_count != O.batch) {
            fprintf(stderr, "self-test %s: batch rc=%d records=%d\n",
                    sl_codec_name(O.codec), rc, nrec);
            failed++;
        } else {
            fprintf(stderr, "self-test %s: ok (%zu bytes for %d x %d B, ratio %.2f)\n",
                    sl_codec_name(O.codec), w.len, O.batch, O.record_size,
                    (double)raw_records_len / (double)(batch_wire_len - SL_BATCH_HEADER_SIZE));
        }
        sl_free(dec);
        sl_kafka_ProduceRequest_free(&req);
        sl_wr_free(&w);
    }
    printf("RESULT %d %d\n", (int)(sizeof(codecs) / sizeof(codecs[0])) - failed, failed);
    return failed ? 1 : 0;
}

/* ---- event loop ----------------------------------------------------- */

static void pump(lg_conn *c, uint64_t now);
static void idle_start_next(lg_thread *th);
static void on_close_noop(uv_handle_t *h) { (void)h; }

static bool in_window(const lg_thread *th, uint64_t t)
{
    return t >= th->t_meas && t <= th->t_end;
}

static void conn_lost(lg_conn *c, const char *why)
{
    if (!c->open)
        return;
    c->open = false;
    if (c->idle) {
        c->th->idle_closed++;
    } else {
        c->th->st.conn_errors++;
        if (!c->th->stopping)
            fprintf(stderr, "loadgen: connection %d lost: %s\n", c->idx, why);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
}

/* One request acknowledged (response parsed, or write done for acks=0). */
static void complete(lg_conn *c, int16_t err, uint64_t now)
{
    lg_thread *th = c->th;
    lg_slot *s = &c->slots[c->acked % c->nslots];

    c->acked++;
    if (!in_window(th, now))
        return;
    if (err) {
        th->st.errors++;
        th->st.err_codes[err > 0 && err < MAX_ERR_CODE ? err : MAX_ERR_CODE]++;
        return;
    }
    sl_bench_hist_record(&th->st.hist, now - s->t_send);
    if (O.rate > 0)
        sl_bench_hist_record(&th->st.hist_due, now - s->t_due);
    th->st.requests_ok++;
    th->st.records_ok += (uint64_t)O.batch;
    th->st.payload_bytes += (uint64_t)O.batch * (uint64_t)(O.record_size + O.key_size);
    th->st.wire_bytes += c->hdr_len + c->body->len;
    if (!th->st.first_ack)
        th->st.first_ack = now;
    th->st.last_ack = now;
}

static void on_write(uv_write_t *w, int status)
{
    lg_slot *s = (lg_slot *)w;
    lg_conn *c = s->c;
    uint64_t now;

    s->write_done = true;
    sl_free(s->cipher);
    s->cipher = NULL;
    if (status < 0) {
        conn_lost(c, uv_strerror(status));
        return;
    }
    now = now_ns();
    if (O.acks == 0)
        complete(c, 0, now);
    pump(c, now);
}

static void send_one(lg_conn *c, uint64_t now, uint64_t due)
{
    lg_slot *s = &c->slots[c->sent % c->nslots];
    uv_buf_t bufs[2];
    int rc;

    sl_wr_put_u32_at(s->hdr + 8, (uint32_t)(int32_t)(c->sent & 0x7fffffff));
    bufs[0] = uv_buf_init((char *)s->hdr, (unsigned)c->hdr_len);
    bufs[1] = uv_buf_init((char *)c->body->buf, (unsigned)c->body->len);
    s->write_done = false;
    s->t_send = now;
    s->t_due = due;
    c->sent++;
    if (c->budget > 0)
        c->budget--;
    if (c->tls != NULL) {
        /* Encrypting is part of the client's cost, as in a real client. */
        size_t len = 0;
        if (sl_tls_conn_write(c->tls, s->hdr, c->hdr_len) != 0 ||
            sl_tls_conn_write(c->tls, c->body->buf, c->body->len) != 0 ||
            (s->cipher = sl_tls_conn_take_output(c->tls, &len)) == NULL) {
            s->write_done = true;
            conn_lost(c, "TLS write failed");
            return;
        }
        bufs[0] = uv_buf_init((char *)s->cipher, (unsigned)len);
        rc = uv_write(&s->w, (uv_stream_t *)&c->tcp, bufs, 1, on_write);
    } else {
        rc = uv_write(&s->w, (uv_stream_t *)&c->tcp, bufs, 2, on_write);
    }
    if (rc < 0) {
        s->write_done = true;
        conn_lost(c, uv_strerror(rc));
    }
}

/* Sends what the window, the pacing schedule and the budget allow. */
static void pump(lg_conn *c, uint64_t now)
{
    lg_thread *th = c->th;

    while (c->open && !th->stopping && c->budget != 0 &&
           c->sent - c->acked < (uint64_t)O.inflight &&
           c->slots[c->sent % c->nslots].write_done) {
        uint64_t due = now;
        if (O.rate > 0) {
            if (now < c->next_due)
                break;
            due = c->next_due;
            if (now - due > 1000000 && in_window(th, now))
                th->st.late++;
            c->next_due += c->interval;
        }
        send_one(c, now, due);
    }
}

static bool conn_drained(const lg_conn *c)
{
    if (!c->open)
        return true;
    if (c->sent != c->acked)
        return false;
    for (uint32_t i = 0; i < c->nslots; i++)
        if (!c->slots[i].write_done)
            return false;
    return true;
}

static void close_all(lg_thread *th)
{
    if (th->closed)
        return;
    th->closed = true;
    uv_close((uv_handle_t *)&th->tick, on_close_noop);
    close(th->tfd);
    uv_close((uv_handle_t *)&th->deadline, on_close_noop);
    for (int i = 0; i < th->n_conns; i++)
        if (!uv_is_closing((uv_handle_t *)&th->conns[i]->tcp))
            uv_close((uv_handle_t *)&th->conns[i]->tcp, on_close_noop);
    for (int i = 0; i < th->n_idle; i++)
        if (!uv_is_closing((uv_handle_t *)&th->idle[i].tcp))
            uv_close((uv_handle_t *)&th->idle[i].tcp, on_close_noop);
}

static void on_tick(uv_poll_t *p, int status, int events)
{
    lg_thread *th = p->data;
    uint64_t now = now_ns(), expirations;
    bool all_done = true;

    (void)status;
    (void)events;
    if (read(th->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        die("timerfd read: %s", strerror(errno));
    if (th->id == 0 && now >= th->t_meas)
        watch_sample(0);
    if (th->id == 0 && now >= th->t_end)
        watch_sample(1);
    if (!th->stopping && now >= th->t_end) {
        th->stopping = true;
        th->t_drain = now + (uint64_t)(O.drain_s * 1e9);
    }
    for (int i = 0; i < th->n_conns; i++) {
        lg_conn *c = th->conns[i];
        if (!th->stopping)
            pump(c, now);
        if (th->stopping || c->budget == 0)
            all_done &= conn_drained(c);
        else
            all_done = false;
    }
    if (all_done && (th->stopping || O.records > 0)) {
        if (!th->stopping)
            th->stopping = true;
        close_all(th);
    } else if (th->stopping && now >= th->t_drain) {
        fprintf(stderr, "loadgen: thread %d: drain timeout, closing with requests in flight\n",
                th->id);
        close_all(th);
    }
}

/* Parses the frames in c->rbuf. */
static void parse_frames(lg_conn *c)
{
    size_t off = 0;
    uint64_t now = now_ns();

    while (c->rlen - off >= 4) {
        const uint8_t *p = c->rbuf + off;
        uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
                     ((uint32_t)p[2] << 8) | p[3];
        if (c->rlen - off - 4 < n)
            break;
        if (c->idle) {
            /* The ApiVersions answer: the connection is set up. Later
             * frames (there should be none) are ignored. */
            if (!c->ready) {
                c->ready = true;
                c->th->idle_ready++;
                c->th->idle_pending--;
                idle_start_next(c->th);
            }
        } else if (c->acked >= c->sent) {
            c->th->st.protocol_errors++;
            conn_lost(c, "response without request");
            return;
        } else {
            sl_rd r = sl_rd_init(p + 4, n);
            sl_kafka_ProduceResponse m;
            int32_t corr;
            int16_t err = 0;
            if (sl_kafka_resp_hdr_decode(&r, SL_KAFKA_PRODUCE, (int16_t)O.produce_version, &corr) ||
                corr != (int32_t)(c->acked & 0x7fffffff) ||
                sl_kafka_ProduceResponse_decode(&r, (int16_t)O.produce_version, &m)) {
                c->th->st.protocol_errors++;
                conn_lost(c, "bad Produce response (or correlation id out of order)");
                return;
            }
            if (m.n_topics != 1 || m.topics[0].n_partitions != 1)
                err = SL_KERR_UNKNOWN_SERVER_ERROR;
            else
                err = m.topics[0].partitions[0].error_code;
            sl_kafka_ProduceResponse_free(&m);
            complete(c, err, now);
        }
        off += 4 + (size_t)n;
    }
    if (off > 0) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    if (!c->idle)
        pump(c, now);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    lg_conn *c = h->data;
    size_t want = c->idle ? 1024 : 65536;

    (void)suggested;
    if (c->rcap - c->rlen < want / 2) {
        size_t cap = c->rcap ? c->rcap * 2 : want;
        while (cap - c->rlen < want / 2)
            cap *= 2;
        c->rbuf = sl_realloc(c->rbuf, cap);
        c->rcap = cap;
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

/* --tls: handshake bytes (and alerts) to the server. */
typedef struct lg_raw_write {
    uv_write_t w;
    uint8_t *buf;
} lg_raw_write;

static void on_raw_write(uv_write_t *w, int status)
{
    lg_raw_write *r = (lg_raw_write *)w;
    (void)status;
    sl_free(r->buf);
    sl_free(r);
}

static void tls_flush(lg_conn *c)
{
    size_t len;
    uint8_t *out = sl_tls_conn_take_output(c->tls, &len);
    lg_raw_write *r;
    uv_buf_t b;

    if (out == NULL)
        return;
    r = sl_malloc(sizeof(*r));
    r->buf = out;
    b = uv_buf_init((char *)out, (unsigned)len);
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_raw_write) < 0) {
        sl_free(out);
        sl_free(r);
        conn_lost(c, "write failed");
    }
}

static void check_connect_done(lg_thread *th);

/* The nread bytes just read at rbuf + rlen are ciphertext: replaces them
 * with their plaintext. Returns false if the connection is lost. */
static bool tls_decrypt(lg_conn *c, size_t nread)
{
    char why[256];
    ssize_t got;

    sl_tls_conn_feed(c->tls, c->rbuf + c->rlen, nread);
    for (;;) {
        if (c->rcap - c->rlen < 16384) {
            c->rcap = c->rcap * 2 + 16384;
            c->rbuf = sl_realloc(c->rbuf, c->rcap);
        }
        got = sl_tls_conn_read(c->tls, c->rbuf + c->rlen, c->rcap - c->rlen,
                               why, sizeof(why));
        if (got == 0)
            break;
        if (got < 0) {
            conn_lost(c, got == SL_TLS_ERROR ? why : "TLS closed");
            return false;
        }
        c->rlen += (size_t)got;
    }
    tls_flush(c);
    if (!c->tls_ready && sl_tls_conn_established(c->tls)) {
        c->tls_ready = true;
        c->th->connected++;
        check_connect_done(c->th);
    }
    return true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    lg_conn *c = s->data;

    (void)buf;
    if (nread < 0) {
        if (c->idle && !c->ready && c->open) {
            /* Lost before its ApiVersions answer: a failed setup. */
            c->th->idle_failed++;
            c->th->idle_pending--;
            c->open = false;
            uv_read_stop(s);
            idle_start_next(c->th);
            return;
        }
        conn_lost(c, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    if (c->tls != NULL) {
        if (!tls_decrypt(c, (size_t)nread))
            return;
    } else {
        c->rlen += (size_t)nread;
    }
    if (O.quickack) {
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)s, &fd) == 0)
            setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    parse_frames(c);
}

static void on_idle_write(uv_write_t *w, int status)
{
    lg_conn *c = w->data;
    if (status < 0)
        conn_lost(c, uv_strerror(status));
}

static void check_connect_done(lg_thread *th)
{
    if (th->running)
        return;
    if (th->connected + th->connect_failed == th->n_conns &&
        th->idle_next == th->n_idle && th->idle_pending == 0)
        uv_stop(&th->loop);
}

static void on_connect(uv_connect_t *req, int status)
{
    lg_conn *c = req->data;
    lg_thread *th = c->th;

    if (status < 0) {
        c->failed = true;
        if (c->idle) {
            th->idle_failed++;
            th->idle_pending--;
            idle_start_next(th);
        } else {
            th->connect_failed++;
            fprintf(stderr, "loadgen: connection %d: connect: %s\n", c->idx,
                    uv_strerror(status));
        }
        check_connect_done(th);
        return;
    }
    c->open = true;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->idle) {
        uv_buf_t b = uv_buf_init((char *)apiversions_req, (unsigned)apiversions_req_len);
        c->iw.data = c;
        if (uv_write(&c->iw, (uv_stream_t *)&c->tcp, &b, 1, on_idle_write) < 0)
            conn_lost(c, "write failed");
    } else if (c->tls != NULL) {
        sl_tls_conn_connect(c->tls); /* counted once established */
        tls_flush(c);
        return;
    } else {
        th->connected++;
    }
    check_connect_done(th);
}

static void start_connect(lg_thread *th, lg_conn *c, const struct sockaddr_storage *ss)
{
    int rc;

    c->th = th;
    uv_tcp_init(&th->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)ss, on_connect);
    if (rc < 0) {
        /* e.g. EMFILE: report through the callback path. */
        c->failed = true;
        if (c->idle) {
            th->idle_failed++;
            th->idle_pending--;
        } else {
            th->connect_failed++;
            fprintf(stderr, "loadgen: connection %d: %s\n", c->idx, uv_strerror(rc));
        }
    }
}

/* Opens idle connections in waves of IDLE_WAVE, each sending ApiVersions
 * and waiting for the answer, so the listener's backlog never overflows. */
static void idle_start_next(lg_thread *th)
{
    while (th->idle_next < th->n_idle && th->idle_pending < IDLE_WAVE) {
        lg_conn *c = &th->idle[th->idle_next];
        c->idx = th->idle_next++;
        c->idle = true;
        th->idle_pending++;
        start_connect(th, c, &bootstrap_addr);
    }
    check_connect_done(th);
}

/* ---- threads and main ----------------------------------------------- */

static void on_connect_deadline(uv_timer_t *t)
{
    lg_thread *th = t->data;
    fprintf(stderr, "loadgen: thread %d: connect timeout (%d/%d load, %d/%d idle ready)\n",
            th->id, th->connected, th->n_conns, th->idle_ready, th->n_idle);
    uv_stop(&th->loop);
}

static void *thread_main(void *arg)
{
    lg_thread *th = arg;

    th->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (th->tfd < 0)
        die("timerfd_create: %s", strerror(errno));
    uv_poll_init(&th->loop, &th->tick, th->tfd);
    uv_timer_init(&th->loop, &th->deadline);
    th->tick.data = th->deadline.data = th;
    uv_timer_start(&th->deadline, on_connect_deadline,
                   (uint64_t)(O.connect_timeout_s * 1000), 0);
    /* Idle connections first, so the load runs while they are held. */
    idle_start_next(th);
    for (int i = 0; i < th->n_conns; i++)
        start_connect(th, th->conns[i],
                      O.connect ? &connect_addr : &th->conns[i]->body->addr);
    check_connect_done(th);
    uv_run(&th->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&th->deadline);

    pthread_barrier_wait(&barrier); /* everyone connected */
    pthread_barrier_wait(&barrier); /* main has set shared_t0 */

    th->running = true;
    th->t0 = shared_t0;
    th->t_meas = O.records > 0 ? th->t0 : th->t0 + (uint64_t)(O.warmup_s * 1e9);
    th->t_end = O.records > 0 ? UINT64_MAX : th->t_meas + (uint64_t)(O.duration_s * 1e9);
    for (int i = 0; i < th->n_conns; i++) {
        lg_conn *c = th->conns[i];
        /* Stagger the schedules so that connections do not send in step. */
        c->next_due = th->t0 + (uint64_t)((double)c->interval * c->idx / O.conns);
        pump(c, th->t0);
    }
    /* Paced: 200 us ticks, so a request leaves at most ~0.2 ms after it is
     * due; open throttle: 5 ms ticks only watch the clock. */
    long period_ns = O.rate > 0 ? 200000 : 5000000;
    struct itimerspec its = {{0, period_ns}, {0, period_ns}};
    timerfd_settime(th->tfd, 0, &its, NULL);
    uv_poll_start(&th->tick, UV_READABLE, on_tick);
    uv_run(&th->loop, UV_RUN_DEFAULT);
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)(O.idle + O.conns + 64))
        fprintf(stderr, "loadgen: RLIMIT_NOFILE %llu is below the %d connections asked for\n",
                (unsigned long long)rl.rlim_cur, O.idle + O.conns);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static int parse_codec(const char *s)
{
    static const char *names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    die("unknown codec '%s' (none, gzip, snappy, lz4, zstd)", s);
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: loadgen --bootstrap HOST:PORT[,...] [options]\n"
"  -T, --topic NAME          topic (default bench; created by Metadata if the cluster allows)\n"
"  -c, --conns N             producing connections (default 1); connection i -> partition i mod P\n"
"  -t, --threads N           event-loop threads (default 1)\n"
"  -s, --record-size B       value bytes per record (default 100)\n"
"      --key-size B          key bytes (default 0 = null key)\n"
"  -n, --batch N             records per request, one RecordBatch v2 (default 100)\n"
"  -z, --codec C             none|gzip|snappy|lz4|zstd (default none)\n"
"  -a, --acks A              -1|1|0 (default -1)\n"
"  -i, --inflight N          max requests in flight per connection (default 8)\n"
"  -r, --rate R              records/s over all connections, paced; 0 = open throttle (default)\n"
"  -d, --duration S          measured seconds (default 10)\n"
"  -w, --warmup S            seconds before measuring (default 2)\n"
"      --records N           fixed-count mode: send N records in total, no warm-up, then stop\n"
"      --partitions P        use only the first P partitions (default all)\n"
"      --idle K              also hold K idle connections (ApiVersions only), opened first\n"
"      --client-id ID        client.id; \"{i}\" becomes the connection index (default sluice-bench)\n"
"      --produce-version V   Produce version (default 7; 3..11)\n"
"      --metadata-version V  Metadata version for setup (default 1)\n"
"      --timeout-ms MS       Produce request timeout field (default 30000)\n"
"      --drain S             seconds to wait for in-flight answers at the end (default 10)\n"
"      --connect-timeout S   seconds to wait for all connections (default 60)\n"

"      --connect HOST:PORT   producing connections all go here (e.g. one Sluice listener) instead\n"
"                            of to each partition's leader\n"
"      --tls                 speak TLS on producing connections (Metadata setup stays plaintext)\n"
"      --tls-ca FILE         verify the server's certificate against this CA (default: no check)\n"
"      --quickack            TCP_QUICKACK after every read: works around a peer that does not set\n"
"                            TCP_NODELAY (the librdkafka mock), whose answers Nagle holds until our\n"
"                            delayed ACK\n"
"      --watch-pid PID       report the CPU seconds PID used inside the measurement window\n"
"                            (utime+stime from /proc; repeatable, at most 8)\n"
"      --label TEXT          copied into the JSON output\n"
"      --self-test           check that pre-built requests decode with every codec, then exit\n"
"Prints one JSON line: records_per_s, mb_per_s (payload, 10^6 B), p50_us, p99_us, p999_us, ...\n");
}

static double num(const char *s, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end)
        die("%s: not a number: '%s'", what, s);
    return v;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
#define NEED() do { if (!v) die("%s needs a value", a); i++; } while (0)
        if (OPT("-h", "--help")) {
            usage(stdout);
            exit(0);
        } else if (OPT("--self-test", "--self-test")) {
            O.self_test = true;
        } else if (OPT("-b", "--bootstrap")) {
            NEED(); O.bootstrap = v;
        } else if (OPT("-T", "--topic")) {
            NEED(); O.topic = v;
        } else if (OPT("-c", "--conns")) {
            NEED(); O.conns = (int)num(v, a);
        } else if (OPT("-t", "--threads")) {
            NEED(); O.threads = (int)num(v, a);
        } else if (OPT("-s", "--record-size")) {
            NEED(); O.record_size = (int)num(v, a);
        } else if (OPT("--key-size", "--key-size")) {
            NEED(); O.key_size = (int)num(v, a);
        } else if (OPT("-n", "--batch")) {
            NEED(); O.batch = (int)num(v, a);
        } else if (OPT("-z", "--codec")) {
            NEED(); O.codec = parse_codec(v);
        } else if (OPT("-a", "--acks")) {
            NEED(); O.acks = (int)num(v, a);
        } else if (OPT("-i", "--inflight")) {
            NEED(); O.inflight = (int)num(v, a);
        } else if (OPT("-r", "--rate")) {
            NEED(); O.rate = num(v, a);
        } else if (OPT("-d", "--duration")) {
            NEED(); O.duration_s = num(v, a);
        } else if (OPT("-w", "--warmup")) {
            NEED(); O.warmup_s = num(v, a);
        } else if (OPT("--records", "--records")) {
            NEED(); O.records = (long long)num(v, a);
        } else if (OPT("--partitions", "--partitions")) {
            NEED(); O.partitions = (int)num(v, a);
        } else if (OPT("--idle", "--idle")) {
            NEED(); O.idle = (int)num(v, a);
        } else if (OPT("--client-id", "--client-id")) {
            NEED(); O.client_id = v;
        } else if (OPT("--produce-version", "--produce-version")) {
            NEED(); O.produce_version = (int)num(v, a);
        } else if (OPT("--metadata-version", "--metadata-version")) {
            NEED(); O.metadata_version = (int)num(v, a);
        } else if (OPT("--timeout-ms", "--timeout-ms")) {
            NEED(); O.timeout_ms = (int)num(v, a);
        } else if (OPT("--drain", "--drain")) {
            NEED(); O.drain_s = num(v, a);
        } else if (OPT("--connect-timeout", "--connect-timeout")) {
            NEED(); O.connect_timeout_s = num(v, a);
        } else if (OPT("--watch-pid", "--watch-pid")) {
            NEED();
            if (n_watch == MAX_WATCH)
                die("at most %d --watch-pid", MAX_WATCH);
            watch_pid[n_watch++] = (int)num(v, a);
        } else if (OPT("--quickack", "--quickack")) {
            O.quickack = true;
        } else if (OPT("--connect", "--connect")) {
            NEED(); O.connect = v;
        } else if (OPT("--tls", "--tls")) {
            O.tls = true;
        } else if (OPT("--tls-ca", "--tls-ca")) {
            NEED(); O.tls_ca = v;
        } else if (OPT("--label", "--label")) {
            NEED(); O.label = v;
        } else {
            usage(stderr);
            die("unknown argument '%s'", a);
        }
#undef OPT
#undef NEED
    }
    if (O.self_test)
        return;
    if (!O.bootstrap)
        die("--bootstrap is required (see --help)");
    if (O.conns < 0 || O.threads < 1 || O.record_size < 0 || O.batch < 1 ||
        O.inflight < 1 || O.idle < 0 || O.key_size < 0 || O.key_size > 64 ||
        (O.acks != -1 && O.acks != 0 && O.acks != 1) || O.rate < 0 ||
        O.produce_version < 3 || O.produce_version > 11 || O.records < 0)
        die("argument out of range (see --help)");
    if (O.threads > O.conns && O.conns > 0)
        O.threads = O.conns;
}

int main(int argc, char **argv)
{
    double cpu0, wall0;
    uint64_t t_setup;
    lg_stats st;
    int conn_failed = 0, idle_ready = 0, idle_failed = 0, idle_closed = 0;
    lg_conn *conns;

    parse_args(argc, argv);
    if (O.self_test)
        return self_test();
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    t_setup = now_ns();
    fetch_metadata();
    build_bodies();
    if (O.connect != NULL && resolve(O.connect, &connect_addr) != 0) {
        fprintf(stderr, "loadgen: --connect %s: cannot resolve\n", O.connect);
        return 2;
    }
    if (O.tls) {
        char err[512];
        if (sl_tls_ctx_new_client(O.tls_ca, NULL, NULL, &tls_ctx, err,
                                  sizeof(err)) != 0) {
            fprintf(stderr, "loadgen: %s\n", err);
            return 2;
        }
    }

    threads = sl_calloc((size_t)O.threads, sizeof(*threads));
    for (int t = 0; t < O.threads; t++) {
        threads[t].id = t;
        uv_loop_init(&threads[t].loop);
        sl_bench_hist_init(&threads[t].st.hist);
        sl_bench_hist_init(&threads[t].st.hist_due);
        threads[t].conns = sl_calloc((size_t)O.conns / (size_t)O.threads + 1, sizeof(lg_conn *));
    }
    conns = sl_calloc((size_t)O.conns + 1, sizeof(*conns));
    long long total_reqs = O.records > 0 ? (O.records + O.batch - 1) / O.batch : -1;
    for (int i = 0; i < O.conns; i++) {
        lg_conn *c = &conns[i];
        lg_thread *th = &threads[i % O.threads];
        char cid[256];
        sl_wr w;

        c->idx = i;
        c->th = th;
        c->body = &bodies[i % n_bodies];
        client_id_of(i, cid, sizeof(cid));
        sl_wr_init(&w, 64);
        sl_kafka_req_hdr_encode(&w, SL_KAFKA_PRODUCE, (int16_t)O.produce_version, 0,
                                SL_KSTR(cid));
        c->hdr_len = w.len;
        sl_wr_put_u32_at(w.buf, (uint32_t)(w.len - 4 + c->body->len));
        c->nslots = 2u * (uint32_t)O.inflight;
        c->slots = sl_calloc(c->nslots, sizeof(*c->slots));
        for (uint32_t s = 0; s < c->nslots; s++) {
            c->slots[s].c = c;
            c->slots[s].write_done = true;
            c->slots[s].hdr = sl_malloc(c->hdr_len);
            memcpy(c->slots[s].hdr, w.buf, c->hdr_len);
        }
        sl_wr_free(&w);
        c->budget = total_reqs < 0 ? -1
                                   : total_reqs / O.conns + (i < total_reqs % O.conns ? 1 : 0);
        c->interval = O.rate > 0 ? (uint64_t)((double)O.batch * O.conns / O.rate * 1e9) : 0;
        /* Made here, before the threads: the context's count is not
         * atomic. */
        if (O.tls)
            c->tls = sl_tls_conn_new(tls_ctx);
        th->conns[th->n_conns++] = c;
    }
    if (O.idle > 0) {
        threads[0].idle = sl_calloc((size_t)O.idle, sizeof(lg_conn));
        threads[0].n_idle = O.idle;
    }

    pthread_barrier_init(&barrier, NULL, (unsigned)O.threads + 1);
    for (int t = 0; t < O.threads; t++)
        if (pthread_create(&threads[t].tid, NULL, thread_main, &threads[t]))
            die("pthread_create failed");
    pthread_barrier_wait(&barrier);
    for (int t = 0; t < O.threads; t++) {
        conn_failed += threads[t].connect_failed;
        idle_ready += threads[t].idle_ready;
    }
    if (O.idle > 0 || conn_failed)
        fprintf(stderr, "loadgen: %d/%d connections, %d/%d idle ready after %.1f s\n",
                O.conns - conn_failed, O.conns, idle_ready, O.idle,
                (double)(now_ns() - t_setup) / 1e9);
    cpu0 = cpu_seconds();
    shared_t0 = now_ns();
    wall0 = (double)shared_t0 / 1e9;
    pthread_barrier_wait(&barrier);
    for (int t = 0; t < O.threads; t++)
        pthread_join(threads[t].tid, NULL);
    double cpu = cpu_seconds() - cpu0;
    double wall = (double)now_ns() / 1e9 - wall0;

    memset(&st, 0, sizeof(st));
    sl_bench_hist_init(&st.hist);
    sl_bench_hist_init(&st.hist_due);
    idle_ready = 0;
    for (int t = 0; t < O.threads; t++) {
        lg_stats *s = &threads[t].st;
        sl_bench_hist_merge(&st.hist, &s->hist);
        sl_bench_hist_merge(&st.hist_due, &s->hist_due);
        st.records_ok += s->records_ok;
        st.requests_ok += s->requests_ok;
        st.payload_bytes += s->payload_bytes;
        st.wire_bytes += s->wire_bytes;
        st.errors += s->errors;
        for (int k = 0; k <= MAX_ERR_CODE; k++)
            st.err_codes[k] += s->err_codes[k];
        st.conn_errors += s->conn_errors;
        st.late += s->late;
        st.protocol_errors += s->protocol_errors;
        if (s->first_ack && (!st.first_ack || s->first_ack < st.first_ack))
            st.first_ack = s->first_ack;
        if (s->last_ack > st.last_ack)
            st.last_ack = s->last_ack;
        idle_ready += threads[t].idle_ready;
        idle_failed += threads[t].idle_failed;
        idle_closed += threads[t].idle_closed;
    }
    double window = O.records > 0 ? (st.last_ack > shared_t0 ? (double)(st.last_ack - shared_t0) / 1e9 : 0)
                                  : O.duration_s;
    double rps = window > 0 ? (double)st.records_ok / window : 0;

    printf("{\"label\":");
    json_str(O.label);
    printf(",\"bootstrap\":");
    json_str(O.bootstrap);
    printf(",\"topic\":");
    json_str(O.topic);
    printf(",\"conns\":%d,\"threads\":%d,\"partitions_used\":%d,\"record_size\":%d,"
           "\"key_size\":%d,\"batch\":%d,\"codec\":\"%s\",\"acks\":%d,\"inflight\":%d,"
           "\"produce_version\":%d,\"target_rate\":%.0f,\"window_s\":%.3f,\"warmup_s\":%.3f,",
           O.conns, O.threads, n_bodies, O.record_size, O.key_size, O.batch,
           sl_codec_name(O.codec), O.acks, O.inflight, O.produce_version, O.rate, window,
           O.records > 0 ? 0.0 : O.warmup_s);
    printf("\"records\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"records_per_s\":%.1f,"
           "\"mb_per_s\":%.3f,\"wire_mb_per_s\":%.3f,\"request_bytes\":%zu,"
           "\"compression_ratio\":%.3f,",
           st.records_ok, st.requests_ok, rps,
           window > 0 ? (double)st.payload_bytes / window / 1e6 : 0,
           window > 0 ? (double)st.wire_bytes / window / 1e6 : 0,
           n_bodies ? bodies[0].len + conns[0].hdr_len : 0,
           batch_wire_len > SL_BATCH_HEADER_SIZE
               ? (double)raw_records_len / (double)(batch_wire_len - SL_BATCH_HEADER_SIZE)
               : 1.0);
    printf("\"errors\":%" PRIu64 ",\"error_codes\":{", st.errors);
    bool first = true;
    for (int k = 0; k <= MAX_ERR_CODE; k++) {
        if (!st.err_codes[k])
            continue;
        if (k == MAX_ERR_CODE)
            printf("%s\"other\":%" PRIu64, first ? "" : ",", st.err_codes[k]);
        else
            printf("%s\"%d\":%" PRIu64, first ? "" : ",", k, st.err_codes[k]);
        first = false;
    }
    printf("},\"conn_errors\":%" PRIu64 ",\"conn_failed\":%d,\"protocol_errors\":%" PRIu64
           ",\"late_sends\":%" PRIu64 ",",
           st.conn_errors, conn_failed, st.protocol_errors, st.late);
    printf("\"lat_samples\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
           "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,",
           st.hist.count, sl_bench_hist_quantile(&st.hist, 0.5) / 1e3,
           sl_bench_hist_quantile(&st.hist, 0.9) / 1e3, sl_bench_hist_quantile(&st.hist, 0.99) / 1e3,
           sl_bench_hist_quantile(&st.hist, 0.999) / 1e3, st.hist.count ? st.hist.max / 1e3 : 0.0,
           sl_bench_hist_mean(&st.hist) / 1e3);
    if (O.rate > 0)
        printf("\"due_p50_us\":%.1f,\"due_p99_us\":%.1f,\"due_p999_us\":%.1f,\"due_max_us\":%.1f,",
               sl_bench_hist_quantile(&st.hist_due, 0.5) / 1e3,
               sl_bench_hist_quantile(&st.hist_due, 0.99) / 1e3,
               sl_bench_hist_quantile(&st.hist_due, 0.999) / 1e3,
               st.hist_due.count ? st.hist_due.max / 1e3 : 0.0);
    if (O.records > 0) { /* no window: the whole run */
        watch_sampled[0] = watch_sampled[1] = false;
    }
    printf("\"watch\":[");
    for (int i = 0; i < n_watch; i++)
        printf("%s{\"pid\":%d,\"cpu_s\":%.3f}", i ? "," : "", watch_pid[i],
               watch_sampled[0] && watch_sampled[1] && watch_cpu[0][i] >= 0 && watch_cpu[1][i] >= 0
                   ? watch_cpu[1][i] - watch_cpu[0][i] : -1.0);
    printf("],\"loadgen_window_cpu_s\":%.3f,",
           watch_sampled[0] && watch_sampled[1] ? self_cpu[1] - self_cpu[0] : -1.0);
    printf("\"idle_requested\":%d,\"idle_ready\":%d,\"idle_failed\":%d,\"idle_closed\":%d,"
           "\"loadgen_cpu_s\":%.3f,\"elapsed_s\":%.3f}\n",
           O.idle, idle_ready, idle_failed, idle_closed, cpu, wall);
    fflush(stdout);
    return (st.records_ok == 0 && O.conns > 0) ? 3 : 0;
}
